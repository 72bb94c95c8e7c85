"""The notebook runner: a two-notebook toy pipeline runs into the run directory; a failing cell is named."""

import json

import nbformat
import pytest

from act2i_utils.cli import main
from act2i_utils.errors import NotebookError
from act2i_utils.pipeline import run_notebooks, stage_notebooks
from act2i_utils.runs import open_run

PARAMETERS = 'run_dir: str = ""  # the run\nprofile: str = ""  # configs/<profile>.yaml\noverrides: str = ""  # YAML'


def notebook(path, *cells):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]})
    nb.cells = [params] + [nbformat.v4.new_code_cell(src) for src in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture
def toy(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    notebook(folder / "01_write.ipynb",
             "from act2i_utils.runs import open_run\nrun = open_run(run_dir, profile, overrides)",
             "(run.root / 'first.txt').write_text(str(run.config.generate.seeds))")
    notebook(folder / "02_read.ipynb",
             "from act2i_utils.runs import open_run\nrun = open_run(run_dir, profile, overrides)",
             "text = (run.root / 'first.txt').read_text()\n(run.root / 'second.txt').write_text(text + '!')")
    return folder


def test_act2i_run_prints_no_kernel_noise(tmp_path, toy):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "act2i_utils.cli", "run", "--profile", "smoke", "--run", str(tmp_path / "r"),
                          "--notebooks", str(toy), "--quiet"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "without encryption" not in out.stdout + out.stderr and "WARNING" not in out.stdout + out.stderr


def test_toy_pipeline_runs_in_order(tmp_path, toy):
    run = open_run(tmp_path / "run", "smoke", {"generate": {"seeds": [5, 6]}})
    written = run_notebooks(run, stage_notebooks(toy), profile="smoke", overrides={"generate": {"seeds": [5, 6]}},
                            progress=False, log=lambda *_: None)
    assert [p.name for p in written] == ["01_write.ipynb", "02_read.ipynb"]
    assert (run.root / "second.txt").read_text() == "[5, 6]!"
    executed = nbformat.read(run.notebooks / "02_read.ipynb", as_version=4)
    assert executed.metadata.papermill.parameters["run_dir"] == str(run.root)
    prov = run.provenance()
    assert prov["notebooks"]["01_write.ipynb"]["status"] == "done"


def test_failing_cell_is_reported_clearly(tmp_path, toy):
    notebook(toy / "02_read.ipynb", "x = 1", "raise ValueError('the prompt file has no base_prompt column')")
    run = open_run(tmp_path / "run", "smoke")
    with pytest.raises(NotebookError) as info:
        run_notebooks(run, stage_notebooks(toy), profile="smoke", progress=False, log=lambda *_: None)
    message = str(info.value)
    assert message.startswith("Notebook 02_read.ipynb failed at cell [4] with ValueError: the prompt file has no base_prompt column")
    assert str(run.notebooks / "02_read.ipynb") in message
    assert run.provenance()["notebooks"]["02_read.ipynb"]["status"] == "failed"


def test_cli_run_resumes_and_reports_failures(tmp_path, toy, capsys):
    args = ["run", "--profile", "smoke", "--run", str(tmp_path / "cli"), "--notebooks", str(toy), "--quiet",
            "--set", "generate.seeds=[9]"]
    assert main(args) == 0
    assert (tmp_path / "cli" / "second.txt").read_text() == "[9]!"
    assert "[2/2] 02_read.ipynb" in capsys.readouterr().out
    (tmp_path / "cli" / "keep.txt").write_text("x")
    assert main(args) == 0 and (tmp_path / "cli" / "keep.txt").exists()
    assert main(args + ["--fresh"]) == 0 and not (tmp_path / "cli" / "keep.txt").exists()

    notebook(toy / "02_read.ipynb", "1 / 0")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("act2i: error: Notebook 02_read.ipynb failed at cell [3] with ZeroDivisionError")
    assert err.count("\n") == 1


def test_cli_rejects_bad_overrides_in_one_line(tmp_path, capsys):
    assert main(["run", "--run", str(tmp_path / "x"), "--set", "generate.steps=4"]) == 2
    err = capsys.readouterr().err
    assert "'generate.steps' is not a known key of generate" in err and err.count("\n") == 1


def test_cli_profile_prints_resolved_yaml(capsys):
    assert main(["profile", "--profile", "paper", "--set", "generate.seeds=[1]"]) == 0
    out = capsys.readouterr().out
    assert "seeds:\n  - 1\n" in out and "stabilityai/stable-diffusion-3.5-large" in out
