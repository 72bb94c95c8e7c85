"""torchmetrics' CLIPScore on a local CLIP folder: the independent reference the tests and
benchmarks compare act2i's CLIPScore with (torchmetrics is a development dependency).

torchmetrics refuses a local folder by name and expects tensors from `get_*_features`, which
transformers 5 returns as model outputs; a loader callable and a small subclass get round both.
"""

from __future__ import annotations

from pathlib import Path


def torchmetrics_clipscore(folder: str | Path):
    from torchmetrics.multimodal.clip_score import CLIPScore
    from transformers import CLIPModel, CLIPProcessor

    class CLIPCompat(CLIPModel):
        def get_image_features(self, *args, **kwargs):
            return super().get_image_features(*args, **kwargs).pooler_output

        def get_text_features(self, *args, **kwargs):
            return super().get_text_features(*args, **kwargs).pooler_output

    return CLIPScore(model_name_or_path=lambda: (CLIPCompat.from_pretrained(folder).eval(), CLIPProcessor.from_pretrained(folder)))
