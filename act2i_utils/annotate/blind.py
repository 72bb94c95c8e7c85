"""Blind images: a run's PNG re-encoded without its metadata and at one fixed size, for the web app
and the Label Studio export.

act2i writes the model and the variant into a text chunk of every image it makes, and models
differ in resolution; an annotator must never learn either, so images leave the study only
through `blind_png`: metadata dropped, scaled to fit a SIZE x SIZE square (aspect kept), and
letterboxed in neutral grey.
"""

from __future__ import annotations

import functools
import hashlib
import io
from pathlib import Path

from ..fileio import atomic_path

SIZE = 512  # pixels, both sides, for every image whatever model made it
LETTERBOX = (128, 128, 128)


def blind_png(path: Path, cache: Path | None = None) -> bytes:
    """The image as a bare SIZE x SIZE PNG (see the module docstring). With `cache` (a folder of the
    run), each image is encoded once and read back after: encoding takes ~25 ms of CPU, reading the
    file well under one, which is what lets one server carry a crowd study."""
    stat = path.stat()
    if cache is None:
        return _blind_png(str(path), stat.st_mtime_ns, stat.st_size)  # a remade image is not served from the cache
    key = hashlib.sha256(f"{path.resolve()}|{stat.st_mtime_ns}|{stat.st_size}|{SIZE}".encode()).hexdigest()[:32]
    stored = cache / f"{key}.png"
    try:
        return stored.read_bytes()
    except FileNotFoundError:
        pass
    data = _blind_png(str(path), stat.st_mtime_ns, stat.st_size)
    cache.mkdir(parents=True, exist_ok=True)
    with atomic_path(stored) as tmp:
        tmp.write_bytes(data)
    return data


@functools.lru_cache(maxsize=64)
def _blind_png(path: str, mtime_ns: int, size: int) -> bytes:
    from PIL import Image, ImageOps

    with Image.open(path) as img:
        clean = ImageOps.pad(img.convert("RGB"), (SIZE, SIZE), method=Image.Resampling.LANCZOS, color=LETTERBOX)
    buffer = io.BytesIO()
    clean.save(buffer, format="PNG", compress_level=1)  # 4x faster than the default, about 20 % larger
    return buffer.getvalue()
