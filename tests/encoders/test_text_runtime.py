"""The serving text path (encoders/text_runtime.py): ONNX Runtime and the trace are used only where they give the
eager model's vectors; a tower that does not export, or an export that differs, stays in PyTorch."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from photoseek.encoders import text_runtime
from photoseek.encoders.encoder import Encoder
from photoseek.encoders.model import JointModel
from photoseek.encoders.registry import get_preset
from photoseek.encoders.tokenizer import Vocabulary

CAPTIONS = ["a red circle on the left", "two blue squares", "a small green star at the top right",
            "a yellow triangle", "a black cross and a white diamond", "one purple circle"]
TEXTS = (["star"], CAPTIONS, CAPTIONS[:2] * 20, ["a red circle " * 40, "one"], ["zebra unknown words"])


def _encoder(name: str, seed: int = 0) -> Encoder:
    torch.manual_seed(seed)
    model = JointModel(get_preset(name), len(Vocabulary.build(CAPTIONS))).eval()
    return Encoder(model, Vocabulary.build(CAPTIONS), {"model_id": name})


@pytest.mark.parametrize("name,exports", [("tiny", True), ("trial1-bow", True), ("clip-resnet", True),
                                          ("trial3-bilstm-cnn", False)])
def test_fast_text_gives_the_eager_vectors(name: str, exports: bool) -> None:
    """Transformer and bag-of-words towers export to ONNX and match; the BiLSTM (packed sequences) does not
    export and is served by its trace. Whichever path is fastest, the vectors are eager's."""
    eager, fast = _encoder(name), _encoder(name)
    medians = fast.fast_text()
    assert ("onnx" in medians) == exports
    assert set(medians) >= {"eager", "trace"} and fast.text_runtime in medians
    assert all(ms > 0 for ms in medians.values())
    for texts in TEXTS:
        np.testing.assert_allclose(fast.encode_texts(texts), eager.encode_texts(texts), atol=1e-5)


def test_onnx_path_runs_any_batch_and_length() -> None:
    """The exported graph has a dynamic batch and length: 1 to 40 texts, 1 token to the full context."""
    enc = _encoder("tiny")
    path = text_runtime.onnx_text_path(enc.model, len(enc.tokenizer.vocab), enc.tokenizer.context_length, enc.device)
    assert path is not None
    onnx = _encoder("tiny")
    onnx._encode_text = path
    for texts in TEXTS:
        assert onnx.encode_texts(texts).shape == (len(texts), enc.dim)
        np.testing.assert_allclose(onnx.encode_texts(texts), enc.encode_texts(texts), atol=1e-5)


def test_an_export_that_differs_from_eager_is_not_used(monkeypatch, caplog) -> None:
    """An ONNX model that does not reproduce the eager vectors (here: another model's weights) is refused."""
    enc, other = _encoder("tiny", seed=0), _encoder("tiny", seed=1)
    real_export = text_runtime.export_onnx
    monkeypatch.setattr(text_runtime, "export_onnx", lambda model, example, context:
                        real_export(other.model, example, context))
    with caplog.at_level("WARNING"):
        path = text_runtime.onnx_text_path(enc.model, len(enc.tokenizer.vocab), enc.tokenizer.context_length,
                                           enc.device)
    assert path is None
    assert "differs from eager" in caplog.text
    medians = enc.fast_text()
    assert "onnx" not in medians and enc.text_runtime in ("eager", "trace")


def test_without_onnxruntime_the_text_path_stays_in_pytorch(monkeypatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_ort(name, *args, **kwargs):
        if name == "onnxruntime":
            raise ImportError("No module named 'onnxruntime'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ort)
    enc = _encoder("tiny")
    medians = enc.fast_text()
    assert set(medians) == {"eager", "trace"}
    np.testing.assert_allclose(enc.encode_texts(CAPTIONS), _encoder("tiny").encode_texts(CAPTIONS), atol=1e-5)


def test_fastest_takes_the_lowest_median() -> None:
    """The choice is measured: a candidate that sleeps 3 ms a call loses to one that does not."""
    example = torch.ones(1, 4, dtype=torch.long)
    slow = lambda ids: (time.sleep(0.003), ids)[1]  # noqa: E731
    name, medians = text_runtime.fastest({"slow": slow, "quick": lambda ids: ids}, example, calls=5)
    assert name == "quick" and medians["slow"] >= 3.0 > medians["quick"]
