"""Enrichment backends behind one interface: `generate(requests) -> list[str]`.

- `transformers`: a local folder or Hugging Face id, chat template, batched generation with
  left padding, and sampling seeded per request (the same request gives the same answer in
  any batch).
- `openai`: any OpenAI-compatible chat-completions server (vLLM, Ollama, llama.cpp, TGI,
  OpenAI) through `act2i_utils.openai_client` (bounded concurrency, timeouts, retries with
  backoff on 429 and 5xx, the key from an environment variable), shared with the API judge.
- `kb`: the offline knowledge-base enricher (`kb.py`), no model at all.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ..errors import Act2iError
from ..openai_client import ChatClient


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
    """Chat completions from any OpenAI-compatible server, through the shared `ChatClient`."""

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
        client = ChatClient(self.base_url, api_key_env=self.api_key_env, concurrency=self.concurrency,
                            timeout_s=self.timeout_s, max_retries=self.max_retries, settings="enrich.", error=EnrichError)
        client.backoff_s, client.max_backoff_s = self.backoff_s, self.max_backoff_s
        return client.map(lambda r: self._complete(client, r), requests)

    def _complete(self, client: ChatClient, request: Request) -> str:
        body = {"model": self.model_ref, "messages": request.messages(), "temperature": self.temperature,
                "top_p": self.top_p, "max_tokens": self.max_new_tokens, "seed": request.seed}
        reply = client.complete(body)
        try:
            return reply["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise EnrichError(f"The server at {self.base_url} answered without choices[0].message.content; "
                              "is it an OpenAI-compatible chat-completions endpoint?") from None
