"""The find stage: which files to index, from a folder walk or a manifest, and which to report as skipped.

A folder walk decides by content, not by name: every regular file's first bytes are sniffed for an image
signature. A file that claims an image extension but is not one is reported; anything else (README.txt,
.DS_Store) is ignored and only counted.

Symbolic links: a link whose target lies inside the root (by real path) is followed and indexed under the
link's own path, so an album of links is indexed; its content duplicates the target and dedups later by
sha256. A link leading outside the root is reported and never read, a directory link back to a folder on the
current path is a loop, and a directory already walked through a link is not walked again (so links cannot
multiply the work); real folders are always walked.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from photoseek.indexer.records import META, PATH, REL, Reason

SIZE = "size"  # file size in bytes, int64
MTIME_NS = "mtime_ns"  # modification time, int64 nanoseconds

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".avif"}
)
MANIFEST_SUFFIXES = (".csv", ".jsonl")
SNIFF_BYTES = 32
_BMP_HEADER_SIZES = {12, 16, 40, 52, 56, 64, 108, 124}  # the DIB header sizes in use; "BM" alone is too weak
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"}


@dataclass(frozen=True)
class FoundFile:
    """A file to decode: `path` is what is opened, `rel` what the user knows it by."""

    path: str
    rel: str
    size: int
    mtime_ns: int
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Skipped:
    """A file or folder that will not be decoded, with a `Reason` value and a human detail."""

    path: str
    rel: str
    reason: str
    detail: str


def sniff(head: bytes) -> str | None:
    """The image container a file's first bytes announce (Pillow's format names), or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:2] == b"BM" and len(head) >= 18 and int.from_bytes(head[14:18], "little") in _BMP_HEADER_SIZES:
        return "BMP"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):  # classic and BigTIFF
        return "TIFF"
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "AVIF" if head[8:12] in (b"avif", b"avis") else "HEIF"
    return None


def _inside(path: str, root_real: str) -> bool:
    return os.path.commonpath([root_real, path]) == root_real


def _read_head(path: str) -> bytes:
    # O_NONBLOCK so a FIFO that slipped past the stat check cannot hang the walk
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        return os.read(fd, SNIFF_BYTES)
    finally:
        os.close(fd)


class FolderWalk:
    """Iterator over a folder tree's candidates; `ignored` counts silently skipped files, `hidden` hidden entries."""

    def __init__(self, root: str | Path, include_hidden: bool = False) -> None:
        if not os.path.isdir(root):
            raise ValueError(f"not a folder: {root}")
        self.root = os.path.abspath(root)
        self.root_real = os.path.realpath(root)
        self.include_hidden = include_hidden
        self.ignored = 0  # regular files that are neither images nor named like one
        self.hidden = 0  # hidden files and folders passed over (include_hidden=False)
        self.repeated_dirs = 0  # folders reached again through a link and not re-walked
        self._visited: set[tuple[int, int]] = set()
        self._items = self._walk()

    def __iter__(self) -> FolderWalk:
        return self

    def __next__(self) -> FoundFile | Skipped:
        return next(self._items)

    def _list(self, abs_dir: str) -> list[str]:
        with os.scandir(abs_dir) as it:
            return sorted(e.name for e in it)

    def _walk(self) -> Iterator[FoundFile | Skipped]:
        root_st = os.stat(self.root)
        key = (root_st.st_dev, root_st.st_ino)
        self._visited.add(key)
        try:
            names = self._list(self.root)
        except OSError as e:
            yield Skipped(self.root, ".", Reason.UNREADABLE.value, f"cannot list folder: {e.strerror or e}")
            return
        # an explicit stack of (remaining names, folder key, rel prefix) keeps deep trees off the recursion limit
        stack: list[tuple[Iterator[str], tuple[int, int], str]] = [(iter(names), key, "")]
        while stack:
            names_it, _, prefix = stack[-1]
            name = next(names_it, None)
            if name is None:
                stack.pop()
                continue
            rel = prefix + name
            out = self._entry(os.path.join(self.root, rel), rel, {k for _, k, _ in stack})
            if isinstance(out, tuple):  # a folder to descend into
                stack.append(out)
            elif out is not None:
                yield out

    def _entry(
        self, path: str, rel: str, ancestors: set[tuple[int, int]]
    ) -> FoundFile | Skipped | tuple[Iterator[str], tuple[int, int], str] | None:
        """Classify one directory entry: a result to yield, a folder frame to push, or None (ignored)."""
        if not self.include_hidden and os.path.basename(rel).startswith("."):
            self.hidden += 1
            return None
        try:
            lst = os.lstat(path)
        except OSError as e:
            return Skipped(path, rel, Reason.UNREADABLE.value, f"vanished or unreadable: {e.strerror or e}")
        is_link = stat.S_ISLNK(lst.st_mode)
        if is_link:
            target = os.path.realpath(path)
            if not _inside(target, self.root_real):
                return Skipped(path, rel, Reason.LINK_OUTSIDE_ROOT.value, f"link leads outside the root to {target}")
            try:
                st = os.stat(path)
            except FileNotFoundError:
                return Skipped(path, rel, Reason.UNREADABLE.value, f"broken link to {os.readlink(path)}")
            except OSError as e:
                if e.errno == errno.ELOOP:  # the link resolves to itself
                    return Skipped(path, rel, Reason.LINK_LOOP.value, "link resolves to itself")
                return Skipped(path, rel, Reason.UNREADABLE.value, f"cannot follow link: {e.strerror or e}")
        else:
            st = lst
        if stat.S_ISDIR(st.st_mode):
            return self._folder(path, rel, st, is_link, ancestors)
        if stat.S_ISREG(st.st_mode):
            return self._file(path, rel, st)
        if Path(rel).suffix.lower() in IMAGE_EXTENSIONS:
            return Skipped(path, rel, Reason.UNREADABLE.value, "not a regular file")
        self.ignored += 1
        return None

    def _folder(
        self, path: str, rel: str, st: os.stat_result, is_link: bool, ancestors: set[tuple[int, int]]
    ) -> Skipped | tuple[Iterator[str], tuple[int, int], str] | None:
        key = (st.st_dev, st.st_ino)
        if key in ancestors:  # a link (or bind mount) back up the current path
            return Skipped(path, rel, Reason.LINK_LOOP.value, "folder leads back to one of its parents")
        if is_link and key in self._visited:
            self.repeated_dirs += 1
            return None
        self._visited.add(key)
        try:
            names = self._list(path)
        except OSError as e:
            return Skipped(path, rel, Reason.UNREADABLE.value, f"cannot list folder: {e.strerror or e}")
        return iter(names), key, rel + "/"

    def _file(self, path: str, rel: str, st: os.stat_result) -> FoundFile | Skipped | None:
        named_image = Path(rel).suffix.lower() in IMAGE_EXTENSIONS
        if st.st_size == 0:
            if named_image:
                return Skipped(path, rel, Reason.EMPTY_FILE.value, "0 bytes")
            self.ignored += 1
            return None
        try:
            head = _read_head(path)
        except OSError as e:
            # reported whatever the name: a file we cannot read could be a photo
            return Skipped(path, rel, Reason.UNREADABLE.value, f"cannot read: {e.strerror or e}")
        if sniff(head) is not None:
            return FoundFile(path, rel, st.st_size, st.st_mtime_ns, {})
        if named_image:
            return Skipped(path, rel, Reason.NOT_AN_IMAGE.value, f"no image signature; starts with {head[:12]!r}")
        self.ignored += 1
        return None


def walk_folder(root: str | Path, include_hidden: bool = False) -> FolderWalk:
    """Walk `root` recursively in sorted order -> FoundFile | Skipped; hidden entries are skipped unless asked.

    Hidden files are passed over as well as hidden folders: macOS's "._IMG_0001.JPG" resource-fork files carry
    image names but no image, and would otherwise be reported by the thousand.
    """
    return FolderWalk(root, include_hidden)


def _manifest_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) pairs from a .csv or .jsonl manifest; raises ValueError at `file:line` on bad structure."""
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: spreadsheets write a BOM
            reader = csv.DictReader(f)
            if reader.fieldnames is None or "path" not in reader.fieldnames:
                raise ValueError(f"{path}:1: the header has no 'path' column")
            for row in reader:
                if None in row:
                    raise ValueError(f"{path}:{reader.line_num}: more cells than the header has columns")
                yield reader.line_num, row
        return
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{n}: expected a JSON object")
            yield n, row


def _manifest_item(base: str, base_real: str, written: str, meta: dict[str, Any]) -> FoundFile | Skipped:
    path = os.path.abspath(written if os.path.isabs(written) else os.path.join(base, written))
    if not os.path.isabs(written) and not _inside(os.path.realpath(path), base_real):
        # closest existing code: the manifest's folder plays the root (".." or a link leading out)
        return Skipped(path, written, Reason.LINK_OUTSIDE_ROOT.value, "outside the manifest's folder")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return Skipped(path, written, Reason.UNREADABLE.value, "no such file")
    except OSError as e:
        return Skipped(path, written, Reason.UNREADABLE.value, f"cannot stat: {e.strerror or e}")
    if not stat.S_ISREG(st.st_mode):
        return Skipped(path, written, Reason.UNREADABLE.value, "not a regular file")
    if st.st_size == 0:
        return Skipped(path, written, Reason.EMPTY_FILE.value, "0 bytes")
    return FoundFile(path, written, st.st_size, st.st_mtime_ns, meta)


def read_manifest(path: str | Path) -> Iterator[FoundFile | Skipped]:
    """Rows of a .csv (header with a `path` column) or .jsonl manifest; other columns/keys become `meta`.

    Relative paths resolve against the manifest's folder and must stay inside it; absolute paths are taken as
    written. Files are stat'ed, not sniffed: a manifest names its photos, and decode reports any that are not.
    """
    path = Path(path)
    if path.suffix.lower() not in MANIFEST_SUFFIXES:
        raise ValueError(f"a manifest is a .csv or .jsonl file: {path}")
    if not path.is_file():
        raise ValueError(f"no such manifest: {path}")
    return _read_manifest(path)


def _read_manifest(path: Path) -> Iterator[FoundFile | Skipped]:
    base = os.path.dirname(os.path.abspath(path))
    base_real = os.path.realpath(base)
    for n, row in _manifest_rows(path):
        written = row.get("path")
        if not isinstance(written, str) or not written:
            raise ValueError(f"{path}:{n}: 'path' is missing or empty")
        meta = {k: v for k, v in row.items() if k != "path"}
        yield _manifest_item(base, base_real, written, meta)


def find(path: str | Path) -> Iterator[FoundFile | Skipped]:
    """A folder -> `walk_folder`; a .csv / .jsonl file -> `read_manifest`."""
    if os.path.isdir(path):
        return walk_folder(path)
    if os.path.isfile(path) and Path(path).suffix.lower() in MANIFEST_SUFFIXES:
        return read_manifest(path)
    raise ValueError(f"expected a folder or a .csv/.jsonl manifest: {path}")


def batches(items: Iterable[FoundFile], size: int) -> Iterator[dict[str, Any]]:
    """Group found files into dict batches: path, rel, meta (lists), size, mtime_ns (int64 arrays)."""
    if size < 1:
        raise ValueError(f"batch size must be >= 1, got {size}")
    chunk: list[FoundFile] = []
    for item in items:
        if not isinstance(item, FoundFile):
            raise TypeError(f"batches takes FoundFile items; report {type(item).__name__} rows before batching")
        chunk.append(item)
        if len(chunk) == size:
            yield _columns(chunk)
            chunk = []
    if chunk:
        yield _columns(chunk)


def _columns(chunk: list[FoundFile]) -> dict[str, Any]:
    return {
        PATH: [f.path for f in chunk],
        REL: [f.rel for f in chunk],
        META: [f.meta for f in chunk],
        SIZE: np.array([f.size for f in chunk], dtype=np.int64),
        MTIME_NS: np.array([f.mtime_ns for f in chunk], dtype=np.int64),
    }
