"""make test-data (tests/testdata.py): fetched from a local 127.0.0.1 mirror (CI has no network), every file
checked against tests/data/SHA256SUMS, derived files checked by content, a corrupt source refused in one line."""
import functools
import gzip
import hashlib
import http.server
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import testdata
from conftest import REPO


@pytest.fixture
def mirror(tmp_path):
    """A local HTTP server over tmp_path/mirror; yields (folder, base URL)."""
    root = tmp_path / "mirror"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_sums_cover_the_shared_folder(shared_data):
    known = testdata.sums()
    here = {p.relative_to(shared_data).as_posix() for p in shared_data.rglob("*") if p.is_file()}
    assert set(known) == here - {"SOURCES.md"}
    for e in testdata.FETCHED:  # a fetched entry names a file the sums know, and its download limit fits it
        assert e.path in known and e.size >= (shared_data / e.path).stat().st_size


def test_fetches_checks_and_derives(shared_data, mirror, tmp_path, monkeypatch):
    root, url = mirror
    known = testdata.sums()
    for rel in ("meshes/cow.obj", "audio/gt_bach.wav"):  # served as published: the shared bytes
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shared_data / rel, root / rel)
    # a stand-in "original" of the Fashion-MNIST subset: its content plus 2 more items, gzipped anew
    sub = gzip.decompress((shared_data / "fashion-mnist/t10k-images-idx3-ubyte-first4443.gz").read_bytes())
    raw = sub[:4] + (4445).to_bytes(4, "big") + sub[8:] + bytes(2 * 784)
    (root / "fashion-mnist").mkdir()
    (root / "fashion-mnist/full.gz").write_bytes(gzip.compress(raw))
    md5 = hashlib.md5((root / "fashion-mnist/full.gz").read_bytes()).hexdigest()
    entries = [e for e in testdata.FETCHED if e.path in ("meshes/cow.obj", "audio/gt_bach.wav")]
    entries.append(testdata.Entry("fashion-mnist/t10k-images-idx3-ubyte-first4443.gz", "x/full.gz", f"md5:{md5}",
                                  len(raw), keep=4443, content=hashlib.sha256(sub).hexdigest()))
    monkeypatch.setattr(testdata, "FETCHED", entries)
    dest = tmp_path / "test-data"
    assert testdata.main(["--dest", str(dest), "--base-url", url]) == 1  # the by-hand folders are missing
    for e in entries:
        assert testdata.verified(dest, e, known), e.path
    assert (dest / "SOURCES.md").is_file()
    assert testdata.main(["--dest", str(dest), "--copy-from", str(shared_data)]) == 0  # nothing fetched again
    assert all(hashlib.sha256((dest / p).read_bytes()).hexdigest() == h for p, h in known.items()
               if p not in {e.path for e in entries if e.content})


def test_a_corrupt_source_is_one_line_and_leaves_nothing(shared_data, mirror, tmp_path, monkeypatch, capsys):
    root, url = mirror
    (root / "meshes").mkdir()
    (root / "meshes/cow.obj").write_bytes((shared_data / "meshes/cow.obj").read_bytes()[:-10] + b"#tampered!")
    monkeypatch.setattr(testdata, "FETCHED", [e for e in testdata.FETCHED if e.path == "meshes/cow.obj"])
    dest = tmp_path / "d"
    assert testdata.main(["--dest", str(dest), "--base-url", url]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and "cow.obj" in err and "checksum" in err.lower()
    assert not (dest / "meshes/cow.obj").exists() and not list(dest.rglob("*.part"))


def test_make_test_without_data_says_how_in_one_line(tmp_path):
    """Outside CI, with no IMPLICIT_GON_DATA, no test-data/ and no ../shared/data: one line naming make test-data."""
    clone = tmp_path / "repo"
    clone.mkdir()
    shutil.copy(REPO / "Makefile", clone / "Makefile")
    r = subprocess.run(["make", "-s", "check-data"], cwd=clone, capture_output=True, text=True,
                       env={"PATH": "/usr/bin:/bin"})
    ours = [line for line in r.stderr.splitlines() if not line.startswith("make")]  # make adds "Error 1"
    assert r.returncode != 0 and len(ours) == 1 and "make test-data" in ours[0], r.stderr
