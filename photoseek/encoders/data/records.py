"""The one record type every caption-dataset loader produces."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

SPLITS = ("train", "val", "test")


class DatasetError(ValueError):
    """A dataset cannot be read; the message says which file and why."""


@dataclass(frozen=True)
class CaptionedImage:
    """One image and all of its captions."""

    image_id: str  # stable within the dataset (file name, COCO id, ...)
    path: Path  # absolute path of the image file
    captions: tuple[str, ...]  # non-empty, stripped
    split: str  # "train" | "val" | "test"


@dataclass
class CaptionSet:
    """What a loader found in a folder: usable items plus what it had to leave out."""

    format: str  # "karpathy" | "flickr30k-token" | "coco" | "jsonl"
    root: Path
    items: list[CaptionedImage]
    missing_images: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # skipped entries, each with its location

    def split(self, name: str) -> list[CaptionedImage]:
        """The items of one split, in a stable order."""
        return [it for it in self.items if it.split == name]

    def summary(self) -> str:
        """One human line: format, counts per split, what was skipped."""
        counts = Counter(it.split for it in self.items)
        n_caps = sum(len(it.captions) for it in self.items)
        parts = ", ".join(f"{s} {counts.get(s, 0)}" for s in SPLITS)
        text = f"{self.format} dataset at {self.root}: {len(self.items)} images ({parts}), {n_caps} captions"
        if self.missing_images:
            text += f"; {len(self.missing_images)} referenced images missing"
        if self.problems:
            text += f"; {len(self.problems)} entries skipped"
        return text
