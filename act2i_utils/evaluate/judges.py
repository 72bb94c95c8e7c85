"""The automatic judges, all behind one interface (`Judge`). Each takes a batch of images with their
benchmark rows ("items": base_prompt, animal1, animal2, action, and where known action_template and
spatial_topology) and returns, per image, a dict of metric -> value. Keys starting with "_" are
private: detection's boxes (`_boxes`), and the judge as the scores table names it when it differs
from the model (`_judge`, the API judge's sampled answers).

A judge may also offer `derive(values, item)`: metrics computed from its cached answers (Soft-TIFA
from the VQA atoms, interaction geometry from the boxes), so that they never cost a model call, and
`applies(item)`: whether it judges that item at all (the detector needs both agents, the action
classifier a known action); an item it does not apply to gets no values and costs nothing.

| judge | metrics |
|---|---|
| clipscore | `clipscore`: 100 x max(cos, 0) between CLIP image and base-prompt embeddings (Hessel et al.) |
| action_clip | `action_rank`, `action_top1`, `action_top5`: CLIP zero-shot over the benchmark's actions |
| vqa | `vqa` and the atoms `vqa_agent1`, `vqa_agent2`, `vqa_event`, `vqa_action`, `vqa_reversed` (and, where the prompt names them, `vqa_count1/2`, `vqa_attribute1/2`): VQAScore from a local VLM as t2v_metrics computes it, exp(-mean cross-entropy of "Yes" and the end of the sequence); `soft_tifa_am`, `soft_tifa_gm`, `soft_tifa_dsg` (GenEval 2's reading) and `soft_tifa_am_renorm`, `soft_tifa_gm_renorm` (atoms.py) |
| vlm_api | `api_vqa`, `api_vqa_agent1`, ...: t2v_metrics' reading for a served model (the exact token "Yes" among the top log-probabilities), and the same Soft-TIFA metrics, from a VLM behind an OpenAI-compatible server (api.py) |
| detection | `det_agent1`, `det_agent2` (best score), `det_both` (both above the threshold); `geo_*` (geometry.py) |
| pickscore | `pickscore`: PickScore's logit_scale x cos between image and base prompt (Kirstain et al. 2023) |
| reference | `ref_similarity`: DINOv2 cosine to the centroid of real frames of the action |
"""

from __future__ import annotations

import hashlib
import math
import re
import warnings
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ..models import load_model, model_identity
from .atoms import NO_MASS, SOFT_TIFA, SOFT_TIFA_RENORM, YES_MASS, soft_tifa
from .geometry import interaction_geometry
from .questions import NO_VARIANTS, SYSTEM_MSG, YES_VARIANTS, action_caption, tifa_question, vqa_questions, with_article

VQA_QUESTIONS = ("vqa", "vqa_agent1", "vqa_agent2", "vqa_event", "vqa_action", "vqa_reversed", "vqa_count1", "vqa_count2",
                 "vqa_attribute1", "vqa_attribute2")
LOCAL_METRICS = (*VQA_QUESTIONS, *SOFT_TIFA, *SOFT_TIFA_RENORM)  # the local vqa judge's rows
API_METRICS = (*(f"api_{m}" for m in VQA_QUESTIONS), *SOFT_TIFA, *SOFT_TIFA_RENORM)  # vlm_api's: another VQAScore reading
READINGS = "t2v_metrics-ce|geneval2-sum"  # part of the cache key: a change of reading asks anew

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


@runtime_checkable
class Judge(Protocol):
    """What every judge offers: its name, the metrics it emits, the model it runs, the text that
    keys an item's judgement in the cache, and a batched `score`. Optional: `derive(values, item)`
    (metrics computed from the cached values) and `identity()` (what keys the cache: the content hash
    of the weights the judge loaded, or a served model's name; without it, the hash of what is on
    disk now)."""

    name: str
    metrics: tuple[str, ...]
    model_ref: str

    def signature(self, item: dict) -> str:
        """Everything about `item` that the judgement depends on (besides the image and the model)."""

    def score(self, images: list, items: list[dict]) -> list[dict]:
        """One dict of metric -> value per image."""


def _features(output):
    """transformers 5 returns a ModelOutput from get_*_features; older versions a tensor."""
    return output if hasattr(output, "norm") else output.pooler_output


class ClipJudge:
    """CLIP image and text embeddings, shared by clipscore and action_clip."""

    def __init__(self, model: str, device: str, run=None, processor: str | None = None, what: str = "CLIP model"):
        import torch
        from transformers import AutoProcessor, CLIPModel

        self.model_ref, self.device = model, device
        self.weights = model_identity(model)  # what it loads now, even if the folder changes later
        self.model = load_model(model, CLIPModel.from_pretrained, what=what, run=run).to(device).eval()
        self.processor = load_model(processor or model, AutoProcessor.from_pretrained, what=f"{what}'s processor")
        self._text_cache: dict[str, torch.Tensor] = {}

    def image_embeddings(self, images):
        import torch

        pixels = self.processor(images=images, return_tensors="pt")["pixel_values"].to(self.device)
        with torch.inference_mode():
            feats = _features(self.model.get_image_features(pixel_values=pixels))
        return torch.nn.functional.normalize(feats.float(), dim=-1)

    def text_embeddings(self, texts: list[str]):
        """Normalised embeddings; each distinct text is encoded once per judge."""
        import torch

        new = [t for t in dict.fromkeys(texts) if t not in self._text_cache]
        if new:
            tok = self.processor.tokenizer(new, padding=True, truncation=True, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                feats = _features(self.model.get_text_features(**tok))
            for text, feat in zip(new, torch.nn.functional.normalize(feats.float(), dim=-1)):
                self._text_cache[text] = feat
        return torch.stack([self._text_cache[t] for t in texts])


class ClipScore:
    """CLIPScore (Hessel et al. 2021) of the image against the base prompt."""

    name = "clipscore"
    metrics = ("clipscore",)

    def __init__(self, clip: ClipJudge):
        self.clip, self.model_ref = clip, clip.model_ref

    def identity(self) -> str:
        return self.clip.weights

    def signature(self, item: dict) -> str:
        return item["base_prompt"]

    def score(self, images, items):
        cos = (self.clip.image_embeddings(images) * self.clip.text_embeddings([i["base_prompt"] for i in items])).sum(-1)
        return [{"clipscore": float(100 * max(c, 0.0))} for c in cos.tolist()]


class PickScore:
    """PickScore_v1 (Kirstain et al. 2023), a CLIP model tuned on people's preferences between images:
    logit_scale.exp() x cos(image, base prompt), as its model card computes it (about 20-23 for real images)."""

    name = "pickscore"
    metrics = ("pickscore",)

    def __init__(self, model: str, device: str, processor: str | None = None, run=None):
        self.clip = ClipJudge(model, device, run=run, processor=processor, what="PickScore model")
        self.model_ref, self.processor_ref = model, processor
        self.scale = float(self.clip.model.logit_scale.detach().exp())

    def identity(self) -> str:
        return self.clip.weights

    def signature(self, item: dict) -> str:
        return f"{item['base_prompt']}|{self.processor_ref or ''}"

    def score(self, images, items):
        cos = (self.clip.image_embeddings(images) * self.clip.text_embeddings([i["base_prompt"] for i in items])).sum(-1)
        return [{"pickscore": self.scale * c} for c in cos.tolist()]


class ActionClassifier:
    """Zero-shot: which of the benchmark's actions does CLIP see, with this image's agents?"""

    name = "action_clip"
    metrics = ("action_rank", "action_top1", "action_top5")

    def __init__(self, clip: ClipJudge, actions: list[str] | dict[str, str | None]):
        """`actions`: the candidate action phrases, or phrase -> template ("{a} carrying {b} on its back")."""
        templates = actions if isinstance(actions, dict) else {a: None for a in actions}
        self.clip, self.model_ref = clip, clip.model_ref
        self.actions, self.templates = list(templates), dict(templates)

    def identity(self) -> str:
        return self.clip.weights

    def applies(self, item: dict) -> bool:
        return bool(item.get("action")) and item["action"] in self.templates

    def signature(self, item: dict) -> str:
        return "|".join([item["action"] or "", item["animal1"] or "", item["animal2"] or "", *self.actions])

    def score(self, images, items):
        image_emb = self.clip.image_embeddings(images)
        out = []
        for emb, item in zip(image_emb, items):
            if not item["action"] or item["action"] not in self.actions:
                out.append({})
                continue
            captions = [action_caption(a, item["animal1"], item["animal2"], self.templates[a]) for a in self.actions]
            sims = self.clip.text_embeddings(captions) @ emb
            rank = int((sims > sims[self.actions.index(item["action"])]).sum().item()) + 1
            out.append({"action_rank": float(rank), "action_top1": float(rank == 1), "action_top5": float(rank <= 5)})
        return out


def item_questions(item: dict) -> dict[str, str]:
    """The VQA questions of a benchmark row: its base prompt and its atoms."""
    return vqa_questions(item["base_prompt"], item.get("animal1"), item.get("animal2"), item.get("action"),
                         item.get("action_template"), counts=(item.get("animal1_count"), item.get("animal2_count")),
                         attributes=(item.get("animal1_attributes"), item.get("animal2_attributes")))


class VqaJudge:
    """A local vision-language model (transformers' AutoModelForImageTextToText). `vqa` and each atom:
    VQAScore as t2v_metrics computes it, exp(-mean cross-entropy) of the answer "Yes" and the end of
    the sequence after the question; LLaVA models (model_type llava) in t2v_metrics' LLaVA-1.5
    conversation (its system message, "USER: <image>\n{question} ASSISTANT: Yes</s>"), any other
    family in its processor's chat template. Each atom is also asked as GenEval 2 asks it
    ("{question} Answer in one word.", in the chat template): the summed next-token probabilities of
    the first tokens of 'Yes', 'yes', ' yes', ' Yes' (and of the No variants), from which `derive`
    computes Soft-TIFA (atoms.py)."""

    name = "vqa"
    metrics = LOCAL_METRICS

    def __init__(self, model: str, device: str, run=None):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.model_ref, self.device = model, device
        self.weights = model_identity(model)
        self.processor = load_model(model, AutoProcessor.from_pretrained, what="VQA processor")
        self.processor.tokenizer.padding_side = "left"  # the answer is read at the last positions
        dtype = torch.float32 if device == "cpu" else torch.float16
        self.model = load_model(model, AutoModelForImageTextToText.from_pretrained, what="VQA model", run=run,
                                dtype=dtype).to(device).eval()
        tokenizer = self.processor.tokenizer
        self.llava = getattr(self.model.config, "model_type", "") == "llava"
        self.answer = (" Yes" if self.llava else "Yes") + (tokenizer.eos_token or "")
        # GenEval 2 takes the first token of each variant and sums them as listed (a repeated id counts twice)
        self.yes_ids = [tokenizer.encode(v, add_special_tokens=False)[0] for v in YES_VARIANTS]
        self.no_ids = [tokenizer.encode(v, add_special_tokens=False)[0] for v in NO_VARIANTS]

    def identity(self) -> str:
        return self.weights

    def signature(self, item: dict) -> str:
        return "|".join([*self.questions(item).values(), READINGS])

    @staticmethod
    def questions(item: dict) -> dict[str, str]:
        return item_questions(item)

    def prompt(self, question: str) -> str:
        """The question in the model's chat template (LLaVA-1.5's plain format without one)."""
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        if getattr(self.processor, "chat_template", None):
            return self.processor.apply_chat_template(messages, add_generation_prompt=True)
        return f"USER: <image>\n{question} ASSISTANT:"

    def vqascore_prompt(self, question: str) -> str:
        """What t2v_metrics puts before the answer: its LLaVA-1.5 conversation, or the chat template."""
        return f"{SYSTEM_MSG} USER: <image>\n{question} ASSISTANT:" if self.llava else self.prompt(question)

    def _forward(self, images, texts: list[str], keep: int = 1):
        import torch

        inputs = self.processor(images=images, text=texts, return_tensors="pt", padding=True).to(self.device)
        position_ids = (inputs["attention_mask"].cumsum(-1) - 1).clamp(min=0)  # left padding must not shift positions
        with torch.inference_mode():
            logits = self.model(**inputs, position_ids=position_ids, logits_to_keep=keep).logits.float()
        return logits, inputs["input_ids"]

    def next_token_probabilities(self, images, questions: list[str]):
        """The distribution of the first answer token for each (image, question) pair, in one forward pass."""
        logits, _ = self._forward(images, [self.prompt(q) for q in questions])
        return logits[:, -1].softmax(-1)

    def vqascores(self, images, questions: list[str]) -> list[float]:
        """exp(-mean cross-entropy) of the answer tokens ("Yes" and the end of the sequence) after each
        question, as t2v_metrics computes VQAScore, in one forward pass."""
        tokenizer = self.processor.tokenizer
        prompts = [self.vqascore_prompt(q) for q in questions]
        lengths = []
        for prompt in prompts:
            head = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            full = tokenizer(prompt + self.answer, add_special_tokens=False)["input_ids"]
            lengths.append(len(full) - len(head) if full[:len(head)] == head else len(full) - len(head) + 1)
        keep = max(lengths) + 1
        logits, ids = self._forward(images, [p + self.answer for p in prompts], keep)
        logp = logits.log_softmax(-1)
        scores = []
        for row, k in enumerate(lengths):  # logits at kept position j predict the token after it
            targets = ids[row, ids.shape[1] - k:]
            predicted = logp[row, keep - k - 1:keep - 1]
            scores.append(math.exp(predicted.gather(-1, targets[:, None]).mean().item()))
        return scores

    def score(self, images, items):
        asks = [(i, metric, q) for i, item in enumerate(items) for metric, q in self.questions(item).items()]
        out = [{} for _ in items]
        for (i, metric, _), value in zip(asks, self.vqascores([images[i] for i, _, _ in asks], [q for *_, q in asks])):
            out[i][metric] = value
        atoms = [(i, metric, q) for i, metric, q in asks if metric != "vqa"]
        if atoms:
            probs = self.next_token_probabilities([images[i] for i, _, _ in atoms], [tifa_question(q) for *_, q in atoms])
            for (i, metric, _), p in zip(atoms, probs):
                out[i][YES_MASS + metric] = float(p[self.yes_ids].sum())
                out[i][NO_MASS + metric] = float(p[self.no_ids].sum())
        return out

    @staticmethod
    def derive(values: dict, item: dict) -> dict:
        return soft_tifa(values, item.get("action"), item.get("reciprocal"))


class Detector:
    """Open-vocabulary detection of both agents with any transformers zero-shot object detector
    (OWLv2, OWL-ViT, Grounding DINO: AutoModelForZeroShotObjectDetection), one query per agent, so
    that one region can be the best box of both (fused agents); interaction geometry (`derive`)."""

    name = "detection"
    metrics = ("det_agent1", "det_agent2", "det_both", "geo_agents", "geo_iou", "geo_contact", "geo_topology")

    def __init__(self, model: str, device: str, threshold: float, run=None, contact_tolerance: float = 0.1):
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

        self.model_ref, self.device, self.threshold, self.tolerance = model, device, threshold, contact_tolerance
        self.weights = model_identity(model)
        self.model = load_model(model, AutoModelForZeroShotObjectDetection.from_pretrained, what="object detector",
                                run=run).to(device).eval()
        self.processor = load_model(model, AutoProcessor.from_pretrained, what="object detector's processor")
        self.owl = self.model.config.model_type in ("owlv2", "owlvit")

    def identity(self) -> str:
        return self.weights

    @staticmethod
    def applies(item: dict) -> bool:
        return bool(item.get("animal1") and item.get("animal2"))  # a row whose agents were not found: nothing to find

    def signature(self, item: dict) -> str:
        return f"{item['animal1']}|{item['animal2']}|{self.threshold}|per-agent"

    def query(self, agent: str | None) -> str:
        name = with_article(agent or "animal")
        return f"a photo of {name}" if self.owl else f"{name}."  # Grounding DINO: lower case, ending with "."

    def score(self, images, items):
        per_agent = [self._detect(images, [self.query(i[f"animal{agent}"]) for i in items]) for agent in (1, 2)]
        return [self._summarise(first, second) for first, second in zip(*per_agent)]

    def _detect(self, images, queries: list[str]) -> list:
        import torch

        if self.owl:  # one list of queries per image, padded to the processor's maximum length
            inputs = self.processor(text=[[q] for q in queries], images=images, return_tensors="pt")
        else:
            inputs = self.processor(text=queries, images=images, return_tensors="pt", padding=True)
        inputs = inputs.to(self.device)
        with torch.inference_mode():
            outputs = self.model(**inputs)
        # OWL pads to a square and gives boxes in it; Grounding DINO boxes are relative to the image
        sizes = [(max(im.size),) * 2 if self.owl else (im.size[1], im.size[0]) for im in images]
        extra = {} if self.owl else {"input_ids": inputs["input_ids"], "text_threshold": 0.0}
        return self.processor.post_process_grounded_object_detection(outputs, threshold=0.0, target_sizes=sizes, **extra)

    def _summarise(self, *results) -> dict:
        values, kept = {}, []
        for agent, result in enumerate(results, 1):
            scores, boxes = (result[k].float().cpu().numpy() for k in ("scores", "boxes"))
            best = int(np.argmax(scores)) if len(scores) else None
            values[f"det_agent{agent}"] = float(scores[best]) if best is not None else 0.0
            for j in range(len(scores)):
                if scores[j] >= self.threshold or j == best:
                    kept.append({"agent": agent, "score": float(scores[j]), "box": [round(float(v), 2) for v in boxes[j]]})
        values["det_both"] = float(values["det_agent1"] >= self.threshold and values["det_agent2"] >= self.threshold)
        return {**values, "_boxes": kept}

    def derive(self, values: dict, item: dict) -> dict:
        return interaction_geometry(values.get("_boxes", []), self.threshold, item.get("spatial_topology"), self.tolerance)


class ReferenceSimilarity:
    """Cosine of DINOv2 features to the centroid of real frames of the same action."""

    name = "reference"
    metrics = ("ref_similarity",)

    def __init__(self, model: str, device: str, folder: str | Path, actions: list[str], run=None):
        from transformers import AutoImageProcessor, AutoModel

        self.model_ref, self.device, self.folder = model, device, Path(folder)
        self.weights = model_identity(model)
        self.model = load_model(model, AutoModel.from_pretrained, what="DINOv2 model", run=run).to(device).eval()
        self.processor = load_model(model, AutoImageProcessor.from_pretrained, what="DINOv2 processor")
        self.centroids, missing = {}, []
        for action in actions:
            files = reference_files(self.folder, action)
            if files:
                self.centroids[action] = self._centroid(files)
            else:
                missing.append(action)
        if missing:
            warnings.warn(f"No reference images under {self.folder} for {len(missing)} action(s) "
                          f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}); their images get no ref_similarity.",
                          stacklevel=2)
        digest = hashlib.sha256()
        for action in sorted(self.centroids):
            digest.update(action.encode() + self.centroids[action].numpy().tobytes())
        self.reference_hash = digest.hexdigest()[:16]

    def identity(self) -> str:
        return self.weights

    def embed(self, images):
        import torch

        pixels = self.processor(images=images, return_tensors="pt")["pixel_values"].to(self.device)
        with torch.inference_mode():
            feats = self.model(pixel_values=pixels).pooler_output.float()
        return torch.nn.functional.normalize(feats, dim=-1).cpu()

    def _centroid(self, files: list[Path]):
        import torch
        from PIL import Image

        feats = []
        for start in range(0, len(files), 32):
            images = []
            for f in files[start:start + 32]:
                with Image.open(f) as img:
                    images.append(img.convert("RGB"))
            feats.append(self.embed(images))
        return torch.nn.functional.normalize(torch.cat(feats).mean(0), dim=0)

    def applies(self, item: dict) -> bool:
        return item.get("action") in self.centroids

    def signature(self, item: dict) -> str:
        return f"{item['action']}|{self.reference_hash}"

    def score(self, images, items):
        emb = self.embed(images)
        return [{"ref_similarity": float(e @ self.centroids[i["action"]])} if i["action"] in self.centroids else {}
                for e, i in zip(emb, items)]


def folder_name(action: str) -> str:
    """The reference sub-folder of an action: 'competing for dominance with' -> competing_for_dominance_with."""
    return re.sub(r"[^a-z0-9]+", "_", action.lower()).strip("_")


def reference_files(folder: Path, action: str) -> list[Path]:
    sub = folder / folder_name(action)
    if not sub.is_dir():
        return []
    return sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
