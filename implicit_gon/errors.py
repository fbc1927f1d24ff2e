"""User-facing errors: the CLI prints these as one line and exits non-zero, without a traceback."""


class GONError(Exception):
    """A problem with the user's input (file, value, shape) or a run that cannot go on (NaN)."""


class DataError(GONError):
    """A dataset file is missing, truncated, corrupt or of the wrong shape."""


class Interrupted(GONError):
    """Ctrl-C during work that can say where it stopped (e.g. the last checkpoint); the CLI exits 130."""
