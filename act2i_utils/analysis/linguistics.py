"""Prompt linguistics per variant: length in words and in the T2I models' tokens, the share cut at
CLIP's 77, lexical diversity, a part-of-speech profile (spaCy when a model is installed), and the
words each enrichment dimension adds (for word clouds)."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pandas as pd

WORD = re.compile(r"[a-z][a-z'-]*")
STOPWORDS = frozenset("""a an the of and or in on at to from by with its it their his her as is are be while into onto
over under for that this those these one two both each other than then so very just""".split())


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def length_table(prompts: pd.DataFrame) -> pd.DataFrame:
    """Per variant: prompts, mean words, mean tokens per text encoder and the share over its budget
    (from the enrich stage's token columns), type-token ratio (pooled) and mean per-prompt ratio."""
    from ..schema import TOKENS_PREFIX, parse_token_column

    encoders = [(c, *parse_token_column(c)) for c in prompts.columns if str(c).startswith(TOKENS_PREFIX)]
    rows = []
    for variant, part in prompts.groupby("variant", sort=False):
        tokens = [words(t) for t in part["text"]]
        pooled = [w for ws in tokens for w in ws]
        row = {"variant": variant, "prompts": len(part), "mean_words": np.mean([len(ws) for ws in tokens]),
               "type_token_ratio": len(set(pooled)) / len(pooled) if pooled else np.nan,
               "mean_prompt_ttr": np.mean([len(set(ws)) / len(ws) for ws in tokens if ws])}
        for column, label, limit in encoders:
            counts = part[column].tolist()
            row[f"tokens: {label}"] = np.mean(counts)
            row[f"share over {limit}: {label}"] = float(np.mean([c > limit for c in counts]))
        rows.append(row)
    return pd.DataFrame(rows)


def added_words(prompts: pd.DataFrame) -> dict[str, Counter]:
    """Per enriched variant, the words its rewrites add to their base prompts (stopwords dropped)."""
    base = prompts[prompts["variant"] == "base"].drop_duplicates("id").set_index("id")["text"]
    counters: dict[str, Counter] = {}
    for variant, part in prompts[prompts["variant"] != "base"].groupby("variant", sort=False):
        counter = Counter()
        for prompt_id, text in zip(part["id"], part["text"]):
            original = set(words(base.get(prompt_id, "")))
            counter.update(w for w in words(text) if w not in original and w not in STOPWORDS and len(w) > 2)
        counters[variant] = counter
    return counters


def pos_profile(prompts: pd.DataFrame, model: str = "en_core_web_sm") -> tuple[pd.DataFrame, str]:
    """Share of each part of speech per variant with spaCy, or an empty table and a note saying why not."""
    try:
        import spacy
    except ImportError:
        return pd.DataFrame(), ("Part-of-speech profile skipped: spaCy is not installed "
                                f"(pip install spacy && python -m spacy download {model}).")
    try:
        nlp = spacy.load(model, disable=["ner", "parser", "lemmatizer"])
    except OSError:
        return pd.DataFrame(), f"Part-of-speech profile skipped: the spaCy model {model} is not installed (python -m spacy download {model})."
    rows = []
    for variant, part in prompts.groupby("variant", sort=False):
        tags = Counter(token.pos_ for doc in nlp.pipe(part["text"].tolist()) for token in doc if not token.is_punct)
        total = sum(tags.values())
        rows += [{"variant": variant, "pos": pos, "share": n / total} for pos, n in tags.most_common()]
    return pd.DataFrame(rows), f"Part-of-speech profile from spaCy {model}."
