"""User-facing errors: the CLI prints these as one line and exits non-zero, without a traceback."""


class GONError(Exception):
    """A problem with the user's input (file, value, shape) or a run that cannot go on (NaN)."""


class UsageError(GONError):
    """The command line (or an API call's arguments) asks for what cannot be: a value of the wrong type or range,
    a flag this verb or this run cannot use, an unknown name. The CLI exits 2 for these, as click does for its own
    (an unparsable `--steps`); a wrong file (DataError, a bad config file) exits 1."""


class DataError(GONError):
    """A dataset file is missing, truncated, corrupt or of the wrong shape."""


class Interrupted(GONError):
    """Ctrl-C, SIGTERM or SIGHUP during work that can say where it stopped (e.g. the last checkpoint); the CLI
    exits with `code`: 128 + the signal's number (130, 143, 129)."""

    def __init__(self, message: str, code: int = 130):
        super().__init__(message)
        self.code = code


def one_line(text) -> str:
    """text with its control characters escaped (a newline as \\n): a file name cannot break an error line in two
    or forge an `error:` line of its own ('bad\\nerror: fake line.png' did both)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def indefinite(noun: str) -> str:
    """'a file', 'an image file', 'an SDF run': the article as the noun is spoken (an initialism by the name of its
    first letter: S is 'es')."""
    word = noun.split(" ")[0]
    vowel = word[:1] in "AEFHILMNORSX" if len(word) > 1 and word.isupper() else word[:1].lower() in "aeiou"
    return ("an " if vowel else "a ") + noun


def natural_list(items, last: str = "and") -> str:
    """Items as a sentence lists them: 'images', 'images and audio', 'images, audio and sdf' (last: 'or' for a
    choice). Refusals name signals, fields' choices and the like this way, never as a tuple or a bare comma list."""
    items = [str(i) for i in items]
    if len(items) < 2:
        return "".join(items)
    return f"{', '.join(items[:-1])} {last} {items[-1]}"
