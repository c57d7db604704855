"""Start-up time of the `sera` command: `sera --help`, `sera experts list` and a one-image
`sera predict`, each a fresh process, against the acceptance thresholds, beside a fresh
`python -c "import torch"` timed in turn with them: the floor any command that runs the model
pays, and the yardstick of `predict_over_import_torch` (goal: at most 2).

    python bench/startup.py [--quick] [--repeats 5] [--budget 60]

Runs the `sera` console script beside this interpreter (what users of a venv run); without
one, the `sera` on PATH, then `python -m sera_cli`.
The predict run needs a checkpoint: `--checkpoint RUN` (run_all.py passes the run that
training.py trained to val mIoU 50), else sera-tiny trained for 2 steps (`sera train
--max-steps 2`) into a temporary folder. The input is the synthetic data set's first image.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import common

from sera_cli.data.default import ensure_synthetic

#: Seconds a command's median must stay under (None: no threshold set).
THRESHOLDS: dict[str, float | None] = {
    "sera --help": 0.5,
    "sera experts list": 3.0,
    "sera predict": None,
    "import torch": None,
}


def sera_command() -> list[str]:
    """This interpreter's own console script (what a venv's `sera` is), else the one on PATH,
    else the package's ``__main__``. Shims on PATH (pyenv's bash wrapper adds ~0.1 s) are
    skipped when the interpreter's script exists: they time the version manager, not sera."""
    own = Path(sys.executable).parent / "sera"
    if own.is_file():
        return [str(own)]
    found = shutil.which("sera")
    if found:
        return [found]
    if importlib.util.find_spec("sera_cli.__main__") is not None:
        return [sys.executable, "-m", "sera_cli"]
    raise SystemExit("no `sera` on PATH and no sera_cli.__main__: pip install -e . first")


def run(cmd: list[str], cwd: Path) -> None:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")


def make_checkpoint(sera: list[str], work: Path) -> tuple[Path, float]:
    """A sera-tiny run folder trained for 2 steps (then validated once, as `fit()` does)."""
    run_dir = work / "run"
    began = time.perf_counter()
    run([*sera, "train", "--max-steps", "2", "--batch-size", "4", "--out", str(run_dir),
         "--json"], work)
    return run_dir, time.perf_counter() - began


def first_image(data_root: Path) -> Path:
    images = sorted((data_root / "images").rglob("*.jpg"))
    if not images:
        raise SystemExit(f"no .jpg under {data_root / 'images'}")
    return images[0]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None, metavar="RUN",
                        help="a sera-tiny run folder for predict (default: train one 2 steps)")
    common.add_timing_arguments(parser, budget=60.0)
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = 3
    sera = sera_command()
    data_root = ensure_synthetic()  # the same cache `sera train` uses by default
    with tempfile.TemporaryDirectory(prefix="sera-bench-startup-") as tmp:
        work = Path(tmp)
        checkpoint, train_s = ((args.checkpoint, None) if args.checkpoint
                               else make_checkpoint(sera, work))
        image = first_image(data_root)
        commands = {
            "sera --help": [*sera, "--help"],
            "sera experts list": [*sera, "experts", "list"],
            "sera predict": [*sera, "predict", str(image), "the red circle",
                             "--checkpoint", str(checkpoint), "--out", str(work / "mask.png")],
            "import torch": [sys.executable, "-c", "import torch"],
        }
        calls: dict[str, Callable[[], Any]] = {
            name: (lambda cmd=cmd: run(cmd, work)) for name, cmd in commands.items()}
        first = {}
        for name, call in calls.items():  # time_interleaved's warm-up, done here to be timed
            began = time.perf_counter()
            call()
            first[name] = time.perf_counter() - began
        timings = common.time_interleaved(calls, args.repeats, warmup=0,
                                          budget_s=args.budget)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows = []
    for name, timing in timings.items():
        limit = THRESHOLDS[name]
        rows.append({"command": name, "first_s": first[name], "time": timing,
                     "threshold_s": limit,
                     "passed": None if limit is None else timing.median < limit})
    common.print_table(
        f"Start-up: wall time of a fresh process per run ({' '.join(sera)}), commands in turn; "
        "first = each command's first run here (fills the OS file cache and sera's caches, "
        "which earlier use may have filled already), not in the median; pass = median under "
        f"the threshold; predict: one {image.name}, sera-tiny checkpoint, CPU; load average "
        f"{load:.1f} on {os.cpu_count()} cores",
        ["command", "first s", "runs", "median s", "min s", "max s", "threshold s", "pass"],
        [[r["command"], r["first_s"], len(r["time"].runs), r["time"].median, r["time"].min,
          r["time"].max,
          "-" if r["threshold_s"] is None else r["threshold_s"],
          "-" if r["passed"] is None else ("pass" if r["passed"] else "FAIL")] for r in rows])
    print(f"(checkpoint for predict: {checkpoint}" + ("" if train_s is None else
          f", from `sera train --max-steps 2 --batch-size 4` in {train_s:.1f} s, validation "
          "included") + ")")
    headline = {f"{r['command']} median s": f"{r['time'].median:.3g}"
                + ("" if r["passed"] is None else
                   f" ({'pass' if r['passed'] else 'FAIL'}, < {r['threshold_s']:g})")
                for r in rows}
    ratio = timings["sera predict"].median / timings["import torch"].median
    headline["sera predict / import torch"] = f"{ratio:.2f}x (goal <= 2x)"
    print(f"cold sera predict / cold import torch (medians, same run): {ratio:.2f}x")
    result = {"command": sera, "image": image, "checkpoint": checkpoint,
              "checkpoint_train_s": train_s, "rows": rows,
              "predict_over_import_torch": ratio, "headline": headline}
    common.write_results("startup", result)
    return result


if __name__ == "__main__":
    main()
