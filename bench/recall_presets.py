"""Recall@K per preset on the synthetic set's test split, each trained from scratch under a wall-clock budget.

    python bench/recall_presets.py --data DATA_DIR --runs runs/ [--presets clip-resnet,trial3-bilstm-cnn,trial1-bow]
                                   [--minutes 15] [--images 10000]

Makes the synthetic set (10,000 scenes: 8,000 train, 1,000 val, 1,000 test) if DATA_DIR holds none, trains each
preset with `--max-minutes`, and evaluates the best-on-validation model on the test split (1,000 images, 5,000
captions). Caption-only presets report caption-to-caption recall. An existing run directory is resumed, not redone.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _machine import cores  # bench/ is on sys.path when a script here runs
from photoseek.encoders.data.synth import SynthConfig, write_synthetic
from photoseek.encoders.eval_run import EvalRequest, evaluate
from photoseek.encoders.train.trainer import TrainRequest, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="bench-data/synth10k")
    ap.add_argument("--runs", default="runs")
    ap.add_argument("--presets", default="clip-resnet,trial3-bilstm-cnn,trial1-bow")
    ap.add_argument("--minutes", default="15", help="one budget for all, or one per preset: 15,10,3")
    ap.add_argument("--images", type=int, default=10000)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    if not (Path(args.data) / "dataset_synth.json").is_file():
        write_synthetic(Path(args.data), SynthConfig(images=args.images))
    presets = args.presets.split(",")
    minutes = [float(m) for m in args.minutes.split(",")]
    minutes = minutes * len(presets) if len(minutes) == 1 else minutes
    rows = []
    for preset, budget in zip(presets, minutes):
        out = Path(args.runs) / preset
        t0 = time.monotonic()
        summary = train(TrainRequest(data=args.data, out=str(out), preset=preset, max_minutes=budget,
                                     workers=args.workers))
        wall = time.monotonic() - t0
        result = evaluate(EvalRequest(model=str(out), data=args.data, split="test", quiet=True,
                                      plot=str(out / "embedding_map_test.png")))
        rows.append({"preset": preset, "budget_min": budget, "wall_min": round(wall / 60, 1),
                     "best_epoch": summary.get("best_epoch"), **{k: result[k] for k in ("i2t", "t2i", "t2t", "rsum")
                                                                  if k in result}})
        print(json.dumps(rows[-1]), flush=True)
    print(f"\nmachine: {cores()}, CPU; test split of {args.data}")
    print(f"{'preset':20s} {'budget':>6s} {'way':>4s} {'R@1':>6s} {'R@5':>6s} {'R@10':>6s} {'medr':>5s}")
    for r in rows:
        for way in ("t2i", "i2t", "t2t"):
            if way in r:
                m = r[way]
                print(f"{r['preset']:20s} {r['budget_min']:5g}m {way:>4s} {m['r1']:6.1f} {m['r5']:6.1f} "
                      f"{m['r10']:6.1f} {m['medr']:5g}")


if __name__ == "__main__":
    main()
