"""Profiles: `configs/<profile>.yaml`, typed, validated once, with overrides on top.

A profile names every model, sampling setting, seed and size of a study. `load_profile`
reads one, applies overrides (`{"generate": {"steps": 4}}` or `["generate.steps=4"]`) and
validates the result against the dataclasses below. Any problem stops with one sentence
that names the file (or the override), the key and what is expected.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from .errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent


def _spec(default=dataclasses.MISSING, *, expect: str | None = None, check=None, factory=None):
    """A dataclass field with an optional value check and its wording for error messages."""
    meta = {"expect": expect, "check": check}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def _positive(v) -> bool:
    return v > 0


def _non_negative(v) -> bool:
    return v >= 0


def _unit_interval(v) -> bool:
    return 0 < v <= 1


def _non_empty(v) -> bool:
    return len(v) > 0


# --- the schema ------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchmarkConfig:
    agents: str = "animals"  # animals | people | a folder with actions.yaml and agents.yaml
    n_per_action: int = _spec(5, expect="a positive integer", check=_positive)
    seed: int = 0  # the same seed gives the same 125 prompts
    source: str | None = None  # import this prompt file instead of building one


@dataclass(frozen=True)
class EnrichConfig:
    backend: Literal["kb", "transformers", "openai"] = "kb"
    model: str | None = None  # Hugging Face id, local folder or tiny:NAME (not used by kb)
    dimensions: list[str] = _spec(
        factory=lambda: ["spatial", "emotional", "temporal"],
        expect="a non-empty list of dimension names",
        check=_non_empty,
    )
    custom_dimensions: dict[str, str] = field(default_factory=dict)  # name -> instruction
    n_samples: int = _spec(1, expect="a positive integer", check=_positive)
    temperature: float = _spec(0.7, expect="a number >= 0", check=_non_negative)
    top_p: float = _spec(0.9, expect="a number in (0, 1]", check=_unit_interval)
    max_new_tokens: int = _spec(256, expect="a positive integer", check=_positive)
    batch_size: int = _spec(8, expect="a positive integer", check=_positive)
    max_retries: int = _spec(2, expect="an integer >= 0", check=_non_negative)
    seed: int = 0
    dtype: str = "auto"  # auto | float32 | float16 | bfloat16
    device_map: str | None = None  # e.g. "auto" to spread a large LLM over GPUs
    base_url: str | None = None  # OpenAI-compatible server, e.g. http://localhost:8000/v1
    api_key_env: str = "OPENAI_API_KEY"  # the key is read from this variable, never stored
    concurrency: int = _spec(8, expect="a positive integer", check=_positive)
    timeout_s: float = _spec(120.0, expect="a positive number", check=_positive)


@dataclass(frozen=True)
class T2IModel:
    model: str = _spec(expect="a string: a registry key, Hugging Face id, local folder or tiny:NAME")
    name: str | None = None  # label in paths and figures; defaults to a short form of `model`
    steps: int | None = _spec(None, expect="a positive integer", check=_positive)
    guidance: float | None = _spec(None, expect="a number >= 0", check=_non_negative)
    height: int | None = _spec(None, expect="a positive integer", check=_positive)
    width: int | None = _spec(None, expect="a positive integer", check=_positive)
    dtype: str | None = None  # float16 | bfloat16 | float32
    max_sequence_length: int | None = _spec(None, expect="a positive integer", check=_positive)


@dataclass(frozen=True)
class GenerateConfig:
    models: list[T2IModel] = _spec(expect="a non-empty list of models", check=_non_empty)
    variants: list[str] = field(default_factory=lambda: ["base", "spatial", "emotional", "temporal"])
    seeds: list[int] = _spec(factory=lambda: [42], expect="a non-empty list of integers", check=_non_empty)
    batch_size: int = _spec(1, expect="a positive integer", check=_positive)
    cpu_offload: bool = False
    vae_slicing: bool = False
    vae_tiling: bool = False
    attention_backend: str | None = None  # e.g. "flash", "sage"; None keeps the default
    compile: bool = False  # torch.compile the denoiser
    fuse_qkv: bool = False  # fuse the attention's q, k, v projections into one matmul (SD3: +22 % on an H200)


@dataclass(frozen=True)
class EvaluateConfig:
    metrics: list[str] = field(default_factory=lambda: ["clipscore", "vqa", "detection", "action_clip"])
    clip_model: str = "openai/clip-vit-large-patch14"
    vqa_model: str = "llava-hf/llava-1.5-7b-hf"
    detector_model: str = "google/owlv2-base-patch16-ensemble"
    reference_model: str = "facebook/dinov2-base"
    reference_dir: str | None = None  # folder of real frames per action, e.g. from Animal Kingdom
    batch_size: int = _spec(16, expect="a positive integer", check=_positive)
    detection_threshold: float = _spec(0.1, expect="a number in (0, 1]", check=_unit_interval)


@dataclass(frozen=True)
class AnnotateConfig:
    overlap: int = _spec(3, expect="a positive integer", check=_positive)  # annotators per image
    seed: int = 0


@dataclass(frozen=True)
class AnalyzeConfig:
    acceptance_source: Literal["auto", "human", "judge"] = "auto"  # auto: people if the run has answers, else the judge
    judge_metric: str = "vqa"  # the automatic metric that stands in for people
    judge_threshold: float = 0.5  # accept when the judge's value is at least this
    judge_quantile: float | None = _spec(None, expect="a number in (0, 1] or null", check=_unit_interval)
    # judge_quantile, when set, replaces the threshold by that quantile of the judge's values (for
    # random-weight smoke runs, whose judges have no meaningful absolute scale)
    n_bootstrap: int = _spec(2000, expect="a positive integer", check=_positive)
    confidence: float = _spec(0.95, expect="a number in (0, 1]", check=_unit_interval)
    seed: int = 0
    copy_figures: bool = True  # copy the run's figures to the checkout's figures/<run>/


@dataclass(frozen=True)
class Profile:
    name: str
    generate: GenerateConfig
    description: str = ""
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    enrich: EnrichConfig = field(default_factory=EnrichConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    annotate: AnnotateConfig = field(default_factory=AnnotateConfig)
    analyze: AnalyzeConfig = field(default_factory=AnalyzeConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def model_refs(self) -> list[str]:
        """Every model this profile may load, in stage order."""
        refs = [self.enrich.model] if self.enrich.backend != "kb" and self.enrich.model else []
        refs += [m.model for m in self.generate.models]
        ev = self.evaluate
        refs += [ev.clip_model, ev.vqa_model, ev.detector_model, ev.reference_model]
        return refs

    @property
    def random_weights(self) -> bool:
        """True when the images come from tiny random-weight models (figures must say so)."""
        from .errors import Act2iError
        from .generate.registry import resolve_spec

        def tiny(entry: T2IModel) -> bool:
            try:
                return resolve_spec(entry).id.startswith("tiny:")
            except Act2iError:
                return entry.model.startswith("tiny:")

        return any(tiny(m) for m in self.generate.models)


def _cross_checks(p: Profile) -> list[tuple[str, str]]:
    """Rules that span fields: (key, message) for each one broken."""
    problems = []
    if p.enrich.backend != "kb" and not p.enrich.model:
        problems.append(("enrich.model", f"must name a model when enrich.backend is '{p.enrich.backend}'"))
    if p.enrich.backend == "openai" and not p.enrich.base_url:
        problems.append(("enrich.base_url", "must be set when enrich.backend is 'openai'"))
    names = [model_label(m) for m in p.generate.models]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        problems.append(("generate.models", f"must have distinct names; give each a `name:` ({', '.join(dupes)} repeat)"))
    if len(set(p.generate.seeds)) != len(p.generate.seeds):
        problems.append(("generate.seeds", "must not repeat a seed"))
    return problems


def model_label(m: T2IModel) -> str:
    """The short name of a T2I model used in paths: `name`, else the last part of `model`."""
    if m.name:
        return m.name
    return m.model.replace("tiny:", "tiny-").rstrip("/").split("/")[-1]


# --- validation ------------------------------------------------------------------------


class _Invalid(Exception):
    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key
        self.message = message


def _describe(tp) -> str:
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        parts = [_describe(a) for a in args if a is not type(None)]
        return " or ".join(parts) + (" or null" if type(None) in args else "")
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is list:
        return f"a list of {_plural(args[0])}"
    if origin is dict:
        return f"a mapping of names to {_plural(args[1])}"
    if dataclasses.is_dataclass(tp):
        return "a mapping with keys " + ", ".join(f.name for f in dataclasses.fields(tp))
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))


def _plural(tp) -> str:
    simple = {int: "integers", float: "numbers", str: "strings", bool: "true/false values"}
    if tp in simple:
        return simple[tp]
    if dataclasses.is_dataclass(tp):
        return "mappings with keys " + ", ".join(f.name for f in dataclasses.fields(tp))
    return f"values that are {_describe(tp)}"


def _convert(value: Any, tp, key: str) -> Any:
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(value, arg, key)
            except _Invalid:
                continue
        raise _Invalid(key, f"must be {_describe(tp)}, got {value!r}")
    if origin is Literal:
        if value in args:
            return value
        raise _Invalid(key, f"must be {_describe(tp)}, got {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise _Invalid(key, f"must be {_describe(tp)}, got {value!r}")
        return [_convert(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise _Invalid(key, f"must be {_describe(tp)}, got {value!r}")
        return {k: _convert(v, args[1], f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool) and type(value) is tp:
        return value
    raise _Invalid(key, f"must be {_describe(tp)}, got {value!r}")


def _build(cls, data: Any, prefix: str = ""):
    """Build dataclass `cls` from a mapping, rejecting unknown keys and missing values."""
    where = prefix or "the profile"
    if not isinstance(data, dict):
        raise _Invalid(prefix, f"must be {_describe(cls)}, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = get_type_hints(cls)
    for name in data:
        if name not in fields:
            close = difflib.get_close_matches(str(name), fields, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise _Invalid(_join(prefix, name), f"is not a known key of {where}{hint}; known keys: {', '.join(fields)}")
    values = {}
    for name, f in fields.items():
        key = _join(prefix, name)
        expect = f.metadata.get("expect") or _describe(hints[name])
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise _Invalid(key, f"is missing; it must be {expect}")
            continue
        try:
            value = _convert(data[name], hints[name], key)
        except _Invalid as bad:
            if bad.key == key and f.metadata.get("expect"):
                raise _Invalid(key, f"must be {expect}, got {data[name]!r}") from None
            raise
        check = f.metadata.get("check")
        if check is not None and value is not None and not check(value):
            raise _Invalid(key, f"must be {expect}, got {data[name]!r}")
        values[name] = value
    return cls(**values)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else str(name)


# --- loading and overrides -------------------------------------------------------------


def find_profile(profile: str | Path) -> Path:
    """A profile file from a path, or a name looked up in ./configs and the checkout's configs/."""
    candidate = Path(profile).expanduser()
    if candidate.suffix in (".yaml", ".yml") or candidate.is_file():
        if candidate.is_file():
            return candidate
        raise ConfigError(f"Profile file {candidate} does not exist; give a path to a YAML file or a name from configs/.")
    for folder in (Path.cwd() / "configs", REPO_ROOT / "configs"):
        path = folder / f"{profile}.yaml"
        if path.is_file():
            return path
    known = sorted({p.stem for d in (Path.cwd() / "configs", REPO_ROOT / "configs") if d.is_dir() for p in d.glob("*.yaml")})
    raise ConfigError(f"Unknown profile '{profile}'; known profiles: {', '.join(known) or 'none found'} (or give a path to a YAML file).")


def parse_overrides(items: list[str] | dict | str | None) -> dict:
    """Turn overrides into a nested dict: `key=value` strings (values parsed as YAML) or a YAML mapping."""
    if not items:
        return {}
    if isinstance(items, dict):
        return items
    if isinstance(items, str):
        parsed = yaml.safe_load(items)
        if parsed is None:
            return {}
        if not isinstance(parsed, dict):
            raise ConfigError(f"Overrides must be a YAML mapping such as 'generate: {{steps: 4}}', got {items!r}.")
        return parsed
    flat = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"Override '{item}' must look like key=value, e.g. generate.steps=4.")
        flat[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
    return nest(flat)


def nest(flat: dict, drop_none: bool = False) -> dict:
    """`{"generate.steps": 4}` -> `{"generate": {"steps": 4}}`."""
    nested: dict = {}
    for key, value in flat.items():
        if drop_none and value is None:
            continue
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"Override '{key}' sets a key inside '{part}', which another override sets to a value.")
        node[leaf] = value
    return nested


def merge(base: Any, over: Any) -> Any:
    """Deep-merge `over` into `base`; mappings merge, a numeric key indexes into a list, anything else replaces."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = merge(base.get(k), v) if k in base else v
        return out
    if isinstance(base, list) and isinstance(over, dict) and all(str(k).isdigit() for k in over):
        out = list(base)
        for k, v in over.items():
            i = int(k)
            if i >= len(out):
                raise ConfigError(f"Override index {i} is past the end of a list of {len(out)} items.")
            out[i] = merge(out[i], v)
        return out
    return over


def _flat_keys(tree: dict, prefix: str = "") -> set[str]:
    keys = set()
    for k, v in tree.items():
        key = _join(prefix, str(k))
        keys.add(key)
        if isinstance(v, dict):
            keys |= _flat_keys(v, key)
    return keys


def _normalise_key(key: str) -> str:
    """`generate.models[0].steps` -> `generate.models.0.steps`, the form overrides use."""
    return key.replace("[", ".").replace("]", "")


def validate(data: dict, source: str, overrides: dict | None = None) -> Profile:
    """Validate a profile mapping; errors name `source`, or the override that set the bad key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the profile must be a YAML mapping of sections, got {type(data).__name__}.")
    override_keys = _flat_keys(overrides or {})
    try:
        profile = _build(Profile, data)
    except _Invalid as bad:
        raise ConfigError(f"{_origin(bad.key, source, override_keys)}: '{bad.key}' {bad.message}.") from None
    for key, message in _cross_checks(profile):
        raise ConfigError(f"{_origin(key, source, override_keys)}: '{key}' {message}.")
    return profile


def _origin(key: str, source: str, override_keys: set[str]) -> str:
    norm = _normalise_key(key)
    parts = norm.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in override_keys:
            return f"{source} (override '{'.'.join(parts[:i])}')"
    return source


def load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where} ({problem}); fix the file's syntax.") from None


def load_profile(profile: str | Path, overrides: list[str] | dict | str | None = None) -> Profile:
    """Load `configs/<profile>.yaml` (or a path), apply overrides, validate, return the typed profile."""
    path = find_profile(profile)
    data = load_yaml(path) or {}
    over = parse_overrides(overrides)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the profile must be a YAML mapping of sections, got {type(data).__name__}.")
    return validate(merge(data, over), str(_display(path)), over)


def _display(path: Path) -> Path:
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def dump(profile: Profile) -> str:
    return yaml.safe_dump(profile.to_dict(), sort_keys=False, allow_unicode=True)
