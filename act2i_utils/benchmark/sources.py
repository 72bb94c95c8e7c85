"""Where an imported prompt set comes from: a local file, or a dataset on the Hugging Face Hub.

    benchmark.source: prompts/act2i.jsonl                                   a file
    benchmark.source: hf://datasets/vatsal-malaviya/AcT2I-Prompts           the published AcT2I set
    benchmark.source: hf://datasets/vatsal-malaviya/AcT2I-Prompts@<rev>     pinned to a revision

A Hub dataset is read through `huggingface_hub` (its cache, `HF_HUB_OFFLINE`, `hf auth login`): the
repository's data files (Parquet first, then JSON lines, JSON, CSV) are listed and read like any
other import. What was read (revision, file, content hash) goes into the run's provenance.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pandas as pd

from ..errors import InputError
from ..schema import FORMATS, read_benchmark, validate_benchmark

HUB = re.compile(r"^hf://datasets/(?P<repo>[\w.-]+/[\w.-]+)(?:@(?P<revision>[\w./-]+))?/?$")
PAPER_DATASET = "vatsal-malaviya/AcT2I-Prompts"  # the AcT2I authors' prompts and Llama-3.3-70B rewrites


def read_source(source: str) -> tuple[pd.DataFrame, dict]:
    """The prompt set named by `benchmark.source`, validated, and a record of what was read."""
    match = HUB.match(source.strip())
    if match:
        return _read_hub(match["repo"], match["revision"], source)
    path = Path(source).expanduser()
    table = read_benchmark(path)
    return table, {"source": source, "file": str(path.resolve()), "sha256": file_hash(path)}


def file_hash(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _read_hub(repo: str, revision: str | None, source: str) -> tuple[pd.DataFrame, dict]:
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(repo, repo_type="dataset", revision=revision, cache_dir=os.environ.get("HF_HUB_CACHE"),
                                        allow_patterns=[f"*{s}" for s in FORMATS]))
    except Exception as err:  # noqa: BLE001 - every hub failure becomes one sentence
        raise InputError(_explain(repo, revision, err)) from None
    files = _data_files(folder)
    if not files:
        raise InputError(f"{source}: the dataset has no data file ({', '.join(FORMATS)}); check the repository.")
    frames = [read_benchmark(f) for f in files]
    table = frames[0] if len(frames) == 1 else validate_benchmark(pd.concat(frames, ignore_index=True), source)
    record = {"source": source, "repo": repo, "revision": folder.name,
              "files": {str(f.relative_to(folder)): file_hash(f) for f in files}}
    return table, record


def _data_files(folder: Path) -> list[Path]:
    """The data files of one format, the first of Parquet, JSON lines, JSON, CSV the repository has."""
    for suffix in FORMATS:
        found = sorted(p for p in folder.rglob(f"*{suffix}") if p.is_file() and not p.name.startswith("."))
        if found:
            return found
    return []


def _explain(repo: str, revision: str | None, err: Exception) -> str:
    name = type(err).__name__
    download = f"hf download --repo-type dataset {repo}" + (f" --revision {revision}" if revision else "")
    if name in ("GatedRepoError",) or "401" in str(err):
        return (f"The dataset {repo} needs you to log in (or accept its terms): run `hf auth login`, then "
                f"`{download}`, or point benchmark.source at a local copy of its data file.")
    if name in ("RepositoryNotFoundError",):
        return f"There is no dataset {repo} on the Hugging Face Hub (or it is private); check benchmark.source."
    if name in ("RevisionNotFoundError",):
        return f"The dataset {repo} has no revision '{revision}'; check the part after '@' in benchmark.source."
    return (f"The dataset {repo} is not in the local Hugging Face cache and the Hub cannot be reached ({name}); "
            f"run `{download}` on a connected machine, or point benchmark.source at a local copy of its data file.")


# "<agent> <verb>ing ... <agent>": the shape of every AcT2I prompt ("a goose competing for dominance
# with a turkey", "a python giving a warning call to a gecko", "a horse carrying an elephant on its back")
_DET = r"(?:a|an|the|one|another)"
_PREP = r"(?:on|onto|around|past|off|in|at|across|through|over|under|by|into|near|beside|along|during|to|with|for|of|from|toward|towards)"
_NOUN = rf"[a-z][a-z-]*(?:\s+(?!{_PREP}\b)[a-z][a-z-]*)?"  # one or two words ("harbor seal", "dance partner")
_SHAPE = re.compile(rf"^{_DET}\s+(?P<a>[a-z][a-z -]*?)\s+(?P<action>[a-z]+ing\b(?:\s+[a-z-]+)*?)\s+{_DET}\s+"
                    rf"(?P<b>{_NOUN})(?P<tail>\s+.*)?$")
# a tail that goes on with the action ("... a warning call to a gecko"), not with the scene ("across the ice")
_MORE = re.compile(rf"^\s+(?P<prep>to|with|at|for|of|from|toward|towards)\s+{_DET}\s+"
                   rf"(?P<b>{_NOUN})(?P<tail>\s+.*)?$")
_SCENE = re.compile(r"^\s+(?:on|onto|in|at|across|through|over|under|by|into|near|beside|along|during|around|past|off)\b")


def find_agents(prompt: str) -> tuple[str, str, str] | None:
    """(agent 1, action phrase, agent 2) read from a prompt of the AcT2I shape, or None."""
    text = " ".join(str(prompt).lower().replace(",", " ").split()).rstrip(".!")
    match = _SHAPE.match(text)
    if not match:
        return None
    a, action, b, tail = match["a"], match["action"], match["b"], match["tail"] or ""
    while (more := _MORE.match(tail)) is not None:
        action, b, tail = f"{action} {_article(b)} {b} {more['prep']}", more["b"], more["tail"] or ""
    if tail and not _SCENE.match(tail):
        return None  # words after the second agent that are neither action nor scene: not this shape
    return a.strip(), action.strip(), b.strip()


def _article(noun: str) -> str:
    return "an" if noun[:1] in "aeiou" else "a"


def with_agents(table: pd.DataFrame) -> pd.DataFrame:
    """Rows without agents get them from their prompt (flag `agents_inferred`), or the flag
    `agents_not_found` when the prompt does not have the "<agent> <verb>ing <agent>" shape."""
    out = table.copy()
    flags = list(out["flags"]) if "flags" in out else [None] * len(out)
    for i, row in enumerate(out.itertuples(index=False)):
        if row.animal1 and row.animal2:
            continue
        found = find_agents(row.base_prompt)
        if found is None:
            flags[i] = "agents_not_found"
            continue
        a, action, b = found
        out.iat[i, out.columns.get_loc("animal1")] = row.animal1 or a
        out.iat[i, out.columns.get_loc("animal2")] = row.animal2 or b
        out.iat[i, out.columns.get_loc("action")] = row.action or action
        flags[i] = "agents_inferred"
    out["flags"] = pd.Series(flags, dtype=object)
    return out
