"""Enrichment backends behind one interface: `generate(requests) -> list[str]`.

- `transformers`: a local folder or Hugging Face id, chat template, batched generation with
  left padding, and sampling seeded per request (the same request gives the same answer in
  any batch).
- `openai`: any OpenAI-compatible chat-completions server (vLLM, Ollama, llama.cpp, TGI,
  OpenAI), bounded concurrency, timeouts, retries with backoff on 429 and 5xx.
- `kb`: the offline knowledge-base enricher (`kb.py`), no model at all.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..errors import Act2iError


class EnrichError(Act2iError):
    """A backend could not produce rewrites (server unreachable, key refused, ...)."""


@dataclass(frozen=True)
class Request:
    id: str
    base_prompt: str
    animal1: str | None
    animal2: str | None
    action: str | None
    action_key: str | None  # the taxonomy's key, when the benchmark carries it
    labels: dict  # emotional_valence, spatial_topology, temporal_extent of the benchmark row
    dimension: str
    instruction: str
    sample: int
    attempt: int
    seed: int

    def messages(self) -> list[dict]:
        return [{"role": "system", "content": self.instruction},
                {"role": "user", "content": f"Prompt: {self.base_prompt}"}]


def request_seed(seed: int, *parts) -> int:
    """A 31-bit seed that depends only on the profile seed and the request's identity."""
    digest = hashlib.sha256(repr((seed, *parts)).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


# --- transformers -------------------------------------------------------------------------


class TransformersBackend:
    """A local chat LLM through transformers."""

    name = "transformers"

    def __init__(self, model: str, *, temperature: float, top_p: float, max_new_tokens: int,
                 dtype: str = "auto", device_map: str | None = None, device: str = "cpu", run=None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from ..models import load_model

        self.model_ref, self.temperature, self.top_p, self.max_new_tokens = model, temperature, top_p, max_new_tokens
        self.tokenizer = load_model(model, AutoTokenizer.from_pretrained, what="LLM tokenizer")
        self.tokenizer.padding_side = "left"  # generation continues from the right edge
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        kwargs = {"dtype": dtype if dtype == "auto" else getattr(torch, dtype)}
        if device_map:
            kwargs["device_map"] = device_map
        self.model = load_model(model, AutoModelForCausalLM.from_pretrained, what="LLM", run=run, **kwargs).eval()
        if not device_map:
            self.model.to(device)
        self.device = next(self.model.parameters()).device

    def settings(self) -> dict:
        return {"temperature": self.temperature, "top_p": self.top_p, "max_new_tokens": self.max_new_tokens}

    def _chat(self, request: Request) -> str:
        try:
            return self.tokenizer.apply_chat_template(request.messages(), tokenize=False, add_generation_prompt=True)
        except Exception:  # noqa: BLE001 - some templates reject a system turn: fold it into the user turn
            merged = [{"role": "user", "content": f"{request.instruction}\n\nPrompt: {request.base_prompt}"}]
            return self.tokenizer.apply_chat_template(merged, tokenize=False, add_generation_prompt=True)

    def generate(self, requests: list[Request]) -> list[str]:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList

        texts = [self._chat(r) for r in requests]
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        config = GenerationConfig(
            max_new_tokens=self.max_new_tokens, do_sample=False,  # sampling happens in RowSampler
            pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.model.generation_config.eos_token_id,
        )
        processors = LogitsProcessorList()
        if self.temperature > 0:
            processors.append(RowSampler([r.seed for r in requests], self.temperature, self.top_p))
        with torch.inference_mode():
            out = self.model.generate(**enc, generation_config=config, logits_processor=processors)
        return self.tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)


class RowSampler:
    """Temperature and top-p sampling with one generator per row, as a logits processor.

    Each row draws from its own seeded generator and every other token is masked, so greedy
    decoding then picks the drawn token: a request's answer does not depend on its batch.
    """

    def __init__(self, seeds: list[int], temperature: float, top_p: float):
        self.seeds, self.temperature, self.top_p = seeds, temperature, top_p
        self.generators = None

    def __call__(self, input_ids, scores):
        import torch

        if self.generators is None:
            self.generators = [torch.Generator(device=scores.device).manual_seed(s) for s in self.seeds]
        probs = torch.softmax(scores.float() / self.temperature, dim=-1)
        if self.top_p < 1.0:
            sorted_probs, order = probs.sort(dim=-1, descending=True)
            outside = sorted_probs.cumsum(-1) - sorted_probs > self.top_p  # keep the smallest set reaching top_p
            sorted_probs[outside] = 0.0
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
        picked = torch.stack([torch.multinomial(p, 1, generator=g) for p, g in zip(probs, self.generators)])
        masked = torch.full_like(scores, float("-inf"))
        return masked.scatter(-1, picked, 0.0)


# --- OpenAI-compatible servers --------------------------------------------------------------


class OpenAIBackend:
    """Chat completions from any OpenAI-compatible server."""

    name = "openai"
    backoff_s = 1.0  # first wait after a 429 or 5xx; doubles each retry
    max_backoff_s = 30.0

    def __init__(self, model: str, *, base_url: str, api_key_env: str = "OPENAI_API_KEY", temperature: float,
                 top_p: float, max_new_tokens: int, concurrency: int = 8, timeout_s: float = 120.0,
                 max_retries: int = 4):
        self.model_ref, self.base_url = model, base_url.rstrip("/")
        self.api_key_env, self.concurrency, self.timeout_s = api_key_env, concurrency, timeout_s
        self.temperature, self.top_p, self.max_new_tokens, self.max_retries = temperature, top_p, max_new_tokens, max_retries

    def settings(self) -> dict:
        return {"temperature": self.temperature, "top_p": self.top_p, "max_new_tokens": self.max_new_tokens}

    def generate(self, requests: list[Request]) -> list[str]:
        import httpx

        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        with httpx.Client(headers=headers, timeout=self.timeout_s) as client:
            with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
                return list(pool.map(lambda r: self._complete(client, r), requests))

    def _complete(self, client, request: Request) -> str:
        body = {"model": self.model_ref, "messages": request.messages(), "temperature": self.temperature,
                "top_p": self.top_p, "max_tokens": self.max_new_tokens, "seed": request.seed}
        for attempt in range(self.max_retries + 1):
            try:
                return self._post(client, body)
            except _Transient as failure:
                if attempt == self.max_retries:
                    raise EnrichError(failure.give_up(self.base_url, attempt + 1, self.timeout_s)) from None
                self._wait(attempt, failure.retry_after)
        raise AssertionError("unreachable")

    def _post(self, client, body: dict) -> str:
        """One request: the answer's text, a `_Transient` failure worth retrying, or an EnrichError."""
        import httpx

        try:
            response = client.post(f"{self.base_url}/chat/completions", json=body)
        except httpx.ConnectError:
            raise _Transient("unreachable") from None
        except httpx.TimeoutException:
            raise _Transient("timeout") from None
        status = response.status_code
        if status in (401, 403):
            raise EnrichError(
                f"The server at {self.base_url} refused the API key ({status}); set a valid key in the "
                f"environment variable {self.api_key_env} (currently {'set' if os.environ.get(self.api_key_env) else 'unset'})."
            )
        if status == 429 or status >= 500:
            raise _Transient(f"HTTP {status}", response.headers.get("retry-after"))
        if status >= 400:
            raise EnrichError(f"The server at {self.base_url} rejected the request (HTTP {status}: {_server_message(response)}); "
                              f"check enrich.model ('{self.model_ref}') and the sampling settings.")
        try:
            return response.json()["choices"][0]["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError):
            raise EnrichError(f"The server at {self.base_url} answered without choices[0].message.content; "
                              "is it an OpenAI-compatible chat-completions endpoint?") from None

    def _wait(self, attempt: int, retry_after: str | None) -> None:
        delay = self.backoff_s * 2 ** attempt
        if retry_after:
            try:
                delay = float(retry_after)
            except ValueError:
                pass
        time.sleep(min(delay * (1 + 0.1 * random.random()), self.max_backoff_s))


class _Transient(Exception):
    """A failure that may pass: refused connection, timeout, 429 or 5xx."""

    def __init__(self, kind: str, retry_after: str | None = None):
        super().__init__(kind)
        self.kind, self.retry_after = kind, retry_after

    def give_up(self, base_url: str, tries: int, timeout_s: float) -> str:
        if self.kind == "unreachable":
            return (f"Could not reach the OpenAI-compatible server at {base_url} (connection refused); "
                    "start the server or correct enrich.base_url.")
        if self.kind == "timeout":
            return (f"The server at {base_url} gave no answer within {timeout_s:g} s after {tries} tries; "
                    "raise enrich.timeout_s, lower enrich.concurrency, or check the server.")
        return f"The server at {base_url} kept answering {self.kind} after {tries} tries; try again later."


def _server_message(response) -> str:
    try:
        error = response.json().get("error")
        message = error.get("message") if isinstance(error, dict) else error
        return str(message or response.text)[:200]
    except ValueError:
        return response.text[:200]
