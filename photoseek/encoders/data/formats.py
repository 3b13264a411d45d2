"""Loaders for caption datasets as people keep them on disk.

Four layouts are understood: Karpathy split files (``dataset_*.json``), Flickr30k token
files (``*.token``), MS-COCO caption annotations (``annotations/captions_*.json``) and a
hand-written ``captions.jsonl``. Every loader returns a :class:`CaptionSet` and applies
the same rules: captions stripped, empty ones skipped and reported, images that are not
on disk listed in ``missing_images``, items in a stable order. Images are never opened.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from photoseek.encoders.data.records import SPLITS, CaptionedImage, CaptionSet, DatasetError

KARPATHY, FLICKR_TOKEN, COCO, JSONL = "karpathy", "flickr30k-token", "coco", "jsonl"
LOOKED_FOR = (
    "dataset_*.json (Karpathy split), annotations/captions_*.json (MS-COCO), "
    "*.token (Flickr30k), captions.jsonl"
)
_SPLIT_NAMES = {"train": "train", "restval": "train", "val": "val", "test": "test"}
# Several entries are probed when guessing the image folder: the first image alone may
# be exactly the one file that is missing.
_PROBES = 20
_COCO_FILE = re.compile(r"captions_([a-z]+?)(\d*)\.json")


def _hash_split(key: str, train: float, val: float) -> str:
    """A split from a stable hash of `key`: Python's hash() is salted per process."""
    u = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2**64
    if u < train:
        return "train"
    return "val" if u < train + val else "test"


@dataclass
class _Entry:
    image_id: str
    path: Path
    where: str  # location of the first mention, for messages
    split: str | None
    captions: list[str] = field(default_factory=list)


class _Collector:
    """Gathers images and captions from one source, then applies the rules shared by all formats."""

    def __init__(self, fmt: str, root: Path, source: Path) -> None:
        self.fmt, self.root, self.source = fmt, root, source
        self.entries: dict[str, _Entry] = {}
        self.problems: list[str] = []

    def image(self, image_id: str, path: Path, split: str | None, where: str) -> _Entry:
        """The entry for `image_id`, created on first mention; repeated mentions merge."""
        entry = self.entries.get(image_id)
        if entry is None:
            entry = self.entries[image_id] = _Entry(image_id, path, where, split)
        elif split is not None and entry.split is None:
            entry.split = split
        elif split is not None and split != entry.split:
            raise DatasetError(
                f"{where}: image {image_id!r} is in split {split!r} here "
                f"but in {entry.split!r} at {entry.where}"
            )
        return entry

    def caption(self, entry: _Entry, text: Any, where: str) -> None:
        """Add one caption, or record why it was skipped."""
        text = text.strip() if isinstance(text, str) else ""
        if text:
            entry.captions.append(text)
        else:
            self.problems.append(f"{where}: empty caption for {entry.image_id}; skipped")

    def finish(self, default_split: Callable[[str], str], looked_in: Iterable[Path]) -> CaptionSet:
        """Drop caption-less and missing images, sort, and fail if nothing usable is left."""
        items: list[CaptionedImage] = []
        missing: list[Path] = []
        for entry in self.entries.values():
            if not entry.captions:
                self.problems.append(f"{entry.where}: {entry.image_id} has no usable captions; dropped")
            elif not entry.path.is_file():
                missing.append(entry.path)
            else:
                split = entry.split or default_split(entry.image_id)
                items.append(CaptionedImage(entry.image_id, entry.path, tuple(entry.captions), split))
        if not items:
            raise self._nothing_usable(missing, looked_in)
        items.sort(key=lambda it: (SPLITS.index(it.split), it.image_id))
        return CaptionSet(self.fmt, self.root, items, sorted(set(missing)), self.problems)

    def _nothing_usable(self, missing: list[Path], looked_in: Iterable[Path]) -> DatasetError:
        if missing:
            where = ", ".join(str(p) for p in dict.fromkeys(looked_in))
            return DatasetError(
                f"{self.source}: all {len(missing)} referenced images are missing "
                f"(e.g. {missing[0]}); looked in {where}"
            )
        first = f"; first problem: {self.problems[0]}" if self.problems else ""
        return DatasetError(
            f"{self.source}: no usable captions ({len(self.entries)} images referenced){first}"
        )


def _read_text(path: Path) -> str:
    """The file as text, or a DatasetError saying why it cannot be read."""
    try:
        return path.read_text(encoding="utf-8-sig")  # -sig: hand-written files often carry a BOM
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not UTF-8 text (bad byte at offset {e.start})") from e
    except OSError as e:
        raise DatasetError(f"{path}: cannot read: {e.strerror or e}") from e


def _read_json(path: Path) -> Any:
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from e


def _pick_image_dir(candidates: list[Path], probes: Iterable[str]) -> Path:
    """The first candidate folder that holds one of the probed images."""
    probes = list(probes)
    for folder in candidates:
        if any((folder / rel).is_file() for rel in probes):
            return folder
    # Nothing found: the first folder that exists keeps missing_images paths plausible.
    return next((f for f in candidates if f.is_dir()), candidates[-1])


def _image_candidates(folder: Path) -> list[Path]:
    return [folder / "flickr30k-images", folder / "images", folder]


# --- Karpathy split -------------------------------------------------------------------


def _karpathy_rel(source: str, index: int, entry: Any) -> str:
    """The image path relative to the image folder: filepath/filename, or filename."""
    if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str) or not entry["filename"]:
        raise DatasetError(f"{source}: images[{index}] has no 'filename'")
    filepath = entry.get("filepath")
    return f"{filepath.strip('/')}/{entry['filename']}" if isinstance(filepath, str) and filepath else entry["filename"]


def _sentence_text(sentence: Any) -> Any:
    if isinstance(sentence, dict):
        raw = sentence.get("raw")
        if raw is None and isinstance(sentence.get("tokens"), list):
            return " ".join(str(t) for t in sentence["tokens"])
        return raw
    return sentence


def load_karpathy(json_path: str | Path) -> CaptionSet:
    """Load a Karpathy split file (dataset_flickr30k.json, dataset_coco.json, ...)."""
    json_path = Path(json_path).resolve()
    source = str(json_path)
    data = _read_json(json_path)
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list):
        raise DatasetError(f"{source}: not a Karpathy split file: expected an object with an 'images' list")
    rels = [_karpathy_rel(source, i, entry) for i, entry in enumerate(images)]
    candidates = _image_candidates(json_path.parent)
    image_dir = _pick_image_dir(candidates, rels[:_PROBES])
    out = _Collector(KARPATHY, json_path.parent, json_path)
    for i, (entry, rel) in enumerate(zip(images, rels)):
        where = f"{source}: images[{i}]"
        split = entry.get("split")
        if split is not None and split not in _SPLIT_NAMES:
            raise DatasetError(f"{where}: unknown split {split!r} (expected train, val, test or restval)")
        sentences = entry.get("sentences", [])
        if not isinstance(sentences, list):
            raise DatasetError(f"{where}: 'sentences' is not a list")
        image = out.image(rel, image_dir / rel, _SPLIT_NAMES.get(split), where)
        for j, sentence in enumerate(sentences):
            out.caption(image, _sentence_text(sentence), f"{where}.sentences[{j}]")
    return out.finish(lambda key: _hash_split(key, 0.9, 0.05), candidates)


# --- Flickr30k token file -------------------------------------------------------------


def load_flickr_token(token_path: str | Path) -> CaptionSet:
    """Load a Flickr30k token file: lines `NAME.jpg#N<TAB>caption`; splits by stable hash 90/5/5."""
    token_path = Path(token_path).resolve()
    out = _Collector(FLICKR_TOKEN, token_path.parent, token_path)
    parsed: list[tuple[str, str, str]] = []
    # split("\n"), not splitlines(): captions may hold \x1c or \u2028, which would shift line numbers.
    for n, line in enumerate(_read_text(token_path).split("\n"), 1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        where = f"{token_path}:{n}"
        head, tab, caption = line.partition("\t")
        name, hash_mark, _ = head.strip().rpartition("#")
        if not tab:
            out.problems.append(f"{where}: no tab between image name and caption; skipped")
        elif not hash_mark or not name:
            out.problems.append(f"{where}: expected NAME.jpg#N before the tab, got {head!r}; skipped")
        else:
            parsed.append((name, caption, where))
    candidates = _image_candidates(token_path.parent)
    image_dir = _pick_image_dir(candidates, list(dict.fromkeys(p[0] for p in parsed))[:_PROBES])
    for name, caption, where in parsed:
        out.caption(out.image(name, image_dir / name, None, where), caption, where)
    return out.finish(lambda key: _hash_split(key, 0.9, 0.05), candidates)


# --- MS-COCO captions -----------------------------------------------------------------


def _coco_files(root: Path, out: _Collector) -> list[tuple[str, str, Path]]:
    """(split, year, path) of the annotation files to load: one year only, the newest."""
    found = sorted(p for p in (root / "annotations").glob("captions_*.json") if p.is_file())
    usable: list[tuple[str, str, Path]] = []
    for path in found:
        m = _COCO_FILE.fullmatch(path.name)
        if m and m.group(1) in ("train", "val", "test"):
            usable.append((m.group(1), m.group(2), path))
        else:
            out.problems.append(f"{path}: not captions_<train|val|test><year>.json; ignored")
    if not usable:
        names = ", ".join(p.name for p in found) or "none"
        raise DatasetError(f"{root / 'annotations'}: no captions_<train|val|test><year>.json (found: {names})")
    # 2014 and 2017 hold the same pictures under other names: loading both would duplicate them.
    year = max(y for _, y, _ in usable)
    for _, y, path in usable:
        if y != year:
            out.problems.append(f"{path}: ignored, using the {year} annotations")
    return [u for u in usable if u[1] == year]


def _load_coco_file(out: _Collector, root: Path, split: str, year: str, path: Path, has_test: bool) -> list[Path]:
    """Add one annotation file's images and captions; returns the folders it looked in."""
    data = _read_json(path)
    if not (isinstance(data, dict) and isinstance(data.get("images"), list)
            and isinstance(data.get("annotations"), list)):
        raise DatasetError(f"{path}: expected an object with 'images' and 'annotations' lists (MS-COCO captions)")
    names: dict[Any, str] = {}
    for i, img in enumerate(data["images"]):
        if not isinstance(img, dict) or "id" not in img or not isinstance(img.get("file_name"), str):
            raise DatasetError(f"{path}: images[{i}] needs 'id' and 'file_name'")
        names[img["id"]] = img["file_name"]
    folder = f"{split}{year}"
    candidates = [root / folder, root / "images" / folder, root / "images"]
    image_dir = _pick_image_dir(candidates, list(names.values())[:_PROBES])
    entries: dict[Any, _Entry] = {}
    for image_id, name in names.items():
        # COCO publishes no test captions; half of val stands in, chosen by stable hash.
        s = _hash_split(name, 0.0, 0.5) if split == "val" and not has_test else split
        entries[image_id] = out.image(name, image_dir / name, s, f"{path}: image id {image_id}")
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict) or "image_id" not in ann:
            raise DatasetError(f"{path}: annotations[{i}] needs 'image_id' and 'caption'")
        entry = entries.get(ann["image_id"])
        if entry is None:
            out.problems.append(f"{path}: annotations[{i}]: image_id {ann['image_id']!r} is not in 'images'; skipped")
        else:
            out.caption(entry, ann.get("caption"), f"{path}: annotations[{i}]")
    return candidates


def load_coco(root: str | Path) -> CaptionSet:
    """Load MS-COCO captions from `root/annotations/captions_<split><year>.json`."""
    root = Path(root).resolve()
    out = _Collector(COCO, root, root / "annotations")
    files = _coco_files(root, out)
    has_test = any(split == "test" for split, _, _ in files)
    looked_in: list[Path] = []
    for split, year, path in files:
        looked_in += _load_coco_file(out, root, split, year, path, has_test)
    return out.finish(lambda key: "train", looked_in)  # every COCO entry has a split already


# --- captions.jsonl -------------------------------------------------------------------


def _jsonl_object(line: str, where: str) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise DatasetError(f"{where}: invalid JSON at column {e.colno}: {e.msg}") from e
    if not isinstance(obj, dict) or not isinstance(obj.get("image"), str) or not obj["image"].strip():
        raise DatasetError(f'{where}: expected an object with an "image" path')
    return obj


def _jsonl_split(obj: dict[str, Any], where: str) -> str | None:
    split = obj.get("split")
    if split is not None and split not in _SPLIT_NAMES:
        raise DatasetError(f"{where}: unknown split {split!r} (expected train, val, test or restval)")
    return _SPLIT_NAMES.get(split)


def _jsonl_captions(obj: dict[str, Any], where: str) -> list[Any]:
    if "caption" not in obj and "captions" not in obj:
        raise DatasetError(f'{where}: expected "caption" (text) or "captions" (list of texts)')
    captions = obj.get("captions", [])
    if not isinstance(captions, list):
        raise DatasetError(f'{where}: "captions" must be a list of texts')
    return ([obj["caption"]] if "caption" in obj else []) + captions


def load_jsonl(jsonl_path: str | Path) -> CaptionSet:
    """Load a captions.jsonl: {"image", "caption" | "captions", optional "split"} per line."""
    jsonl_path = Path(jsonl_path).resolve()
    root = jsonl_path.parent
    out = _Collector(JSONL, root, jsonl_path)
    for n, line in enumerate(_read_text(jsonl_path).split("\n"), 1):
        if not line.strip():
            continue
        where = f"{jsonl_path}:{n}"
        obj = _jsonl_object(line, where)
        image = Path(obj["image"].strip()).expanduser()
        path = (image if image.is_absolute() else root / image).resolve()
        try:
            image_id = path.relative_to(root).as_posix()
        except ValueError:  # outside the root: the absolute path is the only stable name
            image_id = path.as_posix()
        entry = out.image(image_id, path, _jsonl_split(obj, where), where)
        for text in _jsonl_captions(obj, where):
            out.caption(entry, text, where)
    return out.finish(lambda key: _hash_split(key, 0.8, 0.1), [root])


# --- detection ------------------------------------------------------------------------


def _only_one(folder: Path, pattern: str) -> Path | None:
    found = sorted(p for p in folder.glob(pattern) if p.is_file())
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise DatasetError(f"{folder}: several {pattern} files ({names}); pass the one to load")
    return found[0] if found else None


def detect_format(path: str | Path) -> tuple[str, Path]:
    """The format of a dataset folder or file, and the file (or, for COCO, folder) to load."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    path = path.resolve()
    if path.is_file():
        name = path.name
        if name.startswith("dataset_") and path.suffix == ".json":
            return KARPATHY, path
        if path.suffix == ".token":
            return FLICKR_TOKEN, path
        if path.suffix == ".jsonl":
            return JSONL, path
        if name.startswith("captions_") and path.suffix == ".json" and path.parent.name == "annotations":
            return COCO, path.parent.parent
        raise DatasetError(f"{path}: not a known caption file; expected one of {LOOKED_FOR}")
    if found := _only_one(path, "dataset_*.json"):
        return KARPATHY, found
    if any(p.is_file() for p in (path / "annotations").glob("captions_*.json")):
        return COCO, path
    if found := _only_one(path, "*.token"):
        return FLICKR_TOKEN, found
    if (path / "captions.jsonl").is_file():
        return JSONL, path / "captions.jsonl"
    raise DatasetError(f"{path}: no known caption dataset found; looked for {LOOKED_FOR}")


_LOADERS: dict[str, Callable[[Path], CaptionSet]] = {
    KARPATHY: load_karpathy,
    FLICKR_TOKEN: load_flickr_token,
    COCO: load_coco,
    JSONL: load_jsonl,
}


def load_captions(path: str | Path) -> CaptionSet:
    """Detect the format of a folder (or a file given directly) and load it."""
    fmt, target = detect_format(path)
    return _LOADERS[fmt](target)
