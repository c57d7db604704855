"""Helpers shared by tests: tiny inputs, a tiny trainer, and environments for subprocesses.

Kept here, not in test files or conftest, so that no test module imports another."""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import sera_builtin
import torch
from click.testing import Result
from PIL import Image
from typer.testing import CliRunner

from sera_cli.cli.main import app
from sera_cli.config import ModelConfig
from sera_cli.registry import Registry, create_registry


def builtin_registry() -> Registry:
    """A fresh registry holding only the built-in plugin, whatever else is installed."""
    return create_registry(plugins=[sera_builtin], entry_points=False)


def tiny_inputs(cfg: ModelConfig, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor,
                                                                           torch.Tensor]:
    """Random pixels and word ids with an end-of-text token and padding, like real tokens."""
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randn(batch, 3, cfg.image_size, cfg.image_size, generator=g)
    ids = torch.randint(1, 49000, (batch, cfg.text.context_length), generator=g)
    for i in range(batch):
        end = 3 + i
        ids[i, end] = 49407
        ids[i, end + 1:] = 0
    return pixels, ids


def metrics_records(run: Path) -> list[dict[str, Any]]:
    """Every line of a run's metrics.jsonl, parsed."""
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def make_trainer(run: Path, root: Path, reporter: Any = None, **options: Any) -> Any:
    """A sera-tiny Trainer on the CPU at batch 4, logging every step; ``options`` override."""
    from sera_cli.config.layering import build_configs
    from sera_cli.engine.training import Trainer

    values = {"preset": "sera-tiny", "data": str(root), "batch_size": 4, "log_every": 1,
              "val_batch_size": 8, "device": "cpu", **options}
    model_cfg, train_cfg = build_configs(values)
    return Trainer(model_cfg, train_cfg, run, root, registry=builtin_registry(),
                   reporter=reporter)


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a `sera` subprocess: built-in plugins only, no debug, and the cache
    and runs folders that the test session set up (never the user's)."""
    env = {**os.environ, "SERA_LOAD_PLUGINS": "builtin", "SERA_PLUGINS": "", "SERA_DEBUG": ""}
    return {**env, **extra}


def sera(*args: Any) -> Result:
    """Run the real `sera` app in-process on ``args``."""
    return CliRunner().invoke(app, [str(a) for a in args])


def fails(result: Result, *culprits: str, code: int = 1) -> str:
    """Assert a clean failure: exit code, one `error:` line naming every culprit, no traceback.
    Returns the error line."""
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), f"uncaught {result.exception!r}"
    assert "Traceback" not in result.output
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert result.stderr.rstrip().endswith(errors[0]), "the error is the last thing printed"
    for culprit in culprits:
        assert culprit in errors[0], (culprit, errors[0])
    return errors[0]


def usage_error(result: Result, option: str) -> None:
    """Click's own usage errors (a value outside an option's declared range, an unknown option):
    exit code 2 and the option named, no traceback."""
    assert result.exit_code == 2, (result.output, result.exception)
    assert option in result.stderr and "Traceback" not in result.output


def huge_png(path: Path, width: int, height: int) -> Path:
    """A valid 8x8 PNG whose header claims width x height: decoding it would allocate that."""
    Image.new("L", (8, 8)).save(path)
    raw = bytearray(path.read_bytes())
    ihdr = raw[12:29]  # b"IHDR" + width, height, depth, colour type, ... (13 bytes)
    ihdr[4:12] = struct.pack(">II", width, height)
    raw[12:29] = ihdr
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    path.write_bytes(bytes(raw))
    return path


def blank_png(path: Path, width: int, height: int) -> Path:
    """A genuine all-black grayscale PNG, compressed row by row (~100 KB for 10^8 pixels)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    packer, row = zlib.compressobj(9), b"\0" * (width + 1)  # filter byte, then the pixels
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat)
                     + chunk(b"IEND", b""))
    return path


#: The hand-built gRefCOCO set of `build_grefcoco`: its annotations as (y0, y1, x0, x1) boxes.
GREF_BOXES = {11: (0, 30, 0, 40), 12: (100, 130, 100, 140)}
GREF_SIDE = 480  # the image is 480 x 480, so that LAVT's resize is the identity


def gref_box(ann_id: int) -> Any:
    """(GREF_SIDE, GREF_SIDE) bool mask of one annotation of `build_grefcoco`."""
    import numpy as np

    y0, y1, x0, x1 = GREF_BOXES[ann_id]
    mask = np.zeros((GREF_SIDE, GREF_SIDE), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def build_grefcoco(root: Path, refs_format: str = "json") -> Path:
    """A gRefCOCO-layout data set: one 480 x 480 image with two boxes, and three val refs: one
    target (ref 1, "the red square"), no target (ref 2, "the purple star", ann_id [-1]), both
    boxes (ref 3, "both squares"). ``refs_format`` "json" or "p" (a pickle of the same refs)."""
    import json
    import pickle

    import numpy as np

    (root / "images" / "train2014").mkdir(parents=True)
    (root / "grefcoco").mkdir()
    Image.fromarray(np.full((GREF_SIDE, GREF_SIDE, 3), 120, np.uint8)).save(
        root / "images" / "train2014" / "scene.png")
    annotations = [{"id": ann_id, "image_id": 1, "iscrowd": 0,
                    "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]]}
                   for ann_id, (y0, y1, x0, x1) in GREF_BOXES.items()]
    (root / "grefcoco" / "instances.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "scene.png", "width": GREF_SIDE,
                    "height": GREF_SIDE}],
        "annotations": annotations, "categories": [{"id": 1, "name": "square"}]}))

    def ref(ref_id: int, ann_id: list[int], sentence: str) -> dict[str, Any]:
        return {"ref_id": ref_id, "ann_id": ann_id, "image_id": 1, "split": "val",
                "no_target": ann_id == [-1], "category_id": [] if ann_id == [-1] else [1],
                "sentences": [{"sent_id": ref_id * 10 + 1, "sent": sentence, "raw": sentence,
                               "tokens": sentence.split()}]}

    refs = [ref(1, [11], "the red square"), ref(2, [-1], "the purple star"),
            ref(3, [11, 12], "both squares")]
    path = root / "grefcoco" / f"grefs(unc).{refs_format}"
    if refs_format == "json":
        path.write_text(json.dumps(refs))
    else:
        path.write_bytes(pickle.dumps(refs, protocol=2))
    return root


def ddp_rank(rank: int, world: int, port: int, root: str, out: str) -> None:
    """One rank of a Gloo run, as torchrun starts it: trains 3 steps, then writes its own
    parameters to ``out/rank<r>.safetensors`` (rank 0 also writes the run). Buffers are left
    out: BatchNorm statistics are each rank's own until DDP broadcasts rank 0's."""
    from safetensors.torch import save_file

    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                       "SERA_LOAD_PLUGINS": "builtin"})
    torch.set_num_threads(1)
    trainer = make_trainer(Path(out) / "run", Path(root), max_steps=3, batch_size=2)
    trainer.fit()
    state = {k: v.detach().contiguous() for k, v in trainer.model.named_parameters()}
    save_file(state, str(Path(out) / f"rank{rank}.safetensors"))
    torch.distributed.destroy_process_group()
