"""End to end: `make reproduce` on the smoke profile into a fresh run, after installation:
wall time and peak memory (the resident memory of the whole process tree, sampled every 0.1 s).
Target: under 5 minutes and under 4 GiB on 2 cores.

    python benchmarks/bench_reproduce.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import report  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def tree_rss(proc) -> int:
    import psutil

    try:
        parent = psutil.Process(proc.pid)
        return sum(p.memory_info().rss for p in [parent, *parent.children(recursive=True)])
    except psutil.Error:
        return 0


def main() -> dict:
    run = f"bench-{os.getpid()}"
    cache_warm = (Path(os.environ.get("ACT2I_CACHE", "~/.cache/act2i")).expanduser() / "tiny").is_dir()
    start = time.perf_counter()
    proc = subprocess.Popen(["make", "reproduce", f"RUN={run}"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc))
        time.sleep(0.1)
    seconds = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace")
    shutil.rmtree(REPO / "runs" / run, ignore_errors=True)
    shutil.rmtree(REPO / "figures" / run, ignore_errors=True)
    if proc.returncode != 0:
        raise SystemExit(f"make reproduce failed:\n{err[-3000:]}")
    gib = peak / 2 ** 30
    rows = [{"way": "make reproduce (smoke, notebooks 01-05)", "seconds": seconds, "peak_memory_gib": gib}]
    return report("reproduce", rows, {"tiny_models_already_built": cache_warm, "target": "< 300 s and < 4 GiB",
                                      "met": seconds < 300 and gib < 4})


if __name__ == "__main__":
    main()
