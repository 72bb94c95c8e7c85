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
from ..schema import AGENT_COLUMNS, FORMATS, read_benchmark, validate_benchmark, with_none
from .parsing import NOT_FOUND, parse_prompt

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


def find_agents(prompt: str) -> tuple[str, str, str] | None:
    """(agent 1, action phrase, agent 2) read from a prompt, or None (see `parsing.parse_prompt`)."""
    parsed = parse_prompt(prompt, parser="rules")
    return (parsed.agent1.noun, parsed.action, parsed.agent2.noun) if parsed.found else None


def with_agents(table: pd.DataFrame, parser: str = "auto") -> pd.DataFrame:
    """Every row with its agents, their counts and attributes, the action and the scene objects.

    Given columns win; what a row lacks comes from `parse_prompt(base_prompt)`: its agents (flag
    `agents_inferred`), and, where the parsed agents are the given ones, their counts and attributes.
    A row whose agents are given nowhere and not found gets the flag `agents_not_found` and the
    parser's reason in `agents_note`; it goes through every stage like any other.
    """
    out = table.copy()
    for column in (*AGENT_COLUMNS, "action_template", "flags"):
        if column not in out:
            out[column] = pd.Series([None] * len(out), dtype=object)
    records = out.to_dict("records")
    for record in records:
        _fill(record, parse_prompt(record["base_prompt"], parser=parser))
    return with_none(pd.DataFrame(records, columns=out.columns))


def _fill(row: dict, parsed) -> None:
    given = bool(row["animal1"] and row["animal2"])
    if not given and not parsed.found:
        row["flags"] = row["flags"] or NOT_FOUND
        row["agents_note"] = row["agents_note"] or parsed.reason
        return
    if not given:
        row["animal1"], row["animal2"] = row["animal1"] or parsed.agent1.noun, row["animal2"] or parsed.agent2.noun
        row["action"] = row["action"] or parsed.action
        row["flags"] = row["flags"] or "agents_inferred"
    if parsed.found and (row["animal1"], row["animal2"]) == (parsed.agent1.noun, parsed.agent2.noun):
        if row["action"] == parsed.action:
            row["action_template"] = row["action_template"] or parsed.template
        for n, agent in ((1, parsed.agent1), (2, parsed.agent2)):
            row[f"animal{n}_count"] = row[f"animal{n}_count"] or agent.count or None
            row[f"animal{n}_attributes"] = row[f"animal{n}_attributes"] or ";".join(agent.attributes) or None
        row["scene_objects"] = row["scene_objects"] or ";".join(parsed.objects) or None
