"""Indexing throughput in images/s: decode floor, model floor, `index()` local and on Ray, and a naive loop.

All on the same camera-sized JPEGs and model; prints a table, the project's ratio targets as PASS/FAIL lines
and the machine.

    python bench/index_throughput.py --model runs/clip2 [--images 5000] [--size 1024x768] [--photos DIR]
    python bench/index_throughput.py --model /tmp/m1 --images 60 --photos /tmp/photos-smoke     # smoke test

The photos are made once under --photos (default bench-data/photos-1024) and reused while size, quality and
seed match: scikit-image's sample photos, randomly cropped, flipped, resized, colour-shifted, given sensor
noise and camera EXIF, saved as JPEG (distinct bytes each). Every variant gets a fresh store, deleted after.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from _machine import cores  # bench/ is on sys.path when a script here runs

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a throwaway local cluster needs no token

_POOL: list[np.ndarray] = []  # the source photos, loaded once per generating process
_COLOUR = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "retina",
           "stereo_motorcycle")
_GREY = ("camera", "brick", "grass", "gravel", "moon", "clock", "coins")


def _load_pool() -> None:
    from skimage import data

    for name in _COLOUR + _GREY:
        a = getattr(data, name)()
        a = a[0] if isinstance(a, tuple) else a  # stereo_motorcycle: (left, right, disparity)
        _POOL.append(np.stack([a] * 3, axis=-1) if a.ndim == 2 else a[..., :3])


def make_photo(job: tuple[str, int, int, int, int, int]) -> int:
    """Write one photo (deterministic in seed and index); returns its size in bytes."""
    path, i, seed, w, h, quality = job
    rng = np.random.default_rng([seed, i])
    src = _POOL[i % len(_POOL)]
    sh, sw = src.shape[:2]
    ch = int(min(sh, sw * h / w) * rng.uniform(0.5, 1.0))  # a crop of the output's aspect ratio
    cw = int(ch * w / h)
    y, x = rng.integers(0, sh - ch + 1), rng.integers(0, sw - cw + 1)
    im = Image.fromarray(np.ascontiguousarray(src[y:y + ch, x:x + cw])).resize((w, h), Image.Resampling.BICUBIC)
    if rng.random() < 0.5:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    a = np.asarray(im, np.float32) * rng.uniform(0.75, 1.25, 3) + rng.uniform(-20, 20, 3)  # white balance, exposure
    a += rng.standard_normal(a.shape, dtype=np.float32) * 3.0  # sensor noise: what makes camera JPEGs big
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Canon", "Canon EOS R5"
    exif.get_ifd(0x8769)[0x9003] = f"20{10 + i % 15}:{1 + i % 12:02d}:{1 + i % 28:02d} 12:{i % 60:02d}:00"
    buf = io.BytesIO()
    Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=quality, exif=exif.tobytes())
    tmp = f"{path[:-4]}.tmp"
    Path(tmp).write_bytes(buf.getvalue())
    os.replace(tmp, path)  # an interrupted run leaves no half photo behind
    return len(buf.getvalue())


def ensure_photos(folder: Path, n: int, size: tuple[int, int], quality: int, seed: int = 0) -> float:
    """Make the missing photos photo-NNNNNN.jpg 0..n-1, drop later ones; returns seconds spent making."""
    folder.mkdir(parents=True, exist_ok=True)
    marker, spec = folder / "photos.json", {"size": list(size), "quality": quality, "seed": seed}
    same = marker.exists() and json.loads(marker.read_text()) == spec
    if not same:
        marker.unlink(missing_ok=True)
    for p in folder.glob("photo-*.tmp"):  # left by an interrupted run; would be indexed as a broken JPEG
        p.unlink()
    for p in folder.glob("photo-*.jpg"):
        if int(p.stem.split("-")[1]) >= n:
            p.unlink()
    names = [folder / f"photo-{i:06d}.jpg" for i in range(n)]
    jobs = [(str(p), i, seed, *size, quality) for i, p in enumerate(names) if not (same and p.exists())]
    t0 = time.perf_counter()
    if jobs:
        with ProcessPoolExecutor(os.cpu_count(), initializer=_load_pool) as pool:
            sizes = list(pool.map(make_photo, jobs, chunksize=16))
        print(f"made {len(jobs)} photos {size[0]}x{size[1]} in {folder}, mean {np.mean(sizes) / 1024:.0f} KiB")
    marker.write_text(json.dumps(spec))
    return time.perf_counter() - t0


def decode_floor(files: list, size: int) -> tuple[float, np.ndarray]:
    """The decode stage alone on a pool of os.cpu_count() threads (as the local runner); -> (s, images)."""
    from photoseek.indexer.decode import Decoder
    from photoseek.indexer.local_runner import DECODE_CHUNK
    from photoseek.indexer.records import IMAGE, OK
    from photoseek.indexer.sources import batches

    decoder = Decoder(size)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        outs = list(pool.map(decoder, batches(files, DECODE_CHUNK)))
    seconds = time.perf_counter() - t0
    images = np.concatenate([o[IMAGE][np.asarray(o[OK], bool)] for o in outs])
    if len(images) != len(files):
        print(f"WARNING: decode failed on {len(files) - len(images)} of {len(files)} files")
    return seconds, images


def model_floor(model: str, images: np.ndarray, batch: int = 64) -> float:
    """`Encoder.encode_images` alone on decoded uint8 batches (after one warm-up batch); -> seconds."""
    from photoseek.encoders.encoder import Encoder

    enc = Encoder.load(model)
    enc.encode_images(images[:batch])
    t0 = time.perf_counter()
    for i in range(0, len(images), batch):
        enc.encode_images(images[i:i + batch])  # returns numpy: waits for a GPU to finish
    return time.perf_counter() - t0


def run_index(photos: Path, model: str, runner: str, **options: Any) -> tuple[float, float, int]:
    """The whole `index()` call (+ closing its store) into a fresh store; -> (s, s to first write, images)."""
    from photoseek.indexer.pipeline import IndexRequest, index
    from photoseek.indexer.store.edge import EdgeStore

    class FirstWrite(EdgeStore):
        first = float("nan")

        def upsert(self, *a: Any, **kw: Any) -> None:
            if self.first != self.first:  # NaN: nothing written yet
                self.first = time.perf_counter()
            super().upsert(*a, **kw)

    with tempfile.TemporaryDirectory(prefix=f"bench-{runner}-") as tmp:
        req = IndexRequest(path=str(photos), model=model, runner=runner, progress=False, **options)
        t0 = time.perf_counter()
        store = FirstWrite(tmp)
        report = index(req, store=store)
        store.close()
        seconds = time.perf_counter() - t0
    if report.failed:
        print(f"WARNING: {runner}: {report.summary()}")
    return seconds, store.first - t0, report.indexed + report.duplicates


def naive_loop(files: list, model: str) -> float:
    """Per file: full-size decode (no draft), resize, one image through the model, one upsert; -> seconds."""
    from photoseek.encoders.encoder import Encoder
    from photoseek.encoders.preprocess import fit_square
    from photoseek.indexer.records import point_id
    from photoseek.indexer.sink import PAYLOAD_INDEXES
    from photoseek.indexer.store.edge import EdgeStore

    with tempfile.TemporaryDirectory(prefix="bench-naive-") as tmp:
        t0 = time.perf_counter()
        enc = Encoder.load(model)
        store = EdgeStore(tmp)
        store.ensure_collection("naive", enc.dim, enc.model_id, PAYLOAD_INDEXES)
        for f in files:
            data = Path(f.path).read_bytes()
            with Image.open(io.BytesIO(data)) as im:
                square = fit_square(ImageOps.exif_transpose(im), enc.image_size)
            vector = enc.encode_images(square[None])
            store.upsert("naive", [point_id(hashlib.sha256(data).hexdigest())], vector, [{"paths": [f.path]}])
        store.close()
        return time.perf_counter() - t0


def machine() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return f"{cores()}; torch {torch.__version__}, {torch.get_num_threads()} threads; GPU {gpu}"


def verdict(ok: bool, text: str) -> None:
    print(f"{'PASS' if ok else 'FAIL'}  {text}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a trained model directory")
    ap.add_argument("--photos", default="bench-data/photos-1024", help="where the photos are made once")
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--size", default="1024x768", help="photo width x height")
    ap.add_argument("--quality", type=int, default=90)
    ap.add_argument("--actors", type=int, default=1, help="ray runner: embed actors")
    ap.add_argument("--gpu", action=argparse.BooleanOptionalAction, default=None,
                    help="ray runner: one GPU per embed actor (default: when CUDA is available, as the local runner)")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    photos = Path(args.photos)
    ensure_photos(photos, args.images, (w, h), args.quality)

    from photoseek.encoders.checkpoint import read_meta
    from photoseek.indexer.sources import FoundFile, find

    meta = read_meta(Path(args.model))
    files = [f for f in find(photos) if isinstance(f, FoundFile)]
    n = len(files)
    print(f"machine: {machine()}")
    print(f"{n} photos {w}x{h} q{args.quality} ({sum(f.size for f in files) / n / 1024:.0f} KiB mean), "
          f"model {meta['model_id']} at {meta['image_size']} px, {meta['embed_dim']}-d")

    rows: list[tuple[str, float, int, str]] = []
    dec_s, images = decode_floor(files, meta["image_size"])
    rows.append(("decode floor", dec_s, n, f"{os.cpu_count()} threads"))
    rows.append(("model floor", model_floor(args.model, images), len(images), "batch 64, warm"))
    local_s, local_first, done = run_index(photos, args.model, "local")
    rows.append(("index local", local_s, done, f"first write after {local_first:.1f} s"))

    import ray

    from photoseek.ray_setup import init_ray

    t0 = time.perf_counter()
    if args.gpu is None:
        import torch

        args.gpu = torch.cuda.is_available()
    init_ray()
    ray_start = time.perf_counter() - t0
    try:
        ray_s, ray_first, done = run_index(photos, args.model, "ray", actors=args.actors, gpu=args.gpu)
    finally:
        ray.shutdown()
    rows.append(("index ray", ray_s, done, f"first write after {ray_first:.1f} s; ray.init {ray_start:.1f} s before"))
    rows.append(("naive loop", naive_loop(files, args.model), n, "full decode, 1 image, 1 upsert"))

    print(f"\n{'variant':14s} {'images':>7s} {'seconds':>8s} {'images/s':>9s}  notes")
    rate = {}
    for name, seconds, count, note in rows:
        rate[name] = count / seconds
        print(f"{name:14s} {count:7d} {seconds:8.2f} {rate[name]:9.1f}  {note}")
    print(f"(ray incl. ray.init: {done / (ray_s + ray_start):.1f} images/s)\n")
    floor = min(rate["decode floor"], rate["model floor"])
    local, on_ray, naive = rate["index local"], rate["index ray"], rate["naive loop"]
    verdict(local >= 0.8 * floor, f"local {local:.1f} >= 80 % of min(decode, model floor) {floor:.1f}: "
                                  f"{local / floor:.0%}")
    verdict(on_ray >= 0.7 * local, f"ray {on_ray:.1f} >= 70 % of local {local:.1f}: {on_ray / local:.0%}")
    verdict(local >= 3 * naive, f"local {local:.1f} >= 3x naive {naive:.1f}: {local / naive:.1f}x")
    verdict(on_ray >= 3 * naive, f"ray {on_ray:.1f} >= 3x naive {naive:.1f}: {on_ray / naive:.1f}x")


if __name__ == "__main__":
    main()
