"""A run is one experiment: reruns never reset, mix or silently keep stale results (issue 14)."""

import dataclasses
import json

import pandas as pd
import pytest

from act2i_utils.cli import main
from act2i_utils.errors import Act2iError, ConfigError, InputError
from act2i_utils.runs import open_run


def read_config(root):
    import yaml

    return yaml.safe_load((root / "config.yaml").read_text())


# --- 1. rerunning stages keeps the run's own profile --------------------------------------------


def test_rerunning_stages_keeps_the_runs_profile_and_overrides(tmp_path, capsys):
    root = tmp_path / "r"
    open_run(root, "paper", ["generate.seeds=[7]"], command="test")
    before = (root / "config.yaml").read_text()
    notebooks = tmp_path / "nb"
    notebooks.mkdir()  # no notebooks: `run` opens the run, then stops with a sentence
    assert main(["run", "--run", str(root), "--only", "03", "--notebooks", str(notebooks)]) == 2
    assert (root / "config.yaml").read_text() == before
    assert read_config(root)["name"] == "paper" and read_config(root)["generate"]["seeds"] == [7]


def test_changing_an_existing_runs_profile_needs_a_flag_and_names_the_keys(tmp_path, capsys):
    root = tmp_path / "r"
    open_run(root, "smoke", command="test")
    with pytest.raises(ConfigError, match=r"generate\.seeds.*--reconfigure"):
        open_run(root, "smoke", ["generate.seeds=[1,2]"])
    assert read_config(root)["generate"]["seeds"] == [42]
    run = open_run(root, "smoke", ["generate.seeds=[1,2]"], reconfigure=True)
    assert run.config.generate.seeds == [1, 2] and read_config(root)["generate"]["seeds"] == [1, 2]
    assert run.provenance()["config_changes"][-1]["keys"] == ["generate.seeds"]


def test_cli_reconfigure_prints_the_changed_keys(tmp_path, capsys):
    root = tmp_path / "r"
    open_run(root, "smoke", command="test")
    notebooks = tmp_path / "nb"
    notebooks.mkdir()
    main(["run", "--run", str(root), "--set", "generate.batch_size=2", "--reconfigure", "--notebooks", str(notebooks)])
    assert "generate.batch_size" in capsys.readouterr().out


def test_a_failed_set_is_not_written(tmp_path):
    root = tmp_path / "r"
    open_run(root, "smoke", command="test")
    before = (root / "config.yaml").read_text()
    notebooks = tmp_path / "nb"
    notebooks.mkdir()
    assert main(["run", "--run", str(root), "--set", "generate.models.0.model=tiny:sd33", "--reconfigure",
                 "--notebooks", str(notebooks)]) == 2
    assert (root / "config.yaml").read_text() == before


# --- 5. provenance is history ---------------------------------------------------------------------


def test_provenance_keeps_a_history_and_reading_writes_nothing(tmp_path):
    root = tmp_path / "r"
    run = open_run(root, "smoke", command="act2i run")
    first = run.provenance()
    assert first["history"][0]["command"] == "act2i run" and "environment" in first["history"][0]
    stamp = {p.name: p.stat().st_mtime_ns for p in root.iterdir()}
    reader = open_run(root, readonly=True)
    assert reader.config.name == "smoke"
    assert {p.name: p.stat().st_mtime_ns for p in root.iterdir()} == stamp
    open_run(root, command="act2i generate")
    history = open_run(root, readonly=True).provenance()["history"]
    assert [h["command"] for h in history] == ["act2i run", "act2i generate"]
    assert open_run(root, readonly=True).provenance()["environment"] == first["environment"]
    with pytest.raises(ConfigError, match="not a run"):
        open_run(tmp_path / "nothing", readonly=True)


# --- 7. names that become paths are checked --------------------------------------------------------


@pytest.mark.parametrize("bad", ["../../../escape", ".hidden", "a/b", "x" * 101, "sp ace"])
def test_benchmark_ids_that_would_escape_are_refused(tmp_path, bad):
    from act2i_utils.schema import read_benchmark

    path = tmp_path / "set.csv"
    pd.DataFrame({"id": ["ok-1", bad], "base_prompt": ["a cat chasing a dog", "a dog chasing a cat"]}).to_csv(path, index=False)
    with pytest.raises(InputError, match=rf"row 2.*'id'"):
        read_benchmark(path)


@pytest.mark.parametrize("key, value", [("generate.models.0.name", "../../x"), ("generate.variants", "[base, ../t]")])
def test_model_and_variant_names_that_would_escape_are_refused(key, value):
    from act2i_utils.config import load_profile

    with pytest.raises(ConfigError, match="letters, digits"):
        load_profile("smoke", [f"{key}={value}"])


# --- 9. profile values checked before any stage runs ------------------------------------------------


@pytest.mark.parametrize("override, fragment", [
    ("device=gpu", "device"),
    ("generate.models.0.dtype=float23", "dtype"),
    ("generate.seeds=[-1]", "generate.seeds"),
    ("generate.seeds=[99999999999]", "generate.seeds"),
    ("generate.models.0.model=tiny:sd33", "tiny:sd33"),
    ("evaluate.metrics=[clipscor]", "clipscor"),
    ("generate.variants=[base, spatail]", "spatail"),
    ("enrich.dimensions=[tempral]", "tempral"),
])
def test_profile_problems_are_one_sentence_before_any_stage(tmp_path, capsys, override, fragment):
    assert main(["profile", "--profile", "smoke", "--set", override]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("act2i: error:") and fragment in err and "Traceback" not in err and err.count("\n") == 0


def test_duplicate_yaml_keys_are_refused(tmp_path):
    from act2i_utils.config import load_profile

    path = tmp_path / "p.yaml"
    path.write_text("name: p\ngenerate:\n  models: [{model: tiny:sd3}]\n  seeds: [1]\n  seeds: [2]\n")
    with pytest.raises(ConfigError, match=r"p\.yaml.*seeds.*twice"):
        load_profile(path)


def test_a_broken_set_value_is_one_sentence(capsys):
    assert main(["profile", "--profile", "smoke", "--set", "generate.seeds=[42,"]) == 2
    err = capsys.readouterr().err
    assert "generate.seeds" in err and "Traceback" not in err and err.count("\n") == 1


# --- 10. an unwritable run directory, error sentences kept whole -----------------------------------


def test_unwritable_run_directory_is_one_sentence(tmp_path, capsys):
    import os

    if os.geteuid() == 0:
        parent = tmp_path / "file-not-folder"
        parent.write_text("x")  # root ignores permissions: a file in the way fails the same way
        target = parent / "run"
    else:
        parent = tmp_path / "locked"
        parent.mkdir(mode=0o500)
        target = parent / "run"
    assert main(["run", "--profile", "smoke", "--run", str(target), "--only", "99"]) == 2
    err = capsys.readouterr().err
    assert "cannot write" in err.lower() and "Traceback" not in err


def test_notebook_errors_are_not_cut_short():
    from act2i_utils.pipeline import _short

    long = "x " * 400 + "do this to fix it."
    assert _short(long).endswith("do this to fix it.")


# --- 2 and 3. stages work on exactly the configured images; any changed setting is made again ----


@pytest.fixture(scope="module")
def tiny_prompts():
    from act2i_utils.benchmark import build_benchmark
    from act2i_utils.enrich import enrich
    from act2i_utils.enrich.kb import KnowledgeBaseBackend

    table = build_benchmark(seed=0, n_per_action=1).head(2)
    return table, enrich(table, KnowledgeBaseBackend(), dimensions=["temporal"], progress=False)


def small_run(root, tiny_prompts, **generate):
    table, prompts = tiny_prompts
    settings = {"models": [{"model": "tiny-sd3"}], "variants": ["base", "temporal"], "seeds": [1], "batch_size": 4}
    settings.update(generate)
    run = open_run(root, "smoke", {"generate": settings, "evaluate": {"metrics": ["clipscore"]},
                                   "pairs": {"enabled": len(settings["variants"]) > 1}}, reconfigure=True)
    table.to_parquet(run.benchmark_path)
    prompts.to_parquet(run.prompts_path)
    return run


def test_a_rerun_with_other_seeds_evaluates_only_the_configured_images(tmp_path, tiny_prompts):
    from act2i_utils import evaluate, generate
    from act2i_utils.manifest import configured_images

    root = tmp_path / "r"
    generate.run(small_run(root, tiny_prompts, seeds=[1, 2]), progress=False)
    run = small_run(root, tiny_prompts, seeds=[3], variants=["base"])
    generate.run(run, progress=False)
    images, set_aside = configured_images(run)
    assert len(images) == 2 and set(images["seed"]) == {3} and set_aside == 8
    with pytest.warns(UserWarning, match="8 images"):
        scores = evaluate.run(run, progress=False)
    assert set(scores["seed"]) == {3} and scores.groupby(["model", "variant", "id", "seed"]).ngroups == 2


def test_a_size_change_is_made_again_and_the_dtype_used_is_recorded(tmp_path, tiny_prompts):
    from act2i_utils import generate

    root = tmp_path / "r"
    first = generate.run(small_run(root, tiny_prompts, models=[{"model": "tiny-sd3", "dtype": "float16"}]), progress=False)
    assert set(first["dtype"]) == {"float32"}  # the CPU ran float32 whatever the profile asked
    again = generate.run(small_run(root, tiny_prompts, models=[{"model": "tiny-sd3", "height": 16, "width": 16,
                                                                  "dtype": "float16"}]), progress=False)
    assert set(again["height"]) == {16} and set(again["width"]) == {16}


# --- 6. a run writes only inside its directory ----------------------------------------------------


def test_analysis_never_writes_into_the_checkout():
    from act2i_utils.config import AnalyzeConfig

    assert "copy_figures" not in AnalyzeConfig.__dataclass_fields__


# --- 8. imports are all or nothing and never overwrite unasked ----------------------------------


def test_import_is_all_or_nothing_and_refuses_to_overwrite(tmp_path, tiny_prompts):
    from PIL import Image

    from act2i_utils import generate

    run = small_run(tmp_path / "r", tiny_prompts)
    generate.run(run, progress=False)
    table, _ = tiny_prompts
    folder = tmp_path / "ext"
    folder.mkdir()
    Image.new("RGB", (8, 8), "red").save(folder / "a.png")
    ids = table["id"].tolist()
    mapping = tmp_path / "map.csv"
    pd.DataFrame({"file": ["a.png", "missing.png"], "model": "ext", "variant": "base", "id": ids[:2], "seed": 1}).to_csv(mapping, index=False)
    with pytest.raises(InputError, match="row 2"):
        generate.import_images(run, folder, mapping)
    assert not (run.images / "ext").exists()
    pd.DataFrame({"file": ["a.png"], "model": "tiny-sd3", "variant": "base", "id": ids[:1], "seed": 1}).to_csv(mapping, index=False)
    with pytest.raises(InputError, match="--replace"):
        generate.import_images(run, folder, mapping)
    generate.import_images(run, folder, mapping, replace=True)
    pd.DataFrame({"file": ["a.png"], "model": "../../x", "variant": "base", "id": ids[:1], "seed": 1}).to_csv(mapping, index=False)
    with pytest.raises(InputError, match="row 1.*model"):
        generate.import_images(run, folder, mapping)


# --- 3 and 4. every setting is compared; judges are keyed on their weights and on image content ----


def test_a_changed_t5_length_is_made_again(tmp_path, tiny_prompts):
    from act2i_utils import generate

    root = tmp_path / "r"
    first = generate.run(small_run(root, tiny_prompts), progress=False)
    again = generate.run(small_run(root, tiny_prompts, models=[{"model": "tiny-sd3", "max_sequence_length": 64}]),
                         progress=False)
    assert all('"max_sequence_length": 128' in s for s in first["settings"])  # tiny-sd3's registry default
    assert all('"max_sequence_length": 64' in s for s in again["settings"])  # written only when remade


def test_new_judge_weights_and_replaced_images_are_not_served_from_the_cache(tmp_path, tiny_prompts):
    import shutil

    from PIL import Image

    from act2i_utils import evaluate, generate
    from act2i_utils.tiny import tiny_path

    clip = tmp_path / "my-clip"
    shutil.copytree(tiny_path("clip"), clip)
    root = tmp_path / "r"
    run = small_run(root, tiny_prompts)
    run = open_run(root, "smoke", {"generate": run.config.generate.__dict__ | {"models": [{"model": "tiny-sd3"}]},
                                   "evaluate": {"metrics": ["clipscore"], "clip_model": str(clip)}}, reconfigure=True)
    generate.run(run, progress=False)
    before = evaluate.run(run, progress=False)["value"].to_numpy()
    import torch
    from safetensors.torch import load_file, save_file

    weights = clip / "model.safetensors"
    state = load_file(weights)
    name = next(k for k in state if k.endswith("visual_projection.weight"))
    state[name] = -state[name]  # every cosine changes sign: a CLIPScore of 0 (clipped) becomes positive and back
    save_file(state, weights, metadata={"format": "pt"})
    after = evaluate.run(run, progress=False)["value"].to_numpy()
    assert not (before == after).all()  # the cache did not answer for the new weights
    manifest = pd.read_parquet(run.manifest_path)
    Image.new("RGB", (32, 32), "white").save(run.root / manifest["path"].iloc[0])
    with pytest.raises(InputError, match="replaced after it was made"):
        evaluate.run(run, progress=False)


def test_output_changing_modes_are_part_of_each_images_settings():
    from act2i_utils.config import T2IModel
    from act2i_utils.registry import resolve_spec

    spec = resolve_spec(T2IModel(model="tiny-sd3"))
    assert "fp8" not in spec.settings()  # images made without them keep their recorded settings
    assert dataclasses.replace(spec, output_modes=(("step_cache", 0.1),)).settings()["step_cache"] == 0.1
