"""Exploration in JupyterLab: one table of everything known about each image, an interactive
gallery that filters it, and the images on which judges and people disagree most."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

from ..schema import KEY, load_benchmark


def image_table(run) -> pd.DataFrame:
    """One row per image: prompt text, labels, every metric, human acceptance and failure tags."""
    from ..annotate import answers as human_answers
    from ..manifest import read_manifest
    from ..schema import SCORES
    from .stats import image_votes

    manifest = read_manifest(run.root)
    bench = load_benchmark(run.require(run.benchmark_path))
    table = manifest[KEY + ["prompt", "path"]].merge(
        bench[["id", "base_prompt", "action", "emotional_valence", "spatial_topology", "temporal_extent", "rarity_label"]],
        on="id", how="left")
    if run.scores_path.is_file():
        wide = SCORES.read(run.scores_path).pivot_table(index=KEY, columns="metric", values="value").reset_index()
        table = table.merge(wide, on=KEY, how="left")
    answers = human_answers(run)
    if len(answers):
        people = image_votes(answers).rename(columns={"accept_share": "human_acceptance"})
        table = table.merge(people, on=KEY, how="left")
    return table


def disagreements(table: pd.DataFrame, metric: str, n: int = 20) -> pd.DataFrame:
    """Images where `metric` and the people disagree most: the metric's percentile against human acceptance."""
    if "human_acceptance" not in table or metric not in table:
        return pd.DataFrame()
    rated = table.dropna(subset=["human_acceptance", metric]).copy()
    rated["metric_percentile"] = rated[metric].rank(pct=True)
    rated["disagreement"] = (rated["metric_percentile"] - rated["human_acceptance"]).abs()
    columns = KEY + ["prompt", metric, "metric_percentile", "human_acceptance", "disagreement", "tags", "path"]
    return rated.sort_values("disagreement", ascending=False)[[c for c in columns if c in rated]].head(n)


class Gallery:
    """Filter images by model, variant, action, label, failure tag and a metric range; show each
    image with its prompt text, scores and judgements."""

    LABELS = ("emotional_valence", "spatial_topology", "temporal_extent", "rarity_label")

    def __init__(self, table: pd.DataFrame, run_root: str | Path, per_page: int = 12):
        import ipywidgets as w

        self.table, self.root, self.per_page = table, Path(run_root), per_page
        metrics = [c for c in table.columns if table[c].dtype.kind == "f" and c not in ("seed",)]

        def choice(column: str, description: str):
            values = sorted(str(v) for v in table[column].dropna().unique()) if column in table else []
            return w.Dropdown(options=["(all)", *values], description=description)

        self.filters = {
            "model": choice("model", "model"), "variant": choice("variant", "variant"), "action": choice("action", "action"),
        }
        self.label = w.Dropdown(options=list(self.LABELS), description="label")
        self.label_value = w.Dropdown(options=["(all)"], description="value")
        tags = sorted({t for x in table.get("tags", pd.Series(dtype=str)).dropna() for t in x.split(",") if t})
        self.tag = w.Dropdown(options=["(any)", *tags], description="failure")
        self.metric = w.Dropdown(options=metrics or ["(none)"], description="metric")
        self.range = w.FloatRangeSlider(description="range", min=0.0, max=1.0, step=0.001, value=(0.0, 1.0))
        self.page = w.IntText(value=0, description="page")
        self.output = w.HTML()
        controls = [*self.filters.values(), self.label, self.label_value, self.tag, self.metric, self.range, self.page]
        for control in controls:
            control.observe(lambda _: self.refresh(), names="value")
        self.label.observe(lambda _: self._label_values(), names="value")
        self.metric.observe(lambda _: self._metric_range(), names="value")
        self._label_values()
        self._metric_range()
        self.widget = w.VBox([w.HBox(controls[:4]), w.HBox(controls[4:8]), w.HBox(controls[8:]), self.output])
        self.refresh()

    def _label_values(self) -> None:
        column = self.label.value
        values = sorted(str(v) for v in self.table[column].dropna().unique()) if column in self.table else []
        self.label_value.options = ["(all)", *values]

    def _metric_range(self) -> None:
        if self.metric.value in self.table:
            values = self.table[self.metric.value].dropna()
            if len(values):
                low, high = float(values.min()), float(values.max())
                high = high if high > low else low + 1e-6
                self.range.max = max(high, self.range.max)  # widen, move the handles, then narrow
                self.range.min = min(low, self.range.min)
                self.range.value = (low, high)
                self.range.min, self.range.max = low, high

    def selection(self) -> pd.DataFrame:
        rows = self.table
        for column, control in self.filters.items():
            if control.value != "(all)":
                rows = rows[rows[column].astype(str) == control.value]
        if self.label_value.value != "(all)":
            rows = rows[rows[self.label.value].astype(str) == self.label_value.value]
        if self.tag.value != "(any)" and "tags" in rows:
            rows = rows[rows["tags"].fillna("").str.split(",").apply(lambda ts: self.tag.value in ts)]
        if self.metric.value in rows:
            low, high = self.range.value
            rows = rows[rows[self.metric.value].between(low, high)]
        return rows

    def refresh(self) -> None:
        rows = self.selection()
        start = max(self.page.value, 0) * self.per_page
        cards = [self._card(row) for row in rows.iloc[start:start + self.per_page].to_dict("records")]
        self.output.value = (f"<p>{len(rows)} images match; page {self.page.value}</p>"
                             "<div style='display:flex;flex-wrap:wrap;gap:8px'>" + "".join(cards) + "</div>")

    def _card(self, row: dict) -> str:
        import base64

        data = base64.b64encode((self.root / row["path"]).read_bytes()).decode()
        scores = "".join(f"<br>{html.escape(k)}: {v:.3f}" for k, v in row.items()
                         if isinstance(v, float) and np.isfinite(v) and k not in ("seed",))
        return (f"<div style='width:220px;font-size:11px'><img src='data:image/png;base64,{data}' style='width:200px;"
                f"image-rendering:pixelated'><br><b>{html.escape(str(row['model']))} / {html.escape(str(row['variant']))}</b>"
                f" seed {row['seed']}<br>{html.escape(str(row['prompt']))}{scores}"
                f"<br>{html.escape(str(row.get('tags') or ''))}</div>")
