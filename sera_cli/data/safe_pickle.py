"""Read the `refs(SPLITBY).p` pickle of the `refer` release without letting it run code.

A pickle can name any importable callable (`os.system`, `subprocess.Popen`, ...) and have the
unpickler call it. The refs file only holds lists, dicts, strings and numbers, and those are built
by pickle opcodes that need no global lookup at all. So the unpickler below refuses *every* global
lookup: a genuine refs file loads, a tampered one fails before any callable is ever reached.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, NoReturn

from sera_cli.errors import SeraError

# Everything a malformed or hostile byte stream can make the pure-data part of the pickle machine
# raise (bad opcode, short read, bad length, bad string encoding, deep nesting, huge length).
_MALFORMED = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    MemoryError,
    RecursionError,
)


class _Refused(pickle.UnpicklingError):
    """The pickle asks for something beyond plain data (a global or a persistent id)."""


class _PlainDataUnpickler(pickle.Unpickler):
    """Unpickler that builds containers and scalars and nothing else."""

    def find_class(self, module: str, name: str) -> NoReturn:
        # Every route from pickle data to code (REDUCE, BUILD, INST, OBJ, NEWOBJ, EXT*) needs a
        # global first, and globals come only from here.
        raise _Refused(f"refuses global {module}.{name}")

    def persistent_load(self, pid: Any) -> NoReturn:
        raise _Refused("refuses persistent ids")


def load_refs(path: str | Path) -> list[dict]:
    """Load a `refs(SPLITBY).p` file as a list of ref dicts, refusing anything but plain data.

    The files of the public release were written by Python 2: its `str` objects are decoded as
    UTF-8 (undecodable bytes are replaced rather than failing on one odd sentence).
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            refs = _PlainDataUnpickler(f, encoding="utf-8", errors="replace").load()
    except FileNotFoundError:
        raise SeraError(f"refs file not found: {path}") from None
    except IsADirectoryError:
        raise SeraError(f"refs file {path} is a directory, expected a pickle file") from None
    except OSError as e:
        raise SeraError(f"cannot read refs file {path}: {e.strerror or e}") from None
    except _Refused as e:
        raise SeraError(
            f"{path} was refused, nothing in it was run: sera {e}, and a refs file holds plain "
            "data only, so it was tampered with or is not a refs file; download the `refer` "
            "release again or regenerate it"
        ) from None
    except _MALFORMED as e:
        raise SeraError(
            f"{path} is not a valid refs pickle ({type(e).__name__}: {e}); it may be truncated, "
            "corrupt or tampered with: download the `refer` release again or regenerate it"
        ) from None
    if not isinstance(refs, list) or not all(isinstance(r, dict) for r in refs):
        raise SeraError(
            f"{path} holds a {type(refs).__name__}, expected a list of ref dicts as in the "
            "`refer` release"
        )
    return refs
