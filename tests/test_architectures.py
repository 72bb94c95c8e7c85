"""Paper-scale architectures: parameter counts on the meta device, and the build path with small configs."""

import pytest

from benchmarks import architectures as arch


@pytest.mark.parametrize("name, published", [("sd35-large", 8.1e9), ("flux1-dev", 11.9e9)])
def test_transformer_sizes_match_the_published_ones(name, published):
    count = arch.transformer_parameters(name)  # meta device: nothing is allocated
    assert abs(count / published - 1) < 0.02


def test_sd35_large_configuration_is_the_published_one():
    t = arch.SD35_LARGE["transformer"]
    assert (t["num_layers"], t["num_attention_heads"], t["attention_head_dim"]) == (38, 38, 64)
    assert (t["joint_attention_dim"], t["caption_projection_dim"], t["pooled_projection_dim"]) == (4096, 2432, 2048)
    assert (t["patch_size"], t["in_channels"], t["qk_norm"]) == (2, 16, "rms_norm")
    assert arch.SD35_LARGE["vae"]["latent_channels"] == 16 and arch.SD35_LARGE["t5"]["d_model"] == 4096


def test_flops_per_step_by_hand():
    d, tokens = 38 * 64, 64 * 64 + 333
    expected = 38 * 2 * (12 * d * d * tokens + 2 * tokens * tokens * d) * 2
    assert arch.sd3_flops_per_step(1024, 1024, 333, batch=2) == expected


def test_build_path_with_small_configs(monkeypatch):
    import torch

    small = {**arch.SD35_LARGE,
             "transformer": dict(sample_size=32, patch_size=2, in_channels=16, out_channels=16, num_layers=1, attention_head_dim=8,
                                 num_attention_heads=2, joint_attention_dim=32, caption_projection_dim=16, pooled_projection_dim=64,
                                 pos_embed_max_size=32, qk_norm="rms_norm", dual_attention_layers=()),
             "clip_l": {**arch.SD35_LARGE["clip_l"], "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1,
                        "num_attention_heads": 4, "projection_dim": 32},
             "clip_g": {**arch.SD35_LARGE["clip_g"], "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1,
                        "num_attention_heads": 4, "projection_dim": 32},
             "t5": {**arch.SD35_LARGE["t5"], "d_model": 32, "d_ff": 37, "num_layers": 1, "num_heads": 4, "d_kv": 8},
             "vae": {**arch.SD35_LARGE["vae"], "block_out_channels": (8, 8, 8, 8), "norm_num_groups": 4, "layers_per_block": 1}}
    monkeypatch.setitem(arch.ARCHITECTURES, "sd35-large", small)
    pipe = arch.build_pipeline("sd35-large", device="cpu", dtype="float32")
    assert pipe.transformer.dtype == torch.float32 and pipe.vae.config.latent_channels == 16
    image = pipe("a wolf chasing a deer", num_inference_steps=1, height=64, width=64,
                 generator=torch.Generator("cpu").manual_seed(0)).images[0]
    assert image.size == (64, 64)


def test_flux_flops_per_step_by_hand():
    d, tokens = 24 * 128, 64 * 64 + 512
    expected = (19 + 38) * 2 * (12 * d * d * tokens + 2 * tokens * tokens * d)
    assert arch.flux_flops_per_step(1024, 1024, 512, batch=1) == expected


@pytest.mark.parametrize("name", ["clip-vit-l14", "llava-1.5-7b", "owlv2-base"])
def test_judge_sizes_match_the_published_ones(name):
    count = arch.judge_parameters(name)  # meta device
    assert abs(count / arch.JUDGES[name]["published_parameters"] - 1) < 0.02


def test_shrunk_configs_are_restored():
    before = arch.SD35_LARGE["transformer"]["num_layers"], arch.LLAVA_15_7B["text"]["hidden_size"]
    with arch.shrunk():
        assert arch.SD35_LARGE["transformer"]["num_layers"] == 3 and arch.LLAVA_15_7B["text"]["hidden_size"] == 32
    assert (arch.SD35_LARGE["transformer"]["num_layers"], arch.LLAVA_15_7B["text"]["hidden_size"]) == before == (38, 4096)


def test_built_pipelines_are_in_inference_mode():
    with arch.shrunk():
        pipe = arch.build_pipeline("sd35-large", device="cpu", dtype="float32")
    assert not any(m.training for m in pipe.components.values() if hasattr(m, "training"))  # T5's dropout off


def test_judge_folders_load_through_the_judges(tmp_path):
    from act2i_utils.evaluate.judges import ClipJudge, VqaJudge
    from PIL import Image

    with arch.shrunk():
        clip = arch.build_judge_folder("clip-vit-l14", tmp_path / "clip", device="cpu")
        vlm = arch.build_judge_folder("llava-1.5-7b", tmp_path / "vlm", device="cpu")
    image = Image.new("RGB", (64, 64), (120, 80, 40))
    assert ClipJudge(clip, "cpu").image_embeddings([image]).shape == (1, 32)
    judge = VqaJudge(vlm, "cpu")
    assert 0 <= judge.vqascores([image], ["Is there a wolf?"])[0] <= 1
