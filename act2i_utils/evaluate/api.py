"""`vlm_api`: the VQA judge's questions put to a vision-language model behind an OpenAI-compatible
chat-completions server (vLLM, SGLang, LMDeploy, TGI, OpenAI, Gemini's compatible endpoint).

Each (image, question) is one request: the image as a base64 PNG data URL, the question as text,
`max_tokens` 1, temperature 0 and `logprobs` with `top_logprobs`. P("Yes") is read from the first
answer token's top log-probabilities, summing the variants of Yes ("Yes", "yes", " Yes", " yes")
against those of No, as GenEval 2 does: P = sum(yes) / (sum(yes) + sum(no)). GenEval 2 takes each
variant's first token; not knowing the server's tokenizer, we count a token as Yes when, stripped and
lower-cased, it begins "yes" ("Yes", " yes", or "Y" where "Yes" is split), likewise for No. An answer
whose top tokens hold neither (a "thinking" model that begins with `<think>`, a chat template that
adds text) gives no value: it is never cached, the stage says how many there were with an example,
and a rerun asks for exactly those again. `evaluate.vlm_api_extra_body` is merged into every request
(vLLM: `{chat_template_kwargs: {enable_thinking: false}}`) and `evaluate.vlm_api_system_prompt`
goes first as a system message; both key the cache.

Where a server gives no log-probabilities, the judge asks for `n` sampled first tokens instead
(temperature 1) and takes the share of Yes among the yes/no ones; the scores table says so in its
`judge` column ("<model> [sampled n=10]"). Requests go through the shared client
(`act2i_utils.openai_client`): concurrency, timeouts, retries with backoff on 429 and 5xx, the key
from an environment variable, one-sentence errors naming the `evaluate.vlm_api_*` setting to change.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import threading

from ..errors import Act2iError
from ..openai_client import ChatClient
from .atoms import soft_tifa
from .judges import VQA_METRICS, item_questions

YES, NO = "yes", "no"


class JudgeError(Act2iError):
    """The API judge could not get an answer."""


def data_url(image) -> str:
    """A PIL image as a base64 PNG data URL, the form chat-completions servers take."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def answer_word(token: str | None) -> str | None:
    """'yes' or 'no' for a first answer token that begins that answer (' Yes', 'no', 'Yes,'; 'Y' where a
    tokenizer splits "Yes" as "Y" + "es"), None for any other ('Nope', 'The')."""
    word = (token or "").strip().lower().rstrip(".,!:;")
    for answer in (YES, NO):
        if word and answer.startswith(word):
            return answer
    return None


def yes_share_from_logprobs(entry: dict) -> float | None:
    """P(yes) / (P(yes) + P(no)) over the first answer token's top log-probabilities (None without either)."""
    mass = {YES: 0.0, NO: 0.0}
    seen = set()
    for top in [entry, *(entry.get("top_logprobs") or [])]:
        token, logprob = top.get("token"), top.get("logprob")
        word = answer_word(token)
        if word and logprob is not None and token not in seen:
            seen.add(token)  # the chosen token is also among the top ones: count it once
            mass[word] += math.exp(logprob)
    total = mass[YES] + mass[NO]
    return mass[YES] / total if total > 0 else None


class VlmApiJudge:
    """The VQA judge's questions, answered by a model behind an OpenAI-compatible server."""

    name = "vlm_api"
    metrics = VQA_METRICS

    def __init__(self, model: str, base_url: str | None, *, api_key_env: str = "OPENAI_API_KEY", concurrency: int = 8,
                 timeout_s: float = 60.0, max_retries: int = 4, top_logprobs: int = 20, samples: int = 10,
                 extra_body: dict | None = None, system_prompt: str | None = None):
        if not base_url:
            raise JudgeError("The vlm_api judge needs evaluate.vlm_api_base_url, the server's address such as "
                             "http://localhost:8000/v1 (docs/judges.md shows how to serve a judge with vLLM).")
        self.model_ref, self.top_logprobs, self.samples = model, top_logprobs, samples
        self.extra_body, self.system_prompt = dict(extra_body or {}), system_prompt
        self.empty: list[str] = []  # the first tokens of answers that held neither answer word
        self.asked = 0  # answers asked for
        self._lock = threading.Lock()
        self.client = ChatClient(base_url, api_key_env=api_key_env, concurrency=concurrency, timeout_s=timeout_s,
                                 max_retries=max_retries, settings="evaluate.vlm_api_", error=JudgeError)
        self.sampled = False  # set once the server shows that it gives no log-probabilities

    def identity(self) -> str:
        """What keys the judgement cache: the served model's name (there is no folder to hash)."""
        return f"api:{self.model_ref}"

    def signature(self, item: dict) -> str:
        settings = [f"top{self.top_logprobs}", f"n{self.samples}"]
        if self.extra_body or self.system_prompt:  # (absent from older keys: their caches stay valid)
            settings.append(json.dumps([self.extra_body, self.system_prompt], sort_keys=True))
        return "|".join([*self.questions(item).values(), *settings])

    @staticmethod
    def questions(item: dict) -> dict[str, str]:
        return item_questions(item)

    def score(self, images, items, only: list | None = None):
        """metric -> P(Yes) per image; `only[i]`, where given, the metrics still to ask of image i. A
        question without an answer is listed in the image's `_missing` (never cached as a value)."""
        urls = [data_url(im) for im in images]
        pairs = [(i, metric, q) for i, item in enumerate(items) for metric, q in self.questions(item).items()
                 if not only or not only[i] or metric in only[i]]
        answers = self.client.map(lambda pair: self.ask(urls[pair[0]], pair[2]), pairs)
        out = [{} for _ in items]
        for (i, metric, _), (p, sampled) in zip(pairs, answers):
            if p is not None:
                out[i][metric] = p
            else:
                out[i].setdefault("_missing", []).append(metric)
            if sampled:
                out[i]["_judge"] = f"{self.model_ref} [sampled n={self.samples}]"
        return out

    def messages(self, content: list) -> list:
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return [*system, {"role": "user", "content": content}]

    def body(self, messages: list, **settings) -> dict:
        return {**self.extra_body, "model": self.model_ref, "messages": messages, "max_tokens": 1, **settings}

    def empty_note(self, words: str = "yes nor no") -> str | None:
        """One sentence on the answers that gave no value (None when every answer did)."""
        if not self.empty:
            return None
        return (f"{len(self.empty)} of {self.asked} answers from the vlm_api judge ({self.model_ref}) held neither "
                f"{words} among their first tokens (one began {self.empty[0]}), so they have no value and are not "
                "cached: a rerun asks for exactly these again; for a model that thinks first or a chat template that "
                "adds text, set evaluate.vlm_api_extra_body (vLLM: {chat_template_kwargs: {enable_thinking: false}}) "
                "or evaluate.vlm_api_system_prompt (e.g. 'Answer with one word.').")

    def count_asked(self) -> None:
        with self._lock:
            self.asked += 1

    def note_empty(self, entry: dict | None, text: str | None) -> None:
        """Remember what an answer without an answer word began with (for the stage's one sentence)."""
        tops = [t.get("token") for t in (entry or {}).get("top_logprobs") or []][:3]
        first = repr((entry or {}).get("token", text))
        with self._lock:
            self.empty.append(first + (f" (top tokens {', '.join(map(repr, tops))})" if tops else ""))

    @staticmethod
    def derive(values: dict, item: dict) -> dict:
        return soft_tifa(values, item.get("action"), item.get("reciprocal"))

    def ask(self, url: str, question: str) -> tuple[float | None, bool]:
        """P(Yes) for one (image, question) and whether it came from sampled answers."""
        self.count_asked()
        messages = self.messages([{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": question}])
        if not self.sampled:
            body = self.body(messages, temperature=0.0, logprobs=True, top_logprobs=self.top_logprobs)
            try:
                reply = self.client.complete(body)
            except JudgeError as err:
                if "logprob" not in getattr(err, "server_message", "").lower():
                    raise
                self.sampled = True  # the server refuses log-probabilities outright
            else:
                choice = self._choice(reply)
                entries = ((choice.get("logprobs") or {}).get("content") or [])
                if entries:
                    share = yes_share_from_logprobs(entries[0])
                    if share is None:
                        self.note_empty(entries[0], None)
                    return share, False
                self.sampled = True
        return self._sampled_share(messages, url, question), True

    def _sampled_share(self, messages: list, url: str, question: str) -> float | None:
        seed = int(hashlib.sha256(f"{url}|{question}".encode()).hexdigest()[:8], 16) & 0x7FFFFFFF
        words = []
        while len(words) < self.samples:  # a server may give fewer than n choices per request
            body = self.body(messages, temperature=1.0, n=self.samples - len(words), seed=seed + len(words))
            choices = self._choice(self.client.complete(body), all_choices=True)
            texts = [(c.get("message") or {}).get("content") for c in choices]
            words += [answer_word(t) for t in texts]
        yes, no = words.count(YES), words.count(NO)
        if yes + no == 0:
            self.note_empty(None, texts[0] if texts else "")
        return yes / (yes + no) if yes + no else None

    def _choice(self, reply: dict, all_choices: bool = False):
        try:
            choices = reply["choices"]
            choices[0]["message"]
        except (KeyError, IndexError, TypeError):
            raise JudgeError(f"The server at {self.client.base_url} answered without choices[0].message; is it an "
                             "OpenAI-compatible chat-completions endpoint?") from None
        return choices if all_choices else choices[0]
