"""Automatic evaluation: CLIPScore, a VQA judge with decomposed questions, agent detection,
zero-shot action classification and similarity to real footage, all behind one `Judge` interface;
`score()` runs any of them outside a run."""

from .judges import ClipJudge, ClipScore, Judge, VqaJudge
from .questions import action_caption, vqa_questions, with_article
from .score import score
from .stage import METRICS, list_metrics, make_judges, run, summary, vqa_breakdown

__all__ = ["METRICS", "ClipJudge", "ClipScore", "Judge", "VqaJudge", "action_caption", "list_metrics", "make_judges",
           "run", "score", "summary", "vqa_breakdown", "vqa_questions", "with_article"]
