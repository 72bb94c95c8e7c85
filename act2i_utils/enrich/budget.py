"""The text encoders' token budget, counted with the T2I models' own tokenizers.

CLIP encoders read 77 tokens (start and end tokens included) and silently drop the rest; T5
encoders read `max_sequence_length` tokens (256 by default in SD3 pipelines). A rewrite
longer than the smallest budget among the profile's T2I models is flagged `too_long`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

T5_DEFAULT_LIMIT = 256  # SD3's default max_sequence_length
SUBFOLDERS = ("tokenizer", "tokenizer_2", "tokenizer_3")


@dataclass
class Encoder:
    label: str  # "tiny-sd3/tokenizer (CLIP)"
    tokenizer: object
    limit: int

    def count(self, text: str) -> int:
        return len(self.tokenizer(text, truncation=False, verbose=False)["input_ids"])


class TokenBudget:
    """Counts tokens per text encoder; `too_long` when any encoder would truncate."""

    def __init__(self, encoders: list[Encoder]):
        self.encoders = encoders

    @property
    def limit(self) -> int | None:
        return min((e.limit for e in self.encoders), default=None)

    def too_long(self, text: str) -> bool:
        return any(e.count(text) > e.limit for e in self.encoders)

    def clip_tokens(self, text: str) -> int | None:
        """Token count under the first CLIP tokenizer (the binding 77-token budget), if any."""
        clip = [e for e in self.encoders if e.limit == 77]
        return clip[0].count(text) if clip else None


def budget_for_models(models) -> TokenBudget:
    """Load the tokenizers of each T2I model (profile entries); unloadable ones are skipped with a warning."""
    from transformers import AutoTokenizer

    from ..errors import ModelLoadError
    from ..models import load_model
    from ..registry import resolve_spec

    encoders, seen = [], set()
    for entry in models:
        spec = resolve_spec(entry)
        for sub in SUBFOLDERS:
            try:
                tok = load_model(spec.id, AutoTokenizer.from_pretrained, what="tokenizer", subfolder=sub)
            except ModelLoadError as err:
                if sub == "tokenizer":
                    warnings.warn(f"Token budget of {spec.id} not checked: {err}", stacklevel=2)
                break  # pipelines number their tokenizers without gaps
            is_clip = "clip" in type(tok).__name__.lower()
            limit = 77 if is_clip else (spec.max_sequence_length or min(tok.model_max_length, T5_DEFAULT_LIMIT))
            kind = "CLIP" if is_clip else type(tok).__name__.replace("TokenizerFast", "").replace("Tokenizer", "")
            key = (type(tok).__name__, len(tok), limit)
            if key in seen:  # SD3's two CLIP tokenizers are the same: count once
                continue
            seen.add(key)
            encoders.append(Encoder(f"{spec.label}/{sub} ({kind})", tok, limit))
    return TokenBudget(encoders)


def add_token_counts(prompts, budget: TokenBudget):
    """The prompts table with one column of token counts per text encoder (`schema.token_column`)."""
    from ..schema import token_column

    out = prompts.copy()
    for encoder in budget.encoders:
        out[token_column(encoder.label, encoder.limit)] = [encoder.count(t) for t in out["text"]]
    return out
