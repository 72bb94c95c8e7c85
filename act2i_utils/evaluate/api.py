"""`vlm_api`: the VQA judge's questions put to a vision-language model behind an OpenAI-compatible
chat-completions server (vLLM, SGLang, LMDeploy, TGI, OpenAI, Gemini's compatible endpoint).

Every request asks for one token at temperature 0 with `logprobs` and `top_logprobs`, the image as a
base64 PNG data URL. Two readings, each as its reference implementation computes it:

- `api_vqa`, `api_vqa_agent1`, ...: VQAScore as t2v_metrics computes it for a served model (its
  GPT-4o path): the question first, then the image; the probability of the exact token "Yes" among
  the first answer token's top log-probabilities (0 when "Yes" is not among them). A local model's
  VQAScore (`vqa`, judges.py) is another reading, hence another name.
- Soft-TIFA (atoms.py): each atom asked as GenEval 2 asks it, the image first, then
  "{question} Answer in one word."; the summed probabilities of the tokens 'Yes', 'yes', ' yes',
  ' Yes' (and 'No', 'no', ' no', ' No') among the top log-probabilities, exactly those strings.

An answer whose top tokens hold none of these eight (a "thinking" model that begins with `<think>`,
a chat template that adds text) has no value: it is never cached, the stage says how many there were
with an example, and a rerun asks for exactly those again. `evaluate.vlm_api_extra_body` is merged
into every request (vLLM: `{chat_template_kwargs: {enable_thinking: false}}`) and
`evaluate.vlm_api_system_prompt` goes first as a system message; both key the cache. A
`vlm_api_top_logprobs` above the server's maximum is refused in one sentence.

Where a server gives no log-probabilities at all, the judge samples `n` first tokens (temperature 1)
and estimates the same quantities by their shares (the share of samples that are exactly "Yes"; of
those that are one of the Yes or No variants); the scores table says so in its `judge` column
("<model> [sampled n=10]"). Requests go through the shared client (`act2i_utils.openai_client`):
concurrency, timeouts, retries with backoff, the key from an environment variable, one-sentence
errors naming the `evaluate.vlm_api_*` setting to change.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import re
import threading

from ..errors import Act2iError
from ..openai_client import ChatClient
from .atoms import NO_MASS, YES_MASS, soft_tifa
from .judges import API_METRICS, item_questions
from .questions import NO_VARIANTS, YES_VARIANTS, tifa_question

T2V_YES = "Yes"  # the one token t2v_metrics reads for a served model


class JudgeError(Act2iError):
    """The API judge could not get an answer."""


def data_url(image) -> str:
    """A PIL image as a base64 PNG data URL, the form chat-completions servers take."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def top_probabilities(entry: dict) -> dict[str, float]:
    """token -> probability of the first answer token's top log-probabilities (the chosen one counted once)."""
    found = {}
    for top in [entry, *(entry.get("top_logprobs") or [])]:
        token, logprob = top.get("token"), top.get("logprob")
        if token is not None and logprob is not None and token not in found:
            found[token] = math.exp(logprob)
    return found


def answer_masses(entry: dict) -> tuple[float, float]:
    """(the summed probability of the Yes variants, of the No variants) among the top log-probabilities."""
    top = top_probabilities(entry)
    return sum(top.get(v, 0.0) for v in YES_VARIANTS), sum(top.get(v, 0.0) for v in NO_VARIANTS)


def t2v_yes(entry: dict) -> float | None:
    """P(the exact token "Yes"), 0 when it is not among the top tokens; None when no Yes or No variant is."""
    top = top_probabilities(entry)
    return top.get(T2V_YES, 0.0) if any(v in top for v in YES_VARIANTS + NO_VARIANTS) else None


def _over_a_maximum(message: str) -> bool:
    text = message.lower()
    return "logprob" in text and any(w in text for w in ("max", "exceed", "greater than", "at most", "between",
                                                          "too large", "too many", "<="))


class VlmApiJudge:
    """The VQA judge's questions, answered by a model behind an OpenAI-compatible server."""

    name = "vlm_api"
    metrics = API_METRICS

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
        return "|".join([*self.questions(item).values(), *settings, "t2v_metrics-gpt4o|geneval2-sum"])

    @staticmethod
    def questions(item: dict) -> dict[str, str]:
        return item_questions(item)

    def score(self, images, items, only: list | None = None):
        """Per image: `api_<metric>` for each question and the Soft-TIFA masses of each atom; `only[i]`,
        where given, the answers still to ask of image i. An answer without a value is listed in the
        image's `_missing` (never cached as a value)."""
        urls = [data_url(im) for im in images]
        jobs = []  # (image, key, kind, question)
        for i, item in enumerate(items):
            for metric, question in self.questions(item).items():
                jobs.append((i, f"api_{metric}", "vqa", question))
                if metric != "vqa":
                    jobs.append((i, f"tifa:{metric}", "tifa", tifa_question(question)))
        jobs = [job for job in jobs if not only or not only[job[0]] or job[1] in only[job[0]]]
        answers = self.client.map(lambda job: self.ask(urls[job[0]], job[3], job[2]), jobs)
        out = [{} for _ in items]
        for (i, key, kind, _), (value, sampled) in zip(jobs, answers):
            if value is None:
                out[i].setdefault("_missing", []).append(key)
            elif kind == "vqa":
                out[i][key] = value
            else:
                atom = key.removeprefix("tifa:")
                out[i][YES_MASS + atom], out[i][NO_MASS + atom] = value
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

    def ask(self, url: str, question: str, kind: str = "vqa"):
        """(the value of one question, whether it came from sampled answers): for `kind` "vqa" P("Yes")
        (t2v_metrics), for "tifa" the (Yes, No) masses (GenEval 2); the value is None without an answer."""
        self.count_asked()
        image, text = {"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": question}
        messages = self.messages([text, image] if kind == "vqa" else [image, text])
        if not self.sampled:
            body = self.body(messages, temperature=0.0, logprobs=True, top_logprobs=self.top_logprobs)
            try:
                reply = self.client.complete(body)
            except JudgeError as err:
                message = getattr(err, "server_message", "")
                if _over_a_maximum(message):
                    raise JudgeError(self._too_many(message)) from None
                if "logprob" not in message.lower():
                    raise
                self.sampled = True  # the server refuses log-probabilities outright
            else:
                choice = self._choice(reply)
                entries = ((choice.get("logprobs") or {}).get("content") or [])
                if entries:
                    value = t2v_yes(entries[0]) if kind == "vqa" else answer_masses(entries[0])
                    if value is None or value == (0.0, 0.0):
                        self.note_empty(entries[0], None)
                        return None, False
                    return value, False
                self.sampled = True
        return self._sampled(messages, url, question, kind), True

    def _too_many(self, message: str) -> str:
        limits = re.findall(r"\d+", message)
        advice = f"set it to at most {limits[-1]}" if limits else "lower it (vLLM allows 20 unless started with --max-logprobs)"
        return (f"evaluate.vlm_api_top_logprobs is {self.top_logprobs}, more than the server at {self.client.base_url} "
                f"allows ('{message[:120]}'); {advice}.")

    def _sampled(self, messages: list, url: str, question: str, kind: str):
        """The same quantities estimated from `samples` sampled first tokens (None when none is a Yes or No)."""
        seed = int(hashlib.sha256(f"{url}|{question}".encode()).hexdigest()[:8], 16) & 0x7FFFFFFF
        texts: list[str] = []
        while len(texts) < self.samples:  # a server may give fewer than n choices per request
            body = self.body(messages, temperature=1.0, n=self.samples - len(texts), seed=seed + len(texts))
            choices = self._choice(self.client.complete(body), all_choices=True)
            texts += [(c.get("message") or {}).get("content") or "" for c in choices]
        yes, no = sum(t in YES_VARIANTS for t in texts), sum(t in NO_VARIANTS for t in texts)
        if yes + no == 0:
            self.note_empty(None, texts[0] if texts else "")
            return None
        n = len(texts)
        return texts.count(T2V_YES) / n if kind == "vqa" else (yes / n, no / n)

    def _choice(self, reply: dict, all_choices: bool = False):
        try:
            choices = reply["choices"]
            choices[0]["message"]
        except (KeyError, IndexError, TypeError):
            raise JudgeError(f"The server at {self.client.base_url} answered without choices[0].message; is it an "
                             "OpenAI-compatible chat-completions endpoint?") from None
        return choices if all_choices else choices[0]
