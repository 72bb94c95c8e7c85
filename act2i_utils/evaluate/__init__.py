"""Automatic evaluation: CLIPScore, VQA judges (a local VLM, or any VLM behind an OpenAI-compatible
server) with the prompt's atoms and Soft-TIFA over them, agent detection with interaction geometry,
PickScore, zero-shot action classification and similarity to real footage, all behind one `Judge`
interface; `score()` runs any of them outside a run. docs/judges.md has the details."""

from .api import VlmApiJudge
from .atoms import soft_tifa
from .judges import ClipJudge, ClipScore, Detector, Judge, PickScore, VqaJudge
from .questions import action_caption, vqa_questions, with_article
from .score import score
from .stage import METRICS, list_metrics, make_judges, run, summary, vqa_breakdown

__all__ = ["METRICS", "ClipJudge", "ClipScore", "Detector", "Judge", "PickScore", "VlmApiJudge", "VqaJudge",
           "action_caption", "list_metrics", "make_judges", "run", "score", "soft_tifa", "summary", "vqa_breakdown",
           "vqa_questions", "with_article"]
