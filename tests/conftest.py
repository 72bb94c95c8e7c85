"""Shared fixtures: offline, quiet, and a private cache of tiny models for the session."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # `benchmarks` holds the code only tests and benchmark scripts use


@pytest.fixture(scope="session", autouse=True)
def act2i_cache(tmp_path_factory):
    """Every test session builds its tiny models into a fresh cache folder."""
    folder = tmp_path_factory.mktemp("act2i-cache")
    os.environ["ACT2I_CACHE"] = str(folder)
    return folder


@pytest.fixture
def repo() -> Path:
    return REPO
