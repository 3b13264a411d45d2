"""What flows between the indexer's stages: column names, failure reasons, deterministic point ids.

A batch is a dict of equal-length columns (lists or numpy arrays), so the same stage runs in a plain loop
and under Ray Data's map_batches. A row that failed keeps its place with ok=False and a reason code;
later stages pass it through untouched.
"""

from __future__ import annotations

import uuid
from enum import Enum

# Columns a decoded batch carries (the find stage fills "path", "rel" and "meta").
PATH = "path"  # absolute path, str
REL = "rel"  # path relative to the indexed root (or the manifest's path as written), str
META = "meta"  # manifest metadata for the row, dict (empty for folder walks)
OK = "ok"  # bool
REASON = "reason"  # failure reason code ("" when ok), str
DETAIL = "detail"  # human detail of a failure, str
IMAGE = "image"  # uint8 (B, S, S, 3), zeros where not ok
SHA256 = "sha256"  # hex digest of the file's bytes
VECTOR = "vector"  # float32 (B, D)


class Reason(str, Enum):
    """Why a file was not indexed. Values are stable: reports and tests match on them."""

    EMPTY_FILE = "empty_file"
    FILE_TOO_LARGE = "file_too_large"
    NOT_AN_IMAGE = "not_an_image"
    UNSUPPORTED_FORMAT = "unsupported_format"
    TOO_MANY_PIXELS = "too_many_pixels"  # decompression-bomb guard, checked from the header before decoding
    TRUNCATED = "truncated"
    CORRUPT = "corrupt"
    DECODE_TIMEOUT = "decode_timeout"
    UNREADABLE = "unreadable"  # permission denied, vanished between listing and reading, I/O error
    LINK_OUTSIDE_ROOT = "link_outside_root"
    LINK_LOOP = "link_loop"
    EMBED_FAILED = "embed_failed"


_NAMESPACE = uuid.UUID("6f1c2a4e-58d4-4f7a-9a53-0c6a3d0b7e21")  # photoseek's; never change it


def point_id(sha256_hex: str) -> str:
    """The Qdrant point id of a photo: a UUID derived from its content hash, so duplicates and re-runs collide."""
    return str(uuid.uuid5(_NAMESPACE, sha256_hex))
