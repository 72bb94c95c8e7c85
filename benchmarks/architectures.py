"""The paper-scale architectures with random weights, for throughput measurements without a download.

A diffusion model's speed does not depend on its weights' values, so SD-3.5 Large and FLUX.1-dev
built from their published configurations with random weights time like the real ones. Each
component is created directly on the target device in the target dtype (no slow CPU
initialisation); tokenizers come from the tiny zoo (their ids fit the real vocabularies).

    >>> pipe = build_pipeline("sd35-large", device="cuda")          # about 27 GB in bf16
    >>> transformer_parameters("sd35-large")                         # counted on the meta device
"""

from __future__ import annotations

import contextlib

# Published configurations (the models' config.json files on the Hugging Face hub).
SD35_LARGE = {
    "transformer": dict(sample_size=128, patch_size=2, in_channels=16, out_channels=16, num_layers=38, attention_head_dim=64,
                        num_attention_heads=38, joint_attention_dim=4096, caption_projection_dim=2432,
                        pooled_projection_dim=2048, pos_embed_max_size=192, qk_norm="rms_norm", dual_attention_layers=()),
    "clip_l": dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                   max_position_embeddings=77, projection_dim=768, hidden_act="quick_gelu"),
    "clip_g": dict(vocab_size=49408, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
                   max_position_embeddings=77, projection_dim=1280, hidden_act="gelu"),
    "t5": dict(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
               feed_forward_proj="gated-gelu", relative_attention_num_buckets=32),
    "vae": dict(in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
                down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4, norm_num_groups=32,
                sample_size=1024, scaling_factor=1.5305, shift_factor=0.0609, use_quant_conv=False, use_post_quant_conv=False),
    "scheduler": dict(shift=3.0),
    "published_transformer_parameters": 8.1e9,
}
FLUX1_DEV = {
    "transformer": dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
                        num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
                        axes_dims_rope=(16, 56, 56)),
    "clip_l": SD35_LARGE["clip_l"],
    "t5": SD35_LARGE["t5"],
    "vae": {**SD35_LARGE["vae"], "scaling_factor": 0.3611, "shift_factor": 0.1159},
    "scheduler": dict(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15),
    "published_transformer_parameters": 11.9e9,
}
ARCHITECTURES = {"sd35-large": SD35_LARGE, "flux1-dev": FLUX1_DEV}

# The paper profile's judges (config.json of openai/clip-vit-large-patch14, llava-hf/llava-1.5-7b-hf,
# google/owlv2-base-patch16-ensemble). Hub checkpoints: CLIP and OWLv2 in float32, LLaVA in float16.
CLIP_VIT_L14 = {
    "text": dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                 max_position_embeddings=77, hidden_act="quick_gelu"),
    "vision": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, image_size=224,
                   patch_size=14, hidden_act="quick_gelu"),
    "projection_dim": 768, "dtype": "float32", "published_parameters": 428e6,
}
LLAVA_15_7B = {
    "text": dict(model_type="llama", vocab_size=32064, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                 num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096, rms_norm_eps=1e-5),
    "vision": dict(model_type="clip_vision_model", hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                   num_attention_heads=16, image_size=336, patch_size=14, hidden_act="quick_gelu", projection_dim=768),
    "vision_feature_layer": -2, "dtype": "float16", "published_parameters": 7.06e9,
}
OWLV2_BASE = {
    "text": dict(vocab_size=49408, hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8,
                 max_position_embeddings=16),
    "vision": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, image_size=960,
                   patch_size=16),
    "projection_dim": 512, "dtype": "float32", "published_parameters": 155e6,
}
JUDGES = {"clip-vit-l14": CLIP_VIT_L14, "llava-1.5-7b": LLAVA_15_7B, "owlv2-base": OWLV2_BASE}


@contextlib.contextmanager
def shrunk():
    """The tiny configurations of `shrink_for_cpu` for a while, the published ones restored after (for tests)."""
    import copy

    tables = [*ARCHITECTURES.values(), *JUDGES.values()]
    saved = [copy.deepcopy(t) for t in tables]
    shrink_for_cpu()
    try:
        yield
    finally:
        for table, before in zip(tables, saved):
            table.clear()
            table.update(before)


def shrink_for_cpu() -> None:
    """--tiny: small configurations with the same classes and code path, to check the GPU scripts on a CPU."""
    small_text = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4}
    clip = {**SD35_LARGE["clip_l"], **small_text, "projection_dim": 32}
    t5 = {**SD35_LARGE["t5"], "d_model": 32, "d_ff": 37, "num_layers": 2, "num_heads": 4, "d_kv": 8}
    vae = {**SD35_LARGE["vae"], "block_out_channels": (8, 8, 8, 8), "norm_num_groups": 4, "layers_per_block": 1}
    FLUX1_DEV.update(
        transformer=dict(patch_size=1, in_channels=64, num_layers=2, num_single_layers=2, attention_head_dim=16,
                         num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, guidance_embeds=True,
                         axes_dims_rope=(4, 6, 6)),
        clip_l=clip, t5=t5, vae={**vae, "scaling_factor": 0.3611, "shift_factor": 0.1159},
    )
    SD35_LARGE.update(  # three layers: the last one (text stream dropped) and two the step cache can cover
        transformer=dict(sample_size=32, patch_size=2, in_channels=16, out_channels=16, num_layers=3, attention_head_dim=8,
                         num_attention_heads=4, joint_attention_dim=32, caption_projection_dim=32, pooled_projection_dim=64,
                         pos_embed_max_size=32, qk_norm="rms_norm", dual_attention_layers=()),
        clip_l=clip, clip_g=dict(clip), t5=t5, vae=vae,
    )
    small_vision = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4}
    CLIP_VIT_L14.update(text={**CLIP_VIT_L14["text"], **small_text},
                        vision={**CLIP_VIT_L14["vision"], **small_vision, "image_size": 32, "patch_size": 8}, projection_dim=32)
    LLAVA_15_7B.update(text={**LLAVA_15_7B["text"], "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                             "num_attention_heads": 4, "num_key_value_heads": 4},
                       vision={**LLAVA_15_7B["vision"], **small_vision, "image_size": 32, "patch_size": 8, "projection_dim": 32},
                       dtype="float32")
    OWLV2_BASE.update(text={**OWLV2_BASE["text"], **small_text},
                      vision={**OWLV2_BASE["vision"], **small_vision, "image_size": 32, "patch_size": 8}, projection_dim=32)


@contextlib.contextmanager
def _building(device: str, dtype):
    """Create parameters directly on `device` in `dtype`."""
    import torch

    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(before)


def _transformer(name: str):
    from diffusers import FluxTransformer2DModel, SD3Transformer2DModel

    cls = SD3Transformer2DModel if name == "sd35-large" else FluxTransformer2DModel
    return cls(**ARCHITECTURES[name]["transformer"])


def transformer_parameters(name: str) -> int:
    """Parameter count of the denoising transformer, built on the meta device (nothing allocated)."""
    import torch

    with torch.device("meta"):
        model = _transformer(name)
    return sum(p.numel() for p in model.parameters())


def build_pipeline(name: str, device: str = "cuda", dtype: str = "bfloat16"):
    """A random-weight pipeline with the exact architecture of `name` (sd35-large or flux1-dev)."""
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, StableDiffusion3Pipeline
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    from act2i_utils.tiny import clip_tokenizer, t5_tokenizer

    arch, torch_dtype = ARCHITECTURES[name], getattr(torch, dtype)
    clip_tok, t5_tok = clip_tokenizer(), t5_tokenizer(model_max_length=512)
    ids = dict(bos_token_id=clip_tok.bos_token_id, eos_token_id=clip_tok.eos_token_id, pad_token_id=clip_tok.pad_token_id)
    torch.manual_seed(0)
    with _building(device, torch_dtype):
        transformer = _transformer(name)
        vae = AutoencoderKL(**arch["vae"])
        t5 = T5EncoderModel(T5Config(**arch["t5"]))
        scheduler = FlowMatchEulerDiscreteScheduler(**arch["scheduler"])
        if name == "sd35-large":
            clip_l = CLIPTextModelWithProjection(CLIPTextConfig(**arch["clip_l"], **ids))
            clip_g = CLIPTextModelWithProjection(CLIPTextConfig(**arch["clip_g"], **ids))
            pipe = StableDiffusion3Pipeline(transformer=transformer, vae=vae, scheduler=scheduler,
                                            text_encoder=clip_l, tokenizer=clip_tok, text_encoder_2=clip_g,
                                            tokenizer_2=clip_tokenizer(), text_encoder_3=t5, tokenizer_3=t5_tok)
        else:
            clip_l = CLIPTextModel(CLIPTextConfig(**arch["clip_l"], **ids))
            pipe = FluxPipeline(transformer=transformer, vae=vae, scheduler=scheduler, text_encoder=clip_l,
                                tokenizer=clip_tok, text_encoder_2=t5, tokenizer_2=t5_tok)
    pipe.set_progress_bar_config(disable=True)
    for component in pipe.components.values():  # inference, as from_pretrained leaves them: no dropout in T5
        if isinstance(component, torch.nn.Module):
            component.eval()
    return pipe.to(device, torch_dtype)


def _image_processor(kind: str, size: int):
    """The slow (PIL) image processor where this transformers has one, else the default class."""
    import transformers

    base = {"clip": "CLIPImageProcessor", "owlv2": "Owlv2ImageProcessor"}[kind]
    cls = getattr(transformers, base + "Pil", None) or getattr(transformers, base)
    if kind == "owlv2":
        return cls(size={"height": size, "width": size})
    return cls(size={"shortest_edge": size}, crop_size={"height": size, "width": size})


def judge_parameters(name: str) -> int:
    """Parameter count of a judge model, built on the meta device."""
    import torch

    with torch.device("meta"):
        model = _judge_model(name)
    return sum(p.numel() for p in model.parameters())


def _judge_model(name: str):
    from transformers import CLIPConfig, CLIPModel, LlavaConfig, LlavaForConditionalGeneration, Owlv2Config, Owlv2ForObjectDetection

    from act2i_utils.tiny import chat_tokenizer, clip_tokenizer

    arch = JUDGES[name]
    if name == "llava-1.5-7b":
        tok = chat_tokenizer(with_image_token=True)  # its ids fit LLaVA's vocabulary; the image token is its own
        text = {**arch["text"], "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}
        config = LlavaConfig(vision_config=arch["vision"], text_config=text, image_token_index=tok.convert_tokens_to_ids("<image>"),
                             vision_feature_select_strategy="default", vision_feature_layer=arch["vision_feature_layer"],
                             projector_hidden_act="gelu")
        return LlavaForConditionalGeneration(config)
    tok = clip_tokenizer(model_max_length=arch["text"]["max_position_embeddings"])
    text = {**arch["text"], "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}
    if name == "clip-vit-l14":
        return CLIPModel(CLIPConfig(text_config=text, vision_config=arch["vision"], projection_dim=arch["projection_dim"]))
    return Owlv2ForObjectDetection(Owlv2Config(text_config=text, vision_config=arch["vision"], projection_dim=arch["projection_dim"]))


def build_judge_folder(name: str, folder, device: str = "cuda") -> str:
    """Save a random-weight judge with the exact architecture of `name` (clip-vit-l14, llava-1.5-7b,
    owlv2-base) and its processor into `folder`, loadable by the evaluate stage's judges as a local model."""
    import torch
    from transformers import CLIPProcessor, LlavaProcessor, Owlv2Processor

    from act2i_utils.tiny import CHAT_TEMPLATE, chat_tokenizer, clip_tokenizer

    arch = JUDGES[name]
    torch.manual_seed(0)
    with _building(device, getattr(torch, arch["dtype"])):
        model = _judge_model(name)
    model.eval().save_pretrained(folder)
    del model
    size = arch["vision"]["image_size"]
    if name == "llava-1.5-7b":
        processor = LlavaProcessor(image_processor=_image_processor("clip", size), tokenizer=chat_tokenizer(with_image_token=True),
                                   patch_size=arch["vision"]["patch_size"], vision_feature_select_strategy="default",
                                   num_additional_image_tokens=1, image_token="<image>", chat_template=CHAT_TEMPLATE)
    elif name == "clip-vit-l14":
        processor = CLIPProcessor(image_processor=_image_processor("clip", size), tokenizer=clip_tokenizer())
    else:
        processor = Owlv2Processor(image_processor=_image_processor("owlv2", size), tokenizer=clip_tokenizer(model_max_length=16))
    processor.save_pretrained(folder)
    return str(folder)


def sd3_flops_per_step(height: int, width: int, text_tokens: int, batch: int, config: dict | None = None) -> float:
    """Matrix-multiply FLOPs of one SD3 transformer call (one denoising step) on `batch` latents.

    Per layer and sequence: each stream's q, k, v, out and 4x MLP weights (12 d^2 multiply-adds per
    token, applied to its own tokens), plus attention scores and values over the joint sequence
    (2 T^2 d multiply-adds). A multiply-add is 2 FLOPs. Patch embedding, modulation and the final
    layer are under 1 % and left out.
    """
    cfg = config or SD35_LARGE["transformer"]
    d = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    image_tokens = (height // 8 // cfg["patch_size"]) * (width // 8 // cfg["patch_size"])
    tokens = image_tokens + text_tokens
    per_layer = 2 * (12 * d * d * tokens + 2 * tokens * tokens * d)
    return float(per_layer * cfg["num_layers"] * batch)


def flux_flops_per_step(height: int, width: int, text_tokens: int, batch: int, config: dict | None = None) -> float:
    """Matrix-multiply FLOPs of one FLUX transformer call on `batch` latents (FLUX.1-dev is
    guidance-distilled: one latent per image, no second pass for guidance).

    Double-stream blocks: each stream's q, k, v, out and 4x MLP (12 d^2 per token of that stream).
    Single-stream blocks over the joint sequence: q, k, v (3 d^2), MLP in (4 d^2) and the fused
    output projection from 5d (5 d^2), also 12 d^2 per token. Every block adds attention over the
    joint sequence (2 T^2 d multiply-adds).
    """
    cfg = config or FLUX1_DEV["transformer"]
    d = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    tokens = (height // 16) * (width // 16) + text_tokens  # 8x VAE, then 2x2 latent packing
    per_block = 2 * (12 * d * d * tokens + 2 * tokens * tokens * d)
    return float(per_block * (cfg["num_layers"] + cfg["num_single_layers"]) * batch)
