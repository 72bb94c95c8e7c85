"""Figures: functions take tidy tables and return matplotlib Figures; `save_figure` writes them.

One style for every figure: the Okabe-Ito colour-blind-safe palette, sizes that read at a
paper's column width (3.5 in) or full width (7 in).
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
    written = []
    for suffix in (".png", ".pdf"):
        path = stem.with_suffix(suffix)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=suffix[1:], bbox_inches="tight", dpi=300 if suffix == ".png" else None)
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


def _note(fig, text: str) -> None:
    """The acceptance source (or any caveat), under everything else in the figure."""
    fig.tight_layout()
    fig.text(0.5, 0.0, text, ha="center", va="top", fontsize=6, color="#444444", wrap=True)


def _legend(ax) -> None:
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)


def acceptance_bars(rates: pd.DataFrame, source: str):
    """Acceptance per model, one bar per variant, with bootstrap intervals."""
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
            err = np.vstack([part["acceptance"] - part["ci_low"], part["ci_high"] - part["acceptance"]]).clip(min=0)
            ax.bar(x, part["acceptance"], width, yerr=err, capsize=2, color=_colour(variant, i), label=VARIANT_TITLES.get(variant, variant))
        ax.set_xticks(range(len(models)), models)
        ax.set_ylabel("acceptance")
        ax.set_ylim(0, 1)
        _legend(ax)
        _note(fig, source)
    return fig


def gain_bars(gains: pd.DataFrame, source: str):
    """Relative gain of each enriched variant over the base prompt, per model, with intervals."""
    import matplotlib.pyplot as plt
    import numpy as np

    models = list(dict.fromkeys(gains["model"]))
    variants = list(dict.fromkeys(gains["variant"]))
    width = 0.8 / max(len(variants), 1)
    with plt.rc_context(style()):
        fig, ax = plt.subplots(figsize=(max(COLUMN_WIDTH, 1.1 * len(models) + 1.5), 2.4))
        for i, variant in enumerate(variants):
            part = gains[gains["variant"] == variant].set_index("model").reindex(models)
            x = np.arange(len(models)) + (i - (len(variants) - 1) / 2) * width
            values = 100 * part["relative_gain"]
            err = 100 * np.vstack([part["relative_gain"] - part["relative_ci_low"], part["relative_ci_high"] - part["relative_gain"]])
            ax.bar(x, values, width, yerr=np.nan_to_num(err.clip(min=0)), capsize=2, color=_colour(variant, i + 1),
                   label=VARIANT_TITLES.get(variant, variant))
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_xticks(range(len(models)), models)
        ax.set_ylabel("relative gain over base (%)")
        _legend(ax)
        _note(fig, source + "; gain = (acc_variant - acc_base) / acc_base")
    return fig


def label_heatmap(table: pd.DataFrame, model: str, source: str, value: str = "acceptance"):
    """Label value x variant heatmap for one model and one label (from `stats.breakdown`)."""
    import matplotlib.pyplot as plt
    import numpy as np

    part = table[table["model"] == model]
    if value != "acceptance":
        part = part[part["variant"] != "base"]  # the base prompt's gain over itself is zero by definition
    grid = part.pivot_table(index="value", columns="variant", values=value, sort=False)
    grid = grid[[v for v in dict.fromkeys(part["variant"]) if v in grid.columns]]
    label = part["label"].iloc[0].replace("_", " ")
    with plt.rc_context(style()):
        fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 0.3 * len(grid) + 1.2))
        scale = dict(cmap="cividis", vmin=0, vmax=1) if value == "acceptance" else dict(cmap="PuOr", vmin=-1, vmax=1)
        image = ax.imshow(grid.to_numpy(dtype=float), aspect="auto", **scale)
        ax.set_xticks(range(grid.shape[1]), [VARIANT_TITLES.get(v, v) for v in grid.columns])
        ax.set_yticks(range(grid.shape[0]), grid.index)
        for (r, c), v in np.ndenumerate(grid.to_numpy(dtype=float)):
            if np.isfinite(v):
                ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if (value == "acceptance" and v < 0.5) else "black")
        ax.set_title(f"{model}: {value.replace('_', ' ')} by {label}")
        fig.colorbar(image, ax=ax, fraction=0.04)
        _note(fig, source)
    return fig


def win_heatmap(matrix: pd.DataFrame, title: str, source: str):
    """Row beats column in this share of the (prompt, seed) pairs where exactly one is accepted."""
    import matplotlib.pyplot as plt
    import numpy as np

    with plt.rc_context(style()):
        fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 0.35 * len(matrix) + 1.3))
        values = matrix.to_numpy(dtype=float)
        image = ax.imshow(values, cmap="PuOr", vmin=0, vmax=1)
        names = [VARIANT_TITLES.get(n, n) for n in matrix.index]
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.set_yticks(range(len(names)), names)
        for (r, c), v in np.ndenumerate(values):
            if np.isfinite(v):
                ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=6)
        ax.set_title(title)
        fig.colorbar(image, ax=ax, fraction=0.04, label="row wins")
        _note(fig, source)
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


def failure_bars(failures: pd.DataFrame, model: str, source: str):
    """Share of images showing each failure mode, per variant, for one model."""
    import matplotlib.pyplot as plt
    import numpy as np

    part = failures[failures["model"] == model]
    modes = list(dict.fromkeys(part["mode"]))
    variants = list(dict.fromkeys(part["variant"]))
    width = 0.8 / max(len(variants), 1)
    with plt.rc_context(style()):
        fig, ax = plt.subplots(figsize=(FULL_WIDTH * 0.7, 2.3))
        for i, variant in enumerate(variants):
            values = part[part["variant"] == variant].set_index("mode").reindex(modes)["share"]
            ax.bar(np.arange(len(modes)) + (i - (len(variants) - 1) / 2) * width, values, width,
                   color=_colour(variant, i), label=VARIANT_TITLES.get(variant, variant))
        ax.set_xticks(range(len(modes)), modes, rotation=20, ha="right")
        ax.set_ylabel("share of images")
        ax.set_ylim(0, 1)
        ax.set_title(f"{model}: failure modes")
        _legend(ax)
        _note(fig, source)
    return fig


def validity_bars(validity: pd.DataFrame):
    """AUROC of each automatic metric against human acceptance (0.5 = chance)."""
    import matplotlib.pyplot as plt

    table = validity.sort_values("auroc", ascending=True)
    with plt.rc_context(style()):
        fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 0.22 * len(table) + 1.0))
        ax.barh(table["metric"], table["auroc"], color=OKABE_ITO[0])
        ax.axvline(0.5, color="black", linewidth=0.6, linestyle="--")
        ax.set_xlim(0, 1)
        ax.set_xlabel("AUROC against human acceptance (image level)")
    return fig
