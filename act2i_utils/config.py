"""Profiles: `configs/<profile>.yaml`, typed, validated once, with overrides on top.

A profile names every model, sampling setting, seed and size of a study. `load_profile`
reads one, applies overrides (`{"generate": {"steps": 4}}` or `["generate.steps=4"]`) and
validates the result against the dataclasses below. Any problem stops with one sentence
that names the file (or the override), the key and what is expected.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .errors import ConfigError
from .typed import Invalid, build, join, non_empty, non_negative, positive, spec, unit_interval

SAFE_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$")  # names that become path parts
SEED_LIMIT = 2**32  # seeds are 32-bit: numpy, random and torch all take them
DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def is_safe_name(name) -> bool:
    """Letters, digits, `.`, `_` and `-`, no leading dot, at most 100 characters: safe as a path part."""
    return isinstance(name, str) and SAFE_NAME.match(name) is not None


SAFE_NAME_RULE = "letters, digits, '.', '_' and '-' only, not starting with a dot, at most 100 characters"


def _seed(v) -> bool:
    return 0 <= v < SEED_LIMIT


def _seeds(v) -> bool:
    return len(v) > 0 and all(0 <= s < SEED_LIMIT for s in v)


def _names(v) -> bool:
    return len(v) > 0 and all(is_safe_name(n) for n in v)


def _name(v) -> bool:
    return is_safe_name(v)


SEED = dict(expect=f"an integer from 0 to {SEED_LIMIT - 1}", check=_seed)


def _overlap(v) -> bool:
    return 1 <= v <= 100


def _rate(v) -> bool:
    return 0 <= v < 1


def _code(v) -> bool:
    return re.fullmatch(r"[A-Za-z0-9_-]{1,64}", v) is not None


def _param(v) -> bool:
    return re.fullmatch(r"[A-Za-z0-9_-]{1,64}", v) is not None

REPO_ROOT = Path(__file__).resolve().parent.parent


# --- the schema ------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchmarkConfig:
    agents: str = "animals"  # animals | people | a folder with actions.yaml and agents.csv
    n_per_action: int = spec(5, expect="a positive integer", check=positive)
    seed: int = spec(0, **SEED)  # the same seed gives the same 125 prompts
    source: str | None = None  # import this prompt file instead of building one


@dataclass(frozen=True)
class EnrichConfig:
    backend: Literal["kb", "transformers", "openai", "source"] = "kb"  # source: the benchmark file's own rewrites
    fallback_backend: Literal["kb", "transformers", "openai"] | None = None  # for what `source` lacks
    model: str | None = None  # Hugging Face id, local folder or tiny:NAME (transformers, openai)
    dimensions: list[str] = spec(
        factory=lambda: ["spatial", "emotional", "temporal"],
        expect=f"a non-empty list of dimension names ({SAFE_NAME_RULE})",
        check=_names,
    )
    custom_dimensions: dict[str, str] = field(default_factory=dict)  # name -> instruction
    n_samples: int = spec(1, expect="a positive integer", check=positive)
    temperature: float = spec(0.7, expect="a number >= 0", check=non_negative)
    top_p: float = spec(0.9, expect="a number in (0, 1]", check=unit_interval)
    max_new_tokens: int = spec(256, expect="a positive integer", check=positive)
    batch_size: int = spec(8, expect="a positive integer", check=positive)
    max_retries: int = spec(2, expect="an integer >= 0", check=non_negative)
    seed: int = spec(0, **SEED)
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    device_map: str | None = None  # e.g. "auto" to spread a large LLM over GPUs
    base_url: str | None = None  # OpenAI-compatible server, e.g. http://localhost:8000/v1
    api_key_env: str = "OPENAI_API_KEY"  # the key is read from this variable, never stored
    concurrency: int = spec(8, expect="a positive integer", check=positive)
    timeout_s: float = spec(120.0, expect="a positive number", check=positive)


EXTERNAL = "external"  # a model entry whose images were made elsewhere (`act2i import-images`), never loaded
EXTERNAL_UNUSED = ("steps", "guidance", "height", "width", "dtype", "max_sequence_length")


@dataclass(frozen=True)
class T2IModel:
    model: str = spec(expect="a string: a registry key, Hugging Face id, local folder, tiny:NAME or external")
    name: str | None = spec(None, expect=f"a name ({SAFE_NAME_RULE})", check=_name)  # label in paths and figures
    steps: int | None = spec(None, expect="a positive integer", check=positive)
    guidance: float | None = spec(None, expect="a number >= 0", check=non_negative)
    height: int | None = spec(None, expect="a positive integer", check=positive)
    width: int | None = spec(None, expect="a positive integer", check=positive)
    dtype: Literal["float16", "bfloat16", "float32"] | None = None
    max_sequence_length: int | None = spec(None, expect="a positive integer", check=positive)

    @property
    def external(self) -> bool:
        """Images made elsewhere (a closed model): imported with any seeds, never generated or loaded."""
        return self.model == EXTERNAL

    @property
    def label(self) -> str:
        """The short name used in paths and figures: `name`, else the last part of `model`."""
        if self.name:
            return self.name
        return self.model.replace("tiny:", "tiny-").rstrip("/").split("/")[-1]


@dataclass(frozen=True)
class GenerateConfig:
    models: list[T2IModel] = spec(expect="a non-empty list of models", check=non_empty)
    variants: list[str] = spec(factory=lambda: ["base", "spatial", "emotional", "temporal"],
                               expect=f"a non-empty list of variant names ({SAFE_NAME_RULE})", check=_names)
    seeds: list[int] = spec(factory=lambda: [42], expect=f"a non-empty list of integers from 0 to {SEED_LIMIT - 1}",
                            check=_seeds)
    batch_size: int = spec(1, expect="a positive integer", check=positive)
    cpu_offload: bool = False
    vae_slicing: bool = False
    vae_tiling: bool = False
    attention_backend: str | None = None  # diffusers' name, e.g. "_native_cudnn", "_flash_3", "sage"; None keeps the default
    compile: bool = False  # torch.compile the denoiser (the same as compile_mode: default)
    cpu_threads: int | None = spec(None, expect="a positive integer or null", check=positive)  # the same in every process
    fuse_qkv: bool = False  # fuse the attention's q, k, v projections into one matmul (SD3: +22 % on an H200)
    # Output-preserving speed-ups (benchmarks/README.md measures each, with its pixel difference):
    compile_mode: Literal["default", "max-autotune"] | None = None  # torch.compile the denoiser; max-autotune tunes its matmuls
    compile_scope: Literal["model", "blocks"] = "model"  # blocks: compile the repeated transformer block once for all layers
    compile_cache_dir: str | None = None  # inductor's graph and autotune cache; null: $ACT2I_CACHE/inductor, kept across runs
    cuda_graphs: bool = False  # replay the compiled denoiser as CUDA graphs (needs compile_mode, CUDA only)
    # Opt-in modes that CHANGE the images (never in the paper profile):
    fp8: bool = False  # float8 matmuls in the denoiser (torchao, a GPU of compute capability 8.9+)
    step_cache: float | None = spec(None, expect="a positive number or null", check=positive)  # diffusers' first-block cache threshold, e.g. 0.05-0.2

    def made_here(self) -> list[T2IModel]:
        """The models this run generates with (not the external ones)."""
        return [m for m in self.models if not m.external]


@dataclass(frozen=True)
class EvaluateConfig:
    metrics: list[str] = field(default_factory=lambda: ["clipscore", "vqa", "detection", "action_clip"])
    clip_model: str = "openai/clip-vit-large-patch14"
    vqa_model: str = "llava-hf/llava-1.5-7b-hf"
    detector_model: str = "google/owlv2-base-patch16-ensemble"
    reference_model: str = "facebook/dinov2-base"
    reference_dir: str | None = None  # folder of real frames per action, e.g. from Animal Kingdom
    batch_size: int = spec(16, expect="a positive integer", check=positive)
    detection_threshold: float = spec(0.1, expect="a number in (0, 1]", check=unit_interval)
    # geo_topology: boxes "touch" when their gap is at most this share of their size
    contact_tolerance: float = spec(0.1, expect="a number >= 0", check=non_negative)
    # PickScore_v1 ships no processor of its own: its model card takes the one of the CLIP it was tuned from
    pickscore_model: str = "yuvalkirstain/PickScore_v1"
    pickscore_processor: str | None = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"  # null: the model's own folder
    # vlm_api: a vision-language judge behind an OpenAI-compatible server (vLLM, SGLang, ...); docs/judges.md
    vlm_api_model: str = "Qwen/Qwen3-VL-8B-Instruct"  # the name the server serves it under
    vlm_api_base_url: str | None = None  # e.g. http://localhost:8000/v1
    vlm_api_key_env: str = "OPENAI_API_KEY"  # the key is read from this variable, never stored
    vlm_api_concurrency: int = spec(8, expect="a positive integer", check=positive)
    vlm_api_timeout_s: float = spec(60.0, expect="a positive number", check=positive)
    vlm_api_max_retries: int = spec(4, expect="an integer >= 0", check=non_negative)
    vlm_api_top_logprobs: int = spec(20, expect="a positive integer", check=positive)  # OpenAI and vLLM allow 20
    vlm_api_samples: int = spec(10, expect="a positive integer", check=positive)  # answers sampled without logprobs
    # merged into every request, e.g. {chat_template_kwargs: {enable_thinking: false}} for a thinking model on vLLM
    vlm_api_extra_body: dict[str, Any] = field(default_factory=dict)
    vlm_api_system_prompt: str | None = None  # a system message before each question


@dataclass(frozen=True)
class AnnotateConfig:
    """The human study. `overlap` and `seed` apply to both modes; the rest to a crowd study
    (`act2i annotate serve --study`: workers from a platform's study link, docs/annotation.md)."""

    overlap: int = spec(3, expect="an integer from 1 to 100", check=_overlap)  # people per image (the paper: 25)
    seed: int = spec(0, **SEED)
    batch_size: int = spec(20, expect="a positive integer", check=positive)  # images per crowd worker, gold included
    gold_rate: float = spec(0.1, expect="a number from 0 to less than 1", check=_rate)  # share of each batch that is gold
    gold_file: str | None = None  # CSV: image, prompt, expected (accept/reject), optional id and kind (gold/attention)
    max_gold_errors: int = spec(1, expect="an integer >= 0", check=non_negative)  # more wrong gold answers: excluded
    min_seconds: float = spec(2.0, expect="a number >= 0", check=non_negative)  # a median time per image below: flagged
    consent_file: str | None = None  # the consent text (plain text; blank lines separate paragraphs)
    examples_file: str | None = None  # CSV of worked examples: image, prompt, label, explanation (default: two in words)
    completion_code: str | None = spec(None, expect="1-64 letters, digits, '-' or '_'", check=_code)  # default: made once per study
    completion_url: str | None = None  # where a finished worker goes, "{code}" filled in (e.g. Prolific's completion URL)
    participant_param: str | None = spec(None, expect="a query parameter name (letters, digits, '_', '-')",
                                         check=_param)  # for platforms other than Prolific and MTurk


@dataclass(frozen=True)
class AnalyzeConfig:
    # auto: people when they judged most images, prediction-powered (ppi) when they judged fewer than
    # half and the judge scored all, the judge alone when there are no people
    acceptance_source: Literal["auto", "human", "judge", "ppi"] = "auto"
    judge_metric: str = "vqa"  # the automatic metric that stands in for people
    judge_threshold: float = 0.5  # accept when the judge's value is at least this
    judge_quantile: float | None = spec(None, expect="a number in (0, 1] or null", check=unit_interval)
    # judge_quantile, when set, replaces the threshold by that quantile of the judge's values (for
    # random-weight smoke runs, whose judges have no meaningful absolute scale)
    n_bootstrap: int = spec(2000, expect="a positive integer", check=positive)
    confidence: float = spec(0.95, expect="a number in (0, 1]", check=unit_interval)
    seed: int = spec(0, **SEED)


SELECT_POLICIES = ("best_dimension", "per_label", "best_of_all")
SELECT_LABELS = ("emotional_valence", "spatial_topology", "temporal_extent")


@dataclass(frozen=True)
class SelectConfig:
    """The select stage (issue 21): per prompt, the rewrite and image a judge expects to be accepted.

    Candidates are every (variant or rewrite sample) x seed image; `judge_metric` scores them. The
    seeds in `selection_seeds` are the ones the judge sees when choosing; the rest of generate.seeds
    are held out: a choice made on the selection seeds is applied to them. The first policy makes
    the variant `selected` (and `selected_k<k>` for each seed budget k below the full one); each
    other policy makes `selected_<policy>`.
    """

    enabled: bool = False
    judge_metric: str = "soft_tifa_gm"  # any metric of evaluate's judges; higher is better
    policies: list[Literal["best_dimension", "per_label", "best_of_all"]] = spec(
        factory=lambda: ["best_dimension", "per_label", "best_of_all"],
        expect=f"a non-empty list of distinct policies ({', '.join(SELECT_POLICIES)})",
        check=lambda v: len(v) > 0 and len(set(v)) == len(v))
    selection_seeds: list[int] | None = spec(None, expect=f"a non-empty list of integers from 0 to {SEED_LIMIT - 1} or null",
                                             check=_seeds)  # null: the first half of generate.seeds (at least one)
    budgets: list[int] = spec(factory=lambda: [1, 2, 4], expect="a list of positive integers",
                              check=lambda v: all(k > 0 for k in v))  # seed budgets k (selected_k<k>)
    rewrite_samples: bool = True  # with enrich.n_samples > 1, rewrite samples 1.. are candidates too (this stage makes their images)
    labels: list[Literal["emotional_valence", "spatial_topology", "temporal_extent"]] = spec(
        factory=lambda: list(SELECT_LABELS), expect=f"a non-empty list of labels ({', '.join(SELECT_LABELS)})", check=non_empty)
    folds: int = spec(5, expect="an integer >= 2", check=lambda v: v >= 2)  # per_label: cross-fitting folds over prompts
    seed: int = spec(0, **SEED)  # the fold assignment
    # one round of refinement (Idea2Img style): where no candidate reaches refine_threshold, the VQA judge's
    # failed atoms go to the enrichment LLM (enrich.backend or fallback_backend: transformers or openai)
    refine: bool = False
    refine_threshold: float = 0.5  # a candidate passes when the selection judge's value reaches this

    def seeds(self, generate_seeds: list[int]) -> tuple[list[int], list[int]]:
        """(selection seeds, held-out seeds), each in the order of generate.seeds."""
        chosen = self.selection_seeds
        if chosen is None:
            chosen = generate_seeds[:max(1, len(generate_seeds) // 2)]
        return ([s for s in generate_seeds if s in chosen], [s for s in generate_seeds if s not in chosen])

    def budget_list(self, generate_seeds: list[int]) -> list[int]:
        """The seed budgets below the full one (each makes a variant `selected_k<k>`)."""
        full = len(generate_seeds) if self.policies[0] == "best_of_all" else len(self.seeds(generate_seeds)[0])
        return sorted({k for k in self.budgets if k < full})

    def variants(self, generate_seeds: list[int]) -> list[str]:
        """The variants this stage writes into the manifest, in order."""
        if not self.enabled:
            return []
        return (["selected"] + [f"selected_k{k}" for k in self.budget_list(generate_seeds)]
                + [f"selected_{p}" for p in self.policies[1:]])


@dataclass(frozen=True)
class PairsConfig:
    """Side-by-side comparisons (issue 27): image pairs of one prompt, judged by people
    (`act2i annotate serve --pairs`) and by a VLM in both orders, ranked with Bradley-Terry."""

    enabled: bool = False
    by: Literal["model", "variant"] = "model"  # what the pairs compare; the other stays the same in a pair
    per_prompt: int = spec(2, expect="a positive integer", check=positive)  # pairs drawn per prompt
    seed: int = spec(0, **SEED)
    judge: Literal["auto", "vqa", "vlm_api", "none"] = "auto"  # auto: vlm_api when evaluate.metrics has it, else vqa


@dataclass(frozen=True)
class Profile:
    name: str
    generate: GenerateConfig
    description: str = ""
    device: str = spec("auto", expect="auto, cpu, cuda, cuda:N or mps", check=lambda v: DEVICE.match(v) is not None)
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    enrich: EnrichConfig = field(default_factory=EnrichConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    annotate: AnnotateConfig = field(default_factory=AnnotateConfig)
    analyze: AnalyzeConfig = field(default_factory=AnalyzeConfig)
    select: SelectConfig = field(default_factory=SelectConfig)  # disabled unless enabled
    pairs: PairsConfig = field(default_factory=PairsConfig)  # disabled unless enabled

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def model_refs(self) -> list[str]:
        """Every model this profile may load, in stage order."""
        llm = {self.enrich.backend, self.enrich.fallback_backend} & {"transformers", "openai"}
        refs = [self.enrich.model] if llm and self.enrich.model else []
        refs += [m.model for m in self.generate.made_here()]
        ev = self.evaluate
        refs += [ev.clip_model, ev.vqa_model, ev.detector_model, ev.reference_model]
        if "pickscore" in ev.metrics:
            refs += [ev.pickscore_model] + ([ev.pickscore_processor] if ev.pickscore_processor else [])
        return refs


def _cross_checks(p: Profile) -> list[tuple[str, str]]:
    """Rules that span fields: (key, message) for each one broken."""
    problems = []
    for key in ("backend", "fallback_backend"):
        value = getattr(p.enrich, key)
        if value in ("transformers", "openai") and not p.enrich.model:
            problems.append(("enrich.model", f"must name a model when enrich.{key} is '{value}'"))
        if value == "openai" and not p.enrich.base_url:
            problems.append(("enrich.base_url", f"must be set when enrich.{key} is 'openai'"))
    reserved = sorted(set(p.evaluate.vlm_api_extra_body) & {"model", "messages", "max_tokens", "temperature", "logprobs",
                                                             "top_logprobs", "n", "seed"})
    if reserved:
        problems.append(("evaluate.vlm_api_extra_body", f"sets {', '.join(reserved)}, which the judge sets itself; "
                                                        "use evaluate.vlm_api_top_logprobs or leave them out"))
    for key, url in (("enrich.base_url", p.enrich.base_url), ("evaluate.vlm_api_base_url", p.evaluate.vlm_api_base_url)):
        if url and not url.lower().startswith(("http://", "https://")):
            problems.append((key, f"is '{url}', which must begin with http:// or https:// (e.g. http://{url.split('://')[-1]})"))
    if "vlm_api" in p.evaluate.metrics and not p.evaluate.vlm_api_base_url:
        problems.append(("evaluate.vlm_api_base_url", "must be set when evaluate.metrics names vlm_api "
                                                      "(the server's URL, e.g. http://localhost:8000/v1)"))
    local_vqa = p.analyze.judge_metric == "vqa" or p.analyze.judge_metric.startswith("vqa_")
    if "vlm_api" in p.evaluate.metrics and "vqa" not in p.evaluate.metrics and local_vqa:
        problems.append(("analyze.judge_metric", f"is '{p.analyze.judge_metric}', which the local vqa judge writes, but "
                                                 f"evaluate.metrics names vlm_api, which writes api_{p.analyze.judge_metric} "
                                                 "(t2v_metrics' reading for a served model, docs/judges.md); set "
                                                 f"analyze.judge_metric to api_{p.analyze.judge_metric} or soft_tifa_gm"))
    if p.enrich.backend == "source" and not p.benchmark.source:
        problems.append(("enrich.backend", "is 'source', which takes the rewrites of an imported prompt set; set benchmark.source"))
    if p.enrich.backend == "source" and p.enrich.n_samples != 1:
        problems.append(("enrich.n_samples", "must be 1 with enrich.backend 'source' (a file carries one rewrite per dimension)"))
    for i, m in enumerate(p.generate.models):
        if m.external and not m.name:
            problems.append((f"generate.models[{i}]", "is an external model (images made elsewhere, brought in by "
                                                      "act2i import-images); give it a name: the model column of the "
                                                      "import mapping, e.g. {model: external, name: dall-e-3}"))
        for key in EXTERNAL_UNUSED if m.external else ():
            if getattr(m, key) is not None:
                problems.append((f"generate.models[{i}].{key}", "is set, but an external model makes no images here; "
                                                                "leave it out"))
    names = [m.label for m in p.generate.models]
    for i, name in enumerate(names):
        if not is_safe_name(name):
            problems.append((f"generate.models[{i}]", f"makes the name '{name}', which must be {SAFE_NAME_RULE}; give it a `name:`"))
    unknown = [v for v in p.generate.variants if v != "base" and v not in p.enrich.dimensions]
    if unknown:
        problems.append(("generate.variants", f"names {', '.join(unknown)}, which enrich.dimensions does not make "
                                              f"({', '.join(['base', *p.enrich.dimensions])}); add the dimension or fix the name"))
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        problems.append(("generate.models", f"must have distinct names; give each a `name:` ({', '.join(dupes)} repeat)"))
    if len(set(p.generate.seeds)) != len(p.generate.seeds):
        problems.append(("generate.seeds", "must not repeat a seed"))
    repeated = sorted({v for v in p.generate.variants if p.generate.variants.count(v) > 1})
    if repeated:
        problems.append(("generate.variants", f"must not repeat a variant ({', '.join(repeated)} repeats)"))
    outside = [s for s in (p.select.selection_seeds or []) if s not in p.generate.seeds]
    if outside:
        problems.append(("select.selection_seeds", f"names seed(s) {', '.join(map(str, outside))} that generate.seeds does not "
                                                   "make; choose among generate.seeds"))
    if p.pairs.enabled:
        systems = [m.label for m in p.generate.models] if p.pairs.by == "model" else p.generate.variants
        if len(systems) < 2:
            problems.append(("pairs.by", f"is '{p.pairs.by}', but the profile has only {len(systems)} "
                                         f"{'model' if p.pairs.by == 'model' else 'variant'}; compare two or more, set "
                                         "pairs.by to the other, or set pairs.enabled to false"))
    a = p.annotate
    if a.completion_url and "{code}" not in a.completion_url:
        problems.append(("annotate.completion_url", "must hold {code} where the completion code goes "
                                                    "(e.g. https://app.prolific.com/submissions/complete?cc={code})"))
    if a.completion_url and not a.completion_url.startswith(("https://", "http://")):
        problems.append(("annotate.completion_url", "must be an http(s) URL"))
    if round(a.batch_size * a.gold_rate) >= a.batch_size:
        problems.append(("annotate.gold_rate", f"leaves no study image in a batch of {a.batch_size}; lower it"))
    return problems


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
        parsed = parse_yaml(items, "the overrides")
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
        flat[key.strip()] = parse_yaml(raw, f"override '{item}'") if raw.strip() else None
    return nest(flat)


def nest(flat: dict) -> dict:
    """`{"generate.steps": 4}` -> `{"generate": {"steps": 4}}`."""
    nested: dict = {}
    for key, value in flat.items():
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
        key = join(prefix, str(k))
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
        profile = build(Profile, data)
    except Invalid as bad:
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


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(f"the key '{key}' appears twice in one mapping (line {key_node.start_mark.line + 1}); "
                                  "keep one")
            seen.add(key)
        return super().construct_mapping(node, deep)


def parse_yaml(text: str, where: str) -> Any:
    """YAML text to data, refusing duplicate keys; problems are one sentence naming `where`."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}.") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML{at} ({problem}).") from None


def load_yaml(path: Path) -> Any:
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}.") from None
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


def dump_data(data: dict) -> str:
    """YAML for reading in a notebook: keys in schema order, short lists on one line."""

    class Dumper(yaml.SafeDumper):
        pass

    def short_lists(dumper, value):
        flow = len(value) <= 8 and all(isinstance(v, (str, int, float, bool)) for v in value)
        return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)

    Dumper.add_representer(list, short_lists)
    return yaml.dump(data, Dumper=Dumper, sort_keys=False, allow_unicode=True)
