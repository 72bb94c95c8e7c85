"""The select stage (issue 21): judge-guided choice of rewrite and image per prompt, honest evaluation.

Policies and the cost curve on constructed tables (exact expectations against brute force; a
cross-fitted rule that never sees a prompt's own outcome; simulations where an informative judge
helps people and a noisy one does not), the refusal to let a selection judge grade its own picks,
and the stage on the tiny models (deterministic, manifest pointers, set aside when settings change).
"""

import math
import random
import zlib
from itertools import combinations

import numpy as np
import pandas as pd
import pytest

from act2i_utils import config as cfg
from act2i_utils import select
from act2i_utils.errors import ConfigError, InputError
from act2i_utils.schema import KEY, SELECTION
from act2i_utils.select import evaluation, policies
from act2i_utils.select.stage import GROUPS, NOT_HIGHER_IS_BETTER, choose_all, judge_group

DIMS = ["base", "spatial", "emotional", "temporal"]
VALENCES = ["aggressive", "defensive", "affiliative", "communicative"]
EXTENTS = ["instantaneous", "extended"]


# --- constructed tables -----------------------------------------------------------------------


def bench_table(n: int, rng: random.Random) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"p{i:03d}" for i in range(n)],
                         "emotional_valence": [rng.choice(VALENCES) for _ in range(n)],
                         "spatial_topology": [rng.choice(["pursuit", "physical contact", "distant interaction"]) for _ in range(n)],
                         "temporal_extent": [rng.choice(EXTENTS) for _ in range(n)]})


def candidates_table(values: dict, seeds: list[int], metric: str = "pickscore") -> pd.DataFrame:
    """values: (id, variant, seed) -> judge value."""
    rows = []
    for (pid, variant, seed), value in values.items():
        dimension, sample = policies.parse_variant(variant)
        rows.append({"model": "m", "id": pid, "variant": variant, "dimension": dimension, "sample": sample, "seed": seed,
                     "role": "selection", "metric": metric, "judge": "tiny:pickscore", "value": value,
                     "path": f"images/m/{variant}/{pid}_{seed}.png"})
    return pd.DataFrame(rows)


def profile(**select):
    return cfg.load_profile("smoke", {"generate": {"seeds": [1, 2, 3, 4], "variants": DIMS},
                                      "select": {"judge_metric": "pickscore", **select}})


# --- the policies -----------------------------------------------------------------------------


def brute_force_best(scores, outcomes, r):
    """Average over every set of r-1 non-base configurations of the outcome of the judge's pick."""
    m = len(scores) - 1
    total = 0.0
    subsets = list(combinations(range(1, m + 1), r - 1))
    for subset in subsets:
        pool = [0, *subset]
        key = lambda i: (0 if scores[i] == scores[i] else 1, -(scores[i] if scores[i] == scores[i] else 0), i)  # noqa: E731
        total += outcomes[min(pool, key=key)]
    return total / len(subsets)


def test_expected_best_is_exact():
    rng = np.random.default_rng(0)
    for trial in range(60):
        m = int(rng.integers(1, 7))
        scores = rng.integers(0, 4, size=m + 1).astype(float)  # many ties
        if trial % 3 == 0:
            scores[rng.integers(0, m + 1)] = np.nan
        outcomes = rng.random(m + 1)
        for r in range(1, m + 2):
            assert policies.expected_best(scores, outcomes, r) == pytest.approx(brute_force_best(scores, outcomes, r))
    assert policies.expected_best(np.array([0.1, 0.9]), np.array([0.0, 1.0]), 1) == 0.0  # the base alone


def test_policies_break_ties_the_same_way_whatever_the_row_order():
    values = {(pid, v, s): float((zlib.crc32(f"{pid}{v}".encode()) % 3) if v != "temporal" else 2)
              for pid in ["a", "b", "c"] for v in DIMS for s in [1, 2]}
    values[("a", "base", 1)] = 5.0
    cands = candidates_table(values, [1, 2])
    shuffled = cands.sample(frac=1.0, random_state=3)
    for fn in (policies.best_of_all, policies.best_dimension):
        a = fn(cands, [1, 2], DIMS).sort_values("id").reset_index(drop=True)
        b = fn(shuffled, [1, 2], DIMS).sort_values("id").reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b)
    top = policies.best_of_all(cands, [1, 2], DIMS).set_index("id")
    assert top.loc["a", "chosen_variant"] == "base" and top.loc["a", "chosen_seed"] == 1
    flat = candidates_table({(p, v, s): 1.0 for p in ["x", "y"] for v in DIMS for s in [1, 2]}, [1, 2])
    assert set(policies.best_dimension(flat, [1, 2], DIMS)["chosen_variant"]) == {"base"}  # a tie keeps the base


def test_folds_are_balanced_and_deterministic():
    ids = [f"p{i}" for i in range(23)]
    folds = policies.folds_for(ids, 5, seed=0)
    assert folds == policies.folds_for(list(reversed(ids)), 5, seed=0)
    sizes = pd.Series(folds).value_counts()
    assert sizes.max() - sizes.min() <= 1 and len(sizes) == 5
    assert folds != policies.folds_for(ids, 5, seed=1)


def leaking_tables(n=160, seed=0):
    """A judge that leaks each prompt's own answer: its best dimension scores 1, the others 0; the
    labels say nothing about which dimension that is."""
    rng = random.Random(seed)
    bench = bench_table(n, rng)
    truth = {pid: rng.choice(DIMS) for pid in bench["id"]}
    values = {(pid, v, s): float(v == truth[pid]) for pid in bench["id"] for v in DIMS for s in [1, 2]}
    return bench, truth, candidates_table(values, [1, 2])


def test_cross_fitting_never_uses_a_prompts_own_outcome():
    bench, truth, cands = leaking_tables()
    own = policies.best_dimension(cands, [1], DIMS).set_index("id")["chosen_variant"]
    assert (own == pd.Series(truth).reindex(own.index)).all()  # choosing with the prompt's own outcome finds the leak every time
    fitted = policies.per_label(cands, bench, [1], labels=list(cfg.SELECT_LABELS), n_folds=5, order=DIMS).set_index("id")
    agreement = (fitted["chosen_variant"] == pd.Series(truth).reindex(fitted.index)).mean()
    assert agreement < 0.4  # chance is 0.25: the leak cannot reach a cross-fitted choice
    # the sharp form: rewriting a prompt's own values, however strongly, never changes its own choice
    for pid in list(bench["id"])[:8]:
        changed = cands.copy()
        mine = changed["id"] == pid
        changed.loc[mine, "value"] = np.where(changed.loc[mine, "variant"] == fitted.at[pid, "chosen_variant"], -100.0, 100.0)
        again = policies.per_label(changed, bench, [1], labels=list(cfg.SELECT_LABELS), n_folds=5, order=DIMS).set_index("id")
        assert again.at[pid, "chosen_variant"] == fitted.at[pid, "chosen_variant"]
        assert again.at[pid, "fold"] == fitted.at[pid, "fold"]


def test_per_label_learns_a_rule_that_holds_across_prompts():
    rng = random.Random(1)
    bench = bench_table(100, rng)
    best = {"instantaneous": "temporal", "extended": "spatial"}
    extent = bench.set_index("id")["temporal_extent"]
    values = {(pid, v, s): float(v == best[extent[pid]]) + rng.random() * 0.5
              for pid in bench["id"] for v in DIMS for s in [1]}
    chosen = policies.per_label(candidates_table(values, [1]), bench, [1], labels=["emotional_valence", "temporal_extent"],
                                n_folds=4, order=DIMS)
    assert (chosen["chosen_variant"] == chosen["id"].map(extent).map(best)).all()
    assert chosen["rule"].str.startswith("temporal_extent = ").all() and set(chosen["fold"]) == {0, 1, 2, 3}


# --- honest evaluation ------------------------------------------------------------------------


def test_judge_families_cover_every_metric_of_every_judge():
    from act2i_utils.evaluate.api import VlmApiJudge
    from act2i_utils.evaluate.judges import ActionClassifier, ClipScore, Detector, PickScore, ReferenceSimilarity, VqaJudge

    for judge in (ClipScore, PickScore, ActionClassifier, VqaJudge, Detector, ReferenceSimilarity, VlmApiJudge):
        for metric in judge.metrics:
            assert evaluation.judge_family(metric) != metric, metric
            if metric in NOT_HIGHER_IS_BETTER:
                with pytest.raises(ConfigError, match="higher is better"):
                    judge_group(metric, [])
            else:
                assert any(p.match(metric) for p, _ in GROUPS), metric
    assert evaluation.same_judge("vqa", "soft_tifa_gm") and evaluation.same_judge("action_top1", "clipscore")
    assert not evaluation.same_judge("vqa", "pickscore") and not evaluation.same_judge("human", "vqa")
    assert judge_group("soft_tifa_gm", ["vlm_api"]) == "vlm_api" and judge_group("soft_tifa_gm", ["vqa"]) == "vqa"
    with pytest.raises(ConfigError, match="not a metric of any judge"):
        judge_group("nope", [])


def simulate(judge: str, n: int = 200, seed: int = 0, heldout: bool = True):
    """Constructed study: which dimension people accept depends on the prompt (temporal best on
    average, not everywhere); the judge is informative (tracks people's chance) or pure noise.
    Returns (selection, acceptance of every image incl. the selected ones, candidates)."""
    rng = np.random.default_rng(seed)
    pyrng = random.Random(seed)
    bench = bench_table(n, pyrng)
    seeds = [1, 2, 3, 4]
    effect = {"base": 0.0, "spatial": 0.2, "emotional": 0.1, "temporal": 0.5}
    values, accepted = {}, {}
    for pid in bench["id"]:
        difficulty = rng.normal(-0.3, 1.0)
        for v in DIMS:
            logit = difficulty + effect[v] + rng.normal(0, 1.5)
            p = 1 / (1 + math.exp(-logit))
            for s in seeds:
                accepted[(pid, v, s)] = int(rng.random() < p)
                values[(pid, v, s)] = logit + rng.normal(0, 0.5) if judge == "informative" else rng.normal()
    cands = candidates_table(values, seeds)
    config = profile(policies=["best_dimension", "per_label", "best_of_all"], selection_seeds=[1, 2] if heldout else seeds)
    selection = choose_all(cands, bench, config, "tiny:pickscore")
    acc = [{"model": "m", "variant": v, "id": pid, "seed": s, "accepted": a} for (pid, v, s), a in accepted.items()]
    acc += [{"model": "m", "variant": r.variant, "id": r.id, "seed": r.seed,
             "accepted": accepted[(r.id, r.chosen_variant, r.chosen_seed)]} for r in selection.itertuples()]
    return selection, pd.DataFrame(acc), cands


@pytest.fixture(scope="module")
def informative():
    return simulate("informative")


@pytest.fixture(scope="module")
def noise():
    return simulate("noise")


def best_fixed_row(table, variant):
    part = table[(table["variant"] == variant)]
    return part[part["best_fixed"]].iloc[0]


def test_an_informative_judge_helps_people_and_noise_does_not(informative, noise):
    results = {}
    for name, (selection, acc, _) in (("informative", informative), ("noise", noise)):
        table = select.honest_comparison(acc, selection, "human", "pickscore", n_boot=500)
        assert set(table["evaluated_by"]) == {"human"} and set(table["selected_by"]) == {"pickscore (tiny:pickscore)"}
        results[name] = {v: best_fixed_row(table, v) for v in ("selected", "selected_per_label", "selected_best_of_all")}
    good, bad = results["informative"], results["noise"]
    assert good["selected"]["reference"] == "temporal"  # the best fixed dimension, as designed
    for variant in ("selected", "selected_best_of_all"):
        assert good[variant]["difference"] > 0.05 and good[variant]["difference_low"] > 0, variant
        assert bad[variant]["difference"] < 0, variant  # a noisy judge picks at random: worse than the best fixed
    assert good["selected"]["seeds"] == "held-out seeds 3, 4"
    print({k: {v: round(r["difference"], 3) for v, r in d.items()} for k, d in results.items()})


def test_a_selection_judge_may_not_grade_its_own_picks(informative):
    selection, acc, _ = informative
    with pytest.raises(InputError, match="would be evaluated only by the same judge"):
        select.honest_comparison(acc, selection, "pickscore", "pickscore")  # best_of_all: its own winners
    verdict = select.reportable(selection, "pickscore")
    assert verdict["selected_best_of_all"] and verdict["selected"] is None and verdict["selected_per_label"] is None
    ok = [v for v, sentence in verdict.items() if sentence is None]
    table = select.honest_comparison(acc, selection, "pickscore", variants=ok, n_boot=200)
    assert set(table["variant"]) == {"selected", "selected_k1", "selected_per_label"}  # held-out seeds, cross-fitting: honest
    kept, notes = select.honest_acceptance(acc, selection, "pickscore")
    assert not (kept["variant"] == "selected_best_of_all").any() and "selected_best_of_all" in " ".join(notes)
    assert len(select.honest_acceptance(acc, selection, "vqa")[0]) == len(acc)  # another judge sees everything
    # without held-out seeds the best dimension was chosen on the very images it stands for
    same_seeds, acc2, _ = simulate("informative", n=40, heldout=False)
    assert not same_seeds.loc[same_seeds["variant"] == "selected", "honest"].any()
    with pytest.raises(InputError, match="'selected' \\(best_dimension\\)"):
        select.honest_comparison(acc2, same_seeds, "pickscore", variants=["selected"])
    assert len(select.honest_comparison(acc2, same_seeds, "human", variants=["selected"], n_boot=100))


def test_cost_curve_starts_at_zero_and_informative_selection_gains(informative, noise):
    selection, acc, cands = informative
    curve = select.cost_curve(cands, acc, evaluator="human", mode="heldout", selection_seeds=[1, 2], heldout_seeds=[3, 4],
                              n_boot=300)
    assert list(curve.columns) == list(evaluation.SELECT_COST_CURVE.columns)
    first = curve[(curve["rewrites"] == 1) & (curve["seeds"] == 1)].iloc[0]
    assert first["gain"] == 0 and first["low"] == 0 and first["high"] == 0 and first["candidates"] == 1
    assert set(curve["candidates"]) == {1, 2, 3, 4, 6, 8}
    by_r = curve[curve["seeds"] == 2].set_index("rewrites")["gain"]
    assert by_r.is_monotonic_increasing and by_r[4] > 0.1
    image = select.cost_curve(cands, acc, evaluator="human", mode="image", n_boot=300)
    assert image["gain"].max() > 0.1 and set(image["seeds"]) == {1, 2, 3, 4}
    with pytest.raises(InputError, match="cannot be evaluated by pickscore, the same judge"):
        select.cost_curve(cands, acc, evaluator="pickscore", mode="image")
    with pytest.raises(InputError, match="needs held-out seeds"):
        select.cost_curve(cands, acc, evaluator="human", mode="heldout", selection_seeds=[1, 2, 3, 4], heldout_seeds=[])
    flat = select.cost_curve(noise[2], noise[1], evaluator="human", mode="heldout", selection_seeds=[1, 2],
                             heldout_seeds=[3, 4], n_boot=300)
    assert flat["gain"].max() < by_r[4]
    fig = select.cost_curve_figure(curve, "constructed study")
    assert fig.axes and "selected by pickscore (tiny:pickscore)" in fig.texts[0].get_text()


def test_cost_curve_by_brute_force_on_a_small_table():
    rng = np.random.default_rng(5)
    values, outcome = {}, {}
    for pid in ["a", "b", "c"]:
        for v in DIMS:
            for s in [1, 2, 3]:
                values[(pid, v, s)] = float(rng.integers(0, 3))
                outcome[(pid, v, s)] = float(rng.random() < 0.5)
    cands = candidates_table(values, [1, 2, 3], metric="vqa")
    acc = pd.DataFrame([{"model": "m", "variant": v, "id": p, "seed": s, "accepted": a} for (p, v, s), a in outcome.items()])
    curve = select.cost_curve(cands, acc, evaluator="human", mode="image", n_boot=50).set_index(["rewrites", "seeds"])
    for r, k in [(2, 1), (3, 2), (4, 3)]:
        per_prompt = []
        for pid in ["a", "b", "c"]:
            total, count = 0.0, 0
            for seeds in combinations([1, 2, 3], k):
                for others in combinations(DIMS[1:], r - 1):
                    pool = [(v, s) for v in ["base", *others] for s in seeds]
                    rank = {v: i for i, v in enumerate(DIMS)}
                    best = max(pool, key=lambda vs: (values[(pid, *vs)], -rank[vs[0]], -vs[1]))
                    total += outcome[(pid, *best)]
                    count += 1
            base = np.mean([outcome[(pid, "base", s)] for s in [1, 2, 3]])
            per_prompt.append(total / count - base)
        assert curve.loc[(r, k), "gain"] == pytest.approx(np.mean(per_prompt))


# --- the stage on the tiny models -------------------------------------------------------------


@pytest.fixture(scope="module")
def selected(tmp_path_factory):
    """6 prompts x (base, temporal, temporal.s1) x seeds 42, 43: 42 chooses, 43 is held out."""
    from act2i_utils import generate
    from act2i_utils.benchmark import build_benchmark
    from act2i_utils.enrich import enrich
    from act2i_utils.enrich.kb import KnowledgeBaseBackend
    from act2i_utils.runs import open_run

    root = tmp_path_factory.mktemp("select") / "run"
    run = open_run(root, "smoke", {"generate": {"seeds": [42, 43], "variants": ["base", "temporal"]},
                                   "enrich": {"n_samples": 2},
                                   "select": {"policies": ["best_dimension", "per_label", "best_of_all"],
                                              "selection_seeds": [42], "folds": 2},
                                   "evaluate": {"metrics": ["pickscore"], "batch_size": 8}})
    bench = build_benchmark(seed=0, n_per_action=1).head(6)
    bench.to_parquet(run.benchmark_path)
    enrich(bench, KnowledgeBaseBackend(), dimensions=["temporal"], n_samples=2, progress=False).to_parquet(run.prompts_path)
    generate.run(run, progress=False)
    return run, select.run(run, progress=False)


def test_the_stage_writes_choices_candidates_and_manifest_pointers(selected):
    from act2i_utils.manifest import configured_images, read_manifest

    run, chosen = selected
    cands = pd.read_parquet(run.select_candidates_path)
    assert len(cands) == 6 * 3 * 2 and set(cands["variant"]) == {"base", "temporal", "temporal.s1"}
    assert cands["value"].notna().all() and set(cands["role"]) == {"selection", "heldout"}
    table = SELECTION.read(run.selection_path)
    assert set(table["variant"]) == {"selected", "selected_per_label", "selected_best_of_all"}
    heldout = table[table["variant"] == "selected"]
    assert set(heldout["seed"]) == {43} and heldout["honest"].all() and set(heldout["seeds_seen"]) == {"[42]"}
    assert not table.loc[table["variant"] == "selected_best_of_all", "honest"].any()
    assert (table["metric"] == "pickscore").all() and (table["judge"] == "tiny:pickscore").all()
    manifest = read_manifest(run.root)
    rows = manifest[manifest["source"] == "selected"].merge(table[KEY + ["chosen_path"]], on=KEY)
    assert len(rows) == len(table) and (rows["path"] == rows["chosen_path"]).all()
    assert all((run.root / p).is_file() for p in rows["path"])
    assert not list(run.images.glob("*/selected*"))  # pointers, no copies
    images, aside = configured_images(run)
    assert aside == 0 and {"selected", "temporal.s1"} <= set(images["variant"])
    curve = pd.read_parquet(run.select_cost_curve_path)
    assert set(curve["evaluated_by"]) == {"pickscore on held-out seeds 43"} and len(curve) == 3
    assert run.provenance()["stages"]["select"]["status"] == "done"
    assert chosen.summary().loc[("tiny-sd3", "selected"), "images"] == 6


def test_selection_is_deterministic_and_a_rerun_is_free(selected, monkeypatch):
    from act2i_utils.evaluate import judges

    run, chosen = selected
    before = SELECTION.read(run.selection_path)
    monkeypatch.setattr(judges.PickScore, "score", lambda *a, **k: pytest.fail("a rerun must not judge again"))
    again = select.run(run, progress=False)
    pd.testing.assert_frame_equal(again.selection.reset_index(drop=True), before.reset_index(drop=True))
    shuffled = choose_all(chosen.candidates.sample(frac=1.0, random_state=0), pd.read_parquet(run.benchmark_path),
                          run.config, "tiny:pickscore")
    pd.testing.assert_frame_equal(shuffled.reset_index(drop=True), before.reset_index(drop=True))


def test_evaluate_judges_the_selected_variants_like_any_other(selected):
    from act2i_utils import evaluate

    run, _ = selected
    scores = evaluate.run(run, progress=False)
    per = scores[scores["metric"] == "pickscore"].set_index(KEY)["value"]
    table = SELECTION.read(run.selection_path)
    for r in table.itertuples():
        assert per[(r.model, r.variant, r.id, r.seed)] == per[(r.model, r.chosen_variant, r.id, r.chosen_seed)]


def test_a_changed_selection_setting_sets_the_old_choices_aside(selected, tmp_path):
    import shutil

    from act2i_utils.manifest import configured_images
    from act2i_utils.runs import open_run

    run, _ = selected
    copy = tmp_path / "copy"
    shutil.copytree(run.root, copy)
    changed = open_run(copy, None, {"select": {"judge_metric": "clipscore"}}, reconfigure=True)
    images, aside = configured_images(changed)
    assert not images["variant"].str.startswith("selected").any() and aside == 6 * 3
    off = open_run(copy, None, {"select": {"enabled": False}}, reconfigure=True)
    images, _ = configured_images(off)
    assert set(images["variant"]) == {"base", "temporal"}
    result = select.run(off, progress=False)
    assert result.selection.empty and "off" in result.notes[0]


def test_the_cli_runs_the_stage(selected, capsys):
    from act2i_utils.cli import main

    run, _ = selected
    assert main(["select", "--run", str(run.root), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "selected images (selected, selected_per_label, selected_best_of_all)" in out


def test_the_config_checks_its_seeds_and_names_the_variants():
    p = profile(selection_seeds=[1, 2], budgets=[1, 2, 4], policies=["best_dimension", "per_label", "best_of_all"])
    assert p.select.seeds(p.generate.seeds) == ([1, 2], [3, 4])
    assert p.select.variants(p.generate.seeds) == ["selected", "selected_k1", "selected_per_label", "selected_best_of_all"]
    assert cfg.load_profile("paper").select.enabled is False
    with pytest.raises(ConfigError, match="select.selection_seeds' names seed\\(s\\) 9"):
        profile(selection_seeds=[9])
    assert "select:" in cfg.dump(p)


# --- refinement (Idea2Img style) --------------------------------------------------------------


def test_refinement_turns_failed_atoms_into_a_new_rewrite(tmp_path):
    from act2i_utils import generate
    from act2i_utils.benchmark import build_benchmark
    from act2i_utils.enrich import enrich
    from act2i_utils.enrich.kb import KnowledgeBaseBackend
    from act2i_utils.manifest import configured_images
    from act2i_utils.runs import open_run
    from act2i_utils.schema import SELECT_REFINE
    from act2i_utils.select import refine

    run = open_run(tmp_path / "run", "smoke", {
        "generate": {"seeds": [42, 43], "variants": ["base", "temporal"]},
        "enrich": {"backend": "transformers", "model": "tiny:llm", "max_new_tokens": 12, "max_retries": 0},
        "select": {"judge_metric": "soft_tifa_gm", "selection_seeds": [42], "folds": 2, "refine": True},
        "evaluate": {"metrics": ["vqa"], "batch_size": 8}})
    bench = build_benchmark(seed=0, n_per_action=1).head(3)
    bench.to_parquet(run.benchmark_path)
    enrich(bench, KnowledgeBaseBackend(), dimensions=["temporal"], progress=False).to_parquet(run.prompts_path)
    generate.run(run, progress=False)
    chosen = select.run(run, progress=False)
    table = SELECT_REFINE.read(run.select_refine_path)
    assert len(table) == 3 and (table["best_score"] < 0.5).all()  # random weights: nothing passes
    first = table.iloc[0]
    row = bench.set_index("id").loc[first["id"]]
    assert first["failed_atoms"] and "vqa_agent1" in first["failed_atoms"].split(",")
    assert f"the {row['animal1']} is missing" in first["feedback"] and first["backend"] == "transformers: tiny:llm"
    assert isinstance(first["text"], str) and first["text"]
    refined = chosen.candidates[chosen.candidates["variant"] == "refined"]
    assert len(refined) == 3 * 2 and refined["value"].notna().all()
    images, _ = configured_images(run)
    assert (images["variant"] == "refined").sum() == 6
    assert "refined" not in set(chosen.selection.loc[chosen.selection["variant"] == "selected_per_label", "chosen_variant"])
    assert any("Refinement: 3" in n for n in chosen.notes)
    assert refine.feedback(["vqa_reversed"], {"animal1": "wolf", "animal2": "elk", "action": "chasing"}) == \
        "the roles look reversed: the elk seems to be chasing the wolf"
    again = select.run(run, progress=False)  # a rerun asks the LLM nothing new and makes no image
    pd.testing.assert_frame_equal(SELECT_REFINE.read(run.select_refine_path), table)
    pd.testing.assert_frame_equal(again.selection, chosen.selection)
    with pytest.raises(ConfigError, match="failed atoms to the LLM"):
        refine.check(open_run(run.root, None, {"select": {"judge_metric": "pickscore"}}, reconfigure=True).config)
