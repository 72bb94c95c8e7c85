"""Imported prompt sets: the published AcT2I set from a Hub dataset (laid out offline in a temporary
Hugging Face cache), a local copy, its rewrites used as given, and prompts without agent columns."""

import json

import pandas as pd
import pytest

from act2i_utils import benchmark, enrich
from act2i_utils.benchmark.sources import PAPER_DATASET, find_agents, read_source
from act2i_utils.errors import ConfigError, InputError
from act2i_utils.runs import open_run

ROWS = [
    {"id": "1", "base_prompt": "a sheep attacking a boar", "animal1": "sheep", "animal2": "boar", "action": "attacking",
     "rarity_label": "Rare", "emotional_valence": "aggressive", "spatial_topology": "physical contact",
     "temporal_extent": "instantaneous", "emotional_prompt": "A furious sheep attacking a startled boar, ears pinned back.",
     "spatial_prompt": "A sheep in the foreground attacking a boar on the right, low angle.",
     "temporal_prompt": "A sheep attacking a boar at the moment of impact, dust flying."},
    {"id": "2", "base_prompt": "a goose competing for dominance with a turkey", "animal1": "goose", "animal2": "turkey",
     "action": "competing for dominance with", "rarity_label": "plausible", "emotional_valence": "aggressive",
     "spatial_topology": "physical contact", "temporal_extent": "extended",
     "emotional_prompt": "A hissing goose competing for dominance with a puffed-up turkey.",
     "spatial_prompt": "A goose on the left competing for dominance with a turkey on the right.",
     "temporal_prompt": None},
]


def hub_repo(cache, rows=ROWS, revision="ab12" * 10):
    """A dataset repository as huggingface_hub lays it out in its cache."""
    repo = cache / f"datasets--{PAPER_DATASET.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    data = repo / "snapshots" / revision / "data"
    data.mkdir(parents=True)
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data / "train.jsonl"


@pytest.fixture
def hub(tmp_path, monkeypatch):
    cache = tmp_path / "hf"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return hub_repo(cache)


def test_the_published_set_reads_from_the_hub_offline(hub):
    table, record = read_source(f"hf://datasets/{PAPER_DATASET}")
    assert list(table["id"]) == ["1", "2"] and table.loc[0, "rarity_label"] == "rare"
    assert record["revision"] == "ab12" * 10 and record["files"] == {"data/train.jsonl": record["files"]["data/train.jsonl"]}
    pinned, _ = read_source(f"hf://datasets/{PAPER_DATASET}@{'ab12' * 10}")
    assert pinned.equals(table)


def test_an_uncached_dataset_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(InputError, match=r"hf download --repo-type dataset vatsal-malaviya/AcT2I-Prompts.*local copy"):
        read_source(f"hf://datasets/{PAPER_DATASET}")


def test_the_stage_imports_and_records_the_source(hub, tmp_path):
    run = open_run(tmp_path / "r", "smoke", {"benchmark": {"source": f"hf://datasets/{PAPER_DATASET}"}})
    table = benchmark.run(run)
    assert table["action_key"].tolist() == ["attack", "dominance"]  # templates found by phrase
    assert run.provenance()["benchmark_source"]["revision"] == "ab12" * 10
    local = tmp_path / "copy.jsonl"
    local.write_bytes(hub.read_bytes())
    other = open_run(tmp_path / "l", "smoke", {"benchmark": {"source": str(local)}})
    pd.testing.assert_frame_equal(benchmark.run(other), table)
    assert other.provenance()["benchmark_source"]["sha256"] == run.provenance()["benchmark_source"]["files"]["data/train.jsonl"]


def test_source_rewrites_are_used_as_given(hub, tmp_path):
    source = {"benchmark": {"source": f"hf://datasets/{PAPER_DATASET}"}}
    run = open_run(tmp_path / "r", "smoke", {**source, "enrich": {"backend": "source", "dimensions": ["spatial", "emotional"]},
                                             "generate": {"variants": ["base", "spatial", "emotional"]}})
    benchmark.run(run)
    prompts = enrich.run(run, progress=False).set_index(["id", "variant"])
    assert prompts.loc[("1", "emotional"), "text"] == ROWS[0]["emotional_prompt"]
    assert prompts.loc[("2", "spatial"), "backend"] == "source"
    missing = open_run(tmp_path / "m", "smoke", {**source, "enrich": {"backend": "source"}})
    benchmark.run(missing)
    with pytest.raises(InputError, match=r"1 row\(s\) have no temporal_prompt \(ids 2\); set enrich.fallback_backend"):
        enrich.run(missing, progress=False)
    filled = open_run(tmp_path / "f", "smoke", {**source, "enrich": {"backend": "source", "fallback_backend": "kb"}})
    benchmark.run(filled)
    out = enrich.run(filled, progress=False).set_index(["id", "variant"])
    assert out.loc[("2", "temporal"), "backend"] == "kb" and out.loc[("1", "temporal"), "backend"] == "source"


def test_enriching_anew_over_carried_rewrites_warns(hub, tmp_path):
    run = open_run(tmp_path / "r", "smoke", {"benchmark": {"source": f"hf://datasets/{PAPER_DATASET}"}})
    benchmark.run(run)
    with pytest.warns(UserWarning, match="carries 5 rewrites"):
        enrich.run(run, progress=False)


def test_the_shipped_paper_profiles():
    from act2i_utils.config import load_profile

    paper, llama = load_profile("paper"), load_profile("paper-llama")
    assert paper.benchmark.source == llama.benchmark.source == f"hf://datasets/{PAPER_DATASET}"
    assert paper.enrich.backend == "source" and llama.enrich.model == "meta-llama/Llama-3.3-70B-Instruct"
    with pytest.raises(ConfigError, match="set benchmark.source"):
        load_profile("smoke", ["enrich.backend=source"])


@pytest.mark.parametrize("prompt, expected", [
    ("a sheep attacking a boar", ("sheep", "attacking", "boar")),
    ("A goose competing for dominance with a turkey.", ("goose", "competing for dominance with", "turkey")),
    ("a horse carrying an elephant on its back", ("horse", "carrying", "elephant")),
    ("a python giving a warning call to a gecko", ("python", "giving a warning call to", "gecko")),
    ("a polar bear chasing a harbor seal across the ice", ("polar bear", "chasing", "harbor seal")),
    ("a dancer twirling a dance partner", ("dancer", "twirling", "dance partner")),
    ("a fox fleeing from a bear", ("fox", "fleeing from", "bear")),
    ("a parent lifting a child onto a swing", ("parent", "lifting", "child")),
    ("sunset over a quiet sea", None),
    ("two cats", None),
])
def test_agents_are_found_in_the_prompt(prompt, expected):
    assert find_agents(prompt) == expected


def test_a_file_with_only_prompts_gets_its_agents_everywhere(tmp_path):
    path = tmp_path / "mine.csv"
    pd.DataFrame({"base_prompt": ["a wolf chasing an elk", "a sunset"]}).to_csv(path, index=False)
    run = open_run(tmp_path / "r", "smoke", {"benchmark": {"source": str(path)}})
    table = benchmark.run(run)
    assert table[["animal1", "animal2", "action", "flags"]].values.tolist() == [
        ["wolf", "elk", "chasing", "agents_inferred"], [None, None, None, "agents_not_found"]]
    questions = [f"a photo of {t}" for t in ("a wolf", "an elk")]
    from act2i_utils.evaluate.questions import vqa_questions, with_article

    assert [f"a photo of {with_article(a)}" for a in table.loc[0, ["animal1", "animal2"]]] == questions
    assert "vqa_agent2" in vqa_questions(table.loc[0, "base_prompt"], "wolf", "elk", "chasing")
