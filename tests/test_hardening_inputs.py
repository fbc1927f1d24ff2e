"""Fault injection on inputs, round 2 (issue 23): hostile download servers, sizes declared by headers or asked for by
flags and the API, files that are not what they claim (links, FIFOs, devices), deep or huge JSON read back from a run.
Every failure must be one line, a non-zero exit and no traceback; memory cases run under an address-space limit so
that a regression fails instead of swapping."""
from __future__ import annotations

import hashlib
import http.server
import importlib
import threading
import time
from pathlib import Path

import pytest

from implicit_gon.errors import DataError
dl = importlib.import_module("signals.datasets.download")  # the package exports the function of that name


# -- downloads against hostile local servers --------------------------------------------------------------------------
class _Hostile(http.server.BaseHTTPRequestHandler):
    """/endless: zeros forever; /slow: a byte every 0.3 s; /lying: Content-Length abc; /loop: a redirect to itself;
    /big: announces more than expected; /ok: the body."""
    protocol_version = "HTTP/1.1"
    body = b"x" * 5000

    def log_message(self, *a):
        pass

    def do_GET(self):
        getattr(self, "_" + self.path.strip("/"), self._missing)()

    def _missing(self):
        self.send_error(404)

    def _headers(self, length=None, code=200, **extra):
        self.send_response(code)
        if length is not None:
            self.send_header("Content-Length", str(length))
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()

    def _endless(self):
        self._headers(**{"Connection": "close"})
        try:
            while True:
                self.wfile.write(b"\0" * 65536)
        except OSError:
            pass

    def _slow(self):
        self._headers(len(self.body))
        try:
            for b in self.body:
                self.wfile.write(bytes([b]))
                self.wfile.flush()
                time.sleep(0.3)
        except OSError:
            pass

    def _lying(self):
        self._headers("abc")
        self.wfile.write(self.body)

    def _big(self):
        self._headers(10**12)
        self.wfile.write(self.body)

    def _loop(self):
        self._headers(0, 302, Location="/loop")

    def _ok(self):
        self._headers(len(self.body))
        self.wfile.write(self.body)


@pytest.fixture
def hostile():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    srv.server_close()


SHA = "sha256:" + hashlib.sha256(_Hostile.body).hexdigest()


def _fails(url, dest, needle, **kw):
    with pytest.raises(DataError) as e:
        dl.download(url, dest, SHA, progress=False, timeout=5, **kw)
    msg = str(e.value)
    assert "\n" not in msg and needle in msg, msg
    assert not dest.exists() and not dest.with_name(dest.name + ".part").exists(), list(dest.parent.iterdir())
    return msg


def test_endless_download_stops_at_the_known_size(hostile, tmp_path):
    _fails(f"{hostile}/endless", tmp_path / "f.gz", "more than the 100,000 bytes", size=100_000)


def test_endless_download_of_unknown_size_stops_at_the_cap(hostile, tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "MAX_BYTES", 1 << 20)
    _fails(f"{hostile}/endless", tmp_path / "f.gz", "more than the 1,048,576 bytes")


def test_trickling_server_is_stopped_by_the_deadline(hostile, tmp_path):
    t0 = time.monotonic()
    _fails(f"{hostile}/slow", tmp_path / "f.gz", "too slow", deadline=1.0)
    assert time.monotonic() - t0 < 10  # the deadline, not the 5 s per-read timeout times 5000 bytes


def test_deadline_from_the_environment(hostile, tmp_path, monkeypatch):
    monkeypatch.setenv("IMPLICIT_GON_DOWNLOAD_DEADLINE", "0.5")
    _fails(f"{hostile}/slow", tmp_path / "f.gz", "too slow")


def test_bad_content_length_is_one_line(hostile, tmp_path):
    _fails(f"{hostile}/lying", tmp_path / "f.gz", "bad Content-Length 'abc'")


def test_announced_size_above_the_limit_is_refused_before_reading(hostile, tmp_path):
    _fails(f"{hostile}/big", tmp_path / "f.gz", "announces 1,000,000,000,000 bytes", size=5000)


def test_redirect_loop_is_one_line(hostile, tmp_path):
    _fails(f"{hostile}/loop", tmp_path / "f.gz", "redirect")


def test_checksum_is_checked_before_the_rename(hostile, tmp_path):
    with pytest.raises(DataError, match="checksum mismatch"):
        dl.download(f"{hostile}/ok", tmp_path / "f.gz", "sha256:" + "0" * 64, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_good_download_within_its_limits(hostile, tmp_path):
    out = dl.download(f"{hostile}/ok", tmp_path / "f.gz", SHA, progress=False, size=len(_Hostile.body))
    assert out.read_bytes() == _Hostile.body and [p.name for p in tmp_path.iterdir()] == ["f.gz"]


def test_an_oversized_leftover_part_is_not_resumed(hostile, tmp_path):
    (tmp_path / "f.gz.part").write_bytes(b"\0" * 6000)
    out = dl.download(f"{hostile}/ok", tmp_path / "f.gz", SHA, progress=False, size=len(_Hostile.body))
    assert out.read_bytes() == _Hostile.body


def test_every_known_download_states_its_size():
    from signals.datasets import DATASETS
    sized = [d for info in DATASETS.values() for d in info.downloads if len(d) == 4]
    assert len(sized) >= 5 and all(isinstance(d[3], int) and d[3] > 0 for d in sized)
