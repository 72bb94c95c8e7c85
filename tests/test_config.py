"""Profiles: the shipped ones validate, bad ones stop with one sentence naming file, key and expectation."""

import pytest

from act2i_utils import config as cfg
from act2i_utils.errors import ConfigError


def write(tmp_path, text: str):
    path = tmp_path / "profile.yaml"
    path.write_text(text)
    return path


MINIMAL = """
name: mine
generate:
  models:
    - model: tiny:sd3
"""


def test_shipped_profiles_validate():
    smoke = cfg.load_profile("smoke")
    paper = cfg.load_profile("paper")
    assert smoke.name == "smoke" and paper.name == "paper"
    from act2i_utils.registry import random_weights

    assert random_weights(smoke.generate.models) and not random_weights(paper.generate.models)
    assert all(ref.startswith("tiny:") for ref in smoke.model_refs())


def test_paper_profile_carries_the_papers_setup():
    paper, llama = cfg.load_profile("paper"), cfg.load_profile("paper-llama")
    assert paper.enrich.backend == "source"  # the published rewrites, as the paper's images were made
    assert llama.enrich.model == "meta-llama/Llama-3.3-70B-Instruct"
    assert (llama.enrich.temperature, llama.enrich.top_p, llama.enrich.max_new_tokens) == (0.7, 0.9, 256)
    sd35 = paper.generate.models[0]
    assert sd35.model == "stabilityai/stable-diffusion-3.5-large"
    assert (sd35.steps, sd35.guidance) == (40, 3.5)
    assert paper.generate.seeds == [42, 43, 44, 45]
    assert paper.generate.variants == ["base", "spatial", "emotional", "temporal"]
    assert paper.benchmark.source == "hf://datasets/vatsal-malaviya/AcT2I-Prompts"
    with pytest.raises(cfg.ConfigError, match="vlm_api_base_url"):
        cfg.load_profile("smoke", ["evaluate.metrics=[vlm_api]"])
    served = ["evaluate.metrics=[vlm_api]", "evaluate.vlm_api_base_url=http://localhost:8000/v1", "evaluate.vlm_api_model=m"]
    with pytest.raises(cfg.ConfigError, match="'analyze.judge_metric' is 'vqa', which the local vqa judge writes.*set "
                                              "analyze.judge_metric to api_vqa"):
        cfg.load_profile("smoke", served)  # a table never mixes two readings of VQAScore under one name
    assert cfg.load_profile("smoke", [*served, "analyze.judge_metric=api_vqa"]).analyze.judge_metric == "api_vqa"
    assert cfg.load_profile("smoke", ["evaluate.metrics=[vqa, vlm_api]", *served[1:]]).analyze.judge_metric == "vqa"


def test_minimal_profile_gets_defaults(tmp_path):
    p = cfg.load_profile(write(tmp_path, MINIMAL))
    assert p.enrich.backend == "kb" and p.generate.seeds == [42]
    assert p.generate.models[0].label == "tiny-sd3"


@pytest.mark.parametrize(
    "text, fragments",
    [
        (MINIMAL + "  stepz: 3\n", ["profile.yaml", "'generate.stepz'", "not a known key", "known keys: models"]),
        (MINIMAL.replace("model: tiny:sd3", "model: tiny:sd3\n      steps: ten"),
         ["profile.yaml", "'generate.models[0].steps'", "must be a positive integer", "'ten'"]),
        ("name: mine\n", ["profile.yaml", "'generate' is missing"]),
        (MINIMAL.replace("- model: tiny:sd3", "- name: x"), ["'generate.models[0].model' is missing", "Hugging Face id"]),
        (MINIMAL + "enrich:\n  backend: gpt\n", ["'enrich.backend' must be one of 'kb', 'transformers', 'openai'"]),
        (MINIMAL + "enrich:\n  backend: transformers\n", ["'enrich.model' must name a model"]),
        (MINIMAL + "enrich:\n  top_p: 1.5\n", ["'enrich.top_p' must be a number in (0, 1], got 1.5"]),
        (MINIMAL + "enrich:\n  dimension: [spatial]\n", ["did you mean 'dimensions'"]),
        (MINIMAL + "  seeds: [1, 1]\n", ["'generate.seeds' must not repeat a seed"]),
        ("name: [unclosed\n", ["profile.yaml", "not valid YAML at line"]),
        ("- a list\n", ["must be a YAML mapping"]),
    ],
)
def test_bad_profiles_give_one_sentence(tmp_path, text, fragments):
    with pytest.raises(ConfigError) as info:
        cfg.load_profile(write(tmp_path, text))
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_overrides_apply_and_are_named_when_wrong():
    p = cfg.load_profile("smoke", ["generate.seeds=[1, 2]", "generate.models.0.steps=3", "enrich.n_samples=2"])
    assert p.generate.seeds == [1, 2] and p.generate.models[0].steps == 3 and p.enrich.n_samples == 2
    p = cfg.load_profile("smoke", "generate: {batch_size: 2}")
    assert p.generate.batch_size == 2
    with pytest.raises(ConfigError, match=r"smoke.yaml \(override 'generate.batch_size'\): 'generate.batch_size' must be a positive integer, got 0"):
        cfg.load_profile("smoke", ["generate.batch_size=0"])
    with pytest.raises(ConfigError, match="must look like key=value"):
        cfg.parse_overrides(["generate.seeds"])


def test_unknown_profile_lists_known_ones():
    with pytest.raises(ConfigError, match="Unknown profile 'nope'; known profiles: .*paper.*smoke"):
        cfg.load_profile("nope")


def test_dump_round_trips():
    p = cfg.load_profile("paper")
    import yaml

    assert cfg.validate(yaml.safe_load(cfg.dump(p)), "x") == p
