"""A synthetic referring-segmentation data set in the layout of the `refer` release.

Each image holds 2-5 flat shapes (circle, square, triangle, star) in saturated colours (red,
green, blue, yellow) on a noisy, cluttered, muted background. Each ref is one object with up to
three expressions, each tagged with its type, so that routing can be analysed per cue:

- appearance: "the red circle", "the blue one", "the triangle"
- spatial:    "the leftmost square", "the top one", "the shape on the right"
- size:       "the biggest thing", "small blue square"
- relational: "the square left of the blue circle", "the one above the red star"

Every expression is kept only if it picks out exactly one object, with margins (positions at
least 10% of the image apart, areas at least 1.6x apart) so that no reading is borderline.

Splits: train and val draw 2-5 objects per image; testA has 2-3 (sparse scenes), testB 4-5
(crowded scenes, where spatial and relational cues matter more), echoing RefCOCO's testA/testB
being two different populations.

With `generalized=True` (`sera data synth --generalized`) the set is written in the gRefCOCO
layout instead, and each image also gets refs that name several objects or none (ReLA's
generalized referring segmentation):

- multi-target: "both red shapes", "the two squares", "all circles": every object of a colour,
  a shape or both, when there are at least two; the target is their union;
- no-target:    "the purple star", "the triangle": a colour or a shape absent from the image
  (purple and orange are never painted, so any expression naming them names nothing).

With `domain="source"` or `"target"` (`sera data synth --domain`) it draws one of two shifted
tasks for transfer (docs/ablation.md): the source shows three shapes in three flat colours and
mostly appearance and size expressions; the target adds the star, yellow, a striped fill the
source never shows, and mostly spatial and relational expressions. A backbone pretrained on the
source has to adapt to read the target. `domain="all"` (the default) is the set described above.

The output is deterministic for a seed (byte for byte): every image draws from its own generator
seeded by (seed, image number), JSON keys are sorted and nothing records the time. The generalized
set draws its extra refs after everything the plain set draws, so both hold the same images.
"""

from __future__ import annotations

import json
import math
import pickle
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from sera_cli.data.masks import decode_segmentation
from sera_cli.data.refer import GENERALIZED_IMAGE_DIR, IMAGE_DIR, MULTI_TARGET, NO_TARGET
from sera_cli.errors import SeraError

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 225),
    "yellow": (235, 210, 40),
}
#: Relative number of images per split (900 images -> 600 / 100 / 100 / 100).
SPLIT_WEIGHTS: dict[str, int] = {"train": 6, "val": 1, "testA": 1, "testB": 1}
#: Objects per image, inclusive range, per split.
OBJECTS: dict[str, tuple[int, int]] = {
    "train": (2, 5),
    "val": (2, 5),
    "testA": (2, 3),
    "testB": (4, 5),
}
EXPRESSION_TYPES = ("appearance", "spatial", "size", "relational")
GENERALIZED_TYPES = (MULTI_TARGET, NO_TARGET)
#: Colours no object is painted in: a no-target expression may name them ("the purple star").
UNSEEN_COLOURS: tuple[str, ...] = ("purple", "orange")
MAX_GENERALIZED_SENTENCES = 2  # per multi-target or no-target ref
_COUNTS = {2: "two", 3: "three", 4: "four", 5: "five"}
SIDE_RANGE = (160, 320)  # image width and height, pixels, inclusive
POSITION_MARGIN = 0.10  # of the image side: how far apart "left"/"right"/... must be
AREA_RATIO = 1.6  # how much bigger "biggest" must be than the next
MAX_REFS_PER_IMAGE = 3
MAX_SENTENCES_PER_REF = 3



@dataclass(frozen=True)
class Domain:
    """What one synthetic task draws from: a shift in vocabulary (shapes, colours), texture
    (striped fills) and expression types (each type's sentences kept with its chance; None keeps
    all), so that transfer from one domain to another has something to adapt to."""

    shapes: tuple[str, ...]
    colours: tuple[str, ...]
    striped: bool = False
    keep_type: Mapping[str, float] | None = None


DOMAINS: dict[str, Domain] = {
    "all": Domain(SHAPES, tuple(COLOURS)),
    "source": Domain(("circle", "square", "triangle"), ("red", "green", "blue"),
                     keep_type={"appearance": 1.0, "size": 1.0, "spatial": 0.4,
                                "relational": 0.2}),
    "target": Domain(SHAPES, tuple(COLOURS), striped=True,
                     keep_type={"appearance": 0.3, "size": 0.3, "spatial": 1.0,
                                "relational": 1.0}),
}
STRIPE_PERIOD = (6.0, 12.0)  # pixels, at the image's own size
STRIPE_DARKEN = 0.55  # the dark stripes' brightness, of the object's colour

_GENERIC = ("one", "shape", "thing", "object")
_GENERIC_PLURAL = ("ones", "shapes", "things", "objects")
_SPATIAL = {
    "left": ("the leftmost {np}", "the {np} on the left", "the left {np}"),
    "right": ("the rightmost {np}", "the {np} on the right", "the right {np}"),
    "top": ("the top {np}", "the {np} at the top", "the upper {np}"),
    "bottom": ("the bottom {np}", "the {np} at the bottom", "the lower {np}"),
}
_RELATIONS = {
    "left": ("left of", "to the left of"),
    "right": ("right of", "to the right of"),
    "top": ("above",),
    "bottom": ("below", "under"),
}


@dataclass
class SynthSummary:
    """What `synthesize` wrote: counts per split and per expression type."""

    root: str
    dataset: str
    domain: str = "all"
    images: dict[str, int] = field(default_factory=dict)
    refs: dict[str, int] = field(default_factory=dict)
    sentences: dict[str, int] = field(default_factory=dict)
    types: dict[str, int] = field(default_factory=dict)


@dataclass
class _Obj:
    shape: str
    colour: str
    cx: float
    cy: float
    radius: float
    mask: np.ndarray
    segmentation: object

    @property
    def area(self) -> int:
        return int(self.mask.sum())


def split_counts(n_images: int, weights: Mapping[str, int] = SPLIT_WEIGHTS) -> dict[str, int]:
    """Images per split: the first split takes what the others' shares (at least 1 each) leave."""
    names = list(weights)
    if n_images < len(names):
        raise SeraError(
            f"--images {n_images} is too few: the synthetic set needs one image per split "
            f"({', '.join(names)}), so at least {len(names)}"
        )
    total = sum(weights.values())
    counts = {s: max(1, n_images * weights[s] // total) for s in names[1:]}
    return {names[0]: n_images - sum(counts.values()), **counts}


# ----------------------------------------------------------------------------------- rendering


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list[float]:
    if shape == "square":
        corners = [(r, angle + math.pi / 4 + k * math.pi / 2) for k in range(4)]
    elif shape == "triangle":
        corners = [(r, angle - math.pi / 2 + k * 2 * math.pi / 3) for k in range(3)]
    else:  # star: five points, inner radius 0.45
        corners = [
            (r if k % 2 == 0 else 0.45 * r, angle - math.pi / 2 + k * math.pi / 5)
            for k in range(10)
        ]
    return [round(v, 1) for d, a in corners for v in (cx + d * math.cos(a), cy + d * math.sin(a))]


def _object_mask(
    shape: str, cx: float, cy: float, r: float, angle: float, w: int, h: int
) -> tuple[np.ndarray, object]:
    """The object's mask and its COCO segmentation, the mask decoded *from* that segmentation.

    The image is painted from this mask, so the ground truth matches the pixels exactly.
    """
    from pycocotools import mask as mask_utils

    if shape == "circle":
        ys, xs = np.mgrid[0:h, 0:w]
        mask = (xs + 0.5 - cx) ** 2 + (ys + 0.5 - cy) ** 2 <= r * r
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        return mask, {"size": [h, w], "counts": rle["counts"].decode("ascii")}
    poly = _polygon(shape, cx, cy, r, angle)
    return decode_segmentation([poly], h, w), [poly]


def _place_objects(rng: np.random.Generator, w: int, h: int, n: int,
                   domain: Domain) -> list[_Obj]:
    side = min(w, h)
    # Large enough that the letterboxed object covers several patches of sera-tiny's grid.
    r_max = (0.26 - 0.02 * (n - 2)) * side
    r_min = 0.11 * side
    objs: list[_Obj] = []
    for _ in range(n):
        for _attempt in range(60):
            r = float(rng.uniform(r_min, r_max))
            cx = float(rng.uniform(r + 2, w - r - 2))
            cy = float(rng.uniform(r + 2, h - r - 2))
            if all(math.hypot(cx - o.cx, cy - o.cy) > r + o.radius + 3 for o in objs):
                break
        else:
            continue  # no room left for this one: the scene has fewer objects
        shape = domain.shapes[int(rng.integers(len(domain.shapes)))]
        colour = domain.colours[int(rng.integers(len(domain.colours)))]
        angle = float(rng.uniform(-0.2, 0.2))
        mask, seg = _object_mask(shape, cx, cy, r, angle, w, h)
        objs.append(_Obj(shape, colour, cx, cy, r, mask, seg))
    return objs


def _render(rng: np.random.Generator, w: int, h: int, objs: list[_Obj],
            striped: bool = False) -> Image.Image:
    # Muted background with a gradient: saturated colours belong to the objects alone.
    base = rng.uniform(70, 190) + rng.uniform(-12, 12, size=3)
    gy, gx = np.mgrid[0:h, 0:w]
    theta = rng.uniform(0, 2 * math.pi)
    ramp = (gx * math.cos(theta) + gy * math.sin(theta)) / max(w, h) * rng.uniform(-30, 30)
    bg = np.clip(base[None, None, :] + ramp[..., None], 0, 255).astype(np.uint8)
    img = Image.fromarray(bg, "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(4, 10))):  # clutter: thin grey lines and small dots
        grey = int(rng.integers(40, 230))
        tint = tuple(min(255, max(0, grey + int(d))) for d in rng.integers(-15, 16, size=3))
        x0, y0 = float(rng.uniform(0, w)), float(rng.uniform(0, h))
        if rng.uniform() < 0.5:
            x1, y1 = x0 + rng.uniform(-0.3, 0.3) * w, y0 + rng.uniform(-0.3, 0.3) * h
            draw.line([(x0, y0), (x1, y1)], fill=tint, width=int(rng.integers(1, 3)))
        else:
            d = float(rng.uniform(1, 3.5))
            draw.ellipse([x0 - d, y0 - d, x0 + d, y0 + d], fill=tint)
    pixels = np.asarray(img).astype(np.float32)
    for o in objs:
        colour = np.asarray(COLOURS[o.colour], np.float32) + rng.uniform(-18, 18, size=3)
        pixels[o.mask] = colour
        if striped:
            pixels[o.mask & _stripes(rng, gx, gy)] *= STRIPE_DARKEN
    pixels += 6.0 * rng.standard_normal(size=pixels.shape, dtype=np.float32)
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "RGB")


def _stripes(rng: np.random.Generator, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """Where the dark half of a stripe pattern of random period and direction falls."""
    period = float(rng.uniform(*STRIPE_PERIOD))
    theta = float(rng.uniform(0, math.pi))
    phase = (gx * math.cos(theta) + gy * math.sin(theta)) / period
    return (phase - np.floor(phase)) < 0.5


# --------------------------------------------------------------------------------- expressions


def _matches(objs: list[_Obj], colour: str | None, shape: str | None) -> list[_Obj]:
    return [
        o
        for o in objs
        if (colour is None or o.colour == colour) and (shape is None or o.shape == shape)
    ]


def _noun(colour: str | None, shape: str | None, rng: np.random.Generator) -> str:
    head = shape or _GENERIC[int(rng.integers(len(_GENERIC)))]
    return f"{colour} {head}" if colour else head


def _key(o: _Obj, direction: str) -> float:
    """A coordinate that is smallest for the object furthest in `direction`."""
    return {"left": o.cx, "right": -o.cx, "top": o.cy, "bottom": -o.cy}[direction]


def _unique_description(a: _Obj, objs: list[_Obj]) -> tuple[str | None, str | None] | None:
    """The shortest (colour, shape) description that only `a` matches, if any."""
    for colour, shape in ((a.colour, None), (None, a.shape), (a.colour, a.shape)):
        if _matches(objs, colour, shape) == [a]:
            return colour, shape
    return None


def _expressions(
    t: _Obj, objs: list[_Obj], w: int, h: int, rng: np.random.Generator
) -> dict[str, list[str]]:
    """Every templated expression that picks out `t` and no other object, by type."""

    def pick(options: Sequence[str]) -> str:
        return options[int(rng.integers(len(options)))]

    out: dict[str, list[str]] = {k: [] for k in EXPRESSION_TYPES}
    margin = {d: POSITION_MARGIN * (w if d in ("left", "right") else h) for d in _SPATIAL}
    descs = [(t.colour, t.shape), (t.colour, None), (None, t.shape), (None, None)]

    for colour, shape in descs[:3]:
        if _matches(objs, colour, shape) == [t]:
            noun = _noun(colour, shape, rng)
            out["appearance"].append(pick((noun, f"the {noun}")))

    for colour, shape in descs:
        cands = _matches(objs, colour, shape)
        if len(cands) < 2:
            continue
        others = [o for o in cands if o is not t]
        for d, templates in _SPATIAL.items():
            if all(_key(o, d) - _key(t, d) >= margin[d] for o in others):
                out["spatial"].append(pick(templates).format(np=_noun(colour, shape, rng)))
        pair = len(cands) == 2
        if all(t.area >= AREA_RATIO * o.area for o in others):
            pool = ("the biggest {np}", "the largest {np}") + (("big {np}",) if pair else ())
            out["size"].append(pick(pool).format(np=_noun(colour, shape, rng)))
        if all(o.area >= AREA_RATIO * t.area for o in others):
            pool = ("the smallest {np}",) + (("small {np}", "the little {np}") if pair else ())
            out["size"].append(pick(pool).format(np=_noun(colour, shape, rng)))

    for a in objs:
        anchor = _unique_description(a, objs) if a is not t else None
        if anchor is None:
            continue
        anchor_noun = _noun(*anchor, rng)
        for colour, shape in descs:
            # Other objects of the target's description: the relation must tell them apart.
            others = [o for o in _matches(objs, colour, shape) if o is not a and o is not t]
            if not others:
                continue
            for d, words in _RELATIONS.items():
                gap = _key(a, d) - _key(t, d)  # > 0: t lies further towards d than a
                along, across = abs(t.cx - a.cx), abs(t.cy - a.cy)
                if d in ("top", "bottom"):
                    along, across = across, along
                if (
                    gap >= margin[d]
                    and along >= across
                    and all(_key(o, d) - _key(a, d) >= margin[d] for o in others)
                ):
                    noun = _noun(colour, shape, rng)
                    out["relational"].append(f"the {noun} {pick(words)} the {anchor_noun}")
    return out


def _choose_sentences(
    by_type: dict[str, list[str]], rng: np.random.Generator,
    keep_type: Mapping[str, float] | None = None,
) -> list[tuple[str, str]]:
    """Up to MAX_SENTENCES_PER_REF distinct (sentence, type), one per type before any repeat;
    with `keep_type`, each type is kept with its chance first."""
    types = [k for k in EXPRESSION_TYPES if by_type[k]]
    if keep_type is not None:
        types = [k for k in types if rng.uniform() < keep_type[k]]
        by_type = {k: by_type[k] if k in types else [] for k in by_type}
    order = [types[i] for i in rng.permutation(len(types))]
    firsts = [(by_type[k][int(rng.integers(len(by_type[k])))], k) for k in order]
    rest = [(s, k) for k in order for s in by_type[k] if (s, k) not in firsts]
    chosen: list[tuple[str, str]] = []
    for s, k in firsts + [rest[i] for i in rng.permutation(len(rest))]:
        if len(chosen) < MAX_SENTENCES_PER_REF and s not in (c for c, _ in chosen):
            chosen.append((s, k))
    return chosen


def _pick_distinct(options: list[str], rng: np.random.Generator, k: int) -> list[str]:
    """Up to k distinct options in a random order."""
    unique = list(dict.fromkeys(options))
    return [unique[i] for i in rng.permutation(len(unique))[:k]]


def _multi_target(objs: list[_Obj], rng: np.random.Generator) -> tuple[list[_Obj], list[str]]:
    """Every object of one colour, shape or both, when that is at least two objects, and up to
    MAX_GENERALIZED_SENTENCES expressions naming them all; ([], []) when no two objects share
    either."""
    descs = {d for o in objs for d in ((o.colour, None), (None, o.shape), (o.colour, o.shape))}
    groups = sorted((d for d in descs if len(_matches(objs, *d)) >= 2),
                    key=lambda d: (d[0] or "", d[1] or ""))
    if not groups:
        return [], []
    colour, shape = groups[int(rng.integers(len(groups)))]
    members = _matches(objs, colour, shape)
    head = [f"{shape}s" if shape else _GENERIC_PLURAL[int(rng.integers(len(_GENERIC_PLURAL)))]
            for _ in range(2)]
    nouns = [f"{colour} {h}" if colour else h for h in head]
    options = [f"all {nouns[0]}", f"all the {nouns[1]}", f"the {_COUNTS[len(members)]} {nouns[0]}"]
    if len(members) == 2:
        options.append(f"both {nouns[1]}")
    return members, _pick_distinct(options, rng, MAX_GENERALIZED_SENTENCES)


def _no_target(objs: list[_Obj], rng: np.random.Generator) -> list[str]:
    """Up to MAX_GENERALIZED_SENTENCES expressions naming a colour or a shape that no object in
    the scene has, so that they name nothing."""
    colours = {o.colour for o in objs}
    shapes = {o.shape for o in objs}
    options = []
    for colour in (*COLOURS, *UNSEEN_COLOURS, None):
        for shape in (*SHAPES, None):
            absent = (colour is not None and colour not in colours) or (
                shape is not None and shape not in shapes)
            if absent:
                noun = _noun(colour, shape, rng)
                options.append(noun if rng.uniform() < 0.3 else f"the {noun}")
    return _pick_distinct(options, rng, MAX_GENERALIZED_SENTENCES)


def _generalized_refs(
    objs: list[_Obj], rng: np.random.Generator
) -> list[tuple[list[_Obj], list[tuple[str, str]]]]:
    """The multi-target ref (when the scene has one) and the no-target ref of a scene."""
    refs: list[tuple[list[_Obj], list[tuple[str, str]]]] = []
    members, sentences = _multi_target(objs, rng)
    if members:
        refs.append((members, [(x, MULTI_TARGET) for x in sentences]))
    refs.append(([], [(x, NO_TARGET) for x in _no_target(objs, rng)]))
    return refs


# ------------------------------------------------------------------------------------- writing


def _scene(
    rng: np.random.Generator, n_range: tuple[int, int], domain: Domain
) -> tuple[int, int, list[_Obj], list[tuple[_Obj, list[tuple[str, str]]]]]:
    """A scene and its refs (target, [(sentence, type)]); redrawn until it has at least one ref."""
    while True:
        w, h = (int(v) for v in rng.integers(SIDE_RANGE[0], SIDE_RANGE[1] + 1, size=2))
        if w == h:
            continue  # non-square on purpose: it exercises the letterbox
        objs = _place_objects(rng, w, h, int(rng.integers(n_range[0], n_range[1] + 1)), domain)
        if len(objs) < 2:
            continue
        refs = []
        for i in rng.permutation(len(objs)):
            sentences = _choose_sentences(_expressions(objs[i], objs, w, h, rng), rng,
                                          domain.keep_type)
            if sentences:
                refs.append((objs[i], sentences))
        if refs:
            return w, h, objs, refs[:MAX_REFS_PER_IMAGE]


def synthesize(
    out_dir: str | Path,
    n_images: int = 900,
    seed: int = 0,
    *,
    name: str | None = None,
    weights: Mapping[str, int] = SPLIT_WEIGHTS,
    progress: Callable[[int, int], None] | None = None,
    generalized: bool = False,
    domain: str = "all",
) -> SynthSummary:
    """Write `out_dir/{name}/instances.json`, `refs(unc).p` and the JPEG images; return counts.

    900 images (600 train, 100 val, 100 testA, 100 testB) take a few seconds and are enough for
    `sera-tiny` to learn on a CPU. `name` is the dataset folder (default `synth`, `grefcoco` when
    generalized): the loader reads the result as `synth` or, written with name="refcoco", as
    `refcoco`. `generalized=True` writes the gRefCOCO layout (`grefs(unc).json`, images under
    `images/train2014/`) with multi-target and no-target refs besides the ordinary ones.
    `domain` is one of DOMAINS: all (the default), or the source or target task of a
    transfer (the module's docstring says how they differ).
    `progress(done, total)` is called after every image. A folder that cannot be written (or a
    full disk) raises SeraError naming it.
    """
    name = name or ("grefcoco" if generalized else "synth")
    if domain not in DOMAINS:
        raise SeraError(f"--domain {domain!r} is not a synthetic domain; choose one of "
                        f"{', '.join(DOMAINS)}")
    try:
        return _synthesize(Path(out_dir), n_images, seed, name, weights, progress, generalized,
                           DOMAINS[domain])
    except OSError as exc:
        where = exc.filename or out_dir
        raise SeraError(f"cannot write the synthetic data set to {out_dir} ({where}: "
                        f"{exc.strerror or exc}); choose a writable folder with free space"
                        ) from None


def _synthesize(
    out_dir: Path,
    n_images: int,
    seed: int,
    name: str,
    weights: Mapping[str, int],
    progress: Callable[[int, int], None] | None,
    generalized: bool,
    domain: Domain,
) -> SynthSummary:
    from pycocotools import mask as mask_utils

    root = Path(out_dir)
    image_dir = root / (GENERALIZED_IMAGE_DIR if generalized else IMAGE_DIR)
    image_dir.mkdir(parents=True, exist_ok=True)
    (root / name).mkdir(parents=True, exist_ok=True)
    counts = split_counts(n_images, weights)
    summary = SynthSummary(root=str(root), dataset=name,
                           domain=next(k for k, d in DOMAINS.items() if d is domain))
    images: list[dict] = []
    annotations: list[dict] = []
    refs: list[dict] = []
    types: Counter[str] = Counter()
    image_id = 0
    for split, n_split in counts.items():
        summary.images[split] = n_split
        summary.refs[split] = summary.sentences[split] = 0
        for _ in range(n_split):
            image_id += 1
            rng = np.random.default_rng([seed, image_id])
            w, h, objs, single_refs = _scene(rng, OBJECTS.get(split, OBJECTS["train"]), domain)
            file_name = f"{name}_{image_id:06d}.jpg"
            _render(rng, w, h, objs, domain.striped).save(image_dir / file_name, quality=92)
            scene_refs = [([target], sentences) for target, sentences in single_refs]
            if generalized:  # drawn last: the plain set's draws, and bytes, stay as they were
                scene_refs += _generalized_refs(objs, rng)
            images.append({"id": image_id, "file_name": file_name, "width": w, "height": h})
            ann_ids = {}
            for k, o in enumerate(objs):
                ann_ids[id(o)] = ann_id = image_id * 10 + k
                rle = mask_utils.encode(np.asfortranarray(o.mask.astype(np.uint8)))
                annotations.append(
                    {
                        "id": ann_id,
                        "image_id": image_id,
                        "category_id": SHAPES.index(o.shape) + 1,
                        "segmentation": o.segmentation,
                        "area": o.area,
                        "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                        "iscrowd": 0,
                        "color": o.colour,
                    }
                )
            for targets, sentences in scene_refs:
                ref_id = len(refs) + 1
                sent_ids = [ref_id * 10 + j for j in range(len(sentences))]
                ids = [ann_ids[id(t)] for t in targets]
                categories = [SHAPES.index(t.shape) + 1 for t in targets]
                ref = {
                    # gRefCOCO: a list of annotations, [-1] for no target; refer: one
                    "ann_id": (ids or [-1]) if generalized else ids[0],
                    "image_id": image_id,
                    "category_id": sorted(set(categories)) if generalized else categories[0],
                    "split": split,
                    "file_name": f"{name}_{image_id:06d}_{ref_id}.jpg",
                    "sent_ids": sent_ids,
                    "sentences": [
                        {"sent_id": i, "sent": s, "raw": s, "tokens": s.split(), "type": k}
                        for i, (s, k) in zip(sent_ids, sentences, strict=True)
                    ],
                }
                refs.append({"ref_id": ref_id, **ref,
                             **({"no_target": not targets} if generalized else {})})
                types.update(k for _, k in sentences)
                summary.refs[split] += 1
                summary.sentences[split] += len(sentences)
            if progress is not None:
                progress(image_id, n_images)
    instances = {
        "info": {"description": f"sera synthetic shapes, seed {seed}"},
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": i + 1, "name": s, "supercategory": "shape"} for i, s in enumerate(SHAPES)
        ],
    }
    (root / name / "instances.json").write_text(json.dumps(instances, sort_keys=True))
    if generalized:
        (root / name / "grefs(unc).json").write_text(json.dumps(refs, sort_keys=True))
    else:
        with (root / name / "refs(unc).p").open("wb") as f:
            pickle.dump(refs, f, protocol=2)
    summary.types = {k: types[k] for k in EXPRESSION_TYPES
                     + (GENERALIZED_TYPES if generalized else ())}
    return summary
