"""Index of a data set in the layout of the public `refer` release (RefCOCO, RefCOCO+, RefCOCOg)
or of gRefCOCO (ReLA, CVPR 2023: expressions naming no object or several).

Layouts, relative to a data root DATA::

    DATA/{dataset}/instances.json        COCO images, annotations (polygons or RLE), categories
    DATA/{dataset}/refs({split_by}).p    pickle: list of refs (ref_id, ann_id, image_id, split,
                                         sentences [{sent_id, sent, raw, tokens, type?}])
    DATA/images/mscoco/images/train2014/{file_name}

    DATA/{dataset}/instances.json        the same
    DATA/{dataset}/grefs({split_by}).p   or grefs({split_by}).json: the same refs, except that
                                         ann_id is a list, [-1] (no_target: true) for no target
    DATA/images/train2014/{file_name}

A data set folder holding a grefs file is read in the second (generalized) layout, whatever its
name. A ref's target mask is the union of its annotations, empty for no target. `sera data synth`
writes either layout, so one loader serves real and synthetic data. The index knows nothing about
torch: `dataset.py` turns a split of it into tensors.

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
    "grefcoco": ("unc",),
}
IMAGE_DIR = PurePosixPath("images/mscoco/images/train2014")
#: Where gRefCOCO keeps its (COCO train2014) images, as ReLA's grefer.py reads them.
GENERALIZED_IMAGE_DIR = PurePosixPath("images/train2014")
#: Expression types given to untagged sentences of generalized refs, so that the per-type
#: metrics and routing statistics separate them from one-target expressions.
NO_TARGET, MULTI_TARGET = "no-target", "multi-target"
_SPLIT_ORDER = ("train", "val", "test", "testA", "testB", "testC")
MAX_EXAMPLES = 3
_SENTENCE_PROBLEMS = {"empty sentence", "malformed sentence"}


@dataclass(frozen=True)
class ReferSample:
    """One (ref, sentence) pair: the unit that training draws and the metrics count."""

    ref_id: int
    sent_id: int
    ann_ids: tuple[int, ...]  # the target is their union; () for an expression naming nothing
    image_id: int
    sentence: str
    split: str
    expr_type: str | None = None

    @property
    def no_target(self) -> bool:
        return not self.ann_ids


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
    ann_ids: tuple[int, ...] | None = None  # None: the ref is too malformed to tell


@dataclass(frozen=True)
class Layout:
    """Where one data set's files are: its refs file, and the folder its image file names are
    relative to; `generalized` for the gRefCOCO layout."""

    instances: Path
    refs: Path
    split_by: str
    image_dir: Path
    generalized: bool


def _refs_candidates(folder: Path, split_by: str) -> list[Path]:
    """The refs files that may hold `split_by`, in the order read: gRefCOCO's pickle, its JSON
    (ReLA's grefer.py prefers the pickle too), then the `refer` pickle."""
    return [folder / f"grefs({split_by}).p", folder / f"grefs({split_by}).json",
            folder / f"refs({split_by}).p"]


def _split_bys(folder: Path) -> list[str]:
    """splitBy names of the refs files present in a data set folder."""
    names = {p.name for pattern in ("refs(*).p", "grefs(*).p", "grefs(*).json")
             for p in folder.glob(pattern)}
    return sorted({n[n.index("(") + 1:n.rindex(")")] for n in names})


def resolve_layout(data_root: Path, dataset: str, split_by: str | None) -> Layout:
    """The files of `DATA/{dataset}` for `split_by` (None: the data set's default, or the only
    one present), or SeraError naming what is missing."""
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
            found = _split_bys(folder)
            if len(found) != 1:
                raise SeraError(
                    f"cannot tell the splitBy of {folder}: refs files for {found or 'none'}; "
                    "pass --split-by"
                )
            split_by = found[0]
    instances = folder / "instances.json"
    if not instances.is_file():
        raise SeraError(f"missing {instances}; the `refer` layout needs it next to the refs file")
    refs = next((p for p in _refs_candidates(folder, split_by) if p.is_file()), None)
    if refs is None:
        found = sorted(p.name for pattern in ("refs(*).p", "grefs(*).p", "grefs(*).json")
                       for p in folder.glob(pattern))
        raise SeraError(
            f"missing {folder / f'refs({split_by}).p'} or grefs({split_by}).p/.json "
            f"(split_by={split_by!r}); refs files in {folder}: {', '.join(found) or 'none'}"
        )
    generalized = refs.name.startswith("grefs(")
    image_dir = data_root / (GENERALIZED_IMAGE_DIR if generalized else IMAGE_DIR)
    return Layout(instances, refs, split_by, image_dir, generalized)


def _read_json(path: Path) -> Any:
    try:
        with path.open("rb") as f:
            return json.load(f)
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, deep nesting
        raise SeraError(f"{path} is not valid JSON: {e}") from None
    except OSError as e:
        raise SeraError(f"cannot read {path}: {e.strerror or e}") from None


def _load_refs(path: Path) -> list[dict]:
    """A refs file as a list of ref dicts: pickles through the restricted unpickler (which runs
    nothing), JSON through the JSON parser."""
    if path.suffix != ".json":
        return load_refs(path)
    refs = _read_json(path)
    if not isinstance(refs, list) or not all(isinstance(r, dict) for r in refs):
        raise SeraError(f"{path} holds a {type(refs).__name__}, expected a list of ref dicts as "
                        "in the gRefCOCO release")
    return refs


def _load_instances(path: Path) -> tuple[dict[int, _ImageRecord], dict[int, Any]]:
    data = _read_json(path)
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


def _ann_ids(ref: dict) -> tuple[int, ...] | None:
    """A ref's target annotations: `ann_id` as one id or a list of them (gRefCOCO), () for the
    no-target marker -1 / [-1]; None when malformed or when `no_target` contradicts it."""
    raw = ref.get("ann_id")
    ids = raw if isinstance(raw, list) else [raw]
    if not ids or not all(_is_int(i) for i in ids) or (-1 in ids and len(ids) > 1):
        return None
    found = () if ids == [-1] else tuple(dict.fromkeys(ids))
    flag = ref.get("no_target", not found)
    if not isinstance(flag, bool) or flag != (not found):
        return None
    return found


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
    ann_ids = _ann_ids(ref)
    if (
        not all(_is_int(ref.get(k)) for k in ("ref_id", "image_id"))
        or ann_ids is None
        or not isinstance(ref.get("split"), str)
        or not isinstance(ref.get("sentences"), list)
    ):
        split = ref["split"] if isinstance(ref.get("split"), str) else "?"
        return _ScannedRef(ref.get("ref_id"), split, None, [], ["malformed ref"])
    ref_id, image_id, split = ref["ref_id"], ref["image_id"], ref["split"]
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
    for ann_id in ann_ids:
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
    untagged = NO_TARGET if not ann_ids else MULTI_TARGET if len(ann_ids) > 1 else None
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
                ann_ids=ann_ids,
                image_id=image_id,
                sentence=text,
                split=split,
                expr_type=expr_type if isinstance(expr_type, str) else untagged,
            )
        )
    return _ScannedRef(ref_id, split, image_id, samples, problems, ann_ids)


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
        layout: Layout,
        images: dict[int, _ImageRecord],
        anns: dict[int, Any],
        samples: dict[str, list[ReferSample]],
        skipped: dict[str, int],
    ) -> None:
        self.root = root
        self.dataset = dataset
        self.split_by = layout.split_by
        self.image_dir = layout.image_dir
        #: the gRefCOCO layout: refs may name no object or several
        self.generalized = layout.generalized
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
        """Read `DATA/{dataset}/instances.json` and its refs file (`refs({split_by}).p`, or
        gRefCOCO's `grefs({split_by}).p`/`.json`) and index every sentence.

        `split_by=None` takes the dataset's default (unc; umd for refcocog; for an unknown name,
        the only refs file present). With `skip_bad=False` any bad entry raises SeraError; with
        `skip_bad=True` a ref with a bad annotation or image is left out, an empty sentence is
        left out, and `index.skipped` counts the refs affected per split.
        """
        root = Path(data_root)
        scan, images, anns, layout = scan_refs(root, dataset, split_by)
        samples: dict[str, list[ReferSample]] = {}
        skipped: Counter[str] = Counter()
        bad = [ref for ref in scan if ref.problems]
        if bad and not skip_bad:
            examples = "; ".join(describe_ref(ref) for ref in bad[:MAX_EXAMPLES])
            raise SeraError(
                f"{len(bad)} bad entries in {root / dataset} ({layout.refs.name}), e.g. "
                f"{examples}; run `sera data check {root} --dataset {dataset}` to count them per "
                "split, or leave them out (skip_bad=True / --skip-bad)"
            )
        for ref in scan:
            if ref.problems:
                skipped[ref.split] += 1
                if not set(ref.problems) <= _SENTENCE_PROBLEMS:
                    continue  # the ref itself is unusable; a bad sentence only drops itself
            samples.setdefault(ref.split, []).extend(ref.samples)
        return cls(root, dataset, layout, images, anns, samples, dict(skipped))

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
        """(H, W) bool ground-truth mask: the union of the sample's annotations, all False for an
        expression that names nothing."""
        rec = self._images[sample.image_id]
        mask = np.zeros((rec.height, rec.width), bool)
        for ann_id in sample.ann_ids:
            mask |= decode_segmentation(self._anns[ann_id]["segmentation"], rec.height, rec.width)
        return mask


def scan_refs(
    root: Path, dataset: str, split_by: str | None
) -> tuple[list[_ScannedRef], dict[int, _ImageRecord], dict[int, Any], Layout]:
    layout = resolve_layout(root, dataset, split_by)
    images, anns = _load_instances(layout.instances)
    refs = _load_refs(layout.refs)
    file_ok: dict[int, str | None] = {}
    seg_ok: dict[int, str | None] = {}
    scanned = [_scan_ref(r, images, anns, layout.image_dir, file_ok, seg_ok) for r in refs]
    return scanned, images, anns, layout
