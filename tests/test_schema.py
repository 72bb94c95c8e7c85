"""Importing prompt sets: every supported format loads into the published schema; bad files are named."""

import json

import pandas as pd
import pytest

from act2i_utils.benchmark import build_benchmark
from act2i_utils.errors import InputError
from act2i_utils.schema import BENCHMARK_COLUMNS, export_benchmark, read_benchmark


@pytest.fixture(scope="module")
def table():
    frame = build_benchmark(seed=0, n_per_action=2)
    frame.loc[0, "temporal_prompt"] = "a wolf mid-leap, forelegs outstretched, the deer turning its head"
    return frame


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".csv"])
def test_export_import_round_trip(tmp_path, table, suffix):
    path = export_benchmark(table, tmp_path / f"bench{suffix}")
    pd.testing.assert_frame_equal(read_benchmark(path), table)


def test_published_set_as_parquet_and_jsonl(tmp_path):
    published = pd.DataFrame([{
        "id": 7, "base_prompt": "a goose competing for dominance with a turkey", "animal1": "goose", "animal2": "turkey",
        "action": "competing for dominance with", "rarity_label": "common", "emotional_valence": "aggressive",
        "spatial_topology": "physical contact", "temporal_extent": "extended", "emotional_prompt": "an angry goose ...",
        "spatial_prompt": "in the foreground ...", "temporal_prompt": "mid-strike ...",
    }])
    published.to_parquet(tmp_path / "act2i.parquet")
    published.to_json(tmp_path / "act2i.jsonl", orient="records", lines=True)
    for name in ("act2i.parquet", "act2i.jsonl"):
        loaded = read_benchmark(tmp_path / name)
        assert list(loaded.columns) == BENCHMARK_COLUMNS
        assert loaded.loc[0, "id"] == "7" and loaded.loc[0, "temporal_prompt"] == "mid-strike ..."


def test_authors_code_release_json_list(tmp_path):
    items = [{"id": 1, "animal1": "sheep", "animal2": "boar", "action": "attacking", "phrase": "a sheep attacking a boar",
              "spatial": "s", "temporal": "t", "emotional": "e"}]
    (tmp_path / "prompts.json").write_text(json.dumps(items))
    loaded = read_benchmark(tmp_path / "prompts.json")
    row = loaded.iloc[0]
    assert (row.base_prompt, row.spatial_prompt, row.temporal_prompt, row.emotional_prompt) == (
        "a sheep attacking a boar", "s", "t", "e")
    assert row.rarity_label is None  # not in the release; never invented


def test_user_csv_with_only_prompts(tmp_path):
    (tmp_path / "mine.csv").write_text("base_prompt,temporal_extent\na dancer twirling a partner,instantaneous\n"
                                       "a cyclist overtaking a peer,\n")
    loaded = read_benchmark(tmp_path / "mine.csv")
    assert loaded["id"].tolist() == ["p0001", "p0002"]
    assert loaded["temporal_extent"].tolist() == ["instantaneous", None]


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("x.yaml", "hello", r"x.yaml: unknown prompt-set format '.yaml'"),
        ("x.csv", "title\nabc\n", r"x.csv: no prompt column \(found: title\); name it base_prompt or prompt"),
        ("x.csv", "id,base_prompt\na,one\nb,two\na,three\n", r"x.csv: duplicate id 'a' in rows 1, 3"),
        ("x.csv", "id,base_prompt\na,one\nb,  \n", r"x.csv: row 2 \(id b\) has an empty 'base_prompt'"),
        ("x.csv", "base_prompt,rarity_label\none,unusual\n", r"row 1 \(id p0001\) has rarity_label 'unusual'; expected one of common"),
        ("x.json", "[{\"base_prompt\": 1,}]", r"x.json: not valid JSON at line 1"),
        ("x.json", "[1, 2]", r"x.json: row 1 is int, not an object"),
        ("x.json", "{\"name\": 1, \"rows\": 2}", r"x.json: a JSON object must map ids to rows"),
        ("x.jsonl", "{\"base_prompt\": \"a\"}\n{oops\n", r"x.jsonl: line 2 is not valid JSON"),
        ("x.parquet", "not parquet", r"x.parquet: could not be read as parquet"),
        ("x.csv", "id,base_prompt\n", r"x.csv: the prompt set has no rows"),
    ],
)
def test_malformed_files_get_one_sentence(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(InputError, match=message) as info:
        read_benchmark(tmp_path / name)
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_benchmark(tmp_path / "nope.csv")
