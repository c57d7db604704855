"""The synthetic data set: deterministic, readable by the `refer` loader, and unambiguous.

Uniqueness is checked by a resolver written here from the sentence grammar alone (not by the
generator's code): each sentence is parsed, evaluated on the annotations, and must name exactly
its ref's object, with a clear margin where it compares positions or sizes.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from sera_cli.data.refer import ReferIndex
from sera_cli.data.synth import synthesize
from sera_cli.errors import SeraError

SHAPES = {"circle", "square", "triangle", "star"}
COLOURS = {"red", "green", "blue", "yellow"}
GENERIC = {"one", "shape", "thing", "object"}


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes(tmp_path: Path, synth_data_root: Path) -> None:
    synthesize(tmp_path / "a", n_images=18, seed=0)
    assert _digest(tmp_path / "a") == _digest(synth_data_root)
    synthesize(tmp_path / "b", n_images=18, seed=1)
    assert _digest(tmp_path / "b") != _digest(synth_data_root)


def test_loader_reads_it_with_all_splits_and_types(synth_data_root: Path) -> None:
    index = ReferIndex.load(synth_data_root, "synth")
    assert index.splits() == ["train", "val", "testA", "testB"]
    images = {s: {x.image_id for x in index.samples(s)} for s in index.splits()}
    assert {s: len(ids) for s, ids in images.items()} == {
        "train": 12,
        "val": 2,
        "testA": 2,
        "testB": 2,
    }
    types = {x.expr_type for s in index.splits() for x in index.samples(s)}
    assert types == {"appearance", "spatial", "size", "relational"}
    for split in index.splits():
        for sample in index.samples(split)[:3]:
            w, h = index.image_size(sample)
            assert w != h and 160 <= w <= 320 and 160 <= h <= 320
            assert index.image(sample).size == (w, h)
            assert index.mask(sample).shape == (h, w)


def test_written_as_refcoco_it_loads_as_refcoco(tmp_path: Path) -> None:
    synthesize(tmp_path, n_images=4, seed=3, name="refcoco")
    index = ReferIndex.load(tmp_path, "refcoco")
    assert index.split_by == "unc" and len(index.samples("train")) > 0


def test_too_few_images_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(SeraError, match="--images 3"):
        synthesize(tmp_path, n_images=3)


# ------------------------------------------------------------------------------------- resolver


def _objects(root: Path, dataset: str = "synth") -> dict[int, list[dict]]:
    """Per image: objects with shape, colour, mask centroid and area, from instances.json."""
    index = ReferIndex.load(root, dataset)
    inst = json.loads((root / dataset / "instances.json").read_text())
    names = {c["id"]: c["name"] for c in inst["categories"]}
    sizes = {im["id"]: (im["height"], im["width"]) for im in inst["images"]}
    from sera_cli.data.masks import decode_segmentation

    out: dict[int, list[dict]] = {}
    for a in inst["annotations"]:
        m = decode_segmentation(a["segmentation"], *sizes[a["image_id"]])
        ys, xs = np.nonzero(m)
        out.setdefault(a["image_id"], []).append(
            {
                "id": a["id"],
                "shape": names[a["category_id"]],
                "colour": a["color"],
                "x": xs.mean() + 0.5,
                "y": ys.mean() + 0.5,
                "area": int(m.sum()),
                "size": sizes[a["image_id"]],
            }
        )
    assert index  # the loader accepted the same files
    return out


def _np(words: str, objs: list[dict]) -> list[dict]:
    """Objects matching a noun phrase '[colour] head'."""
    parts = words.split()
    colour = parts[0] if parts[0] in COLOURS else None
    head = parts[-1]
    assert len(parts) == (2 if colour else 1) and (head in SHAPES or head in GENERIC), words
    return [
        o
        for o in objs
        if (colour is None or o["colour"] == colour) and (head in GENERIC or o["shape"] == head)
    ]


def _extreme(cands: list[dict], key, min_gap: float) -> list[dict]:
    ranked = sorted(cands, key=key)
    assert len(ranked) >= 2 and key(ranked[1]) - key(ranked[0]) >= min_gap
    return ranked[:1]


DIRECTION = {
    "left": "left",
    "leftmost": "left",
    "right": "right",
    "rightmost": "right",
    "top": "top",
    "upper": "top",
    "bottom": "bottom",
    "lower": "bottom",
}
RELATION = {
    "left of": "left",
    "to the left of": "left",
    "right of": "right",
    "to the right of": "right",
    "above": "top",
    "below": "bottom",
    "under": "bottom",
}


def _key(direction: str):
    return {
        "left": lambda o: o["x"],
        "right": lambda o: -o["x"],
        "top": lambda o: o["y"],
        "bottom": lambda o: -o["y"],
    }[direction]


def _resolve(sentence: str, objs: list[dict]) -> tuple[str, list[dict]]:
    """(type, matching objects) of a sentence, from its words."""
    h, w = objs[0]["size"]
    gap = {"left": 0.05 * w, "right": 0.05 * w, "top": 0.05 * h, "bottom": 0.05 * h}
    rel = re.fullmatch(
        r"the (.+?) (to the left of|left of|to the right of|right of|above|below|under) the (.+)",
        sentence,
    )
    if rel:
        anchors = _np(rel.group(3), objs)
        assert len(anchors) == 1, sentence
        d, a = RELATION[rel.group(2)], anchors[0]
        cands = [o for o in _np(rel.group(1), objs) if o is not a]
        assert len(cands) >= 2, sentence  # the relation is needed
        hits = [o for o in cands if _key(d)(o) < _key(d)(a)]
        assert all(abs(_key(d)(o) - _key(d)(a)) >= gap[d] for o in cands), sentence
        return "relational", hits
    m = re.fullmatch(r"the (leftmost|rightmost|top|bottom|upper|lower|left|right) (.+)", sentence)
    m = m or re.fullmatch(r"the (.+) (?:on the|at the) (left|right|top|bottom)", sentence)
    if m:
        direction_word, noun = (m.group(1), m.group(2))
        if direction_word not in DIRECTION:
            direction_word, noun = noun, direction_word
        d = DIRECTION[direction_word]
        return "spatial", _extreme(_np(noun, objs), _key(d), gap[d])
    m = re.fullmatch(r"(?:the )?(biggest|largest|big|smallest|small|little) (.+)", sentence)
    if m:
        cands = _np(m.group(2), objs)
        big = m.group(1) in ("biggest", "largest", "big")
        if m.group(1) in ("big", "small", "little"):
            assert len(cands) == 2, sentence
        ranked = sorted(cands, key=lambda o: -o["area"] if big else o["area"])
        assert max(ranked[0]["area"], ranked[1]["area"]) >= 1.5 * min(
            ranked[0]["area"], ranked[1]["area"]
        ), sentence
        return "size", ranked[:1]
    return "appearance", _np(sentence.removeprefix("the "), objs)


def test_every_sentence_names_exactly_its_object(synth_data_root: Path) -> None:
    index = ReferIndex.load(synth_data_root, "synth")
    objects = _objects(synth_data_root)
    seen = 0
    for split in index.splits():
        for s in index.samples(split):
            kind, hits = _resolve(s.sentence, objects[s.image_id])
            assert kind == s.expr_type, s
            assert [o["id"] for o in hits] == list(s.ann_ids), s
            seen += 1
    assert seen == sum(len(index.samples(x)) for x in index.splits()) > 50


def test_objects_are_large_enough_and_test_splits_differ_in_crowding(synth_data_root: Path) -> None:
    index = ReferIndex.load(synth_data_root, "synth")
    objects = _objects(synth_data_root)
    for o in (o for objs in objects.values() for o in objs):
        h, w = o["size"]
        assert o["area"] >= (0.08 * min(h, w)) ** 2
    counts = {
        split: {len(objects[x.image_id]) for x in index.samples(split)} for split in index.splits()
    }
    assert counts["testA"] <= {2, 3} and counts["testB"] <= {4, 5}


def test_pixels_inside_a_mask_have_the_named_colour(synth_data_root: Path) -> None:
    index = ReferIndex.load(synth_data_root, "synth")
    objects = {o["id"]: o for objs in _objects(synth_data_root).values() for o in objs}
    reference = {
        "red": (220, 40, 40),
        "green": (40, 170, 60),
        "blue": (40, 80, 225),
        "yellow": (235, 210, 40),
    }
    for sample in index.samples("val"):
        pixels = np.asarray(index.image(sample)).astype(float)[index.mask(sample)]
        target = reference[objects[sample.ann_ids[0]]["colour"]]
        assert np.abs(np.median(pixels, axis=0) - target).max() < 40


# -------------------------------------------------------------------------- generalized (gRefCOCO)

UNSEEN = {"purple", "orange"}
GENERIC_PLURAL = {"ones", "shapes", "things", "objects"}
COUNTS = {"both": 2, "the two": 2, "the three": 3, "the four": 4, "the five": 5}


def _resolve_generalized(sentence: str, objs: list[dict]) -> tuple[str, list[dict]]:
    """(type, objects) of a multi-target or no-target sentence, from its words."""
    m = re.fullmatch(r"(all the|all|both|the two|the three|the four|the five) (.+)", sentence)
    if m:
        *colour, head = m.group(2).split()
        assert colour in ([], *([c] for c in COLOURS)), sentence
        assert head in GENERIC_PLURAL or (head.endswith("s") and head[:-1] in SHAPES), sentence
        hits = [o for o in objs if (not colour or o["colour"] == colour[0])
                and (head in GENERIC_PLURAL or o["shape"] == head[:-1])]
        assert len(hits) == COUNTS.get(m.group(1), len(hits)) >= 2, sentence
        return "multi-target", hits
    *colour, head = sentence.removeprefix("the ").split()
    assert colour in ([], *([c] for c in COLOURS | UNSEEN)), sentence
    assert head in SHAPES | GENERIC, sentence
    named_colour = colour[0] if colour else None
    absent = (named_colour is not None and named_colour not in {o["colour"] for o in objs}) or (
        head in SHAPES and head not in {o["shape"] for o in objs})
    assert absent, sentence  # a colour or a shape the image does not have
    return "no-target", []


def test_generalized_sentences_name_exactly_their_objects(gref_synth_root: Path) -> None:
    index = ReferIndex.load(gref_synth_root, "grefcoco")
    assert index.generalized
    objects = _objects(gref_synth_root, "grefcoco")
    seen: dict[str, int] = {}
    for split in index.splits():
        for s in index.samples(split):
            resolve = _resolve_generalized if s.expr_type in ("multi-target", "no-target") \
                else _resolve
            kind, hits = resolve(s.sentence, objects[s.image_id])
            assert kind == s.expr_type, s
            assert sorted(o["id"] for o in hits) == sorted(s.ann_ids), s
            seen[kind] = seen.get(kind, 0) + 1
    assert seen["no-target"] >= 18 and seen["multi-target"] >= 5


def test_generalized_layout_holds_the_plain_sets_images_and_refs(
        gref_synth_root: Path, synth_data_root: Path) -> None:
    images = gref_synth_root / "images" / "train2014"
    assert (gref_synth_root / "grefcoco" / "grefs(unc).json").is_file()
    assert not (gref_synth_root / "grefcoco" / "refs(unc).p").exists()
    plain_images = synth_data_root / "images" / "mscoco" / "images" / "train2014"
    assert [p.read_bytes() for p in sorted(images.iterdir())] == [
        p.read_bytes() for p in sorted(plain_images.iterdir())]
    plain = ReferIndex.load(synth_data_root, "synth")
    general = ReferIndex.load(gref_synth_root, "grefcoco")
    for split in plain.splits():
        single = [(s.image_id, s.sentence, s.ann_ids, s.expr_type) for s in general.samples(split)
                  if s.expr_type in ("appearance", "spatial", "size", "relational")]
        assert single == [(s.image_id, s.sentence, s.ann_ids, s.expr_type)
                          for s in plain.samples(split)]
    refs = json.loads((gref_synth_root / "grefcoco" / "grefs(unc).json").read_text())
    assert all(r["no_target"] == (r["ann_id"] == [-1]) and isinstance(r["ann_id"], list)
               for r in refs)


def test_generalized_same_seed_same_bytes(tmp_path: Path, gref_synth_root: Path) -> None:
    summary = synthesize(tmp_path, n_images=18, seed=0, generalized=True)
    assert _digest(tmp_path) == _digest(gref_synth_root)
    assert summary.dataset == "grefcoco" and set(summary.types) == {
        "appearance", "spatial", "size", "relational", "multi-target", "no-target"}
