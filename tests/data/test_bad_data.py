"""Broken data sets: eval, train and `sera data check` name the bad entry; --skip-bad leaves it
out; a refs pickle that would run code is refused.

The CLI runs in-process (typer's CliRunner on the real app, `helpers.sera`), so that dozens of
cases cost a model load each rather than a Python start each.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers import fails, sera


def _broken_data(root: Path, tmp_path: Path, damage: str) -> Path:
    data = tmp_path / "data"
    shutil.copytree(root, data)
    folder = data / "synth"
    instances = json.loads((folder / "instances.json").read_text())
    image_dir = data / "images/mscoco/images/train2014"
    if damage == "missing instances.json":
        (folder / "instances.json").unlink()
    elif damage == "missing refs file":
        (folder / "refs(unc).p").unlink()
    elif damage == "refs not a pickle":
        (folder / "refs(unc).p").write_text("ref_id,sentence\n1,the red circle\n")
    elif damage == "missing images":
        for path in sorted(image_dir.iterdir())[:3]:
            path.unlink()
    elif damage == "missing annotations":
        instances["annotations"] = instances["annotations"][2:]
    elif damage == "file name escapes":
        instances["images"][0]["file_name"] = "../../../../../../etc/passwd"
    if damage in ("missing annotations", "file name escapes"):
        (folder / "instances.json").write_text(json.dumps(instances))
    return data


BAD_DATA = [
    ("missing instances.json", ["instances.json"]),
    ("missing refs file", ["refs(unc).p", "missing"]),
    ("refs not a pickle", ["refs(unc).p", "not a valid refs pickle"]),
    ("missing images", ["bad entries", "missing image file", "--skip-bad"]),
    ("missing annotations", ["bad entries", "missing annotation", "--skip-bad"]),
    ("file name escapes", ["bad entries", "unsafe file name"]),
]


@pytest.mark.parametrize("damage,culprits", BAD_DATA, ids=[d for d, _ in BAD_DATA])
def test_broken_data_is_named_by_eval_train_and_check(trained_run: Path, synth_data_root: Path,
                                                      tmp_path: Path, damage: str,
                                                      culprits: list[str]) -> None:
    data = _broken_data(synth_data_root, tmp_path, damage)
    where = str(data / "synth")
    fails(sera("eval", "--checkpoint", trained_run, "--data", data), where, *culprits)
    fails(sera("train", "--data", data, "--max-steps", "1", "--batch-size", "4",
               "--out", tmp_path / "run"), where, *culprits)
    assert not (tmp_path / "run" / "checkpoints").exists()
    check = sera("data", "check", data, "--dataset", "synth")
    if "bad entries" in culprits:  # a report, then exit 1
        assert check.exit_code == 1 and "Traceback" not in check.output
        assert culprits[1] in check.stdout
    else:
        fails(check, where, *culprits)


def test_bad_entries_can_be_skipped(trained_run: Path, synth_data_root: Path,
                                    tmp_path: Path) -> None:
    data = _broken_data(synth_data_root, tmp_path, "missing images")
    result = sera("eval", "--checkpoint", trained_run, "--data", data, "--skip-bad", "--split",
                  "val", "--json")
    assert result.exit_code == 0, result.output
    assert all(r["n"] > 0 for r in json.loads(result.stdout)["results"])
    assert re.search(r"synth: left out \d+ bad refs \(--skip-bad\)", result.stderr)


def test_refs_pickle_that_runs_code_is_refused(trained_run: Path, synth_data_root: Path,
                                               tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, (f"touch {marker}",))

    data = _broken_data(synth_data_root, tmp_path, "none")
    refs = data / "synth" / "refs(unc).p"
    refs.write_bytes(pickle.dumps([{"ref_id": 1, "split": "train", "sentences": [Exploit()]}]))
    for result in (sera("eval", "--checkpoint", trained_run, "--data", data),
                   sera("data", "check", data, "--dataset", "synth")):
        fails(result, str(refs), "refused", "nothing in it was run", "system")
    assert not marker.exists()


def test_unsafe_split_name_is_a_bad_entry(synth_data_root: Path, tmp_path: Path) -> None:
    from sera_cli.data.safe_pickle import load_refs

    data = _broken_data(synth_data_root, tmp_path, "none")
    refs_path = data / "synth" / "refs(unc).p"
    refs = load_refs(refs_path)
    refs[0]["split"] = "../../outside"  # --save-masks writes DIR/{split}/
    refs_path.write_bytes(pickle.dumps(refs, protocol=2))
    check = sera("data", "check", data, "--dataset", "synth", "--json")
    assert check.exit_code == 1
    assert json.loads(check.stdout)["splits"]["../../outside"]["problems"] == {
        "unsafe split name": 1}


def test_unknown_split_and_dataset_list_the_known(trained_run: Path, synth_data_root: Path,
                                                  tmp_path: Path) -> None:
    fails(sera("eval", "--checkpoint", trained_run, "--split", "val,tset"),
          "unknown split 'tset'", "known splits: train, val, testA, testB")
    fails(sera("eval", "--checkpoint", trained_run, "--split", " , "), "--split", "names no split")
    fails(sera("eval", "--checkpoint", trained_run, "--dataset", "refcocoo"),
          "'refcocoo'", "known datasets: refcoco, refcoco+, refcocog, synth")
    config = tmp_path / "c.toml"
    config.write_text(f'data = "{synth_data_root}"\nval-split = "valid"\nmax-steps = 1\n')
    fails(sera("train", "--config", config, "--out", tmp_path / "run"),
          "unknown split 'valid'", "known splits:")
