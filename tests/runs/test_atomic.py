"""Atomic writes: the file gets the permissions of any other file, and an interrupted write
(Ctrl-C included) leaves neither a half file nor a temporary one."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from sera_cli.errors import SeraError
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


def test_the_new_bytes_go_through_a_hidden_temporary_beside_the_target(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Beside it, so the rename stays on one file system; hidden and named `.NAME.*.tmp`, so a
    listing does not show it and a leftover is recognisable."""
    renames: list[tuple[Path, Path]] = []
    replace = os.replace

    def record(src: str, dst: Path) -> None:
        renames.append((Path(src), Path(dst)))
        assert Path(src).read_bytes() == b"new"
        replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", record)
    target = tmp_path / "runs" / "config.json"
    atomic_write(target, b"new")
    [(src, dst)] = renames
    assert dst == target and src.parent == target.parent
    assert src.name.startswith(".config.json.") and src.name.endswith(".tmp")
    assert target.read_bytes() == b"new" and not src.exists()


def test_a_folder_that_cannot_be_made_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file where the folder should be")
    target = tmp_path / "taken" / "config.json"
    with pytest.raises(SeraError) as caught:
        atomic_write(target, "{}")
    assert str(caught.value) == (
        f"cannot write {target}: File exists; its previous version, if any, is unchanged: "
        "free disk space or choose a writable folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_a_failed_write_names_the_reason_and_removes_the_temporary(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)
    target = tmp_path / "model.safetensors"
    with pytest.raises(SeraError, match=r"^cannot write .*model\.safetensors: No space "
                                                r"left on device; its previous version"):
        atomic_write(target, b"new")
    assert list(tmp_path.iterdir()) == []


def test_missing_parent_folders_are_made_at_every_level(tmp_path: Path) -> None:
    target = tmp_path / "runs" / "2024" / "config.json"
    atomic_write(target, "{}")
    assert target.read_text() == "{}"


def test_ctrl_c_just_after_the_rename_is_still_a_ctrl_c(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A signal can land between os.replace returning and the end of the write: the temporary
    is already gone, and cleaning it up must not turn the KeyboardInterrupt into a
    FileNotFoundError."""
    replace = os.replace

    def replace_then_interrupt(src: str, dst: Path) -> None:
        replace(src, dst)
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "replace", replace_then_interrupt)
    target = tmp_path / "config.json"
    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]
