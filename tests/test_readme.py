"""The README's claims that code can check: its Python snippet runs on the smoke profile, its
links point at files that exist, and it stays short."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")


def test_readme_is_short():
    assert README.count("\n") <= 210


def test_readme_links_exist():
    for target in re.findall(r"\]\(([^)#:]+)\)", README) + re.findall(r'src="([^"]+)"', README):
        assert (REPO / target).exists(), target


def test_python_snippet_runs_on_the_smoke_profile(tmp_path, monkeypatch, capsys):
    snippet = README.split("## From Python", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)  # the snippet's runs/demo lands in a temporary folder
    exec(compile(snippet, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "acceptance" in out and (tmp_path / "runs" / "demo" / "report.html").is_file()
