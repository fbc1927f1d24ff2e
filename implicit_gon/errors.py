"""User-facing errors: the CLI prints these as one line and exits non-zero, without a traceback."""


class GONError(Exception):
    """A problem with the user's input (file, value, shape) or a run that cannot go on (NaN)."""


class DataError(GONError):
    """A dataset file is missing, truncated, corrupt or of the wrong shape."""


class Interrupted(GONError):
    """Ctrl-C, SIGTERM or SIGHUP during work that can say where it stopped (e.g. the last checkpoint); the CLI
    exits with `code`: 128 + the signal's number (130, 143, 129)."""

    def __init__(self, message: str, code: int = 130):
        super().__init__(message)
        self.code = code
