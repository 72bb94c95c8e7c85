"""The build-benchmark stage: writes `benchmark.parquet` into the run directory."""

from __future__ import annotations

import pandas as pd

from ..fileio import write_parquet
from ..schema import LABELS, read_benchmark
from .builder import build_benchmark


def run(run) -> pd.DataFrame:
    """Build (or import, when `benchmark.source` is set) the benchmark and write benchmark.parquet.

    Example:
        >>> from act2i_utils.runs import open_run
        >>> from act2i_utils import benchmark
        >>> table = benchmark.run(open_run("runs/demo", "smoke"))
    """
    cfg = run.config.benchmark
    with run.stage("benchmark"):
        if cfg.source:
            table = read_benchmark(cfg.source)
        else:
            table = build_benchmark(seed=cfg.seed, agents=cfg.agents, n_per_action=cfg.n_per_action)
        write_parquet(run.path("benchmark.parquet"), table)
    return table


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
