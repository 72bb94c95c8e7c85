"""The stage notebooks: thin, committed clean, same parameters; the pipeline runs them end to end."""

import ast
import json
import re

import nbformat
import pandas as pd
import papermill as pm
import pytest

from act2i_utils.cli import main
from act2i_utils.pipeline import NOTEBOOKS, kernel_name, stage_notebooks

ALL = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def test_there_are_stage_notebooks():
    assert [nb.name for nb in ALL] == [
        "01_build_benchmark.ipynb", "02_enrich_prompts.ipynb", "03_generate_images.ipynb", "04_select.ipynb", "05_evaluate.ipynb",
        "06_analyze.ipynb", "07_explore.ipynb"]


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_notebook_is_thin_and_clean(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "commit without outputs"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0] is code[0]
    params = pm.inspect_notebook(str(path))
    assert set(params) == ({"run_dir", "metric"} if path.name == "07_explore.ipynb" else {"run_dir", "profile", "overrides"})
    assert nb.metadata["kernelspec"]["name"] == "act2i"
    title = nb.cells[0].source.splitlines()[0]
    assert nb.cells[0].cell_type == "markdown" and title.startswith(f"# {path.name[:2]} · "), title
    for cell in code:
        for node in ast.walk(ast.parse(cell.source)):
            assert not isinstance(node, (ast.FunctionDef, ast.ClassDef)), "move functions into act2i_utils"


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    """What `make reproduce` does, into a temporary run (figures not copied into the checkout)."""
    run_dir = tmp_path_factory.mktemp("reproduce") / "smoke"
    assert main(["run", "--profile", "smoke", "--run", str(run_dir), "--quiet"]) == 0
    return run_dir


def test_pipeline_runs_the_stage_notebooks(reproduced):
    run_dir = reproduced
    assert [nb.name for nb in stage_notebooks()] == [nb.name for nb in ALL if nb.name != "07_explore.ipynb"]
    for notebook in stage_notebooks():
        assert (run_dir / "notebooks" / notebook.name).is_file()
    bench = pd.read_parquet(run_dir / "benchmark.parquet")
    assert len(bench) == 125
    assert (run_dir / "figures" / "benchmark_labels.png").is_file()
    prompts = pd.read_parquet(run_dir / "prompts.parquet")
    assert len(prompts) == 125 * 4 and (run_dir / "enrich_cache.jsonl").is_file()
    manifest = pd.read_parquet(run_dir / "images" / "manifest.parquet")
    assert len(manifest) == 125 * 6 and all((run_dir / p).is_file() for p in manifest["path"])
    assert (run_dir / "figures" / "qualitative_tiny-sd3.pdf").is_file()
    scores = pd.read_parquet(run_dir / "scores.parquet")
    assert scores.groupby(["model", "variant", "id", "seed"]).ngroups == 125 * 6  # base, 3 dimensions, selected, selected_per_label
    prov = json.loads((run_dir / "provenance.json").read_text())
    assert all(prov["stages"][s]["status"] == "done" for s in ("benchmark", "enrich", "generate", "evaluate", "analyze"))
    assert all(v["status"] == "done" for v in prov["notebooks"].values())


def test_reproduce_leaves_every_file_of_the_run_directory_contract(reproduced):
    run_dir = reproduced
    for name in ("config.yaml", "provenance.json", "benchmark.parquet", "prompts.parquet", "images/manifest.parquet",
                 "scores.parquet", "report.html"):
        assert (run_dir / name).is_file(), name
    assert len(list(run_dir.glob("images/*/*/*.png"))) == 125 * 4
    figures = {p.stem for p in run_dir.glob("figures/*.png")}
    assert {"acceptance", "gain_per_dimension", "wordclouds", "qualitative_tiny-sd3"} <= figures
    assert all((run_dir / "figures" / f"{stem}.pdf").is_file() for stem in figures)
    assert {"acceptance.csv", "gains.csv", "paired_variants.csv"} <= {p.name for p in run_dir.glob("tables/*.csv")}
    report = (run_dir / "report.html").read_text()
    assert "Random-weight models (smoke profile)" in report


@pytest.mark.parametrize("name", [nb.name for nb in ALL if nb.name != "07_explore.ipynb"])
def test_executed_notebooks_read_well(reproduced, name):
    """No error, no stray `None`, progress bars that read finished, every figure the stage wrote shown."""
    nb = nbformat.read(reproduced / "notebooks" / name, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert not [o for o in outputs if o.get("data", {}).get("text/plain") == "None"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    shown = [line.split("\r")[-1] for line in text.split("\n")]  # what the notebook shows: \r rewrites a line
    assert not [line for line in shown if re.search(r"(?<!\d)0%\|", line)]  # text bars read finished
    assert "application/vnd.jupyter.widget-view+json" not in json.dumps(outputs)  # no widget bars frozen at 0 %
    shown = sum("image/png" in o.get("data", {}) for o in outputs)
    written = {"01_build_benchmark.ipynb": ["benchmark_labels"],
               "06_analyze.ipynb": [p.stem for p in (reproduced / "figures").glob("*.png") if p.stem != "benchmark_labels"]}
    assert shown >= len(written.get(name, []))


def test_explore_notebook_executes(reproduced, tmp_path):
    out = tmp_path / "06.ipynb"
    pm.execute_notebook(str(NOTEBOOKS / "07_explore.ipynb"), str(out), progress_bar=False, kernel_name=kernel_name(),
                        parameters={"run_dir": str(reproduced)})
    executed = nbformat.read(out, as_version=4)
    assert any("VBox" in json.dumps(c.get("outputs", [])) for c in executed.cells)


def test_notebook_overrides_set_the_stage_settings(tmp_path):
    out = tmp_path / "01.ipynb"
    pm.execute_notebook(str(NOTEBOOKS / "01_build_benchmark.ipynb"), str(out), progress_bar=False, kernel_name=kernel_name(),
                        parameters={"run_dir": str(tmp_path / "r"), "overrides": "benchmark: {agents: people, n_per_action: 2}"})
    bench = pd.read_parquet(tmp_path / "r" / "benchmark.parquet")
    assert len(bench) == 32 and "dancer" in set(bench["animal1"]) | set(bench["animal2"])
    assert "agents: people" in (tmp_path / "r" / "config.yaml").read_text()
