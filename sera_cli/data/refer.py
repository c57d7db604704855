"""Index of a data set in the layout of the public `refer` release (RefCOCO, RefCOCO+, RefCOCOg).

Layout, relative to a data root DATA::

    DATA/{dataset}/instances.json        COCO images, annotations (polygons or RLE), categories
    DATA/{dataset}/refs({split_by}).p    pickle: list of refs (ref_id, ann_id, image_id, split,
                                         sentences [{sent_id, sent, raw, tokens, type?}])
    DATA/images/mscoco/images/train2014/{file_name}

`sera data synth` writes this layout too, so one loader serves real and synthetic data. The index
knows nothing about torch: `dataset.py` turns a split of it into tensors.

Bad entries (a ref whose annotation, image record or image file is missing, whose file name would
leave the image folder, whose split name is not a plain name, whose segmentation is malformed,
or a sentence that is empty) are found when the index is loaded, so a training run fails at once
rather than hours in: `ReferIndex.load(..., skip_bad=False)` raises naming how many and the
first few, and `skip_bad=True` leaves them out and counts them in `index.skipped`. `check()`
(`check.py`) reports them per split without raising.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from sera_cli.data.images import load_image
from sera_cli.data.masks import decode_segmentation, segmentation_problem
from sera_cli.data.safe_pickle import load_refs
from sera_cli.errors import SeraError

#: Known data sets and their splitBy values; the first one is the default.
DATASETS: dict[str, tuple[str, ...]] = {
    "refcoco": ("unc", "google"),
    "refcoco+": ("unc",),
    "refcocog": ("umd", "google"),
    "synth": ("unc",),
}
IMAGE_DIR = PurePosixPath("images/mscoco/images/train2014")
_SPLIT_ORDER = ("train", "val", "test", "testA", "testB", "testC")
MAX_EXAMPLES = 3
_SENTENCE_PROBLEMS = {"empty sentence", "malformed sentence"}


@dataclass(frozen=True)
class ReferSample:
    """One (ref, sentence) pair: the unit that training draws and the metrics count."""

    ref_id: int
    sent_id: int
    ann_id: int
    image_id: int
    sentence: str
    split: str
    expr_type: str | None = None


@dataclass(frozen=True)
class _ImageRecord:
    file_name: str
    width: int
    height: int


# --------------------------------------------------------------------------------------- parsing


def _safe_file_name(name: Any) -> bool:
    """A file name may not leave the image folder: no absolute path, no `..`, no NUL, no `\\`."""
    if not isinstance(name, str) or not name or "\0" in name or "\\" in name:
        return False
    p = PurePosixPath(name)
    return not p.is_absolute() and ".." not in p.parts


def _safe_split_name(name: str) -> bool:
    """A split name is one plain path component (it names a folder of saved masks)."""
    return bool(name) and name not in (".", "..") and not set(name) & {"/", "\\", "\0"}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass
class _ScannedRef:
    ref_id: Any
    split: str
    image_id: Any
    samples: list[ReferSample]
    problems: list[str]


def _resolve_paths(data_root: Path, dataset: str, split_by: str | None) -> tuple[Path, Path, str]:
    if not data_root.is_dir():
        raise SeraError(f"data folder not found: {data_root}")
    folder = data_root / dataset
    if not folder.is_dir():
        present = sorted(p.name for p in data_root.iterdir() if p.is_dir())
        raise SeraError(
            f"no folder for dataset {dataset!r}: {folder} does not exist "
            f"(folders in {data_root}: {', '.join(present) or 'none'}; known datasets: "
            f"{', '.join(DATASETS)}); point --data at the `refer` root or run `sera data synth`"
        )
    if split_by is None:
        if dataset in DATASETS:
            split_by = DATASETS[dataset][0]
        else:
            found = sorted(p.name[5:-3] for p in folder.glob("refs(*).p"))
            if len(found) != 1:
                raise SeraError(
                    f"cannot tell the splitBy of {folder}: refs files for {found or 'none'}; "
                    "pass --split-by"
                )
            split_by = found[0]
    instances = folder / "instances.json"
    refs = folder / f"refs({split_by}).p"
    if not instances.is_file():
        raise SeraError(f"missing {instances}; the `refer` layout needs it next to the refs file")
    if not refs.is_file():
        found = sorted(p.name for p in folder.glob("refs(*).p"))
        raise SeraError(
            f"missing {refs} (split_by={split_by!r}); refs files in {folder}: "
            f"{', '.join(found) or 'none'}"
        )
    return instances, refs, split_by


def _load_instances(path: Path) -> tuple[dict[int, _ImageRecord], dict[int, Any]]:
    try:
        with path.open("rb") as f:
            data = json.load(f)
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, deep nesting
        raise SeraError(f"{path} is not valid JSON: {e}") from None
    except OSError as e:
        raise SeraError(f"cannot read {path}: {e.strerror or e}") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("images"), list)
        or not isinstance(data.get("annotations"), list)
    ):
        raise SeraError(
            f"{path} is not a COCO instances file: it needs 'images' and 'annotations' lists"
        )
    images: dict[int, _ImageRecord] = {}
    for rec in data["images"]:
        if (
            isinstance(rec, dict)
            and _is_int(rec.get("id"))
            and isinstance(rec.get("file_name"), str)
            and _is_int(rec.get("width"))
            and _is_int(rec.get("height"))
            and rec["width"] > 0
            and rec["height"] > 0
        ):
            images[rec["id"]] = _ImageRecord(rec["file_name"], rec["width"], rec["height"])
    anns = {
        a["id"]: a
        for a in data["annotations"]
        if isinstance(a, dict) and _is_int(a.get("id")) and "segmentation" in a
    }
    return images, anns


def _sentence_text(sent: dict) -> Any:
    """The normalized `sent` field (what CRIS/DETRIS train on), else the raw sentence."""
    text = sent.get("sent")
    return text if isinstance(text, str) else sent.get("raw")


def _scan_ref(
    ref: Any,
    images: dict[int, _ImageRecord],
    anns: dict[int, Any],
    image_dir: Path,
    file_ok: dict[int, str | None],
    seg_ok: dict[int, str | None],
) -> _ScannedRef:
    if not isinstance(ref, dict):
        return _ScannedRef(None, "?", None, [], ["malformed ref"])
    if (
        not all(_is_int(ref.get(k)) for k in ("ref_id", "ann_id", "image_id"))
        or not isinstance(ref.get("split"), str)
        or not isinstance(ref.get("sentences"), list)
    ):
        split = ref["split"] if isinstance(ref.get("split"), str) else "?"
        return _ScannedRef(ref.get("ref_id"), split, None, [], ["malformed ref"])
    ref_id, ann_id, image_id, split = ref["ref_id"], ref["ann_id"], ref["image_id"], ref["split"]
    problems: list[str] = []
    if not _safe_split_name(split):  # `sera eval --save-masks` writes into DIR/{split}/
        problems.append("unsafe split name")
    rec = images.get(image_id)
    if rec is None:
        problems.append("missing image record")
    elif image_id not in file_ok:
        if not _safe_file_name(rec.file_name):
            file_ok[image_id] = "unsafe file name"
        elif not (image_dir / rec.file_name).is_file():
            file_ok[image_id] = "missing image file"
        else:
            file_ok[image_id] = None
    file_problem = file_ok[image_id] if rec is not None else None
    if file_problem:
        problems.append(file_problem)
    ann = anns.get(ann_id)
    if ann is None:
        problems.append("missing annotation")
    elif ann.get("image_id", image_id) != image_id:
        problems.append("annotation of another image")
    elif rec is not None:
        if ann_id not in seg_ok:
            seg_ok[ann_id] = segmentation_problem(ann["segmentation"], rec.height, rec.width)
        if seg_ok[ann_id]:
            problems.append("bad segmentation")
    samples = []
    for sent in ref["sentences"]:
        text = _sentence_text(sent) if isinstance(sent, dict) else None
        if not isinstance(text, str) or not _is_int(sent.get("sent_id")):
            problems.append("malformed sentence")
            continue
        if not text.strip():
            problems.append("empty sentence")
            continue
        expr_type = sent.get("type")
        samples.append(
            ReferSample(
                ref_id=ref_id,
                sent_id=sent["sent_id"],
                ann_id=ann_id,
                image_id=image_id,
                sentence=text,
                split=split,
                expr_type=expr_type if isinstance(expr_type, str) else None,
            )
        )
    return _ScannedRef(ref_id, split, image_id, samples, problems)


def describe_ref(ref: _ScannedRef) -> str:
    return f"ref {ref.ref_id}: {', '.join(sorted(set(ref.problems)))}"


def order_splits(names: set[str]) -> list[str]:
    known = [s for s in _SPLIT_ORDER if s in names]
    return known + sorted(names - set(known))


class ReferIndex:
    """All (ref, sentence) samples of one data set, by split, with their masks and image files."""

    def __init__(
        self,
        root: Path,
        dataset: str,
        split_by: str,
        images: dict[int, _ImageRecord],
        anns: dict[int, Any],
        samples: dict[str, list[ReferSample]],
        skipped: dict[str, int],
    ) -> None:
        self.root = root
        self.dataset = dataset
        self.split_by = split_by
        self.image_dir = root / IMAGE_DIR
        #: refs left out per split by `skip_bad=True` (empty when nothing was left out)
        self.skipped = skipped
        self._images = images
        self._anns = anns
        self._samples = samples

    @classmethod
    def load(
        cls,
        data_root: str | Path,
        dataset: str,
        split_by: str | None = None,
        *,
        skip_bad: bool = False,
    ) -> ReferIndex:
        """Read `DATA/{dataset}/instances.json` and `refs({split_by}).p` and index every sentence.

        `split_by=None` takes the dataset's default (unc; umd for refcocog; for an unknown name,
        the only refs file present). With `skip_bad=False` any bad entry raises SeraError; with
        `skip_bad=True` a ref with a bad annotation or image is left out, an empty sentence is
        left out, and `index.skipped` counts the refs affected per split.
        """
        root = Path(data_root)
        scan, images, anns, split_by = scan_refs(root, dataset, split_by)
        samples: dict[str, list[ReferSample]] = {}
        skipped: Counter[str] = Counter()
        bad = [ref for ref in scan if ref.problems]
        if bad and not skip_bad:
            examples = "; ".join(describe_ref(ref) for ref in bad[:MAX_EXAMPLES])
            raise SeraError(
                f"{len(bad)} bad entries in {root / dataset} (refs({split_by}).p), e.g. "
                f"{examples}; run `sera data check {root} --dataset {dataset}` to count them per "
                "split, or leave them out (skip_bad=True / --skip-bad)"
            )
        for ref in scan:
            if ref.problems:
                skipped[ref.split] += 1
                if not set(ref.problems) <= _SENTENCE_PROBLEMS:
                    continue  # the ref itself is unusable; a bad sentence only drops itself
            samples.setdefault(ref.split, []).extend(ref.samples)
        return cls(root, dataset, split_by, images, anns, samples, dict(skipped))

    def splits(self) -> list[str]:
        """Split names present, in the conventional order (train, val, test, testA, testB, ...)."""
        return order_splits(set(self._samples))

    def samples(self, split: str) -> list[ReferSample]:
        """Every (ref, sentence) sample of a split, in file order."""
        if split not in self._samples:
            raise SeraError(
                f"unknown split {split!r} for {self.dataset} ({self.split_by}); "
                f"known splits: {', '.join(self.splits())}"
            )
        return self._samples[split]

    def image_size(self, sample: ReferSample) -> tuple[int, int]:
        """(width, height) of the sample's image as instances.json records it (the mask's frame)."""
        rec = self._images[sample.image_id]
        return rec.width, rec.height

    def image_path(self, sample: ReferSample) -> Path:
        """Path of the sample's image file; the file name was checked not to leave the folder."""
        return self.image_dir / self._images[sample.image_id].file_name

    def image(self, sample: ReferSample) -> Image.Image:
        """The sample's image as RGB, in the pixel frame its mask was annotated in.

        COCO annotates stored pixels, not the EXIF-turned view; a data set annotated on the turned
        view records the turned size. Whichever of the two matches the record is returned.
        """
        path = self.image_path(sample)
        size = self.image_size(sample)
        im = load_image(path, exif=False)
        if im.size == size:
            return im
        turned = load_image(path, exif=True)
        if turned.size == size:
            return turned
        raise SeraError(
            f"{path} is {im.size[0]}x{im.size[1]} but instances.json records "
            f"{size[0]}x{size[1]} for image {sample.image_id}; the image or the annotations are "
            "from a different release"
        )

    def mask(self, sample: ReferSample) -> np.ndarray:
        """(H, W) bool ground-truth mask of the sample's annotation."""
        rec = self._images[sample.image_id]
        return decode_segmentation(self._anns[sample.ann_id]["segmentation"], rec.height, rec.width)


def scan_refs(
    root: Path, dataset: str, split_by: str | None
) -> tuple[list[_ScannedRef], dict[int, _ImageRecord], dict[int, Any], str]:
    instances_path, refs_path, split_by = _resolve_paths(root, dataset, split_by)
    images, anns = _load_instances(instances_path)
    refs = load_refs(refs_path)
    file_ok: dict[int, str | None] = {}
    seg_ok: dict[int, str | None] = {}
    image_dir = root / IMAGE_DIR
    scanned = [_scan_ref(r, images, anns, image_dir, file_ok, seg_ok) for r in refs]
    return scanned, images, anns, split_by
