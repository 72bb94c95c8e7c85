"""The run directory: where every stage reads and writes, with its config and provenance.

    runs/<name>/
      config.yaml        the resolved profile (overrides applied)
      provenance.json    versions, git commit, device, times, every model used
      benchmark.parquet, prompts.parquet, images/, scores.parquet, ...   (the stages)
      notebooks/         executed notebooks

`open_run` is idempotent: opening an existing run resumes it (nothing is wiped); `fresh=True`
starts over. Each stage wraps its work in `with run.stage("generate"):` so its start and end
times land in provenance.json.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

from . import config as cfg
from .errors import ConfigError
from .fileio import write_json, write_text

PACKAGES = (
    "act2i", "torch", "diffusers", "transformers", "accelerate", "tokenizers", "safetensors",
    "huggingface_hub", "numpy", "pandas", "pyarrow", "papermill", "scipy", "statsmodels",
    "torchmetrics", "krippendorff", "matplotlib",
)


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class Run:
    """A run directory and its validated profile."""

    def __init__(self, root: str | Path, config: cfg.Profile):
        self.root = Path(root).resolve()
        self.config = config

    def __repr__(self) -> str:
        return f"Run({str(self.root)!r}, profile={self.config.name!r})"

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def figures(self) -> Path:
        return self.root / "figures"

    @property
    def tables(self) -> Path:
        return self.root / "tables"

    @property
    def notebooks(self) -> Path:
        return self.root / "notebooks"

    @property
    def provenance_path(self) -> Path:
        return self.root / "provenance.json"

    def provenance(self) -> dict:
        return read_json(self.provenance_path)

    @contextlib.contextmanager
    def edit_provenance(self) -> Iterator[dict]:
        """Read-modify-write provenance.json under a lock (stages may run in several processes)."""
        from filelock import FileLock

        with FileLock(str(self.root / ".provenance.lock")):
            data = read_json(self.provenance_path)
            yield data
            write_json(self.provenance_path, data)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Record a stage's start, end and outcome in provenance.json."""
        with self.edit_provenance() as prov:
            prov.setdefault("stages", {})[name] = {"started": now(), "ended": None, "status": "running"}
        status = "failed"
        try:
            yield
            status = "done"
        finally:
            with self.edit_provenance() as prov:
                entry = prov.setdefault("stages", {}).setdefault(name, {})
                entry.update(ended=now(), status=status)
                prov["ended"] = entry["ended"]

    def record_model(self, source, what: str) -> None:
        """Remember a model the run used: its reference, location, revision or content hash."""
        with self.edit_provenance() as prov:
            prov.setdefault("models", {})[source.ref] = {**source.to_dict(), "used_for": what}


PRODUCERS = {
    "benchmark.parquet": "the build-benchmark stage (notebook 01)",
    "prompts.parquet": "the enrich-prompts stage (notebook 02)",
    "scores.parquet": "the evaluate stage (notebook 04)",
}


def require(root: str | Path, name: str) -> Path:
    """The path of an earlier stage's output in run `root`, or one sentence saying which stage makes it."""
    from .errors import InputError

    path = Path(root) / name
    if not path.is_file():
        raise InputError(f"{path} does not exist; run {PRODUCERS.get(name, 'the stage that writes it')} first.")
    return path


def read_json(path: Path) -> dict:
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}


def open_run(
    run_dir: str | Path,
    profile: str | Path | None = None,
    overrides: list[str] | dict | str | None = None,
    *,
    params: dict | None = None,
    fresh: bool = False,
) -> Run:
    """Create or resume `run_dir` with `profile` plus `overrides`; returns the Run.

    `params` are a notebook's own parameters as dotted keys (`{"benchmark.seed": 3}`); those
    that are None are left to the profile, the others are applied on top of `overrides`.
    With no profile, the run's own config.yaml is used (the run must exist). When the resolved
    profile differs from the one the run was made with, config.yaml is updated and the change
    is logged in provenance.json under `config_changes`.
    """
    root = Path(run_dir).expanduser().resolve()
    overrides = cfg.merge(cfg.parse_overrides(overrides), cfg.nest(params or {}, drop_none=True))
    if fresh:
        wipe_run(root)
    config_path = root / "config.yaml"
    if profile in (None, ""):
        if not config_path.is_file():
            raise ConfigError(f"{root} is not a run yet (no config.yaml); give a profile, e.g. profile='smoke'.")
        over = cfg.parse_overrides(overrides)
        config = cfg.validate(cfg.merge(cfg.load_yaml(config_path) or {}, over), str(config_path), over)
    else:
        config = cfg.load_profile(profile, overrides)
    root.mkdir(parents=True, exist_ok=True)
    run = Run(root, config)
    _write_config(run, config_path)
    _stamp_environment(run)
    return run


def _write_config(run: Run, config_path: Path) -> None:
    new = run.config.to_dict()
    old = cfg.load_yaml(config_path) if config_path.is_file() else None
    if old == new:
        return
    write_text(config_path, cfg.dump(run.config))
    if old is not None:
        changed = sorted(_diff_keys(old, new))
        with run.edit_provenance() as prov:
            prov.setdefault("config_changes", []).append({"time": now(), "keys": changed})


def _diff_keys(old: Any, new: Any, prefix: str = "") -> set[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        keys = set()
        for k in old.keys() | new.keys():
            keys |= _diff_keys(old.get(k), new.get(k), f"{prefix}.{k}" if prefix else k)
        return keys
    return set() if old == new else {prefix}


def _stamp_environment(run: Run) -> None:
    with run.edit_provenance() as prov:
        prov.setdefault("run", run.name)
        prov.setdefault("started", now())
        prov["profile"] = run.config.name
        prov["environment"] = environment()


def wipe_run(root: Path) -> None:
    """Delete a run directory, refusing anything that does not look like one."""
    if not root.exists():
        return
    looks_like_run = (root / "config.yaml").is_file() or (root / "provenance.json").is_file() or not any(root.iterdir())
    if not root.is_dir() or not looks_like_run:
        raise ConfigError(f"Refusing to wipe {root}: it is not a run directory (no config.yaml); remove it yourself.")
    shutil.rmtree(root)


# --- what the run ran on -----------------------------------------------------------------


def environment() -> dict:
    """Versions, git state, Python, platform and device, as recorded in provenance.json."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "git": git_state(),
        "device": device_info(),
        "recorded": now(),
    }


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_state(folder: Path = cfg.REPO_ROOT) -> dict:
    """The checkout's commit and whether its tree had uncommitted changes."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status)}


def device_info() -> dict:
    import torch

    info = {"torch": torch.__version__, "cpu_threads": torch.get_num_threads(), "processor": platform.processor() or platform.machine()}
    if torch.cuda.is_available():
        info["cuda"] = torch.version.cuda
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        info["gpus"] = ["Apple MPS"]
    else:
        info["gpus"] = []
    return info


def resolve_device(name: str = "auto") -> str:
    """`auto` becomes cuda, mps or cpu, whichever this machine has."""
    if name != "auto":
        return name
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"
