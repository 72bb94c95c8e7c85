"""Image generation: every tiny family through the stage, per-image seeding, resume, integrity, sharding."""

import io
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from act2i_utils import generate
from act2i_utils.benchmark import build_benchmark
from act2i_utils.config import T2IModel
from act2i_utils.enrich import enrich
from act2i_utils.enrich.kb import KnowledgeBaseBackend
from act2i_utils.errors import Act2iError, InputError, ModelLoadError
from act2i_utils.generate import stage as gen_stage
from act2i_utils.manifest import read_manifest
from act2i_utils.runs import open_run


@pytest.fixture(scope="module")
def prompts():
    table = build_benchmark(seed=0, n_per_action=1).head(3)
    return enrich(table, KnowledgeBaseBackend(), dimensions=["temporal"], progress=False)


def make_run(root, prompts, **generate):
    settings = {"models": [{"model": "tiny-sd3"}], "variants": ["base", "temporal"], "seeds": [42, 7], "batch_size": 4}
    settings.update(generate)
    run = open_run(root, "smoke", {"generate": settings})
    prompts.to_parquet(run.path("prompts.parquet"))
    return run


def pixels(run, model="tiny-sd3"):
    manifest = read_manifest(run.root)
    part = manifest[manifest["model"] == model]
    return {(r.variant, r.id, r.seed): np.array(Image.open(run.root / r.path)) for r in part.itertuples()}


def test_registry_has_the_papers_models_and_resolves_entries():
    keys = set(generate.list_models())
    assert {"sd35-large", "sd35-large-turbo", "sd35-medium", "flux1-dev", "flux1-schnell", "sdxl-base",
            "pixart-sigma", "sd15", "tiny-sd", "tiny-sdxl", "tiny-sd3", "tiny-flux"} <= keys
    spec = generate.resolve_spec(T2IModel(model="sd35-large"))
    assert (spec.id, spec.steps, spec.guidance, spec.label) == ("stabilityai/stable-diffusion-3.5-large", 40, 3.5, "sd35-large")
    mine = generate.resolve_spec(T2IModel(model="stabilityai/stable-diffusion-3.5-large", name="sd35", steps=28))
    assert (mine.label, mine.steps, mine.guidance, mine.family) == ("sd35", 28, 3.5, "StableDiffusion3Pipeline")
    other = generate.resolve_spec(T2IModel(model="someone/their-model"))
    assert other.id == "someone/their-model" and other.steps == 30 and other.label == "their-model"
    with pytest.raises(ModelLoadError, match=r"Unknown model 'sd35-larg' \(did you mean 'sd35-large'\?\)"):
        generate.resolve_spec(T2IModel(model="sd35-larg"))


@pytest.mark.parametrize("model", ["tiny-sd", "tiny-sdxl", "tiny-sd3", "tiny-flux"])
def test_each_tiny_family_generates_through_the_stage(tmp_path, prompts, model):
    run = make_run(tmp_path / "r", prompts, models=[{"model": model}], seeds=[42])
    manifest = generate.run(run, progress=False)
    assert len(manifest) == 3 * 2 and set(manifest["model"]) == {model}
    row = manifest.iloc[0]
    assert row.path == f"images/{model}/{row.variant}/{row.id}_42.png"
    image = Image.open(run.root / row.path)
    assert image.size == (row.width, row.height) and "act2i" in image.text
    assert {"prompt", "prompt_hash", "steps", "guidance", "seconds", "versions"} <= set(manifest.columns)
    assert run.provenance()["models"]["tiny:" + model.split("-")[1]]["kind"] == "tiny"


def test_same_seed_same_pixels_in_any_batch_size_and_order(tmp_path, prompts):
    reference = pixels(_generated(tmp_path / "a", prompts, batch_size=4))
    again = pixels(_generated(tmp_path / "a2", prompts, batch_size=4))
    assert all(np.array_equal(again[k], reference[k]) for k in reference)  # same batches: byte-identical
    for name, shuffled, size in (("b", prompts, 1), ("c", prompts.iloc[::-1], 3)):
        other = pixels(_generated(tmp_path / name, shuffled, batch_size=size))
        assert other.keys() == reference.keys()
        # other batch shapes pick other CPU kernels: at most one grey level apart
        assert max(np.abs(other[k].astype(int) - reference[k]).max() for k in reference) <= 1
    seeds = {k[2]: v for k, v in reference.items() if k[:2] == ("base", prompts["id"].iloc[0])}
    assert not np.array_equal(seeds[42], seeds[7])


def _generated(root, prompts, **settings):
    run = make_run(root, prompts, **settings)
    generate.run(run, progress=False)
    return run


def test_unet_families_agree_across_batch_sizes_up_to_one_level(tmp_path, prompts):
    # BLAS picks other kernels for other batch shapes (e.g. gemv for one row): at most 1/255 apart.
    one = pixels(_generated(tmp_path / "a", prompts, models=[{"model": "tiny-sd"}], batch_size=1), "tiny-sd")
    four = pixels(_generated(tmp_path / "b", prompts, models=[{"model": "tiny-sd"}], batch_size=4), "tiny-sd")
    assert max(np.abs(one[k].astype(int) - four[k]).max() for k in one) <= 1


def test_resume_after_interruption_corruption_and_a_changed_prompt(tmp_path, prompts, monkeypatch):
    run = make_run(tmp_path / "r", prompts, batch_size=2)
    calls = {"n": 0}
    real = gen_stage.generate_images

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(gen_stage, "generate_images", flaky)
    with pytest.raises(KeyboardInterrupt):
        generate.run(run, progress=False)
    assert len(read_manifest(run.root)) == 4  # two whole batches survived
    monkeypatch.setattr(gen_stage, "generate_images", real)
    manifest = generate.run(run, progress=False)
    assert len(manifest) == 12 and not manifest.duplicated(["model", "variant", "id", "seed"]).any()
    assert not (run.root / "images" / "manifest.parts").exists()
    reference = {p: (run.root / p).read_bytes() for p in manifest["path"]}

    victim = run.root / manifest["path"].iloc[5]
    victim.write_bytes(victim.read_bytes()[:200])  # a truncated file
    (run.root / manifest["path"].iloc[6]).unlink()  # and a missing one
    before = {p: os.stat(run.root / p).st_mtime_ns for p in manifest["path"].iloc[7:]}
    generate.run(run, progress=False)
    remade = {p: np.array(Image.open(run.root / p)).astype(int) for p in manifest["path"].iloc[5:7]}
    assert all(np.abs(remade[p] - np.array(Image.open(io.BytesIO(reference[p])))).max() <= 1 for p in remade)
    assert {p: os.stat(run.root / p).st_mtime_ns for p in manifest["path"].iloc[7:]} == before  # untouched
    reference.update({p: (run.root / p).read_bytes() for p in remade})

    changed = prompts.copy()
    target = changed.index[(changed["variant"] == "temporal")][0]
    changed.loc[target, "text"] = "a new text for this prompt"
    changed.to_parquet(run.path("prompts.parquet"))
    manifest = generate.run(run, progress=False)
    redone = manifest[manifest["prompt"] == "a new text for this prompt"]
    assert len(redone) == 2  # both seeds of that prompt, nothing else
    assert sum(reference[p] != (run.root / p).read_bytes() for p in manifest["path"]) == 2


def test_out_of_memory_halves_the_batch(tmp_path, prompts, monkeypatch):
    import torch

    run = make_run(tmp_path / "r", prompts, batch_size=4)
    sizes = []
    real = gen_stage.generate_images

    def tight(pipe, texts, seeds, kwargs):
        sizes.append(len(texts))
        if len(texts) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(pipe, texts, seeds, kwargs)

    monkeypatch.setattr(gen_stage, "generate_images", tight)
    with pytest.warns(UserWarning, match="Out of memory: batch size lowered to 2"):
        manifest = generate.run(run, progress=False)
    assert len(manifest) == 12 and sizes[:3] == [4, 2, 1] and set(sizes[3:]) == {1}


def test_sharded_accelerate_run_equals_a_single_process(tmp_path, prompts):
    import torch

    threads = torch.get_num_threads()
    try:
        single = _generated(tmp_path / "single", prompts, batch_size=2, cpu_threads=1)  # what the guarantee needs
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    sharded = make_run(tmp_path / "sharded", prompts, batch_size=2, cpu_threads=1)
    import socket

    with socket.socket() as sock:  # a free port for the processes' rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2", "--num_machines", "1",
           "--main_process_port", str(port),
           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "act2i_utils.cli", "generate",
           "--run", str(sharded.root), "--quiet"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert out.returncode == 0, out.stderr[-2000:]
    a, b = read_manifest(single.root), read_manifest(sharded.root)
    assert sorted(a["path"]) == sorted(b["path"]) and len(b) == 12
    assert all((single.root / p).read_bytes() == (sharded.root / p).read_bytes() for p in a["path"])
    assert not (sharded.root / "images" / "manifest.parts").exists()


def test_import_external_images(tmp_path, prompts):
    run = make_run(tmp_path / "r", prompts)
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    Image.new("RGB", (40, 30), "red").save(folder / "one.jpg")
    Image.new("RGB", (40, 30), "blue").save(folder / "two.png")
    first_id = prompts["id"].iloc[0]
    (tmp_path / "map.csv").write_text(f"file,model,variant,id,seed\none.jpg,dall-e-3,base,{first_id},0\n"
                                      f"two.png,dall-e-3,temporal,{first_id},0\n")
    manifest = generate.import_images(run, folder, tmp_path / "map.csv")
    rows = manifest[manifest["model"] == "dall-e-3"]
    assert len(rows) == 2 and set(rows["source"]) == {"imported"}
    assert rows["prompt"].tolist() == [prompts.set_index(["id", "variant"]).loc[(first_id, v), "text"] for v in rows["variant"]]
    assert Image.open(run.root / rows["path"].iloc[0]).size == (40, 30)
    (tmp_path / "bad.csv").write_text(f"file,model,variant,id,seed\nnope.png,x,base,{first_id},0\n")
    with pytest.raises(InputError, match=r"bad.csv: row 1: cannot read image .*nope.png"):
        generate.import_images(run, folder, tmp_path / "bad.csv")
    (tmp_path / "cols.csv").write_text("file,model\na.png,x\n")
    with pytest.raises(InputError, match=r"missing column\(s\) variant, id, seed"):
        generate.import_images(run, folder, tmp_path / "cols.csv")


def test_clear_sentences(tmp_path, prompts):
    run = make_run(tmp_path / "a", prompts, variants=["base", "emotional"])
    with pytest.raises(InputError, match=r"Variant 'emotional' is not among the enriched prompts \(they have base, temporal\)"):
        generate.run(run, progress=False)
    run = make_run(tmp_path / "b", prompts)
    (run.root / "images").write_text("not a folder")
    with pytest.raises(Act2iError, match=r"Cannot write images to .*images"):
        generate.run(run, progress=False)
    with pytest.raises(Exception, match="Unknown model 'tiny-sd4'"):
        make_run(tmp_path / "c", prompts, models=[{"model": "tiny-sd4"}])
        generate.run(open_run(tmp_path / "c"), progress=False)
    run = make_run(tmp_path / "d", prompts)
    run.path("prompts.parquet").unlink()
    with pytest.raises(InputError, match="run the enrich-prompts stage"):
        generate.run(run, progress=False)


def test_speed_options_are_applied(tmp_path):
    import torch

    from act2i_utils.config import GenerateConfig
    from act2i_utils.generate.pipelines import load_pipeline

    options = GenerateConfig(models=[T2IModel(model="tiny-sd3")], vae_slicing=True, vae_tiling=True, compile=True,
                             fuse_qkv=True)
    pipe = load_pipeline(generate.resolve_spec(options.models[0]), device="cpu", options=options)
    assert pipe.vae.use_slicing and pipe.vae.use_tiling
    assert isinstance(pipe.transformer, torch._dynamo.eval_frame.OptimizedModule)
    processors = pipe.transformer._orig_mod.attn_processors.values()
    assert all(type(p).__name__.startswith("Fused") for p in processors)
    bad = GenerateConfig(models=options.models, attention_backend="no-such-kernel")
    with pytest.raises(Act2iError, match="Attention backend 'no-such-kernel' is not available"):
        load_pipeline(generate.resolve_spec(options.models[0]), device="cpu", options=bad)


def test_qualitative_grid(tmp_path, prompts):
    from act2i_utils.analysis.figures import qualitative_grid, save_figure

    run = _generated(tmp_path / "r", prompts)
    manifest = read_manifest(run.root)
    fig = qualitative_grid(manifest, run.root, model="tiny-sd3", seed=42, ids=list(prompts["id"].unique()),
                           variants=["base", "temporal"])
    titles = [ax.get_title() for ax in fig.axes[:2]]
    assert titles == ["Original", "Temporal"] and len(fig.axes) == 6
    paths = save_figure(fig, tmp_path / "grid", random_weights=True)
    assert [p.suffix for p in paths] == [".png", ".pdf"] and all(p.stat().st_size > 1000 for p in paths)


def test_a_pipeline_in_memory_is_used_instead_of_loading(tmp_path, prompts, monkeypatch):
    from diffusers import AutoPipelineForText2Image

    from act2i_utils.tiny import tiny_path

    pipe = AutoPipelineForText2Image.from_pretrained(tiny_path("sd3"))
    pipe.set_progress_bar_config(disable=True)

    def refuse(*args, **kwargs):
        raise AssertionError("the stage must not load a pipeline it was given")

    monkeypatch.setattr(gen_stage, "load_pipeline", refuse)
    run = make_run(tmp_path / "r", prompts, seeds=[42])
    manifest = generate.run(run, progress=False, pipelines={"tiny-sd3": pipe})
    assert len(manifest) == 6 and pipe.transformer is not None  # still usable by the caller
