"""`sera data check`: counts of refs, sentences, images and bad entries per split, without
raising on the bad entries (the index raises on them unless told to skip)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sera_cli.data.refer import MAX_EXAMPLES, describe_ref, order_splits, scan_refs
from sera_cli.errors import SeraError


@dataclass
class SplitCheck:
    """Counts for one split; `problems` maps a kind of bad entry to how many refs have it;
    `no_target` and `multi_target` count the refs naming no object and several objects."""

    refs: int = 0
    sentences: int = 0
    images: int = 0
    bad: int = 0
    no_target: int = 0
    multi_target: int = 0
    problems: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)


@dataclass
class CheckReport:
    """What `check` found: per-split counts for one data set."""

    root: str
    dataset: str
    split_by: str
    splits: dict[str, SplitCheck]
    generalized: bool = False  # the gRefCOCO layout

    @property
    def bad(self) -> int:
        """Refs with any problem, over all splits."""
        return sum(c.bad for c in self.splits.values())


def find_datasets(data_root: str | Path) -> list[str]:
    """Names of the dataset folders under a data root (those holding an instances.json)."""
    root = Path(data_root)
    if not root.is_dir():
        raise SeraError(f"data folder not found: {root}")
    return sorted(p.parent.name for p in root.glob("*/instances.json"))


def check(data_root: str | Path, dataset: str, split_by: str | None = None) -> CheckReport:
    """Count refs, sentences, images and bad entries per split, without raising on bad entries.

    A file-level problem (missing folder, instances.json or refs file, unreadable pickle) still
    raises SeraError: there is nothing to count.
    """
    scan, _, _, layout = scan_refs(Path(data_root), dataset, split_by)
    splits: dict[str, SplitCheck] = {}
    images: dict[str, set[Any]] = {}
    for ref in scan:
        c = splits.setdefault(ref.split, SplitCheck())
        c.refs += 1
        c.sentences += len(ref.samples)
        if ref.ann_ids is not None:
            c.no_target += not ref.ann_ids
            c.multi_target += len(ref.ann_ids) > 1
        if ref.image_id is not None:
            images.setdefault(ref.split, set()).add(ref.image_id)
        if ref.problems:
            c.bad += 1
            for p in sorted(set(ref.problems)):
                c.problems[p] = c.problems.get(p, 0) + 1
            if len(c.examples) < MAX_EXAMPLES:
                c.examples.append(describe_ref(ref))
    for split, ids in images.items():
        splits[split].images = len(ids)
    ordered = {s: splits[s] for s in order_splits(set(splits))}
    return CheckReport(str(data_root), dataset, layout.split_by, ordered, layout.generalized)
