"""Packaging: environment.yml names the same dependencies as pyproject.toml; the repo layout holds."""

import re
import tomllib

import yaml


def _norm(req: str) -> str:
    return re.sub(r"\s+", "", req).lower()


def test_environment_yml_matches_pyproject(repo):
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    wanted = {_norm(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        wanted |= {_norm(r) for r in extra}
    env = yaml.safe_load((repo / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    listed = {_norm(r) for r in pip if not r.startswith("-e")}
    assert listed == wanted, f"only in environment.yml: {listed - wanted}; only in pyproject.toml: {wanted - listed}"
    assert any(r.startswith("-e .") for r in pip), "environment.yml must install this checkout"
    assert "python=3.11" in env["dependencies"] and "pip" in env["dependencies"]


def test_torch_requirement_admits_the_pinned_cpu_build(repo):
    from packaging.requirements import Requirement

    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    torch = next(Requirement(r) for r in project["dependencies"] if r.startswith("torch"))
    assert torch.specifier.contains("2.13.0")
    assert 'TORCH   ?= torch==2.13.0' in (repo / "Makefile").read_text()


def test_layout_and_ignores(repo):
    for folder in ("act2i_utils", "notebooks", "configs", "figures", "tests", "docs"):
        assert (repo / folder).is_dir(), folder
    for name in ("environment.yml", "Makefile", "README.md", ".ci/run", "pyproject.toml"):
        assert (repo / name).is_file(), name
    ignored = (repo / ".gitignore").read_text().split()
    assert {"/runs/", "/.venv/"} <= set(ignored)
    assert "make test" in (repo / ".ci/run").read_text()


def test_importing_the_package_is_free():
    import subprocess
    import sys

    code = "import sys, act2i_utils, act2i_utils.config, act2i_utils.runs, act2i_utils.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
