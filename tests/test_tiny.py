"""The tiny offline zoo: every family saves, loads back through from_pretrained and works."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from act2i_utils import tiny
from act2i_utils.models import folder_hash, load_model


def picture(seed: int = 0) -> Image.Image:
    return Image.fromarray((np.random.RandomState(seed).rand(32, 32, 3) * 255).astype("uint8"))


@pytest.mark.parametrize("name, size", [("sd", 64), ("sdxl", 64), ("sd3", 32), ("flux", 32)])
def test_text_to_image_families_generate_deterministically(name, size):
    from diffusers import AutoPipelineForText2Image

    pipe = load_model(f"tiny:{name}", AutoPipelineForText2Image.from_pretrained, what="text-to-image pipeline")
    pipe.set_progress_bar_config(disable=True)

    def draw(seed):
        out = pipe("a sheep attacking a boar", num_inference_steps=2, height=size, width=size,
                   generator=torch.Generator("cpu").manual_seed(seed), output_type="np")
        return out.images[0]

    first = draw(42)
    assert first.shape == (size, size, 3)
    assert np.array_equal(first, draw(42))
    assert not np.array_equal(first, draw(43))


def test_chat_llm_answers_a_chat():
    from transformers import pipeline

    generate = pipeline("text-generation", model=str(tiny.tiny_path("llm")))
    reply = generate([{"role": "user", "content": "Rewrite: a cat chasing a dog"}], max_new_tokens=8, do_sample=False)
    message = reply[0]["generated_text"][-1]
    assert message["role"] == "assistant" and isinstance(message["content"], str)
    assert generate.tokenizer.chat_template and generate.tokenizer.padding_side == "left"


def test_clip_gives_a_similarity():
    from transformers import AutoProcessor, CLIPModel

    path = tiny.tiny_path("clip")
    model, processor = CLIPModel.from_pretrained(path), AutoProcessor.from_pretrained(path)
    inputs = processor(text=["a sheep attacking a boar", "a cat"], images=[picture()], return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = model(**inputs).logits_per_image
    assert logits.shape == (1, 2) and torch.isfinite(logits).all()
    assert processor.tokenizer.tokenize("a sheep attacking a boar") == ["a</w>", "sheep</w>", "attacking</w>", "a</w>", "boar</w>"]


def test_owlv2_detects_boxes():
    from transformers import AutoProcessor, Owlv2ForObjectDetection

    path = tiny.tiny_path("owlv2")
    model, processor = Owlv2ForObjectDetection.from_pretrained(path), AutoProcessor.from_pretrained(path)
    inputs = processor(text=[["a sheep", "a boar"]], images=[picture()], return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs)
    result = processor.post_process_grounded_object_detection(outputs, threshold=0.0, target_sizes=[(32, 32)])[0]
    assert result["boxes"].shape[1] == 4 and len(result["scores"]) == len(result["labels"]) > 0


def test_dinov2_gives_features():
    from transformers import AutoImageProcessor, AutoModel

    path = tiny.tiny_path("dinov2")
    model, processor = AutoModel.from_pretrained(path), AutoImageProcessor.from_pretrained(path)
    with torch.no_grad():
        features = model(**processor(images=[picture(0), picture(1)], return_tensors="pt")).pooler_output
    assert features.shape == (2, 32)


def test_vlm_gives_a_yes_probability():
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    path = tiny.tiny_path("vlm")
    model, processor = LlavaForConditionalGeneration.from_pretrained(path), AutoProcessor.from_pretrained(path)
    messages = [{"role": "user", "content": [
        {"type": "image"}, {"type": "text", "text": "Does this figure show 'a cat'? Please answer yes or no."}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(images=[picture()], text=[prompt], return_tensors="pt")
    with torch.no_grad():
        probs = model(**inputs).logits[0, -1].softmax(-1)
    yes, no = (processor.tokenizer.convert_tokens_to_ids(t) for t in ("Yes", "No"))
    assert yes != no and processor.tokenizer.unk_token_id not in (yes, no)
    assert 0.0 < probs[yes].item() < 1.0


def test_builds_are_reproducible_and_cached(tmp_path, monkeypatch):
    first = tiny.tiny_path("sd3")
    assert tiny.tiny_path("sd3") == first  # second call finds the folder
    monkeypatch.setenv("ACT2I_CACHE", str(tmp_path))
    again = tiny.tiny_path("sd3")
    assert again != first and folder_hash(again) == folder_hash(first)


def test_two_processes_building_at_once_share_one_folder(tmp_path):
    script = "from act2i_utils.tiny import tiny_path; print(tiny_path('flux'))"
    env = {**os.environ, "ACT2I_CACHE": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    paths = {p.communicate(timeout=120)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs) and len(paths) == 1
    folders = [p for p in (tmp_path / "tiny").iterdir() if p.is_dir()]
    assert [f.name for f in folders] == [os.path.basename(paths.pop())]  # no stray temporary folder
    from diffusers import AutoPipelineForText2Image

    assert AutoPipelineForText2Image.from_pretrained(folders[0]) is not None


def test_builds_in_two_processes_are_byte_identical(tmp_path):
    """Each process trains the tokenizers anew: ties in training must not be broken at random."""
    script = ("import sys; from act2i_utils.tiny import tiny_path; from act2i_utils.models import folder_hash; "
              "print(' '.join(folder_hash(tiny_path(n)) for n in ('sd3', 'clip', 'llm')))")
    hashes = []
    for i in range(2):
        env = {**os.environ, "ACT2I_CACHE": str(tmp_path / f"cache{i}")}
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        hashes.append(out.stdout.split())
    assert hashes[0] == hashes[1]
