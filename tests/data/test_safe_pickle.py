import os
import pickle
from pathlib import Path

import pytest

from sera_cli.data.safe_pickle import load_refs
from sera_cli.errors import SeraError

REFS = [
    {
        "ref_id": 1,
        "ann_id": 10,
        "image_id": 100,
        "split": "train",
        "sentences": [{"sent_id": 5, "sent": "left man", "raw": "Left man!", "tokens": ["left"]}],
        "score": 0.5,
        "flag": None,
        "pair": (1, 2),
    }
]


class _RunsCode:
    """Unpickling this calls os.system, which writes a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_plain_refs_load_at_every_protocol(tmp_path: Path, protocol: int) -> None:
    path = tmp_path / "refs(unc).p"
    path.write_bytes(pickle.dumps(REFS, protocol=protocol))
    assert load_refs(path) == REFS


def test_python2_str_is_decoded_as_utf8(tmp_path: Path) -> None:
    # Protocol 2 SHORT_BINSTRING, as Python 2 wrote `str`: b'caf\xc3\xa9' in a list.
    path = tmp_path / "refs.p"
    path.write_bytes(b"\x80\x02]q\x00}q\x01U\x01sU\x05caf\xc3\xa9sa.")
    assert load_refs(path) == [{"s": "café"}]


def test_pickle_that_would_run_code_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "refs(unc).p"
    path.write_bytes(pickle.dumps([{"ref_id": 1, "x": _RunsCode(marker)}], protocol=2))
    # the same bytes with the stock unpickler would create the marker: prove the payload is live
    live = tmp_path / "live"
    pickle.loads(pickle.dumps(_RunsCode(live)))
    assert live.exists()

    with pytest.raises(SeraError, match=r"refs\(unc\)\.p.*tampered"):
        load_refs(path)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [0, 4])
def test_any_global_is_refused(tmp_path: Path, protocol: int) -> None:
    path = tmp_path / "refs.p"
    path.write_bytes(pickle.dumps([{"s": {1, 2}}, Path("x")], protocol=protocol))
    with pytest.raises(SeraError, match="refuses global"):
        load_refs(path)


@pytest.mark.parametrize(
    "content, what",
    [(b"", "EOFError"), (b"not a pickle at all", "Unpickling"), (None, "truncated")],
)
def test_broken_files_name_the_file(tmp_path: Path, content: bytes | None, what: str) -> None:
    path = tmp_path / "refs(umd).p"
    path.write_bytes(content if content is not None else pickle.dumps(REFS)[:40])
    with pytest.raises(SeraError, match=r"refs\(umd\)\.p") as e:
        load_refs(path)
    assert what in str(e.value) or "truncated" in str(e.value)


def test_wrong_top_level_type_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "refs.p"
    path.write_bytes(pickle.dumps({"refs": []}))
    with pytest.raises(SeraError, match="holds a dict"):
        load_refs(path)
    with pytest.raises(SeraError, match="not found.*nothere.p"):
        load_refs(tmp_path / "nothere.p")
