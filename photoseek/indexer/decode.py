"""The decode stage: a file's bytes -> an upright RGB square for the model, or a failure with its `Reason`.

Order of defences, cheapest first: the file size (stat, before reading), the pixel count (from the header,
before any pixel is decoded), then the decode itself, which is timed. Pillow cannot be interrupted safely
from Python, so `max_seconds` is measured after the fact, not pre-emptive: the byte and pixel limits are
what bound the worst case in memory and time; the time limit only keeps pathological files out of the index.

Only photo formats are opened (`PHOTO_FORMATS`): a manifest can name any file, and Pillow's other plugins
include ones that hand the file to external programs (EPS -> Ghostscript). Pillow's warnings are silenced per
call with `warnings.catch_warnings`, which is not thread-safe in Python 3.11: run one decode per thread.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import stat
import time
import warnings
from dataclasses import dataclass
from functools import cache
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError, features

from photoseek.encoders.preprocess import fit_square
from photoseek.indexer.records import DETAIL, IMAGE, OK, PATH, REASON, SHA256, Reason
from photoseek.indexer.sources import sniff

# Columns the decode stage adds beyond those named in records.py.
WIDTH, HEIGHT = "width", "height"  # int64, as displayed (after EXIF rotation), -1 when not ok
FORMAT = "format"  # str, Pillow's format name ("JPEG", "PNG", ...), "" when not ok
BYTES = "bytes"  # int64 file size, -1 when not ok
TAKEN_AT = "taken_at"  # str ISO 8601 from EXIF DateTimeOriginal, "" when unknown
TAKEN_TS = "taken_ts"  # int64 epoch seconds of taken_at, -1 when unknown
CAMERA = "camera"  # str "Make Model", "" when unknown
FRAMES = "frames"  # int64 number of frames (only the first is used), -1 when not ok
MODE = "mode"  # str Pillow mode of the file before conversion, "" when not ok

PHOTO_FORMATS = ("JPEG", "MPO", "PNG", "GIF", "WEBP", "BMP", "TIFF", "AVIF")  # Pillow's names

_EXIF_IFD, _DATETIME_ORIGINAL, _DATETIME_DIGITIZED, _OFFSET_ORIGINAL = 0x8769, 0x9003, 0x9004, 0x9011
_MAKE, _MODEL = 0x010F, 0x0110
_ALPHA_MODES = {"LA", "La", "PA", "RGBA", "RGBa"}
_WIDE_GREY_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}
_TRUNCATED = re.compile(r"truncat|end of (file|stream|data)|premature end|not enough (image )?data", re.I)
_EXIF_DATE = re.compile(r"(\d{4})[:-](\d\d)[:-](\d\d)[ T](\d\d):(\d\d):(\d\d)")
_EXIF_OFFSET = re.compile(r"([+-])(\d\d):(\d\d)")


@dataclass(frozen=True)
class DecodeLimits:
    """Per-file limits; frozen so a shared default cannot be changed under a running stage.

    `max_pixels` defaults to the point where Pillow itself raises DecompressionBombError (2 x its
    MAX_IMAGE_PIXELS): it admits 150 MP medium-format photos and panoramas while capping a PNG/TIFF decode
    at about 0.5 GB of RGB (JPEGs decode at reduced scale and cost far less).
    """

    max_pixels: int = 178_956_970
    max_bytes: int = 200 * 1024 * 1024
    max_seconds: float = 30.0


class DecodeFailure(Exception):
    """A file that could not be decoded; `reason` is the report's code, `detail` the human explanation."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class DecodedPhoto:
    """One decoded file: the model's input plus the metadata the index stores."""

    image: np.ndarray  # uint8 (size, size, 3)
    sha256: str
    width: int  # as displayed, after EXIF rotation
    height: int
    format: str
    bytes: int
    taken_at: str | None  # ISO 8601; with its UTC offset when the camera recorded one
    taken_ts: int | None  # epoch seconds; a time without offset is read as UTC
    camera: str | None
    frames: int
    mode: str  # Pillow mode of the file before conversion


def _read_bytes(path: str, limits: DecodeLimits) -> bytes:
    """The whole file, refused by size before it is read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # O_NONBLOCK: a FIFO must not hang the worker
    except FileNotFoundError:
        raise DecodeFailure(Reason.UNREADABLE, "no such file") from None
    except OSError as e:
        reason = Reason.LINK_LOOP if e.errno == errno.ELOOP else Reason.UNREADABLE
        raise DecodeFailure(reason, f"cannot open: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)  # the same file we read, not whatever the path names a moment later
        if not stat.S_ISREG(st.st_mode):
            raise DecodeFailure(Reason.UNREADABLE, "not a regular file")
        if st.st_size > limits.max_bytes:
            raise DecodeFailure(Reason.FILE_TOO_LARGE, f"{st.st_size} bytes > max_bytes {limits.max_bytes}")
        with os.fdopen(os.dup(fd), "rb") as f:
            # ask for the stat size (+1 to notice growth): read(n) allocates n bytes up front
            data = f.read(min(st.st_size, limits.max_bytes) + 1)
    except OSError as e:
        raise DecodeFailure(Reason.UNREADABLE, f"cannot read: {e.strerror or e}") from None
    finally:
        os.close(fd)
    if not data:
        raise DecodeFailure(Reason.EMPTY_FILE, "0 bytes")
    if len(data) > limits.max_bytes:  # it grew between fstat and read
        raise DecodeFailure(Reason.FILE_TOO_LARGE, f"more than max_bytes {limits.max_bytes}")
    return data


def _align_pillow_guard(max_pixels: int) -> None:
    # Pillow raises inside Image.open above 2 x MAX_IMAGE_PIXELS, before we see the size. When a user raises
    # our limit past that, lift Pillow's process-wide guard to match: raised, never lowered nor disabled.
    if Image.MAX_IMAGE_PIXELS is not None and max_pixels > 2 * Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = (max_pixels + 1) // 2


@cache
def _formats() -> tuple[str, ...]:
    Image.init()
    return tuple(f for f in PHOTO_FORMATS if f in Image.OPEN)  # Image.open raises KeyError on unknown names


def _open(data: bytes, limits: DecodeLimits) -> Image.Image:
    """Identify the image (header only) and refuse it by pixel count before any pixel is decoded."""
    _align_pillow_guard(limits.max_pixels)
    try:
        im = Image.open(io.BytesIO(data), formats=_formats())
    except Image.DecompressionBombError as e:
        raise DecodeFailure(Reason.TOO_MANY_PIXELS, f"Pillow: {e}") from None
    w, h = im.size
    if w * h > limits.max_pixels:
        raise DecodeFailure(Reason.TOO_MANY_PIXELS, f"{w}x{h} = {w * h} pixels > max_pixels {limits.max_pixels}")
    return im


def _wide_grey_to_uint8(a: np.ndarray, mode: str) -> np.ndarray:
    """16/32-bit integer or float grey -> uint8 by scaling its range, never by clipping."""
    if mode.startswith("I;16"):
        return (a >> 8).astype(np.uint8)  # 0..65535 -> 0..255, the top byte
    a = a.astype(np.float32)
    finite = np.isfinite(a)
    lo, hi = (float(a[finite].min()), float(a[finite].max())) if finite.any() else (0.0, 0.0)
    if mode == "F" and lo >= 0.0 and hi <= 1.0:
        scale, lo = 255.0, 0.0  # the usual float convention
    elif lo >= 0.0 and hi <= 255.0:
        scale, lo = 1.0, 0.0  # already 8-bit values in a wide container
    elif mode == "I" and lo >= 0.0 and hi <= 65535.0:
        scale, lo = 255.0 / 65535.0, 0.0  # 16-bit data that Pillow widened to "I"
    else:
        scale = 255.0 / (hi - lo) if hi > lo else 0.0  # arbitrary range: stretch it
    out = np.where(finite, (a - lo) * scale, 0.0)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB: wide greys scaled, transparency composited on white, CMYK/P/1/L converted."""
    mode = im.mode
    if mode in _WIDE_GREY_MODES:
        return Image.fromarray(_wide_grey_to_uint8(np.asarray(im), mode)).convert("RGB")
    if mode in _ALPHA_MODES or "transparency" in im.info:
        rgba = im.convert("RGBA")
        out = Image.new("RGB", im.size, (255, 255, 255))  # white, as a viewer shows a transparent photo
        out.paste(rgba, mask=rgba.getchannel("A"))
        return out
    if mode == "RGB":
        return im
    try:
        return im.convert("RGB")  # CMYK (Pillow already undid Adobe's inversion), P, 1, L, YCbCr
    except ValueError as e:
        raise DecodeFailure(Reason.UNSUPPORTED_FORMAT, f"cannot convert mode {mode} to RGB: {e}") from None


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value.replace("\x00", "").strip() if isinstance(value, str) else ""


def _taken(exif: Image.Exif) -> tuple[str | None, int | None]:
    """EXIF DateTimeOriginal (else DateTimeDigitized) -> (ISO 8601, epoch seconds)."""
    sub = exif.get_ifd(_EXIF_IFD)
    m = _EXIF_DATE.match(_text(sub.get(_DATETIME_ORIGINAL)) or _text(sub.get(_DATETIME_DIGITIZED)))
    if m is None:
        return None, None
    try:
        dt = datetime(*(int(g) for g in m.groups()))  # "0000:00:00 00:00:00" and friends raise here
    except ValueError:
        return None, None
    off = _EXIF_OFFSET.fullmatch(_text(sub.get(_OFFSET_ORIGINAL)))
    if off:
        sign = -1 if off.group(1) == "-" else 1
        dt = dt.replace(tzinfo=timezone(sign * timedelta(hours=int(off.group(2)), minutes=int(off.group(3)))))
    # without an offset the camera's local time is unknown: the epoch reads it as UTC, the ISO string stays naive
    ts = int((dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp())
    return dt.isoformat(), ts


def _camera(exif: Image.Exif) -> str | None:
    make, model = _text(exif.get(_MAKE)), _text(exif.get(_MODEL))
    if make and model.lower().startswith(make.lower()):
        return model  # "Canon" + "Canon EOS R5" -> "Canon EOS R5"
    return " ".join(p for p in (make, model) if p) or None


def _exif_metadata(im: Image.Image) -> tuple[str | None, int | None, str | None]:
    try:
        exif = im.getexif()
        return (*_taken(exif), _camera(exif))
    except Exception:  # broken EXIF is common and must not cost the photo
        return None, None, None


def _frame_count(im: Image.Image) -> int:
    try:
        return int(getattr(im, "n_frames", 1))
    except Exception:  # a damaged later frame does not matter: only the first is used
        return 1


def _decode(data: bytes, size: int, limits: DecodeLimits) -> DecodedPhoto:
    im = _open(data, limits)
    fmt, mode, (w, h) = im.format or "", im.mode, im.size
    if fmt in ("JPEG", "MPO"):
        im.draft("RGB", (size, size))  # decode at 1/2, 1/4 or 1/8 scale when the target is small
        fmt = "JPEG"  # MPO is a camera JPEG with extra images appended
    im.load()  # the first frame only: Image.open leaves animations on frame 0
    taken_at, taken_ts, camera = _exif_metadata(im)
    try:
        upright = ImageOps.exif_transpose(im)
    except Exception:  # unreadable orientation: keep the pixels as stored
        upright = im
    if upright.size != im.size and upright.size == im.size[::-1]:
        w, h = h, w
    square = fit_square(to_rgb(upright), size)
    return DecodedPhoto(square, "", w, h, fmt, len(data), taken_at, taken_ts, camera, _frame_count(im), mode)


def _looks_truncated(fmt: str | None, data: bytes) -> bool:
    """Whether the bytes end before the container says they should (used only to explain a failure)."""
    if fmt == "JPEG":
        sos, eoi = data.rfind(b"\xff\xda"), data.rfind(b"\xff\xd9")
        return eoi < sos or (sos == -1 and eoi == -1)
    if fmt == "PNG":
        return b"IEND" not in data
    if fmt == "GIF":
        return not data.endswith(b";")
    if fmt == "WEBP":
        return len(data) < int.from_bytes(data[4:8], "little") + 8
    if fmt == "BMP":
        return len(data) < int.from_bytes(data[2:6], "little")
    return False


def _classify(exc: Exception, data: bytes) -> DecodeFailure:
    """Map whatever a decoder raised to a `Reason`."""
    if isinstance(exc, DecodeFailure):
        return exc
    if isinstance(exc, Image.DecompressionBombError):
        return DecodeFailure(Reason.TOO_MANY_PIXELS, f"Pillow: {exc}")
    fmt = sniff(data[:32])
    if isinstance(exc, UnidentifiedImageError):
        if fmt is None:
            return DecodeFailure(Reason.NOT_AN_IMAGE, f"no image signature; starts with {data[:12]!r}")
        if fmt == "HEIF" or (fmt == "AVIF" and not features.check("avif")):
            return DecodeFailure(Reason.UNSUPPORTED_FORMAT, f"{fmt} is not supported by this Pillow")
        if _looks_truncated(fmt, data):
            return DecodeFailure(Reason.TRUNCATED, f"{fmt} ends inside its header ({len(data)} bytes)")
        return DecodeFailure(Reason.CORRUPT, f"{fmt} signature but its header cannot be read")
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, EOFError) or _TRUNCATED.search(str(exc)):
        return DecodeFailure(Reason.TRUNCATED, text)
    if _looks_truncated(fmt, data):  # decoders often report a short file as a generic error
        return DecodeFailure(Reason.TRUNCATED, f"{text} (the {fmt} data ends early: {len(data)} bytes)")
    return DecodeFailure(Reason.CORRUPT, text)


def decode_file(path: str, size: int, limits: DecodeLimits = DecodeLimits()) -> DecodedPhoto:
    """Read `path` once, hash it, decode it to an upright uint8 (size, size, 3) square; raises DecodeFailure.

    The time limit is checked after the decode (see the module docstring); the byte and pixel limits are
    enforced before the file is read and before any pixel is decoded respectively.
    """
    return decode_bytes(_read_bytes(path, limits), size, limits)


def decode_bytes(data: bytes, size: int, limits: DecodeLimits = DecodeLimits()) -> DecodedPhoto:
    """`decode_file` for bytes already in memory (an upload); the byte limit applies to `data` too."""
    if len(data) > limits.max_bytes:
        raise DecodeFailure(Reason.FILE_TOO_LARGE, f"{len(data)} bytes > max_bytes {limits.max_bytes}")
    if not data:
        raise DecodeFailure(Reason.EMPTY_FILE, "0 bytes")
    digest = hashlib.sha256(data).hexdigest()
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():  # Pillow's per-file warnings (bomb, odd EXIF) are noise at this scale
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.filterwarnings("ignore", module=r"PIL\.")
            photo = _decode(data, size, limits)
    except Exception as e:  # decoders raise anything on hostile input: OSError, SyntaxError, struct.error...
        raise _classify(e, data) from e
    elapsed = time.perf_counter() - start
    if elapsed > limits.max_seconds:
        raise DecodeFailure(Reason.DECODE_TIMEOUT, f"decode took {elapsed:.2f} s > max_seconds {limits.max_seconds}")
    photo.sha256 = digest
    return photo


class Decoder:
    """The decode stage as a callable over dict batches (a plain loop or Ray Data's map_batches).

    Adds ok, reason, detail, image (B, S, S, 3) uint8, sha256, width, height, format, bytes, taken_at,
    taken_ts, camera, frames and mode; passes every other column through. Never raises for a bad file:
    a failed row keeps its place with ok=False, a zero image, -1 in numeric columns and "" in text ones.
    Rows that arrive with ok=False (a re-run) keep their reason and are not decoded.
    """

    def __init__(self, size: int, limits: DecodeLimits = DecodeLimits()) -> None:
        self.size = size
        self.limits = limits

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        paths = [str(p) for p in batch[PATH]]
        n, s = len(paths), self.size
        prior_ok = np.asarray(batch[OK], dtype=bool) if OK in batch else np.ones(n, dtype=bool)
        out = dict(batch)
        out[OK] = np.zeros(n, dtype=bool)
        out[REASON] = list(batch[REASON]) if REASON in batch else [""] * n
        out[DETAIL] = list(batch[DETAIL]) if DETAIL in batch else [""] * n
        out[IMAGE] = np.zeros((n, s, s, 3), dtype=np.uint8)
        for col in (SHA256, FORMAT, TAKEN_AT, CAMERA, MODE):
            out[col] = [""] * n
        for col in (WIDTH, HEIGHT, BYTES, TAKEN_TS, FRAMES):
            out[col] = np.full(n, -1, dtype=np.int64)
        for i, path in enumerate(paths):
            if prior_ok[i]:
                self._row(out, i, path)
        return out

    def _row(self, out: dict[str, Any], i: int, path: str) -> None:
        try:
            p = decode_file(path, self.size, self.limits)
        except DecodeFailure as e:
            out[REASON][i], out[DETAIL][i] = e.reason.value, e.detail
            return
        except Exception as e:  # a bug in this stage must cost one row, not the batch
            out[REASON][i], out[DETAIL][i] = Reason.CORRUPT.value, f"unexpected {type(e).__name__}: {e}"
            return
        out[OK][i], out[REASON][i], out[DETAIL][i] = True, "", ""
        out[IMAGE][i] = p.image
        out[SHA256][i], out[FORMAT][i], out[MODE][i] = p.sha256, p.format, p.mode
        out[TAKEN_AT][i], out[CAMERA][i] = p.taken_at or "", p.camera or ""
        out[WIDTH][i], out[HEIGHT][i], out[BYTES][i], out[FRAMES][i] = p.width, p.height, p.bytes, p.frames
        out[TAKEN_TS][i] = -1 if p.taken_ts is None else p.taken_ts


def thumbnail_file(path: str, side: int, limits: DecodeLimits = DecodeLimits(), quality: int = 85) -> bytes:
    """An upright JPEG of the photo at `path` fitting in side x side (aspect kept), under the same limits as
    indexing; raises DecodeFailure."""
    data = _read_bytes(path, limits)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.filterwarnings("ignore", module=r"PIL\.")
            im = _open(data, limits)
            if im.format in ("JPEG", "MPO"):
                im.draft("RGB", (side, side))
            im.load()
            try:
                im = ImageOps.exif_transpose(im)
            except Exception:
                pass
            im = to_rgb(im)
            im.thumbnail((side, side))
            out = io.BytesIO()
            im.save(out, "JPEG", quality=quality)
    except Exception as e:
        raise _classify(e, data) from e
    return out.getvalue()
