"""Any action prompt set runs end to end (issue 24): a file whose rows carry only `base_prompt`
(every other column missing or NaN) goes through every stage; rows whose agents are not found are
flagged, enriched, generated, judged by the whole-prompt metrics only, listed and counted. The same
run has two tiny models compared side by side (issue 27): `act2i run` plans the pairs, the VLM judge
answers them in both orders, the analysis ranks the models."""

import json

import numpy as np
import pandas as pd
import pytest

from act2i_utils.cli import main
from act2i_utils.runs import open_run

PROMPTS = [
    "four pigs jumping over a flamingo",
    "a blue sheep playing with three pigs",
    "a brown guitar, and seven turtles chasing two zebras",
    "a chef chasing two waiters",
    "a quiet lake at dawn",  # no agents: flagged, still in every stage
    "three red balloons",  # no agents
]
NOT_FOUND = {"a quiet lake at dawn", "three red balloons"}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """`act2i run --profile smoke --set benchmark.source=<CSV>` over a CSV that has every column of the
    schema, all empty but base_prompt: every notebook, to the report."""
    folder = tmp_path_factory.mktemp("any")
    path = folder / "external.csv"
    columns = ["id", "base_prompt", "animal1", "animal2", "action", "rarity_label", "emotional_valence",
               "spatial_topology", "temporal_extent", "emotional_prompt", "spatial_prompt", "temporal_prompt"]
    frame = pd.DataFrame({c: [np.nan] * len(PROMPTS) for c in columns})
    frame["base_prompt"] = PROMPTS
    frame.to_csv(path, index=False)
    root = folder / "run"
    assert main(["run", "--profile", "smoke", "--run", str(root), "--quiet", "--set", f"benchmark.source={path}",
                 "--set", "generate.variants=[base,temporal]", "--set", "analyze.n_bootstrap=100",
                 "--set", "generate.models=[{model: tiny:sd3}, {model: tiny-flux}]", "--set", "pairs.by=model"]) == 0
    run = open_run(root)
    bench = pd.read_parquet(run.benchmark_path)
    return run, bench, pd.read_parquet(run.prompts_path), pd.read_parquet(run.scores_path), \
        pd.read_csv(run.tables / "acceptance.csv")


def test_rows_without_agents_are_flagged_with_a_reason(study):
    _, bench, _, _, _ = study
    flagged = bench[bench["flags"] == "agents_not_found"]
    assert set(flagged["base_prompt"]) == NOT_FOUND
    assert flagged["agents_note"].map(bool).all()
    found = bench.set_index("base_prompt").loc["four pigs jumping over a flamingo"]
    assert (found["animal1"], found["animal1_count"], found["animal2"], found["action"]) == ("pig", "four", "flamingo",
                                                                                              "jumping over")
    assert bench.set_index("base_prompt").loc["a blue sheep playing with three pigs", "animal1_attributes"] == "blue"
    assert bench.set_index("base_prompt").loc[PROMPTS[2], "scene_objects"] == "a brown guitar"


def test_every_row_is_enriched_and_generated(study):
    run, bench, prompts, _, _ = study
    assert set(prompts[prompts["variant"] == "temporal"]["id"]) == set(bench["id"])
    manifest = pd.read_parquet(run.manifest_path)
    assert set(manifest[manifest["variant"] == "base"]["id"]) == set(bench["id"])


def test_flagged_rows_get_whole_prompt_metrics_only(study):
    _, bench, _, scores, _ = study
    flagged = set(bench.loc[bench["flags"] == "agents_not_found", "id"])
    theirs = scores[scores["id"].isin(flagged)]
    assert {"vqa", "clipscore", "pickscore"} <= set(theirs["metric"])
    assert not any(m.startswith(("vqa_", "soft_tifa", "det_", "geo_", "action_")) for m in theirs["metric"])
    found = scores[~scores["id"].isin(flagged)]
    assert {"vqa_agent1", "vqa_count1", "soft_tifa_gm", "det_agent1"} <= set(found["metric"])


def test_counts_and_attributes_are_asked(study):
    _, bench, _, scores, _ = study
    pigs = bench.loc[bench["base_prompt"] == PROMPTS[0], "id"].iloc[0]
    sheep = bench.loc[bench["base_prompt"] == PROMPTS[1], "id"].iloc[0]
    assert "vqa_count1" in set(scores.loc[scores["id"] == pigs, "metric"])
    assert "vqa_attribute1" in set(scores.loc[scores["id"] == sheep, "metric"])


def test_flagged_rows_are_counted_and_listed(study):
    run, bench, _, _, rates = study
    rates = rates[rates["variant"] == "base"]
    assert len(rates) and (rates["prompts"] == len(bench)).all()
    report = run.report_path.read_text(encoding="utf-8")
    assert "agents_not_found" in report or "agents were not found" in report
    for prompt in NOT_FOUND:
        assert prompt in report
    listed = pd.read_csv(run.tables / "agents_not_found.csv")
    assert set(listed["base_prompt"]) == NOT_FOUND and listed["reason"].map(bool).all()


def test_provenance_names_the_parser(study):
    run, *_ = study
    record = json.loads(run.provenance_path.read_text())["benchmark_source"]
    assert record["parser"].startswith(("rules", "spacy"))


def test_enriching_a_row_with_nan_agents_does_not_crash():
    from act2i_utils.enrich import enrich as enrich_table
    from act2i_utils.enrich.kb import KnowledgeBaseBackend

    table = pd.DataFrame({"id": ["p1", "p2"], "base_prompt": ["a wolf chasing an elk", "a quiet lake"],
                          "animal1": ["wolf", np.nan], "animal2": ["elk", np.nan], "action": ["chasing", np.nan]})
    out = enrich_table(table, KnowledgeBaseBackend(), dimensions=["temporal"], progress=False)
    assert out.loc[out["variant"] == "temporal", "text"].map(bool).all()


@pytest.mark.parametrize("name, content", [
    ("geneval.jsonl", '{"prompt": "four pigs jumping over a flamingo", "tag": "counting"}\n'
                      '{"prompt": "a chef chasing two waiters", "tag": "action"}\n'),
    ("list.json", '[{"prompt": "four pigs jumping over a flamingo", "tag": "counting"},'
                  ' {"prompt": "a chef chasing two waiters"}]'),
    ("keyed.json", '{"pig": {"prompt": "four pigs jumping over a flamingo", "basic_skills": "Counting"},'
                   ' "chef": {"prompt": "a chef chasing two waiters"}}'),
    ("prompts.txt", "four pigs jumping over a flamingo\n\n# a comment\na chef chasing two waiters\n"),
    ("drawbench.csv", "Prompts,Category\nfour pigs jumping over a flamingo,Counting\na chef chasing two waiters,Actions\n"),
    ("captions.csv", "caption\nfour pigs jumping over a flamingo\na chef chasing two waiters\n"),
    ("text.csv", "text,source\nfour pigs jumping over a flamingo,x\na chef chasing two waiters,y\n"),
    ("parti.tsv", "Prompt\tCategory\tChallenge\nfour pigs jumping over a flamingo\tAnimals\tCounting\n"
                  "a chef chasing two waiters\tPeople\tBasic\n"),
])
def test_other_benchmarks_formats_import_as_they_are(tmp_path, name, content):
    from act2i_utils.benchmark import read_benchmark

    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    table = read_benchmark(path)
    assert table["base_prompt"].tolist() == ["four pigs jumping over a flamingo", "a chef chasing two waiters"]
    if name == "keyed.json":
        assert table["id"].tolist() == ["pig", "chef"]
    if name in ("geneval.jsonl", "drawbench.csv", "parti.tsv", "keyed.json"):
        assert json.loads(table["metadata"].iloc[0])  # the other fields are kept, as JSON


def test_a_file_without_a_prompt_column_says_which_names_it_takes(tmp_path):
    from act2i_utils.benchmark import read_benchmark
    from act2i_utils.errors import InputError

    path = tmp_path / "odd.csv"
    path.write_text("foo,bar\n1,2\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"odd.csv: no prompt column \(found: foo, bar\); name it base_prompt or prompt"):
        read_benchmark(path)


def test_the_three_lines_of_the_docs_run(tmp_path, monkeypatch, repo):
    docs = (repo / "docs" / "benchmark.md").read_text(encoding="utf-8")
    snippet = docs.split("## Another benchmark's prompts, in three lines", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    assert len(snippet.strip().splitlines()) == 3
    monkeypatch.chdir(tmp_path)
    (tmp_path / "geneval_prompts.jsonl").write_text('{"prompt": "four pigs jumping over a flamingo", "tag": "counting"}\n'
                                                    '{"prompt": "a photo of a cat", "tag": "single_object"}\n')
    scope = {}
    exec(compile(snippet, "docs/benchmark.md", "exec"), scope)
    assert len(scope["table"]) == 2


@pytest.mark.parametrize("name, content, message", [
    ("nested.json", '[{"prompt": {"text": "a cat chasing a mouse"}}]', r"has a 'prompt' that is not text but a JSON dict"),
    ("missing.jsonl", '{"caption": "a cat chasing a mouse"}\n{"caption": ""}\n', r"row 2 \(id p0002\) has an empty 'caption'"),
    ("empty.json", "[]", r"empty.json: the file holds no rows"),
])
def test_imports_name_the_file_s_own_fields(tmp_path, name, content, message):
    from act2i_utils.benchmark import read_benchmark
    from act2i_utils.errors import InputError

    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        read_benchmark(path)


def test_quotes_in_a_tsv_and_one_json_object_are_read_as_written(tmp_path):
    from act2i_utils.benchmark import read_benchmark

    tsv = tmp_path / "parti.tsv"
    tsv.write_text('Prompt\tCategory\n"Deep Learning" written on a blackboard\tText\n', encoding="utf-8")
    assert read_benchmark(tsv)["base_prompt"].tolist() == ['"Deep Learning" written on a blackboard']
    one = tmp_path / "one.json"
    one.write_text('{"prompt": "a cat chasing a mouse", "tag": "x"}', encoding="utf-8")
    assert read_benchmark(one)["base_prompt"].tolist() == ["a cat chasing a mouse"]


@pytest.mark.parametrize("prompt, agent, question", [
    ("the women are feeding the geese", "vqa_action", "Are the women feeding the geese?"),
    ("people watching two dolphins", "vqa_agent1", "Are there people in this image?"),
    ("a girl hugging her dog", "vqa_action", "Is the girl hugging the dog?"),
    ("a baby elephant following its mother", "vqa_attribute1", "Is the elephant a baby elephant?"),
    ("six stone dogs chasing a horse", "vqa_attribute1", "Are the dogs made of stone?"),
    ("a blue sheep playing with three pigs", "vqa_count2", "Are there three pigs in this image?"),
])
def test_questions_agree_in_number_with_the_prompt(prompt, agent, question):
    from act2i_utils.benchmark import parse_prompt
    from act2i_utils.evaluate.questions import vqa_questions

    p = parse_prompt(prompt, parser="rules")
    asked = vqa_questions(prompt, p.agent1.noun, p.agent2.noun, p.action, p.template, (p.agent1.count, p.agent2.count),
                          (";".join(p.agent1.attributes), ";".join(p.agent2.attributes)))
    assert asked[agent] == f"{question} Please answer yes or no."


def test_act2i_run_plans_pairs_judges_them_in_both_orders_and_ranks_the_models(study):
    run, bench, *_ = study
    plan = pd.read_parquet(run.pairs_path)
    judged = pd.read_parquet(run.pair_judgements_path)
    assert set(plan["a"]) | set(plan["b"]) == {"tiny-sd3", "tiny-flux"} and set(judged["pair_id"]) == set(plan["pair_id"])
    assert judged[["p_first_ab", "p_first_ba"]].notna().all().all()
    assert len(pd.read_json(run.pair_cache_path, lines=True)) == 2 * len(plan)  # both orders, cached
    ranked = pd.read_csv(run.tables / "ranking.csv")
    assert set(ranked["system"]) == {"tiny-sd3", "tiny-flux"} and ranked["random_weights"].all()
    assert (run.figures / "ranking.png").is_file() and (run.tables / "position_bias.csv").is_file()
