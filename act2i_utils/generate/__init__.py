"""Image generation: any diffusers text-to-image model, deterministic per image, batched, resumable."""

from ..registry import ModelSpec, list_models, resolve_spec
from .stage import import_images, make_batches, plan_jobs, run, shard

__all__ = ["ModelSpec", "import_images", "list_models", "make_batches", "plan_jobs", "resolve_spec", "run", "shard"]
