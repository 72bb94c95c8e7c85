"""Run the stage notebooks in order with papermill, into the run directory.

Every notebook gets the same three parameters, `run_dir`, `profile` and `overrides`, and
writes its executed copy to `runs/<name>/notebooks/`. A failing cell stops the pipeline with
one sentence naming the notebook, the cell and the error; the executed notebook (with the
traceback in it) stays behind for reading.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import yaml

from .config import REPO_ROOT
from .errors import Act2iError, ConfigError, NotebookError
from .runs import Run, now
from .cache import cache_dir

NOTEBOOKS = REPO_ROOT / "notebooks"
INTERACTIVE = {"07_explore.ipynb"}  # needs a person at JupyterLab; executed by tests only


def check_profile(profile) -> None:
    """Everything the stages will need from `profile`, checked before any stage runs: model
    references, metric and dimension names. Raises one ConfigError sentence for the first problem."""
    from .enrich.dimensions import DIMENSIONS
    from .evaluate import list_metrics
    from .generate.pipelines import check_size
    from .models import check_reference
    from .registry import resolve_spec

    for i, entry in enumerate(profile.generate.models):
        if entry.external:
            continue  # images made elsewhere: nothing to resolve or load
        try:
            spec = resolve_spec(entry)
            check_reference(entry.model if entry.model.startswith("tiny:") else spec.id)
        except Act2iError as err:
            raise ConfigError(f"generate.models[{i}].model: {err}") from None
        check_size(spec, i)
    known = {**DIMENSIONS, **profile.enrich.custom_dimensions}
    unknown = [d for d in profile.enrich.dimensions if d not in known]
    if unknown:
        raise ConfigError(f"enrich.dimensions: unknown dimension(s) {', '.join(unknown)}; known: {', '.join(known)} "
                          "(add your own under enrich.custom_dimensions).")
    metrics = list_metrics()
    unknown = [m for m in profile.evaluate.metrics if m not in metrics]
    if unknown:
        raise ConfigError(f"evaluate.metrics: unknown metric(s) {', '.join(unknown)}; known: {', '.join(metrics)}.")
    for ref in profile.model_refs():
        try:
            check_reference(ref)
        except Act2iError as err:
            raise ConfigError(str(err)) from None


def stage_notebooks(folder: str | Path = NOTEBOOKS, include_interactive: bool = False) -> list[Path]:
    """The numbered stage notebooks (`NN_name.ipynb`) in `folder`, in run order."""
    found = sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))
    return [nb for nb in found if include_interactive or nb.name not in INTERACTIVE]


def kernel_name() -> str:
    """A Jupyter kernel that runs this very interpreter, whatever kernels the machine has."""
    digest = hashlib.sha256(sys.executable.encode()).hexdigest()[:8]
    name = f"act2i-{digest}"
    root = cache_dir() / "jupyter"
    spec_dir = root / "kernels" / name
    spec = {
        # log level ERROR: the kernel's "running over TCP without encryption" notice is noise on a local run
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}", "--IPKernelApp.log_level=ERROR"],
        "display_name": f"act2i ({sys.executable})",
        "language": "python",
    }
    spec_file = spec_dir / "kernel.json"
    if not spec_file.is_file() or json.loads(spec_file.read_text()) != spec:
        spec_dir.mkdir(parents=True, exist_ok=True)
        spec_file.write_text(json.dumps(spec, indent=1))
    paths = os.environ.get("JUPYTER_PATH", "")
    if str(root) not in paths.split(os.pathsep):
        os.environ["JUPYTER_PATH"] = os.pathsep.join(p for p in (str(root), paths) if p)
    return name


def run_notebooks(
    run: Run,
    notebooks: list[Path],
    *,
    profile: str = "",
    overrides: dict | None = None,
    progress: bool = True,
    log=print,
) -> list[Path]:
    """Execute `notebooks` in order against `run`; returns the executed copies' paths."""
    import papermill as pm

    params = {
        "run_dir": str(run.root),
        "profile": str(profile or ""),
        "overrides": yaml.safe_dump(overrides, default_flow_style=True).strip() if overrides else "",
    }
    kernel = kernel_name()
    os.environ["ACT2I_PROGRESS"] = "text"  # the kernels inherit it: bars that read finished in the saved notebooks
    run.notebooks.mkdir(parents=True, exist_ok=True)
    written = []
    for i, notebook in enumerate(notebooks, 1):
        out = run.notebooks / notebook.name
        log(f"[{i}/{len(notebooks)}] {notebook.name}")
        started, t0 = now(), time.perf_counter()
        try:
            pm.execute_notebook(
                str(notebook), str(out), parameters=params, kernel_name=kernel,
                progress_bar=progress, cwd=str(Path.cwd()),
            )
        except pm.PapermillExecutionError as err:
            _record(run, notebook.name, started, time.perf_counter() - t0, "failed")
            raise NotebookError(
                f"Notebook {notebook.name} failed at cell [{err.exec_count}] with {err.ename}: {_short(err.evalue)} "
                f"(the executed notebook is {out})."
            ) from None
        seconds = time.perf_counter() - t0
        _record(run, notebook.name, started, seconds, "done")
        log(f"      done in {seconds:.1f} s -> {out}")
        written.append(out)
    return written


def _short(text: str) -> str:
    """The error on one line, whole: act2i's sentences end with their advice, so none is cut."""
    return " ".join(str(text).split())


def _record(run: Run, name: str, started: str, seconds: float, status: str) -> None:
    with run.edit_provenance() as prov:
        ended = now()
        prov.setdefault("notebooks", {})[name] = {"started": started, "ended": ended, "seconds": round(seconds, 2),
                                                  "status": status}
        prov["ended"] = ended  # the run ends after its last notebook
        if prov.get("history"):
            prov["history"][-1]["ended"] = ended
