"""Enrichment end to end: the kb enricher, the tiny LLM through transformers, the cache and resume."""

import json

import pandas as pd
import pytest

from act2i_utils.benchmark import build_benchmark
from act2i_utils.enrich import enrich, flagged, length_stats, side_by_side
from act2i_utils.enrich.backends import RowSampler, TransformersBackend
from act2i_utils.enrich.budget import add_token_counts, budget_for_models
from act2i_utils.cache import JsonlCache
from act2i_utils.enrich.checks import mentions
from act2i_utils.enrich.kb import KnowledgeBaseBackend
from act2i_utils.errors import ConfigError
from act2i_utils.runs import open_run

DIMS = ["spatial", "emotional", "temporal"]


@pytest.fixture(scope="module")
def table():
    return build_benchmark(seed=0)


@pytest.fixture(scope="module")
def kb_prompts(table):
    return enrich(table, KnowledgeBaseBackend(), dimensions=DIMS + ["combined"], progress=False)


def test_kb_rewrites_all_125_keeping_both_agents(table, kb_prompts):
    enriched = kb_prompts[kb_prompts["variant"] != "base"]
    assert len(enriched) == 125 * 4 and (enriched["flags"] == "").all()
    names = table.set_index("id")[["animal1", "animal2"]]
    for row in enriched.itertuples():
        a, b = names.loc[row.id]
        assert mentions(row.text, a) and mentions(row.text, b), row.text
        assert row.text.startswith(table.set_index("id").loc[row.id, "base_prompt"].capitalize())


def test_kb_dimensions_differ_from_each_other_and_from_base(kb_prompts):
    wide = kb_prompts.pivot(index="id", columns="variant", values="text")
    for dim in DIMS + ["combined"]:
        assert (wide[dim] != wide["base"]).all()
    for i, first in enumerate(DIMS):
        for second in DIMS[i + 1:]:
            assert (wide[first] != wide[second]).all()
    words = kb_prompts.assign(n=kb_prompts["text"].str.split().str.len()).groupby("variant")["n"].mean()
    assert 20 <= words["temporal"] <= 60 and words["combined"] > words["temporal"]


def test_kb_is_deterministic_and_samples_vary(table, kb_prompts):
    again = enrich(table, KnowledgeBaseBackend(), dimensions=DIMS + ["combined"], progress=False)
    pd.testing.assert_frame_equal(again, kb_prompts)
    two = enrich(table.head(20), KnowledgeBaseBackend(), dimensions=["temporal"], n_samples=2, progress=False)
    wide = two[two["variant"] == "temporal"].pivot(index="id", columns="sample", values="text")
    assert (wide[0] != wide[1]).any()


def test_kb_reads_like_a_person_wrote_it(kb_prompts):
    text = kb_prompts.query("variant == 'temporal'")["text"]
    assert not text.str.contains(r"\{|\}|  |,,|\.\.").any()
    assert text.str.match(r"^[A-Z][^\n]+\.$").all()


def test_kb_people_and_unknown_agents():
    people = build_benchmark(seed=0, agents="people", n_per_action=1)
    out = enrich(people, KnowledgeBaseBackend("people"), dimensions=["temporal"], progress=False)
    twirl = out[(out["variant"] == "temporal") & out["id"].str.contains("-twirl-")]["text"].iloc[0]
    assert "spin" in twirl
    free = pd.DataFrame({"id": ["p1"], "base_prompt": ["a robot greeting a drone"]})
    from act2i_utils.schema import validate_benchmark

    out = enrich(validate_benchmark(free), KnowledgeBaseBackend(), dimensions=["spatial"], progress=False)
    assert out.iloc[-1]["text"].startswith("A robot greeting a drone, ")


def test_kb_rejects_custom_dimensions(table):
    with pytest.raises(ConfigError, match="kb enricher knows the dimensions"):
        enrich(table.head(1), KnowledgeBaseBackend(), dimensions=["lighting"],
               custom={"lighting": "Describe the light."}, progress=False)


class CountingBackend:
    """Scripted answers, counting calls; fails after `fail_after` batches when asked to."""

    name, model_ref = "fake", "fake-1"

    def __init__(self, fail_after=None):
        self.calls, self.batches, self.fail_after = 0, 0, fail_after

    def settings(self):
        return {"temperature": 0.7}

    def generate(self, requests):
        if self.fail_after is not None and self.batches >= self.fail_after:
            raise KeyboardInterrupt
        self.batches += 1
        self.calls += len(requests)
        return [f"{r.base_prompt}, seen {r.dimension}ly, attempt {r.attempt}" for r in requests]


def test_cache_makes_reruns_free_and_resumes_after_interruption(tmp_path, table):
    small = table.head(10)
    path = tmp_path / "cache.jsonl"
    broken = CountingBackend(fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        enrich(small, broken, dimensions=DIMS, batch_size=4, cache=JsonlCache(path), progress=False)
    assert broken.calls == 8 and len(JsonlCache(path)) == 8  # two whole batches were kept
    with open(path, "a") as fh:
        fh.write('{"key": "half-writ')  # a line cut by a crash
    resumed = CountingBackend()
    first = enrich(small, resumed, dimensions=DIMS, batch_size=4, cache=JsonlCache(path), progress=False)
    assert resumed.calls == 30 - 8
    again = CountingBackend()
    second = enrich(small, again, dimensions=DIMS, batch_size=4, cache=JsonlCache(path), progress=False)
    assert again.calls == 0
    pd.testing.assert_frame_equal(first, second)
    assert all(json.loads(line)["key"] for line in path.read_text().splitlines()[-22:])


class FlakyBackend(CountingBackend):
    """Drops the second agent on the first attempt, then answers well."""

    def generate(self, requests):
        self.calls += len(requests)
        return [r.base_prompt.split(" chasing ")[0] + " alone" if r.attempt == 0 else f"{r.base_prompt} at dusk"
                for r in requests]


def test_flagged_rewrites_are_retried_then_the_best_is_kept(table):
    chase = table[table["action"] == "chasing"].head(2)
    backend = FlakyBackend()
    out = enrich(chase, backend, dimensions=["temporal"], max_retries=2, progress=False)
    rows = out[out["variant"] == "temporal"]
    assert (rows["attempts"] == 2).all() and (rows["flags"] == "").all()
    assert rows["text"].str.endswith("at dusk").all() and backend.calls == 4
    stubborn = enrich(chase, FlakyBackend(), dimensions=["temporal"], max_retries=0, progress=False)
    assert (flagged(stubborn)["flags"] == "dropped_agent").all()


def test_tiny_llm_through_transformers_end_to_end(table):
    backend = TransformersBackend("tiny:llm", temperature=0.7, top_p=0.9, max_new_tokens=12)
    small = table.head(6)
    out = enrich(small, backend, dimensions=["temporal"], batch_size=6, max_retries=1, progress=False)
    rows = out[out["variant"] == "temporal"]
    assert len(rows) == 6 and (rows["backend"] == "transformers").all() and (rows["model"] == "tiny:llm").all()
    assert rows["raw"].str.len().gt(0).all()
    # Random weights write gibberish: the checks must notice.
    assert (rows["flags"] != "").all()
    one_by_one = enrich(small, backend, dimensions=["temporal"], batch_size=1, max_retries=1, progress=False)
    assert one_by_one["raw"].tolist() == out["raw"].tolist()  # seeded per request, not per batch


def test_row_sampler_top_p_tiny_keeps_only_the_best_token():
    import torch

    scores = torch.tensor([[0.0, 3.0, 1.0], [2.0, 0.0, 5.0]])
    picked = RowSampler([1, 2], temperature=1.0, top_p=1e-6)(None, scores)
    assert picked.argmax(-1).tolist() == [1, 2]
    a = RowSampler([7], temperature=1.0, top_p=1.0)(None, torch.zeros(1, 50)).argmax(-1)
    b = RowSampler([7], temperature=1.0, top_p=1.0)(None, torch.zeros(1, 50)).argmax(-1)
    assert a.item() == b.item()


def test_budget_counts_with_the_t2i_tokenizers(tmp_path):
    run = open_run(tmp_path / "r", "smoke")
    budget = budget_for_models(run.config.generate.models)
    assert budget.limit == 77 and any("CLIP" in e.label for e in budget.encoders)
    assert budget.too_long(" ".join(["wolf"] * 80)) and not budget.too_long("a wolf chasing a deer")
    prompts = add_token_counts(pd.DataFrame({"variant": ["base", "t"], "text": ["a wolf", " ".join(["deer"] * 90)]}), budget)
    stats = length_stats(prompts)
    assert stats.loc["t", "share_over_budget"] == 1.0 and stats.loc["base", "share_over_budget"] == 0.0


def test_stage_writes_prompts_and_fills_the_published_columns(tmp_path):
    from act2i_utils import benchmark, enrich as stage

    run = open_run(tmp_path / "r", "smoke", {"benchmark": {"n_per_action": 1}})
    benchmark.run(run)
    prompts = stage.run(run, progress=False)
    assert set(prompts["variant"]) == {"base", *DIMS}
    assert pd.read_parquet(run.prompts_path).equals(prompts)
    clip = [c for c in prompts.columns if c.startswith("tokens: ") and c.endswith("(max 77)")]
    assert clip and (prompts[clip[0]] > 2).all()  # every text counted under the T2I model's CLIP tokenizer
    published = pd.read_parquet(run.path("benchmark_enriched.parquet"))
    assert published["temporal_prompt"].notna().all() and published["spatial_prompt"].notna().all()
    wide = side_by_side(prompts, n=3)
    assert list(wide.columns) == ["base", *DIMS] and len(wide) == 3
    assert run.provenance()["stages"]["enrich"]["status"] == "done"
