"""Publishing a run's figures into the checkout, on purpose: `act2i figures --run R --name NAME`.

A run writes only inside its own directory; this is the one command that copies its figures out,
into `figures/NAME/`, with a `SOURCE.md` that says which run, profile, commit and date made them
and whether the models had random weights. PNGs are shrunk to a width that reads on a web page and stored
with a palette, so a published folder stays small; PDFs are copied only when asked.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import InputError
from ..fileio import write_text

MAX_WIDTH = 640  # pixels: the README shows three of these side by side


def publish_figures(run, target: str | Path, *, pdf: bool = False, max_width: int = MAX_WIDTH) -> list[Path]:
    """Copy the run's figures into `target` (replacing what was there) with a SOURCE.md; returns the files.

    PNGs are shrunk to `max_width` and stored with a 256-colour palette, so a published folder
    stays a few hundred KB."""
    from PIL import Image

    pngs = sorted(run.figures.glob("*.png"))
    if not pngs:
        raise InputError(f"{run.figures} holds no figures; run the analyze stage (notebook 06) first.")
    target = Path(target)
    if target.exists():
        if not (target / "SOURCE.md").is_file():
            raise InputError(f"Refusing to replace {target}: it was not written by `act2i figures` (no SOURCE.md).")
        shutil.rmtree(target)
    target.mkdir(parents=True)
    written = []
    for png in pngs:
        with Image.open(png) as img:
            image = img.convert("RGB")
        if image.width > max_width:
            image = image.resize((max_width, round(image.height * max_width / image.width)), Image.LANCZOS)
        out = target / png.name
        image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, format="PNG", optimize=True)  # small in git
        written.append(out)
        if pdf and png.with_suffix(".pdf").is_file():
            written.append(Path(shutil.copy2(png.with_suffix(".pdf"), target / png.with_suffix(".pdf").name)))
    write_text(target / "SOURCE.md", source_note(run, [p.name for p in written], target.name))
    return written + [target / "SOURCE.md"]


def source_note(run, names: list[str], name: str) -> str:
    """Which run made these figures, with what, when; random weights said first when they apply."""
    prov = run.provenance()
    env = prov.get("environment", {})
    git = env.get("git", {})
    commit = git.get("commit") or "unknown"
    lines = ["# Source of these figures", ""]
    if run.random_weights:
        lines += ["**Random-weight models (smoke profile): these figures show what the pipeline draws; "
                  "they say nothing about any real model.**", ""]
    lines += [
        f"- run: `{run.name}` (profile `{run.config.name}`: {run.config.description})",
        f"- made: {prov.get('started', 'unknown')} to {prov.get('ended', 'unknown')}",
        f"- commit: `{commit}`{' (with uncommitted changes)' if git.get('dirty') else ''}",
        f"- packages: " + ", ".join(f"{k} {v}" for k, v in sorted(env.get("packages", {}).items())
                                   if k in ("act2i", "torch", "diffusers", "transformers")),
        f"- published with `act2i figures --run {run.name} --name {name}`",
        "",
        "Files: " + ", ".join(f"`{n}`" for n in names),
        "",
    ]
    return "\n".join(lines)
