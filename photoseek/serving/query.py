"""A search request as one typed value, checked once, whichever door it came in by (HTTP JSON, multipart, gRPC).

Filters are given by meaning (`path_prefix`, `taken_after`, `format`, ...) and turned into the store's typed
`Filter` here, so the HTTP and gRPC layers never build store conditions themselves.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import uuid
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from typing import Any

import numpy as np

from photoseek.indexer.store import Filter, Match, MatchAny, Range

MAX_LIMIT = 100
MAX_OFFSET = 10_000
MAX_TEXT_CHARS = 1_000
MAX_ANY_VALUES = 100
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,63}$")
KINDS = ("text", "image", "id", "vector")


class QueryError(ValueError):
    """The request is malformed; the message says what to change (HTTP 400, gRPC INVALID_ARGUMENT)."""


class NotFound(LookupError):
    """No photo with that id (HTTP 404, gRPC NOT_FOUND)."""


class TooLarge(ValueError):
    """An upload over the size limit (HTTP 413, gRPC RESOURCE_EXHAUSTED)."""


@dataclass(frozen=True)
class FilterSpec:
    """What a caller may filter on. Every field is optional; all given ones must hold (AND)."""

    path_prefix: str | None = None  # a folder: photos anywhere below it
    taken_after: int | None = None  # epoch seconds, inclusive (EXIF date taken)
    taken_before: int | None = None  # epoch seconds, exclusive
    formats: tuple[str, ...] = ()  # "JPEG", "PNG", ...
    camera: str | None = None  # "Make Model" as stored
    fields: tuple[Match | MatchAny | Range, ...] = ()  # any other payload field

    def to_filter(self) -> Filter:
        must: list[Match | MatchAny | Range] = []
        if self.path_prefix:
            must.append(Match("dirs", self.path_prefix))
        if self.taken_after is not None or self.taken_before is not None:
            must.append(Range("taken_ts", gte=self.taken_after, lt=self.taken_before))
        if len(self.formats) == 1:
            must.append(Match("format", self.formats[0]))
        elif self.formats:
            must.append(MatchAny("format", list(self.formats)))
        if self.camera:
            must.append(Match("camera", self.camera))
        must.extend(self.fields)
        return Filter(must)


@dataclass(frozen=True)
class SearchQuery:
    """Exactly one of text / image / id / vector, plus paging and a filter."""

    text: str | None = None
    image: bytes | None = None  # the uploaded file's bytes, decoded by the image encoder
    id: str | None = None  # an indexed photo: "more like this"
    vector: tuple[float, ...] | None = None
    limit: int = 10
    offset: int = 0
    score_threshold: float | None = None
    filter: FilterSpec = field(default_factory=FilterSpec)
    embedded_from: str | None = None  # "text" or "image" once with_vector has replaced them

    @property
    def kind(self) -> str:
        return self.embedded_from or next(k for k in KINDS if getattr(self, k) is not None)

    def with_vector(self, vector: np.ndarray) -> "SearchQuery":
        """The same query with its text or image already embedded (what the searcher receives)."""
        return replace(self, text=None, image=None, vector=tuple(np.asarray(vector, np.float32).ravel().tolist()),
                       embedded_from=self.kind)


def check_id(value: Any) -> str:
    """A point id is a UUID; anything else (a path, '../', a number) is refused before the store sees it."""
    if not isinstance(value, str):
        raise QueryError(f"id must be a UUID string, not {type(value).__name__}")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise QueryError(f"id {value[:80]!r} is not a UUID (ids come from search results)") from None


def _int(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise QueryError(f"{name} must be an integer, not {type(value).__name__}")
    try:
        number = int(value)
    except ValueError:
        raise QueryError(f"{name} must be an integer, not {value!r}") from None
    if isinstance(value, float) and value != number:
        raise QueryError(f"{name} must be an integer, not {value!r}")
    if not lo <= number <= hi:
        raise QueryError(f"{name} must be between {lo} and {hi}, not {number}")
    return number


def _float(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise QueryError(f"{name} must be a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise QueryError(f"{name} must be a number, not {value!r}") from None
    if not math.isfinite(number):
        raise QueryError(f"{name} must be finite")
    return number


def parse_time(name: str, value: Any) -> int:
    """Epoch seconds from an int, an ISO date ('2024-05-01') or an ISO datetime (UTC unless it says otherwise)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if not isinstance(value, str) or not value.strip():
        raise QueryError(f"{name} must be an ISO date (2024-05-01), datetime or epoch seconds")
    text = value.strip()
    try:
        if len(text) == 10:
            moment = datetime.combine(date.fromisoformat(text), datetime.min.time())
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(f"{name}: {value!r} is not an ISO date or datetime") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp())


def _scalar(name: str, value: Any) -> str | int | bool:
    if isinstance(value, (str, bool, int)) and not isinstance(value, float):
        return value
    raise QueryError(f"{name} must be a string, integer or boolean, not {type(value).__name__}")


def parse_field(item: Any) -> Match | MatchAny | Range:
    """One `{"key": ..., "match" | "any" | "gte"/"gt"/"lte"/"lt": ...}` condition on any payload field."""
    if not isinstance(item, dict):
        raise QueryError("each filter.fields entry must be an object with a key and a condition")
    key = item.get("key")
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
        raise QueryError(f"filter field key {key!r} must be a payload field name (letters, digits, _ and .)")
    ops = set(item) - {"key"}
    if ops == {"match"}:
        return Match(key, _scalar(f"{key}.match", item["match"]))
    if ops == {"any"}:
        values = item["any"]
        if not isinstance(values, list) or not 0 < len(values) <= MAX_ANY_VALUES:
            raise QueryError(f"{key}.any must be a list of 1 to {MAX_ANY_VALUES} values")
        kinds = {type(_scalar(f"{key}.any", v)) for v in values}
        if len(kinds) > 1 or bool in kinds:
            raise QueryError(f"{key}.any values must be all strings or all integers")
        return MatchAny(key, list(values))
    if ops and ops <= {"gte", "gt", "lte", "lt"}:
        return Range(key, **{op: _float(f"{key}.{op}", item[op]) for op in ops})
    raise QueryError(f"filter field {key!r}: give one of match, any, or a range (gte/gt/lte/lt); got {sorted(ops)}")


def parse_filter(spec: Any) -> FilterSpec:
    if spec is None:
        return FilterSpec()
    if not isinstance(spec, dict):
        raise QueryError("filter must be an object")
    known = {"path_prefix", "taken_after", "taken_before", "format", "camera", "fields"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise QueryError(f"unknown filter key(s) {unknown}; known: {sorted(known)}")
    prefix = spec.get("path_prefix")
    if prefix is not None:
        if not isinstance(prefix, str) or not prefix.startswith("/") or "\x00" in prefix:
            raise QueryError("filter.path_prefix must be an absolute folder path such as /photos/2024")
        prefix = prefix.rstrip("/") or "/"
    fmt = spec.get("format")
    formats = (fmt,) if isinstance(fmt, str) else tuple(fmt or ())
    if not all(isinstance(f, str) and f for f in formats):
        raise QueryError("filter.format must be a format name or a list of them (JPEG, PNG, ...)")
    camera = spec.get("camera")
    if camera is not None and not isinstance(camera, str):
        raise QueryError("filter.camera must be a string")
    fields = spec.get("fields") or []
    if not isinstance(fields, list):
        raise QueryError("filter.fields must be a list")
    after = parse_time("filter.taken_after", spec["taken_after"]) if spec.get("taken_after") is not None else None
    before = parse_time("filter.taken_before", spec["taken_before"]) if spec.get("taken_before") is not None else None
    return FilterSpec(prefix, after, before, tuple(f.upper() for f in formats), camera or None,
                      tuple(parse_field(f) for f in fields))


def decode_base64(value: Any, max_bytes: int) -> bytes:
    """A base64 image (optionally a data: URL), refused by size before it is decoded."""
    if not isinstance(value, str):
        raise QueryError("image must be a base64 string")
    if value.startswith("data:"):
        value = value.partition(",")[2]
    if len(value) * 3 // 4 > max_bytes + 3:
        raise TooLarge(f"image is over the {max_bytes}-byte upload limit")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise QueryError("image is not valid base64") from None


def parse_query(body: Any, max_bytes: int, dim: int | None = None, image: bytes | None = None) -> SearchQuery:
    """A JSON body (or multipart form fields plus an uploaded file) -> SearchQuery; QueryError says what is wrong."""
    if not isinstance(body, dict):
        raise QueryError("the request body must be a JSON object")
    known = {"text", "image", "id", "vector", "limit", "offset", "score_threshold", "filter"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise QueryError(f"unknown field(s) {unknown}; known: {sorted(known)}")
    given = [k for k in KINDS if body.get(k) is not None] + (["image (upload)"] if image is not None else [])
    if len(given) != 1:
        raise QueryError(f"give exactly one of text, image, id or vector (got {given or 'none'})")
    values: dict[str, Any] = {}
    if body.get("text") is not None:
        text = body["text"]
        if not isinstance(text, str) or not text.strip():
            raise QueryError("text must be a non-empty string")
        if len(text) > MAX_TEXT_CHARS:
            raise QueryError(f"text is longer than {MAX_TEXT_CHARS} characters")
        values["text"] = text
    elif body.get("image") is not None or image is not None:
        data = image if image is not None else decode_base64(body["image"], max_bytes)
        if len(data) > max_bytes:
            raise TooLarge(f"image is over the {max_bytes}-byte upload limit")
        if not data:
            raise QueryError("image is empty")
        values["image"] = data
    elif body.get("id") is not None:
        values["id"] = check_id(body["id"])
    else:
        vector = body["vector"]
        if not isinstance(vector, (list, tuple)) or not vector:
            raise QueryError("vector must be a non-empty list of numbers")
        if dim is not None and len(vector) != dim:
            raise QueryError(f"vector has {len(vector)} numbers; this model's vectors have {dim}")
        values["vector"] = tuple(_float("vector", v) for v in vector)
        if not any(values["vector"]):
            raise QueryError("vector must not be all zeros")
    if body.get("limit") is not None:
        values["limit"] = _int("limit", body["limit"], 1, MAX_LIMIT)
    if body.get("offset") is not None:
        values["offset"] = _int("offset", body["offset"], 0, MAX_OFFSET)
    if body.get("score_threshold") is not None:
        values["score_threshold"] = _float("score_threshold", body["score_threshold"])
    values["filter"] = parse_filter(body.get("filter"))
    return SearchQuery(**values)
