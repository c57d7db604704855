"""The `refer` layout, built by hand: masks from each COCO encoding, image modes, bad entries."""

from __future__ import annotations

import json
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from sera_cli.data.check import check, find_datasets
from sera_cli.data.images import load_image
from sera_cli.data.refer import ReferIndex, ReferSample
from sera_cli.errors import SeraError

IMAGES = Path("images/mscoco/images/train2014")
ORIENTATION = 0x0112  # EXIF tag


def _rle_mask() -> np.ndarray:
    """(10, 20) mask: column 3, rows 2..4 -- Fortran-order pixels 32, 33, 34."""
    m = np.zeros((10, 20), bool)
    m[2:5, 3] = True
    return m


def _blob(h: int, w: int) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w]
    return (xs - w / 3) ** 2 + (ys - h / 2) ** 2 < (min(h, w) / 3) ** 2


def _rotated_jpeg(path: Path) -> None:
    """Stored 30 wide x 20 high, red top-left corner; EXIF says: turn 90 degrees clockwise."""
    a = np.full((20, 30, 3), 128, np.uint8)
    a[:5, :5] = (255, 0, 0)
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    Image.fromarray(a).save(path, quality=95, exif=exif.tobytes())


def _sent(sent_id: int, text: str, expr_type: str | None = None) -> dict:
    d = {"sent_id": sent_id, "sent": text, "raw": text, "tokens": text.split()}
    if expr_type:
        d["type"] = expr_type
    return d


def build_refer(root: Path, dataset: str = "refcoco", split_by: str = "unc") -> Path:
    """A refer-layout data set with one image per case, written field by field."""
    img_dir = root / IMAGES
    img_dir.mkdir(parents=True)
    (root / dataset).mkdir()
    Image.fromarray(np.full((30, 40, 3), 200, np.uint8)).save(img_dir / "rgb.jpg")
    Image.fromarray(np.full((10, 20), 90, np.uint8), "L").save(img_dir / "gray.png")
    Image.new("CMYK", (24, 16), (0, 255, 255, 0)).save(img_dir / "cmyk.jpg")
    _rotated_jpeg(img_dir / "turned.jpg")  # annotated in the turned frame: 20 wide x 30 high
    _rotated_jpeg(img_dir / "stored.jpg")  # annotated in the stored frame: 30 wide x 20 high
    images = [
        {"id": 1, "file_name": "rgb.jpg", "width": 40, "height": 30},
        {"id": 2, "file_name": "gray.png", "width": 20, "height": 10},
        {"id": 3, "file_name": "cmyk.jpg", "width": 24, "height": 16},
        {"id": 4, "file_name": "turned.jpg", "width": 20, "height": 30},
        {"id": 5, "file_name": "stored.jpg", "width": 30, "height": 20},
    ]
    compressed = mask_utils.encode(np.asfortranarray(_blob(16, 24).astype(np.uint8)))
    annotations = [
        # polygon: the square x in [10, 20), y in [5, 15)
        {"id": 11, "image_id": 1, "segmentation": [[10, 5, 20, 5, 20, 15, 10, 15]]},
        # uncompressed RLE, column-major counts
        {"id": 21, "image_id": 2, "segmentation": {"size": [10, 20], "counts": [32, 3, 165]}},
        # compressed RLE, as pycocotools writes it to JSON
        {
            "id": 31,
            "image_id": 3,
            "segmentation": {"size": [16, 24], "counts": compressed["counts"].decode("ascii")},
        },
        {"id": 41, "image_id": 4, "segmentation": [[0, 0, 5, 0, 5, 5, 0, 5]]},
        {"id": 51, "image_id": 5, "segmentation": [[0, 0, 5, 0, 5, 5, 0, 5]]},
    ]
    refs = [
        {
            "ref_id": 1,
            "ann_id": 11,
            "image_id": 1,
            "split": "train",
            "sentences": [
                _sent(101, "the square", "appearance"),
                _sent(102, "middle box", "spatial"),
            ],
        },
        {
            "ref_id": 2,
            "ann_id": 21,
            "image_id": 2,
            "split": "train",
            "sentences": [_sent(201, "thin line")],
        },
        {
            "ref_id": 3,
            "ann_id": 31,
            "image_id": 3,
            "split": "val",
            "sentences": [
                _sent(301, "left blob"),
                _sent(302, "the round thing"),
                _sent(303, "red"),
            ],
        },
        {
            "ref_id": 4,
            "ann_id": 41,
            "image_id": 4,
            "split": "testA",
            "sentences": [_sent(401, "top corner")],
        },
        {
            "ref_id": 5,
            "ann_id": 51,
            "image_id": 5,
            "split": "testB",
            "sentences": [_sent(501, "top corner")],
        },
    ]
    (root / dataset / "instances.json").write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": []})
    )
    (root / dataset / f"refs({split_by}).p").write_bytes(pickle.dumps(refs, protocol=2))
    return root


def _edit(root: Path, dataset: str, fn) -> None:
    """Apply fn(instances, refs) to the data set's files in place."""
    inst_path = root / dataset / "instances.json"
    refs_path = root / dataset / "refs(unc).p"
    instances = json.loads(inst_path.read_text())
    refs = pickle.loads(refs_path.read_bytes())
    fn(instances, refs)
    inst_path.write_text(json.dumps(instances))
    refs_path.write_bytes(pickle.dumps(refs, protocol=2))


@pytest.fixture
def refer_root(tmp_path: Path) -> Path:
    return build_refer(tmp_path)


def test_splits_and_every_sentence_is_a_sample(refer_root: Path) -> None:
    index = ReferIndex.load(refer_root, "refcoco")
    assert index.split_by == "unc"
    assert index.splits() == ["train", "val", "testA", "testB"]
    assert [len(index.samples(s)) for s in index.splits()] == [3, 3, 1, 1]
    first = index.samples("train")[0]
    assert first == ReferSample(1, 101, (11,), 1, "the square", "train", "appearance")
    assert index.samples("val")[0].expr_type is None
    assert index.image_path(first) == refer_root / IMAGES / "rgb.jpg"
    assert find_datasets(refer_root) == ["refcoco"]


def test_masks_from_polygon_and_both_rle_forms(refer_root: Path) -> None:
    index = ReferIndex.load(refer_root, "refcoco")
    polygon = index.mask(index.samples("train")[0])
    expected = np.zeros((30, 40), bool)
    expected[5:15, 10:20] = True
    assert polygon.dtype == np.bool_ and np.array_equal(polygon, expected)
    assert np.array_equal(index.mask(index.samples("train")[2]), _rle_mask())
    assert np.array_equal(index.mask(index.samples("val")[0]), _blob(16, 24))


def test_images_of_any_mode_come_back_rgb_in_the_mask_frame(refer_root: Path) -> None:
    index = ReferIndex.load(refer_root, "refcoco")
    for split in index.splits():
        for s in index.samples(split):
            im = index.image(s)
            assert im.mode == "RGB"
            assert im.size == index.image_size(s) == index.mask(s).shape[::-1]
    gray = np.asarray(index.image(index.samples("train")[2]))
    assert (gray == 90).all()
    cmyk = np.asarray(index.image(index.samples("val")[0])).astype(int)
    assert abs(cmyk[..., 0].mean() - 255) < 5 and cmyk[..., 1:].mean() < 5  # red
    turned = np.asarray(index.image(index.samples("testA")[0]))  # turned clockwise: red top-right
    assert turned.shape == (30, 20, 3) and turned[1, -2, 0] > 200 and turned[1, 1, 0] < 200
    stored = np.asarray(index.image(index.samples("testB")[0]))  # as stored: red top-left
    assert stored.shape == (20, 30, 3) and stored[1, 1, 0] > 200


def test_unknown_split_lists_the_known_ones(refer_root: Path) -> None:
    index = ReferIndex.load(refer_root, "refcoco")
    with pytest.raises(SeraError, match="unknown split 'test'.*train, val, testA, testB"):
        index.samples("test")


def test_missing_files_are_named(tmp_path: Path) -> None:
    root = build_refer(tmp_path)
    with pytest.raises(SeraError, match=r"missing .*refs\(google\)\.p.*refs\(unc\)\.p"):
        ReferIndex.load(root, "refcoco", split_by="google")
    with pytest.raises(SeraError, match=r"no folder for dataset 'refcocog'.*refcoco"):
        ReferIndex.load(root, "refcocog")
    (root / "refcoco" / "instances.json").unlink()
    with pytest.raises(SeraError, match=r"missing .*refcoco/instances\.json"):
        ReferIndex.load(root, "refcoco")
    with pytest.raises(SeraError, match="data folder not found"):
        ReferIndex.load(tmp_path / "nowhere", "refcoco")


def test_default_split_by_per_dataset(tmp_path: Path) -> None:
    build_refer(tmp_path / "a", dataset="refcocog", split_by="umd")
    assert ReferIndex.load(tmp_path / "a", "refcocog").split_by == "umd"
    build_refer(tmp_path / "b", dataset="mine", split_by="custom")  # unknown name: the only file
    assert ReferIndex.load(tmp_path / "b", "mine").split_by == "custom"


def _break_things(instances: dict, refs: list) -> None:
    instances["images"][0]["file_name"] = "../../../../etc/passwd"  # ref 1, train
    instances["images"][1]["file_name"] = "/etc/passwd"  # ref 2, train
    instances["annotations"] = [a for a in instances["annotations"] if a["id"] != 31]  # ref 3, val
    instances["images"][3]["file_name"] = "gone.jpg"  # ref 4, testA
    refs[4]["sentences"].append(_sent(502, "   "))  # ref 5, testB: one empty sentence


def test_bad_entries_are_counted_raised_or_skipped(refer_root: Path) -> None:
    _edit(refer_root, "refcoco", _break_things)
    report = check(refer_root, "refcoco")
    assert report.bad == 5
    assert {s: c.bad for s, c in report.splits.items()} == {
        "train": 2,
        "val": 1,
        "testA": 1,
        "testB": 1,
    }
    assert report.splits["train"].problems == {"unsafe file name": 2}
    assert report.splits["val"].problems == {"missing annotation": 1}
    assert report.splits["testA"].problems == {"missing image file": 1}
    assert report.splits["testB"].problems == {"empty sentence": 1}
    assert report.splits["train"].refs == 2 and report.splits["train"].images == 2

    with pytest.raises(SeraError, match="5 bad entries.*ref 1: unsafe file name.*sera data check"):
        ReferIndex.load(refer_root, "refcoco")

    index = ReferIndex.load(refer_root, "refcoco", skip_bad=True)
    assert index.splits() == ["testB"]  # the empty sentence drops itself, not its ref
    assert [s.sent_id for s in index.samples("testB")] == [501]
    assert index.skipped == {"train": 2, "val": 1, "testA": 1, "testB": 1}


@pytest.mark.parametrize(
    "segmentation, problem",
    [
        ({"size": [16, 24], "counts": [1, 2]}, "bad segmentation"),  # covers 3 of 384 pixels
        ({"size": [16, 24], "counts": "0?!~"}, "bad segmentation"),
        ({"size": [10, 10], "counts": [100]}, "bad segmentation"),  # wrong size
        ([[1, 2, 3, 4]], "bad segmentation"),  # 2 points: not a polygon (pycocotools: a bbox)
        ("oops", "bad segmentation"),
    ],
)
def test_malformed_segmentations_are_bad_entries(refer_root: Path, segmentation, problem) -> None:
    def edit(instances: dict, refs: list) -> None:
        instances["annotations"][2]["segmentation"] = segmentation

    _edit(refer_root, "refcoco", edit)
    assert check(refer_root, "refcoco").splits["val"].problems == {problem: 1}


# ------------------------------------------------------------------------------------ load_image


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG that claims width x height pixels and holds none: opening must not decode it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def test_load_image_modes(tmp_path: Path) -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:2, :, 3] = 255  # top half opaque red, bottom half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    out = np.asarray(load_image(tmp_path / "rgba.png"))
    assert (out[:2] == (255, 0, 0)).all() and (out[2:] == 255).all()  # laid on white

    Image.fromarray(np.full((3, 5), 65535, np.uint16)).save(tmp_path / "deep.png")
    Image.fromarray(np.full((3, 5), 32896, np.uint16)).save(tmp_path / "mid.png")
    assert (np.asarray(load_image(tmp_path / "deep.png")) == 255).all()  # rescaled, not clipped
    assert (np.asarray(load_image(tmp_path / "mid.png")) == 128).all()

    pal = Image.new("P", (4, 4), 1)
    pal.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    pal.save(tmp_path / "pal.png")
    assert (np.asarray(load_image(tmp_path / "pal.png")) == (0, 255, 0)).all()

    frames = [Image.new("RGB", (6, 4), c) for c in ((0, 0, 255), (255, 0, 0))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    first = np.asarray(load_image(tmp_path / "anim.gif")).astype(int)
    assert first.shape == (4, 6, 3) and first[..., 2].min() > 200 and first[..., 0].max() < 50

    _rotated_jpeg(tmp_path / "r.jpg")
    assert load_image(tmp_path / "r.jpg").size == (20, 30)
    assert load_image(tmp_path / "r.jpg", exif=False).size == (30, 20)


def test_load_image_refuses_bad_files(tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("hello")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(
        tmp_path / "full.jpg"
    )
    (tmp_path / "cut.jpg").write_bytes((tmp_path / "full.jpg").read_bytes()[:600])
    for name in ("empty.jpg", "text.jpg", "cut.jpg"):
        with pytest.raises(SeraError, match=f"cannot read image .*{name}"):
            load_image(tmp_path / name)
    with pytest.raises(SeraError, match="image not found: .*absent.jpg"):
        load_image(tmp_path / "absent.jpg")
    with pytest.raises(SeraError, match="not a file"):
        load_image(tmp_path)


def test_decompression_bombs_are_refused_from_the_header(tmp_path: Path, monkeypatch) -> None:
    _png_header_only(tmp_path / "bomb.png", 100_000, 100_000)  # 30 GB if it were decoded
    with pytest.raises(SeraError, match="bomb.png is too large"):
        load_image(tmp_path / "bomb.png")
    # between the limit and twice the limit Pillow only warns: refused all the same
    Image.new("RGB", (20, 20)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300)
    with pytest.raises(SeraError, match="big.png is too large"):
        load_image(tmp_path / "big.png")
