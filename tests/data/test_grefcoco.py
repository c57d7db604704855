"""The gRefCOCO layout: refs naming a list of annotations (the union is the target) or none
([-1], no_target: true), read from JSON or through the restricted unpickler, checked as the
`refer` layout is."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from helpers import build_grefcoco, gref_box

from sera_cli.data.check import check
from sera_cli.data.refer import ReferIndex
from sera_cli.errors import SeraError


@pytest.mark.parametrize("refs_format", ["json", "p"])
def test_targets_are_unions_and_no_target_is_empty(tmp_path: Path, refs_format: str) -> None:
    index = ReferIndex.load(build_grefcoco(tmp_path, refs_format), "grefcoco")
    assert index.generalized and index.image_dir == tmp_path / "images" / "train2014"
    one, none, both = index.samples("val")
    assert (one.ann_ids, none.ann_ids, both.ann_ids) == ((11,), (), (11, 12))
    assert (one.no_target, none.no_target, both.no_target) == (False, True, False)
    # untagged sentences: typed by what they name, so per-type figures can tell them apart
    assert (one.expr_type, none.expr_type, both.expr_type) == (None, "no-target", "multi-target")
    assert np.array_equal(index.mask(one), gref_box(11))
    assert not index.mask(none).any() and index.mask(none).shape == (480, 480)
    assert np.array_equal(index.mask(both), gref_box(11) | gref_box(12))
    assert index.image(one).size == (480, 480)


def _edit(root: Path, fn) -> None:
    path = root / "grefcoco" / "grefs(unc).json"
    refs = json.loads(path.read_text())
    fn(refs)
    path.write_text(json.dumps(refs))


@pytest.mark.parametrize("ann_id,no_target,problem", [
    ([11, 99], False, "missing annotation"),
    ([-1], False, "malformed ref"),  # [-1] means no target: the flag must say so
    ([11], True, "malformed ref"),
    ([-1, 11], False, "malformed ref"),
    ([], False, "malformed ref"),
    ([11, True], False, "malformed ref"),
])
def test_bad_annotation_lists_are_found(tmp_path: Path, ann_id: list, no_target: bool,
                                        problem: str) -> None:
    root = build_grefcoco(tmp_path)

    def spoil(refs: list) -> None:
        refs[2]["ann_id"], refs[2]["no_target"] = ann_id, no_target
    _edit(root, spoil)
    with pytest.raises(SeraError, match=rf"1 bad entries .*grefs\(unc\)\.json.*ref 3: {problem}"):
        ReferIndex.load(root, "grefcoco")
    index = ReferIndex.load(root, "grefcoco", skip_bad=True)
    assert len(index.samples("val")) == 2 and index.skipped == {"val": 1}
    report = check(root, "grefcoco")
    assert report.bad == 1 and report.splits["val"].problems == {problem: 1}


def test_data_check_counts_no_target_and_multi_target_refs(tmp_path: Path) -> None:
    from helpers import sera

    root = build_grefcoco(tmp_path)
    report = check(root, "grefcoco")
    assert report.generalized and report.split_by == "unc"
    val = report.splits["val"]
    assert (val.refs, val.sentences, val.images, val.no_target, val.multi_target) == (
        3, 3, 1, 1, 1)
    result = sera("data", "check", root, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["generalized"] and data["splits"]["val"]["no_target"] == 1
    table = sera("data", "check", root)
    assert "no target" in table.output and "multi target" in table.output


def test_the_refs_pickle_is_read_without_running_anything(tmp_path: Path) -> None:
    root = build_grefcoco(tmp_path, "p")
    (root / "grefcoco" / "grefs(unc).json").write_text("not json")  # the pickle comes first
    assert len(ReferIndex.load(root, "grefcoco").samples("val")) == 3

    class Exploit:
        def __reduce__(self):  # noqa: ANN204
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    (root / "grefcoco" / "grefs(unc).p").write_bytes(pickle.dumps([Exploit()]))
    with pytest.raises(SeraError, match=r"grefs\(unc\)\.p was refused, nothing in it was run"):
        ReferIndex.load(root, "grefcoco")
    assert not (tmp_path / "pwned").exists()


def test_bad_json_and_missing_files_are_named(tmp_path: Path) -> None:
    root = build_grefcoco(tmp_path)
    (root / "grefcoco" / "grefs(unc).json").write_text('{"refs": []}')
    with pytest.raises(SeraError, match=r"grefs\(unc\)\.json holds a dict, expected a list"):
        ReferIndex.load(root, "grefcoco")
    (root / "grefcoco" / "grefs(unc).json").write_text("[{")
    with pytest.raises(SeraError, match=r"grefs\(unc\)\.json is not valid JSON"):
        ReferIndex.load(root, "grefcoco")
    (root / "grefcoco" / "grefs(unc).json").unlink()
    with pytest.raises(SeraError, match=r"missing .*refs\(unc\)\.p or grefs\(unc\)\.p/\.json"):
        ReferIndex.load(root, "grefcoco")
