"""Deterministic synthetic image-caption data: coloured shapes on a background, five captions each.

Every image i comes from its own ``random.Random(f"{seed}:{i}")``, so any image can be
regenerated alone and a whole dataset is byte-identical across runs.
"""

from __future__ import annotations

import io
import json
import math
import os
import random
import re
import time
from dataclasses import asdict, dataclass
from itertools import permutations
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

COLOURS = {
    "red": (215, 35, 35), "green": (40, 160, 60), "blue": (40, 80, 215),
    "yellow": (240, 205, 30), "purple": (130, 50, 170), "orange": (245, 130, 20),
    "white": (245, 245, 245), "black": (20, 20, 20), "pink": (245, 130, 185),
}
BACKGROUNDS = {
    "white": (238, 238, 234), "black": (18, 18, 22), "grey": (128, 128, 128),
    "beige": (222, 205, 168), "dark blue": (24, 34, 84), "light green": (176, 222, 168),
}
# Object colours that would be hard to see (or to name apart) on a background.
_CLASH = {"white": {"white"}, "black": {"black"}, "grey": set(), "beige": {"white", "yellow"},
          "dark blue": {"black", "blue"}, "light green": {"white", "green"}}
SHAPES = ("circle", "square", "triangle", "star", "diamond", "cross")
SIZES = {"small": 0.19, "medium": 0.28, "large": 0.40}  # object extent as a fraction of the image side
_N_OBJECTS, _N_WEIGHTS = (1, 2, 3), (0.3, 0.4, 0.3)
POSITIONS = ("top left", "top", "top right", "left", "centre", "right", "bottom left", "bottom", "bottom right")


@dataclass(frozen=True)
class SynthConfig:
    """Everything that determines a synthetic dataset's bytes."""

    images: int = 10000
    size: int = 128
    seed: int = 0
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    jpeg_quality: int = 92


@dataclass(frozen=True)
class SceneObject:
    """One drawn shape; ``points`` is its polygon in pixels, ``bbox`` its tight box [x, y, w, h]."""

    shape: str
    color: str
    size: str
    position: str  # 3x3 grid cell name: "top left", "top", ..., "centre", ..., "bottom right"
    cell: tuple[int, int]  # (row, col), row 0 at the top
    bbox: tuple[int, int, int, int]
    rgb: tuple[int, int, int]
    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Scene:
    """A whole image: background, texture (a nuisance never captioned) and 1-3 objects."""

    size: int
    background: str
    texture: str  # "plain" | "gradient" | "noise"
    objects: tuple[SceneObject, ...]
    noise_seed: int


def _ring(k: int, radii: tuple[float, ...], start: float = -math.pi / 2) -> list[tuple[float, float]]:
    return [(radii[j % len(radii)] * math.cos(start + 2 * math.pi * j / k),
             radii[j % len(radii)] * math.sin(start + 2 * math.pi * j / k)) for j in range(k)]


def _unit_polygon(shape: str) -> list[tuple[float, float]]:
    """The shape inside the unit circle, y pointing down."""
    if shape in ("circle", "star"):
        return _ring(48, (1.0,)) if shape == "circle" else _ring(10, (1.0, 0.45))
    if shape == "square":
        return [(-0.85, -0.85), (0.85, -0.85), (0.85, 0.85), (-0.85, 0.85)]
    if shape == "triangle":
        return [(x, y + 0.2) for x, y in _ring(3, (1.1,))]
    if shape == "diamond":
        return [(0.0, -1.0), (0.72, 0.0), (0.0, 1.0), (-0.72, 0.0)]
    a = 0.32  # cross: arm half-width
    return [(-a, -1), (a, -1), (a, -a), (1, -a), (1, a), (a, a), (a, 1), (-a, 1), (-a, a), (-1, a), (-1, -a), (-a, -a)]


def _place(rng: random.Random, size: int, cell: int, size_word: str, shape: str) -> list[tuple[float, float]]:
    """Polygon of one object near its grid cell's centre, kept fully inside the image."""
    half = size * SIZES[size_word] * rng.uniform(0.94, 1.06) / 2
    angle = 0.0 if shape == "circle" else math.radians(rng.uniform(-15, 15))
    ca, sa = math.cos(angle), math.sin(angle)
    pts = [((x * ca - y * sa) * half, (x * sa + y * ca) * half) for x, y in _unit_polygon(shape)]
    row, col = divmod(cell, 3)
    jitter = 0.04 * size
    centre = []
    for axis, index in ((0, col), (1, row)):
        lo, hi = min(p[axis] for p in pts), max(p[axis] for p in pts)
        c = (index + 0.5) * size / 3 + rng.uniform(-jitter, jitter)
        centre.append(min(max(c, 1 - lo), size - 1 - hi))
    return [(x + centre[0], y + centre[1]) for x, y in pts]


def _bbox(pts: list[tuple[float, float]]) -> tuple[int, int, int, int]:
    (x0, y0), (x1, y1) = (math.floor(min(v)) for v in zip(*pts)), (math.ceil(max(v)) for v in zip(*pts))
    return (x0, y0, x1 - x0, y1 - y0)


def _overlap(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    """Intersection area over the smaller box's area."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(w, 0) * max(h, 0) / min(a[2] * a[3], b[2] * b[3])


def make_scene(rng: random.Random, size: int) -> Scene:
    """Sample a background and 1-3 objects in distinct grid cells without heavy overlap."""
    background = rng.choice(list(BACKGROUNDS))
    texture = rng.choice(("plain", "gradient", "noise"))
    n = rng.choices(_N_OBJECTS, weights=_N_WEIGHTS)[0]
    for _ in range(50):  # resample layouts where two big neighbours would mostly cover each other
        cells = rng.sample(range(9), n)
        kinds = [(rng.choice(SHAPES), rng.choice(list(SIZES))) for _ in cells]
        polys = [_place(rng, size, c, sz, sh) for c, (sh, sz) in zip(cells, kinds)]
        boxes = [_bbox(p) for p in polys]
        if all(_overlap(a, b) <= 0.15 for i, a in enumerate(boxes) for b in boxes[i + 1:]):
            break
    palette = [c for c in COLOURS if c not in _CLASH[background]]
    objects = []
    for cell, (shape, size_word), pts, box in zip(cells, kinds, polys, boxes):
        colour = rng.choice(palette)
        shade = rng.randint(-15, 15)  # mostly brightness, so black and white stay neutral
        rgb = tuple(min(max(v + shade + rng.randint(-6, 6), 0), 255) for v in COLOURS[colour])
        objects.append(SceneObject(shape, colour, size_word, POSITIONS[cell], divmod(cell, 3), box, rgb,
                                   tuple((round(x, 2), round(y, 2)) for x, y in pts)))
    return Scene(size, background, texture, tuple(objects), rng.getrandbits(63))


def render(scene: Scene) -> Image.Image:
    """Draw the scene: textured background, anti-aliased shapes, mild pixel noise."""
    s, g = scene.size, np.random.default_rng(scene.noise_seed)
    img = np.full((s, s, 3), BACKGROUNDS[scene.background], np.float32)
    if scene.texture == "gradient":
        theta = g.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:s, 0:s] / s - 0.5
        img += (np.cos(theta) * xx + np.sin(theta) * yy)[..., None] * g.uniform(30, 60)
    elif scene.texture == "noise":
        low = Image.fromarray(g.normal(0, 1, (6, 6)).astype(np.float32), mode="F")
        img += np.asarray(low.resize((s, s), Image.BICUBIC))[..., None] * 10
    canvas = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    for obj in sorted(scene.objects, key=lambda o: -o.bbox[2] * o.bbox[3]):  # small shapes stay on top
        x, y, w, h = obj.bbox
        mask = Image.new("L", (2 * w + 4, 2 * h + 4))  # drawn at 2x, then box-filtered for smooth edges
        ImageDraw.Draw(mask).polygon([(2 * (px - x) + 2, 2 * (py - y) + 2) for px, py in obj.points], fill=255)
        canvas.paste(obj.rgb, (x - 1, y - 1, x + w + 1, y + h + 1), mask.resize((w + 2, h + 2), Image.BOX))
    arr = np.asarray(canvas, np.int16) + g.integers(-7, 8, (s, s, 3), dtype=np.int16)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


# ----------------------------------------------------------------------------- captions

_SHAPE_WORDS = {"circle": ("circle", "circle", "disc", "ball"), "square": ("square", "square", "block"),
                "triangle": ("triangle",), "star": ("star", "star", "five-pointed star"),
                "diamond": ("diamond", "diamond", "rhombus"), "cross": ("cross", "cross", "plus sign")}
_SIZE_WORDS = {"small": ("small", "small", "little"), "medium": ("medium", "medium-sized", "mid-sized"),
               "large": ("large", "large", "big")}
_BG_WORDS = {"grey": ("grey", "gray"), "dark blue": ("dark blue", "dark blue", "navy"),
             "light green": ("light green", "pale green")}
_NUM = {1: "one", 2: "two", 3: "three"}
Claims = frozenset  # of tuples: ("obj", i, colour, shape, size|None, pos|None), ("rel", a, b, dh, dv), ...


def _an(text: str) -> str:
    return ("an " if text[0] in "aeiou" else "a ") + text


def _plural(word: str) -> str:
    return word + ("es" if word.endswith(("s", "x")) else "s")


def _join(parts: list[str], rng: random.Random) -> str:
    if len(parts) < 3:
        return " and ".join(parts)
    return ", ".join(parts[:-1]) + (", and " if rng.random() < 0.3 else " and ") + parts[-1]


def _where(pos: str, rng: random.Random) -> str:
    """A phrase placing something in a grid cell, always with the literal words left/right."""
    if pos == "centre":
        return rng.choice(("in the centre", "in the center", "in the middle", "at the centre"))
    if " " in pos:
        vert, side = pos.split()
        up = "upper" if vert == "top" else "lower"
        return rng.choice((f"in the {pos}", f"in the {pos} corner", f"at the {pos}", f"in the {up} {side}",
                           f"in the {up} {side} corner"))
    if pos in ("top", "bottom"):
        return rng.choice((f"at the {pos}", f"near the {pos}", f"at the {pos} centre", f"in the {pos} middle"))
    return rng.choice((f"on the {pos}", f"at the {pos}", f"on the {pos} side", f"in the middle {pos}"))


def _steps(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    """Signs of (rows down, columns right) from grid cell a to grid cell b."""
    return (b[0] > a[0]) - (b[0] < a[0]), (b[1] > a[1]) - (b[1] < a[1])


class _Caption:
    """Words one caption and records what it claims about the scene."""

    def __init__(self, scene: Scene, rng: random.Random):
        self.scene, self.rng, self.claims = scene, rng, set()

    def obj(self, i: int, size: bool, pos: bool, article: bool = True) -> str:
        o, r = self.scene.objects[i], self.rng
        self.claims.add(("obj", i, o.color, o.shape, o.size if size else None, o.position if pos else None))
        shape, sz = r.choice(_SHAPE_WORDS[o.shape]), (r.choice(_SIZE_WORDS[o.size]) + " " if size else "")
        style = r.random()
        core = (f"{sz}{o.color} {shape}" if style < 0.75 else f"{sz}{shape} in {o.color}" if style < 0.88 and not pos
                else f"{sz}{shape} {r.choice(('coloured', 'colored'))} {o.color}")
        text = core if not article else ("one " + core if r.random() < 0.15 else _an(core))
        return f"{text} {_where(o.position, r)}" if pos else text

    def group(self, members: list[int]) -> str:
        """Same-shape objects together: "two triangles, one green and one yellow"."""
        objs, r = [self.scene.objects[i] for i in members], self.rng
        plural, k = _plural(r.choice(_SHAPE_WORDS[objs[0].shape])), _NUM[len(members)]
        with_size = r.random() < 0.5
        for i, o in zip(members, objs):
            self.claims.add(("obj", i, o.color, o.shape, o.size if with_size else None, None))
        if len({o.color for o in objs}) == 1 and (not with_size or len({o.size for o in objs}) == 1):
            sz = objs[0].size + " " if with_size else ""
            return f"{k} {sz}{objs[0].color} {plural}"
        subs = [f"{'a ' + o.size if with_size else 'one'} {o.color}" + (" one" if with_size else "") for o in objs]
        return f"{k} {plural} ({_join(subs, r)})" if r.random() < 0.4 else f"{k} {plural}, {_join(subs, r)}"

    def relation(self, a: int, b: int) -> str:
        """Object a relative to object b, e.g. "a red circle to the left of a blue square"."""
        r = self.rng
        dv, dh = _steps(self.scene.objects[a].cell, self.scene.objects[b].cell)
        use_h = dh != 0 and (dv == 0 or r.random() < 0.7)
        use_v = dv != 0 and (not use_h or r.random() < 0.4)
        self.claims.add(("rel", a, b, dh if use_h else None, dv if use_v else None))
        h = r.choice(("to the left of", "left of")) if dh > 0 else r.choice(("to the right of", "right of"))
        v = "above" if dv > 0 else r.choice(("below", "under", "beneath"))
        rel = f"{v} and {h}" if use_h and use_v else h if use_h else v
        first, second = self.obj(a, r.random() < 0.3, False), self.obj(b, r.random() < 0.3, False)
        return r.choice((f"{first} {rel} {second}", f"{first} is {rel} {second}", f"{first} placed {rel} {second}"))

    def background(self, sentence: bool = False) -> str:
        word = self.rng.choice(_BG_WORDS.get(self.scene.background, (self.scene.background,)))
        self.claims.add(("bg", self.scene.background))
        if sentence:
            return self.rng.choice((f". The background is {word}", f", on a {word} background"))
        return self.rng.choice((f"on a {word} background", f"against a {word} background", f"on {word}",
                                f"against a {word} backdrop"))

    def all_mentioned(self) -> None:
        self.claims.add(("count", len(self.scene.objects)))


def _detailed(c: _Caption, order: list[int]) -> str:
    body = _join([c.obj(i, True, True) for i in order], c.rng)
    c.all_mentioned()
    n = len(order)
    if n > 1 and c.rng.random() < 0.4:
        noun = c.rng.choice(("shapes", "objects", "figures"))
        return f"{_NUM[n]} {noun} {c.background()}: {body}"
    return f"{body} {c.background()}" if c.rng.random() < 0.6 else body + c.background(sentence=True)


def _placed(c: _Caption, order: list[int]) -> str:
    body = _join([c.obj(i, False, True) for i in order], c.rng)
    c.all_mentioned()
    lead = c.rng.choice(("", "there is ", "a picture with ", "an image of "))
    return lead + body + (" " + c.background() if c.rng.random() < 0.5 else "")


def _related(c: _Caption, order: list[int]) -> str:
    r = c.rng
    if len(order) == 1:
        c.all_mentioned()
        lead = r.choice(("there is", "the picture shows", "an image with", "we see"))
        text = f"{lead} {c.obj(0, r.random() < 0.5, True)}"
    else:
        text = c.relation(order[0], order[1])
        if len(order) == 2 or r.random() < 0.65:  # three-object captions sometimes leave one out
            if len(order) == 3:
                text += r.choice((", and ", " with ", "; there is also ")) + c.obj(order[2], False, True)
            c.all_mentioned()
    return text + (" " + c.background() if r.random() < 0.4 else "")


def _grouped(c: _Caption, order: list[int]) -> str:
    r, objs = c.rng, c.scene.objects
    c.all_mentioned()
    if len(order) == 1:
        lead = r.choice(("a single", "just one", "only one", "one"))
        return f"{lead} {c.obj(0, True, False, article=False)} {c.background()}"
    shapes = list(dict.fromkeys(objs[i].shape for i in order))
    groups = [[i for i in order if objs[i].shape == s] for s in shapes]
    parts = [c.obj(g[0], True, False) if len(g) == 1 else c.group(g) for g in groups]
    # "and" inside a group would blur where it ends, so groups with their own list get "as well as"
    text = " as well as ".join(parts) if any(" and " in p for p in parts) else _join(parts, r)
    if len(groups) > 1 and r.random() < 0.5:  # a single group already says how many
        text = f"{_NUM[len(order)]} {r.choice(('shapes', 'objects'))}: {text}"
    return text + (" " + c.background() if r.random() < 0.5 else "")


def _brief(c: _Caption, order: list[int]) -> str:
    r = c.rng
    with_pos = len(order) == 1 and r.random() < 0.5  # a lone shape is often just located
    text = _join([c.obj(i, False, with_pos) for i in order], r)
    c.all_mentioned()
    text = r.choice(("", "", "a picture of ", "an image showing ", "a drawing of ")) + text
    if with_pos:
        return text
    return text + (" " + c.background() if r.random() < (0.6 if len(order) == 1 else 0.3) else "")


_STYLES = (_detailed, _placed, _related, _grouped, _brief)  # most to least detailed


def _finish(text: str, rng: random.Random) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    if rng.random() < 0.7:
        text = text[0].upper() + text[1:]
    return text + ("." if rng.random() < 0.6 else "")


def captions_with_claims(scene: Scene, rng: random.Random) -> list[tuple[str, Claims]]:
    """Five distinct captions, most detailed first, each with the facts it states."""
    out: list[tuple[str, Claims]] = []
    for style in _STYLES:
        for _ in range(20):  # reword until it differs from the captions already chosen
            order = list(range(len(scene.objects)))
            rng.shuffle(order)
            c = _Caption(scene, rng)
            text = _finish(style(c, order), rng)
            if text.lower().rstrip(".") not in {t.lower().rstrip(".") for t, _ in out}:
                break
        out.append((text, frozenset(c.claims)))
    return out


def captions_for(scene: Scene, rng: random.Random) -> list[str]:
    """Exactly five differently worded captions, the first one fully detailed."""
    return [text for text, _ in captions_with_claims(scene, rng)]


def claims_hold(claims: Claims, scene: Scene) -> bool:
    """Whether a caption's facts are all true of a scene (used to measure how discriminative captions are)."""
    objs = scene.objects
    for claim in claims:
        if (claim[0] == "bg" and claim[1] != scene.background) or (claim[0] == "count" and claim[1] != len(objs)):
            return False
    mentioned = sorted({c[1] for c in claims if c[0] == "obj"})
    for choice in permutations(range(len(objs)), len(mentioned)):
        pick = dict(zip(mentioned, (objs[j] for j in choice)))
        if all(_claim_ok(c, pick) for c in claims):
            return True
    return False


def _claim_ok(claim: tuple, pick: dict[int, SceneObject]) -> bool:
    if claim[0] == "obj":
        o = pick[claim[1]]
        return (o.color, o.shape) == claim[2:4] and claim[4] in (None, o.size) and claim[5] in (None, o.position)
    if claim[0] == "rel":
        dv, dh = _steps(pick[claim[1]].cell, pick[claim[2]].cell)
        return claim[3] in (None, dh) and claim[4] in (None, dv)
    return True


# ----------------------------------------------------------------------------- writing

def _entry(i: int, split: str, scene: Scene, captions: list[str]) -> dict:
    return {
        "filename": f"{i:06d}.jpg", "imgid": i, "split": split,
        "sentences": [{"raw": c, "tokens": re.findall(r"[a-z0-9]+", c.lower())} for c in captions],
        "objects": [{"shape": o.shape, "color": o.color, "size": o.size, "position": o.position,
                     "bbox": list(o.bbox)} for o in scene.objects],
        "background": scene.background,
    }


def _split_sizes(config: SynthConfig) -> tuple[int, int, int]:
    if config.images < 1 or config.size < 32:
        raise ValueError(f"need images >= 1 and size >= 32, got {config.images} and {config.size}")
    if not (0 <= config.val_fraction and 0 <= config.test_fraction and config.val_fraction + config.test_fraction < 1):
        raise ValueError(f"bad split fractions: val {config.val_fraction}, test {config.test_fraction}")
    n_test, n_val = round(config.images * config.test_fraction), round(config.images * config.val_fraction)
    return config.images - n_val - n_test, n_val, n_test


def write_synthetic(out: Path, config: SynthConfig, progress: Callable[[int], None] | None = None) -> dict:
    """Write images/NNNNNN.jpg and dataset_synth.json (Karpathy format) under ``out``; return a summary."""
    out, start = Path(out), time.perf_counter()
    n_train, n_val, n_test = _split_sizes(config)
    summary = {"out": str(out), "images": config.images, "train": n_train, "val": n_val, "test": n_test,
               "captions": 5 * config.images}
    index = out / "dataset_synth.json"
    if index.exists():
        try:
            existing = json.loads(index.read_text()).get("config")
        except (OSError, ValueError) as exc:
            raise ValueError(f"{index} exists but cannot be read ({exc}); remove it or pick another folder") from exc
        if existing != asdict(config):
            raise ValueError(f"{index} was made with config {existing}, not {asdict(config)}; use another folder")
        return {**summary, "reused": True, "seconds": round(time.perf_counter() - start, 3)}
    (out / "images").mkdir(parents=True, exist_ok=True)
    entries = []
    for i in range(config.images):
        rng = random.Random(f"{config.seed}:{i}")
        scene = make_scene(rng, config.size)
        split = "train" if i < n_train else "val" if i < n_train + n_val else "test"
        entries.append(_entry(i, split, scene, captions_for(scene, rng)))
        buf = io.BytesIO()
        render(scene).save(buf, format="JPEG", quality=config.jpeg_quality)
        (out / "images" / f"{i:06d}.jpg").write_bytes(buf.getvalue())
        if progress is not None and ((i + 1) % 100 == 0 or i + 1 == config.images):
            progress(i + 1)
    tmp = index.with_name(index.name + ".tmp")
    tmp.write_text(json.dumps({"dataset": "synth", "config": asdict(config), "images": entries}))
    os.replace(tmp, index)  # only a finished run leaves an index, so a partial one is simply redone
    return {**summary, "reused": False, "seconds": round(time.perf_counter() - start, 3)}
