"""`sera serve` on sera-tiny: time from the command to its first answered request, request
times through the gradio API, and whether two predictions at once beat one after another.

    python bench/serve.py [--checkpoint RUN] [--requests 20] [--quick]

Needs the serve extra (`pip install -e '.[serve]'`). Without `--checkpoint`, sera-tiny trained
for 2 steps (as startup.py does); speed does not depend on training. Requests go from
`gradio_client` on this machine to 127.0.0.1, one synthetic image each, at the run's threshold:

- first answer: `sera serve` started -> the first request answered (imports, model load,
  example synthesis, server start, one prediction); polled every 0.2 s;
- sequential: one client, one request at a time (what one visitor waits);
- concurrent: 4 clients at once, 5 requests each; the queue runs them one at a time;
- in-process: the same predictions by one model, one after another, and by two copies of it in
  two threads at once, without a server: whether running requests side by side would pay
  (docs/serve.md, "Concurrent use").
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import common
import torch
from startup import make_checkpoint, sera_command

from sera_cli.data.default import ensure_synthetic
from sera_cli.data.refer import ReferIndex

CLIENTS, PER_CLIENT = 4, 5
START_TIMEOUT = 600.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def samples(data_root: Path, n: int) -> list[tuple[Path, str]]:
    """(image, expression) from the synthetic val split, one per image."""
    index = ReferIndex.load(data_root, "synth")
    chosen: dict[Path, str] = {}
    for sample in index.samples("val"):
        chosen.setdefault(index.image_path(sample), sample.sentence)
        if len(chosen) == n:
            break
    return list(chosen.items())


def first_answer(url: str, process: subprocess.Popen[bytes], began: float,
                 job: tuple[Path, str], downloads: Path) -> tuple[float, Any]:
    """Seconds from ``began`` (the command's start) until the server answers one request; and
    the connected client."""
    from gradio_client import Client, handle_file

    while True:
        if process.poll() is not None:
            raise SystemExit(f"sera serve exited with {process.returncode}")
        if time.perf_counter() - began > START_TIMEOUT:
            raise SystemExit(f"sera serve did not answer within {START_TIMEOUT:.0f} s")
        try:
            client = Client(url, verbose=False, download_files=downloads)
            break
        except Exception:  # not listening yet
            time.sleep(0.2)
    client.predict(handle_file(str(job[0])), job[1], api_name="/predict")
    return time.perf_counter() - began, client


def request_times(client: Any, jobs: list[tuple[Path, str]]) -> list[float]:
    from gradio_client import handle_file

    times = []
    for image, expression in jobs:
        began = time.perf_counter()
        message = client.predict(handle_file(str(image)), expression, api_name="/predict")[-1]
        times.append(time.perf_counter() - began)
        if not message.startswith(("mask:", "no pixel", "no target")):
            raise SystemExit(f"request failed: {message}")
    return times


def concurrent_times(url: str, jobs: list[tuple[Path, str]], downloads: Path
                     ) -> tuple[float, list[float]]:
    """Wall seconds for CLIENTS clients sending PER_CLIENT requests each, and every latency."""
    from gradio_client import Client

    def one(n: int) -> list[float]:
        client = Client(url, verbose=False, download_files=downloads / f"c{n}")
        return request_times(client, [jobs[(n + k) % len(jobs)] for k in range(PER_CLIENT)])

    began = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        latencies = [t for done in pool.map(one, range(CLIENTS)) for t in done]
    return time.perf_counter() - began, latencies


def in_process(checkpoint: Path, jobs: list[tuple[Path, str]], repeats: int
               ) -> dict[str, Any]:
    """The same predictions by one model in one thread, and by two copies of it in two threads
    at once (one model cannot take two: AdaptedDinov2 keeps per-forward state), timed in turn;
    predictions per second of each."""
    from sera_cli.engine.inference import Predictor

    predictors = [Predictor(checkpoint), Predictor(checkpoint)]

    def run(predictor: Predictor, part: list[tuple[Path, str]]) -> None:
        for image, expression in part:
            predictor(image, expression)

    def in_threads(*parts: tuple[Predictor, list[tuple[Path, str]]]) -> None:
        """Worker threads, as gradio runs requests (torch on the main thread under load is
        several times slower: docs/serve.md)."""
        threads = [threading.Thread(target=run, args=part) for part in parts]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    timings = common.time_interleaved(
        {"one model": lambda: in_threads((predictors[0], jobs)),
         "two models at once": lambda: in_threads(*((p, jobs[i::2])
                                                    for i, p in enumerate(predictors)))},
        repeats)
    return {"predictions": len(jobs), "torch_threads": torch.get_num_threads(),
            **{f"{name} per s": len(jobs) / t.median for name, t in timings.items()},
            "timings": timings}


def seconds(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None, metavar="RUN",
                        help="a run folder (default: sera-tiny trained 2 steps)")
    parser.add_argument("--requests", type=int, default=20, help="sequential requests timed")
    parser.add_argument("--quick", action="store_true", help="5 sequential requests")
    args = parser.parse_args(argv)
    try:
        import gradio_client  # noqa: F401
    except ImportError:
        raise SystemExit("bench/serve.py needs the serve extra: pip install -e '.[serve]'"
                         ) from None
    n_requests = 5 if args.quick else args.requests
    sera = sera_command()
    jobs = samples(ensure_synthetic(), 8)
    with tempfile.TemporaryDirectory(prefix="sera-bench-serve-") as tmp:
        work = Path(tmp)
        checkpoint = args.checkpoint or make_checkpoint(sera, work)[0]
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        env = {**os.environ, "GRADIO_TEMP_DIR": str(work / "gradio")}
        began = time.perf_counter()
        with (work / "serve.log").open("wb") as log:
            process = subprocess.Popen(
                [*sera, "serve", "--checkpoint", str(checkpoint), "--port", str(port),
                 "--device", "cpu"], stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            first_s, client = first_answer(url, process, began, jobs[0], work / "client")
            sequential = request_times(client, [jobs[k % len(jobs)] for k in range(n_requests)])
            wall_s, latencies = concurrent_times(url, jobs, work / "client")
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=120)
        threads = in_process(checkpoint, jobs, repeats=2 if args.quick else 5)
    result = {
        "checkpoint": checkpoint, "requests": n_requests,
        "first_answer_s": first_s,
        "sequential_request_s": seconds(sequential),
        "concurrent": {"clients": CLIENTS, "requests": CLIENTS * PER_CLIENT, "wall_s": wall_s,
                       "latency_s": seconds(latencies)},
        "in_process": threads,
    }
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    common.print_table(
        f"sera serve, sera-tiny on the CPU, gradio API on 127.0.0.1; load average {load:.1f} "
        f"on {os.cpu_count()} cores",
        ["figure", "seconds (median)", "min", "max"],
        [["sera serve -> first answer", first_s, "-", "-"],
         [f"request, one client ({n_requests})", *_row(sequential)],
         [f"request, {CLIENTS} clients at once ({CLIENTS * PER_CLIENT})", *_row(latencies)],
         [f"all {CLIENTS * PER_CLIENT} concurrent requests", wall_s, "-", "-"]])
    print(f"\nin process, {threads['predictions']} predictions per round: "
          f"{threads['one model per s']:.2f}/s by one model, "
          f"{threads['two models at once per s']:.2f}/s by two at once")
    result["headline"] = {
        "first answer s": f"{first_s:.1f}",
        "median request s": f"{statistics.median(sequential):.3f}",
        "two models at once / one model":
            f"{threads['two models at once per s'] / threads['one model per s']:.2f}",
    }
    common.write_results("serve", result)
    return result


def _row(values: list[float]) -> list[float]:
    return [statistics.median(values), min(values), max(values)]


if __name__ == "__main__":
    main()
