"""Blind images: a run's PNG re-encoded without its metadata and at one fixed size, for the web app
and the Label Studio export.

act2i writes the model and the variant into a text chunk of every image it makes, and models
differ in resolution; an annotator must never learn either, so images leave the study only
through `blind_png`: metadata dropped, scaled to fit a SIZE x SIZE square (aspect kept), and
letterboxed in neutral grey.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path

SIZE = 512  # pixels, both sides, for every image whatever model made it
LETTERBOX = (128, 128, 128)


def blind_png(path: Path) -> bytes:
    """The image as a bare SIZE x SIZE PNG (see the module docstring)."""
    stat = path.stat()
    return _blind_png(str(path), stat.st_mtime_ns, stat.st_size)  # a remade image is not served from the cache


@functools.lru_cache(maxsize=64)
def _blind_png(path: str, mtime_ns: int, size: int) -> bytes:
    from PIL import Image, ImageOps

    with Image.open(path) as img:
        clean = ImageOps.pad(img.convert("RGB"), (SIZE, SIZE), method=Image.Resampling.LANCZOS, color=LETTERBOX)
    buffer = io.BytesIO()
    clean.save(buffer, format="PNG")
    return buffer.getvalue()
