"""Figures: functions take tidy tables and return matplotlib Figures; `save_figure` writes them.

One style for every figure: the Okabe-Ito colour-blind-safe palette, sizes that read at a
paper's column width (3.5 in) or full width (7 in). Every estimate drawn carries its interval
(error bars, or "[low, high]" in a heatmap's cell) and every figure says its n (images, prompts or
pairs) and its acceptance source in a note under it; `save_figure` stamps figures of random-weight
models.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
COLUMN_WIDTH = 3.5  # inches
FULL_WIDTH = 7.0
RANDOM_WEIGHTS_NOTE = "random-weight models (smoke profile): not a result"


def style() -> dict:
    """Matplotlib rc settings shared by all act2i figures."""
    from cycler import cycler

    return {
        "figure.dpi": 150, "savefig.dpi": 300, "savefig.bbox": "tight",
        "font.size": 8, "axes.titlesize": 9, "axes.labelsize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7,
        "legend.fontsize": 7, "axes.spines.top": False, "axes.spines.right": False,
        "axes.prop_cycle": cycler(color=OKABE_ITO), "pdf.fonttype": 42,
    }


def label_distribution(counts: pd.DataFrame, title: str = "Benchmark labels"):
    """Bar panels of prompts per value for each semantic label (input: `benchmark.label_counts`)."""
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(counts["label"]))
    with plt.rc_context(style()):
        fig, axes = plt.subplots(1, len(labels), figsize=(FULL_WIDTH, 2.2), sharey=True)
        for ax, label, colour in zip(axes, labels, OKABE_ITO):
            part = counts[counts["label"] == label]
            ax.bar(part["value"], part["prompts"], color=colour)
            ax.set_title(label.replace("_", " "))
            ax.tick_params(axis="x", rotation=35)
            for tick in ax.get_xticklabels():
                tick.set_horizontalalignment("right")
            for x, y in enumerate(part["prompts"]):
                ax.annotate(str(y), (x, y), ha="center", va="bottom", fontsize=6)
        axes[0].set_ylabel("prompts")
        fig.suptitle(title, fontsize=9)
        fig.tight_layout()
    return fig


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


VARIANT_TITLES = {"base": "Original", "spatial": "Spatial", "emotional": "Emotional", "temporal": "Temporal",
                  "combined": "Combined"}


def qualitative_grid(manifest: pd.DataFrame, run_root: str | Path, *, model: str, seed: int, ids: list[str],
                     variants: list[str] | None = None, width: float = FULL_WIDTH):
    """Rows are prompts, columns are variants (Original, Spatial, ...), as in the paper's figures.

    Each row is labelled with its base prompt; a missing image leaves an empty, labelled cell.
    """
    import textwrap

    import matplotlib.pyplot as plt
    from PIL import Image

    part = manifest[(manifest["model"] == model) & (manifest["seed"] == seed) & manifest["id"].isin(ids)]
    variants = variants or list(dict.fromkeys(part["variant"]))
    cells = {(r.id, r.variant): r.path for r in part.itertuples()}
    base_text = {r.id: r.prompt for r in part[part["variant"] == "base"].itertuples()}
    n_rows, n_cols = len(ids), len(variants)
    cell = width / (n_cols + 0.9)
    with plt.rc_context(style()):
        fig, axes = plt.subplots(n_rows, n_cols, figsize=(width, cell * n_rows + 0.4), squeeze=False)
        for r, prompt_id in enumerate(ids):
            for c, variant in enumerate(variants):
                ax = axes[r][c]
                ax.set_xticks([])
                ax.set_yticks([])
                for spine in ax.spines.values():
                    spine.set_visible(False)
                path = cells.get((prompt_id, variant))
                if path:
                    with Image.open(Path(run_root) / path) as img:
                        ax.imshow(img.convert("RGB"))
                else:
                    ax.text(0.5, 0.5, "missing", ha="center", va="center", fontsize=6, color="#888888")
                if r == 0:
                    ax.set_title(VARIANT_TITLES.get(variant, variant.title()), fontsize=8, fontweight="bold")
                if c == 0:
                    label = base_text.get(prompt_id, prompt_id)
                    ax.set_ylabel("\n".join(textwrap.wrap(label, 22)), fontsize=6, rotation=0, ha="right", va="center")
        fig.suptitle(f"{model}, seed {seed}", fontsize=8)
        fig.tight_layout()
    return fig


VARIANT_COLOURS = {"base": "#999999", "spatial": "#0072B2", "emotional": "#E69F00", "temporal": "#009E73",
                   "combined": "#CC79A7"}


def _colour(variant: str, i: int) -> str:
    return VARIANT_COLOURS.get(variant, OKABE_ITO[(i + 4) % len(OKABE_ITO)])


def _note(fig, text: str, layout: bool = True) -> None:
    """The acceptance source (or any caveat), under everything else in the figure, wrapped once to
    the figure's width (matplotlib's own wrapping re-measures the text at every draw)."""
    import textwrap

    if layout:
        fig.tight_layout()
    width = max(40, int(fig.get_figwidth() * 22))  # characters of 6 pt text per line
    lines = [wrapped for line in text.splitlines() for wrapped in (textwrap.wrap(line, width) or [""])]
    fig.text(0.5, 0.0, "\n".join(lines), ha="center", va="top", fontsize=6, color="#444444")


def _legend(ax) -> None:
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)


def _span(values) -> str:
    """'500' or '480-500': the counts behind a figure's numbers."""
    values = [int(v) for v in pd.Series(values).dropna()]
    if not values:
        return "0"
    low, high = min(values), max(values)
    return f"{low}" if low == high else f"{low}-{high}"


def _counts(table: pd.DataFrame) -> str:
    """'n = 500 images from 125 prompts per bar' style sentence from a table's counts."""
    parts = [f"{_span(table['images'])} images"] if "images" in table else []
    if "prompts" in table:
        parts.append(f"{_span(table['prompts'])} prompts")
    return "n = " + " from ".join(parts) if parts else ""


def _interval_note(confidence: float) -> str:
    return f"error bars: {confidence:.0%} intervals, prompt bootstrap (prompts resampled with all their images)"


def _errors(point, low, high, cap: float | None = None):
    """Error-bar lengths below and above each point; an unbounded limit is drawn up to `cap`."""
    import numpy as np

    point, low, high = (np.asarray(x, dtype=float) for x in (point, low, high))
    if cap is not None:
        high = np.where(np.isinf(high), cap, high)
    return np.nan_to_num(np.vstack([point - low, high - point]).clip(min=0))


def acceptance_bars(rates: pd.DataFrame, source: str, confidence: float = 0.95):
    """Acceptance per model, one bar per variant, with prompt-bootstrap intervals and the counts."""
    import matplotlib.pyplot as plt
    import numpy as np

    models = list(dict.fromkeys(rates["model"]))
    variants = list(dict.fromkeys(rates["variant"]))
    width = 0.8 / len(variants)
    with plt.rc_context(style()):
        fig, ax = plt.subplots(figsize=(max(COLUMN_WIDTH, 1.1 * len(models) + 1.5), 2.4))
        for i, variant in enumerate(variants):
            part = rates[rates["variant"] == variant].set_index("model").reindex(models)
            x = np.arange(len(models)) + (i - (len(variants) - 1) / 2) * width
            err = _errors(part["acceptance"], part["ci_low"], part["ci_high"])
            ax.bar(x, part["acceptance"], width, yerr=err, capsize=2, color=_colour(variant, i), label=VARIANT_TITLES.get(variant, variant))
        ax.set_xticks(range(len(models)), models)
        ax.set_ylabel("acceptance")
        ax.set_ylim(0, 1)
        _legend(ax)
        _note(fig, f"{source}\n{_counts(rates)} per bar; {_interval_note(confidence)}")
    return fig


def gain_bars(gains: pd.DataFrame, source: str, confidence: float = 0.95):
    """Relative gain of each enriched variant over the base prompt, per model, with intervals; an
    unbounded upper limit (base acceptance 0 in too many draws) is drawn to the top with an arrow."""
    import matplotlib.pyplot as plt
    import numpy as np

    models = list(dict.fromkeys(gains["model"]))
    variants = list(dict.fromkeys(gains["variant"]))
    width = 0.8 / max(len(variants), 1)
    finite = 100 * pd.concat([gains["relative_gain"], gains["relative_ci_low"], gains["relative_ci_high"]])
    finite = finite[np.isfinite(finite)]
    top = float(finite.max()) * 1.15 if len(finite) and finite.max() > 0 else 10.0
    with plt.rc_context(style()):
        fig, ax = plt.subplots(figsize=(max(COLUMN_WIDTH, 1.1 * len(models) + 1.5), 2.4))
        unbounded = False
        for i, variant in enumerate(variants):
            part = gains[gains["variant"] == variant].set_index("model").reindex(models)
            x = np.arange(len(models)) + (i - (len(variants) - 1) / 2) * width
            values = 100 * part["relative_gain"]
            err = _errors(values, 100 * part["relative_ci_low"], 100 * part["relative_ci_high"], cap=top)
            ax.bar(x, values, width, yerr=err, capsize=2, color=_colour(variant, i + 1),
                   label=VARIANT_TITLES.get(variant, variant))
            for xi, high in zip(x, part["relative_ci_high"]):
                if np.isinf(high):
                    unbounded = True
                    ax.annotate("", (xi, top), (xi, top * 0.9), arrowprops=dict(arrowstyle="->", lw=0.8))
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_xticks(range(len(models)), models)
        ax.set_ylabel("relative gain over base (%)")
        _legend(ax)
        extra = "; arrow: upper limit unbounded (base acceptance 0 in many draws)" if unbounded else ""
        _note(fig, f"{source}; gain = (acc_variant - acc_base) / acc_base\n{_counts(gains)} per bar (both variants); "
                   f"{_interval_note(confidence)}{extra}")
    return fig


def _ink(image, value: float) -> str:
    """Black or white, whichever reads on the colour `image` gives `value`."""
    red, green, blue, _ = image.cmap(image.norm(value))
    return "white" if 0.299 * red + 0.587 * green + 0.114 * blue < 0.5 else "black"


def _cell(value: float, low: float, high: float, signed: bool) -> str:
    import numpy as np

    if not np.isfinite(value):
        return ""
    fmt = "{:+.2f}" if signed else "{:.2f}"
    limit = (lambda v: "inf" if np.isinf(v) else ("?" if not np.isfinite(v) else fmt.format(v)))
    return f"{fmt.format(value)}\n[{limit(low)}, {limit(high)}]"


def label_heatmap(table: pd.DataFrame, model: str, source: str, value: str = "acceptance", confidence: float = 0.95):
    """Label value x variant heatmap for one model and one label (from `stats.breakdown`): each cell
    shows the value and its interval; each row its number of prompts."""
    return label_heatmaps([table], model, source, value, confidence)


def label_heatmaps(tables: list[pd.DataFrame], model: str, source: str, value: str = "acceptance",
                   confidence: float = 0.95):
    """One panel per label (each a `stats.breakdown` table) of label value x variant for one model,
    stacked with a shared colour scale: acceptance, or the relative gain over base (value
    "relative_gain"). Each cell shows the value and its interval ("inf": unbounded); each row its
    number of prompts."""
    import matplotlib.pyplot as plt
    import numpy as np

    low_col, high_col = ("ci_low", "ci_high") if value == "acceptance" else (
        f"{value.removesuffix('_gain')}_ci_low", f"{value.removesuffix('_gain')}_ci_high")
    panels = []
    for table in tables:
        part = table[table["model"] == model]
        if value != "acceptance":
            part = part[part["variant"] != "base"]  # the base prompt's gain over itself is zero by definition
        if part.empty:
            continue
        grids = [part.pivot_table(index="value", columns="variant", values=c, sort=False, dropna=False)
                 for c in (value, low_col, high_col)]
        columns = [v for v in dict.fromkeys(part["variant"]) if v in grids[0].columns]
        grids = [g.reindex(index=grids[0].index, columns=columns) for g in grids]
        prompts = part.groupby("value", sort=False)["prompts"].max().reindex(grids[0].index)
        panels.append((part["label"].iloc[0].replace("_", " "), columns, grids, prompts))
    scale = dict(cmap="cividis", vmin=0, vmax=1) if value == "acceptance" else dict(cmap="PuOr", vmin=-1, vmax=1)
    heights = [max(len(p[2][0]), 1) + 0.9 for p in panels] or [1]
    n_columns = max((len(p[1]) for p in panels), default=1)
    with plt.rc_context(style()):
        fig, axes = plt.subplots(len(heights), 1, squeeze=False, gridspec_kw={"height_ratios": heights},
                                 figsize=(COLUMN_WIDTH + 0.35 * max(n_columns - 3, 0), 0.34 * sum(heights) + 0.8))
        image = None
        fig.subplots_adjust(hspace=0.45, top=1 - 0.75 / fig.get_figheight())  # room for the title and the top labels
        for i, (ax, (label, columns, grids, prompts)) in enumerate(zip(axes[:, 0], panels)):
            values = grids[0].to_numpy(dtype=float)
            image = ax.imshow(values, aspect="auto", **scale)
            ax.set_xticks(range(len(columns)), [VARIANT_TITLES.get(v, v) for v in columns])
            ax.tick_params(axis="x", labelbottom=i == len(panels) - 1, labeltop=i == 0, top=i == 0)
            ax.set_yticks(range(len(values)), [f"{v} (n={int(n)})" if np.isfinite(n) else str(v)
                                               for v, n in zip(grids[0].index, prompts)])
            lows, highs = grids[1].to_numpy(dtype=float), grids[2].to_numpy(dtype=float)
            for (r, c), v in np.ndenumerate(values):
                text = _cell(v, lows[r, c], highs[r, c], signed=value != "acceptance")
                if text:
                    ax.text(c, r, text, ha="center", va="center", fontsize=5, linespacing=0.9, color=_ink(image, v))
            ax.set_title(label, fontsize=8, pad=14 if i == 0 else 4)
        if image is not None:
            fig.colorbar(image, ax=axes[:, 0].tolist(), fraction=0.04, pad=0.02)
        fig.suptitle(f"{model}: {value.replace('_', ' ')} by label", fontsize=9, y=0.995, va="top")
        _note(fig, f"{source}\nn = prompts per row; [{confidence:.0%} interval], prompt bootstrap within the row's prompts",
              layout=False)
    return fig


def win_heatmap(matrix: pd.DataFrame, title: str, source: str, low: pd.DataFrame | None = None,
                high: pd.DataFrame | None = None, pairs: pd.DataFrame | None = None, confidence: float = 0.95):
    """Row beats column in this share of the (prompt, seed) pairs where exactly one is accepted, with
    the interval of each share (`low`, `high`) and the pairs compared (`pairs`) when given."""
    import matplotlib.pyplot as plt
    import numpy as np

    with plt.rc_context(style()):
        fig, ax = plt.subplots(figsize=(COLUMN_WIDTH + 0.25 * max(len(matrix) - 4, 0), 0.42 * len(matrix) + 1.3))
        values = matrix.to_numpy(dtype=float)
        image = ax.imshow(values, cmap="PuOr", vmin=0, vmax=1)
        names = [VARIANT_TITLES.get(n, n) for n in matrix.index]
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.set_yticks(range(len(names)), names)
        lows = low.to_numpy(dtype=float) if low is not None else np.full_like(values, np.nan)
        highs = high.to_numpy(dtype=float) if high is not None else np.full_like(values, np.nan)
        for (r, c), v in np.ndenumerate(values):
            text = _cell(v, lows[r, c], highs[r, c], signed=False) if low is not None else (f"{v:.2f}" if np.isfinite(v) else "")
            if text:
                ax.text(c, r, text, ha="center", va="center", fontsize=5, linespacing=0.9, color=_ink(image, v))
        ax.set_title(title)
        fig.colorbar(image, ax=ax, fraction=0.04, label="row wins")
        counts = f"n = {_span(pairs.to_numpy(dtype=float).ravel())} image pairs per cell; " if pairs is not None else ""
        _note(fig, f"{source}\n{counts}[{confidence:.0%} interval], prompt bootstrap")
    return fig


def _dark_colour(word, font_size, position, orientation, random_state=None, **kwargs) -> str:
    """Word-cloud colours from the palette's darker half, readable on white."""
    return ["#0072B2", "#D55E00", "#009E73", "#000000", "#CC79A7"][random_state.randint(0, 4) if random_state else 0]


def word_clouds(counters: dict, title: str = "Words each dimension adds to the base prompt"):
    """One word cloud per enrichment dimension."""
    import matplotlib.pyplot as plt
    from wordcloud import WordCloud

    names = [n for n, c in counters.items() if c]
    with plt.rc_context(style()):
        fig, axes = plt.subplots(1, max(len(names), 1), figsize=(FULL_WIDTH, 2.2), squeeze=False)
        for ax, name in zip(axes[0], names):
            cloud = WordCloud(width=600, height=400, background_color="white", random_state=0, max_words=80,
                              color_func=_dark_colour).generate_from_frequencies(counters[name])
            ax.imshow(cloud.to_array())
            ax.set_title(VARIANT_TITLES.get(name, name))
            ax.axis("off")
        if not names:
            axes[0][0].text(0.5, 0.5, "no enriched prompts", ha="center")
            axes[0][0].axis("off")
        fig.suptitle(title, fontsize=9)
    return fig


def failure_bars(failures: pd.DataFrame, model: str, source: str, confidence: float = 0.95):
    """Share of images showing each failure mode, per variant, for one model, with intervals."""
    import matplotlib.pyplot as plt
    import numpy as np

    part = failures[failures["model"] == model]
    modes = list(dict.fromkeys(part["mode"]))
    variants = list(dict.fromkeys(part["variant"]))
    width = 0.8 / max(len(variants), 1)
    with plt.rc_context(style()):
        fig, ax = plt.subplots(figsize=(FULL_WIDTH * 0.7, 2.3))
        for i, variant in enumerate(variants):
            rows = part[part["variant"] == variant].set_index("mode").reindex(modes)
            ax.bar(np.arange(len(modes)) + (i - (len(variants) - 1) / 2) * width, rows["share"], width,
                   yerr=_errors(rows["share"], rows["ci_low"], rows["ci_high"]), capsize=1.5,
                   color=_colour(variant, i), label=VARIANT_TITLES.get(variant, variant))
        ax.set_xticks(range(len(modes)), modes, rotation=20, ha="right")
        ax.set_ylabel("share of images")
        ax.set_ylim(0, 1)
        ax.set_title(f"{model}: failure modes")
        _legend(ax)
        _note(fig, f"{source}\n{_counts(part)} per bar; {_interval_note(confidence)}")
    return fig


def validity_bars(validity: pd.DataFrame, confidence: float = 0.95):
    """AUROC of each automatic metric against human acceptance (0.5 = chance), with intervals."""
    import matplotlib.pyplot as plt

    table = validity.sort_values("auroc", ascending=True)
    with plt.rc_context(style()):
        fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 0.22 * len(table) + 1.0))
        ax.barh(table["metric"], table["auroc"], color=OKABE_ITO[0],
                xerr=_errors(table["auroc"], table["auroc_ci_low"], table["auroc_ci_high"]), capsize=2)
        ax.axvline(0.5, color="black", linewidth=0.6, linestyle="--")
        ax.set_xlim(0, 1)
        ax.set_xlabel("AUROC against human acceptance (image level)")
        _note(fig, f"{_counts(table)} per bar; {_interval_note(confidence)}")
    return fig
