"""Shared fixtures. Real data comes from one place: $IMPLICIT_GON_DATA, else test-data/ (make test-data), else
../shared/data beside the repo.
A missing folder is an error, never a skip: the real-data tests are part of the contract."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def shared_data() -> Path:
    fetched = REPO / "test-data"  # make test-data
    default = fetched if (fetched / "SOURCES.md").is_file() else REPO.parent / "shared" / "data"
    path = Path(os.environ.get("IMPLICIT_GON_DATA", default))
    if not (path / "SOURCES.md").is_file():
        pytest.fail(f"real test data not found at {path} (set IMPLICIT_GON_DATA)", pytrace=False)
    return path


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Decode caches go to a per-session temp folder, never the user's ~/.cache nor beside the shared data. Session
    scope: a function-scoped fixture is set up after module-scoped ones (test_cli's mnist_run), which then wrote
    their cache beside the data."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IMPLICIT_GON_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))  # a test that unsets the
        # first still writes under the session's temp folder, never the user's ~/.cache
        yield


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)  # xdist runs two workers on two cores


def run_cli(args, capsys=None) -> tuple[int, str, str]:
    """Run the console entry point in-process; returns (exit code, stdout, stderr). The stop-signal handlers the
    CLI installs for its process (interrupts.install) are put back as they were, so pytest's own Ctrl-C works."""
    import cli
    from implicit_gon.interrupts import SIGNALS
    code, before = 0, {s: signal.getsignal(s) for s in SIGNALS}
    try:
        cli.main([str(a) for a in args])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    finally:
        for s, h in before.items():
            if h is not None:  # None: a handler not set from Python, which cannot be put back from it
                signal.signal(s, h)
    out, err = capsys.readouterr() if capsys else ("", "")
    return code, out, err


def erase_flac_length(path) -> None:
    """Zero the total-samples field of a FLAC's STREAMINFO (36 bits at bytes 21-25): 'unknown', as a streamed
    encoder writes it."""
    b = bytearray(path.read_bytes())
    assert b[:4] == b"fLaC" and b[4] & 0x7F == 0  # STREAMINFO comes first
    b[21] &= 0xF0
    b[22:26] = bytes(4)
    path.write_bytes(bytes(b))
