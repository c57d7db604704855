"""All benchmarks in one process, one after another, then a summary of their headline figures.

    python bench/run_all.py [--quick] [--train-to-miou 50]

Runs inference, experts, training and startup (each writes bench/results/<name>.json) and
writes bench/results/summary.json. `--quick` is passed to every script and trains to no mIoU;
`--train-to-miou` (default 50, 0 for none) goes to training, whose trained run then serves
startup's `sera predict`.

Each script gets a time budget (`--budget`: seconds of timed rounds, past which it stops once
it has 3 rounds). What a budget cannot cut is model building, the warm-up run (which also
counts FLOPs) and the first 3 rounds. Measured on 2 cores (`nox -s bench`, 12 min 15 s in all):
inference 179 s (sera-b batch 8 alone: 4 forwards of ~28 s), experts 76 s (four sera-b models,
3 rounds at a budget of 20; 45 now, for about 5 rounds and 25 s more), training 411 s (its
steps, then 400 steps to val mIoU 50 with 5 validations), startup 50 s. `--train-to-miou 0`
leaves out the 7 minutes of training to an mIoU; `--quick` (sera-tiny only, 3 rounds) takes
2-4 minutes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import common
import experts
import inference
import startup
import training

#: (name, main, --budget seconds) in the order they run: training before startup, whose
#: `sera predict` then loads the model that training trained.
BENCHES: list[tuple[str, Any, float]] = [
    ("inference", inference.main, 20.0),
    ("experts", experts.main, 45.0),
    ("training", training.main, 10.0),
    ("startup", startup.main, 20.0),
]


def bench_arguments(name: str, budget: float, args: argparse.Namespace, work: Path) -> list[str]:
    """The command line each script gets: its budget, --quick, and the trained run's folder
    passed from training (which writes it) to startup (which predicts with it)."""
    out = ["--budget", f"{budget:g}"] + (["--quick"] if args.quick else [])
    trained = work / "trained-run"
    if name == "training" and args.train_to_miou:
        out += ["--train-to-miou", f"{args.train_to_miou:g}", "--keep-run", str(trained)]
    if name == "startup" and (trained / "model.safetensors").is_file():
        out += ["--checkpoint", str(trained)]
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="pass --quick to every script; no training to an mIoU")
    parser.add_argument("--train-to-miou", type=float, default=50.0, metavar="MIOU",
                        help="val mIoU the training run goes to (0: none)")
    args = parser.parse_args(argv)
    if args.quick:
        args.train_to_miou = 0.0
    began = time.perf_counter()
    results: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    failed: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="sera-bench-") as tmp:
        for name, bench_main, budget in BENCHES:
            bench_args = bench_arguments(name, budget, args, Path(tmp))
            print(f"\n=== {name}: python bench/{name}.py {' '.join(bench_args)}", flush=True)
            start = time.perf_counter()
            try:
                results[name] = bench_main(bench_args)
            except Exception as exc:  # the others still run; the exit status says it failed
                traceback.print_exc()
                failed[name] = f"{type(exc).__name__}: {exc}"
            except SystemExit as exc:  # a script's own one-line refusal
                failed[name] = str(exc.code)
                print(f"{name} stopped: {exc.code}", file=sys.stderr)
            seconds[name] = time.perf_counter() - start
            common.release_memory()  # the next script's peak memory starts from what is in use

    rows = []
    for name, result in results.items():
        headline = result.get("headline") or {"(no headline figures in this mode)": "-"}
        rows += [[name, key, value] for key, value in headline.items()]
    rows += [[name, "FAILED", reason] for name, reason in failed.items()]
    common.print_table("Summary: headline figures (details in each table above and in "
                       "bench/results/<bench>.json)", ["bench", "figure", "value"], rows)
    total = time.perf_counter() - began
    common.print_table("Time per benchmark (wall, this process)", ["bench", "budget s", "s"],
                       [[name, budget, seconds[name]] for name, _, budget in BENCHES]
                       + [["all", "", total]])
    summary = {"quick": args.quick, "train_to_miou": args.train_to_miou,
               "budgets_s": {name: budget for name, _, budget in BENCHES},
               "seconds": seconds, "total_s": total, "failed": failed,
               "headline": {name: r.get("headline", {}) for name, r in results.items()}}
    common.write_results("summary", summary)
    return summary


if __name__ == "__main__":
    sys.exit(1 if main()["failed"] else 0)
