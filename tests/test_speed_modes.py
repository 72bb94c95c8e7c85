"""Speed options of the generate stage (issue 20): each is applied to a tiny pipeline or refused in one
sentence; the output-preserving ones keep the images; the paper profile turns on nothing that
changes them; the GPU benchmark scripts run end to end on a CPU with --tiny."""

import os
import subprocess
import sys

import numpy as np
import pytest

from act2i_utils.config import GenerateConfig, T2IModel, load_profile
from act2i_utils.errors import Act2iError, ConfigError
from act2i_utils.generate import pipelines as P
from benchmarks import architectures as arch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def options(**kw) -> GenerateConfig:
    return GenerateConfig(models=[T2IModel(model="tiny-sd3")], **kw)


@pytest.fixture(scope="module")
def build():
    """A function building the tiny SD-3.5-shaped pipeline (3 layers, RMS q/k norms), the same weights each time."""
    with arch.shrunk():
        yield lambda name="sd35-large": arch.build_pipeline(name, device="cpu", dtype="float32")


def images(pipe, steps: int = 4) -> np.ndarray:
    import torch

    generators = [torch.Generator("cpu").manual_seed(s) for s in (1, 2)]
    return pipe(["a wolf chasing a deer", "a crow mobbing an owl"], generator=generators, num_inference_steps=steps,
                height=64, width=64, output_type="np").images


def made_with(build, name="sd35-large", **kw) -> np.ndarray:
    pipe = build(name)
    P.apply_options(pipe, options(**kw), "cpu")
    return images(pipe)


@pytest.fixture(scope="module")
def reference(build):
    return images(build())


def test_fused_qkv_keeps_sd35_qk_norms(build, reference):
    from diffusers.models.attention_processor import FusedJointAttnProcessor2_0

    pipe = build()
    P.apply_options(pipe, options(fuse_qkv=True), "cpu")
    processors = list(pipe.transformer.attn_processors.values())
    assert all(isinstance(p, P.FusedJointAttnProcessor) for p in processors)
    assert np.abs(images(pipe) - reference).max() < 1e-5  # the same model, one matmul per stream
    for module in pipe.transformer.modules():  # diffusers' own fused processor skips the q/k RMS norms
        if isinstance(getattr(module, "processor", None), P.FusedJointAttnProcessor):
            module.set_processor(FusedJointAttnProcessor2_0())
    assert np.abs(images(pipe) - reference).max() > 1e-3


def test_attention_backend_for_sd3_prefers_a_pytorch_kernel(build, reference):
    assert np.abs(made_with(build, attention_backend="_native_math") - reference).max() < 1e-5
    pipe = build()
    with pytest.raises(Act2iError, match=r"Attention backend '_flash_3' is not available for SD3Transformer2DModel, whose "
                                         r"attention calls PyTorch's kernels directly; use one of _native_cudnn"):
        P._attention_backend(pipe.transformer, "_flash_3")
    with pytest.raises(Act2iError, match=r"'_native_cudnn' is not available here \(it runs only on a CUDA GPU, and the device is cpu\)"):
        P.apply_options(pipe, options(attention_backend="_native_cudnn"), "cpu")
    with pytest.raises(Act2iError, match=r"Attention backend 'warp-speed' is not available here \(diffusers knows"):
        P.apply_options(pipe, options(attention_backend="warp-speed"), "cpu")


def test_compile_options_are_applied_without_compiling_yet(build, tmp_path, monkeypatch):
    import torch

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "before"))  # restored after the test
    pipe = build()
    P.apply_options(pipe, options(compile_mode="max-autotune", compile_scope="blocks", compile_cache_dir=str(tmp_path / "c")), "cpu")
    blocks = list(pipe.transformer.transformer_blocks)
    assert all(getattr(b, "_compiled_call_impl", None) is not None for b in blocks)
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "c")
    pipe = build()
    P.apply_options(pipe, options(compile_mode="default"), "cpu")  # scope model: the denoiser is replaced
    assert isinstance(pipe.transformer, torch._dynamo.eval_frame.OptimizedModule)
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    monkeypatch.setenv("ACT2I_CACHE", str(tmp_path / "act2i"))
    assert P.compile_cache_dir(options()) == str(tmp_path / "act2i" / "inductor")


def test_compile_blocks_of_a_unet_or_refused_without_blocks(tmp_path, monkeypatch):
    import torch

    from act2i_utils import generate

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    spec = generate.resolve_spec(T2IModel(model="tiny-sd"))
    pipe = P.load_pipeline(spec, device="cpu", options=options(compile_mode="default", compile_scope="blocks"))
    compiled = [m for m in pipe.unet.modules() if getattr(m, "_compiled_call_impl", None) is not None]
    assert compiled and {type(m).__name__ for m in compiled} == set(pipe.unet._repeated_blocks)
    with pytest.raises(Act2iError, match="compile_scope 'blocks' needs a transformer with repeated blocks, and "
                                         "Linear has none; use compile_scope: model"):
        P._compile(pipe, torch.nn.Linear(2, 2), "default", options(compile_scope="blocks"))


@pytest.mark.parametrize("kw, sentence", [
    (dict(cuda_graphs=True), "generate.cuda_graphs replays the compiled denoiser, so it needs generate.compile_mode"),
    (dict(cuda_graphs=True, compile_mode="max-autotune"), "generate.cuda_graphs needs a CUDA GPU, and the device is cpu"),
    (dict(fp8=True), "generate.fp8 needs a CUDA GPU of compute capability 8.9 or newer"),
])
def test_refused_on_a_cpu_in_one_sentence(build, kw, sentence):
    pipe = build()
    with pytest.raises(Act2iError, match=sentence) as err:
        P.apply_options(pipe, options(**kw), "cpu")
    assert str(err.value).count(". ") == 0 and str(err.value).endswith(".")


def test_cuda_graphs_refused_with_cpu_offload():
    with pytest.raises(Act2iError, match="cannot replay a denoiser that generate.cpu_offload moves"):
        P.check_options(options(compile_mode="default", cuda_graphs=True, cpu_offload=True), "cuda")


def test_fp8_names_the_missing_package(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setitem(sys.modules, "torchao", None)  # import torchao fails
    monkeypatch.setitem(sys.modules, "torchao.quantization", None)
    with pytest.raises(Act2iError, match=r"generate.fp8 needs the torchao package, which cannot be imported here .*pip install torchao"):
        P._check_fp8("cuda")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA A100")
    with pytest.raises(Act2iError, match="NVIDIA A100 has 8.0; unset generate.fp8"):
        P._check_fp8("cuda")


def test_step_cache_skips_steps_only_past_its_threshold(build, reference):
    assert np.abs(made_with(build, step_cache=1e-9) - reference).max() == 0  # nothing close enough to skip
    pipe = build()
    P.apply_options(pipe, options(step_cache=5.0), "cpu")
    computed = []
    pipe.transformer.transformer_blocks[1].attn.register_forward_hook(lambda *_: computed.append(1))
    first = images(pipe)
    assert 0 < len(computed) < 4  # the first step runs in full, some later ones are skipped
    assert np.abs(first - reference).max() > 1e-4
    assert np.array_equal(images(pipe), first)  # a new generation starts afresh: no state carried over


def test_step_cache_on_flux_uses_diffusers_cache_mixin(build):
    pipe = build("flux1-dev")
    P.apply_options(pipe, options(step_cache=1e-9), "cpu")
    assert pipe.transformer.is_cache_enabled
    plain = build("flux1-dev")
    assert np.abs(images(pipe) - images(plain)).max() == 0


def test_step_cache_refused_without_transformer_blocks():
    from act2i_utils import generate

    spec = generate.resolve_spec(T2IModel(model="tiny-sd"))
    with pytest.raises(Act2iError, match="generate.step_cache needs a transformer with at least two blocks, and "
                                         "UNet2DConditionModel has 0"):
        P.load_pipeline(spec, device="cpu", options=options(step_cache=0.1))


def test_profiles_turn_on_no_output_changing_mode():
    for name in ("paper", "paper-llama", "smoke"):
        generate_cfg = load_profile(name).generate
        assert P.output_changing(generate_cfg) == [], name
        assert not generate_cfg.fp8 and generate_cfg.step_cache is None
    assert P.output_changing(options(fp8=True, step_cache=0.1)) == ["fp8", "step_cache"]


@pytest.mark.parametrize("override, message", [
    ("generate.compile_mode=fastest", "'generate.compile_mode' must be one of 'default', 'max-autotune' or null, got 'fastest'"),
    ("generate.step_cache=0", "'generate.step_cache' must be a positive number or null, got 0"),
    ("generate.compile_scope=layers", "'generate.compile_scope' must be one of 'model', 'blocks'"),
])
def test_config_rejects_bad_speed_settings(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_profile("smoke", [override])


def _script(*args: str, timeout: int = 900) -> str:
    result = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, env=os.environ)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_gpu_paper_scale_tiny_runs_every_row_on_cpu(tmp_path):
    import json

    _script("benchmarks/gpu_paper_scale.py", "--tiny", "--no-compile", "--results-dir", str(tmp_path))
    data = json.loads((tmp_path / "gpu_paper_scale_matrix_tiny.json").read_text())
    sd3 = data["models"]["sd35-large"]["rows"]
    assert sd3["fused_qkv"]["max_pixel_difference"] == 0  # output-preserving, to the grey level
    assert sd3["diffusers_fused_processor_without_qk_norm"]["max_pixel_difference"] > 0
    assert "runs only on a CUDA GPU" in sd3["fused_qkv+cudnn_attention"]["refused"]
    assert "compute capability 8.9" in sd3["fp8"]["refused"]
    assert sd3["step_cache_0.1"]["changes_outputs"] == ["step_cache"] and sd3["fused_qkv"]["changes_outputs"] == []
    assert len({r["weights_checksum"] for r in sd3.values()}) == 1  # every row rebuilt the same weights
    assert "images_per_s" in data["models"]["flux1-dev"]["rows"]["reference"]
    assert data["models"]["sd35-large"]["best_preserving"]["row"]


@pytest.mark.slow
def test_gpu_paper_scale_tiny_compiles_and_reuses_the_cache(tmp_path):
    import json

    _script("benchmarks/gpu_paper_scale.py", "--tiny", "--rows", "sd35-large:reference,sd35-large:compile_max_autotune,"
            "sd35-large:compile_max_autotune_warm_cache", "--results-dir", str(tmp_path), "--compile-cache", str(tmp_path / "ind"))
    rows = json.loads((tmp_path / "gpu_paper_scale_matrix_tiny.json").read_text())["models"]["sd35-large"]["rows"]
    cold, warm = rows["compile_max_autotune"], rows["compile_max_autotune_warm_cache"]
    assert cold["compile_cache_files_before"] == 0 and warm["compile_cache_files_before"] > 0
    assert warm["compile_seconds"] < cold["compile_seconds"]
    assert cold["max_pixel_difference"] <= 2 and warm["max_pixel_difference"] <= 2


@pytest.mark.slow
def test_gpu_judges_tiny_runs_on_cpu(tmp_path):
    import json

    _script("benchmarks/gpu_judges.py", "--tiny", "--results-dir", str(tmp_path))
    data = json.loads((tmp_path / "gpu_judges_tiny.json").read_text())
    assert set(data["judges"]) >= {"clipscore", "vqa", "detection", "action_clip"}
    assert data["judges"]["vqa"]["answers_per_s"] > 0 and data["vqa_one_at_a_time"]["max_abs_difference_vs_batched"] < 1e-4
    assert data["judges"]["clipscore"]["max_abs_difference_vs_one_at_a_time"] < 1e-3
    assert data["evaluate_stage_seconds_one_model"] > 0
