"""Closed models and retrained checkpoints (issue 30): images made elsewhere that count in every
stage (`model: external`), images remade when a model's weights change, image sizes checked before
any work, annotators balanced by model x variant, Label Studio's other export formats named, and
repeated variants refused."""

import itertools
import json
import shutil
import warnings
from collections import Counter

import pandas as pd
import pytest
from PIL import Image

from act2i_utils import analysis, evaluate, generate
from act2i_utils.annotate import labelstudio, storage
from act2i_utils.benchmark import build_benchmark
from act2i_utils.config import load_profile
from act2i_utils.enrich import enrich
from act2i_utils.enrich.kb import KnowledgeBaseBackend
from act2i_utils.errors import ConfigError, InputError
from act2i_utils.manifest import configured_images, read_manifest
from act2i_utils.pipeline import check_profile
from act2i_utils.runs import open_run
from act2i_utils.tiny import tiny_path

SMALL = {"variants": ["base", "temporal"], "seeds": [42]}


def small_run(root, models, evaluate_metrics=("clipscore", "vqa"), n=3):
    run = open_run(root, "smoke", {"generate": {**SMALL, "models": models},
                                   "evaluate": {"metrics": list(evaluate_metrics), "batch_size": 8},
                                   "pairs": {"enabled": False}})
    bench = build_benchmark(seed=0, n_per_action=1).head(n)
    bench.to_parquet(run.benchmark_path)
    enrich(bench, KnowledgeBaseBackend(), dimensions=["temporal"], progress=False).to_parquet(run.prompts_path)
    return run, bench


def mapping(tmp_path, bench, model, seeds, variants=("base", "temporal"), colour="orange", prompt=None):
    folder = tmp_path / "elsewhere"
    folder.mkdir(exist_ok=True)
    rows = []
    for variant, prompt_id, seed in itertools.product(variants, bench["id"], seeds):
        name = f"{model}_{variant}_{prompt_id}_{seed}.jpg"
        Image.new("RGB", (48, 48), colour).save(folder / name)
        rows.append({"file": name, "model": model, "variant": variant, "id": prompt_id, "seed": seed,
                     **({"prompt": prompt} if prompt else {})})
    pd.DataFrame(rows).to_csv(tmp_path / f"{model}.csv", index=False)
    return folder, tmp_path / f"{model}.csv"


# --- 1. images of a closed model --------------------------------------------------------------


def test_an_external_model_is_a_profile_entry_that_is_never_loaded():
    profile = load_profile("smoke", {"generate": {"models": [{"model": "tiny:sd3"}, {"model": "external", "name": "dall-e-3"}]},
                                     "pairs": {"enabled": False}})
    assert [m.label for m in profile.generate.models] == ["tiny-sd3", "dall-e-3"]
    assert "external" not in profile.model_refs()
    check_profile(profile)  # nothing to resolve, download or load
    with pytest.raises(ConfigError, match=r"'generate.models\[1\]' is an external model.*give it a name: .*the model "
                                          r"column of the import mapping"):
        load_profile("smoke", {"generate": {"models": [{"model": "tiny:sd3"}, {"model": "external"}]}})
    with pytest.raises(ConfigError, match=r"'generate.models\[1\].steps' .*external model.*makes no images here"):
        load_profile("smoke", {"generate": {"models": [{"model": "tiny:sd3"}, {"model": "external", "name": "x", "steps": 4}]}})


def test_imported_images_of_a_closed_model_go_through_evaluate_and_analyze(tmp_path):
    run, bench = small_run(tmp_path / "run", [{"model": "tiny:sd3"}, {"model": "external", "name": "dall-e-3"}])
    generate.run(run, progress=False)  # makes tiny-sd3's images, loads nothing for dall-e-3
    made = read_manifest(run.root)
    assert set(made["model"]) == {"tiny-sd3"}
    folder, table = mapping(tmp_path, bench, "dall-e-3", seeds=[0, 1])  # seeds of its own, not generate.seeds
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every row is in the config: nothing to say
        generate.import_images(run, folder, table)
    kept, aside = configured_images(run)
    assert aside == 0 and Counter(kept["model"]) == {"tiny-sd3": 6, "dall-e-3": 12}
    before = read_manifest(run.root)
    generate.run(run, progress=False)  # a rerun makes nothing and does not touch the imported images
    assert read_manifest(run.root).equals(before) and len(before) == 18
    scores = evaluate.run(run, progress=False)
    assert set(scores["model"]) == {"tiny-sd3", "dall-e-3"}
    assert scores[scores["model"] == "dall-e-3"].groupby("metric").size().min() == 12
    analysis.run(run, progress=False)
    for table_path in sorted(run.tables.glob("*.csv")):
        frame = pd.read_csv(table_path)
        if "model" in frame.columns and "tiny-sd3" in set(frame["model"]):
            assert "dall-e-3" in set(frame["model"]), table_path.name


def test_import_images_says_which_rows_fall_outside_the_config(tmp_path):
    run, bench = small_run(tmp_path / "run", [{"model": "tiny:sd3"}])
    folder, table = mapping(tmp_path, bench, "dall-e-3", seeds=[0])
    with pytest.warns(UserWarning, match=r"6 of the 6 imported images fall outside the run's config \(model 'dall-e-3' "
                                         r"is not in generate.models\).*add \{model: external, name: dall-e-3\} to "
                                         r"generate.models"):
        generate.import_images(run, folder, table)
    folder, table = mapping(tmp_path, bench, "tiny-sd3", seeds=[5], variants=("base", "spatial"), prompt="as written there")
    with pytest.warns(UserWarning, match=r"6 of the 6 imported images fall outside the run's config \(seed 5 is not in "
                                         r"generate.seeds; variant 'spatial' is not in generate.variants\)"):
        generate.import_images(run, folder, table)


# --- 2. a checkpoint retrained in place ------------------------------------------------------


def test_new_weights_in_the_same_folder_remake_the_images(tmp_path):
    import torch
    from diffusers import SD3Transformer2DModel

    folder = tmp_path / "my-sd3"
    shutil.copytree(tiny_path("sd3"), folder)
    run, _ = small_run(tmp_path / "run", [{"model": str(folder), "name": "mine"}], n=2)
    first = generate.run(run, progress=False)
    assert json.loads(first["settings"].iloc[0])["weights"].startswith("sha256:")
    transformer = SD3Transformer2DModel.from_pretrained(folder / "transformer")
    with torch.no_grad():
        for p in transformer.parameters():
            p.add_(0.05)
    transformer.save_pretrained(folder / "transformer")  # retrained in place
    second = generate.run(run, progress=False)
    assert (second["created"].values != first["created"].values).all()  # every image made again
    assert (second["image_hash"].values != first["image_hash"].values).all()
    third = generate.run(run, progress=False)
    assert third["created"].tolist() == second["created"].tolist()  # and then kept


# --- 3. sizes the pipeline cannot make ---------------------------------------------------------


def test_a_size_the_pipeline_cannot_make_is_refused_when_the_profile_is_checked(tmp_path):
    def profile(*models):
        return load_profile("smoke", {"generate": {"models": list(models)}, "pairs": {"enabled": False}})

    with pytest.raises(ConfigError, match=r"^generate.models\[0\].height is 66, which tiny-sd \(StableDiffusionPipeline\) "
                                          r"cannot make: it must be a multiple of 8 \(.*; e.g. 64 or 72\)\.$"):
        check_profile(profile({"model": "tiny:sd", "height": 66}))
    with pytest.raises(ConfigError, match=r"generate.models\[1\].width is 65, which tiny-flux .*multiple of 2 "
                                          r"\(VAE scale 1 x 2, FLUX's latent packing"):
        check_profile(profile({"model": "tiny:sd3"}, {"model": "tiny:flux", "width": 65}))
    with pytest.raises(ConfigError, match=r"generate.models\[0\].height is 1000, .*multiple of 16 \(VAE scale 8 x patch size 2"):
        check_profile(profile({"model": "sd35-large", "height": 1000}))  # not downloaded: the family's sizes
    check_profile(profile({"model": "tiny:sd3", "height": 66}, {"model": "tiny:sd", "height": 64, "width": 96},
                          {"model": "sd35-large", "height": 1024, "width": 768}, {"model": "external", "name": "dall-e-3"}))


def test_generate_alone_refuses_the_size_in_one_sentence_before_loading(tmp_path, monkeypatch):
    run, _ = small_run(tmp_path / "run", [{"model": "tiny:sd", "height": 66}], n=1)
    from act2i_utils.generate import stage

    monkeypatch.setattr(stage, "load_pipeline", lambda *a, **k: pytest.fail("loaded a pipeline for a size it cannot make"))
    with pytest.raises(ConfigError, match=r"generate.models\[0\].height is 66"):
        generate.run(run, progress=False)


# --- 4. annotators balanced by model x variant -------------------------------------------------


def study_db(tmp_path, models=("a", "b"), variants=("base", "emotional", "spatial", "temporal"), prompts=15, seed=0):
    db = tmp_path / "study.sqlite"
    storage.init_db(db)
    rows = [{"model": m, "variant": v, "id": f"p{i}", "seed": 0, "prompt": f"prompt {i}", "path": f"images/{m}/{v}/p{i}.png"}
            for m in models for v in variants for i in range(prompts)]
    storage.sync_images(db, pd.DataFrame(rows), pd.DataFrame({"id": [f"p{i}" for i in range(prompts)],
                                                               "base_prompt": [f"prompt {i}" for i in range(prompts)]}))
    return db


def spread(db) -> int:
    """The largest difference, over strata (model x variant), between two annotators' image counts."""
    with storage.connect(db, write=False) as conn:
        rows = conn.execute("SELECT a.annotator, i.model, i.variant FROM assignments a JOIN images i USING (image_id)").fetchall()
        people = [r[0] for r in conn.execute("SELECT name FROM annotators")]
    counts = Counter((r[0], r[1], r[2]) for r in rows)
    strata = {(r[1], r[2]) for r in rows}
    loads = Counter(r[0] for r in rows)
    assert max(loads[p] for p in people) - min(loads[p] for p in people) <= 1  # and the loads stay even
    return max(max(counts[(p, *s)] for p in people) - min(counts[(p, *s)] for p in people) for s in strata)


@pytest.mark.parametrize("people, overlap, prompts, seed", [(2, 1, 15, 0), (3, 1, 15, 1), (3, 2, 7, 2), (5, 2, 9, 3),
                                                            (4, 3, 11, 4), (7, 1, 5, 5), (2, 2, 13, 6)])
def test_each_annotator_gets_each_model_and_variant_within_one_image(tmp_path, people, overlap, prompts, seed):
    db = study_db(tmp_path, prompts=prompts)
    for k in range(people):
        storage.add_annotator(db, f"rater{k}")
    storage.assign(db, overlap, seed=seed)
    assert spread(db) <= 1
    with storage.connect(db, write=False) as conn:
        per_image = Counter(r[0] for r in conn.execute("SELECT image_id FROM assignments"))
    assert set(per_image.values()) == {min(overlap, people)}


def test_a_late_annotator_is_balanced_by_model_and_variant_too(tmp_path):
    db = study_db(tmp_path, prompts=12)
    for name in ("ann", "ben"):
        storage.add_annotator(db, name)
    storage.assign(db, 1, seed=3)
    storage.add_annotator(db, "cat")  # joins before anyone answered
    storage.assign(db, 1, seed=3)
    assert spread(db) <= 1


# --- 5. Label Studio ---------------------------------------------------------------------------


def test_a_json_min_or_csv_export_is_named(tmp_path):

    run = open_run(tmp_path / "run", "smoke", {"generate": {"models": [{"model": "tiny:sd3", "name": "m"}],
                                                            "variants": ["base"], "seeds": [0]}, "pairs": {"enabled": False}})
    run.images.mkdir(parents=True)
    Image.new("RGB", (8, 8), "gray").save(run.images / "one.png")
    bench = build_benchmark(seed=0, n_per_action=1).head(1)
    bench.to_parquet(run.benchmark_path)
    storage.init_db(run.annotations_db_path)
    storage.sync_images(run.annotations_db_path, pd.DataFrame([{"model": "m", "variant": "base", "id": bench["id"].iloc[0],
                                                                "seed": 0, "prompt": "p", "path": "images/one.png"}]), bench)
    json_min = [{"image": "/data/local-files/?d=images/x.png", "prompt": "p", "image_id": "x", "id": 1, "label": "Accept",
                 "annotator": "a@b.c", "annotation_id": 3, "lead_time": 2.5}]
    (tmp_path / "min.json").write_text(json.dumps(json_min))
    with pytest.raises(InputError, match=r"min.json: .*JSON-MIN.*export the project as JSON, not JSON-MIN or CSV"):
        labelstudio.import_results(run.root, tmp_path / "min.json")
    (tmp_path / "export.csv").write_text("image,prompt,image_id,id,label\n/x.png,p,x,1,Accept\n")
    with pytest.raises(InputError, match=r"export.csv: .*export the project as JSON, not JSON-MIN or CSV"):
        labelstudio.import_results(run.root, tmp_path / "export.csv")


# --- 6. repeated variants ----------------------------------------------------------------------


def test_repeated_variants_are_refused():
    with pytest.raises(ConfigError, match=r"'generate.variants' must not repeat a variant \(base repeats\)"):
        load_profile("smoke", {"generate": {"variants": ["base", "base"]}, "pairs": {"enabled": False}})
