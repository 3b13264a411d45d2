"""Every preset builds, runs forward and takes a training step; the model directory round-trips exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from photoseek.encoders.augment import augment_batch, token_dropout
from photoseek.encoders.checkpoint import load_model_dir, save_model_dir
from photoseek.encoders.config import AugmentConfig, ModelConfig
from photoseek.encoders.encoder import Encoder
from photoseek.encoders.losses import cosine, infonce, model_loss, triplet_hardest
from photoseek.encoders.model import JointModel
from photoseek.encoders.registry import get_preset, list_presets
from photoseek.encoders.tokenizer import Vocabulary

CAPTIONS = ["a red circle on the left", "two blue squares", "a small green star at the top right",
            "a yellow triangle", "a black cross and a white diamond", "one purple circle"]


def _vocab() -> Vocabulary:
    return Vocabulary.build(CAPTIONS)


def _batch(cfg: ModelConfig, b: int = 4):
    gen = torch.Generator().manual_seed(0)
    s = cfg.vision.image_size
    images = torch.randint(0, 256, (b, 3, s, s), dtype=torch.uint8, generator=gen) if cfg.has_images else None
    from photoseek.encoders.tokenizer import Tokenizer

    tok = Tokenizer(_vocab(), cfg.text.context_length)
    return images, tok(CAPTIONS[:b]), tok(CAPTIONS[1 : b + 1])


def test_shipped_presets_include_the_seed_trials() -> None:
    assert {"tiny", "trial1-bow", "trial3-bilstm-cnn", "clip-resnet"} <= set(list_presets())


@pytest.mark.parametrize("name", ["tiny", "trial1-bow", "trial3-bilstm-cnn", "clip-resnet"])
def test_preset_forward_and_one_training_step(name: str) -> None:
    torch.manual_seed(0)
    cfg = get_preset(name)
    model = JointModel(cfg, len(_vocab()))
    images, ids, ids_b = _batch(cfg)
    out = model(images, ids, None if cfg.has_images else ids_b)
    assert out["text"].shape == (4, cfg.embed_dim)
    assert torch.allclose(out["text"].norm(dim=-1), torch.ones(4), atol=1e-5)
    if cfg.has_images:
        assert out["image"].shape == (4, cfg.embed_dim)
    loss = model_loss(cfg.loss, out)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss.backward()
    opt.step()
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert torch.isfinite(loss) and any(k.startswith("text.") for k in changed)
    if cfg.has_images:
        assert any(k.startswith("vision.") for k in changed)


def test_caption_only_model_refuses_images() -> None:
    model = JointModel(get_preset("trial1-bow"), len(_vocab()))
    with pytest.raises(ValueError, match="no image tower"):
        model.encode_image(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


def test_unknown_preset_and_bad_config_keys_are_clear_errors(tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        get_preset("nope")
    bad = tmp_path / "mine.yaml"
    bad.write_text("text: {kind: transformer, widht: 3}\n")
    with pytest.raises(ValueError, match="widht"):
        get_preset(str(bad))


def test_losses_prefer_aligned_pairs() -> None:
    a = torch.nn.functional.normalize(torch.randn(8, 16, generator=torch.Generator().manual_seed(1)), dim=-1)
    shuffled = a[torch.randperm(8, generator=torch.Generator().manual_seed(2))]
    scale = torch.tensor(10.0)
    assert infonce(a, a, scale) < infonce(a, shuffled, scale)
    assert triplet_hardest(a, a) < triplet_hardest(a, shuffled)
    assert cosine(a, a) < cosine(a, shuffled)
    same = torch.nn.functional.normalize(torch.ones(8, 16), dim=-1)
    # The seed's positive-only loss is zero on a collapsed space; the negative hinge is what penalises it.
    assert cosine(same, same, negative_weight=0.0) == pytest.approx(0.0, abs=1e-6)
    assert cosine(same, same) > 0.5


def test_save_load_round_trip_gives_identical_embeddings(tmp_path) -> None:
    torch.manual_seed(0)
    cfg = get_preset("tiny")
    model = JointModel(cfg, len(_vocab())).eval()
    model_id = save_model_dir(tmp_path / "m", model, _vocab(), {"note": "test"})
    enc = Encoder.load(tmp_path / "m", device="cpu")
    assert enc.model_id == model_id and model_id.startswith("tiny-") and enc.dim == 32
    before = Encoder(model, _vocab(), {"model_id": model_id}, device="cpu")  # the same weights, never saved
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(enc.encode_images(images), before.encode_images(images))
    np.testing.assert_array_equal(enc.encode_texts(CAPTIONS), before.encode_texts(CAPTIONS))
    assert np.allclose(np.linalg.norm(enc.encode_texts(CAPTIONS), axis=1), 1.0, atol=1e-5)
    again, _, meta = load_model_dir(tmp_path / "m")
    assert meta["note"] == "test" and meta["vocab_size"] == len(_vocab())


def test_encoder_rejects_wrong_image_batches(tmp_path) -> None:
    save_model_dir(tmp_path / "m", JointModel(get_preset("tiny"), len(_vocab())), _vocab())
    enc = Encoder.load(tmp_path / "m", device="cpu")
    with pytest.raises(ValueError, match="uint8"):
        enc.encode_images(np.zeros((1, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="32x32"):
        enc.encode_images(np.zeros((1, 40, 40, 3), np.uint8))
    assert enc.encode_texts([]).shape == (0, 32)


def test_weights_are_loaded_with_weights_only(tmp_path, monkeypatch) -> None:
    save_model_dir(tmp_path / "m", JointModel(get_preset("tiny"), len(_vocab())), _vocab())
    seen = {}
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    load_model_dir(tmp_path / "m")
    assert seen.get("weights_only") is True


def test_flip_swaps_left_and_right_in_the_caption() -> None:
    images = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    images[:, :, :, :4] = 255  # left half white
    cfg = AugmentConfig(crop_scale=1.0, flip=1.0, brightness=0, contrast=0, saturation=0)
    out, caps = augment_batch(images, ["a star on the left", "right of a circle"], cfg, torch.Generator())
    assert caps == ["a star on the right", "left of a circle"]
    assert out[0, :, :, 4:].min() == 1.0 and out[0, :, :, :4].max() == 0.0  # the white half moved right


def test_augment_keeps_shape_and_range_and_token_dropout_spares_padding() -> None:
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8, generator=gen)
    out, _ = augment_batch(images, ["a"] * 4, AugmentConfig(), gen)
    assert out.shape == (4, 3, 16, 16) and out.min() >= 0 and out.max() <= 1
    ids = torch.tensor([[5, 6, 7, 0, 0]] * 50)
    dropped = token_dropout(ids, 0.5, 1, gen)
    assert (dropped[:, 3:] == 0).all() and (dropped[:, :3] == 1).any() and (dropped[:, :3] != 1).any()


@pytest.mark.parametrize("name", ["tiny", "trial1-bow", "trial3-bilstm-cnn", "clip-resnet"])
def test_encode_texts_trims_padding_without_changing_vectors(name: str) -> None:
    """Encoder.encode_texts cuts trailing padding; every text tower must give the same vectors either way."""
    from photoseek.encoders.tokenizer import Tokenizer

    torch.manual_seed(0)
    cfg = get_preset(name)
    model = JointModel(cfg, len(_vocab())).eval()
    encoder = Encoder(model, _vocab(), {"model_id": name})
    texts = ["a red circle", CAPTIONS[2], "star", "an unknown word here"]
    full = Tokenizer(_vocab(), cfg.text.context_length)(texts)  # (B, T) with all its padding
    with torch.inference_mode():
        expected = model.encode_text(full).float().numpy()
    np.testing.assert_allclose(encoder.encode_texts(texts), expected, atol=1e-5)


@pytest.mark.parametrize("name", ["tiny", "trial1-bow", "trial3-bilstm-cnn", "clip-resnet"])
def test_traced_text_path_gives_the_eager_vectors(name: str) -> None:
    """Every text tower traces, and the trace matches eager on batches and lengths it was not traced with."""
    torch.manual_seed(0)
    model = JointModel(get_preset(name), len(_vocab())).eval()
    eager = Encoder(model, _vocab(), {"model_id": name})
    traced = Encoder(model, _vocab(), {"model_id": name})
    assert traced.trace_text()
    for texts in (["star"], CAPTIONS, CAPTIONS[:2] * 20, ["a red circle " * 40, "one"]):
        np.testing.assert_allclose(traced.encode_texts(texts), eager.encode_texts(texts), atol=1e-5)


def test_a_trace_that_differs_from_eager_is_not_used(caplog) -> None:
    """A text path with Python control flow on the batch (a trace freezes one branch) stays eager."""
    torch.manual_seed(0)
    model = JointModel(get_preset("tiny"), len(_vocab())).eval()
    plain = model.encode_text

    def branching(ids: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, D); flips the sign for some batch sizes
        out = plain(ids)
        return -out if ids.shape[0] == 3 else out

    model.encode_text = branching
    encoder = Encoder(model, _vocab(), {"model_id": "tiny"})
    with caplog.at_level("WARNING"):
        assert not encoder.trace_text()
    assert "differs from eager" in caplog.text
    np.testing.assert_allclose(encoder.encode_texts(CAPTIONS[:2]), plain_vectors(plain, CAPTIONS[:2]), atol=1e-5)


def plain_vectors(encode_text, texts: list[str]) -> np.ndarray:
    from photoseek.encoders.tokenizer import Tokenizer

    with torch.inference_mode():
        return encode_text(Tokenizer(_vocab(), get_preset("tiny").text.context_length)(texts)).float().numpy()
