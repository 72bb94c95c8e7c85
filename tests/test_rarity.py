"""The rarity rule: labels a zoologist accepts, reasons, data with a source per entry, overrides,
independence from row order and seed, and the same treatment for people."""

import csv
import random
import shutil
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from act2i_utils.benchmark import Verdict, build_benchmark, load_taxonomy, rarity, rarity_of, review
from act2i_utils.benchmark.taxonomy import DATA, REALMS
from act2i_utils.errors import InputError

CASES = Path(__file__).parent / "data" / "rarity_cases.csv"


def cases() -> list[dict]:
    with open(CASES, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_the_held_out_cases_agree_and_never_swap_common_and_rare():
    rows = cases()
    assert len(rows) >= 40 and all(r["reason"].strip() for r in rows)
    assert {r["expected"] for r in rows} == {"common", "plausible", "rare"}
    misses, swaps = [], []
    for r in rows:
        got = rarity_of(r["animal1"], r["action"], r["animal2"])
        if got.label != r["expected"]:
            misses.append(f"{r['animal1']} {r['action']} {r['animal2']}: {got.label}, expected {r['expected']} ({got.reason})")
            if {got.label, r["expected"]} == {"common", "rare"}:
                swaps.append(misses[-1])
    assert not swaps, swaps
    assert len(misses) <= 0.1 * len(rows), misses


@pytest.mark.parametrize(
    "a, action, b, why",
    [
        ("ostrich", "pouncing on", "gazelle", "cannot"),  # the four rows the reviewer found labelled common
        ("penguin", "kicking", "orca", "cannot"),
        ("elk", "touching noses with", "panda", "do not meet"),
        ("python", "giving a warning call to", "gecko", "vocal calls"),
        ("honeybee", "carrying", "camel", "cannot"),
        ("polar bear", "chasing", "penguin", "do not meet"),
        ("zebra", "chasing", "lion", "needs"),  # role reversal: they meet, the zebra is the prey
        ("lion", "grooming", "zebra", "enemies"),
    ],
)
def test_reviewers_rare_examples(a, action, b, why):
    verdict = rarity_of(a, action, b)
    assert verdict.label == "rare" and why in verdict.reason, verdict


def test_rarity_of_takes_names_keys_phrases_and_aliases():
    plain = rarity_of("cheetah", "chase", "gazelle")
    assert isinstance(plain, Verdict) and plain.label == "common" and plain.reason.startswith("documented")
    label, reason = plain  # a named tuple: label and reason
    assert rarity_of("A Cheetah", "chasing", "a gazelle") == plain
    assert rarity_of("cheetah", "{a} chasing {b}", "gazelle") == plain
    assert rarity_of("bee", "carry", "camel").label == "rare"  # alias of honeybee
    assert rarity_of("zebra", "warning call", "wildebeest") == rarity_of("zebra", "warn", "wildebeest")
    with pytest.raises(InputError, match="No shipped agent set knows both 'unicorn' and 'lion'"):
        rarity_of("unicorn", "chase", "lion")
    with pytest.raises(InputError, match="'juggling' is not an action of the 'animals' set"):
        rarity_of("lion", "juggling", "zebra")
    with pytest.raises(InputError, match="same agent"):
        rarity_of("lion", "chase", "lion")
    with pytest.raises(InputError, match="'lion' is not an agent of the 'people' set"):
        rarity_of("lion", "chase", "runner", agents="people")


def test_meeting_needs_realm_and_habitat_and_domestic_animals_meet():
    assert "do not meet" in rarity_of("tiger", "chase", "zebra").reason  # both on grassland, Asia and Africa
    assert "do not meet" in rarity_of("arctic fox", "guard", "humpback whale").reason  # sea and land
    assert rarity_of("camel", "nuzzle", "pig").reason.startswith("they meet (both live with people)")
    assert rarity_of("sheep", "nuzzle", "llama").label == "common"


def test_every_built_row_has_the_rules_label_and_a_reason(table=None):
    for seed in (0, 1):
        built = build_benchmark(seed=seed)
        table = review(built)
        assert len(table) == len(built) and table["reason"].str.len().min() > 20
        assert (table["rule_label"] == table["rarity_label"]).all()
        common = table[table["rarity_label"] == "common"]
        assert common["reason"].str.match(r"^(documented|curated override)").all()
        rare = table[table["rarity_label"] == "rare"]
        assert rare["reason"].str.contains("cannot do it|do not meet|needs|enemies|curated override").all()
        for row in built.itertuples():
            assert row.rarity_label == rarity_of(row.animal1, row.action_key, row.animal2).label


def test_about_a_third_of_the_built_benchmark_is_common():
    counts = build_benchmark(seed=0)["rarity_label"].value_counts()
    assert counts["common"] >= 125 // 3, counts


def test_labels_do_not_depend_on_row_order(tmp_path):
    """A copy of the animal set with every data file's rows shuffled gives every pair the same label."""
    folder = tmp_path / "shuffled"
    shutil.copytree(DATA / "animals", folder)
    rng = random.Random(7)
    for name in ("agents.csv", "interactions.csv"):
        lines = (folder / name).read_text(encoding="utf-8").splitlines(keepends=True)
        head = [line for line in lines[:1]] + [line for line in lines[1:] if line.startswith("#")]
        body = [line for line in lines[1:] if not line.startswith("#")]
        rng.shuffle(body)
        (folder / name).write_text("".join(head + body), encoding="utf-8")
    shipped, shuffled = load_taxonomy("animals"), load_taxonomy(folder)
    by_name = {a.name: a for a in shuffled.agents}
    actions = {a.key: a for a in shuffled.actions}
    pairs = [(a, b) for a in shipped.agents for b in shipped.agents if a.name != b.name]
    for action in shipped.actions[::3]:
        for a, b in pairs[::7]:
            assert rarity(a, action, b, shipped) == rarity(by_name[a.name], actions[action.key], by_name[b.name], shuffled), \
                (a.name, action.key, b.name)


def test_data_files_give_a_source_for_every_entry():
    tax = load_taxonomy("animals")
    for agent in tax.agents:
        assert agent.realms and agent.realms <= set(REALMS), agent.name
        assert agent.habitats and agent.climates and agent.source and agent.group, agent.name
    assert {a.status for a in tax.agents} == {"wild", "domestic", "commensal"}
    assert len(tax.interactions) >= 400 and all(row.source for row in tax.interactions)
    relations = Counter(row.relation for row in tax.interactions)
    assert relations["preys_on"] >= 200 and relations["defends"] >= 30 and relations["mobs"] >= 20
    for ability in tax.abilities.values():
        assert ability.means and ability.source
        assert all(reason for reason in ability.lacking.values())
    assert all(o.reason for o in tax.overrides)
    pairs = {(r.agent1, r.relation, r.agent2) for r in tax.interactions}
    for pair in [("lion", "preys_on", "zebra"), ("cheetah", "preys_on", "gazelle"), ("wolf", "preys_on", "elk"),
                 ("orca", "preys_on", "seal"), ("zebra", "kick", "lion"), ("mongoose", "preys_on", "cobra"),
                 ("crow", "mobs", "owl"), ("dog", "companions", "cat")]:
        assert pair in pairs, pair


def test_a_curated_override_corrects_a_label(tmp_path):
    folder = tmp_path / "mine"
    shutil.copytree(DATA / "animals", folder)
    assert rarity_of("frog", "attack", "butterfly", agents=str(folder)).label == "plausible"
    with open(folder / "overrides.csv", "a", encoding="utf-8") as fh:
        fh.write('frog,attack,butterfly,common,"frogs snap up butterflies that settle at the water\'s edge"\n')
    verdict = rarity_of("frog", "attack", "butterfly", agents=str(folder))
    assert verdict == ("common", "curated override: frogs snap up butterflies that settle at the water's edge")
    assert rarity_of("camel", "court", "llama").reason.startswith("curated override")  # a shipped correction
    (folder / "overrides.csv").write_text("agent1,action,agent2,label,reason\nfrog,attack,butterfly,usual,because\n")
    with pytest.raises(InputError, match=r"overrides.csv: row 1 \(frog, attack, butterfly\): label 'usual'"):
        load_taxonomy(folder)


def test_bad_knowledge_files_are_named(tmp_path):
    folder = tmp_path / "mine"
    shutil.copytree(DATA / "animals", folder)
    with open(folder / "interactions.csv", "a", encoding="utf-8") as fh:
        fh.write("lion,preys_on,unicorn,legend\n")
    with pytest.raises(InputError, match="'unicorn' is not in agents.csv"):
        load_taxonomy(folder)
    shutil.copy(DATA / "animals" / "interactions.csv", folder / "interactions.csv")
    with open(folder / "interactions.csv", "a", encoding="utf-8") as fh:
        fh.write("lion,admires,zebra,\n")
    with pytest.raises(InputError, match="relation 'admires' is neither one of preys_on"):
        load_taxonomy(folder)


def test_a_folder_without_knowledge_files_labels_by_its_attributes(tmp_path):
    (tmp_path / "actions.yaml").write_text(
        "- key: chase\n  template: '{a} chasing {b}'\n  emotional_valence: aggressive\n"
        "  spatial_topology: pursuit\n  temporal_extent: extended\n  role: predation\n")
    (tmp_path / "agents.csv").write_text("name,article,class,size,diet,habitats\n"
                                         "robot,a,machine,medium,omnivore,lab\ndrone,a,machine,small,herbivore,lab\n"
                                         "rover,a,machine,small,carnivore,mars\n")
    assert rarity_of("robot", "chase", "drone", agents=str(tmp_path)).label == "plausible"  # nothing is documented
    assert rarity_of("drone", "chase", "robot", agents=str(tmp_path)).label == "rare"  # a herbivore does not hunt
    assert rarity_of("robot", "chase", "rover", agents=str(tmp_path)).reason.startswith("they do not meet")


def test_people_get_the_same_treatment():
    tax = load_taxonomy("people")
    assert tax.interactions and tax.abilities
    assert rarity_of("referee", "tackling", "boxer").label == "rare"
    assert rarity_of("cyclist", "overtaking", "runner").label == "common"
    assert {a.role for a in tax.actions if a.key == "overtake"} == {"race"}  # a race move, not a fight
    assert rarity_of("swimmer", "overtaking", "cyclist").reason.startswith("they do not meet")
    assert rarity_of("police officer", "hugging", "thief").label == "rare"
    people = build_benchmark(seed=0, agents="people")
    checked = review(people, "people")
    assert (checked["rule_label"] == checked["rarity_label"]).all()
    assert people["rarity_label"].value_counts()["common"] >= len(people) // 4


def test_review_of_an_imported_table_flags_what_the_rule_cannot_judge():
    imported = pd.DataFrame({"id": ["p1", "p2"], "base_prompt": ["a lion chasing a zebra", "a harbor seal chasing a squid"],
                             "animal1": ["lion", "harbor seal"], "animal2": ["zebra", "squid"],
                             "action": ["chasing", "chasing"], "rarity_label": ["rare", None]})
    checked = review(imported)
    assert checked["rule_label"].tolist() == ["common", None]
    assert checked["reason"].iloc[1].startswith("not judged")
