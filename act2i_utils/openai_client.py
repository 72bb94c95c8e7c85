"""One client for OpenAI-compatible chat-completions servers (vLLM, SGLang, LMDeploy, TGI, Ollama,
llama.cpp, OpenAI, Gemini's compatible endpoint), shared by the enrichment backend and the API judge.

It keeps `concurrency` requests in flight, gives each `timeout_s`, retries a refused connection, a
timeout, a dropped connection, a 429 or a 5xx with exponential backoff (honouring the server's Retry-After), reads the API
key from an environment variable (never from a profile) and ends every failure in one sentence that
names the setting to change. `settings` is the profile prefix those sentences use ("enrich." for
enrich.base_url, enrich.timeout_s, ...; "evaluate.vlm_api_" for evaluate.vlm_api_base_url, ...).

    >>> client = ChatClient("http://localhost:8000/v1", settings="enrich.")
    >>> answers = client.map(lambda body: client.complete(body), bodies)
"""

from __future__ import annotations

import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from .errors import Act2iError


class ApiError(Act2iError):
    """The server could not give an answer; `status` and `server_message` say what it answered, if anything."""

    status: int | None = None
    server_message: str = ""


class ChatClient:
    """POST /chat/completions with bounded concurrency, timeouts and retries."""

    backoff_s = 1.0  # first wait after a transient failure; doubles each retry
    max_backoff_s = 30.0

    def __init__(self, base_url: str, *, api_key_env: str = "OPENAI_API_KEY", concurrency: int = 8,
                 timeout_s: float = 120.0, max_retries: int = 4, settings: str = "enrich.",
                 error: type[ApiError] | type[Act2iError] = ApiError):
        if not base_url.lower().startswith(("http://", "https://")):
            raise error(f"{settings}base_url is '{base_url}', which must begin with http:// or https:// "
                        f"(e.g. http://{base_url.split('://')[-1]}).")
        self.base_url = base_url.rstrip("/")
        self.api_key_env, self.concurrency, self.timeout_s = api_key_env, concurrency, timeout_s
        self.max_retries, self.settings, self.error = max_retries, settings, error
        self._http = None

    def headers(self) -> dict:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def map(self, fn: Callable, items: list) -> list:
        """`fn(item)` for every item, `concurrency` at a time over one connection pool, in order."""
        import httpx

        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        with httpx.Client(headers=self.headers(), timeout=self.timeout_s, limits=limits) as http:
            self._http = http
            try:
                with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
                    return list(pool.map(fn, items))
            finally:
                self._http = None

    def complete(self, body: dict) -> dict:
        """One chat completion (the server's JSON reply), retried while failures may pass."""
        if self._http is None:
            return self.map(self.complete, [body])[0]
        for attempt in range(self.max_retries + 1):
            try:
                return self._post(body)
            except _Transient as failure:
                if attempt == self.max_retries:
                    raise self.error(failure.give_up(self, attempt + 1)) from None
                self._wait(attempt, failure.retry_after)
        raise AssertionError("unreachable")

    def _post(self, body: dict) -> dict:
        import httpx

        try:
            response = self._http.post(f"{self.base_url}/chat/completions", json=body)
        except httpx.ConnectError:
            raise _Transient("unreachable") from None
        except httpx.TimeoutException:
            raise _Transient("timeout") from None
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):  # the server dropped the connection
            raise _Transient("disconnected") from None
        status = response.status_code
        if status in (401, 403):
            raise self._rejected(status, response, (
                f"The server at {self.base_url} refused the API key ({status}); set a valid key in the environment "
                f"variable {self.api_key_env} (currently {'set' if os.environ.get(self.api_key_env) else 'unset'})."))
        if status == 429 or status >= 500:
            raise _Transient(f"HTTP {status}", response.headers.get("retry-after"))
        if status >= 400:
            message = server_message(response)
            raise self._rejected(status, response, (
                f"The server at {self.base_url} rejected the request (HTTP {status}: {message}); check "
                f"{self.settings}model ('{body.get('model')}') and the request settings."))
        try:
            return response.json()
        except ValueError:
            raise self.error(f"The server at {self.base_url} answered with something other than JSON; is it an "
                             "OpenAI-compatible chat-completions endpoint?") from None

    def _rejected(self, status: int, response, sentence: str) -> Act2iError:
        err = self.error(sentence)
        err.status, err.server_message = status, server_message(response)
        return err

    def _wait(self, attempt: int, retry_after: str | None) -> None:
        delay = self.backoff_s * 2 ** attempt
        if retry_after:
            try:
                delay = float(retry_after)
            except ValueError:
                pass  # an HTTP date: keep our own backoff
        time.sleep(min(delay * (1 + 0.1 * random.random()), self.max_backoff_s))


class _Transient(Exception):
    """A failure that may pass: refused connection, timeout, dropped connection, 429 or 5xx."""

    def __init__(self, kind: str, retry_after: str | None = None):
        super().__init__(kind)
        self.kind, self.retry_after = kind, retry_after

    def give_up(self, client: ChatClient, tries: int) -> str:
        if self.kind == "unreachable":
            return (f"Could not reach the OpenAI-compatible server at {client.base_url} (connection refused); "
                    f"start the server or correct {client.settings}base_url.")
        if self.kind == "timeout":
            return (f"The server at {client.base_url} gave no answer within {client.timeout_s:g} s after {tries} tries; "
                    f"raise {client.settings}timeout_s, lower {client.settings}concurrency, or check the server.")
        if self.kind == "disconnected":
            return (f"The server at {client.base_url} closed the connection without an answer after {tries} tries; "
                    f"check its log (it may have crashed or run out of memory), or lower {client.settings}concurrency.")
        return f"The server at {client.base_url} kept answering {self.kind} after {tries} tries; try again later."


def server_message(response) -> str:
    """The server's own error message, at most 200 characters."""
    try:
        error = response.json().get("error")
        message = error.get("message") if isinstance(error, dict) else error
        return str(message or response.text)[:200]
    except (ValueError, AttributeError):
        return response.text[:200]
