"""Benchmark construction: determinism, every constraint of the paper's design, grammar, the rarity rule."""

from collections import Counter

import pandas as pd
import pytest

from act2i_utils.benchmark import build_benchmark, explain, load_taxonomy, rarity
from act2i_utils.errors import InputError
from act2i_utils.schema import BENCHMARK_COLUMNS, BENCHMARK_EXTRA, LABELS


@pytest.fixture(scope="module")
def table():
    return build_benchmark(seed=0)


@pytest.fixture(scope="module")
def animals():
    return load_taxonomy("animals")


def test_same_seed_same_table_other_seed_differs(table):
    pd.testing.assert_frame_equal(table, build_benchmark(seed=0))
    assert not table.equals(build_benchmark(seed=1))


def test_shape_and_schema(table):
    assert list(table.columns) == BENCHMARK_COLUMNS + BENCHMARK_EXTRA
    assert BENCHMARK_EXTRA[:2] == ["action_key", "action_template"]
    agents = {agent.name: agent.with_article for agent in load_taxonomy("animals").agents}
    assert all(row.base_prompt == row.action_template.format(a=agents[row.animal1], b=agents[row.animal2])
               for row in table.itertuples())
    assert len(table) == 125 and table["action"].nunique() == 25
    assert (table.groupby("action").size() == 5).all()
    assert table["id"].is_unique


def test_pairs_are_distinct_and_never_self(table):
    assert (table["animal1"] != table["animal2"]).all()
    assert not table.duplicated(["action", "animal1", "animal2"]).any()


def test_every_animal_is_used(table, animals):
    used = set(table["animal1"]) | set(table["animal2"])
    assert len(used) >= 100
    assert used == {a.name for a in animals.agents}  # all of them fit in 250 slots


def test_rarity_labels_are_balanced(table):
    """The animal set has enough real pairs of every label for an even split (42/42/41)."""
    counts = table["rarity_label"].value_counts()
    assert set(counts.index) == set(LABELS["rarity_label"])
    assert counts.max() - counts.min() <= 1


def test_labels_match_the_taxonomy(table, animals):
    by_phrase = {a.phrase: a for a in animals.actions}
    by_name = {a.name: a for a in animals.agents}
    for row in table.itertuples():
        action = by_phrase[row.action]
        assert row.emotional_valence == action.emotional_valence
        assert row.spatial_topology == action.spatial_topology
        assert row.temporal_extent == action.temporal_extent
        assert row.rarity_label == rarity(by_name[row.animal1], action, by_name[row.animal2])
        assert row.id == f"{by_name[row.animal1].slug}-{action.key}-{by_name[row.animal2].slug}"


def test_prompts_are_grammatical(table, animals):
    for agent in animals.agents:
        assert agent.article == ("an" if agent.name[0] in "aeiou" else "a"), agent.name
    names = {a.name: a for a in animals.agents}
    for row in table.itertuples():
        a, b = names[row.animal1], names[row.animal2]
        assert row.base_prompt.startswith(f"{a.article} {a.name} {row.action} ")
        assert f" {b.article} {b.name}" in row.base_prompt
        assert "  " not in row.base_prompt and row.base_prompt == row.base_prompt.strip()
    assert "an ostrich" in {f"{a.article} {a.name}" for a in animals.agents}
    assert "a hyena" in {f"{a.article} {a.name}" for a in animals.agents}


def test_taxonomy_covers_the_design(animals):
    assert len(animals.actions) == 25 and len(animals.agents) >= 110
    for label in ("emotional_valence", "spatial_topology", "temporal_extent"):
        uses = Counter(getattr(a, label) for a in animals.actions)
        assert set(uses) == set(LABELS[label]) and min(uses.values()) >= 3, (label, uses)
    for agent in animals.agents:
        assert agent.klass and agent.size and agent.diet and agent.habitats
    phrases = {a.phrase for a in animals.actions}
    assert {"attacking", "chasing", "competing for dominance with"} <= phrases


@pytest.mark.parametrize(
    "a, action, b, expected",
    [
        ("wolf", "chase", "deer", "common"),  # documented: deer are staple wolf prey
        ("lion", "chase", "deer", "common"),  # documented: the Asiatic lions of Gir live on chital and sambar
        ("lion", "chase", "hare", "plausible"),  # they share the savanna and lions can, but it is not their prey
        ("sheep", "attack", "boar", "rare"),  # the paper's example: sheep do not attack, and a boar is no threat
        ("gazelle", "flee", "cheetah", "common"),
        ("cheetah", "flee", "gazelle", "rare"),  # they meet, but a gazelle is no threat to a cheetah
        ("walrus", "carry", "seal", "rare"),  # only animals kept together by people ride on each other here
        ("mouse", "carry", "elephant", "rare"),
        ("frog", "attack", "butterfly", "plausible"),  # frogs catch insects; butterflies are not recorded prey
        ("goose", "dominance", "turkey", "common"),  # the paper's example: two farm birds, geese dominate
        ("crow", "call", "raven", "common"),  # crows mob ravens
        ("crow", "call", "cat", "common"),  # crows mob cats
        ("camel", "nuzzle", "pig", "plausible"),  # domestic animals meet each other
    ],
)
def test_rarity_rule_on_hand_checked_cases(animals, a, action, b, expected):
    agents = {x.name: x for x in animals.agents}
    actions = {x.key: x for x in animals.actions}
    assert rarity(agents[a], actions[action], agents[b]) == expected
    assert explain(agents[a], actions[action], agents[b]).startswith(expected + ":")


def test_people_are_built_by_the_same_code():
    people = build_benchmark(seed=0, agents="people")
    tax = load_taxonomy("people")
    assert len(people) == 5 * len(tax.actions) and people["id"].is_unique
    assert (people["animal1"] != people["animal2"]).all()
    assert {"dancer", "runner", "cyclist", "boxer", "parent", "child", "waiter"} <= {a.name for a in tax.agents}
    assert "dance partner" not in {a.name for a in tax.agents}  # a role, not an agent on its own
    assert people["base_prompt"].str.contains(" twirling ").sum() == 5
    assert people["rarity_label"].value_counts().max() - people["rarity_label"].value_counts().min() <= 1


def test_n_per_action_and_custom_folder(tmp_path):
    assert len(build_benchmark(seed=0, n_per_action=2)) == 50
    (tmp_path / "actions.yaml").write_text(
        "- key: chase\n  template: '{a} chasing {b}'\n  emotional_valence: aggressive\n"
        "  spatial_topology: pursuit\n  temporal_extent: extended\n  role: predation\n")
    (tmp_path / "agents.csv").write_text("name,article,class,size,diet,habitats\n"
                                         "robot,a,machine,medium,omnivore,lab\ndrone,a,machine,small,herbivore,lab\n")
    mine = build_benchmark(seed=0, agents=str(tmp_path), n_per_action=2)
    assert sorted(mine["base_prompt"]) == ["a drone chasing a robot", "a robot chasing a drone"]


def test_bad_taxonomy_files_are_named(tmp_path):
    with pytest.raises(InputError, match="Unknown agent set 'aliens'; use one of animals, people"):
        build_benchmark(agents="aliens")
    (tmp_path / "actions.yaml").write_text(
        "- key: chase\n  template: '{a} chasing {b}'\n  emotional_valence: angry\n"
        "  spatial_topology: pursuit\n  temporal_extent: extended\n  role: predation\n")
    (tmp_path / "agents.csv").write_text("name,article,class,size,diet,habitats\nrobot,a,machine,medium,omnivore,lab\n")
    with pytest.raises(InputError, match=r"actions.yaml: action 'chase' has emotional_valence 'angry'; expected one of aggressive"):
        build_benchmark(agents=str(tmp_path))


def test_an_imported_table_gets_each_known_actions_template(table):
    from act2i_utils.benchmark.stage import with_templates

    published = table.drop(columns=["action_key", "action_template"])
    published.loc[0, "action"] = "juggling"  # a phrase no taxonomy has
    filled = with_templates(published)
    assert filled["action_template"].iloc[1:].tolist() == table["action_template"].iloc[1:].tolist()
    assert filled["action_key"].iloc[0] is None and filled["action_template"].iloc[0] is None
