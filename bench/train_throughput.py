"""Training throughput per preset: samples/s through the real training step (augmentation, forward, loss,
backward, AdamW) on in-memory data, on this machine's CPU; on a GPU, also clip-resnet at 224 px with bf16.

    python bench/train_throughput.py [--presets tiny,clip-resnet] [--steps 20] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import random
import time

import numpy as np
import torch
from _machine import cores  # bench/ is on sys.path when a script here runs

from photoseek.encoders.model import JointModel
from photoseek.encoders.registry import get_preset, list_presets
from photoseek.encoders.tokenizer import Tokenizer, Vocabulary
from photoseek.encoders.train.loop import (
    EpochPlan,
    TrainState,
    make_optimizer,
    train_epoch,
)
from photoseek.encoders.train.session import native_bf16

WORDS = ("a red blue green large small circle square star left right of the on and two three top bottom".split())


def fake_split(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, list[tuple[str, ...]]]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    pick = random.Random(seed)
    captions = [tuple(" ".join(pick.choices(WORDS, k=16)) for _ in range(5)) for _ in range(n)]
    return images, captions


def measure(name: str, steps: int, device: torch.device, image_size: int | None = None, amp: bool = False) -> dict:
    cfg = get_preset(name)
    if image_size:
        cfg.vision.image_size = image_size
    images, captions = fake_split(cfg.optim.batch_size * steps, cfg.vision.image_size)
    tok = Tokenizer(Vocabulary.build(WORDS), cfg.text.context_length)
    model = JointModel(cfg, len(tok.vocab)).to(device)
    opt = make_optimizer(model, cfg)
    plan = EpochPlan(cfg, epochs=2, max_seconds=None, seed=0, device=device, amp=amp, log_every_s=1e9)
    state = TrainState()
    train_epoch(model, opt, tok, images[: cfg.optim.batch_size * 2], captions, state, plan)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    stats = train_epoch(model, opt, tok, images, captions, state, plan)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    return {"preset": name, "image_size": cfg.vision.image_size, "batch": cfg.optim.batch_size,
            "samples_per_s": stats["samples"] / seconds, "params_m": sum(p.numel() for p in model.parameters()) / 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default=",".join(list_presets()))
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {cores()}, torch {torch.__version__}, "
          f"{args.threads} threads, CPU")
    cpu = torch.device("cpu")
    bf16 = native_bf16(cpu)
    print(f"{'preset':20s} {'px':>4s} {'batch':>5s} {'params(M)':>9s} {'fp32 samples/s':>15s} "
          f"{'bf16 samples/s':>15s}")
    for name in args.presets.split(","):
        r = measure(name, args.steps, cpu)
        b = f"{measure(name, args.steps, cpu, amp=True)['samples_per_s']:15.1f}" if bf16 else f"{'(no native bf16)':>15s}"
        print(f"{r['preset']:20s} {r['image_size']:4d} {r['batch']:5d} {r['params_m']:9.2f} {r['samples_per_s']:15.1f} {b}")
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        r = measure("clip-resnet", max(args.steps, 30), torch.device("cuda"), image_size=224, amp=True)
        print(f"GPU {name}: clip-resnet at 224 px, bf16 autocast: {r['samples_per_s']:.0f} images/s")
    else:
        print("GPU: none on this machine (run this script on a GPU machine for the 224 px bf16 figure)")


if __name__ == "__main__":
    main()
