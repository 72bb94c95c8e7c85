"""Side-by-side judging: a VLM sees two images of one prompt in one request and says which shows
the prompt better, asked in both orders to cancel its preference for a position.

    PAIR_QUESTION: 'Which image shows "{prompt}" better: the first or the second? Answer "first" or "second".'

P(first) is read from the first answer token: for the local VQA judge from its next-token
distribution (the first tokens of "first"/"First"/" first" against those of "second"), for `vlm_api`
from the top log-probabilities (`pair_word`: a token counts for "first" when, stripped, lower-cased and
without trailing punctuation, it is "1", "one" or a beginning of "first" of at least two letters:
"First", " fir"; likewise "second"), with the sampled fallback of `api.py` where a server gives none.
Each pair (a, b) is asked as (a, b) and as (b, a): P(a better) = (P(first | a first) + 1 - P(first |
b first)) / 2. `judge_pairs(run)` judges the run's planned pairs (`pairs.parquet`, made by
`annotate.pairs.plan_pairs`) and writes `pair_judgements.parquet`; answers are cached per (both
images' content in their order, judge, model, question) in `pair_cache.jsonl`.
"""

from __future__ import annotations

import warnings

import pandas as pd

from ..cache import JsonlCache, cache_key
from ..errors import InputError
from ..manifest import configured_images, image_hash
from ..schema import PAIR_JUDGEMENTS, PAIRS, load_benchmark
from .api import data_url, top_probabilities

PAIR_QUESTION = 'Which image shows "{prompt}" better: the first or the second? Answer "first" or "second".'
FIRST, SECOND = "first", "second"


def pair_word(token: str | None) -> str | None:
    """'first' or 'second' for a first answer token that is a beginning of that answer of at least two
    letters ('First', ' sec', 'first.'), or '1'/'one', '2'/'two' (stripped, lower-cased); else None."""
    word = (token or "").strip().lower().rstrip(".,!:;")
    if word in ("1", "one"):
        return FIRST
    if word in ("2", "two"):
        return SECOND
    for answer in (FIRST, SECOND):
        if word and answer.startswith(word) and len(word) >= 2:
            return answer
    return None


class LocalPairJudge:
    """The local VQA judge (a LLaVA-style model) with both images in one prompt."""

    name = "vqa_pairwise"

    def __init__(self, vqa):
        self.vqa, self.model_ref = vqa, vqa.model_ref
        tokenizer = vqa.processor.tokenizer
        ids = {answer: {tokenizer(w, add_special_tokens=False)["input_ids"][0]
                        for w in (answer, answer.title(), " " + answer, " " + answer.title())}
               for answer in (FIRST, SECOND)}
        shared = ids[FIRST] & ids[SECOND]
        self.ids = {answer: sorted(found - shared) for answer, found in ids.items()}

    def identity(self) -> str:
        return self.vqa.identity()

    def p_first(self, pairs: list[tuple], questions: list[str]) -> list[float | None]:
        processor = self.vqa.processor
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": q}]}
                    for q in questions]
        if getattr(processor, "chat_template", None):
            texts = [processor.apply_chat_template([m], add_generation_prompt=True) for m in messages]
        else:
            texts = [f"USER: <image>\n<image>\n{q} ASSISTANT:" for q in questions]
        logits, _ = self.vqa._forward([list(p) for p in pairs], texts)
        probs = logits[:, -1].softmax(-1)
        first = probs[:, self.ids[FIRST]].sum(-1)
        second = probs[:, self.ids[SECOND]].sum(-1)
        return (first / (first + second)).tolist()


class ApiPairJudge:
    """`vlm_api` with both images in one request."""

    name = "vlm_api_pairwise"

    def __init__(self, api):
        self.api, self.model_ref = api, api.model_ref

    def identity(self) -> str:
        return self.api.identity()

    def p_first(self, pairs: list[tuple], questions: list[str]) -> list[float | None]:
        jobs = [([data_url(a), data_url(b)], q) for (a, b), q in zip(pairs, questions)]
        return self.api.client.map(lambda job: self._ask(*job), jobs)

    def _ask(self, urls: list[str], question: str) -> float | None:
        self.api.count_asked()
        content = [{"type": "image_url", "image_url": {"url": u}} for u in urls] + [{"type": "text", "text": question}]
        body = self.api.body(self.api.messages(content), temperature=0.0, logprobs=True, top_logprobs=self.api.top_logprobs)
        choice = self.api._choice(self.api.client.complete(body))
        entries = (choice.get("logprobs") or {}).get("content") or []
        text = (choice.get("message") or {}).get("content")
        if entries:
            share = _first_share(entries[0])
        else:  # no log-probabilities: the answer itself
            word = pair_word(text)
            share = None if word is None else float(word == FIRST)
        if share is None:
            self.api.note_empty(entries[0] if entries else None, text)
        return share


def _first_share(entry: dict) -> float | None:
    """P(first) / (P(first) + P(second)) over the first answer token's top log-probabilities (None without either)."""
    mass = {FIRST: 0.0, SECOND: 0.0}
    for token, probability in top_probabilities(entry).items():
        word = pair_word(token)
        if word:
            mass[word] += probability
    total = mass[FIRST] + mass[SECOND]
    return mass[FIRST] / total if total > 0 else None


def make_pair_judge(run, device: str):
    """The judge named by `pairs.judge` ("auto": vlm_api when evaluate.metrics has it, else the local VQA judge)."""
    cfg, ev = run.config.pairs, run.config.evaluate
    name = cfg.judge if cfg.judge != "auto" else ("vlm_api" if "vlm_api" in ev.metrics else "vqa")
    if name == "none":
        return None
    if name == "vlm_api":
        from .stage import _vlm_api, _Makers

        return ApiPairJudge(_vlm_api(_Makers(ev, device, {}, run)))
    from .judges import VqaJudge

    return LocalPairJudge(VqaJudge(ev.vqa_model, device, run=run))


def judge_pairs(run, progress: bool = True, judge=None) -> pd.DataFrame:
    """The pairwise judge on every planned pair of the run, in both orders; writes pair_judgements.parquet."""
    from ..progress import progress_bar
    from ..runs import resolve_device

    pairs = PAIRS.read(run.require(run.pairs_path))
    judge = judge or make_pair_judge(run, resolve_device(run.config.device))
    if judge is None:
        return PAIR_JUDGEMENTS.empty()
    images, _ = configured_images(run)
    where = {(r["model"], r["variant"], r["id"], int(r["seed"])): r["path"] for r in images.to_dict("records")}
    prompts = load_benchmark(run.require(run.benchmark_path)).set_index("id")["base_prompt"]
    cache = JsonlCache(run.pair_cache_path)
    identity = judge.identity()
    jobs = []  # (pair index, order, first path, second path, question)
    for n, row in enumerate(pairs.to_dict("records")):
        a = where.get((row["a_model"], row["a_variant"], row["id"], int(row["a_seed"])))
        b = where.get((row["b_model"], row["b_variant"], row["id"], int(row["b_seed"])))
        if a is None or b is None:
            raise InputError(f"{run.pairs_path}: pair {row['pair_id']} names an image the run's config does not; "
                             "plan the pairs again (annotate.pairs.plan_pairs).")
        question = PAIR_QUESTION.format(prompt=prompts[row["id"]])
        jobs += [(n, "ab", a, b, question), (n, "ba", b, a, question)]
    hashes = {p: image_hash((run.root / p).read_bytes()) for p in where.values()}
    keys = [cache_key(images=[hashes[f], hashes[s]], judge=judge.name, model=identity, question=q)
            for _, _, f, s, q in jobs]
    missing = [i for i, k in enumerate(keys) if k not in cache]
    batch = run.config.evaluate.batch_size
    with progress_bar(total=len(missing), desc=f"pairs ({judge.model_ref})", unit="pair", disable=not progress or not missing) as bar:
        for start in range(0, len(missing), batch):
            chunk = missing[start:start + batch]
            opened = [tuple(_open(run.root / jobs[i][k]) for k in (2, 3)) for i in chunk]
            answers = judge.p_first(opened, [jobs[i][4] for i in chunk])
            cache.add_many([(keys[i], {"p_first": p}) for i, p in zip(chunk, answers) if p is not None])
            bar.update(len(chunk))
    found: dict[tuple, float] = {}
    for (n, order, *_), key in zip(jobs, keys):
        value = cache.get(key)
        if value is not None:
            found[(n, order)] = value["p_first"]
    rows = []
    for n, row in enumerate(pairs.to_dict("records")):
        if (n, "ab") in found and (n, "ba") in found:
            ab, ba = found[(n, "ab")], found[(n, "ba")]
            rows.append({"pair_id": row["pair_id"], "judge": f"{judge.name}:{judge.model_ref}", "p_first_ab": ab,
                         "p_first_ba": ba, "p_a": (ab + 1 - ba) / 2})
    note = getattr(getattr(judge, "api", None), "empty_note", lambda words: None)('"first" nor "second"')
    if note:
        warnings.warn(note.replace("answers from the vlm_api judge", "answers about pairs from the vlm_api judge"), stacklevel=2)
    with run.stage("pairwise"):
        return PAIR_JUDGEMENTS.write(run.pair_judgements_path, pd.DataFrame(rows, columns=PAIR_JUDGEMENTS.columns))


def _open(path):
    from PIL import Image

    with Image.open(path) as img:
        return img.convert("RGB")
