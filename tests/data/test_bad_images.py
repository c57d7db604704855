"""Bad and unusual image files: a bad one is named in one line, an unusual valid one gives a mask
of its own size.

The CLI runs in-process (typer's CliRunner on the real app, `helpers.sera`), so that dozens of
cases cost a model load each rather than a Python start each.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import fails, sera
from PIL import Image

BAD_IMAGES = [
    ("missing", "image not found"),
    ("directory", "not a file"),
    ("text", "cannot read image"),
    ("truncated", "truncated"),
    ("empty", "cannot read image"),
    ("bomb", "decompression-bomb limit"),
    ("huge", "decompression-bomb limit"),
]


@pytest.mark.parametrize("kind,message", BAD_IMAGES, ids=[k for k, _ in BAD_IMAGES])
def test_bad_image_is_named(trained_run: Path, images: dict[str, Path], tmp_path: Path,
                            kind: str, message: str) -> None:
    result = sera("predict", images[kind], "the red circle", "--checkpoint", trained_run,
                  "--out", tmp_path / "mask.png")
    fails(result, str(images[kind]), message)
    assert not (tmp_path / "mask.png").exists()


def test_image_past_the_bomb_limit_is_refused_before_decoding(images: dict[str, Path]) -> None:
    """Refused from the header: a fresh process's peak memory stays where it was (decoding the
    first, a genuine image, takes 100 MB; the second's header claims 3.6 GB)."""
    probe = (
        "import resource, sys\n"
        "from sera_cli.data.images import load_image\n"
        "from sera_cli.errors import SeraError\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        load_image(path)\n"
        "    except SeraError as exc:\n"
        "        print(exc)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe, str(images["bomb"]),
                             str(images["huge"])], capture_output=True, text=True, timeout=120)
    *errors, grown_mib = result.stdout.splitlines()
    assert result.returncode == 0 and len(errors) == 2, result.stderr
    assert all("decompression-bomb limit" in e and "downscale" in e for e in errors)
    assert int(grown_mib) < 20


VALID_IMAGES = [("16bit", (50, 30)), ("rgba", (44, 33)), ("cmyk", (60, 40)), ("anim", (35, 25)),
                ("one", (1, 1))]


@pytest.mark.parametrize("kind,size", VALID_IMAGES, ids=[k for k, _ in VALID_IMAGES])
def test_unusual_valid_image_gives_a_mask_of_its_size(trained_run: Path,
                                                      images: dict[str, Path], tmp_path: Path,
                                                      kind: str, size: tuple[int, int]) -> None:
    out, over = tmp_path / "mask.png", tmp_path / "overlay.png"
    result = sera("predict", images[kind], "the red circle", "--checkpoint", trained_run,
                  "--out", out, "--overlay", over, "--json")
    assert result.exit_code == 0, result.output
    assert (json.loads(result.stdout)["width"], json.loads(result.stdout)["height"]) == size
    assert Image.open(out).size == size and Image.open(over).size == size
