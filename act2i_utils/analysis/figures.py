"""Figures: functions take tidy tables and return matplotlib Figures; `save_figure` writes them.

One theme for every figure (`style`: seaborn's "ticks" look at a paper's sizes, a column 3.5 in or
the full width 7 in, Okabe-Ito colour-blind-safe colours):

- the paper's variant order and colours everywhere: Original (grey), Spatial (blue), Emotional
  (orange), Temporal (green), then any other variant (`variant_order`, `variant_title`,
  `variant_colours`);
- seaborn draws the bars and never computes an interval (always `errorbar=None`): every estimate
  carries act2i's own prompt-bootstrap interval from the table (error bars, or "[low, high]" in a
  heatmap cell), every heatmap cell its n, and every figure a title and a note under it with its
  n and its source (the acceptance source, or where the prompts come from). Heatmaps keep
  seaborn's look but are drawn directly, laid out by hand: `sns.heatmap` renders the whole figure
  once per call, which would cost a 10-model analysis seconds per model;
- tick labels are wrapped to the room they have, never run together; heatmap cell text is black
  or white, whichever contrasts more with the cell; colour scales of gains and win rates are
  symmetric around no effect (0, or one half) and sized to the data.

`save_figure` writes png and pdf and stamps figures of random-weight models; `caption` says in one
sentence what a figure file of the analyze stage shows and where its numbers come from.

The paper's figures and their files under `runs/<name>/figures/`: `acceptance_bars` (acceptance),
`gain_bars` (gain_per_dimension), `label_heatmaps` (heatmap_<model>, gainmap_<model>),
`win_heatmap` (winrate_variants_<model>, winrate_models_<variant>), `word_clouds` (wordclouds),
`qualitative_grid` (qualitative_<model>), `failure_bars` (failure_modes_<model>),
`failure_examples` with `failure_flags` (failure_examples_<model>), `length_bars`
(prompt_lengths), `validity_bars` (metric_validity), `label_distribution` (benchmark_labels,
notebook 01).
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
COLUMN_WIDTH = 3.5  # inches
FULL_WIDTH = 7.0
RANDOM_WEIGHTS_NOTE = "random-weight models (smoke profile): not a result"

# --- the theme ----------------------------------------------------------------------------------

VARIANT_ORDER = ("base", "spatial", "emotional", "temporal", "combined")
VARIANT_TITLES = {"base": "Original", "spatial": "Spatial", "emotional": "Emotional", "temporal": "Temporal",
                  "combined": "Combined"}
VARIANT_COLOURS = {"base": "#999999", "spatial": "#0072B2", "emotional": "#E69F00", "temporal": "#009E73",
                   "combined": "#CC79A7"}
OTHER_COLOURS = ("#CC79A7", "#56B4E9", "#D55E00", "#000000", "#F0E442")  # variants beyond the paper's
ACCEPTANCE_MAP = "cividis"  # a rate from 0 to 1
DIVERGING_MAP = "PuOr"  # gains (around 0) and win rates (around one half)
NOTE_COLOUR = "#444444"
CELL_FONT = 5.5  # points: heatmap cells


def style() -> dict:
    """Matplotlib rc settings shared by all act2i figures (seaborn's "ticks" style, paper sizes)."""
    import seaborn as sns
    from cycler import cycler

    rc = {**sns.axes_style("ticks"), **sns.plotting_context("paper")}
    rc.update({
        "figure.dpi": 150, "savefig.dpi": 300, "savefig.bbox": "tight",
        "font.size": 8, "axes.titlesize": 9, "axes.labelsize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7,
        "legend.fontsize": 7, "legend.title_fontsize": 7, "figure.titlesize": 9, "axes.spines.top": False,
        "axes.spines.right": False, "axes.prop_cycle": cycler(color=OKABE_ITO), "pdf.fonttype": 42,
        "axes.linewidth": 0.6, "xtick.major.width": 0.6, "ytick.major.width": 0.6})
    return rc


def _variant_rank(variant: str) -> int:
    dimension = str(variant).split(".")[0]  # rewrite samples ("temporal.s1") follow their dimension
    return VARIANT_ORDER.index(dimension) if dimension in VARIANT_ORDER else len(VARIANT_ORDER)


def variant_order(variants) -> list[str]:
    """The paper's order (Original, Spatial, Emotional, Temporal), then other variants as first seen."""
    seen = list(dict.fromkeys(str(v) for v in variants))
    return sorted(seen, key=_variant_rank)  # stable: first-seen order within a rank


def variant_title(variant: str) -> str:
    """'Original', 'Temporal (rewrite 2)', 'Selected (k = 2)', 'Spatial + Temporal', 'My dimension'."""
    variant = str(variant)
    if variant in VARIANT_TITLES:
        return VARIANT_TITLES[variant]
    if match := re.fullmatch(r"(.+)\.s(\d+)", variant):
        return f"{variant_title(match[1])} (rewrite {int(match[2]) + 1})"
    if match := re.fullmatch(r"selected_k(\d+)", variant):
        return f"Selected (k = {match[1]})"
    if variant.startswith("selected_"):
        return f"Selected ({variant.removeprefix('selected_').replace('_', ' ')})"
    parts = [p for p in re.split(r"[_+]+", variant) if p]
    if len(parts) > 1 and all(p in VARIANT_TITLES for p in parts):
        return " + ".join(VARIANT_TITLES[p] for p in parts)
    text = variant.replace("_", " ")
    return text[:1].upper() + text[1:]


def variant_colours(variants) -> dict[str, str]:
    """Each variant's colour: the paper's four, then distinct Okabe-Ito colours."""
    others = iter(OTHER_COLOURS * (1 + len(list(variants)) // len(OTHER_COLOURS)))
    return {v: VARIANT_COLOURS.get(v) or next(others) for v in variant_order(variants)}


def _darker(colour: str, amount: float = 0.35) -> str:
    from matplotlib.colors import to_hex, to_rgb

    return to_hex([c * (1 - amount) for c in to_rgb(colour)])


def _wrap(text, width: int) -> str:
    return "\n".join(textwrap.wrap(str(text), max(int(width), 4), break_long_words=False)) or str(text)


def _chars(inches: float, points: float = 7) -> int:
    """How many characters of `points`-size text fit in `inches` (an average glyph is ~0.55 em)."""
    return max(4, int(inches * 72 / (0.55 * points)))


def _note(fig, text: str, layout: bool = True) -> None:
    """The n and source (or any caveat), under everything else in the figure, wrapped once to the
    figure's width (matplotlib's own wrapping re-measures the text at every draw)."""
    if layout:
        fig.tight_layout()
    width = max(40, int(fig.get_figwidth() * 22))  # characters of 6 pt text per line
    lines = [wrapped for line in text.splitlines() for wrapped in (textwrap.wrap(line, width) or [""])]
    fig.text(0.5, 0.0, "\n".join(lines), ha="center", va="top", fontsize=6, color=NOTE_COLOUR)


def _legend(ax) -> None:
    import seaborn as sns

    if ax.get_legend() is not None:
        sns.move_legend(ax, "center left", bbox_to_anchor=(1.01, 0.5), frameon=False, title=None)


def _span(values) -> str:
    """'500' or '480-500': the counts behind a figure's numbers."""
    values = [int(v) for v in pd.Series(values).dropna()]
    if not values:
        return "0"
    low, high = min(values), max(values)
    return f"{low}" if low == high else f"{low}-{high}"


def _counts(table: pd.DataFrame) -> str:
    """'n = 500 images from 125 prompts' style phrase from a table's counts."""
    parts = [f"{_span(table['images'])} images"] if "images" in table else []
    if "prompts" in table:
        parts.append(f"{_span(table['prompts'])} prompts")
    return "n = " + " from ".join(parts) if parts else ""


def _interval_note(confidence: float) -> str:
    return f"error bars: {confidence:.0%} intervals, prompt bootstrap (prompts resampled with all their images)"


def _errors(point, low, high, cap: float | None = None):
    """Error-bar lengths below and above each point; an unbounded limit is drawn up to `cap`."""
    point, low, high = (np.asarray(x, dtype=float) for x in (point, low, high))
    if cap is not None:
        high = np.where(np.isinf(high), cap, high)
    return np.nan_to_num(np.vstack([point - low, high - point]).clip(min=0))


def _symmetric(values, centre: float = 0.0, step: float = 0.05, least: float = 0.1) -> float:
    """Half-width of a colour scale around `centre` that holds every finite value, in `step`s."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    largest = float(np.abs(values - centre).max()) if len(values) else 0.0
    return max(least, step * np.ceil(largest / step - 1e-9))


# --- bars -----------------------------------------------------------------------------------------


def _bars(ax, data: pd.DataFrame, *, x: str, y: str, low: str, high: str, order: list, hue: str | None = None,
          hue_order: list | None = None, palette=None, color=None, horizontal: bool = False, cap=None) -> None:
    """Seaborn bars (its own error bars off), then the table's interval on each bar."""
    import seaborn as sns

    category, value = (y, x) if horizontal else (x, y)
    sns.barplot(data=data, x=x, y=y, hue=hue, order=order, hue_order=hue_order, palette=palette, color=color,
                errorbar=None, ax=ax, saturation=1, width=0.8, legend=hue is not None,
                orient="y" if horizontal else "x")
    rows = data.set_index([category, hue] if hue else [category])
    levels = hue_order if hue else [None]
    points, lows, highs, places = [], [], [], []
    for container, level in zip(ax.containers, levels):
        for bar in container:
            centre = bar.get_y() + bar.get_height() / 2 if horizontal else bar.get_x() + bar.get_width() / 2
            key = order[int(round(centre))] if level is None else (order[int(round(centre))], level)
            row = rows.loc[key]
            places.append(centre)
            points.append(row[value])
            lows.append(row[low])
            highs.append(row[high])
    if not places:
        return
    err = _errors(points, lows, highs, cap=cap)
    spec = dict(fmt="none", ecolor="#222222", elinewidth=0.7, capsize=1.5, capthick=0.7)
    if horizontal:
        ax.errorbar(points, places, xerr=err, **spec)
    else:
        ax.errorbar(places, points, yerr=err, **spec)


def _category_ticks(ax, labels: list[str], slot: float) -> None:
    """Categorical x tick labels wrapped to the `slot` inches each category has."""
    ax.set_xticks(range(len(labels)), [_wrap(label, _chars(slot * 0.95)) for label in labels])
    ax.set_xlabel("")


def _variant_data(table: pd.DataFrame) -> tuple[pd.DataFrame, list[str], dict[str, str]]:
    """The table with a `Variant` title column, the titles in the paper's order, and their colours."""
    variants = variant_order(table["variant"])
    colours = variant_colours(variants)
    data = table.assign(Variant=table["variant"].map(variant_title))
    return data, [variant_title(v) for v in variants], {variant_title(v): c for v, c in colours.items()}


def acceptance_bars(rates: pd.DataFrame, source: str, confidence: float = 0.95):
    """Acceptance per model, one bar per variant, with act2i's prompt-bootstrap intervals and the counts."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    models = list(dict.fromkeys(rates["model"]))
    data, titles, palette = _variant_data(rates)
    width = max(COLUMN_WIDTH, 0.3 * len(models) * max(len(titles), 1) + 2.0)
    with plt.rc_context(style()):
        fig, ax = plt.subplots(figsize=(width, 2.5))
        _bars(ax, data, x="model", y="acceptance", low="ci_low", high="ci_high", order=models, hue="Variant",
              hue_order=titles, palette=palette)
        _category_ticks(ax, models, (width - 2.0) / max(len(models), 1))
        ax.set_ylabel("acceptance")
        ax.set_ylim(0, 1)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_title("Acceptance per model and prompt variant")
        _legend(ax)
        _note(fig, f"{source}\n{_counts(rates)} per bar; {_interval_note(confidence)}")
    return fig


def gain_bars(gains: pd.DataFrame, source: str, confidence: float = 0.95):
    """Relative gain of each enriched variant over the base prompt, per model, with intervals; an
    unbounded upper limit (base acceptance 0 in too many draws) is drawn to the top with an arrow."""
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(gains["model"]))
    data, titles, palette = _variant_data(gains)
    data = data.assign(**{c: 100 * data[c] for c in ("relative_gain", "relative_ci_low", "relative_ci_high")})
    finite = data[["relative_gain", "relative_ci_low", "relative_ci_high"]].to_numpy(dtype=float).ravel()
    finite = finite[np.isfinite(finite)]
    top = float(finite.max()) * 1.15 if len(finite) and finite.max() > 0 else 10.0
    width = max(COLUMN_WIDTH, 0.3 * len(models) * max(len(titles), 1) + 2.0)
    with plt.rc_context(style()):
        fig, ax = plt.subplots(figsize=(width, 2.5))
        _bars(ax, data, x="model", y="relative_gain", low="relative_ci_low", high="relative_ci_high", order=models,
              hue="Variant", hue_order=titles, palette=palette, cap=top)
        unbounded = np.isinf(data["relative_ci_high"].to_numpy(dtype=float)) & np.isfinite(data["relative_gain"])
        for container, title in zip(ax.containers, titles):
            for bar in container:
                centre = bar.get_x() + bar.get_width() / 2
                model = models[int(round(centre))]
                hit = unbounded & (data["model"] == model).to_numpy() & (data["Variant"] == title).to_numpy()
                if hit.any():
                    ax.annotate("", (centre, top), (centre, top * 0.9), arrowprops=dict(arrowstyle="->", lw=0.8))
        ax.axhline(0, color="black", linewidth=0.6)
        _category_ticks(ax, models, (width - 2.0) / max(len(models), 1))
        ax.set_ylabel("relative gain over Original (%)")
        ax.set_title("Gain of each enrichment over the original prompt")
        _legend(ax)
        extra = "; arrow: upper limit unbounded (base acceptance 0 in many draws)" if unbounded.any() else ""
        _note(fig, f"{source}; gain = (acc_variant - acc_base) / acc_base\n{_counts(gains)} per bar (both variants); "
                   f"{_interval_note(confidence)}{extra}")
    return fig


def validity_bars(validity: pd.DataFrame, confidence: float = 0.95, source: str = "human acceptance"):
    """AUROC of each automatic metric against human acceptance (`source`: how it was counted;
    0.5 = chance), with intervals."""
    import matplotlib.pyplot as plt

    table = validity.sort_values("auroc", ascending=False, kind="stable")
    order = list(table["metric"])
    with plt.rc_context(style()):
        fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 0.24 * len(table) + 1.1))
        _bars(ax, table, x="auroc", y="metric", low="auroc_ci_low", high="auroc_ci_high", order=order,
              color=OKABE_ITO[0], horizontal=True)
        ax.axvline(0.5, color="black", linewidth=0.6, linestyle="--")
        ax.set_xlim(0, 1)
        ax.set_ylabel("")
        ax.set_xlabel("AUROC against human acceptance (image level)")
        ax.set_title("Which automatic judge agrees with people")
        _note(fig, f"people: {source}\ndashed: chance; {_counts(table)} per bar; {_interval_note(confidence)}")
    return fig


def ranking_points(ranking: pd.DataFrame, confidence: float = 0.95):
    """Bradley-Terry (Davidson) strengths per system with prompt-bootstrap intervals, one panel per
    source of the comparisons (people, each judge); input: `ranking.rank` rows with `judged_by`."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter

    sources = list(dict.fromkeys(ranking["judged_by"]))
    with plt.rc_context(style()):
        fig, axes = plt.subplots(1, len(sources), figsize=(COLUMN_WIDTH * max(1, len(sources)) * 0.9,
                                                           0.28 * ranking["system"].nunique() + 1.3), squeeze=False)
        for ax, judged_by in zip(axes[0], sources):
            part = ranking[ranking["judged_by"] == judged_by].sort_values("strength", kind="stable")
            names = [variant_title(n) if n in VARIANT_COLOURS else str(n) for n in part["system"]]
            y = np.arange(len(part))
            ax.errorbar(part["strength"], y, xerr=_errors(part["strength"], part["ci_low"], part["ci_high"]), fmt="o",
                        color=OKABE_ITO[0], ecolor="#555555", elinewidth=1, capsize=2, markersize=4)
            ax.axvline(0, color="black", linewidth=0.6, linestyle="--")
            ax.set_yticks(y, [_wrap(n, 18) for n in names])
            ax.set_xlabel("strength (log-odds against the average)")
            ax.xaxis.set_major_formatter(FormatStrFormatter("%.2g"))  # no offset text over the label
            ax.set_title(_wrap(f"Side-by-side ranking (Bradley-Terry with ties), judged by {judged_by}", 44))
        _note(fig, f"n = {_span(ranking['pairs'])} comparisons per system from {_span(ranking['prompts'])} prompts; "
                   f"{_interval_note(confidence)}; dashed: the average system")
    return fig


FAILURE_TITLES = {"agents fused": "hybridization (agents fused)", "incomplete action": "incomplete action",
                  "wrong context": "contextual misrepresentation", "missing agent": "missing agent",
                  "missing agent (detector)": "missing agent (detector)", "role reversal": "role reversal",
                  "wrong action": "wrong action", "no contact": "no contact (detector)"}
FAILURE_ORDER = tuple(FAILURE_TITLES)


def failure_title(mode: str) -> str:
    return FAILURE_TITLES.get(mode, mode)


def _failure_order(modes) -> list[str]:
    seen = list(dict.fromkeys(modes))
    return sorted(seen, key=lambda m: FAILURE_ORDER.index(m) if m in FAILURE_ORDER else len(FAILURE_ORDER))


def failure_bars(failures: pd.DataFrame, model: str, source: str, confidence: float = 0.95):
    """Share of images showing each failure mode, per variant, for one model, with intervals."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    part = failures[failures["model"] == model]
    modes = [failure_title(m) for m in _failure_order(part["mode"])]
    data, titles, palette = _variant_data(part)
    data = data.assign(mode=data["mode"].map(failure_title))
    width = max(FULL_WIDTH * 0.7, 0.22 * len(modes) * max(len(titles), 1) + 2.0)
    with plt.rc_context(style()):
        fig, ax = plt.subplots(figsize=(width, 2.5))
        _bars(ax, data, x="mode", y="share", low="ci_low", high="ci_high", order=modes, hue="Variant",
              hue_order=titles, palette=palette)
        _category_ticks(ax, modes, (width - 2.0) / max(len(modes), 1))
        ax.set_ylabel("share of images")
        ax.set_ylim(0, 1)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_title(f"{model}: failure modes per variant")
        _legend(ax)
        _note(fig, f"{source}\n{_counts(part)} per bar; {_interval_note(confidence)}")
    return fig


def label_distribution(counts: pd.DataFrame, title: str = "Benchmark: prompts per label value"):
    """Bar panels of prompts per value for each semantic label (input: `benchmark.label_counts`)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    labels = list(dict.fromkeys(counts["label"]))
    with plt.rc_context(style()):
        fig, axes = plt.subplots(1, len(labels), figsize=(FULL_WIDTH, 2.4), sharey=True, squeeze=False)
        for ax, label, colour in zip(axes[0], labels, OKABE_ITO):
            part = counts[counts["label"] == label]
            sns.barplot(data=part, x="value", y="prompts", color=colour, errorbar=None, ax=ax, saturation=1)
            ax.set_title(label.replace("_", " "))
            ax.set_xlabel("")
            ax.tick_params(axis="x", rotation=35)
            for tick in ax.get_xticklabels():
                tick.set_horizontalalignment("right")
            for x, y in enumerate(part["prompts"]):
                ax.annotate(str(y), (x, y), ha="center", va="bottom", fontsize=6)
        axes[0][0].set_ylabel("prompts")
        fig.suptitle(title)
        _note(fig, f"n = {_span(counts.groupby('label')['prompts'].sum())} prompts per panel (numbers over bars: "
                   "prompts with that value); the benchmark as built, no sampling interval")
    return fig


def length_bars(lengths: pd.DataFrame, source: str, pos: pd.DataFrame | None = None):
    """Prompt length per variant (input: `linguistics.length_table`): mean words and mean tokens
    under each text encoder, the share of prompts over each encoder's limit and, when `pos` (a
    `linguistics.pos_profile` table) has rows, each part of speech's share of the words. The prompt
    set described whole: each bar says its n (prompts), and there is no sampling interval."""
    import matplotlib.pyplot as plt

    panels = _length_panels(lengths)
    has_pos = pos is not None and len(pos) > 0
    widths = [0.8 + 0.3 * len(lengths) * data["measure"].nunique() for _, data in panels] + ([3.4] if has_pos else [])
    with plt.rc_context(style()):
        fig, axes = plt.subplots(1, len(widths), figsize=(max(COLUMN_WIDTH, sum(widths) + 1.2), 2.9), squeeze=False,
                                 gridspec_kw={"width_ratios": widths})
        for ax, (label, data) in zip(axes[0], panels):
            _length_panel(ax, data, label, percent=label.startswith("share"))
        for ax in axes[0][1:len(panels)]:
            ax.get_legend().remove()
        import seaborn as sns

        sns.move_legend(axes[0][0], "lower left", bbox_to_anchor=(0, 1.02), frameon=False, title=None,
                        ncol=max(1, min(len(lengths), int(widths[0] / 0.9))))
        if has_pos:
            _pos_panel(axes[0][-1], pos, lengths)
        fig.suptitle("Prompt length per variant" + (" and parts of speech" if has_pos else ""))
        _note(fig, f"{source}\nn = {_span(lengths['prompts'])} prompts per variant (over each bar: its value and n); "
                   "the prompt set described whole, no sampling interval")
    return fig


def _length_panels(lengths: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """('mean length', words and tokens per encoder) and, with token counts, ('share of prompts over
    the limit', one bar group per encoder)."""
    names = {"mean_words": "words"}
    names.update({c: f"{c.removeprefix('tokens: ')} tokens" for c in lengths.columns if str(c).startswith("tokens: ")})
    panels = [("mean length", _long(lengths, names))]
    shares = {c: f"{m[2]} (limit {m[1]})" for c in lengths.columns if (m := re.fullmatch(r"share over (\d+): (.+)", str(c)))}
    if shares:
        panels.append(("share of prompts over the limit", _long(lengths, shares)))
    return panels


def _long(lengths: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """variant, prompts, measure, value rows from the length table's wide columns."""
    data = lengths.melt(id_vars=["variant", "prompts"], value_vars=list(columns), var_name="measure")
    return data.assign(measure=data["measure"].map(columns))


def _length_panel(ax, data: pd.DataFrame, label: str, percent: bool) -> None:
    import seaborn as sns
    from matplotlib.ticker import PercentFormatter

    data, titles, palette = _variant_data(data)
    measures = list(dict.fromkeys(data["measure"]))
    sns.barplot(data=data, x="measure", y="value", hue="Variant", order=measures, hue_order=titles, palette=palette,
                errorbar=None, ax=ax, saturation=1, width=0.8)
    rows = data.set_index(["measure", "Variant"])
    for container, title in zip(ax.containers, titles):
        for bar in container:
            row = rows.loc[(measures[int(round(bar.get_x() + bar.get_width() / 2))], title)]
            text = f"{row['value']:.0%}" if percent else f"{row['value']:.1f}"
            ax.annotate(f"{text}\nn={int(row['prompts'])}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=5, linespacing=0.9)
    _category_ticks(ax, measures, 0.3 * len(titles))
    ax.set_ylabel(label)
    ax.margins(y=0.2)
    if percent:
        ax.set_ylim(0, 1.15)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))


def _pos_panel(ax, pos: pd.DataFrame, lengths: pd.DataFrame, top: int = 8) -> None:
    """Heatmap of the commonest parts of speech's shares per variant, n (prompts) in each row."""
    order = list(pos.groupby("pos")["share"].mean().sort_values(ascending=False).index[:top])
    variants = variant_order(pos["variant"])
    grid = pos.pivot_table(index="variant", columns="pos", values="share").reindex(index=variants, columns=order)
    prompts = lengths.set_index("variant")["prompts"].reindex(variants)
    text = grid.map(lambda v: f"{v:.0%}" if np.isfinite(v) else "")
    _heatmap(ax, grid, text, cmap="Greys", vmin=0, vmax=max(float(np.nanmax(grid.to_numpy())), 0.01))
    ax.set_yticks(np.arange(len(variants)) + 0.5, [f"{variant_title(v)} (n={int(n)})" if np.isfinite(n) else variant_title(v)
                                                   for v, n in zip(variants, prompts)], rotation=0)
    ax.set_xticks(np.arange(len(order)) + 0.5, order, rotation=0)
    ax.tick_params(left=False, bottom=False)
    ax.set_xlabel("part of speech (share of words)")
    ax.set_ylabel("")


# --- heatmaps -------------------------------------------------------------------------------------


def _heatmap(ax, values: pd.DataFrame, text: pd.DataFrame, *, cmap: str, vmin: float, vmax: float):
    """Seaborn's heatmap look (white grid, no spines, matrix order) drawn directly: `sns.heatmap`
    renders the whole figure once per call to check its tick labels, which costs more than the
    figure. `text` goes in each cell in black or white, whichever contrasts more with the cell (WCAG
    contrast: black above a relative luminance of 0.179); a cell without a value shows its text in
    grey on white. Returns the mesh (for a colorbar)."""
    import matplotlib.pyplot as plt
    from seaborn.utils import relative_luminance

    data = np.ma.masked_invalid(values.to_numpy(dtype=float))
    mesh = ax.pcolormesh(data, cmap=plt.get_cmap(cmap), vmin=vmin, vmax=vmax, edgecolors="white", linewidth=0.6)
    ax.set(xlim=(0, data.shape[1]), ylim=(data.shape[0], 0))
    for spine in ax.spines.values():
        spine.set_visible(False)
    for (r, c), value in np.ndenumerate(data.filled(np.nan)):
        if not text.iat[r, c]:
            continue
        ink = "#666666" if not np.isfinite(value) else (
            "black" if relative_luminance(mesh.cmap(mesh.norm(value))) > 0.179 else "white")
        ax.text(c + 0.5, r + 0.5, text.iat[r, c], ha="center", va="center", fontsize=CELL_FONT, linespacing=0.95, color=ink)
    return mesh


def _limit(v: float, fmt: str) -> str:
    if np.isinf(v):
        return "+∞" if v > 0 else "-∞"
    return fmt.format(v) if np.isfinite(v) else "?"


def _cell(value: float, low: float, high: float, n: float, fmt: str, empty: str = "n/a") -> str:
    """'48%\\n[39%, 57%]\\nn=25' (a value without an interval has none; no value: `empty` and n)."""
    count = f"n={int(n)}" if np.isfinite(n) else ""
    if not np.isfinite(value):
        return f"{empty}\n{count}".strip() if count else ""
    interval = f"\n[{_limit(low, fmt)}, {_limit(high, fmt)}]" if np.isfinite(low) or np.isfinite(high) else ""
    return f"{fmt.format(value)}{interval}\n{count}".strip()


def _grids(table: pd.DataFrame, rows: str, columns: str, fields: list[str], row_order, column_order) -> list[pd.DataFrame]:
    wide = table.drop_duplicates([rows, columns]).set_index([rows, columns])[fields].unstack(columns)
    return [wide[f].reindex(index=row_order, columns=column_order) for f in fields]


def _placed_axes(fig, width: float, height: float, left: float, top: float, w: float, h: float):
    """Axes at `left`, `top` inches from the figure's left and top edges, `w` x `h` inches: heatmaps are
    laid out by hand (a layout engine would lay them out again at every draw)."""
    return fig.add_axes([left / width, 1 - (top + h) / height, w / width, h / height])


def _text_width(labels, points: float = 7) -> float:
    """Inches the longest line of `labels` takes in `points`-size text."""
    lines = [line for label in labels for line in str(label).splitlines()] or [""]
    return max(len(line) for line in lines) * 0.55 * points / 72


def label_heatmap(table: pd.DataFrame, model: str, source: str, value: str = "acceptance", confidence: float = 0.95):
    """Label value x variant heatmap for one model and one label (from `stats.breakdown`)."""
    return label_heatmaps([table], model, source, value, confidence)


def _label_panels(tables: list[pd.DataFrame], model: str, value: str) -> list[tuple]:
    """(label, values, lows, highs, prompts) grids per label table: rows label values, columns variants."""
    low, high = ("ci_low", "ci_high") if value == "acceptance" else (
        f"{value.removesuffix('_gain')}_ci_low", f"{value.removesuffix('_gain')}_ci_high")
    panels = []
    for table in tables:
        part = table[table["model"] == model]
        if value != "acceptance":
            part = part[part["variant"] != "base"]  # the base prompt's gain over itself is zero by definition
        if part.empty:
            continue
        rows, columns = list(dict.fromkeys(part["value"])), variant_order(part["variant"])
        grids = _grids(part, "value", "variant", [value, low, high, "prompts"], rows, columns)
        panels.append((str(part["label"].iloc[0]).replace("_", " "), *grids))
    return panels


def _panel_text(values, lows, highs, prompts, scale: float, fmt: str, empty: str) -> pd.DataFrame:
    return pd.DataFrame([[_cell(values.iat[r, c] * scale, lows.iat[r, c] * scale, highs.iat[r, c] * scale,
                                prompts.iat[r, c], fmt, empty) for c in range(values.shape[1])]
                         for r in range(values.shape[0])])


def _gain_scale(grids: list[pd.DataFrame], scale: float) -> dict:
    """A diverging colour scale symmetric around 0 holding every gain, in steps of 10 percentage points."""
    values = np.concatenate([g.to_numpy(dtype=float).ravel() * scale for g in grids] or [np.zeros(1)])
    half = _symmetric(values, step=10, least=10)
    return dict(cmap=DIVERGING_MAP, vmin=-half, vmax=half)


CELL_WIDTH, CELL_HEIGHT = 0.75, 0.46  # inches: room for "48%", "[39%, 57%]" and "n=25" in 5.5 pt


def label_heatmaps(tables: list[pd.DataFrame], model: str, source: str, value: str = "acceptance",
                   confidence: float = 0.95):
    """One panel per label (each a `stats.breakdown` table) of label value x variant for one model,
    stacked with a shared colour scale: acceptance (0 to 100 %), or the relative gain over base (value
    "relative_gain"; a scale symmetric around 0 and sized to the data). Each cell shows the value,
    its interval ("+∞": unbounded) and its n (prompts)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter, StrMethodFormatter

    gain = value != "acceptance"
    scale = 100.0 if gain else 1.0
    panels = _label_panels(tables, model, value)
    colours = _gain_scale([p[1] for p in panels], scale) if gain else dict(cmap=ACCEPTANCE_MAP, vmin=0, vmax=1)
    n_columns = max((p[1].shape[1] for p in panels), default=1)
    heights = [CELL_HEIGHT * max(p[1].shape[0], 1) for p in panels] or [CELL_HEIGHT]
    left = _text_width([_wrap(v, 22) for p in panels for v in p[1].index]) + 0.25  # the row labels
    top, gap, plot = 0.95, 0.3, CELL_WIDTH * n_columns  # room for the title, the panels' titles and the variant names
    width, height = left + plot + 1.0, top + sum(heights) + gap * (len(heights) - 1) + 0.35
    with plt.rc_context(style()):
        fig = plt.figure(figsize=(width, height))
        bar = _placed_axes(fig, width, height, left + plot + 0.15, top, 0.12, height - top - 0.35)
        y = top
        for i, ((label, values, lows, highs, prompts), h) in enumerate(zip(panels, heights)):
            ax = _placed_axes(fig, width, height, left, y, CELL_WIDTH * values.shape[1], h)
            y += h + gap
            text = _panel_text(values, lows, highs, prompts, scale, "{:+.0f}%" if gain else "{:.0%}",
                               "undefined" if gain else "n/a")
            mesh = _heatmap(ax, values * scale, text, **colours)
            ax.set_xticks(np.arange(values.shape[1]) + 0.5, [variant_title(v) for v in values.columns])
            ax.set_yticks(np.arange(values.shape[0]) + 0.5, [_wrap(v, 22) for v in values.index])
            ax.tick_params(axis="x", labelbottom=i == len(panels) - 1, labeltop=i == 0, top=False, bottom=False)
            ax.tick_params(axis="y", left=False)
            ax.set_title(label, loc="left", fontsize=8, fontweight="bold", pad=3)
        if panels:
            fig.colorbar(mesh, cax=bar).outline.set_linewidth(0)
        bar.set_ylabel("relative gain over Original" if gain else "acceptance")
        bar.yaxis.set_major_formatter(StrMethodFormatter("{x:+.0f}%") if gain else PercentFormatter(1.0))
        fig.suptitle(f"{model}: {'relative gain over Original' if gain else 'acceptance'} by label",
                     y=1 - 0.12 / height, va="top")
        _note(fig, f"{source}\nn = prompts in the cell; [{confidence:.0%} interval], prompt bootstrap within the cell's "
                   "prompts" + ("; undefined: base acceptance 0" if gain else ""), layout=False)
    return fig


def _win_names(names: list[str]) -> tuple[list[str], list[str]]:
    """The matrix's names in the paper's order when they are variants, and their labels."""
    if all(_variant_rank(n) < len(VARIANT_ORDER) for n in names):
        ordered = variant_order(names)
        return ordered, [variant_title(n) for n in ordered]
    return names, names


def win_heatmap(matrix: pd.DataFrame, title: str, source: str, low: pd.DataFrame | None = None,
                high: pd.DataFrame | None = None, pairs: pd.DataFrame | None = None, confidence: float = 0.95,
                wins: str | None = None):
    """Row beats column in this share of the (prompt, seed) pairs where exactly one is accepted, with
    the interval of each share (`low`, `high`) and the pairs compared (`pairs`, the cell's n) when
    given; a colour scale symmetric around one half and sized to the data. `wins`: what a win is, when
    not that (side-by-side comparisons)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    names, labels = _win_names([str(n) for n in matrix.index])
    fill = pd.DataFrame(np.nan, index=names, columns=names)
    values, lows, highs, counts = ((m if m is not None else fill).reindex(index=names, columns=names).astype(float)
                                   for m in (matrix, low, high, pairs))
    half = min(0.5, _symmetric(values.to_numpy(), centre=0.5, least=0.1))
    text = _panel_text(values, lows, highs, counts, 1.0, "{:.0%}", "")
    for i in range(len(names)):
        text.iat[i, i] = ""  # a name against itself
    rows = [_wrap(n, 18) for n in labels]
    left, top, n = _text_width(rows) + 0.45, 0.55, len(names)
    width, height = left + CELL_WIDTH * n + 1.1, top + CELL_HEIGHT * n + 0.7
    with plt.rc_context(style()):
        fig = plt.figure(figsize=(width, height))
        ax = _placed_axes(fig, width, height, left, top, CELL_WIDTH * n, CELL_HEIGHT * n)
        mesh = _heatmap(ax, values, text, cmap=DIVERGING_MAP, vmin=0.5 - half, vmax=0.5 + half)
        bar = fig.colorbar(mesh, cax=_placed_axes(fig, width, height, left + CELL_WIDTH * n + 0.15, top, 0.12, CELL_HEIGHT * n),
                           label="row wins")
        bar.outline.set_linewidth(0)
        bar.ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_xticks(np.arange(n) + 0.5, [_wrap(label, _chars(CELL_WIDTH)) for label in labels])
        ax.set_yticks(np.arange(n) + 0.5, rows)
        ax.tick_params(left=False, bottom=False)
        ax.set_xlabel("column")
        ax.set_ylabel("row")
        ax.set_title(title)
        counts_note = f"n = image pairs compared in the cell ({_span(counts.to_numpy().ravel())}); " if pairs is not None else ""
        meaning = wins or ("share of the (prompt, seed) pairs with exactly one image accepted where it is the row's")
        _note(fig, f"{source}\nrow wins: {meaning}; {counts_note}[{confidence:.0%} interval], prompt bootstrap", layout=False)
    return fig


# --- words and images -----------------------------------------------------------------------------


def word_clouds(counters: dict, title: str = "Words each dimension adds to the original prompt"):
    """One word cloud per enrichment dimension, in the paper's order, drawn in the dimension's colour."""
    import matplotlib.pyplot as plt
    from wordcloud import WordCloud

    names = [n for n in variant_order(counters) if counters[n]]
    colours = variant_colours(list(counters))
    with plt.rc_context(style()):
        fig, axes = plt.subplots(1, max(len(names), 1), figsize=(FULL_WIDTH, 2.3), squeeze=False)
        for ax, name in zip(axes[0], names):
            ink = _darker(colours[name])
            cloud = WordCloud(width=600, height=400, background_color="white", random_state=0, max_words=80,
                              color_func=lambda *args, ink=ink, **kwargs: ink).generate_from_frequencies(counters[name])
            ax.imshow(cloud.to_array())
            ax.set_title(f"{variant_title(name)} ({sum(counters[name].values()):,} words added)", color=ink)
            ax.axis("off")
        if not names:
            axes[0][0].text(0.5, 0.5, "no enriched prompts", ha="center")
            axes[0][0].axis("off")
        fig.suptitle(title)
        _note(fig, "word size: how often the dimension's rewrites add the word to their original prompt "
                   "(stopwords and words already in the original left out)")
    return fig


THUMBNAIL = 512  # pixels: images are shrunk to this before drawing (a cell is about 2 in at 300 dpi)


def _thumbnail(path: Path):
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("RGB")
        img.thumbnail((THUMBNAIL, THUMBNAIL))
        return img


def _blank(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def qualitative_grid(manifest: pd.DataFrame, run_root: str | Path, *, model: str, seed: int, ids: list[str],
                     variants: list[str] | None = None, width: float = FULL_WIDTH):
    """Rows are prompts, columns are variants in the paper's order (Original, Spatial, Emotional,
    Temporal), as in the paper's figures. Each row is labelled with its base prompt; a missing image
    leaves an empty, labelled cell."""
    import matplotlib.pyplot as plt

    part = manifest[(manifest["model"] == model) & (manifest["seed"] == seed) & manifest["id"].isin(ids)]
    variants = variant_order(variants or part["variant"])
    colours = variant_colours(variants)
    cells = {(r.id, r.variant): r.path for r in part.itertuples()}
    base_text = {r.id: r.prompt for r in part[part["variant"] == "base"].itertuples()}
    n_rows, n_cols = len(ids), len(variants)
    cell = width / (n_cols + 0.9)
    with plt.rc_context(style()):
        fig, axes = plt.subplots(n_rows, n_cols, figsize=(width, cell * n_rows + 0.5), squeeze=False)
        for r, prompt_id in enumerate(ids):
            for c, variant in enumerate(variants):
                ax = axes[r][c]
                _blank(ax)
                path = cells.get((prompt_id, variant))
                if path:
                    ax.imshow(_thumbnail(Path(run_root) / path))
                else:
                    ax.text(0.5, 0.5, "missing", ha="center", va="center", fontsize=6, color="#888888")
                if r == 0:
                    ax.set_title(variant_title(variant), fontsize=8, fontweight="bold", color=_darker(colours[variant]))
                if c == 0:
                    label = base_text.get(prompt_id, prompt_id)
                    ax.set_ylabel("\n".join(textwrap.wrap(label, 22)), fontsize=6, rotation=0, ha="right", va="center")
        fig.suptitle(f"{model}: the same prompts under each variant (seed {seed})")
        fig.tight_layout()
    return fig


# --- failure-mode examples ------------------------------------------------------------------------

FLAG_COLUMNS = ["model", "variant", "id", "seed", "mode", "strength", "evidence", "signal"]


def failure_flags(answers: pd.DataFrame | None = None, scores: pd.DataFrame | None = None, *, threshold: float = 0.5,
                  quantile: float | None = None, fused_iou: float = 0.7) -> pd.DataFrame:
    """Images showing each failure mode, one row per (image, mode), strongest first: from the
    annotators' tags when anyone tagged (strength: the share of the image's annotators who did),
    else from the judges with the rules of `stats.failures_from_vqa` and
    `stats.failures_from_geometry` (strength: how far past the rule's cut the image is).
    Columns: model, variant, id, seed, mode, strength, evidence (a phrase), signal (its source)."""
    if answers is not None and len(answers) and answers["tags"].fillna("").str.len().gt(0).any():
        flags = _tag_flags(answers)
    elif scores is not None and len(scores):
        flags = pd.concat([_vqa_flags(scores, threshold, quantile), _geometry_flags(scores, fused_iou)], ignore_index=True)
    else:
        flags = pd.DataFrame(columns=FLAG_COLUMNS)
    return flags.sort_values(["strength", "model", "variant", "id", "seed"], ascending=[False, True, True, True, True],
                             kind="stable", ignore_index=True)[FLAG_COLUMNS]


def _tag_flags(answers: pd.DataFrame) -> pd.DataFrame:
    from .stats import FAILURE_MODES

    key = ["model", "variant", "id", "seed"]
    people = answers.groupby(key, sort=False).size().rename("annotators")
    tags = answers.assign(mode=answers["tags"].fillna("").str.split(",")).explode("mode")
    tags = tags[tags["mode"].isin(FAILURE_MODES)]
    counted = tags.groupby(key + ["mode"], sort=False).size().rename("taggers").reset_index()
    counted = counted.join(people, on=key)
    return counted.assign(strength=counted["taggers"] / counted["annotators"],
                          evidence=[f"tagged by {t} of {n}" for t, n in zip(counted["taggers"], counted["annotators"])],
                          signal="the annotators' tags")


def _vqa_flags(scores: pd.DataFrame, threshold: float, quantile: float | None) -> pd.DataFrame:
    """The three rules of `stats.failures_from_vqa`, with a strength for each flagged image."""
    from .stats import vqa_failure_table

    wide, cut = vqa_failure_table(scores, threshold, quantile)
    if wide is None:
        return pd.DataFrame(columns=FLAG_COLUMNS)
    margin = np.maximum(cut["vqa_agent1"] - wide["vqa_agent1"], cut["vqa_agent2"] - wide["vqa_agent2"])
    rules = {"missing agent": (wide["missing agent"], margin, "agent question {:.2f} below its cut"),
             "wrong action": (wide["wrong action"], cut["vqa_action"] - wide["vqa_action"],
                              "action question {:.2f} below its cut"),
             "role reversal": (wide["role reversal"], wide["vqa_reversed"] - wide["vqa_action"],
                               "reversed roles {:.2f} above the stated ones")}
    return _rule_flags(wide, rules, "the VQA judge's decomposed questions")


def _geometry_flags(scores: pd.DataFrame, fused_iou: float) -> pd.DataFrame:
    """The rules of `stats.failures_from_geometry` (the detector's boxes), with a strength each."""
    from .stats import geometry_failure_table

    wide = geometry_failure_table(scores, fused_iou)
    if wide is None:
        return pd.DataFrame(columns=FLAG_COLUMNS)
    rules = {"missing agent (detector)": (wide["missing agent (detector)"], 2 - wide["geo_agents"], "{:.0f} agent(s) short"),
             "agents fused": (wide["agents fused"], wide["geo_iou"], "boxes overlap, IoU {:.2f}"),
             "no contact": (wide["no contact"], pd.Series(1.0, index=wide.index), "gap does not fit the topology")}
    return _rule_flags(wide, rules, "the detector's boxes")


def _rule_flags(wide: pd.DataFrame, rules: dict, signal: str) -> pd.DataFrame:
    frames = []
    for mode, (flag, strength, phrase) in rules.items():
        hit = flag.fillna(False).astype(bool).to_numpy()
        part = wide.loc[hit, ["model", "variant", "id", "seed"]].assign(mode=mode, strength=strength[hit].to_numpy(dtype=float))
        part["evidence"] = [phrase.format(s) for s in part["strength"]]
        frames.append(part.assign(signal=signal))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=FLAG_COLUMNS)


def _pick(flags: pd.DataFrame, per_mode: int) -> pd.DataFrame:
    """The strongest `per_mode` images of each mode, preferring different prompts, and among equally
    strong images taking the variants in turn (then the paper's variant order, id and seed)."""
    ranked = flags.assign(_rank=flags["variant"].map(_variant_rank))
    ranked = ranked.sort_values(["strength", "_rank", "id", "seed"], ascending=[False, True, True, True], kind="stable")
    ranked["_turn"] = ranked.groupby(["mode", "strength", "variant"], sort=False).cumcount()
    ranked = ranked.sort_values(["strength", "_turn", "_rank", "id", "seed"], ascending=[False, True, True, True, True],
                                kind="stable")
    first = ranked.drop_duplicates(["mode", "id"])
    chosen = pd.concat([first, ranked.drop(first.index)]).groupby("mode", sort=False).head(per_mode)
    return chosen.drop(columns=["_rank", "_turn"])


def failure_examples(flags: pd.DataFrame, manifest: pd.DataFrame, run_root: str | Path, *, model: str,
                     per_mode: int = 3):
    """A few images per failure mode for one model (rows: hybridization, incomplete action,
    contextual misrepresentation, missing agent, role reversal, ..., the modes `flags` holds), each
    with its variant, seed, prompt and why it counts (input: `failure_flags`, the run's manifest)."""
    import matplotlib.pyplot as plt

    part = flags[flags["model"] == model]
    modes = _failure_order(part["mode"])
    chosen = _pick(part, per_mode)
    images = manifest[manifest["model"] == model].set_index(["variant", "id", "seed"])
    signal = "; ".join(dict.fromkeys(part["signal"])) or "no signal"
    cell = (FULL_WIDTH - 1.2) / per_mode
    with plt.rc_context(style()):
        fig, axes = plt.subplots(max(len(modes), 1), per_mode, squeeze=False,
                                 figsize=(FULL_WIDTH, (cell + 0.75) * max(len(modes), 1) + 0.4))
        for ax in axes.ravel():
            _blank(ax)
        for r, mode in enumerate(modes):
            rows = chosen[chosen["mode"] == mode]
            for c, row in enumerate(rows.itertuples()):
                _example(axes[r][c], row, images, Path(run_root), cell)
            axes[r][0].set_ylabel(_wrap(failure_title(mode), 14), fontsize=7, fontweight="bold", rotation=0,
                                  ha="right", va="center")
        if not modes:
            axes[0][0].text(0.5, 0.5, "no image shows a failure mode", ha="center", va="center", fontsize=7)
        fig.suptitle(f"{model}: failure-mode examples")
        _note(fig, f"picked from {signal}: the strongest {per_mode} images of each mode, different prompts first; "
                   f"n = {len(part[['variant', 'id', 'seed']].drop_duplicates())} flagged images of {model} from "
                   f"{part['id'].nunique()} prompts")
    return fig


def _example(ax, row, images: pd.DataFrame, root: Path, cell: float) -> None:
    key = (row.variant, row.id, row.seed)
    if key in images.index:
        found = images.loc[[key]].iloc[0]
        ax.imshow(_thumbnail(root / found["path"]))
        prompt = str(found.get("prompt", ""))
    else:
        ax.text(0.5, 0.5, "image not in the manifest", ha="center", va="center", fontsize=6, color="#888888")
        prompt = ""
    ax.set_title(f"{variant_title(row.variant)}, seed {row.seed}: {row.evidence}", fontsize=5.5,
                 color=_darker(VARIANT_COLOURS.get(row.variant, "#444444")))
    short = textwrap.shorten(prompt, 110, placeholder="...")
    ax.set_xlabel("\n".join(textwrap.wrap(short, _chars(cell, 5))), fontsize=5, color=NOTE_COLOUR)


# --- captions -------------------------------------------------------------------------------------

CAPTIONS = {  # figure file (or its prefix, up to the model or variant) -> what it shows; {x}: the rest of the name
    "acceptance": "Share of images accepted per model and prompt variant, with {level} prompt-bootstrap intervals. "
                  "Acceptance: {source}.",
    "gain_per_dimension": "Relative gain in acceptance of each enriched variant over the original prompt, per model, "
                          "with paired {level} prompt-bootstrap intervals. Acceptance: {source}.",
    "heatmap_": "Acceptance of {x} per label value (emotional valence, spatial topology, temporal extent, rarity) "
                "and variant, each cell with its {level} interval and its prompts. Acceptance: {source}.",
    "gainmap_": "Relative gain over the original prompt of {x} per label value and enriched variant, each cell with "
                "its {level} interval and its prompts. Acceptance: {source}.",
    "winrate_variants_": "{x}, variant against variant: how often the row's image is accepted and the column's is not, "
                         "among the (prompt, seed) pairs where exactly one is, with {level} intervals and the pairs "
                         "compared. Acceptance: {source}.",
    "winrate_models_": "Model against model on the {x} prompts: how often the row's image is accepted and the "
                       "column's is not, among the (prompt, seed) pairs where exactly one is, with {level} intervals "
                       "and the pairs compared. Acceptance: {source}.",
    "wordclouds": "The words each enrichment dimension adds to the original prompts (source: the run's enriched "
                  "prompts, notebook 02).",
    "qualitative_": "{x}: the same prompts (rows) under each variant (columns), one seed (source: the run's images).",
    "failure_modes_": "{x}: share of images showing each failure mode per variant, with {level} prompt-bootstrap "
                      "intervals. Failure modes from the annotators' tags or, without tags, the judges; acceptance: "
                      "{source}.",
    "failure_examples_": "{x}: example images of each failure mode (hybridization, incomplete action, contextual "
                         "misrepresentation, missing agent, role reversal): the strongest cases by the annotators' "
                         "tags or, without tags, the judges (source: the run's images and those judgements).",
    "ranking": "Systems ranked by side-by-side comparisons: Bradley-Terry strengths with ties (Davidson), fitted to "
               "the answers of people and of each VLM judge (asked in both orders), with {level} prompt-bootstrap "
               "intervals.",
    "pairwise_winrate_": "{x}: how often the row's image was preferred to the column's in side-by-side comparisons "
                         "of the same prompt (a tie counts one half), with {level} prompt-bootstrap intervals and the "
                         "comparisons behind each cell.",
    "metric_validity": "How well each automatic judge separates the images people accepted from those they "
                       "rejected (AUROC, 0.5 = chance), with {level} prompt-bootstrap intervals. People: {source}.",
    "judge_leaderboard": "Automatic judges ranked by their agreement with people, overall and per slice, with "
                         "prompt-bootstrap intervals. People: {source}.",
    "prompt_lengths": "Prompt length per variant in words and in each text encoder's tokens, the share over the "
                      "encoder's limit, and parts of speech where spaCy is installed (source: the run's enriched "
                      "prompts, notebook 02; n = prompts).",
    "benchmark_labels": "Prompts per value of each semantic label of the benchmark (source: the run's "
                        "benchmark, notebook 01).",
    "selection_cost_curve": "Gain over the original prompt against the images generated per prompt (rewrites x "
                            "seeds) when the best candidate is selected, with prompt-bootstrap intervals (source: "
                            "the select stage's held-out evaluation).",
}


def caption(name: str, source: str, confidence: float = 0.95) -> str:
    """One sentence on what the figure file `name` (no suffix) shows and where its numbers come from."""
    level = f"{confidence:.0%}"
    for key, text in CAPTIONS.items():
        if name == key or (key.endswith("_") and name.startswith(key)):
            rest = name.removeprefix(key) if key.endswith("_") else name
            return text.format(x=variant_title(rest) if key == "winrate_models_" else rest, source=source, level=level)
    return f"{name.replace('_', ' ').capitalize()}: a figure another stage wrote into the run's figures folder."


# --- writing --------------------------------------------------------------------------------------


def save_figure(fig, stem: str | Path, *, random_weights: bool = False) -> list[Path]:
    """Write `stem.png` and `stem.pdf`; stamp figures made from random-weight models."""
    import matplotlib.pyplot as plt

    from ..fileio import atomic_path

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    if random_weights:
        fig.text(0.5, 1.0, RANDOM_WEIGHTS_NOTE, ha="center", va="bottom", fontsize=7, color="#D55E00")
    # the tight box is measured once (one draw) and used for both files, instead of one extra draw per file
    fig.draw_without_rendering()
    pad = plt.rcParams["savefig.pad_inches"]
    box = fig.get_tightbbox(fig.canvas.get_renderer()).padded(pad, pad)
    written = []
    for suffix in (".png", ".pdf"):
        path = stem.with_suffix(suffix)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=suffix[1:], bbox_inches=box, dpi=300 if suffix == ".png" else None)
        written.append(path)
    plt.close(fig)
    return written
