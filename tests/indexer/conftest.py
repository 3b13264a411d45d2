"""Fixtures for the indexer: a small folder of real, distinct photos (synthetic scenes) and the bad-file corpus."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    from photoseek.indexer.testing_corpus import make_corpus

    root = tmp_path_factory.mktemp("corpus") / "photos"
    return root, make_corpus(root)


@pytest.fixture()
def photo_folder(synth_dir: Path, tmp_path: Path) -> Path:
    """A copy of the 160 synthetic scenes in nested folders: every file a distinct, valid photo."""
    root = tmp_path / "photos"
    for i, img in enumerate(sorted((synth_dir / "images").iterdir())):
        dest = root / f"album{i % 3}" / img.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(img, dest)
    return root
