"""The shared loader: what it resolves to, and one clear sentence when loading fails."""

import pytest

from act2i_utils.errors import ModelLoadError
from act2i_utils.models import folder_hash, load_model, resolve_model


def test_resolution_kinds(tmp_path):
    assert resolve_model("tiny:clip").kind == "tiny"
    assert resolve_model(str(tmp_path)).kind == "local"
    hub = resolve_model("stabilityai/stable-diffusion-3.5-large")
    assert hub.kind == "hub" and hub.location == "stabilityai/stable-diffusion-3.5-large"


def test_folder_hash_follows_content(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"one")
    first = folder_hash(tmp_path)
    (tmp_path / "a.bin").write_bytes(b"two")
    assert folder_hash(tmp_path) != first


def test_offline_hub_id_says_what_to_do():
    from transformers import CLIPModel

    with pytest.raises(ModelLoadError) as info:
        load_model("openai/clip-vit-base-patch32", CLIPModel.from_pretrained, what="CLIP judge")
    message = str(info.value)
    assert message.startswith("Could not load CLIP judge 'openai/clip-vit-base-patch32'")
    assert "hf download openai/clip-vit-base-patch32" in message and "local folder" in message
    assert "\n" not in message


def test_bad_local_folder_and_bad_reference(tmp_path):
    from transformers import CLIPModel

    with pytest.raises(ModelLoadError, match=f"from the local folder {tmp_path}.*saved with save_pretrained"):
        load_model(str(tmp_path), CLIPModel.from_pretrained)
    with pytest.raises(ModelLoadError, match="neither a local folder nor a Hugging Face id"):
        load_model("./no/such/folder", CLIPModel.from_pretrained)
    with pytest.raises(ModelLoadError, match="Unknown tiny model 'tiny:nope'; known: tiny:sd"):
        load_model("tiny:nope", CLIPModel.from_pretrained)
