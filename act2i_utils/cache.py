"""Where act2i keeps its caches, and a durable cache of model answers keyed on everything that shapes them.

`cache_dir()` is `$ACT2I_CACHE` (default `~/.cache/act2i`): the tiny models and the Jupyter kernel spec.

The enrich stage keys rewrites on (backend, model, instruction, base prompt, sampling
settings, sample, attempt); the evaluate stage keys judgements on (image hash, judge, model,
question). A rerun then makes no model call, and a change to any part of a key asks anew.
Values are appended to a JSON-lines file in the run directory after each batch and fsynced:
an interruption loses at most the batch in flight; a half-written last line is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def cache_key(**parts) -> str:
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def cache_dir() -> Path:
    """The folder for act2i's caches: `$ACT2I_CACHE`, default `~/.cache/act2i`."""
    return Path(os.environ.get("ACT2I_CACHE", "~/.cache/act2i")).expanduser()


class JsonlCache:
    """Append-only JSON lines of {"key": ..., "value": ...}; loaded into memory on open.

    With `path=None` the cache lives in memory only.
    """

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path is not None else None
        self.answers: dict[str, object] = {}
        if self.path is not None and self.path.is_file():
            with open(self.path, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a line cut short by an interruption
                    self.answers[record["key"]] = record["value"]

    def __contains__(self, key: str) -> bool:
        return key in self.answers

    def __len__(self) -> int:
        return len(self.answers)

    def get(self, key: str):
        return self.answers.get(key)

    def add_many(self, items: list[tuple[str, object]]) -> None:
        """Record a batch of (key, value) pairs durably; values must be JSON-serialisable."""
        if not items:
            return
        if self.path is None:
            self.answers.update(items)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lines = "".join(json.dumps({"key": k, "value": v}, ensure_ascii=False) + "\n" for k, v in items)
        with open(self.path, "a", encoding="utf-8") as fh:
            if fh.tell() and not self._ends_with_newline():
                fh.write("\n")  # seal a line an earlier crash left unfinished
            fh.write(lines)
            fh.flush()
            os.fsync(fh.fileno())
        self.answers.update(items)

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"
