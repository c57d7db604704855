"""The source and target tasks of `sera data synth --domain`: what shifts between them is there
(vocabulary, texture, expression types), and the default set stays what it was."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from helpers import sera

from sera_cli.data.refer import ReferIndex
from sera_cli.data.synth import STRIPE_DARKEN, synthesize
from sera_cli.errors import SeraError


@pytest.fixture(scope="module")
def domains(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    roots = {}
    for name in ("source", "target"):
        roots[name] = tmp_path_factory.mktemp(name)
        synthesize(roots[name], n_images=45, seed=1, domain=name)
    return roots


def _annotations(root: Path) -> list[dict]:
    return json.loads((root / "synth" / "instances.json").read_text())["annotations"]


def _types(root: Path) -> Counter[str]:
    index = ReferIndex.load(root, "synth")
    return Counter(s.expr_type for split in index.splits() for s in index.samples(split))


def test_the_source_never_shows_what_the_target_adds(domains: dict[str, Path]) -> None:
    names = {1: "circle", 2: "square", 3: "triangle", 4: "star"}
    source = {(names[a["category_id"]], a["color"]) for a in _annotations(domains["source"])}
    target = {(names[a["category_id"]], a["color"]) for a in _annotations(domains["target"])}
    assert {s for s, _ in source} == {"circle", "square", "triangle"}
    assert {c for _, c in source} == {"red", "green", "blue"}
    assert {"star"} <= {s for s, _ in target} and {"yellow"} <= {c for _, c in target}


def test_target_objects_are_striped_and_source_objects_flat(domains: dict[str, Path]) -> None:
    """Inside a striped object about half the pixels are darkened to STRIPE_DARKEN of the
    colour; a flat one has none so dark."""
    for name, striped in (("source", False), ("target", True)):
        index = ReferIndex.load(domains[name], "synth")
        dark_shares = []
        for sample in index.samples("val"):
            pixels = np.asarray(index.image(sample)).astype(float)[index.mask(sample)]
            brightness = pixels.max(axis=1)
            cut = np.median(brightness[brightness >= np.percentile(brightness, 75)])
            dark_shares.append(np.mean(brightness < cut * (1 + STRIPE_DARKEN) / 2))
        share = float(np.median(dark_shares))
        assert (0.3 < share < 0.7) if striped else share < 0.05, (name, share)


def test_expression_types_come_in_other_proportions(domains: dict[str, Path]) -> None:
    def where_words(types: Counter[str]) -> float:  # spatial and relational, of all
        return (types["spatial"] + types["relational"]) / sum(types.values())

    source, target = _types(domains["source"]), _types(domains["target"])
    assert where_words(source) < 0.4 < 0.7 < where_words(target), (source, target)


def test_an_unknown_domain_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(SeraError, match="--domain 'moon'.*all, source, target"):
        synthesize(tmp_path, n_images=4, domain="moon")


def test_cli_writes_the_domain_and_says_so(tmp_path: Path) -> None:
    result = sera("data", "synth", "--out", tmp_path, "--images", 8, "--domain", "target",
                  "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["domain"] == "target"
    assert any(a["color"] == "yellow" or a["category_id"] == 4
               for a in _annotations(tmp_path))
