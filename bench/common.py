"""What every bench script shares: models and inputs, interleaved timing, peak memory, FLOPs,
machine facts, a plain-text table and the JSON result file.

Timings on a shared machine drift by tens of percent from minute to minute, so comparisons are
made from interleaved repetitions in one process (A, B, A, B, ...) and reported as ratios of
medians; the spread (min and max) is kept next to every median.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from sera_cli.config import ModelConfig, preset
from sera_cli.model.sera import SeraModel, build_model

RESULTS = Path(__file__).resolve().parent / "results"
EOT_TOKEN = 49407  # CLIP's end-of-text id: the largest id, where the sentence feature is read


# -- models and inputs ---------------------------------------------------------------------------
def model_config(name: str, **overrides: Any) -> ModelConfig:
    """A preset with random backbones (no downloads), with some fields replaced."""
    cfg = preset(name)
    cfg.vision.hub_id = None
    cfg.text.pretrained = None
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg


def build(cfg: ModelConfig, seed: int = 0) -> SeraModel:
    """The model in eval mode, built from the built-in plugin only, so that whatever else is
    installed cannot change the figures."""
    import sera_builtin

    from sera_cli.registry import create_registry

    torch.manual_seed(seed)
    registry = create_registry(plugins=[sera_builtin], entry_points=False)
    return build_model(cfg, registry).eval()


def inputs(cfg: ModelConfig, batch: int, device: torch.device | str = "cpu",
           seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random pixels and word ids shaped like real ones: an end-of-text token, then padding."""
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randn(batch, 3, cfg.image_size, cfg.image_size, generator=g)
    ids = torch.randint(1, EOT_TOKEN - 1, (batch, cfg.text.context_length), generator=g)
    for i in range(batch):
        end = min(3 + i, cfg.text.context_length - 1)
        ids[i, end] = EOT_TOKEN
        ids[i, end + 1:] = 0
    return pixels.to(device), ids.to(device)


# -- timing --------------------------------------------------------------------------------------
@dataclass
class Timing:
    """Seconds per call over the timed repetitions (warm-up excluded)."""

    median: float
    min: float
    max: float
    runs: list[float]

    @classmethod
    def of(cls, runs: list[float]) -> Timing:
        return cls(statistics.median(runs), min(runs), max(runs), runs)

    def spread_pct(self) -> float:
        """(max - min) / median, in percent: how much to trust the median."""
        return 100.0 * (self.max - self.min) / self.median


def sync(device: torch.device | str) -> None:
    """Wait for queued GPU work, so that a timer measures it."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_interleaved(calls: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1,
                     device: torch.device | str = "cpu", budget_s: float | None = None,
                     min_repeats: int = 3) -> dict[str, Timing]:
    """Each call ``warmup`` times, then all of them in turn ``repeats`` times, so that a slow
    minute of a shared machine hits every variant alike. Past ``budget_s`` seconds of timed
    rounds, stops after ``min_repeats`` rounds (keeps `nox -s bench` within its time)."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    runs: dict[str, list[float]] = {name: [] for name in calls}
    began = time.perf_counter()
    for done in range(1, repeats + 1):
        for name, call in calls.items():
            sync(device)
            start = time.perf_counter()
            call()
            sync(device)
            runs[name].append(time.perf_counter() - start)
        over = budget_s is not None and time.perf_counter() - began > budget_s
        if over and done >= min_repeats:
            break
    return {name: Timing.of(r) for name, r in runs.items()}


# -- memory --------------------------------------------------------------------------------------
def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@contextmanager
def peak_memory(device: torch.device | str = "cpu", interval: float = 0.002
                ) -> Iterator[dict[str, float]]:
    """Peak memory of the block, in MiB, filled in on exit.

    CUDA: ``max_memory_allocated``. CPU: the process's resident set, sampled every ``interval``
    seconds by a thread (torch's CPU allocator keeps no statistics and tracemalloc does not see
    it); ``peak_mib`` is the highest sample, ``added_mib`` its excess over the start.
    """
    out: dict[str, float] = {}
    mib = 2.0 ** 20
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        yield out
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        out.update(peak_mib=peak / mib, added_mib=(peak - start) / mib)
        return
    if not os.path.exists("/proc/self/statm"):  # not Linux: the lifetime peak is all there is
        import resource

        yield out
        out.update(peak_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                   added_mib=float("nan"))
        return
    start = _rss_bytes()
    peak = [start]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(interval):
            peak[0] = max(peak[0], _rss_bytes())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield out
    finally:
        done.set()
        thread.join()
        peak[0] = max(peak[0], _rss_bytes())
        out.update(peak_mib=peak[0] / mib, added_mib=(peak[0] - start) / mib)


def release_memory() -> None:
    """Collect garbage and hand freed heap memory back to the OS (glibc's ``malloc_trim``), so
    that a later ``peak_memory`` in the same process starts from what is really in use."""
    import gc

    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


# -- work ----------------------------------------------------------------------------------------
def count_flops(call: Callable[[], Any]) -> int:
    """Floating-point operations of one call, as torch's FlopCounterMode counts them (matmuls,
    convolutions, attention; element-wise work is not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        call()
    return int(counter.get_total_flops())


def warm_up(calls: dict[str, Callable[[], Any]]) -> dict[str, int]:
    """Each call once, untimed, under FlopCounterMode, and its FLOPs: the warm-up that timing
    needs and the FLOP count from one run (a separate counting run costs a sera-b forward more,
    30 s at batch 8). Then time with ``time_interleaved(..., warmup=0)``."""
    return {name: count_flops(call) for name, call in calls.items()}


def count_params(module: torch.nn.Module, trainable: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable)


def matmul(device: torch.device | str = "cpu", n: int = 2048, dtype: torch.dtype = torch.float32,
           calls: int = 4) -> tuple[Callable[[], Any], int]:
    """``calls`` n x n matrix products in ``dtype`` and their FLOPs: the yardstick for a model's
    FLOP rate in that dtype. The output is allocated once, so the call measures arithmetic, not
    memory allocation; several products a call keep a 2048-wide one long enough to time."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)

    def call() -> None:
        for _ in range(calls):
            torch.mm(a, b, out=out)

    return call, calls * 2 * n ** 3


def cpu_features() -> dict[str, bool]:
    """The CPU units the bf16 figures depend on, as torch's cpuinfo reads them."""
    return {"avx512": torch.cpu._is_avx512_supported(),
            "avx512_bf16": torch.cpu._is_avx512_bf16_supported(),
            "amx_tile": torch.cpu._is_amx_tile_supported()}


def bench_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def machine() -> dict[str, Any]:
    """What the figures depend on: CPU, threads, torch build, GPU."""
    info: dict[str, Any] = {
        "cpu": _cpu_name(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__, "python": platform.python_version(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "cpu_features": cpu_features(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# -- output --------------------------------------------------------------------------------------
def print_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """A plain-text table (nox logs and CI consoles show it as it is); numbers right-aligned."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    print(f"\n{title}")
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row, text in zip(rows, cells, strict=True):
        print("  ".join(t.rjust(w) if isinstance(v, int | float) else t.ljust(w)
                        for v, t, w in zip(row, text, widths, strict=True)))


def _cell(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def write_results(name: str, data: dict[str, Any]) -> Path:
    """bench/results/<name>.json, with the machine facts the figures depend on."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"bench": name, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "machine": machine(), **data}
    path.write_text(json.dumps(payload, indent=2, default=_jsonable))
    print(f"\nwrote {path}")
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, Timing):
        return asdict(value)
    if isinstance(value, Path | torch.device | torch.dtype):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def add_timing_arguments(parser: Any, budget: float) -> None:
    """The timing flags every benchmark script takes, so `--quick` means the same everywhere."""
    parser.add_argument("--repeats", type=int, default=5, help="timed runs after one warm-up")
    parser.add_argument("--budget", type=float, default=budget,
                        help="seconds of timed runs; at least 3 runs are made")
    parser.add_argument("--quick", action="store_true", help="sera-tiny only, 3 runs")
