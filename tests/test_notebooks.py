"""The stage notebooks: thin, committed clean, same parameters; the pipeline runs them end to end."""

import ast
import json

import nbformat
import pandas as pd
import papermill as pm
import pytest

from act2i_utils.cli import main
from act2i_utils.pipeline import NOTEBOOKS, kernel_name, stage_notebooks

ALL = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def test_there_are_stage_notebooks():
    assert [nb.name for nb in ALL][:4] == [
        "01_build_benchmark.ipynb", "02_enrich_prompts.ipynb", "03_generate_images.ipynb", "04_evaluate.ipynb"]


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_notebook_is_thin_and_clean(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "commit without outputs"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0] is code[0]
    params = pm.inspect_notebook(str(path))
    assert {"run_dir", "profile", "overrides"} <= set(params)
    for cell in code:
        for node in ast.walk(ast.parse(cell.source)):
            assert not isinstance(node, (ast.FunctionDef, ast.ClassDef)), "move functions into act2i_utils"


def test_pipeline_runs_the_stage_notebooks(tmp_path, capsys):
    run_dir = tmp_path / "smoke"
    assert main(["run", "--profile", "smoke", "--run", str(run_dir), "--quiet"]) == 0
    for notebook in stage_notebooks():
        assert (run_dir / "notebooks" / notebook.name).is_file()
    bench = pd.read_parquet(run_dir / "benchmark.parquet")
    assert len(bench) == 125
    assert (run_dir / "figures" / "benchmark_labels.png").is_file()
    prompts = pd.read_parquet(run_dir / "prompts.parquet")
    assert len(prompts) == 125 * 4 and (run_dir / "enrich_cache.jsonl").is_file()
    manifest = pd.read_parquet(run_dir / "images" / "manifest.parquet")
    assert len(manifest) == 125 * 4 and all((run_dir / p).is_file() for p in manifest["path"])
    assert (run_dir / "figures" / "qualitative_grid.pdf").is_file()
    scores = pd.read_parquet(run_dir / "scores.parquet")
    assert scores.groupby(["model", "variant", "id", "seed"]).ngroups == 125 * 4
    prov = json.loads((run_dir / "provenance.json").read_text())
    assert prov["stages"]["benchmark"]["status"] == "done"


def test_notebook_parameters_override_the_profile(tmp_path):
    out = tmp_path / "01.ipynb"
    pm.execute_notebook(str(NOTEBOOKS / "01_build_benchmark.ipynb"), str(out), progress_bar=False, kernel_name=kernel_name(),
                        parameters={"run_dir": str(tmp_path / "r"), "agents": "people", "n_per_action": 2})
    bench = pd.read_parquet(tmp_path / "r" / "benchmark.parquet")
    assert len(bench) == 32 and "dancer" in set(bench["animal1"]) | set(bench["animal2"])
    assert "agents: people" in (tmp_path / "r" / "config.yaml").read_text()
