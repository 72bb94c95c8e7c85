"""Loading a text-to-image pipeline, applying the profile's memory and speed options, and
calling it on a batch with one seeded generator per image."""

from __future__ import annotations

import inspect
import warnings

from ..errors import Act2iError
from ..registry import ModelSpec


def torch_dtype(name: str):
    import torch

    try:
        return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]
    except KeyError:
        raise Act2iError(f"Unknown dtype '{name}'; use float32, float16 or bfloat16.") from None


def dtype_used(spec: ModelSpec, device: str) -> str:
    """The dtype the model really runs in: half precision on a CPU runs as float32 (no fast kernels)."""
    return spec.dtype if device != "cpu" or spec.dtype == "float32" else "float32"


def load_pipeline(spec: ModelSpec, *, device: str, options, run=None):
    """Load `spec` through AutoPipelineForText2Image and the shared loader, ready to call."""
    from diffusers import AutoPipelineForText2Image

    from ..models import load_model

    dtype = dtype_used(spec, device)
    if dtype != spec.dtype:
        warnings.warn(f"{spec.label}: {spec.dtype} on the CPU is slow and partly unsupported; using float32.", stacklevel=2)
    pipe = load_model(spec.id, AutoPipelineForText2Image.from_pretrained, what="text-to-image pipeline",
                      run=run, dtype=torch_dtype(dtype))
    pipe.set_progress_bar_config(disable=True)
    apply_options(pipe, options, device)
    return pipe


def denoiser(pipe):
    """The pipeline's denoising network: a transformer (SD3, FLUX, PixArt) or a UNet."""
    return getattr(pipe, "transformer", None) or getattr(pipe, "unet", None)


def apply_options(pipe, options, device: str) -> None:
    """Memory and speed options from the profile's `generate` section."""
    import torch

    if options.cpu_offload and device.startswith("cuda"):
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    if options.vae_slicing:
        pipe.vae.enable_slicing()
    if options.vae_tiling:
        pipe.vae.enable_tiling()
    net = denoiser(pipe)
    if options.fuse_qkv:
        if not hasattr(net, "fuse_qkv_projections"):
            raise Act2iError(f"generate.fuse_qkv is set, but {type(net).__name__} cannot fuse its projections; unset it.")
        net.fuse_qkv_projections()
    if options.attention_backend:
        try:
            net.set_attention_backend(options.attention_backend)
        except Exception as err:  # noqa: BLE001 - an unavailable kernel library
            raise Act2iError(
                f"Attention backend '{options.attention_backend}' is not available here ({err}); "
                "unset generate.attention_backend or install the kernel it needs."
            ) from None
    if options.compile:
        compiled = torch.compile(net, fullgraph=False)
        setattr(pipe, "transformer" if getattr(pipe, "transformer", None) is not None else "unet", compiled)


def call_kwargs(pipe, spec: ModelSpec) -> dict:
    """Arguments every call shares: steps, guidance, size and, where taken, the T5 length."""
    kwargs = {"num_inference_steps": spec.steps}
    if spec.guidance is not None:
        kwargs["guidance_scale"] = spec.guidance
    if spec.height and spec.width:
        kwargs.update(height=spec.height, width=spec.width)
    accepted = inspect.signature(pipe.__call__).parameters
    if spec.max_sequence_length and "max_sequence_length" in accepted:
        kwargs["max_sequence_length"] = spec.max_sequence_length
    return kwargs


def generate_images(pipe, prompts: list[str], seeds: list[int], kwargs: dict):
    """One image per (prompt, seed); each image's noise comes from its own CPU generator,
    so it depends on its seed alone, not on the batch it shares or the device."""
    import torch

    generators = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
    with torch.inference_mode():
        return pipe(prompt=list(prompts), generator=generators, **kwargs).images


def is_out_of_memory(err: BaseException) -> bool:
    import torch

    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()
