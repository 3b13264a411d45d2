"""`photoseek eval`, `train` and `data` through the real command-line entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from photoseek.cli import main
from photoseek.config_file import build_request
from photoseek.encoders.eval_run import EvalRequest, evaluate
from photoseek.encoders.train.trainer import TrainRequest


def test_eval_json_has_the_documented_shape(tiny_model_dir: Path, synth_dir: Path, capsys) -> None:
    assert main(["eval", "--model", str(tiny_model_dir), "--data", str(synth_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"i2t", "t2i", "rsum"}
    for way in ("i2t", "t2i"):
        assert set(out[way]) == {"r1", "r5", "r10", "medr"}
        assert 0 <= out[way]["r1"] <= out[way]["r5"] <= out[way]["r10"] <= 100
    assert out["rsum"] == pytest.approx(sum(out[w][k] for w in ("i2t", "t2i") for k in ("r1", "r5", "r10")))


def test_eval_counts_the_split_and_draws_the_map(tiny_model_dir: Path, synth_dir: Path, tmp_path: Path) -> None:
    result = evaluate(EvalRequest(model=str(tiny_model_dir), data=str(synth_dir), split="test",
                                  plot=str(tmp_path / "map.png"), quiet=True))
    assert result["images"] == 16 and result["captions"] == 80
    assert (tmp_path / "map.png").stat().st_size > 5000


def test_eval_reports_unreadable_images_and_goes_on(tiny_model_dir: Path, synth_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "copy"
    (data / "images").mkdir(parents=True)
    for img in (synth_dir / "images").iterdir():
        (data / "images" / img.name).write_bytes(img.read_bytes())
    (data / "dataset_synth.json").write_text((synth_dir / "dataset_synth.json").read_text())
    victim = sorted((data / "images").iterdir())[-1]  # the last image is in the test split
    victim.write_bytes(b"not a jpeg")
    result = evaluate(EvalRequest(model=str(tiny_model_dir), data=str(data), quiet=True))
    assert result["images"] == 15 and result["skipped"][0][0] == str(victim)


def test_cli_errors_are_one_clear_line(tmp_path: Path, capsys) -> None:
    assert main(["eval", "--model", str(tmp_path), "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "photoseek eval: error:" in err and "not a photoseek model directory" in err
    assert main(["train", "--out", str(tmp_path / "m")]) == 2
    assert "--data" in capsys.readouterr().err


def test_config_file_fills_requests_and_flags_override(tmp_path: Path) -> None:
    config = {"data": "/d", "train": {"preset": "tiny", "epochs": 3, "out": "/m"}}
    req = build_request(TrainRequest, config, "train", {"epochs": 5, "preset": None})
    assert (req.data, req.out, req.preset, req.epochs) == ("/d", "/m", "tiny", 5)
    with pytest.raises(ValueError, match="unknown key"):
        build_request(TrainRequest, {"train": {"epoch": 3}}, "train", {})


def test_cli_reads_the_config_file(tiny_model_dir: Path, synth_dir: Path, tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "photoseek.yaml"
    cfg.write_text(f"data: {synth_dir}\neval:\n  model: {tiny_model_dir}\n  split: val\n")
    assert main(["--config", str(cfg), "eval"]) == 0
    assert "on val: 16 images, 80 captions" in capsys.readouterr().out


def test_data_check_and_synth_commands(tmp_path: Path, capsys) -> None:
    assert main(["data", "synth", str(tmp_path / "s"), "--images", "20", "--size", "32"]) == 0
    assert main(["data", "check", str(tmp_path / "s")]) == 0
    assert "karpathy dataset" in capsys.readouterr().out
    assert main(["data", "check", str(tmp_path / "nothing-here")]) == 2
