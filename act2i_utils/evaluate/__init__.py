"""Automatic evaluation: CLIPScore, a VQA judge with decomposed questions, agent detection,
zero-shot action classification, and similarity to real footage."""

from .judges import ClipJudge, ClipScore, VqaJudge
from .questions import action_caption, vqa_questions, with_article
from .stage import METRICS, make_judges, run, summary, vqa_breakdown

__all__ = ["METRICS", "ClipJudge", "ClipScore", "VqaJudge", "action_caption", "make_judges", "run", "summary", "vqa_breakdown",
           "vqa_questions", "with_article"]
