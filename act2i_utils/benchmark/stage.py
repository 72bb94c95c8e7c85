"""The build-benchmark stage: writes `benchmark.parquet` into the run directory."""

from __future__ import annotations

import pandas as pd

from ..fileio import write_parquet
from ..schema import LABELS
from ..words import reciprocal
from .builder import build_benchmark
from .parsing import NOT_FOUND, parser_name
from .sources import read_source, with_agents
from .taxonomy import DATA, load_taxonomy


def run(run) -> pd.DataFrame:
    """Build (or import, when `benchmark.source` names a file or `hf://datasets/OWNER/NAME[@rev]`) the
    benchmark and write benchmark.parquet; an import's revision and content hash go into provenance.

    Example:
        >>> from act2i_utils.runs import open_run
        >>> from act2i_utils import benchmark
        >>> table = benchmark.run(open_run("runs/demo", "smoke"))
    """
    cfg = run.config.benchmark
    with run.stage("benchmark"):
        if cfg.source:
            table, record = read_source(cfg.source)
            table = with_templates(with_agents(table), cfg.agents)
            record["parser"] = parser_name()
            record["agents_not_found"] = int((table["flags"] == NOT_FOUND).sum())
            with run.edit_provenance() as prov:
                prov["benchmark_source"] = record
        else:
            table = build_benchmark(seed=cfg.seed, agents=cfg.agents, n_per_action=cfg.n_per_action)
        write_parquet(run.benchmark_path, table)
    return table


def with_templates(table: pd.DataFrame, agents: str = "animals") -> pd.DataFrame:
    """An imported table with `action_key` and `action_template` filled where a shipped taxonomy
    (the profile's agent set first) has the action's phrase (None where none has it), and
    `reciprocal` where the file leaves it empty: the taxonomy's, else `words.reciprocal`."""
    known: dict[str, tuple[str, str, bool]] = {}
    sets = [agents] + sorted(p.name for p in DATA.iterdir() if p.is_dir() and p.name != agents)
    for name in sets:
        try:
            actions = load_taxonomy(name).actions
        except Exception:  # noqa: BLE001 - a custom folder that does not load offers no templates
            continue
        for action in actions:
            known.setdefault(action.phrase, (action.key, action.template, action.reciprocal))
    out = table.copy()
    found = [known.get(phrase) if phrase else None for phrase in out["action"]]
    for column, i in (("action_key", 0), ("action_template", 1)):
        given = out[column] if column in out else [None] * len(out)
        out[column] = pd.Series([g if g is not None else (f[i] if f else None) for g, f in zip(given, found)], dtype=object)
    given = out["reciprocal"] if "reciprocal" in out else [None] * len(out)
    out["reciprocal"] = pd.Series([bool(g) if g is not None else (f[2] if f else reciprocal(a, t))
                                   for g, f, a, t in zip(given, found, out["action"], out["action_template"])], dtype=bool)
    return out


def label_counts(table: pd.DataFrame) -> pd.DataFrame:
    """Long table of (label, value, prompts) for the four semantic labels, in the schema's value order."""
    rows = []
    for label, values in LABELS.items():
        counts = table[label].value_counts()
        for value in values:
            rows.append({"label": label, "value": value, "prompts": int(counts.get(value, 0))})
        missing = int(table[label].isna().sum())
        if missing:
            rows.append({"label": label, "value": "(none)", "prompts": missing})
    return pd.DataFrame(rows)
