"""The one exception type the CLI turns into a single line instead of a traceback."""

from __future__ import annotations

import re
import sys

# torch's DataLoader re-raises a worker's exception in the main process as
# ``type(exc)("Caught SeraError in DataLoader worker process 0.\nOriginal Traceback ...")``,
# whose last line is ``<module>.SeraError: <message>``.
_WORKER_WRAPPED = re.compile(
    r"\ACaught \w+ in [^\n]*\.\nOriginal Traceback \(most recent call last\):\n.*?"
    r"^[\w.]*SeraError: (?P<message>.*?)\n*\Z",
    re.DOTALL | re.MULTILINE,
)


class SeraError(Exception):
    """A problem the user can fix: the message names the bad file, value or option.

    Raised in a DataLoader worker, it keeps its own one-line message when torch re-raises it in
    the main process; the worker's traceback becomes a note, shown only with a traceback
    (``sera --debug``).
    """

    def __init__(self, *args: object) -> None:
        if len(args) == 1 and isinstance(args[0], str):
            wrapped = _WORKER_WRAPPED.match(args[0])
            if wrapped:
                super().__init__(wrapped["message"])
                if sys.version_info >= (3, 11):
                    self.add_note(args[0])
                return
        super().__init__(*args)


class TrainingInterrupted(SeraError):
    """Training stopped on a signal with its state saved at ``step``: a caller that drives
    several runs (the ablation bench) says how to go on in its own terms."""

    def __init__(self, message: str, step: int) -> None:
        super().__init__(message)
        self.step = step


class RenamedKeyWarning(UserWarning):
    """A file used a key under its old name; it was read under the new one (docs/formats.md)."""
