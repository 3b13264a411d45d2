"""A folder of bad and odd files with the outcome the find + decode stages must give each, for tests and benchmarks.

`make_corpus(root)` returns {path relative to root: outcome}; an outcome is "ok", a `Reason` value, or
"ignored" (passed over silently: non-images, hidden entries, a folder link already walked). It also writes
`<root>-outside/secret.jpg` beside root, the target of the link that leads outside it.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, features

from photoseek.indexer.records import Reason

OK, IGNORED = "ok", "ignored"
RED, GREEN, GREY = (255, 0, 0), (0, 255, 0), (128, 128, 128)
ORIENTATION_SIZE = (48, 32)  # (width, height) of the upright orientation test image
EXIF_TAKEN_AT = "2021-07-04T12:34:56+02:00"
EXIF_CAMERA = "Canon EOS R5"
_R = Reason
# Image.transpose methods that undo each EXIF orientation are their own inverses except 6 and 8, which swap.
_STORE_AS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def _photo(size: int = 256) -> Image.Image:
    """Camera-like content: scikit-image's astronaut when installed, else seeded smooth noise."""
    try:
        from skimage import data

        return Image.fromarray(data.astronaut()).resize((size, size))
    except ImportError:
        rng = np.random.default_rng(0)
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        return Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)


def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_bomb(w: int, h: int) -> bytes:
    """A 100-byte PNG whose header declares w x h RGB pixels."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _patch_jpeg_size(jpg: bytes, w: int, h: int) -> bytes:
    sof = jpg.find(b"\xff\xc0")  # baseline SOF: length(2) precision(1) height(2) width(2)
    return jpg[: sof + 5] + struct.pack(">HH", h, w) + jpg[sof + 9 :]


def _gif_bomb() -> bytes:
    """A 1x1 GIF whose logical screen claims 65535 x 65535."""
    gif = _encode(Image.new("P", (1, 1)), "GIF")
    return gif[:6] + struct.pack("<HH", 65535, 65535) + gif[10:]


def _tiff_rgb16(px: np.ndarray) -> bytes:
    """An uncompressed 16-bit-per-channel RGB TIFF (Pillow cannot write one)."""
    h, w, _ = px.shape
    n, ifd = 10, 8
    bps = ifd + 2 + 12 * n + 4
    data = bps + 6
    raw = px.astype("<u2").tobytes()

    def short(tag: int, v: int) -> bytes:
        return struct.pack("<HHIHH", tag, 3, 1, v, 0)

    def long(tag: int, v: int) -> bytes:
        return struct.pack("<HHII", tag, 4, 1, v)

    entries = [short(256, w), short(257, h), struct.pack("<HHII", 258, 3, 3, bps), short(259, 1), short(262, 2)]
    entries += [long(273, data), short(277, 3), short(278, h), long(279, len(raw)), short(284, 1)]
    head = b"II*\x00" + struct.pack("<IH", ifd, n) + b"".join(entries) + b"\x00" * 4
    return head + struct.pack("<HHH", 16, 16, 16) + raw


def orientation_image() -> Image.Image:
    """The upright picture every orientation file must decode to: red top-left, green top-right on grey."""
    im = Image.new("RGB", ORIENTATION_SIZE, GREY)
    w, _ = ORIENTATION_SIZE
    im.paste(RED, (0, 0, 12, 12))
    im.paste(GREEN, (w - 12, 0, w, 12))
    return im


def _orientations() -> dict[str, bytes]:
    out = {}
    for o in range(1, 9):
        stored = orientation_image() if o == 1 else orientation_image().transpose(_STORE_AS[o])
        exif = Image.Exif()
        exif[0x0112] = o
        out[f"orientation/{o}.jpg"] = _encode(stored, "JPEG", quality=95, exif=exif.tobytes())
    return out


def _exif_camera() -> bytes:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Canon", "Canon EOS R5"
    sub = exif.get_ifd(0x8769)
    sub[0x9003], sub[0x9011] = "2021:07:04 12:34:56", "+02:00"
    return _encode(_photo(64), "JPEG", exif=exif.tobytes())


def _frames(fmt: str, **kw) -> bytes:
    frames = [Image.new("RGB", (16, 16), c) for c in (RED, GREEN, (0, 0, 255))]
    return _encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, **kw)


def _modes() -> dict[str, tuple[bytes, str]]:
    grad16 = np.tile(np.linspace(0, 65535, 64, dtype=np.uint16), (16, 1))
    pal = Image.new("P", (16, 16), 0)
    pal.putpalette([0, 0, 0, *RED] + [0, 0, 0] * 254)
    pal.paste(1, (0, 0, 8, 16))  # left half red, right half transparent index 0
    rgba = Image.new("RGBA", (16, 16), (0, 0, 255, 0))
    rgba.paste((0, 0, 255, 255), (0, 0, 8, 16))
    rgb16 = np.zeros((8, 8, 3), np.uint16)
    rgb16[..., 0] = 65535
    ramp01 = np.linspace(0, 1, 256, dtype=np.float32).reshape(16, 16)
    return {
        "cmyk.jpg": (_encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG"), OK),
        "grey16.png": (_encode(Image.fromarray(grad16), "PNG"), OK),
        "grey16_be.tif": (_encode(Image.frombytes("I;16B", (64, 16), grad16.astype(">u2").tobytes()), "TIFF"), OK),
        "rgb16.tif": (_tiff_rgb16(rgb16), OK),
        "float32.tif": (_encode(Image.fromarray(ramp01), "TIFF"), OK),
        "int32.tif": (_encode(Image.fromarray(grad16.astype(np.int32) * 4), "TIFF"), OK),  # beyond 16 bits
        "palette_transparent.png": (_encode(pal, "PNG", transparency=0), OK),
        "rgba.png": (_encode(rgba, "PNG"), OK),
        "la.png": (_encode(Image.new("LA", (16, 16), (0, 0)), "PNG"), OK),
        "pa.tif": (_encode(Image.new("PA", (16, 16)), "TIFF"), OK),
        "bilevel.png": (_encode(Image.new("1", (16, 16), 1), "PNG"), OK),
        "animated.gif": (_frames("GIF"), OK),
        "animated.png": (_frames("PNG"), OK),
        "animated.webp": (_frames("WEBP", lossless=True), OK),
    }


def _valid_and_broken() -> dict[str, tuple[bytes, str]]:
    photo = _photo()
    jpg, png = _encode(photo, "JPEG", quality=85), _encode(photo, "PNG")
    gif, webp = _encode(photo.convert("P"), "GIF"), _encode(photo, "WEBP")
    flipped = bytearray(png)
    flipped[len(png) // 2] ^= 0xFF
    bad_ctype = bytearray(png[:33])  # IHDR with colour type 9, CRC recomputed: a well-formed, impossible header
    bad_ctype[25] = 9
    bad_ctype[29:33] = struct.pack(">I", zlib.crc32(bytes(bad_ctype[12:29])))
    dht = jpg.find(b"\xff\xc4")
    entries: dict[str, tuple[bytes, str]] = {
        "ok.jpg": (jpg, OK),
        "ok.png": (png, OK),
        "ok.gif": (gif, OK),
        "ok.webp": (webp, OK),
        "ok.bmp": (_encode(photo, "BMP"), OK),
        "ok.tif": (_encode(photo, "TIFF"), OK),
        "UPPER.JPEG": (jpg, OK),
        "jpeg_named.png": (_encode(_photo(64), "JPEG"), OK),
        "png_no_extension": (_encode(_photo(64), "PNG"), OK),
        "duplicate_of_ok.jpg": (jpg, OK),
        "a/b/c/deep.jpg": (_encode(_photo(32), "JPEG"), OK),
        os.fsdecode(b"caf\xe9.jpg"): (_encode(_photo(32), "JPEG"), OK),  # a Latin-1 name, not valid UTF-8
        "tiny_1x1.png": (_encode(Image.new("RGB", (1, 1), RED), "PNG"), OK),
        "wide_4000x10.png": (_encode(Image.new("RGB", (4000, 10), RED), "PNG"), OK),
        "tall_10x4000.jpg": (_encode(Image.new("RGB", (10, 4000), GREEN), "JPEG"), OK),
        "exif_camera.jpg": (_exif_camera(), OK),
        "truncated_half.jpg": (jpg[: len(jpg) // 2], _R.TRUNCATED),
        "truncated_half.png": (png[: len(png) // 2], _R.TRUNCATED),
        "truncated_half.gif": (gif[: len(gif) // 2], _R.TRUNCATED),
        "truncated_half.webp": (webp[: len(webp) // 2], _R.TRUNCATED),
        "header_only.jpg": (jpg[:200], _R.TRUNCATED),
        "empty.jpg": (b"", _R.EMPTY_FILE),
        "text.jpg": (b"just some text, not a photo\n", _R.NOT_AN_IMAGE),
        "html.png": (b"<!DOCTYPE html><html><body>404 Not Found</body></html>\n", _R.NOT_AN_IMAGE),
        "random.jpg": (np.random.default_rng(1).bytes(4096), _R.NOT_AN_IMAGE),
        "corrupt_data.png": (bytes(flipped), _R.CORRUPT),
        "bad_header.png": (bytes(bad_ctype) + png[33:], _R.CORRUPT),
        "bad_huffman.jpg": (jpg[: dht + 4] + b"\xff" * 36 + jpg[dht + 40 :], _R.CORRUPT),
        "fake.heic": (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(200), _R.UNSUPPORTED_FORMAT),
        "bomb.png": (_png_bomb(50_000, 50_000), _R.TOO_MANY_PIXELS),
        "bomb_sof.jpg": (_patch_jpeg_size(_encode(_photo(16), "JPEG"), 65_000, 65_000), _R.TOO_MANY_PIXELS),
        "bomb.gif": (_gif_bomb(), _R.TOO_MANY_PIXELS),
        "README.txt": (b"holiday photos 2021\n", IGNORED),
        "empty_notes": (b"", IGNORED),
        ".DS_Store": (b"\x00\x00\x00\x01Bud1", IGNORED),
        "._IMG_0001.JPG": (b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X", IGNORED),  # AppleDouble fork
        ".hidden/photo.jpg": (jpg, IGNORED),
    }
    if features.check("avif"):
        entries["ok.avif"] = (_encode(_photo(64), "AVIF"), OK)
    return entries


def _link(root: Path, rel: str, target: str | Path) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, root / rel)


def _special(root: Path, jpg: bytes) -> dict[str, str]:
    """Links, a FIFO and permission-denied entries (which only fail when not running as root)."""
    outside = root.parent / f"{root.name}-outside"
    outside.mkdir(exist_ok=True)
    (outside / "secret.jpg").write_bytes(jpg)
    _link(root, "link_in_root.jpg", "ok.jpg")
    _link(root, "link_outside.jpg", outside / "secret.jpg")
    _link(root, "broken_link.jpg", "no_such_file.jpg")
    _link(root, "self_loop.jpg", "self_loop.jpg")
    _link(root, "a/loop", "..")
    _link(root, "z_link_to_a", "a")  # "a" is walked first: the link is not walked again
    os.mkfifo(root / "pipe.jpg")
    out: dict[str, str] = {
        "link_in_root.jpg": OK,
        "link_outside.jpg": _R.LINK_OUTSIDE_ROOT,
        "broken_link.jpg": _R.UNREADABLE,
        "self_loop.jpg": _R.LINK_LOOP,
        "a/loop": _R.LINK_LOOP,
        "z_link_to_a": IGNORED,
        "pipe.jpg": _R.UNREADABLE,
    }
    (root / "unreadable.jpg").write_bytes(jpg)
    (root / "unreadable.jpg").chmod(0)
    out["unreadable.jpg"] = OK if _can(lambda: open(root / "unreadable.jpg", "rb").close()) else _R.UNREADABLE
    (root / "locked_dir").mkdir()
    (root / "locked_dir" / "inside.jpg").write_bytes(jpg)
    (root / "locked_dir").chmod(0)
    if _can(lambda: os.listdir(root / "locked_dir")):  # root ignores permission bits: nothing to refuse
        out["locked_dir/inside.jpg"] = OK
    else:
        out["locked_dir"] = _R.UNREADABLE
    return out


def _can(action: Callable[[], object]) -> bool:
    try:
        action()
        return True
    except PermissionError:
        return False


def make_corpus(root: Path) -> dict[str, str]:
    """Write the corpus under `root` (created if needed) -> {relative path: expected outcome}."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    entries = {**_valid_and_broken(), **{k: (v, OK) for k, v in _orientations().items()}, **_modes()}
    expected: dict[str, str] = {}
    for rel, (data, outcome) in entries.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        expected[rel] = str(getattr(outcome, "value", outcome))
    special = _special(root, entries["ok.jpg"][0])
    expected.update({k: str(getattr(v, "value", v)) for k, v in special.items()})
    return expected
