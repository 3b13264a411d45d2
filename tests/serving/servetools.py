"""Helpers for the search-service tests (a module, not conftest, so that test files can import them).

The photo tree: the 160 synthetic scenes split over two albums, plus photos with EXIF dates (2019, 2021,
2023) and a camera, a PNG, and one duplicate file, so that every filter has something to select.
"""

from __future__ import annotations

import io
import shutil
import socket
from pathlib import Path

API_KEY = "test-key-0123456789abcdef"  # 24 characters: over the 16-character minimum
MAX_UPLOAD = 256 * 1024


def dated_jpeg(year: int, camera: str | None, seed: int) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = (rng.random((40, 60, 3)) * 255).astype("uint8")
    exif = Image.Exif()
    if camera:
        exif[0x010F], exif[0x0110] = camera.split(" ", 1)[0], camera
    exif.get_ifd(0x8769)[0x9003] = f"{year}:06:01 10:00:00"
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


def make_photo_tree(synth_dir: Path, root: Path) -> Path:
    for i, img in enumerate(sorted((synth_dir / "images").iterdir())):
        dest = root / ("album-a" if i % 2 else "album-b") / img.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(img, dest)
    dated = root / "dated"
    dated.mkdir()
    for year, camera in ((2019, "Canon EOS R5"), (2021, "Canon EOS R5"), (2023, "Nikon Z 6")):
        (dated / f"{year}.jpg").write_bytes(dated_jpeg(year, camera, year))
    from PIL import Image

    Image.open(next((root / "album-a").iterdir())).save(dated / "scene.png")
    shutil.copyfile(dated / "2019.jpg", root / "album-a" / "copy-of-2019.jpg")
    return root


def index_tree(model_dir: Path, tree: Path, store: Path):
    from photoseek.indexer.pipeline import IndexRequest, index

    report = index(IndexRequest(path=str(tree), model=str(model_dir), store=str(store), progress=False))
    assert report.failed == [] and report.indexed > 160
    return report


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def outside_address() -> str | None:
    """This machine's address on its network (not loopback), or None when it has none."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))  # UDP: picks the outgoing interface, sends nothing
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address
