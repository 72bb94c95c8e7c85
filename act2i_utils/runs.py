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
from typing import Any, Callable, Iterator

from . import config as cfg
from .errors import ConfigError
from .fileio import unwritable, write_json, write_text

PACKAGES = (
    "act2i", "torch", "diffusers", "transformers", "accelerate", "tokenizers", "safetensors",
    "huggingface_hub", "numpy", "pandas", "pyarrow", "papermill", "scipy", "statsmodels",
    "torchmetrics", "krippendorff", "matplotlib",
)


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class RunPaths:
    """Every file and folder of the run-directory contract, by name; the only place they are spelled.

    Functions that receive a bare run root use `RunPaths(root)`; a `Run` is a `RunPaths` with its profile.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    @property
    def name(self) -> str:
        return self.root.name

    # -- written when the run is opened
    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    @property
    def provenance_path(self) -> Path:
        return self.root / "provenance.json"

    @property
    def provenance_lock(self) -> Path:
        return self.root / ".provenance.lock"

    # -- build benchmark
    @property
    def benchmark_path(self) -> Path:
        return self.root / "benchmark.parquet"

    # -- enrich
    @property
    def prompts_path(self) -> Path:
        return self.root / "prompts.parquet"

    @property
    def enriched_benchmark_path(self) -> Path:
        return self.root / "benchmark_enriched.parquet"

    @property
    def enrich_cache_path(self) -> Path:
        return self.root / "enrich_cache.jsonl"

    # -- generate
    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def manifest_path(self) -> Path:
        return self.images / "manifest.parquet"

    @property
    def manifest_parts(self) -> Path:
        return self.images / "manifest.parts"

    @staticmethod
    def image_relpath(model: str, variant: str, prompt_id: str, seed: int) -> str:
        """Where an image lives, relative to the run directory."""
        return f"images/{model}/{variant}/{prompt_id}_{seed}.png"

    # -- evaluate
    @property
    def scores_path(self) -> Path:
        return self.root / "scores.parquet"

    @property
    def scores_cache_path(self) -> Path:
        return self.root / "scores_cache.jsonl"

    @property
    def detections_path(self) -> Path:
        return self.root / "detections.parquet"

    # -- select (between generate and evaluate)
    @property
    def selection_path(self) -> Path:
        """What the select stage chose for each selected image, by which judge and policy, and why."""
        return self.root / "selection.parquet"

    @property
    def select_candidates_path(self) -> Path:
        """Every candidate image the select stage considered, with the selection judge's value."""
        return self.root / "select_candidates.parquet"

    @property
    def select_cost_curve_path(self) -> Path:
        """The gain of selection by number of candidates, on held-out seeds (empty without them)."""
        return self.root / "select_cost_curve.parquet"

    @property
    def select_refine_path(self) -> Path:
        """The refinement round: the failed atoms given to the enrichment LLM and the new rewrite."""
        return self.root / "select_refine.parquet"

    # -- human study
    @property
    def annotations_db_path(self) -> Path:
        return self.root / "annotations.sqlite"

    @property
    def annotations_path(self) -> Path:
        return self.root / "annotations.parquet"

    @property
    def annotations_csv_path(self) -> Path:
        return self.root / "annotations.csv"

    @property
    def annotation_plan_path(self) -> Path:
        return self.root / "annotation_plan.parquet"

    @property
    def annotation_gold(self) -> Path:
        """A crowd study's gold images and worked examples, copied in from annotate.gold_file."""
        return self.root / "annotation_gold"

    @property
    def annotation_blind(self) -> Path:
        """The study's images as the app serves them (bare, one size), encoded once (a cache)."""
        return self.root / "annotation_blind"

    @property
    def ratings_path(self) -> Path:
        """Every live answer of every rater, gold included, with its gold result and exclusion (publishable)."""
        return self.root / "ratings.parquet"

    @property
    def ratings_csv_path(self) -> Path:
        return self.root / "ratings.csv"

    @property
    def raters_csv_path(self) -> Path:
        """One row per rater: images, gold answers and errors, time, exclusion and why."""
        return self.root / "raters.csv"

    # -- side-by-side comparisons
    @property
    def pairs_path(self) -> Path:
        """The planned image pairs (`annotate.pairs.plan_pairs`): what people and the VLM judge compare."""
        return self.root / "pairs.parquet"

    @property
    def pair_judgements_path(self) -> Path:
        """The VLM judge's answer to each pair, in both orders (`evaluate.pairwise`)."""
        return self.root / "pair_judgements.parquet"

    @property
    def pair_cache_path(self) -> Path:
        return self.root / "pair_cache.jsonl"

    @property
    def pair_answers_path(self) -> Path:
        """People's answers to the pairs (exported from the study database)."""
        return self.root / "pair_answers.parquet"

    @property
    def pair_answers_csv_path(self) -> Path:
        return self.root / "pair_answers.csv"

    # -- analyze
    @property
    def figures(self) -> Path:
        return self.root / "figures"

    @property
    def tables(self) -> Path:
        return self.root / "tables"

    @property
    def report_path(self) -> Path:
        return self.root / "report.html"

    @property
    def notebooks(self) -> Path:
        return self.root / "notebooks"

    def require(self, path: Path) -> Path:
        """`path` (one of the run's files) if it exists, else one sentence saying which stage makes it."""
        from .errors import InputError

        if not path.is_file():
            producer = PRODUCERS.get(path.name, "the stage that writes it")
            raise InputError(f"{path} does not exist; run {producer} first.")
        return path


class Run(RunPaths):
    """A run directory and its validated profile."""

    def __init__(self, root: str | Path, config: cfg.Profile):
        super().__init__(root)
        self.config = config
        self.changed: list[str] = []  # keys of config.yaml that opening this run changed

    def __repr__(self) -> str:
        return f"Run({str(self.root)!r}, profile={self.config.name!r})"

    @property
    def random_weights(self) -> bool:
        """True when the run's images come from tiny random-weight models (every result must say so)."""
        from .registry import random_weights

        return random_weights(self.config.generate.models)

    def provenance(self) -> dict:
        return read_json(self.provenance_path)

    def settings(self, *sections: str) -> str:
        """The resolved settings of these profile sections (all when none) as a short YAML block."""
        data = self.config.to_dict()
        if sections:
            data = {name: data[name] for name in sections}
        return cfg.dump_data(data)

    @contextlib.contextmanager
    def edit_provenance(self) -> Iterator[dict]:
        """Read-modify-write provenance.json under a lock (stages may run in several processes)."""
        from filelock import FileLock

        with FileLock(str(self.provenance_lock)):
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
    "manifest.parquet": "the generate stage (notebook 03)",
    "scores.parquet": "the evaluate stage (notebook 05)",
    "selection.parquet": "the select stage (notebook 04, `act2i select`)",
    "pairs.parquet": "annotate.pairs.plan_pairs (notebook 05 with pairs.enabled)",
    "select_candidates.parquet": "the select stage (notebook 04, `act2i select`)",
}


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
    fresh: bool = False,
    readonly: bool = False,
    reconfigure: bool = False,
    command: str | None = None,
    check: Callable[[cfg.Profile], None] | None = None,
) -> Run:
    """Create or resume `run_dir`; returns the Run.

    A new run takes `profile` plus `overrides`. An existing run keeps its own config.yaml: with no
    profile it is reused as it is; a profile or overrides that would change it stop with a sentence
    naming the changed keys, unless `reconfigure=True` (then config.yaml is rewritten and the keys
    are logged under `config_changes`). `readonly=True` opens an existing run and writes nothing.
    `check` is called on the resolved profile before anything is written. `command` (for example
    "act2i run --only 03") is appended to the run's history with this machine's environment.
    """
    root = Path(run_dir).expanduser().resolve()
    overrides = cfg.parse_overrides(overrides)
    paths = RunPaths(root)
    exists = paths.config_path.is_file()
    if readonly:
        if not exists:
            raise ConfigError(f"{root} is not a run (no config.yaml); check the path.")
        return Run(root, cfg.validate(cfg.load_yaml(paths.config_path) or {}, str(paths.config_path)))
    if fresh:
        wipe_run(root)
        exists = False
    if profile in (None, ""):
        if not exists:
            raise ConfigError(f"{root} is not a run yet (no config.yaml); give a profile, e.g. profile='smoke'.")
        config = cfg.validate(cfg.merge(cfg.load_yaml(paths.config_path) or {}, overrides), str(paths.config_path), overrides)
    else:
        config = cfg.load_profile(profile, overrides)
    changed = config_changes(paths, config) if exists else []
    if changed and not reconfigure:
        raise ConfigError(
            f"{root} was made with another configuration; this would change {', '.join(changed)}. Rerun without "
            "--profile and --set to keep the run as it is, or pass --reconfigure (reconfigure=True) to change it."
        )
    if check is not None:
        check(config)
    _make_folder(root)
    run = Run(root, config)
    run.changed = changed
    _write_config(run, changed)
    _record_history(run, command)
    return run


def config_changes(paths: RunPaths, config: cfg.Profile) -> list[str]:
    """The dotted keys in which `config` differs from the run's config.yaml."""
    old = cfg.load_yaml(paths.config_path) or {}
    return sorted(_diff_keys(old, config.to_dict()))


def _make_folder(root: Path) -> None:
    why = unwritable(root)
    if why:
        raise ConfigError(f"Cannot write the run directory {root} ({why}); choose a folder you can write to "
                          "with --run (or run_dir).")


def _write_config(run: Run, changed: list[str]) -> None:
    if run.config_path.is_file() and not changed:
        return
    write_text(run.config_path, cfg.dump(run.config))
    if changed:
        with run.edit_provenance() as prov:
            prov.setdefault("config_changes", []).append({"time": now(), "keys": changed})


def _diff_keys(old: Any, new: Any, prefix: str = "") -> set[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        keys = set()
        for k in old.keys() | new.keys():
            keys |= _diff_keys(old.get(k), new.get(k), f"{prefix}.{k}" if prefix else k)
        return keys
    return set() if old == new else {prefix}


def _record_history(run: Run, command: str | None) -> None:
    """Append this command and environment to the run's history; the first entry also sets `environment`.

    A notebook that opens the run in the environment of the last entry (the usual `act2i run`)
    adds nothing; an explicit command, or another machine, commit or package set, adds an entry.
    """
    env = environment()
    with run.edit_provenance() as prov:
        prov.setdefault("run", run.name)
        prov.setdefault("started", now())
        prov.setdefault("environment", env)
        prov["profile"] = run.config.name
        history = prov.setdefault("history", [])
        if command is None and history and _same_environment(history[-1]["environment"], env):
            return
        history.append({"command": command or "open_run", "started": now(), "environment": env,
                        "commit": env["git"]["commit"], "dirty": env["git"]["dirty"]})


def _same_environment(a: dict, b: dict) -> bool:
    keys = ("python", "platform", "packages", "git", "device")
    return all(a.get(k) == b.get(k) for k in keys)


def wipe_run(root: Path) -> None:
    """Delete a run directory, refusing anything that does not look like one."""
    if not root.exists():
        return
    paths = RunPaths(root)
    looks_like_run = paths.config_path.is_file() or paths.provenance_path.is_file() or not any(root.iterdir())
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
