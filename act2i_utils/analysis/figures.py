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
            fig.savefig(tmp, format=suffix[1:])
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
