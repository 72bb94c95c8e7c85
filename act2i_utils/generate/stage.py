"""The generate-images stage: one image per (model, variant, prompt, seed), resumable, sharded.

Work is planned the same way in every process: jobs in a fixed order (model, variant, prompt,
seed), cut into batches, and batch k goes to process k mod N. A sharded run therefore makes
exactly the batches a single process would, and no image twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import Act2iError, InputError
from ..fileio import unwritable
from ..manifest import append_rows, is_valid_png, merge_manifest, prompt_hash, read_manifest, save_png
from ..models import model_identity
from ..registry import ModelSpec, resolve_spec
from ..runs import RunPaths, now, package_versions
from ..schema import KEY, PROMPTS
from .pipelines import call_kwargs, check_size, dtype_used, generate_images, is_out_of_memory, load_pipeline


@dataclass(frozen=True)
class ImageJob:
    """One image to make: its key and the prompt text it is made from."""

    model: str
    variant: str
    id: str
    seed: int
    prompt: str

    @property
    def key(self) -> tuple:
        return (self.model, self.variant, self.id, self.seed)

    @property
    def relpath(self) -> str:
        return RunPaths.image_relpath(self.model, self.variant, self.id, self.seed)


def read_prompts(run_root: Path) -> pd.DataFrame:
    paths = RunPaths(run_root)
    return PROMPTS.read(paths.require(paths.prompts_path))


def plan_jobs(prompts: pd.DataFrame, specs: list[ModelSpec], variants: list[str], seeds: list[int]) -> list[ImageJob]:
    """Every image to make, in a fixed order; the prompt text of sample 0 of each variant."""
    first = prompts[prompts["sample"] == 0]
    have = list(dict.fromkeys(first["variant"]))
    for variant in variants:
        if variant not in have:
            raise InputError(
                f"Variant '{variant}' is not among the enriched prompts (they have {', '.join(have)}); enrich with that "
                "dimension first or remove it from generate.variants."
            )
    text = first.set_index(["id", "variant"])["text"]
    ids = list(dict.fromkeys(first["id"]))
    return [ImageJob(spec.label, variant, i, int(seed), text[(i, variant)])
            for spec in specs for variant in variants for i in ids for seed in seeds]


def make_batches(jobs: list[ImageJob], batch_size: int) -> list[list[ImageJob]]:
    """Consecutive jobs of one model and variant, at most `batch_size` each."""
    batches, current = [], []
    for job in jobs:
        if current and (len(current) == batch_size or (job.model, job.variant) != (current[0].model, current[0].variant)):
            batches.append(current)
            current = []
        current.append(job)
    if current:
        batches.append(current)
    return batches


def shard(batches: list[list[ImageJob]], rank: int, world: int) -> list[list[ImageJob]]:
    return batches[rank::world]


def is_done(job: ImageJob, spec: ModelSpec, record: dict | None, run_root: Path) -> bool:
    """An image counts as made when its file is intact and was made from this prompt and these settings."""
    if record is None or record.get("prompt_hash") != prompt_hash(job.prompt):
        return False
    if record.get("source") != "imported" and not same_settings(record.get("settings"), spec):
        return False  # any setting that shapes an image changed (weights, size, steps, dtype, T5 length, ...)
    return is_valid_png(run_root / record["path"])


def same_settings(recorded: str | None, spec: ModelSpec) -> bool:
    """Whether an image's recorded settings are the spec's. A Hub model's weights count as the same
    when its commit is not known here (not in the cache) but its id is; an image recorded before
    act2i kept the weights is compared on the other settings."""
    try:
        then = json.loads(recorded or "")
    except ValueError:
        return False
    now_ = spec.settings()
    old, new = then.pop("weights", None), now_.pop("weights", None)
    if then != now_:
        return False
    return old is None or new is None or old == new or ("@" not in new and old.startswith(new + "@"))


def with_weights(spec: ModelSpec) -> ModelSpec:
    """The spec with the identity of the weights it names (checked on every run: new weights, new images)."""
    return dataclasses.replace(spec, weights=model_identity(spec.id))


def _distributed():
    """(rank, world, device, barrier, is_main) from Accelerate, or a single process."""
    try:
        from accelerate import PartialState
    except ImportError:  # pragma: no cover - accelerate is a dependency
        return 0, 1, None, lambda: None, True
    state = PartialState()
    return state.process_index, state.num_processes, state.device, state.wait_for_everyone, state.is_main_process


def run(run, progress: bool = True, pipelines: dict | None = None) -> pd.DataFrame:
    """Generate every missing image of the run; returns the merged manifest.

    `pipelines` maps a model's label to a pipeline already in memory (for example a random-weight
    paper-scale build from `benchmarks/architectures.py`), used instead of loading one.

    Example:
        >>> manifest = generate.run(open_run("runs/demo", "smoke"))
        >>> manifest[["model", "variant", "id", "seed", "path"]].head()
    Run on several GPUs with `accelerate launch -m act2i_utils.cli generate --run runs/demo`.
    """
    from ..runs import resolve_device

    cfg = run.config.generate
    rank, world, acc_device, barrier, is_main = _distributed()
    device = resolve_device(run.config.device) if world == 1 else str(acc_device)
    if cfg.cpu_threads and device == "cpu":
        import torch

        torch.set_num_threads(cfg.cpu_threads)  # CPU kernels split work by thread count: fix it in every process
    modes = tuple((k, getattr(cfg, k)) for k in OUTPUT_MODES if getattr(cfg, k))  # these change the pixels
    specs = []
    for index, entry in enumerate(cfg.models):
        if entry.external:
            continue  # images made elsewhere (import-images): nothing to make or load
        spec = dataclasses.replace(_as_used(resolve_spec(entry), device), output_modes=modes)
        check_size(spec, index)  # one sentence before any model loads
        specs.append(with_weights(spec))
    jobs = plan_jobs(read_prompts(run.root), specs, cfg.variants, cfg.seeds)
    _check_writable(run.images)
    records = {tuple(r[k] for k in KEY): r for r in read_manifest(run.root).to_dict("records")}
    by_label = {s.label: s for s in specs}
    todo = [j for j in jobs if not is_done(j, by_label[j.model], records.get(j.key), run.root)]
    barrier()  # every process has planned from the same files before any image is written
    stage = run.stage("generate") if is_main else contextlib.nullcontext()
    with stage:
        for spec in specs:
            mine = shard(make_batches([j for j in todo if j.model == spec.label], cfg.batch_size), rank, world)
            if mine:
                _generate_model(run, spec, mine, device, cfg, part=f"rank{rank}", progress=progress and is_main,
                                pipe=(pipelines or {}).get(spec.label))
        barrier()
        manifest = merge_manifest(run.root) if is_main else None
    barrier()
    return manifest if manifest is not None else read_manifest(run.root)


OUTPUT_MODES = ("fp8", "step_cache")  # generate options that change images: part of each image's settings


def _as_used(spec: ModelSpec, device: str) -> ModelSpec:
    """The spec with the dtype the device really runs (recorded in the manifest and compared on resume)."""
    used = dtype_used(spec, device)
    if used != spec.dtype:
        warnings.warn(f"{spec.label}: {spec.dtype} on the CPU is slow and partly unsupported; using float32.", stacklevel=3)
    return dataclasses.replace(spec, dtype=used)


def _check_writable(folder: Path) -> None:
    why = unwritable(folder)
    if why:
        raise Act2iError(f"Cannot write images to {folder} ({why}); choose a run directory you can write to.")


def _generate_model(run, spec: ModelSpec, batches: list[list[ImageJob]], device: str, cfg, part: str, progress: bool,
                    pipe=None) -> None:
    from ..progress import progress_bar

    given = pipe is not None
    pipe = pipe if given else load_pipeline(spec, device=device, options=cfg, run=run)
    spec = with_weights(spec)  # a Hub model downloaded just now: its commit is known from here on
    kwargs = call_kwargs(pipe, spec)
    versions = json.dumps(package_versions(("torch", "diffusers", "transformers", "act2i")), sort_keys=True)
    size = {"batch": cfg.batch_size}
    groups: dict[str, list[list[ImageJob]]] = {}
    for batch in batches:
        groups.setdefault(batch[0].variant, []).append(batch)
    try:
        for variant, variant_batches in groups.items():
            total = sum(len(b) for b in variant_batches)
            with progress_bar(total=total, desc=f"{spec.label} / {variant}", unit="img", disable=not progress) as bar:
                for batch in variant_batches:
                    for chunk, images, seconds in _run_batch(pipe, batch, kwargs, size):
                        rows = [_save(run.root, job, image, spec, seconds / len(chunk), versions)
                                for job, image in zip(chunk, images)]
                        append_rows(run.root, part, rows)
                        bar.update(len(chunk))
    finally:
        if not given:  # a pipeline passed in stays the caller's
            del pipe
            _empty_cuda_cache()


def _run_batch(pipe, batch: list[ImageJob], kwargs: dict, size: dict):
    """Yield (jobs, images, seconds) for `batch`; on out-of-memory halve the batch size and go on."""
    start = 0
    while start < len(batch):
        chunk = batch[start:start + size["batch"]]
        t0 = time.perf_counter()
        try:
            images = generate_images(pipe, [j.prompt for j in chunk], [j.seed for j in chunk], kwargs)
        except Exception as err:  # noqa: BLE001 - only out-of-memory is handled here
            if not is_out_of_memory(err):
                raise
            _empty_cuda_cache()
            if size["batch"] == 1:
                raise Act2iError(
                    "Out of memory even at batch size 1; set generate.cpu_offload, generate.vae_tiling "
                    "or a smaller height and width in the profile."
                ) from None
            size["batch"] //= 2
            warnings.warn(f"Out of memory: batch size lowered to {size['batch']} for the rest of this run.", stacklevel=2)
            continue
        yield chunk, images, time.perf_counter() - t0
        start += len(chunk)


def settings_json(spec: ModelSpec) -> str:
    return json.dumps(spec.settings(), sort_keys=True)


def _save(root: Path, job: ImageJob, image, spec: ModelSpec, seconds: float, versions: str) -> dict:
    settings = spec.settings()
    meta = {"model": job.model, "variant": job.variant, "id": job.id, "seed": job.seed, "prompt": job.prompt, **settings}
    content = save_png(image, root / job.relpath, meta)
    return {
        "model": job.model, "variant": job.variant, "id": job.id, "seed": job.seed, "prompt": job.prompt,
        "prompt_hash": prompt_hash(job.prompt), "path": job.relpath, "width": image.width, "height": image.height,
        "steps": spec.steps, "guidance": spec.guidance, "model_id": spec.id, "dtype": spec.dtype,
        "seconds": round(seconds, 4), "source": "generated", "versions": versions, "created": now(),
        "settings": settings_json(spec), "image_hash": content,
    }


def _empty_cuda_cache() -> None:
    """Give GPU memory back between models; a full collection only matters there (on CPU it costs ~0.25 s)."""
    import torch

    if torch.cuda.is_available():
        gc.collect()
        torch.cuda.empty_cache()


def import_images(run, folder: str | Path, mapping: str | Path, replace: bool = False) -> pd.DataFrame:
    """Bring images made elsewhere into the run's layout and manifest, all or nothing.

    `mapping` is a CSV with columns file, model, variant, id, seed (and optionally prompt);
    `file` is relative to `folder`. The prompt text defaults to the run's enriched prompts. Every
    row is checked (names that become paths, seed, prompt, a readable image) before any file is
    copied; an image already in the manifest is replaced only with `replace=True` (`--replace`).
    """
    from ..config import SAFE_NAME_RULE, is_safe_name

    folder, mapping = Path(folder), Path(mapping)
    try:
        table = pd.read_csv(mapping, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError) as err:
        raise InputError(f"{mapping}: could not be read as CSV ({err}).") from None
    needed = ["file", "model", "variant", "id", "seed"]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise InputError(f"{mapping}: missing column(s) {', '.join(missing)}; expected file, model, variant, id, seed [, prompt].")
    prompts = read_prompts(run.root) if run.prompts_path.is_file() else None
    texts = prompts[prompts["sample"] == 0].set_index(["id", "variant"])["text"] if prompts is not None else {}
    existing = set(map(tuple, read_manifest(run.root)[KEY].itertuples(index=False)))
    planned, seen = [], set()
    for number, row in enumerate(table.to_dict("records"), 1):
        where = f"{mapping}: row {number}"
        for column in ("model", "variant", "id"):
            if not is_safe_name(row[column]):
                raise InputError(f"{where}: {column} {row[column]!r} becomes part of a file name and must be {SAFE_NAME_RULE}.")
        if not row["seed"].strip().isdigit():
            raise InputError(f"{where}: seed must be a non-negative integer, got '{row['seed']}'.")
        job_key = (row["model"], row["variant"], row["id"], int(row["seed"]))
        if job_key in seen:
            raise InputError(f"{where}: the image {job_key} appears twice.")
        seen.add(job_key)
        if job_key in existing and not replace:
            raise InputError(f"{where}: the run already has the image {job_key}; pass --replace (replace=True) to overwrite it.")
        prompt = (row.get("prompt") or "").strip() or texts.get((row["id"], row["variant"]))
        if not prompt:
            raise InputError(f"{where}: no prompt for id '{row['id']}' variant '{row['variant']}'; add a prompt column or run the enrich stage first.")
        planned.append((ImageJob(*job_key, prompt), _read_image(folder / row["file"], where)))
    versions = json.dumps(package_versions(("act2i",)))
    rows = []
    for job, (image, source) in planned:
        content = save_png(image, run.root / job.relpath, {**dict(zip(KEY, job.key)), "prompt": job.prompt,
                                                            "source": "imported", "original": str(source)})
        rows.append({
            "model": job.model, "variant": job.variant, "id": job.id, "seed": job.seed, "prompt": job.prompt,
            "prompt_hash": prompt_hash(job.prompt), "path": job.relpath, "width": image.width, "height": image.height,
            "steps": None, "guidance": None, "model_id": "external", "dtype": None, "seconds": None,
            "source": "imported", "versions": versions, "created": now(), "settings": None, "image_hash": content,
        })
    append_rows(run.root, "import", rows)
    note = outside_config(run, [job for job, _ in planned])
    if note:
        warnings.warn(note, stacklevel=2)
    return merge_manifest(run.root)


def outside_config(run, jobs: list[ImageJob]) -> str | None:
    """One sentence on the imported images that no stage will use, and how to include them (None if all count)."""
    cfg = run.config.generate
    models = {m.label: m for m in cfg.models}
    ids = set(pd.read_parquet(run.benchmark_path, columns=["id"])["id"]) if run.benchmark_path.is_file() else None
    found: dict[str, list] = {"model": [], "seed": [], "variant": [], "id": []}
    outside = 0
    for job in jobs:
        model = models.get(job.model)
        misses = [("model", job.model) if model is None else None,
                  ("seed", job.seed) if model is not None and not model.external and job.seed not in cfg.seeds else None,
                  ("variant", job.variant) if job.variant not in cfg.variants else None,
                  ("id", job.id) if ids is not None and job.id not in ids else None]
        misses = [m for m in misses if m]
        outside += bool(misses)
        for kind, value in misses:
            if value not in found[kind]:
                found[kind].append(value)
    if not outside:
        return None
    where = {"model": "generate.models", "seed": "generate.seeds", "variant": "generate.variants", "id": "the benchmark"}
    reasons, advice = [], []
    for kind in ("seed", "model", "variant", "id"):
        values = found[kind]
        if values:
            shown = ", ".join(repr(v) if isinstance(v, str) else str(v) for v in values[:3]) + (", ..." if len(values) > 3 else "")
            noun = {"id": "prompt id"}.get(kind, kind)
            reasons.append(f"{noun}{'s' if len(values) > 1 else ''} {shown} {'are' if len(values) > 1 else 'is'} not in {where[kind]}")
    if found["model"]:
        advice.append("add " + ", ".join(f"{{model: external, name: {m}}}" for m in found["model"][:3])
                      + " to generate.models (images made elsewhere, any seeds; docs/generation.md)")
    if found["seed"]:
        advice.append("add the seeds to generate.seeds (or import them under an external model)")
    if found["variant"]:
        advice.append("add the variants to generate.variants")
    if found["id"]:
        advice.append("import them into a run whose benchmark has those prompts")
    return (f"{outside} of the {len(jobs)} imported images fall outside the run's config ({'; '.join(reasons)}), so no "
            f"stage will use them; to include them, {' and '.join(advice)}.")


def _read_image(source: Path, where: str):
    from PIL import Image

    try:
        with Image.open(source) as img:
            return img.convert("RGB"), source
    except (OSError, ValueError) as err:
        raise InputError(f"{where}: cannot read image {source} ({type(err).__name__}); check the file name.") from None
