"""`act2i figures`: a run's figures published on purpose, small, with their source."""

import pytest
from PIL import Image

from act2i_utils.cli import main
from act2i_utils.errors import InputError
from act2i_utils.runs import open_run


def test_figures_are_published_with_their_source(tmp_path, capsys):
    run = open_run(tmp_path / "runs" / "demo", "smoke", command="test")
    run.figures.mkdir()
    Image.new("RGB", (3000, 1500), "white").save(run.figures / "acceptance.png")
    (run.figures / "acceptance.pdf").write_bytes(b"%PDF-1.4")
    out = tmp_path / "figures"
    assert main(["figures", "--run", str(run.root), "--name", "smoke", "--out", str(out)]) == 0
    assert sorted(p.name for p in (out / "smoke").iterdir()) == ["SOURCE.md", "acceptance.png"]
    assert Image.open(out / "smoke" / "acceptance.png").size == (640, 320)
    source = (out / "smoke" / "SOURCE.md").read_text()
    assert "Random-weight models" in source and "profile `smoke`" in source and "commit:" in source
    assert main(["figures", "--run", str(run.root), "--name", "smoke", "--out", str(out), "--pdf"]) == 0
    assert (out / "smoke" / "acceptance.pdf").is_file()


def test_publishing_refuses_to_replace_a_folder_it_did_not_write(tmp_path):
    from act2i_utils.analysis.publish import publish_figures

    run = open_run(tmp_path / "r", "smoke", command="test")
    with pytest.raises(InputError, match="run the analyze stage"):
        publish_figures(run, tmp_path / "out")
    run.figures.mkdir()
    Image.new("RGB", (10, 10)).save(run.figures / "a.png")
    (tmp_path / "mine").mkdir()
    with pytest.raises(InputError, match="Refusing to replace"):
        publish_figures(run, tmp_path / "mine")
