"""Atomic writes: the file gets the permissions of any other file, and an interrupted write
(Ctrl-C included) leaves neither a half file nor a temporary one."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from sera_cli.runs import atomic
from sera_cli.runs.atomic import atomic_write


def test_written_file_has_the_umask_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a.json", "{}")
        (tmp_path / "plain.json").write_text("{}")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "a.json").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.json").stat().st_mode) == 0o644


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, interrupt: type[BaseException]) -> None:
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"old")

    def stop(fd: int) -> None:
        raise interrupt()

    monkeypatch.setattr(atomic.os, "fsync", stop)
    with pytest.raises(interrupt):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]
