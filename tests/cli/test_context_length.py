"""`--context-length`: the words an expression keeps, per data set by default as the reference
code trains (RefCOCOg 22, else 17), stored in the run's config.json; longer expressions are cut,
and one warning says how many."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from helpers import fails, sera

from sera_cli.config.layering import build_configs
from sera_cli.data.synth import synthesize


@pytest.fixture(scope="module")
def refcocog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic set written under the name refcocog (its refs file: unc)."""
    root = tmp_path_factory.mktemp("refcocog")
    synthesize(root, n_images=18, seed=0, name="refcocog")
    return root


def train(root: Path, run: Path, *options: str) -> dict:
    result = sera("train", "--data", root, "--dataset", "refcocog", "--split-by", "unc",
                  "--max-steps", "1", "--batch-size", "4", "--out", run, *options)
    assert result.exit_code == 0, result.output
    return json.loads((run / "config.json").read_text())["model"]["text"]


@pytest.mark.filterwarnings("ignore:.* expressions in refcocog val")
def test_refcocog_stores_22_and_the_option_overrides_it(refcocog: Path, tmp_path: Path) -> None:
    assert train(refcocog, tmp_path / "default")["context_length"] == 22
    with pytest.warns(UserWarning, match=r"^\d+ of \d+ expressions in refcocog train are longer "
                                         "than the context length 4 and are cut to it"):
        assert train(refcocog, tmp_path / "short", "--context-length", "4"
                     )["context_length"] == 4
    fails(sera("train", "--resume", tmp_path / "default", "--context-length", "17"),
          "--context-length would change it")


@pytest.mark.parametrize("values,expected", [
    ({}, 17),  # synth keeps the preset's
    ({"dataset": "refcoco"}, 17),
    ({"dataset": "refcoco+"}, 17),
    ({"dataset": "refcocog"}, 22),
    ({"dataset": "refcocog", "context_length": 30}, 30),  # set by the user: kept
    ({"dataset": "refcocog", "context_length": "17"}, 17),  # from a --config file, as text
])
def test_the_data_set_default_applies_only_when_unset(values: dict, expected: int) -> None:
    model, _ = build_configs(values)
    assert model.text.context_length == expected


def test_a_context_too_short_is_refused_naming_the_option() -> None:
    fails(sera("train", "--context-length", "2"), "--context-length 2 is too short")


def test_no_warning_when_nothing_is_cut(refcocog: Path) -> None:
    from sera_cli.data.dataset import dataset_for
    from sera_cli.data.refer import ReferIndex

    model, _ = build_configs({"dataset": "refcocog"})
    index = ReferIndex.load(refcocog, "refcocog", "unc")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dataset_for(model, index, "train")
