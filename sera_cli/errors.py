"""The one exception type the CLI turns into a single line instead of a traceback."""


class SeraError(Exception):
    """A problem the user can fix: the message names the bad file, value or option."""
