"""Progress bars for long work: widgets in a live notebook, plain text where the output is kept.

A notebook run by papermill saves its outputs, and a widget bar is saved as "0% 0/375" whatever it
reached; `act2i run` therefore sets `ACT2I_PROGRESS=text`, and the bars become text lines that read
finished in the saved notebook.
"""

from __future__ import annotations

import os
import sys

TEXT = "text"


def progress_bar(**kwargs):
    """A tqdm bar: `tqdm.auto` normally, a plain-text bar on stdout when `ACT2I_PROGRESS=text`."""
    if os.environ.get("ACT2I_PROGRESS") == TEXT:
        from tqdm.std import tqdm

        return tqdm(file=sys.stdout, ascii=True, mininterval=5, **kwargs)
    from tqdm.auto import tqdm

    return tqdm(**kwargs)
