"""Automatic judges on the tiny models: CLIPScore against torchmetrics, VQA against a hand
computation, Soft-TIFA over the VQA atoms, detection (OWLv2, Grounding DINO) with interaction
geometry, PickScore, action classification, reference similarity, caching and errors."""

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from act2i_utils import evaluate, generate
from act2i_utils.benchmark import build_benchmark
from act2i_utils.config import EvaluateConfig
from act2i_utils.enrich import enrich
from act2i_utils.enrich.kb import KnowledgeBaseBackend
from act2i_utils.errors import ConfigError, InputError, ModelLoadError
from act2i_utils.evaluate import judges as judge_module
from act2i_utils.evaluate.atoms import soft_tifa
from act2i_utils.evaluate.geometry import interaction_geometry
from act2i_utils.evaluate.questions import action_caption, vqa_questions, with_article
from act2i_utils.manifest import read_manifest
from act2i_utils.runs import open_run
from act2i_utils.schema import KEY
from act2i_utils.tiny import tiny_path


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """A small run: 3 prompts x (base, temporal) x 1 seed, every judge."""
    root = tmp_path_factory.mktemp("eval") / "run"
    run = open_run(root, "smoke", {"generate": {"seeds": [42], "variants": ["base", "temporal"]},
                                   "evaluate": {"metrics": ["clipscore", "vqa", "detection", "action_clip", "pickscore"],
                                                "batch_size": 4}})
    bench = build_benchmark(seed=0, n_per_action=1)
    bench.to_parquet(run.benchmark_path)
    enrich(bench.head(3), KnowledgeBaseBackend(), dimensions=["temporal"], progress=False).to_parquet(run.prompts_path)
    generate.run(run, progress=False)
    return run, evaluate.run(run, progress=False)


def test_scores_table_is_long_and_complete(scored):
    run, scores = scored
    assert list(scores.columns) == ["model", "variant", "id", "seed", "metric", "value", "judge"]
    per_image = scores.groupby(["model", "variant", "id", "seed"])["metric"].apply(set)
    expected = {"clipscore", "vqa", "vqa_agent1", "vqa_agent2", "vqa_event", "vqa_action", "vqa_reversed",
                "soft_tifa_am", "soft_tifa_gm", "soft_tifa_dsg", "soft_tifa_am_renorm", "soft_tifa_gm_renorm", "det_agent1", "det_agent2", "det_both", "geo_agents",
                "action_rank", "action_top1", "action_top5", "pickscore"}
    with_both_agents = {"geo_iou", "geo_contact", "geo_topology"}  # only where both agents are found
    assert len(per_image) == 6 and all(expected <= s <= expected | with_both_agents for s in per_image)
    assert with_both_agents & set(scores["metric"])  # the smoke detector finds both agents in some images
    assert pd.read_parquet(run.scores_path).equals(scores)
    assert run.provenance()["stages"]["evaluate"]["status"] == "done"
    table = evaluate.summary(scores)
    assert table.shape == (2, scores["metric"].nunique())


def test_clipscore_equals_torchmetrics(scored):
    from benchmarks.reference import torchmetrics_clipscore

    run, scores = scored
    metric = torchmetrics_clipscore(tiny_path("clip"))
    bench = pd.read_parquet(run.benchmark_path).set_index("id")
    ours = scores[scores["metric"] == "clipscore"]
    for row in ours.itertuples():
        path = run.root / f"images/{row.model}/{row.variant}/{row.id}_{row.seed}.png"
        image = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)
        with torch.no_grad():
            reference = metric(image, bench.loc[row.id, "base_prompt"]).item()
        metric.reset()
        assert row.value == pytest.approx(max(reference, 0.0), abs=1e-4)


def test_vqa_probability_by_hand(scored):
    """The stage's vqa_action is t2v_metrics' VQAScore of the run's image: exp(-mean cross-entropy) of
    " Yes" and the end of the sequence after its LLaVA-1.5 conversation (tests/test_metric_definitions.py
    checks each reading in detail)."""
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    from act2i_utils.evaluate.questions import SYSTEM_MSG

    run, scores = scored
    row = scores[scores["metric"] == "vqa_action"].iloc[0]
    bench = pd.read_parquet(run.benchmark_path).set_index("id").loc[row.id]
    folder = tiny_path("vlm")
    model, processor = LlavaForConditionalGeneration.from_pretrained(folder), AutoProcessor.from_pretrained(folder)
    tokenizer = processor.tokenizer
    question = f"Is {bench.action_template.format(a='the ' + bench.animal1, b='the ' + bench.animal2)}? Please answer yes or no."
    prompt = f"{SYSTEM_MSG} USER: <image>\n{question} ASSISTANT:"
    answer = tokenizer(" Yes" + tokenizer.eos_token, add_special_tokens=False).input_ids
    image = Image.open(run.root / f"images/{row.model}/{row.variant}/{row.id}_{row.seed}.png").convert("RGB")
    inputs = processor(images=[image], text=[prompt + " Yes" + tokenizer.eos_token], return_tensors="pt")
    with torch.no_grad():
        logp = torch.log_softmax(model(**inputs).logits[0].double(), -1)
    ids, k = inputs["input_ids"][0], len(answer)
    assert ids[-k:].tolist() == answer
    cross_entropy = -sum(logp[len(ids) - k - 1 + j, answer[j]].item() for j in range(k)) / k
    assert row.value == pytest.approx(np.exp(-cross_entropy), rel=1e-4)


def test_vqa_batched_equals_one_by_one(scored):
    run, _ = scored
    judge = evaluate.VqaJudge("tiny:vlm", "cpu")
    paths = read_manifest(run.root)["path"].tolist()[:4]
    images = [Image.open(run.root / p).convert("RGB") for p in paths]
    questions = ["Is there a cat in this image? Please answer yes or no.", "Does this figure show 'a wolf chasing a deer'? Please answer yes or no.",
                 "Is the wolf chasing the deer?", "Is there an otter?"]
    batched = judge.vqascores(images, questions)
    single = [judge.vqascores([im], [q])[0] for im, q in zip(images, questions)]
    assert batched == pytest.approx(single, rel=1e-4)


def test_decomposed_questions():
    q = vqa_questions("a wolf chasing an elk", "wolf", "elk", "chasing")
    assert q == {
        "vqa": 'Does this figure show "a wolf chasing an elk"? Please answer yes or no.',  # VQAScore's template exactly
        "vqa_agent1": "Is there a wolf in this image? Please answer yes or no.",
        "vqa_agent2": "Is there an elk in this image? Please answer yes or no.",
        "vqa_event": "Does this image show something chasing something else? Please answer yes or no.",
        "vqa_action": "Is the wolf chasing the elk? Please answer yes or no.",
        "vqa_reversed": "Is the elk chasing the wolf? Please answer yes or no.",
    }
    carrying = vqa_questions("a horse carrying a goat on its back", "horse", "goat", "carrying", "{a} carrying {b} on its back")
    assert carrying["vqa_action"] == "Is the horse carrying the goat on its back? Please answer yes or no."
    assert carrying["vqa_event"] == "Does this image show something carrying something else on its back? Please answer yes or no."
    assert list(vqa_questions("a robot", None, None, None)) == ["vqa"]
    assert with_article("ostrich") == "an ostrich" and with_article("hyena") == "a hyena"
    template = "{a} carrying {b} on its back"  # the benchmark row's action_template
    assert action_caption("carrying", "horse", "elephant", template) == "a photo of a horse carrying an elephant on its back"
    assert action_caption("juggling", "seal", "ball") == "a photo of a seal juggling a ball"


def test_detection_shape_and_threshold(scored):
    run, scores = scored
    wide = scores[scores["metric"].str.startswith("det_")].pivot_table(index=["variant", "id"], columns="metric", values="value")
    threshold = run.config.evaluate.detection_threshold
    both = (wide["det_agent1"] >= threshold) & (wide["det_agent2"] >= threshold)
    assert (wide["det_both"] == both.astype(float)).all()
    boxes = pd.read_parquet(run.detections_path)
    assert list(boxes.columns) == ["model", "variant", "id", "seed", "agent", "score", "x0", "y0", "x1", "y1"]
    assert set(boxes["agent"]) == {1, 2}
    best = boxes.groupby(["variant", "id", "agent"])["score"].max().unstack()
    assert np.allclose(best[1].values, wide["det_agent1"].values, atol=1e-6)
    best_of_agent = boxes.groupby(["variant", "id", "agent"])["score"].transform("max")
    below = boxes["score"] < threshold
    assert (boxes.loc[below, "score"] == best_of_agent[below]).all()  # below the threshold: only the best box


def test_soft_tifa_comes_from_the_vqa_atoms(scored):
    run, scores = scored
    bench = pd.read_parquet(run.benchmark_path).set_index("id")
    wide = scores.pivot_table(index=["variant", "id"], columns="metric", values="value")
    for (variant, prompt_id), row in wide.iterrows():
        expected = soft_tifa(row.to_dict(), bench.loc[prompt_id, "action"])
        assert row[list(expected)].to_dict() == pytest.approx(expected, abs=1e-12)
    assert (wide["soft_tifa_gm"] <= wide["soft_tifa_am"] + 1e-12).all()
    assert (wide["soft_tifa_dsg"] <= wide["soft_tifa_am"] + 1e-12).all()


def test_geometry_comes_from_the_boxes(scored):
    run, scores = scored
    bench = pd.read_parquet(run.benchmark_path).set_index("id")
    boxes = pd.read_parquet(run.detections_path)
    cfg = run.config.evaluate
    geo = scores[scores["metric"].str.startswith("geo_")]
    for (variant, prompt_id), found in geo.groupby(["variant", "id"]):
        mine = boxes[(boxes["variant"] == variant) & (boxes["id"] == prompt_id)]
        detections = [{"agent": r.agent, "score": r.score, "box": [r.x0, r.y0, r.x1, r.y1]} for r in mine.itertuples()]
        expected = interaction_geometry(detections, cfg.detection_threshold, bench.loc[prompt_id, "spatial_topology"],
                                        cfg.contact_tolerance)
        assert dict(zip(found["metric"], found["value"])) == pytest.approx(expected)


def test_grounding_dino_is_a_detector_too():
    cfg = EvaluateConfig(detector_model="tiny:grounding_dino", detection_threshold=0.5)
    (judge,) = evaluate.make_judges(cfg, "cpu", ["chasing"], ["detection"])
    images = [Image.new("RGB", (48, 32), "red"), Image.new("RGB", (32, 32), "green")]
    item = {"base_prompt": "a wolf chasing a deer", "animal1": "wolf", "animal2": "deer", "action": "chasing",
            "spatial_topology": "pursuit"}
    values = judge.score(images, [item, item])
    for image, found in zip(images, values):
        assert {b["agent"] for b in found["_boxes"]} == {1, 2}
        for b in found["_boxes"]:
            x0, y0, x1, y1 = b["box"]
            assert -1 <= x0 <= x1 <= image.width + 1 and -1 <= y0 <= y1 <= image.height + 1
        derived = judge.derive(found, item)
        assert derived["geo_agents"] == (found["det_agent1"] >= 0.5) + (found["det_agent2"] >= 0.5)
        assert "geo_topology" not in derived  # pursuit says nothing about contact


def test_pickscore_by_hand(scored):
    from transformers import CLIPModel, CLIPProcessor

    run, scores = scored
    row = scores[scores["metric"] == "pickscore"].iloc[0]
    prompt = pd.read_parquet(run.benchmark_path).set_index("id").loc[row.id, "base_prompt"]
    folder = tiny_path("pickscore")
    model, processor = CLIPModel.from_pretrained(folder), CLIPProcessor.from_pretrained(folder)
    image = Image.open(run.root / f"images/{row.model}/{row.variant}/{row.id}_{row.seed}.png").convert("RGB")
    with torch.no_grad():
        out = model(**processor(text=[prompt], images=[image], return_tensors="pt", padding=True))
    assert row.value == pytest.approx(out.logits_per_image[0, 0].item(), rel=1e-5)  # logit_scale.exp() x cos
    assert model.logit_scale.exp().item() == pytest.approx(100.0, rel=1e-5)


def test_action_classification_by_hand(scored):
    run, scores = scored
    bench = pd.read_parquet(run.benchmark_path)
    templates = evaluate.stage.action_templates(bench)
    actions = list(templates)
    wide = scores[scores["metric"].str.startswith("action_")].pivot_table(index=["variant", "id"], columns="metric", values="value")
    assert wide["action_rank"].between(1, len(actions)).all()
    assert (wide["action_top1"] <= wide["action_top5"]).all()
    clip = evaluate.ClipJudge("tiny:clip", "cpu")
    (variant, prompt_id), rank = next(iter(wide["action_rank"].items()))
    row = bench.set_index("id").loc[prompt_id]
    image = Image.open(run.root / f"images/tiny-sd3/{variant}/{prompt_id}_42.png").convert("RGB")
    captions = [action_caption(a, row.animal1, row.animal2, templates[a]) for a in actions]
    sims = clip.text_embeddings(captions) @ clip.image_embeddings([image])[0]
    assert rank == 1 + int((sims > sims[actions.index(row.action)]).sum())


def test_reference_similarity_and_its_absence(scored, tmp_path):
    run, _ = scored
    bench = pd.read_parquet(run.benchmark_path)
    first = read_manifest(run.root)["id"].iloc[0]
    action = bench.set_index("id").loc[first, "action"]
    folder = tmp_path / "refs" / judge_module.folder_name(action)
    folder.mkdir(parents=True)
    for i in range(3):
        Image.fromarray((np.random.RandomState(i).rand(40, 40, 3) * 255).astype("uint8")).save(folder / f"{i}.jpg")
    cfg = run.config.evaluate
    with pytest.warns(UserWarning, match="No reference images under"):
        judges = evaluate.make_judges(cfg.__class__(**{**cfg.__dict__, "reference_dir": str(tmp_path / "refs")}), "cpu",
                                      list(bench["action"]), metrics=["reference"])
    judge = judges[0]
    image = Image.open(run.root / read_manifest(run.root)["path"].iloc[0]).convert("RGB")
    item = {"action": action}
    value = judge.score([image], [item])[0]["ref_similarity"]
    assert value == pytest.approx(float(judge.embed([image])[0] @ judge.centroids[action]), abs=1e-6)
    assert -1.0 <= value <= 1.0 and judge.score([image], [{"action": "juggling"}]) == [{}]
    with pytest.warns(UserWarning, match="Reference similarity skipped: evaluate.reference_dir is not set"):
        assert evaluate.make_judges(cfg, "cpu", ["chasing"], metrics=["reference"]) == []


def test_rerun_is_free_and_an_interrupted_run_resumes(scored, monkeypatch):
    run, scores = scored
    calls = []
    real = judge_module.ClipScore.score
    monkeypatch.setattr(judge_module.ClipScore, "score", lambda self, images, items: calls.append(len(items)) or real(self, images, items))
    assert evaluate.run(run, progress=False).equals(scores) and calls == []
    # A partial cache: drop the last lines as a crash would have, then resume.
    cache = run.scores_cache_path
    lines = cache.read_text().splitlines()
    cache.write_text("\n".join(lines[:-3]) + "\n" + lines[-3][:20])
    again = evaluate.run(run, progress=False)
    pd.testing.assert_frame_equal(again, scores)


def test_clear_sentences_for_bad_images_and_models(tmp_path, scored):
    import shutil

    run, _ = scored
    copy = tmp_path / "copy"
    shutil.copytree(run.root, copy)
    other = open_run(copy)
    other.scores_cache_path.unlink()
    paths = read_manifest(copy)["path"]
    (copy / paths.iloc[0]).write_bytes(b"not a png")
    with pytest.raises(InputError, match=rf"{paths.iloc[0]} was replaced after it was made"):
        evaluate.run(other, progress=False)
    (copy / paths.iloc[0]).unlink()
    with pytest.raises(InputError, match=rf"{paths.iloc[0]} is listed in the image manifest but missing"):
        evaluate.run(other, progress=False)
    bad = open_run(copy, None, {"evaluate": {"clip_model": "openai/clip-vit-base-patch32"}}, reconfigure=True)
    with pytest.raises(ModelLoadError, match=r"Could not load CLIP model 'openai/clip-vit-base-patch32'.*hf download"):
        evaluate.make_judges(bad.config.evaluate, "cpu", ["chasing"], metrics=["clipscore"])


def test_vqa_breakdown_flags_suspected_reversals():
    rows = []
    for i, (action, reversed_) in enumerate([(0.8, 0.1), (0.2, 0.6)]):
        rows += [{"model": "m", "variant": "base", "id": str(i), "seed": 0, "metric": "vqa_action", "value": action},
                 {"model": "m", "variant": "base", "id": str(i), "seed": 0, "metric": "vqa_reversed", "value": reversed_}]
    table = evaluate.vqa_breakdown(pd.DataFrame(rows))
    assert table.loc[("m", "base"), "reversal_suspected"] == 0.5
    assert table.loc[("m", "base"), "vqa_action"] == 0.5


# --- the one-line scorer and the judges' interface -------------------------------------------


def test_one_line_score_equals_the_stage(scored):
    run, scores = scored
    manifest = read_manifest(run.root)
    bench = pd.read_parquet(run.benchmark_path).set_index("id").loc[manifest["id"]]
    paths = [run.root / p for p in manifest["path"]]
    stage = scores.merge(manifest[KEY + ["path"]], on=KEY)
    stage = stage.assign(image=[str(run.root / p) for p in stage["path"]]).set_index(["image", "metric"])["value"]
    templates = evaluate.stage.action_templates(pd.read_parquet(run.benchmark_path))
    for metric, model in (("clipscore", "tiny:clip"), ("vqa", "tiny:vlm"), ("detection", "tiny:owlv2")):
        ours = evaluate.score(paths, bench["base_prompt"].tolist(), metric=metric, model=model, batch_size=4,
                              animal1=bench["animal1"].tolist(), animal2=bench["animal2"].tolist(),
                              action=bench["action"].tolist(), actions=templates,
                              spatial_topology=bench["spatial_topology"].tolist())
        assert list(ours.columns) == ["image", "prompt", "metric", "value", "judge"] and set(ours["judge"]) == {model}
        ours = ours.set_index(["image", "metric"])["value"]
        (judge,) = evaluate.make_judges(EvaluateConfig(**{evaluate.stage.JUDGES[metric][0]: model}), "cpu", templates, [metric])
        theirs = stage[stage.index.get_level_values("metric").isin(judge.metrics)]
        assert sorted(ours.index) == sorted(theirs.index)
        assert np.allclose(ours.values, theirs.loc[ours.index].values, rtol=0, atol=1e-6), metric


def test_score_takes_pil_images_and_one_prompt_for_all():
    images = [Image.new("RGB", (32, 32), c) for c in ("red", "green")]
    table = evaluate.score(images, "a wolf chasing a deer", metric="vqa", model="tiny:vlm")
    assert table["image"].tolist() == [0, 1] and set(table["metric"]) == {"vqa"}  # no agents: the whole-prompt question only
    assert table["value"].between(0, 1).all() and set(table["prompt"]) == {"a wolf chasing a deer"}


def test_list_metrics_names_every_judge():
    assert evaluate.list_metrics() == ["clipscore", "vqa", "detection", "action_clip", "reference", "vlm_api", "pickscore"]
    assert evaluate.METRICS == tuple(evaluate.list_metrics())


def test_score_says_what_is_wrong(tmp_path):
    with pytest.raises(ConfigError, match=r"Unknown metric\(s\) clipscor .*did you mean 'clipscore'.*known: clipscore, vqa"):
        evaluate.score([], [], metric="clipscor")
    two = [Image.new("RGB", (8, 8))] * 2
    with pytest.raises(InputError, match="prompts has 1 entries for 2 images"):
        evaluate.score(two, ["a"], model="tiny:clip")
    with pytest.raises(InputError, match="animal1 has 3 entries for 2 images"):
        evaluate.score(two, "a", metric="vqa", model="tiny:vlm", animal1=["a", "b", "c"])
    with pytest.raises(InputError, match="unknown setting"):
        evaluate.score(two, "a", threshold=0.2)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match=r"image 0 \(.*bad.png\) cannot be read as an image"):
        evaluate.score([tmp_path / "bad.png"], "a cat", model="tiny:clip")


TINY_JUDGES = {"clip_model": "tiny:clip", "vqa_model": "tiny:vlm", "detector_model": "tiny:owlv2",
               "reference_model": "tiny:dinov2", "pickscore_model": "tiny:pickscore", "pickscore_processor": None}


# vlm_api needs a server: tests/test_judges_api.py checks its interface
@pytest.mark.parametrize("metric", [m for m in evaluate.list_metrics() if m != "vlm_api"])
def test_every_judge_keeps_the_declared_interface(metric, tmp_path):
    for action in ("chasing", "biting"):
        (tmp_path / action).mkdir()
        Image.new("RGB", (16, 16), "blue").save(tmp_path / action / "a.png")
    cfg = EvaluateConfig(**TINY_JUDGES, reference_dir=str(tmp_path))
    (judge,) = evaluate.make_judges(cfg, "cpu", {"chasing": "{a} chasing {b}", "biting": None}, [metric])
    assert isinstance(judge, evaluate.Judge) and judge.name and judge.metrics and judge.model_ref.startswith("tiny:")
    items = [{"base_prompt": "a wolf chasing a deer", "animal1": "wolf", "animal2": "deer", "action": "chasing"}] * 2
    values = judge.score([Image.new("RGB", (32, 32), c) for c in ("red", "green")], items)
    assert len(values) == 2 and all(isinstance(judge.signature(i), str) for i in items)
    for found in values:
        assert found and {k for k in found if not k.startswith("_")} <= set(judge.metrics)  # "_" keys are private
