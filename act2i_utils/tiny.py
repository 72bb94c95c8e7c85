"""Tiny random-weight models for tests and the smoke profile, built offline.

Each model is built from a small config with a fixed seed, saved with `save_pretrained` under
`$ACT2I_CACHE/tiny/` (default `~/.cache/act2i/tiny/`) and loaded back through the ordinary
`from_pretrained` path, exactly as a real model would be. Tokenizers are trained here on a
small built-in corpus, so nothing is fetched from the Hugging Face hub.

    >>> from act2i_utils.tiny import tiny_path
    >>> from diffusers import AutoPipelineForText2Image
    >>> pipe = AutoPipelineForText2Image.from_pretrained(tiny_path("sd3"))

Profiles name these models as `tiny:NAME` (for example `tiny:sd3`, `tiny:clip`).
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import json
import math
import os
import re
import shutil
import tempfile
from collections import Counter
from importlib import metadata
from pathlib import Path
from typing import Callable

from .cache import cache_dir
from .errors import ModelLoadError

TINY_VERSION = 2  # bump when a builder changes, so caches rebuild

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# The tokenizers' training text: the words act2i's prompts and judges use most.
_CORPUS = """
a an the of with and in on at to from by its their his her one two near far behind beside above below
a sheep attacking a boar. a goose competing for dominance with a turkey. a moose attacking a duck.
a wolf chasing a deer across the snow. a lion stalking a zebra in tall grass at dawn.
a monkey grooming a gorilla. a fox fleeing from a bear. a cat nuzzling a dog. a crow calling to an owl.
an eagle carrying a rabbit in its talons. a horse feeding a goat. an elephant play-fighting with a rhino.
a hyena, an ostrich, an otter, an iguana, an alligator, a tiger, a panda, a kangaroo, a penguin, a parrot.
a dancer twirling a partner. a cyclist overtaking a peer. a boxer punching a rival. a parent lifting a child.
in the foreground, in the background, on the left, on the right, close to the camera, low angle view.
the larger animal looms over the smaller one; the two bodies overlap; wide shot; eye level; depth.
angry, afraid, calm, playful, tense, gentle, fierce, startled, ears pinned back, teeth bared, eyes wide.
body language, raised hackles, lowered head, relaxed posture, tail up, wings spread, mouth open, snarling.
the moment of impact, mid-leap, frozen in motion, dust flying, motion blur, splashing water, a split second.
hooves, horns, claws, talons, tusks, beak, feathers, fur, scales, paws, tail, wings, antlers, mane, snout.
photo, photograph, realistic, detailed, high quality, natural light, sunlight, forest, savanna, river, field.
does this figure show a sheep attacking a boar? please answer yes or no.
Yes
No
Yes, it does.
No, it does not.
is there a dog? is there a cat? is the dog chasing the cat? is the cat chasing the dog?
here is the rewritten prompt: a tense, detailed photograph of two animals interacting.
"""


@functools.lru_cache(maxsize=None)
def _corpus_lines() -> tuple[str, ...]:
    """The built-in text plus act2i's own vocabulary (taxonomy and enrichment cue files), so the
    tiny tokenizers split act2i's prompts into roughly as many tokens as real ones do."""
    import csv

    import yaml

    package = Path(__file__).parent
    words = []  # the agents' names and the actions' templates: the words of act2i's prompts, not the data's notes
    for folder in sorted(p for p in (package / "benchmark" / "data").iterdir() if p.is_dir()):
        with open(folder / "agents.csv", newline="", encoding="utf-8") as fh:
            words += [f"a {row['name']} and {row['article']} {row['name']}" for row in csv.DictReader(fh)]
        words += [str(a.get("template", "")) for a in yaml.safe_load((folder / "actions.yaml").read_text(encoding="utf-8"))]
    cues = [f.read_text(encoding="utf-8") for f in sorted(package.glob("enrich/data/*.yaml"))]
    text = _CORPUS + "\n".join(words + cues).replace(",", " , ").replace(";", " ")
    lines = [line.strip(" -#") for line in text.splitlines() if line.strip(" -#")]
    answers = ["Yes", "No", "Yes, it does.", "No, it does not."] * 25  # the judges read one answer token
    return tuple(lines + answers) * 4


# --- tokenizers --------------------------------------------------------------------------


def _byte_symbols() -> list[str]:
    """GPT-2's printable stand-in for each of the 256 bytes, in CLIP's vocabulary order."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes, extra = list(printable), 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


_WORD = re.compile(r"\w+|[^\w\s]+")  # the Whitespace pre-tokenizer's split


def _word_counts(lowercase: bool) -> Counter:
    return Counter(w for line in _corpus_lines() for w in _WORD.findall(line.lower() if lowercase else line))


def learn_bpe(words: Counter, n_merges: int, min_frequency: int = 2) -> list[tuple[str, str]]:
    """Byte-pair merges learned from word counts, CLIP style (`</w>` ends a word).

    Our own small learner rather than the `tokenizers` trainer, whose ties between equally frequent
    pairs fall differently from process to process: here the most frequent pair wins, and among
    equals the alphabetically first, so two builds are byte-identical.
    """
    seqs = {w: tuple(w[:-1]) + (w[-1] + "</w>",) for w in words}
    counts: Counter = Counter()
    where: dict[tuple[str, str], set[str]] = {}
    for w, seq in seqs.items():
        for pair in zip(seq, seq[1:]):
            counts[pair] += words[w]
            where.setdefault(pair, set()).add(w)
    heap = [(-c, pair) for pair, c in counts.items()]
    heapq.heapify(heap)
    merges = []
    while heap and len(merges) < n_merges:
        negative, pair = heapq.heappop(heap)
        if counts.get(pair, 0) != -negative:
            continue  # a stale entry: the pair's count changed since it was pushed
        if -negative < min_frequency:
            break
        merges.append(pair)
        touched = set()
        for w in sorted(where.pop(pair, ())):
            old, new, i = seqs[w], [], 0
            while i < len(old):
                if i + 1 < len(old) and (old[i], old[i + 1]) == pair:
                    new.append(old[i] + old[i + 1])
                    i += 2
                else:
                    new.append(old[i])
                    i += 1
            for p in zip(old, old[1:]):
                counts[p] -= words[w]
                touched.add(p)
            for p in zip(new, new[1:]):
                counts[p] += words[w]
                where.setdefault(p, set()).add(w)
                touched.add(p)
            seqs[w] = tuple(new)
        for p in sorted(touched):
            if counts.get(p, 0) > 0:
                heapq.heappush(heap, (-counts[p], p))
    return merges


@functools.lru_cache(maxsize=None)
def _clip_vocab_and_merges() -> tuple[dict[str, int], tuple[tuple[str, str], ...]]:
    """A CLIP-style BPE: 256 byte symbols, the same with `</w>`, merges learned on the corpus."""
    byte_chars = _byte_symbols()
    vocab: dict[str, int] = {}
    for token in byte_chars + [c + "</w>" for c in byte_chars]:
        vocab.setdefault(token, len(vocab))
    merges = []
    for a, b in learn_bpe(_word_counts(lowercase=True), n_merges=2900):
        if a in vocab and b in vocab and a + b not in vocab:
            merges.append((a, b))
            vocab[a + b] = len(vocab)
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    return vocab, tuple(merges)


def clip_tokenizer(model_max_length: int = 77):
    from transformers import CLIPTokenizer

    vocab, merges = _clip_vocab_and_merges()
    return CLIPTokenizer(vocab=dict(vocab), merges=list(merges), model_max_length=model_max_length)


@functools.lru_cache(maxsize=None)
def _t5_pieces(size: int = 1500) -> tuple[tuple[str, float], ...]:
    """A T5-style Unigram vocabulary: every character and the most frequent word pieces (`▁` marks a
    word start), scored by log frequency. Built by counting, not by EM training, so it is the same
    in every build."""
    words = Counter("▁" + w for w in _word_counts(lowercase=False).elements())
    pieces: Counter = Counter()
    for word, n in words.items():
        for i in range(len(word)):
            for j in range(i + 1, min(len(word), i + 8) + 1):
                pieces[word[i:j]] += n
    chars = sorted({c for word in words for c in word})
    whole = sorted((w for w in words if len(w) > 1), key=lambda w: (-words[w], w))[:size // 2]  # frequent words whole
    taken = set(chars) | set(whole)
    parts = sorted((p for p in pieces if p not in taken), key=lambda p: (-pieces[p] * len(p), p))
    chosen = chars + whole + parts[:max(size - 3 - len(chars) - len(whole), 0)]
    count = {p: max(pieces[p], words[p]) for p in chosen}  # pieces counts substrings of up to 8 characters
    total = sum(count.values())
    specials = (("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0))
    return specials + tuple((p, round(math.log(count[p] / total), 6)) for p in chosen)


def t5_tokenizer(model_max_length: int = 256):
    from transformers import T5Tokenizer

    return T5Tokenizer(vocab=list(_t5_pieces()), extra_ids=0, model_max_length=model_max_length)


@functools.lru_cache(maxsize=None)
def _chat_bpe_json() -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=2000, min_frequency=2, show_progress=False,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(_corpus_lines(), trainer)
    return bpe.to_str()


def chat_tokenizer(with_image_token: bool = False):
    """A byte-level BPE with a ChatML chat template (and `<image>` for the VLM)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    kwargs = {"extra_special_tokens": {"image_token": "<image>"}} if with_image_token else {}
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_chat_bpe_json()),
        eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=CHAT_TEMPLATE,
        model_max_length=2048, padding_side="left", **kwargs,
    )


# --- shared configs ----------------------------------------------------------------------


def _clip_text_config(projection_dim: int = 32, **extra) -> dict:
    tok = clip_tokenizer()
    base = dict(
        vocab_size=len(tok), hidden_size=32, intermediate_size=37, num_attention_heads=4,
        num_hidden_layers=2, max_position_embeddings=77, projection_dim=projection_dim,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    return {**base, **extra}


def _vision_config() -> dict:
    return dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                image_size=32, patch_size=8, projection_dim=32)


def _clip_image_processor():
    from transformers import CLIPImageProcessorPil

    return CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})


def _seeded(build: Callable):
    import torch

    torch.manual_seed(0)
    return build()


def _clip_text_encoder(with_projection: bool):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cls = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    return _seeded(lambda: cls(CLIPTextConfig(**_clip_text_config())))


def _t5_encoder():
    from transformers import T5Config, T5EncoderModel

    tok = t5_tokenizer()
    cfg = T5Config(vocab_size=len(tok), d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                   pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, decoder_start_token_id=0)
    return _seeded(lambda: T5EncoderModel(cfg))


def _vae(blocks: tuple[int, ...], latent_channels: int, groups: int, flow: bool):
    from diffusers import AutoencoderKL

    n = len(blocks)
    extra = dict(use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035) if flow else {}
    return _seeded(lambda: AutoencoderKL(
        block_out_channels=blocks, in_channels=3, out_channels=3, latent_channels=latent_channels,
        down_block_types=["DownEncoderBlock2D"] * n, up_block_types=["UpDecoderBlock2D"] * n,
        norm_num_groups=groups, layers_per_block=1, sample_size=32, **extra,
    ))


# --- builders: each writes one model folder ----------------------------------------------


def _build_sd(out: Path) -> None:
    from diffusers import PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel

    unet = _seeded(lambda: UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, attention_head_dim=2, norm_num_groups=4,
    ))
    pipe = StableDiffusionPipeline(
        unet=unet, vae=_vae((8, 16), 4, 4, flow=False), text_encoder=_clip_text_encoder(False),
        tokenizer=clip_tokenizer(), scheduler=PNDMScheduler(skip_prk_steps=True, steps_offset=1),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(out)


def _build_sdxl(out: Path) -> None:
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

    unet = _seeded(lambda: UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=64, attention_head_dim=(2, 4), norm_num_groups=4, use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=8, projection_class_embeddings_input_dim=80,
    ))
    pipe = StableDiffusionXLPipeline(
        unet=unet, vae=_vae((8, 16), 4, 4, flow=False),
        text_encoder=_clip_text_encoder(False), tokenizer=clip_tokenizer(),
        text_encoder_2=_clip_text_encoder(True), tokenizer_2=clip_tokenizer(),
        scheduler=EulerDiscreteScheduler(steps_offset=1),
    )
    pipe.save_pretrained(out)


def _build_sd3(out: Path) -> None:
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

    transformer = _seeded(lambda: SD3Transformer2DModel(
        sample_size=32, patch_size=1, in_channels=4, out_channels=4, num_layers=1, attention_head_dim=8,
        num_attention_heads=4, caption_projection_dim=32, joint_attention_dim=32, pooled_projection_dim=64,
    ))
    pipe = StableDiffusion3Pipeline(
        transformer=transformer, vae=_vae((4,), 4, 1, flow=True), scheduler=FlowMatchEulerDiscreteScheduler(),
        text_encoder=_clip_text_encoder(True), tokenizer=clip_tokenizer(),
        text_encoder_2=_clip_text_encoder(True), tokenizer_2=clip_tokenizer(),
        text_encoder_3=_t5_encoder(), tokenizer_3=t5_tokenizer(),
    )
    pipe.save_pretrained(out)


def _build_flux(out: Path) -> None:
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    transformer = _seeded(lambda: FluxTransformer2DModel(
        patch_size=1, in_channels=4, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=[4, 4, 8],
    ))
    pipe = FluxPipeline(
        transformer=transformer, vae=_vae((4,), 1, 1, flow=True), scheduler=FlowMatchEulerDiscreteScheduler(),
        text_encoder=_clip_text_encoder(False), tokenizer=clip_tokenizer(),
        text_encoder_2=_t5_encoder(), tokenizer_2=t5_tokenizer(),
    )
    pipe.save_pretrained(out)


def _build_llm(out: Path) -> None:
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    tok = chat_tokenizer()
    cfg = Qwen2Config(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True,
        bos_token_id=tok.convert_tokens_to_ids("<|im_start|>"), eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = _seeded(lambda: Qwen2ForCausalLM(cfg))
    model.generation_config = GenerationConfig(eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model.save_pretrained(out)
    tok.save_pretrained(out)


def _build_clip(out: Path) -> None:
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor

    cfg = CLIPConfig(text_config=_clip_text_config(), vision_config=_vision_config(), projection_dim=32)
    _seeded(lambda: CLIPModel(cfg)).save_pretrained(out)
    CLIPProcessor(image_processor=_clip_image_processor(), tokenizer=clip_tokenizer()).save_pretrained(out)


def _build_owlv2(out: Path) -> None:
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessorPil, Owlv2Processor

    text = _clip_text_config(max_position_embeddings=16)
    cfg = Owlv2Config(text_config=text, vision_config=_vision_config(), projection_dim=32)
    _seeded(lambda: Owlv2ForObjectDetection(cfg)).save_pretrained(out)
    processor = Owlv2Processor(
        image_processor=Owlv2ImageProcessorPil(size={"height": 32, "width": 32}),
        tokenizer=clip_tokenizer(model_max_length=16),
    )
    processor.save_pretrained(out)


def _build_dinov2(out: Path) -> None:
    from transformers import BitImageProcessorPil, Dinov2Config, Dinov2Model

    cfg = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                       image_size=32, patch_size=8)
    _seeded(lambda: Dinov2Model(cfg)).save_pretrained(out)
    BitImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(out)


def _build_vlm(out: Path) -> None:
    from transformers import GenerationConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    tok = chat_tokenizer(with_image_token=True)
    image_id = tok.convert_tokens_to_ids("<image>")
    text = dict(model_type="llama", vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    vision = {k: v for k, v in _vision_config().items() if k != "projection_dim"}
    cfg = LlavaConfig(vision_config=dict(model_type="clip_vision_model", **vision), text_config=text,
                      image_token_index=image_id, vision_feature_select_strategy="default",
                      vision_feature_layer=-1, projector_hidden_act="gelu")
    model = _seeded(lambda: LlavaForConditionalGeneration(cfg))
    model.generation_config = GenerationConfig(eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model.save_pretrained(out)
    processor = LlavaProcessor(
        image_processor=_clip_image_processor(), tokenizer=tok, patch_size=8,
        vision_feature_select_strategy="default", num_additional_image_tokens=1,
        image_token="<image>", chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(out)


def _build_pickscore(out: Path) -> None:
    """A stand-in for PickScore_v1: a CLIP model with its own seed and PickScore's logit scale (about 100)."""
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor

    cfg = CLIPConfig(text_config=_clip_text_config(), vision_config=_vision_config(), projection_dim=32,
                     logit_scale_init_value=math.log(100.0))
    torch.manual_seed(1)  # not tiny:clip's weights
    CLIPModel(cfg).save_pretrained(out)
    CLIPProcessor(image_processor=_clip_image_processor(), tokenizer=clip_tokenizer()).save_pretrained(out)


def _bert_tokenizer():
    """A WordPiece tokenizer (BERT's, lower case) over the corpus's words, for Grounding DINO's text side."""
    from transformers import BertTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = [w for w in sorted(_word_counts(lowercase=True)) if w not in specials]
    return BertTokenizerFast(vocab={w: i for i, w in enumerate(specials + words)}, do_lower_case=True)


def _build_grounding_dino(out: Path) -> None:
    from transformers import (GroundingDinoConfig, GroundingDinoForObjectDetection, GroundingDinoImageProcessorPil,
                              GroundingDinoProcessor)

    tok = _bert_tokenizer()
    cfg = GroundingDinoConfig(
        backbone_config=dict(model_type="swin", image_size=32, patch_size=4, embed_dim=8, depths=[1, 1], num_heads=[1, 1],
                             window_size=2, out_features=["stage1", "stage2"]),
        text_config=dict(model_type="bert", vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=16, max_position_embeddings=64),
        d_model=32, encoder_layers=1, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=32, decoder_ffn_dim=32, num_queries=10, num_feature_levels=2, encoder_n_points=2,
        decoder_n_points=2, max_text_len=32, use_timm_backbone=False, use_pretrained_backbone=False,
    )  # d_model: a multiple of 32 (GroupNorm); decoder_layers >= 2 (the box heads are tied from the second on)
    _seeded(lambda: GroundingDinoForObjectDetection(cfg)).save_pretrained(out)
    image_processor = GroundingDinoImageProcessorPil(size={"shortest_edge": 32, "longest_edge": 32})
    GroundingDinoProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(out)


BUILDERS: dict[str, Callable[[Path], None]] = {
    "sd": _build_sd,
    "sdxl": _build_sdxl,
    "sd3": _build_sd3,
    "flux": _build_flux,
    "llm": _build_llm,
    "clip": _build_clip,
    "owlv2": _build_owlv2,
    "dinov2": _build_dinov2,
    "vlm": _build_vlm,
    "pickscore": _build_pickscore,
    "grounding_dino": _build_grounding_dino,
}

DESCRIPTIONS = {
    "sd": "Stable Diffusion 1.x pipeline (UNet, CLIP text encoder), 64 px",
    "sdxl": "Stable Diffusion XL pipeline (two CLIP text encoders), 64 px",
    "sd3": "Stable Diffusion 3 pipeline (MMDiT, two CLIPs and T5), 32 px",
    "flux": "FLUX.1 pipeline (Flux transformer, CLIP and T5), 32 px",
    "llm": "chat LLM (Qwen2 architecture) with a ChatML chat template",
    "clip": "CLIP image-text model with its processor",
    "owlv2": "OWLv2 open-vocabulary detector with its processor",
    "dinov2": "DINOv2 image encoder with its processor",
    "vlm": "LLaVA vision-language model that answers questions about an image",
    "pickscore": "PickScore-style CLIP preference model (logit scale 100) with its processor",
    "grounding_dino": "Grounding DINO zero-shot detector (Swin, BERT) with its processor",
}


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "none"


def _cache_key(name: str) -> str:
    versions = [_version(d) for d in ("diffusers", "transformers", "tokenizers")]
    blob = json.dumps([TINY_VERSION, name, versions, _corpus_lines()])
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def tiny_path(name: str) -> Path:
    """The folder of tiny model `name`, built on first use; safe when processes race."""
    from filelock import FileLock

    if name not in BUILDERS:
        raise ModelLoadError(f"Unknown tiny model 'tiny:{name}'; known: {', '.join('tiny:' + n for n in BUILDERS)}.")
    root = cache_dir() / "tiny"
    target = root / f"{name}-{_cache_key(name)}"
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if target.is_dir():  # another process finished while we waited
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
        try:
            _quiet_build(BUILDERS[name], tmp)
            os.rename(tmp, target)  # atomic: the folder appears complete or not at all
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _quiet_build(builder: Callable[[Path], None], out: Path) -> None:
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the torchvision fallback notices are expected here
    hf_logging.disable_progress_bar()
    try:
        builder(out)
    finally:
        hf_logging.set_verbosity(before)
        hf_logging.enable_progress_bar()


def build_all(names: list[str] | None = None) -> dict[str, Path]:
    """Build (or find) every tiny model; returns name -> folder."""
    return {name: tiny_path(name) for name in (names or BUILDERS)}
