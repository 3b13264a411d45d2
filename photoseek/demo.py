"""`photoseek demo`: the main job end to end on the embedded defaults, small enough for a laptop."""

from __future__ import annotations

import json
from pathlib import Path

from photoseek.encoders.data.synth import SynthConfig, write_synthetic
from photoseek.encoders.eval_run import EvalRequest, evaluate
from photoseek.encoders.evaluate import format_metrics
from photoseek.encoders.train.trainer import TrainRequest, train


def run_demo(out: Path, images: int = 3000, max_minutes: float = 3.0) -> int:
    out = out.resolve()
    data, model = out / "data", out / "model"
    print(f"[1/3] synthetic dataset: {images} captioned scenes in {data}", flush=True)
    print(json.dumps(write_synthetic(data, SynthConfig(images=images))), flush=True)
    print(f"[2/3] training clip-resnet for up to {max_minutes:g} min into {model}", flush=True)
    summary = train(TrainRequest(data=str(data), out=str(model), preset="clip-resnet", max_minutes=max_minutes))
    print(f"[3/3] evaluating on the test split", flush=True)
    result = evaluate(EvalRequest(model=str(model), data=str(data), plot=str(model / "embedding_map_test.png")))
    print(format_metrics(result))
    print("\nWhere to look:")
    print(f"  model directory   {model}  (id {summary.get('model_id')})")
    print(f"  training curve    {model / 'training_curve.png'}")
    print(f"  training log      {model / 'train_log.jsonl'}")
    print(f"  embedding map     {result['plot']}")
    print(f"  sample images     {data / 'images'}")
    return 0
