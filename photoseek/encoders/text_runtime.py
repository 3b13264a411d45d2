"""The text path for serving: the fastest of eager PyTorch, a frozen TorchScript trace and ONNX Runtime that
reproduces the eager model.

A search embeds one short query at a time, where per-operator overhead, not arithmetic, sets the cost: on
one CPU thread the clip-resnet text tower takes about 0.6 ms eager, 0.3 ms traced and 0.2 ms in ONNX Runtime
(bench/query_latency.py's "text encode" row is the last, tokenising included). Each candidate is kept only
when it matches eager on the probe batches (trace.py: 1 to 33 texts, 1 token to the full context, padded);
the survivors are then timed on a one-query batch, alternating, and the fastest serves. A tower that does
not export (the BiLSTM's packed sequences) or a runtime that is not installed simply drops out, with a log
line.

ONNX Runtime runs on the CPU only here; on a GPU the candidates are eager and the trace.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import statistics
import time
import warnings
from typing import Callable

import numpy as np
import torch
from torch import nn

from photoseek.encoders.trace import TOLERANCE, _TextPath, probe_ids, trace_text, worst_difference

log = logging.getLogger(__name__)

TextPath = Callable[[torch.Tensor], torch.Tensor]  # (B, T) int64 ids -> (B, D) unit vectors
TIMING_CALLS = 30  # per candidate, alternating; the median decides
EXPORT_LOGGERS = ("onnx_ir", "onnxscript", "torch.onnx", "torch.export", "torch._export", "torch._dynamo")


@contextlib.contextmanager
def _quiet_export():
    """The exporter's progress lines (stdout), warnings and INFO logs of its graph passes stay out of our logs.
    (stdout is process-wide: for the few seconds of an export at start-up, other threads' prints go too.)"""
    loggers = [logging.getLogger(name) for name in EXPORT_LOGGERS]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _first_line(e: Exception) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip()  # torch.export colours its messages
    return (text.splitlines() or [""])[0][:200]


class OnnxTextPath:
    """An ONNX Runtime session over the exported text path, called like the module: ids (B, T) -> (B, D)."""

    def __init__(self, model_bytes: bytes, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # as torch in this process (serving replicas use 1)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only
        self.session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, D)
        return torch.from_numpy(self.run(ids.cpu().numpy()))

    def run(self, ids: np.ndarray) -> np.ndarray:  # (B, T) -> (B, D) float32
        return self.session.run(None, {self.input: ids.astype(np.int64, copy=False)})[0]


def export_onnx(model: nn.Module, example: torch.Tensor, context: int) -> bytes:
    """model.encode_text as an ONNX model with a dynamic batch and length (torch.onnx's dynamo exporter)."""
    dims = ({0: torch.export.Dim("batch"), 1: torch.export.Dim("tokens", max=context)},)
    with _quiet_export():
        program = torch.onnx.export(_TextPath(model).eval(), (example,), input_names=["ids"], output_names=["vector"],
                                    dynamic_shapes=dims, dynamo=True, verbose=False, report=False)
    return program.model_proto.SerializeToString()


def onnx_text_path(model: nn.Module, vocab_size: int, context: int, device: torch.device) -> OnnxTextPath | None:
    """The text path in ONNX Runtime when it exports and matches eager on every probe batch; else None."""
    if device.type != "cpu":
        return None
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        log.info("onnxruntime is not installed; the text path stays in PyTorch")
        return None
    probes = probe_ids(vocab_size, context, device)
    with torch.inference_mode():
        expected = [model.encode_text(ids) for ids in probes]
    try:
        path = OnnxTextPath(export_onnx(model, probes[2], context), torch.get_num_threads())  # (3, T): B, T vary
        worst = worst_difference(path, probes, expected)
    except Exception as e:  # a tower torch.export cannot capture (data-dependent shapes, packed sequences)
        log.info("text path not exported to ONNX (%s: %s); it stays in PyTorch", type(e).__name__,
                 _first_line(e.__cause__ or e))
        return None
    if worst > TOLERANCE:
        log.warning("text path in ONNX Runtime differs from eager by %.2g on probe batches; not used", worst)
        return None
    return path


def fastest(candidates: dict[str, TextPath], example: torch.Tensor, calls: int = TIMING_CALLS) -> tuple[str, dict]:
    """The candidate with the lowest median time on `example`, timed in turns; and every median in ms."""
    times: dict[str, list[float]] = {name: [] for name in candidates}
    sync = torch.cuda.synchronize if example.is_cuda else (lambda: None)  # GPU kernels return before they end
    with torch.inference_mode():
        for path in candidates.values():  # first calls run one-off work (allocations, graph passes)
            path(example)
        for _ in range(calls):
            for name, path in candidates.items():
                sync()
                t0 = time.perf_counter()
                path(example)
                sync()
                times[name].append(time.perf_counter() - t0)
    medians = {name: round(statistics.median(t) * 1000, 4) for name, t in times.items()}
    return min(medians, key=medians.__getitem__), medians


def best_text_path(model: nn.Module, vocab_size: int, context: int, device: torch.device,
                   runtimes: tuple[str, ...] = ("onnx", "trace")) -> tuple[str, TextPath, dict]:
    """The fastest verified text path among eager and `runtimes`: (name, path, median ms of each candidate)."""
    candidates: dict[str, TextPath] = {"eager": model.encode_text}
    if "trace" in runtimes and (traced := trace_text(model, vocab_size, context, device)) is not None:
        candidates["trace"] = traced
    if "onnx" in runtimes and (onnx := onnx_text_path(model, vocab_size, context, device)) is not None:
        candidates["onnx"] = onnx
    # a typical query: one text of a few words
    example = torch.randint(1, vocab_size, (1, min(6, context)), generator=torch.Generator().manual_seed(0))
    name, medians = fastest(candidates, example.to(device))
    log.info("text path: %s (one query: %s)", name, ", ".join(f"{k} {v:.3f} ms" for k, v in medians.items()))
    return name, candidates[name], medians
