"""The text-to-image model registry (data/models.yaml) and how a profile entry resolves against it.

A core module: the generate stage makes images from its specs, the enrich stage counts tokens
with the same models' tokenizers, and the analysis asks whether a run's models had random weights.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass
from pathlib import Path

import yaml

from .errors import ModelLoadError

DATA = Path(__file__).parent / "data" / "models.yaml"
FALLBACK_STEPS = 30  # for an id outside the registry that the profile gives no steps for


@dataclass(frozen=True)
class ModelSpec:
    """Everything the generate stage needs to know about one T2I model."""

    label: str  # short name used in paths: images/<label>/...
    id: str  # Hugging Face id, local folder or tiny:NAME
    family: str | None
    steps: int
    guidance: float | None  # None: the pipeline's default
    height: int | None
    width: int | None
    dtype: str
    max_sequence_length: int | None
    licence: str | None
    output_modes: tuple = ()  # opt-in generate options that change images, e.g. (("fp8", True),)
    weights: str | None = None  # models.model_identity: a folder's content hash, a Hub model's commit

    def settings(self) -> dict:
        """Every value that shapes an image, the weights included: recorded with each image, compared on resume."""
        out = {"model_id": self.id, "steps": self.steps, "guidance": self.guidance, "height": self.height,
               "width": self.width, "dtype": self.dtype, "max_sequence_length": self.max_sequence_length}
        weights = {"weights": self.weights} if self.weights else {}
        return {**out, **dict(self.output_modes), **weights}


@functools.lru_cache(maxsize=None)
def registry() -> dict[str, dict]:
    return yaml.safe_load(DATA.read_text(encoding="utf-8"))


def list_models() -> list[str]:
    return list(registry())


def resolve_spec(entry) -> ModelSpec:
    """Merge a profile entry (`config.T2IModel`) over the registry's defaults for its model."""
    known = registry()
    base = known.get(entry.model)
    if base is None:
        base = next((spec for spec in known.values() if spec["id"] == entry.model), None)
    if base is None and not _loadable_reference(entry.model):
        close = difflib.get_close_matches(entry.model, list(known), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ModelLoadError(
            f"Unknown model '{entry.model}'{hint}; use a registry key ({', '.join(known)}), "
            "a Hugging Face id such as org/name, a local folder, or tiny:NAME."
        )
    base = base or {}
    label = entry.label
    return ModelSpec(
        label=label,
        id=base.get("id", entry.model),
        family=base.get("family"),
        steps=entry.steps or base.get("steps") or FALLBACK_STEPS,
        guidance=entry.guidance if entry.guidance is not None else base.get("guidance"),
        height=entry.height or base.get("height"),
        width=entry.width or base.get("width"),
        dtype=entry.dtype or base.get("dtype") or "float16",
        max_sequence_length=entry.max_sequence_length or base.get("max_sequence_length"),
        licence=base.get("licence"),
    )


def _loadable_reference(ref: str) -> bool:
    from .models import resolve_model

    if ref.startswith("tiny:"):
        return True
    try:
        resolve_model(ref)
    except ModelLoadError:
        return False
    return "/" in ref or Path(ref).expanduser().is_dir()


def random_weights(models) -> bool:
    """True when any of these profile entries is a tiny random-weight model (results must say so)."""

    def tiny(entry) -> bool:
        if getattr(entry, "external", False):
            return False
        try:
            return resolve_spec(entry).id.startswith("tiny:")
        except ModelLoadError:
            return entry.model.startswith("tiny:")

    return any(tiny(m) for m in models)
