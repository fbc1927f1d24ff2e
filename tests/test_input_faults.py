"""Fault injection on inputs, round 2 (issue 23): hostile download servers, sizes declared by headers or asked for by
flags and the API, files that are not what they claim (links, FIFOs, devices), deep or huge JSON read back from a run.
Every failure must be one line, a non-zero exit and no traceback; memory cases run under an address-space limit so
that a regression fails instead of swapping."""
from __future__ import annotations

import hashlib
import http.server
import importlib
import json
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, erase_flac_length, run_cli
from test_runtime_faults import TINY, one_line_error, run_limited

from implicit_gon.errors import DataError, GONError
dl = importlib.import_module("signals.datasets.download")  # the package exports the function of that name


ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))


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


# -- files that are not what they claim: links, FIFOs, devices, directories, long names --------------------------------
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("tiny") / "run"
    code, _, _ = run_cli(["fit", "images", "--dataset", "digits", "--out", run, *TINY])
    assert code == 0
    return run


@pytest.fixture
def own_run(tiny_run, tmp_path):
    shutil.copytree(tiny_run, tmp_path / "run")
    return tmp_path / "run"


def test_resuming_a_run_as_another_signal_names_the_run_s_own(own_run, capsys):
    """fit audio --resume on an image run: the run's signal is named first (it was a refusal of data settings)."""
    before = (own_run / "checkpoint.safetensors").read_bytes()
    code, _, err = run_cli(["fit", "audio", "--out", own_run, "--resume", "--steps", "9"], capsys)
    one_line_error(code, err, "holds a run of images, not audio: continue it with fit images --resume", status=2)
    assert (own_run / "checkpoint.safetensors").read_bytes() == before


def test_a_symlink_planted_at_the_lock_is_refused_and_its_target_untouched(own_run, tmp_path, capsys):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (own_run / ".lock").unlink(missing_ok=True)
    (own_run / ".lock").symlink_to(victim)
    code, _, err = run_cli(["sample", own_run, "--refit", "--n", "2", "--out", tmp_path / "s.png"], capsys)
    one_line_error(code, err, ".lock", "symbolic link")
    assert victim.read_text() == "precious\n" and not (tmp_path / "s.png").exists()


def test_a_fifo_at_the_lock_is_refused(own_run, tmp_path, capsys):
    (own_run / ".lock").unlink(missing_ok=True)
    os.mkfifo(own_run / ".lock")
    code, _, err = run_cli(["sample", own_run, "--refit", "--n", "2", "--out", tmp_path / "s.png"], capsys)
    one_line_error(code, err, ".lock", "FIFO")


@pytest.mark.parametrize("kind,needle", [("fifo", "named pipe"), ("dev", "device"), ("dir", "directory"),
                                         ("dangling", "symbolic link to a missing file"), ("missing", "not found")])
def test_input_files_that_are_not_regular_files_are_named_precisely(tiny_run, tmp_path, kind, needle, capsys):
    p = tmp_path / "in.png"
    {"fifo": lambda: os.mkfifo(p), "dev": lambda: p.symlink_to("/dev/zero"), "dir": lambda: p.mkdir(),
     "dangling": lambda: p.symlink_to(tmp_path / "gone.png"), "missing": lambda: None}[kind]()
    code, _, err = run_cli(["encode", tiny_run, p, "--out", tmp_path / "z.npy"], capsys)
    one_line_error(code, err, str(p), needle)
    code, _, err = run_cli(["decode", tiny_run, p, "--out", tmp_path / "d.png"], capsys)
    one_line_error(code, err, str(p), needle)
    assert not (tmp_path / "z.npy").exists() and not (tmp_path / "d.png").exists()


def test_a_dangling_symlink_out_is_named_precisely(tmp_path, capsys):
    out = tmp_path / "run"
    out.symlink_to(tmp_path / "nowhere")
    code, _, err = run_cli(["fit", "images", "--dataset", "digits", "--out", out, *TINY], capsys)
    one_line_error(code, err, "symbolic link to a missing path")
    assert not (tmp_path / "nowhere").exists()


def test_a_256_byte_path_component_is_one_line(tiny_run, tmp_path, capsys):
    long = "a" * 252 + ".png"
    code, _, err = run_cli(["render", tiny_run, "--n", "2", "--out", tmp_path / long], capsys)
    one_line_error(code, err, "too long")
    code, _, err = run_cli(["encode", tiny_run, tmp_path / long, "--out", tmp_path / "z.npy"], capsys)
    one_line_error(code, err, "too long")
    code, _, err = run_cli(["fit", "images", "--dataset", "digits", "--out", tmp_path / ("r" * 256), *TINY], capsys)
    one_line_error(code, err, "too long")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("length", [241, 250, 255])
def test_legal_output_names_up_to_255_bytes_are_written(tiny_run, tmp_path, length, capsys):
    name = "é" * ((length - 4) // 2) + "b" * ((length - 4) % 2) + ".png"  # multi-byte: lengths in bytes count
    assert len(name.encode()) == length
    code, _, err = run_cli(["render", tiny_run, "--n", "2", "--out", tmp_path / name], capsys)
    assert code == 0, err
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_open_run_file_refuses_links_and_devices(tmp_path):
    from implicit_gon.fsio import open_run_file
    (tmp_path / "link").symlink_to(tmp_path / "target")
    with pytest.raises(GONError, match="symbolic link"):
        open_run_file(tmp_path / "link", os.O_RDWR | os.O_CREAT)
    assert not (tmp_path / "target").exists()
    with pytest.raises(GONError, match="directory"):
        open_run_file(tmp_path, os.O_RDONLY)


# -- latents files: shape and dtype from the header, checked before the data is read ----------------------------------
def _npy_header(path: Path, shape, dtype="<f4", extra: bytes = b""):
    from numpy.lib import format as npf
    with open(path, "wb") as f:
        npf.write_array_header_1_0(f, {"descr": dtype, "fortran_order": False, "shape": shape})
        f.write(extra)


def test_npy_declaring_a_billion_latents_is_refused_from_its_header(tiny_run, tmp_path):
    _npy_header(tmp_path / "z.npy", (10**9, 32), extra=b"\0" * 1000)
    r = run_limited(["decode", tiny_run, tmp_path / "z.npy", "--out", tmp_path / "d.png"], ENV)
    one_line_error(r.returncode, r.stderr, "z.npy")
    assert not (tmp_path / "d.png").exists()


def test_npy_declaring_more_than_it_holds_is_one_line(tiny_run, tmp_path, capsys):
    _npy_header(tmp_path / "z.npy", (1000, 8), extra=b"\0" * 100)
    code, _, err = run_cli(["decode", tiny_run, tmp_path / "z.npy", "--out", tmp_path / "d.png"], capsys)
    one_line_error(code, err, "more than the file holds")


@pytest.mark.parametrize("header,says", [
    (b"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3}", "its header does not parse"),  # a TokenError
    (b"{'descr': '<f4', 'fortran_order': False, 'shape': (-2, 32), }", "declares shape (-2, 32), not sizes of 0"),
    (b"{'descr': '<f4', 'fortran_order': False, 'shape': (True, 32), }", "declares shape (True, 32), not sizes")])
def test_npy_with_a_malformed_header_is_one_line(header, says, tiny_run, tmp_path, capsys):
    """numpy's TokenError was a traceback; a negative size was 'read length must be non-negative or -1'."""
    import struct
    header += b" " * (64 - (10 + len(header) + 1) % 64) + b"\n"
    (tmp_path / "z.npy").write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + b"\0" * 256)
    code, _, err = run_cli(["decode", tiny_run, tmp_path / "z.npy", "--out", tmp_path / "d.png"], capsys)
    one_line_error(code, err, "z.npy: ")
    assert says in err and not (tmp_path / "d.png").exists(), err


def test_npz_expanding_to_gigabytes_is_refused_before_loading(tiny_run, tmp_path):
    import zipfile
    with zipfile.ZipFile(tmp_path / "z.npz", "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("latents.npy", "w", force_zip64=True) as m:
            from numpy.lib import format as npf
            npf.write_array_header_1_0(m, {"descr": "<f4", "fortran_order": False, "shape": (40_000_000, 32)})
            block = b"\0" * (1 << 24)
            for _ in range(40_000_000 * 32 * 4 // len(block)):
                m.write(block)
    assert (tmp_path / "z.npz").stat().st_size < 20 << 20
    r = run_limited(["decode", tiny_run, tmp_path / "z.npz", "--out", tmp_path / "d.png"], ENV, limit=2 << 30)
    one_line_error(r.returncode, r.stderr, "z.npz")


def test_object_and_wrong_dtype_latents_are_one_line(tiny_run, tmp_path, capsys):
    np.save(tmp_path / "s.npy", np.array(["a", "b"]))
    code, _, err = run_cli(["decode", tiny_run, tmp_path / "s.npy", "--out", tmp_path / "d.png"], capsys)
    one_line_error(code, err, "dtype")


def test_good_npy_and_npz_latents_still_decode(tiny_run, tmp_path, capsys):
    k = 0
    z = np.zeros((3, _latent_dim(tiny_run)), np.float32)
    np.save(tmp_path / "z.npy", z)
    np.savez_compressed(tmp_path / "z.npz", latents=z, labels=np.arange(3))
    for f in ("z.npy", "z.npz"):
        code, _, err = run_cli(["decode", tiny_run, tmp_path / f, "--out", tmp_path / f"d{k}.png"], capsys)
        assert code == 0, err
        k += 1


def _latent_dim(run: Path) -> int:
    return json.loads((run / "config.json").read_text())["config"]["model"]["latent_dim"]


# -- JSON read back from a run: depth, size and every field bounded ---------------------------------------------------
def _rewrite(run: Path, info=None, **meta) -> None:
    """The checkpoint rewritten with changes and a valid checksum (the sha256 is no defence against a crafted file)."""
    from safetensors.torch import save_file

    from implicit_gon import checkpoint
    metadata, t = checkpoint._read(run / checkpoint.CKPT)
    if info is not None:
        metadata["info"] = info(json.loads(metadata["info"]))
    metadata.update(meta)
    metadata["sha256"] = checkpoint.checksum(t, metadata)
    save_file(t, str(run / checkpoint.CKPT), metadata=metadata)


def test_deeply_nested_checkpoint_metadata_is_one_line(own_run, capsys):
    _rewrite(own_run, info=lambda d: json.dumps({**d, "train_state": "X"}).replace('"X"', "[" * 5000 + "]" * 5000))
    code, _, err = run_cli(["eval", own_run], capsys)
    one_line_error(code, err, "nested")
    _rewrite(own_run, optim_groups="[" * 100_000)
    code, _, err = run_cli(["eval", own_run], capsys)
    one_line_error(code, err, "nested")


def test_a_huge_junk_file_behind_a_valid_header_is_refused_before_reading(own_run, tmp_path):
    from implicit_gon import checkpoint
    with open(own_run / checkpoint.CKPT, "r+b") as f:  # sparse: 3 GB that take no disk
        f.truncate(3 << 30)
    r = run_limited(["eval", own_run], ENV, limit=1536 << 20)
    one_line_error(r.returncode, r.stderr, "3,2", "header describes")
    (own_run / checkpoint.CKPT).write_bytes(b"\xff" * 64)
    r = run_limited(["eval", own_run], ENV, limit=1536 << 20)
    one_line_error(r.returncode, r.stderr, "header length")


@pytest.fixture(scope="module")
def glo_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("glo") / "run"
    code, _, err = run_cli(["fit", "images", "--dataset", "digits", "--method", "glo", "--out",
                            run, *TINY])
    assert code == 0, err
    return run


@pytest.mark.parametrize("value,needle", [("abc", "meta.train_samples"), (-5, "meta.train_samples"),
                                          (10**9, "meta.train_samples"), (True, "meta.train_samples"),
                                          (2 * 10**7, "GLO latents")])
def test_glo_train_samples_is_checked_before_allocating(glo_run, tmp_path, value, needle):
    shutil.copytree(glo_run, tmp_path / "run")
    _rewrite(tmp_path / "run", info=lambda d: json.dumps({**d, "meta": {**d["meta"], "train_samples": value}}))
    r = run_limited(["eval", tmp_path / "run"], ENV, limit=1536 << 20)
    one_line_error(r.returncode, r.stderr, needle)


def test_metrics_line_of_100000_brackets_is_skipped_by_plot_and_resume(own_run, tmp_path, capsys):
    with open(own_run / "metrics.jsonl", "a") as f:
        f.write("[" * 100_000 + "\n")
    code, _, err = run_cli(["plot", own_run, "--out", tmp_path / "p.png"], capsys)
    assert code == 0 and "skipped 1 unreadable line" in err, err
    code, _, err = run_cli(["fit", "images", "--out", own_run, "--resume", "--steps", "3", "--quiet"], capsys)
    assert code == 0, err
    assert "[[[" not in (own_run / "metrics.jsonl").read_text()


def test_a_metrics_line_longer_than_the_limit_is_skipped_without_reading_it_whole(tmp_path):
    from implicit_gon import jsonio
    with open(tmp_path / "m.jsonl", "w") as f:
        f.write('{"step": 1}\n' + '{"x": "' + "a" * (3 * jsonio.MAX_LINE) + '"}\n{"step": 2}\n')
    assert list(jsonio.iter_lines(tmp_path / "m.jsonl")) == [{"step": 1}, None, {"step": 2}]


def test_plot_of_a_million_rows_takes_bounded_memory(own_run, tmp_path):
    with open(own_run / "metrics.jsonl", "w") as f:
        for s in range(1, 1_000_001):
            f.write(f'{{"step": {s}, "loss": {1 / s}, "time": {s}.5}}\n')
    r = run_limited(["plot", own_run, "--out", tmp_path / "p.png"], ENV, limit=1536 << 20, timeout=600)
    assert r.returncode == 0, r.stderr
    from implicit_gon import plot
    pts = plot.series(plot.read_metrics(own_run))["loss"]
    assert len(pts[0]) <= 2 * plot.MAX_POINTS and pts[0][0] == 1 and pts[0][-1] == 1_000_000


def test_json_depth_ignores_brackets_in_strings():
    from implicit_gon import jsonio
    assert jsonio.depth('{"a": "[[[[\\"[[[", "b": [[1]]}') == 3
    assert jsonio.loads('{"a": "' + "[" * 1000 + '"}', "x") == {"a": "[" * 1000}
    with pytest.raises(GONError, match="nested"):
        jsonio.loads('[{"a": "\\\\"' + "," + "[" * 100 + "]" * 100 + "}]", "x")
    with pytest.raises(GONError, match="not valid JSON"):
        jsonio.loads("1" * 5000, "x")  # more digits than Python converts


# -- compare: counts bounded before anything is written; --resume checks its records --------------------------------
def _compare_args(shared_data, out, *extra):
    return ["compare", "--dataset", "mnist", "--data-dir", shared_data / "mnist", "--methods", "gon", "--steps", "2",
            "--seeds", "1", "--val-every", "1", "--val-samples", "8", "--batch-size", "8", "--train-limit", "16",
            "--held-out", "16", "--out", out, *extra]


@pytest.fixture(scope="module")
def comparison(tmp_path_factory, shared_data):
    out = tmp_path_factory.mktemp("cmp") / "cmp"
    code, _, err = run_cli(_compare_args(shared_data, out))
    assert code == 0, err
    return out


@pytest.mark.parametrize("flag,value", [("--seeds", "200000000"), ("--val-samples", "100000000000"),
                                        ("--seeds", "0"), ("--held-out", "-1")])
def test_compare_counts_are_bounded_and_nothing_is_written(shared_data, tmp_path, flag, value):
    args = _compare_args(shared_data, tmp_path / "c")
    args[args.index(flag) + 1] = value
    r = run_limited(args, ENV, limit=1536 << 20)
    one_line_error(r.returncode, r.stderr, flag, status=2)
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("record,needle", [('{"method": "gon", "seed": 0, "sse"', "not valid JSON"),
                                           ("[1, 2]", "not a JSON object"),
                                           ("NO_SSE", "sse = None"), ("NAN_SSE", "sse = nan"),
                                           ("[" * 10000, "nested")])
def test_compare_resume_refuses_a_damaged_record_in_one_line(comparison, shared_data, tmp_path, record, needle,
                                                             capsys):
    out = tmp_path / "cmp"
    shutil.copytree(comparison, out)
    done = out / "gon-s0" / "compare.json"
    row = json.loads(done.read_text())
    if record in ("NO_SSE", "NAN_SSE"):
        row.pop("sse") if record == "NO_SSE" else row.update(sse=float("nan"))
        record = json.dumps(row)
    done.write_text(record)
    before = (out / "table.md").read_text()
    code, _, err = run_cli(_compare_args(shared_data, out, "--resume"), capsys)
    one_line_error(code, err, str(done), needle)
    assert (out / "table.md").read_text() == before


def test_compare_resume_trains_again_a_run_whose_checkpoint_was_deleted(comparison, shared_data, tmp_path, capsys):
    out = tmp_path / "cmp"
    shutil.copytree(comparison, out)
    (out / "gon-s0" / "checkpoint.safetensors").unlink()
    code, _, err = run_cli(_compare_args(shared_data, out, "--resume"), capsys)
    assert code == 0 and "skipped" not in err, err
    assert (out / "gon-s0" / "checkpoint.safetensors").is_file()


# -- the Python API applies the CLI's checks ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gon(tiny_run):
    from implicit_gon import GON
    return GON.load(tiny_run, device="cpu")


def test_api_encodes_by_dtype(gon):
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, (2, 8, 8, 1)).astype(np.uint8)
    z8 = gon.encode_images(u8)
    z16 = gon.encode_images(u8.astype(np.uint16) * 257)  # the same pixels on uint16's range
    zf = gon.encode_images(u8.astype(np.float32) / 255)
    assert torch_allclose(z8, z16) and torch_allclose(z8, zf)


@pytest.mark.parametrize("arr,needle", [
    (np.full((1, 8, 8, 1), 3, np.int64), "dtype int64"), (np.full((1, 8, 8, 1), 200.0), "[0, 1]"),
    (np.full((1, 8, 8, 1), -0.5, np.float32), "[0, 1]"), (np.zeros((1, 0, 8, 1), np.uint8), "no pixels"),
    (np.zeros((0, 8, 8, 1), np.uint8), "no pixels"), (np.full((1, 8, 8, 1), np.nan), "NaN"),
    (np.zeros((1, 8, 8, 1), bool), "dtype bool")])
def test_api_refuses_images_without_a_defined_range(gon, arr, needle):
    with pytest.raises(GONError) as e:
        gon.encode_images(arr)
    assert needle in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("z,res,needle", [
    ("ok", 10**6, "memory"), ("ok", -5, "res = -5"), ("ok", 0, "res = 0"), ("ok", 2.5, "res = 2.5"),
    ("nan", None, "NaN"), ("short", None, "shape"), ("empty", None, "shape"), ("text", None, "not an array")])
def test_api_render_checks_latents_and_res_in_one_line(gon, z, res, needle):
    K = gon.cfg.model.latent_dim
    z = {"ok": np.zeros((1, K)), "nan": np.full((2, K), np.nan), "short": np.zeros((2, K - 1)),
         "empty": np.zeros((0, K)), "text": [["a"] * K]}[z]
    with pytest.raises(GONError) as e:
        gon.render(z, res=res)
    assert needle in str(e.value) and "\n" not in str(e.value)


def torch_allclose(a, b) -> bool:
    return bool(np.allclose(a, b, atol=1e-5))  # GON.encode returns numpy arrays


# -- audio: decoding, resampling and rendering estimated from the header and the request first --------------------------
@pytest.fixture(scope="module")
def audio_run(tmp_path_factory, shared_data):
    run = tmp_path_factory.mktemp("audio") / "run"
    code, _, err = run_cli(["fit", "audio", "--data", shared_data / "audio" / "cmu_arctic_us_aew_a0001.wav", "--out",
                            run, *TINY])
    assert code == 0, err
    return run


def _wav_declaring(path: Path, rate: int, frames: int) -> None:
    import struct
    data = b"\1\0" * frames
    path.write_bytes(b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) + b"data" + struct.pack("<I", len(data)) + data)


def test_a_wav_declaring_1_hz_is_refused_before_resampling(tmp_path):
    """No recording is sampled outside data.sample_rate's range: 40 KB at 1 Hz is 5.6 hours at 16 kHz."""
    _wav_declaring(tmp_path / "slow.wav", 1, 20_000)
    r = run_limited(["fit", "audio", "--data", tmp_path / "slow.wav", "--out", tmp_path / "run", *TINY], ENV,
                    limit=1536 << 20)
    one_line_error(r.returncode, r.stderr, "slow.wav", "a sample rate of 1 Hz (audio is read at 100 to 384,000 Hz)")
    _wav_declaring(tmp_path / "fast.wav", 10_000_000, 20_000)  # 4.8 ms, read as if it were 1.25 s at 16 kHz
    r = run_limited(["fit", "audio", "--data", tmp_path / "fast.wav", "--out", tmp_path / "run", *TINY], ENV,
                    limit=1536 << 20)
    one_line_error(r.returncode, r.stderr, "fast.wav", "a sample rate of 10,000,000 Hz")
    assert not (tmp_path / "run").exists()


def test_encoding_a_clip_counts_its_latents_before_decoding(audio_run, tmp_path, monkeypatch, capsys):
    """encode keeps a latent of K floats for every window (hop 8 samples when rendering or encoding: 64 floats per
    8 samples, held twice as they are gathered), more than the clip and its windows: a 32 KB WAV at 1 Hz passed
    the estimate and grew to 21 GB. 100 KB at 100 Hz is 500 s at 16 kHz: about 0.35 GB without its latents, 0.86 GB
    with them."""
    _wav_declaring(tmp_path / "long.wav", 100, 50_000)
    monkeypatch.setenv("IMPLICIT_GON_MEMORY", "600M")
    code, _, err = run_cli(["encode", audio_run, tmp_path / "long.wav", "--out", tmp_path / "z.npy"], capsys)
    one_line_error(code, err, "long.wav", "needs about 8", "MiB of memory, more than the 600.0 MiB available")
    assert not (tmp_path / "z.npy").exists()


def test_rendering_a_clip_counts_what_its_windows_and_latents_hold(audio_run, tmp_path, monkeypatch, capsys):
    """render --input keeps the clip's windows and one latent per window while the rendering's own buffers are
    allocated: judged alone, 600 s of silence (28 KB of FLAC) was 1.6 GiB and peaked at 2.4 GiB."""
    import soundfile as sf
    sf.write(tmp_path / "quiet.flac", np.zeros((16000 * 600, 1), np.float32), 16000)
    monkeypatch.setenv("IMPLICIT_GON_MEMORY", "2G")
    code, _, err = run_cli(["render", audio_run, "--input", tmp_path / "quiet.flac", "--out", tmp_path / "r.wav"],
                           capsys)
    one_line_error(code, err, "rendering 600.0 s at 16000 Hz needs about 2.", "GiB of memory, more than the 2.0 GiB")
    assert not (tmp_path / "r.wav").exists()


def test_two_hours_of_flac_silence_is_refused_with_or_without_its_length(tmp_path, audio_run):
    import soundfile as sf
    rate = 8000
    with sf.SoundFile(tmp_path / "silence.flac", "w", rate, 1, "PCM_16") as f:
        block = np.zeros(rate * 60, np.int16)
        for _ in range(120):
            f.write(block)
    assert (tmp_path / "silence.flac").stat().st_size < 5 << 20
    r = run_limited(["eval", audio_run, "--data", tmp_path / "silence.flac"], ENV, limit=1536 << 20, timeout=120)
    one_line_error(r.returncode, r.stderr, "silence.flac", "memory")
    erase_flac_length(tmp_path / "silence.flac")  # no length to check: decoded block by block, checked as it grows
    r = run_limited(["eval", audio_run, "--data", tmp_path / "silence.flac"], ENV, limit=1536 << 20, timeout=120)
    one_line_error(r.returncode, r.stderr, "silence.flac", "no length in its header; read so far", "memory")


@pytest.mark.parametrize("args", [["--seconds", "3600"], ["--n", "10000", "--seconds", "60"]])
def test_audio_sample_size_is_checked_before_rendering(audio_run, tmp_path, args):
    r = run_limited(["sample", audio_run, *args, "--out", tmp_path / "s.wav"], ENV, limit=1536 << 20, timeout=120)
    one_line_error(r.returncode, r.stderr, "memory")
    assert not (tmp_path / "s.wav").exists()


# -- low: configs, GIF delays, stale frames, EXIF, read-only caches, flags through the typed config -------------------
@pytest.mark.parametrize("value,needle", [("[" * 5000, "nested more than"), ("1" * 5000, "digits")])
def test_deep_or_huge_config_values_are_one_line(tmp_path, value, needle, capsys):
    code, _, err = run_cli(["config", "show", "images", "digits", "--set", f"train.steps={value}"], capsys)
    one_line_error(code, err, needle, status=2)  # the command line's value: a usage error; the file's below: 1
    assert len(err) < 400
    (tmp_path / "c.yaml").write_text(f"train:\n  steps: {value}\n")
    code, _, err = run_cli(["config", "show", "images", "digits", "--config", tmp_path / "c.yaml"], capsys)
    one_line_error(code, err, "c.yaml", needle)


def test_gif_of_identical_frames_at_1_fps_is_one_line_or_written(tiny_run, tmp_path, capsys):
    out = tmp_path / "same.gif"
    code, _, err = run_cli(["interpolate", tiny_run, "--from", "0", "--to", "0", "--frames", "1000", "--fps", "1",
                            "--out", out], capsys)
    one_line_error(code, err, "same.gif", "GIF", status=2)
    code, _, err = run_cli(["interpolate", tiny_run, "--from", "0", "--to", "0", "--frames", "300", "--fps", "1",
                            "--out", out], capsys)
    assert code == 0, err
    from PIL import Image
    with Image.open(out) as im:
        assert im.n_frames >= 1 and im.info["duration"] > 0
    assert [p.name for p in tmp_path.iterdir()] == ["same.gif"]


def test_audio_frames_of_an_earlier_longer_morph_are_removed(audio_run, shared_data, tmp_path, capsys):
    clip = shared_data / "audio" / "cmu_arctic_us_aew_a0001.wav"
    out = tmp_path / "frames"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    for frames in ("5", "2"):
        code, _, err = run_cli(["interpolate", audio_run, "--from", clip, "--to", clip, "--frames", frames, "--out",
                                out], capsys)
        assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["frame_000.wav", "frame_001.wav", "notes.txt"]


def test_exif_orientation_is_applied_when_images_are_read(tmp_path):
    from PIL import Image

    from signals.datasets.pixels import open_image
    a = np.zeros((2, 6, 3), np.uint8)
    a[:, :3] = 255  # left half white: a landscape 6x2 picture stored as the camera saw it
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 clockwise to view"
    im.save(tmp_path / "p.jpg", exif=exif, quality=100)
    got = open_image(tmp_path / "p.jpg", "p.jpg")
    assert got.size == (2, 6)  # portrait, as it is meant to be seen
    assert np.asarray(got)[0].mean() > 200 and np.asarray(got)[-1].mean() < 50


def test_sdf_samples_0_is_refused_by_the_fields_minimum(shared_data, tmp_path, capsys):
    code, _, err = run_cli(["fit", "sdf", "--data", shared_data / "meshes" / "teapot.obj", "--samples", "0",
                            "--out", tmp_path / "run", *TINY], capsys)
    one_line_error(code, err, "sdf_samples", status=2)
    assert not (tmp_path / "run").exists()


def test_sdf_cache_on_a_read_only_folder_is_one_line(shared_data, tmp_path, capsys):
    import subprocess
    ro = tmp_path / "ro"
    ro.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(ro)], capture_output=True, text=True)
    if p.returncode:
        pytest.skip(f"cannot mount a read-only tmpfs here ({p.stderr.strip()})")
    try:
        code, _, err = run_cli(["fit", "sdf", "--data", shared_data / "meshes" / "teapot.obj", "--samples", "2000",
                                "--set", f"data.cache_dir={ro}", "--out", tmp_path / "run", *TINY], capsys)
        one_line_error(code, err, str(ro), "Read-only")
    finally:
        subprocess.run(["umount", str(ro)], capture_output=True)


@pytest.mark.parametrize("value,needle", [([1], "train_state = [1]"), ({"elapsed": "abc"}, "train_state.elapsed"),
                                          ({"lr_scale": 5}, "train_state.lr_scale"),
                                          ({"rollbacks": -1}, "train_state.rollbacks"),
                                          ({"early_stop": {"metric": "sse", "bad": "x"}}, "train_state.early_stop"),
                                          ({"guard": {"recent": [1.0] * 26}}, "train_state.guard"),
                                          ({"guard": {"grad": {"recent": [1.0] * 10**5}}}, "train_state.guard"),
                                          ({"guard": {"grad": {"lowest": "x"}}}, "train_state.guard"),
                                          ({"guard": {"opening": [1.0] * 6}}, "train_state.guard"),
                                          ({"guard": {"opening": [1.0, "x"]}}, "train_state.guard"),
                                          ({"guard": {"start": "x"}}, "train_state.guard"),
                                          ({"guard": {"grad": {"scale": [1]}}}, "train_state.guard")])
def test_checkpoint_train_state_is_checked(own_run, value, needle, capsys):
    _rewrite(own_run, info=lambda d: json.dumps({**d, "train_state": value}))
    code, _, err = run_cli(["fit", "images", "--out", own_run, "--resume", "--steps", "3", "--quiet"], capsys)
    one_line_error(code, err, needle)


def test_a_directory_given_as_config_file_is_named(tmp_path, capsys):
    code, _, err = run_cli(["config", "show", "images", "digits", "--config", tmp_path], capsys)
    one_line_error(code, err, "is a directory")


def test_a_symlink_planted_at_the_download_part_is_refused(hostile, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f.gz.part").symlink_to(victim)
    with pytest.raises(GONError, match="symbolic link"):
        dl.download(f"{hostile}/ok", tmp_path / "d" / "f.gz", SHA, progress=False, size=len(_Hostile.body))
    assert victim.read_text() == "precious"


def test_a_file_name_with_a_newline_cannot_break_or_forge_the_error_line(tmp_path, capsys):
    """A folder dataset with a junk file named 'bad\\nerror: fake line.png' printed two lines, the second a forged
    `error:` line; control characters in a message are now escaped."""
    from PIL import Image
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        Image.new("L", (8, 8), 40 * i).save(folder / f"{i}.png")
    (folder / "bad\nerror: fake line.png").write_bytes(b"not an image")
    code, _, err = run_cli(["fit", "images", "--dataset", "folder", "--data-dir", folder, "--res", "8",
                            "--out", tmp_path / "r", *TINY], capsys)
    one_line_error(code, err, "bad\\nerror: fake line.png", "not a readable image")
    assert len(err.strip().splitlines()) == 1, err  # no note here: the line is the whole of stderr


def test_audio_named_in_bytes_that_are_not_utf8_is_read(shared_data, tmp_path, capsys):
    """libsndfile takes a name as UTF-8 only: a valid clip named b'\\xff\\xfe.wav' was a UnicodeEncodeError traceback."""
    name = os.fsdecode(b"\xff\xfe.wav")
    shutil.copy(shared_data / "audio" / "cmu_arctic_us_aew_a0001.wav", tmp_path / name)
    code, _, err = run_cli(["fit", "audio", tmp_path / name, "--out", tmp_path / "r", *TINY], capsys)
    assert code == 0 and (tmp_path / "r" / "checkpoint.safetensors").is_file(), err


def test_sample_of_an_audio_run_with_a_window_over_the_default_length(shared_data, tmp_path, capsys):
    """A 2.5 s window is longer than sample's default 2 s clip: `sample` was a TypeError traceback (it formatted
    the --seconds not given); the default clip is now one window at least, and a given shorter one is refused."""
    import soundfile as sf
    run = tmp_path / "r"
    code, _, err = run_cli(["fit", "audio", shared_data / "audio" / "cmu_arctic_us_aew_a0001.wav", "--window", "2.5",
                            "--sample-rate", "8000", "--set", "data.oversample=1", "--out", run, *TINY], capsys)
    assert code == 0, err
    code, _, err = run_cli(["sample", run, "--n", "1", "--out", tmp_path / "s.wav"], capsys)
    assert code == 0 and sf.info(tmp_path / "s.wav").frames == 20000, err  # one window: 2.5 s at 8 kHz
    code, _, err = run_cli(["sample", run, "--n", "1", "--seconds", "2", "--out", tmp_path / "t.wav"], capsys)
    one_line_error(code, err, "sample --seconds 2: shorter than one window of this run (2.5 s)", status=2)
