"""One way to load any model: a Hugging Face id, a local folder, or `tiny:NAME`.

Every stage loads through `load_model`, so a model that cannot be loaded always ends in
one sentence saying what was tried and what to do, never a hub traceback, and every model
a run uses is recorded in its provenance with an id and revision or a content hash.

    >>> from diffusers import AutoPipelineForText2Image
    >>> pipe = load_model("tiny:sd3", AutoPipelineForText2Image.from_pretrained, what="text-to-image pipeline")
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, TypeVar

from .errors import Act2iError, ModelLoadError

T = TypeVar("T")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(frozen=True)
class ModelSource:
    """Where a model reference points: what `from_pretrained` receives and how to pin it."""

    ref: str  # as written in the profile
    location: str  # a folder or a Hugging Face id, passed to from_pretrained
    kind: str  # "tiny" | "local" | "hub"
    revision: str | None = None  # hub commit, when known
    content_hash: str | None = None  # sha256 over a local folder's files

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_model(ref: str, revision: str | None = None) -> ModelSource:
    """Decide what `ref` names, without loading anything."""
    if not isinstance(ref, str) or not ref.strip():
        raise ModelLoadError(f"A model reference must be a non-empty string, got {ref!r}.")
    if ref.startswith("tiny:"):
        from .tiny import tiny_path

        folder = tiny_path(ref.removeprefix("tiny:"))
        return ModelSource(ref, str(folder), "tiny", content_hash=folder_hash(folder))
    path = Path(ref).expanduser()
    if path.is_dir():
        return ModelSource(ref, str(path.resolve()), "local", content_hash=folder_hash(path))
    looks_like_path = ref.startswith((".", "/", "~")) or os.sep * 2 in ref or ref.count("/") > 1
    if looks_like_path or not _HUB_ID.match(ref):
        raise ModelLoadError(
            f"Model '{ref}' is neither a local folder nor a Hugging Face id (org/name); "
            "check the path, or give an id such as stabilityai/stable-diffusion-3.5-large."
        )
    return ModelSource(ref, ref, "hub", revision=revision)


def model_identity(ref: str) -> str:
    """What a model's outputs depend on: the content hash of a local or tiny folder, the cached
    commit of a hub model (its id when not cached yet). Caches of model answers are keyed on it."""
    source = resolve_model(ref)
    if source.content_hash:
        return f"sha256:{source.content_hash}"
    revision = hub_revision(ref)
    return f"{ref}@{revision}" if revision else ref


def check_reference(ref: str) -> None:
    """What `resolve_model` checks, without building a tiny model: one sentence when `ref` cannot name a model."""
    if isinstance(ref, str) and ref.startswith("tiny:"):
        from .tiny import BUILDERS

        if ref.removeprefix("tiny:") not in BUILDERS:
            raise ModelLoadError(f"Unknown tiny model '{ref}'; known: {', '.join('tiny:' + n for n in BUILDERS)}.")
        return
    resolve_model(ref)


def folder_hash(folder: str | Path) -> str:
    """sha256 over the relative paths and contents of every file in `folder`."""
    folder = Path(folder).resolve()
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    digest = hashlib.sha256()
    for path in files:
        stat = path.stat()
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(_file_hash(str(path), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino).encode())
    return digest.hexdigest()


@functools.lru_cache(maxsize=4096)
def _file_hash(path: str, size: int, mtime_ns: int, ctime_ns: int, inode: int) -> str:
    """Content hash of one file; memoised on its path and status so reloads cost nothing. The status
    change time is part of the key: any write sets it, and no one can set it back (mtime can be)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def hub_revision(repo_id: str, revision: str | None = None) -> str | None:
    """The commit of a hub model as cached locally (None when not cached)."""
    try:
        from huggingface_hub.constants import HF_HUB_CACHE
    except ImportError:
        return None
    if revision and re.fullmatch(r"[0-9a-f]{40}", revision):
        return revision
    ref_file = Path(HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}" / "refs" / (revision or "main")
    try:
        return ref_file.read_text().strip() or None
    except OSError:
        return None


def load_model(
    ref: str,
    loader: Callable[..., T],
    *,
    what: str = "model",
    revision: str | None = None,
    run=None,
    **kwargs,
) -> T:
    """Load `ref` with `loader(location, **kwargs)` (a `from_pretrained`), explaining any failure.

    Args:
        ref: a Hugging Face id, a local folder, or `tiny:NAME`.
        loader: usually a class's `from_pretrained`.
        what: what the model is for, used in messages ("text-to-image pipeline").
        revision: a hub branch, tag or commit to pin.
        run: a `runs.Run`; when given, the model is recorded in its provenance.
    """
    source = resolve_model(ref, revision)
    if source.kind == "hub" and revision:
        kwargs.setdefault("revision", revision)
    try:
        with _quiet_loading():
            model = loader(source.location, **kwargs)
    except Act2iError:
        raise
    except Exception as err:  # noqa: BLE001 - every library error becomes one sentence
        raise ModelLoadError(explain_load_failure(source, what, err)) from err
    if source.kind == "hub":
        source = ModelSource(ref, source.location, "hub", revision=hub_revision(ref, revision))
    if run is not None:
        run.record_model(source, what)
    return model


@contextlib.contextmanager
def _quiet_loading():
    """Hide the per-load progress bars and torchvision-fallback notices of the HF libraries."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    diffusers_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
        diffusers_logging.enable_progress_bar()


def _chain(err: BaseException):
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def explain_load_failure(source: ModelSource, what: str, err: Exception) -> str:
    """One sentence: what was tried, why it failed, what to do."""
    names = {type(e).__name__ for e in _chain(err)}
    text = " ".join(str(e) for e in _chain(err)).lower()
    detail = _first_line(err)
    if source.kind in ("local", "tiny"):
        return (
            f"Could not load {what} from the local folder {source.location} ({type(err).__name__}: {detail}); "
            f"check that the folder holds a complete {what} saved with save_pretrained, or give another path."
        )
    repo = source.location
    if "GatedRepoError" in names or "gated" in text or "awaiting a review" in text:
        return (
            f"Could not load {what} '{repo}': the model is gated; accept its licence at "
            f"https://huggingface.co/{repo}, run `hf auth login`, then try again (or give a local folder)."
        )
    offline = {"OfflineModeIsEnabled", "LocalEntryNotFoundError", "ConnectionError", "ConnectTimeout", "ConnectError"}
    if names & offline or "offline" in text or "connect" in text or "couldn't connect" in text:
        return (
            f"Could not load {what} '{repo}': it is not in the local Hugging Face cache and the hub cannot be reached "
            f"(HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', 'unset')}); download it on a connected machine with "
            f"`hf download {repo}` or point the profile at a local folder."
        )
    if "RepositoryNotFoundError" in names or "401" in text or "not a valid model identifier" in text:
        return (
            f"Could not load {what} '{repo}': no such model on the Hugging Face hub, or it is private; check the id, "
            f"run `hf auth login` if it is private, or give a local folder."
        )
    if "RevisionNotFoundError" in names:
        return f"Could not load {what} '{repo}': the revision does not exist; check the branch, tag or commit."
    return (
        f"Could not load {what} '{repo}' ({type(err).__name__}: {detail}); download it with "
        f"`hf download {repo}` or give a local folder that holds it."
    )


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    line = lines[0] if lines else type(err).__name__
    return line if len(line) <= 200 else line[:197] + "..."
