"""Option types shared by several commands, so that one option reads and is checked the same
everywhere it appears."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Checkpoint = Annotated[Path | None, typer.Option(help="Run folder (default: the latest run).")]
Data = Annotated[Path | None, typer.Option(help="Data root (default: the run's own data).")]
SplitBy = Annotated[str | None, typer.Option(help="refs file: unc, umd, google (default: each "
                                                  "data set's own).")]
Threshold = Annotated[float | None, typer.Option(help="Mask probability threshold (default: "
                                                      "the run's, 0.35).")]
BatchSize = Annotated[int, typer.Option(min=1, help="Samples per forward pass.")]
Device = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
Precision = Annotated[str, typer.Option(
    help="auto (bf16 on CUDA and on CPUs with AMX or AVX512-BF16, else fp32), fp32, bf16.")]
Workers = Annotated[int, typer.Option(min=0, help="Data-loading worker processes.")]
SkipBad = Annotated[bool, typer.Option("--skip-bad", help="Leave out broken data entries.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
