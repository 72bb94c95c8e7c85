"""Run directory: config.yaml and provenance.json hold what they promise; reruns resume."""

import json

import pytest

from act2i_utils.errors import ConfigError
from act2i_utils.models import resolve_model
from act2i_utils.runs import open_run


def test_new_run_writes_config_and_provenance(tmp_path):
    run = open_run(tmp_path / "r", "smoke", ["generate.seeds=[7]"])
    assert (run.root / "config.yaml").is_file()
    assert "seeds:\n  - 7" in (run.root / "config.yaml").read_text()
    prov = json.loads(run.provenance_path.read_text())
    env = prov["environment"]
    assert {"torch", "diffusers", "transformers", "act2i"} <= set(env["packages"])
    assert env["python"].count(".") == 2
    assert set(env["git"]) == {"commit", "dirty"}
    assert "gpus" in env["device"] and "cpu_threads" in env["device"]
    assert prov["started"] and prov["profile"] == "smoke"


def test_stage_times_and_models_are_recorded(tmp_path):
    run = open_run(tmp_path / "r", "smoke")
    with run.stage("generate"):
        run.record_model(resolve_model("tiny:clip"), "CLIP judge")
    prov = run.provenance()
    stage = prov["stages"]["generate"]
    assert stage["status"] == "done" and stage["started"] <= stage["ended"]
    model = prov["models"]["tiny:clip"]
    assert model["kind"] == "tiny" and len(model["content_hash"]) == 64 and model["used_for"] == "CLIP judge"
    with pytest.raises(RuntimeError):
        with run.stage("evaluate"):
            raise RuntimeError("boom")
    assert run.provenance()["stages"]["evaluate"]["status"] == "failed"


def test_rerun_resumes_and_fresh_starts_over(tmp_path):
    run = open_run(tmp_path / "r", "smoke")
    (run.root / "benchmark.parquet").write_text("kept")
    started = run.provenance()["started"]
    again = open_run(tmp_path / "r", "smoke")
    assert (again.root / "benchmark.parquet").read_text() == "kept"
    assert again.provenance()["started"] == started
    fresh = open_run(tmp_path / "r", "smoke", fresh=True)
    assert not (fresh.root / "benchmark.parquet").exists()


def test_changed_config_is_logged(tmp_path):
    open_run(tmp_path / "r", "smoke")
    run = open_run(tmp_path / "r", "smoke", {"generate": {"batch_size": 2}}, reconfigure=True)
    assert run.config.generate.batch_size == 2
    assert run.provenance()["config_changes"][-1]["keys"] == ["generate.batch_size"]


def test_existing_run_opens_without_profile(tmp_path):
    open_run(tmp_path / "r", "smoke", ["generate.seeds=[3]"])
    assert open_run(tmp_path / "r").config.generate.seeds == [3]
    with pytest.raises(ConfigError, match="not a run yet"):
        open_run(tmp_path / "empty")


def test_fresh_refuses_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "precious.txt").write_text("x")
    with pytest.raises(ConfigError, match="Refusing to wipe"):
        open_run(tmp_path, "smoke", fresh=True)
    assert (tmp_path / "precious.txt").exists()
