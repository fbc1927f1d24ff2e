"""Hostile and broken input to the dataset readers: every case ends in one line naming the file (or in correct
behaviour), never a traceback, a SIGBUS, an out-of-memory kill or a write outside the data's own folders.
Fixtures are written in each native format under tmp_path."""
import errno
import gzip
import io
import os
import pickle
import stat
import struct
import subprocess
import sys
import tarfile
import tracemalloc
import zipfile
import zlib
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, run_cli
from implicit_gon.errors import DataError
from signals.datasets import load_images, split_shapes
from signals.datasets.archive import extract
from test_datasets import imgs, write_cifar_batch, write_idx, write_lmdb, write_norb

TEST_BATCH = "cifar-10-batches-py/test_batch"


def _one_line_error(code, err, *needles):
    assert code == 1 and "Traceback" not in err, err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], lines[0]


def _nothing_named(root, name):
    return [p for p in root.rglob(name)] == []


# -- 1. archives: links never redirect a write ---------------------------------------------------------------------
def _tar_with(path, members):
    """members: (name, kind, link_or_bytes) with kind 'sym', 'hard', 'file' or 'dir'."""
    with tarfile.open(path, "w:gz") as tf:
        for name, kind, arg in members:
            info = tarfile.TarInfo(name)
            if kind in ("sym", "hard"):
                info.type, info.linkname = (tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE), arg
                tf.addfile(info)
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            else:
                info.size = len(arg)
                tf.addfile(info, io.BytesIO(arg))


def test_symlink_chain_in_cifar_archive_writes_nothing_outside(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    _tar_with(data / "cifar-10-python.tar.gz", [
        ("y", "sym", "."), ("x", "sym", "y/.."), ("z", "sym", "x/.."), ("z/PWNED", "file", b"pwned"),
        (TEST_BATCH, "file", b"x")])
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz.*symbolic link"):
        load_images("cifar10", "test", data, cache_dir=str(tmp_path / "cache"))
    assert _nothing_named(tmp_path, "PWNED")
    with pytest.raises(DataError, match="symbolic link"):
        extract(data / "cifar-10-python.tar.gz", tmp_path / "a" / "b" / "target")
    assert _nothing_named(tmp_path, "PWNED") and not (tmp_path / "a" / "b" / "target" / "y").exists()


def test_hardlink_member_cannot_overwrite_a_file_outside(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    arch = tmp_path / "cifar-10-python.tar.gz"
    _tar_with(arch, [("a/b/lnk", "hard", "../../victim.txt"), ("a/b/lnk", "file", b"overwritten")])
    with pytest.raises(DataError, match=r"'a/b/lnk' is a hard link"):
        extract(arch, tmp_path / "x" / "target")
    assert victim.read_text() == "precious" and not (tmp_path / "x" / "target" / "a").exists()


def test_zip_symlink_member_is_refused(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    data = tmp_path / "data"
    data.mkdir()
    with zipfile.ZipFile(data / "coil-20-proc.zip", "w") as zf:
        link = zipfile.ZipInfo("coil-20-proc/obj1__0.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "../../../victim.txt")
        zf.writestr("coil-20-proc/obj1__0.png", "overwritten")
    with pytest.raises(DataError, match=r"coil-20-proc\.zip.*symbolic link"):
        load_images("coil20", "train", data, cache_dir=str(tmp_path / "cache"))
    assert victim.read_text() == "precious"


def test_archive_is_extracted_once_per_archive(tmp_path):
    """Two cifar-10-python.tar.gz in different folders share a cache but not an extraction."""
    x = imgs(6, 32, 32, 3)
    for k, name in enumerate(("a", "b")):
        src = tmp_path / f"src{name}"
        src.mkdir()
        write_cifar_batch(src / "test_batch", x[3 * k:3 * k + 3])
        (tmp_path / name).mkdir()
        with tarfile.open(tmp_path / name / "cifar-10-python.tar.gz", "w:gz") as tf:
            tf.add(src / "test_batch", arcname=TEST_BATCH)
    cache = str(tmp_path / "cache")
    # only a test batch: its last image is the test split
    assert np.array_equal(load_images("cifar10", "test", tmp_path / "a", cache_dir=cache), x[2:3])
    assert np.array_equal(load_images("cifar10", "test", tmp_path / "b", cache_dir=cache), x[5:6])
    extracted = sorted((tmp_path / "cache" / "cifar10").iterdir())
    assert len(extracted) == 2 and not any(p.name.startswith(".") for p in extracted)  # no temp folder left
    mtimes = [p.stat().st_mtime_ns for p in extracted]
    split_shapes("cifar10", tmp_path / "a", cache_dir=cache)
    assert [p.stat().st_mtime_ns for p in sorted((tmp_path / "cache" / "cifar10").iterdir())] == mtimes


def test_archive_declaring_more_than_it_can_hold_is_refused(tmp_path):
    arch = tmp_path / "coil-20-proc.zip"
    with zipfile.ZipFile(arch, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("coil-20-proc/obj1__0.png", b"\0" * (8 << 20))  # 8 MB of zeros: 8 kB compressed
    raw = bytearray(arch.read_bytes())
    cd = raw.rfind(b"PK\x01\x02")  # central directory entry: uncompressed size at offset 24
    raw[cd + 24:cd + 28] = struct.pack("<I", 0xFFFFFFF0)
    arch.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="more than"):
        extract(arch, tmp_path / "t")
    assert not list((tmp_path / "t").rglob("*.png"))


# -- 2. full disk, truncated LMDB --------------------------------------------------------------------------------------
def _mnist(tmp_path, n=20):
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", imgs(n, 28, 28, 1)[..., 0])
    return tmp_path


def test_cache_on_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    from signals.datasets import cache as cache_mod
    cache = tmp_path / "cache"
    monkeypatch.setattr(cache_mod.shutil, "disk_usage", lambda p: SimpleNamespace(total=1 << 30, used=1 << 30, free=1000))
    with pytest.raises(DataError, match=r"not enough free space.*mnist-train-28px"):
        load_images("mnist", "train", _mnist(tmp_path), cache_dir=str(cache))
    assert list(cache.iterdir()) == []


def test_cache_disk_filling_up_after_the_check_is_one_line(tmp_path, monkeypatch):
    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(os, "posix_fallocate", full)
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="no space left"):
        load_images("mnist", "train", _mnist(tmp_path), cache_dir=str(cache))
    assert list(cache.iterdir()) == []  # the temporary .npy was removed


def test_truncated_lmdb_is_one_line_not_sigbus(tmp_path):
    """Run in a child process: before the check, reading a truncated data.mdb killed the process with SIGBUS."""
    x = imgs(40, 64, 64, 3)  # WEBP-lossless noise: ~12 kB a value, most of them on overflow pages
    write_lmdb(tmp_path / "bedroom_train_lmdb", x)
    write_lmdb(tmp_path / "bedroom_val_lmdb", x[:2])
    mdb = tmp_path / "bedroom_train_lmdb" / "data.mdb"
    os.truncate(mdb, mdb.stat().st_size // 2)
    code = ("import sys; from signals.datasets import load_images; from implicit_gon.errors import DataError\n"
            "try: load_images('lsun-bedroom', 'train', sys.argv[1], res=32, cache_dir=sys.argv[2])\n"
            "except DataError as e: print(e); sys.exit(3)\n")
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path), str(tmp_path / "c")], capture_output=True,
                       text=True, cwd=REPO, timeout=120)
    assert p.returncode == 3, (p.returncode, p.stderr)
    assert "bedroom_train_lmdb" in p.stdout and "truncated LMDB" in p.stdout


# -- 3. high bit depth -------------------------------------------------------------------------------------------------
def _folder_of(tmp_path, name, arr):
    d = tmp_path / "imgs"
    d.mkdir(exist_ok=True)
    Image.fromarray(arr).save(d / name)
    return d


def test_16bit_png_is_scaled_by_its_range(tmp_path):
    a = (np.arange(32 * 32, dtype=np.uint32).reshape(32, 32) * 64).astype(np.uint16)  # 0..65472
    d = _folder_of(tmp_path, "g16.png", a)
    assert Image.open(d / "g16.png").mode.startswith("I;16")
    got = load_images("folder", "train", d, res=32, channels=1)[0, ..., 0]
    assert np.array_equal(got, np.round(a / 257).astype(np.uint8)) and 0 < got.mean() < 255
    rgb = load_images("folder", "train", d, res=32, channels=3)[0]
    assert np.array_equal(rgb[..., 1], got)


def test_16bit_pgm_is_scaled_like_a_16bit_png(tmp_path):
    """A PGM of maxval 65535 opens as mode I, which was refused as '32-bit integer pixels'."""
    a = (np.arange(32 * 32, dtype=np.uint32).reshape(32, 32) * 61).astype(np.uint16)  # 0..62403
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "g16.pgm").write_bytes(b"P5 32 32 65535\n" + a.astype(">u2").tobytes())
    got = load_images("folder", "train", tmp_path / "imgs", res=32, channels=1)[0, ..., 0]
    assert np.array_equal(got, np.round(a / 257).astype(np.uint8))


def test_float_tiff_in_unit_range_is_scaled(tmp_path):
    f = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    d = _folder_of(tmp_path, "f.tif", f)
    assert Image.open(d / "f.tif").mode == "F"
    got = load_images("folder", "train", d, res=32, channels=1)[0, ..., 0]
    assert np.array_equal(got, np.round(f.astype(np.float64) * 255).astype(np.uint8))


@pytest.mark.parametrize("arr,needle", [
    (np.arange(16, dtype=np.int32).reshape(4, 4) * 100_000, "32-bit integer"),
    (np.full((4, 4), 3.0, np.float32), r"\[3, 3\]; expected values in \[0, 1\]"),
    (np.array([[0.5, np.nan], [0, 1]], np.float32), "non-finite"),
])
def test_images_without_a_defined_range_are_refused(tmp_path, arr, needle):
    d = _folder_of(tmp_path, "bad.tif", arr)
    with pytest.raises(DataError, match=r"bad\.tif: .*" + needle):
        load_images("folder", "train", d, res=4, channels=1)


# -- 4. pixel limit ----------------------------------------------------------------------------------------------------
def _png(path, w, h, rows=None):
    """A grey PNG of w x h zeros, streamed (rows=None: all its data; else only the first rows, enough for a header
    check: a decoder that went on would fail with 'truncated', not with the limit)."""
    def chunk(t, data):
        return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data))
    comp, row = zlib.compressobj(1), b"\0" * (w + 1)
    idat = b"".join(comp.compress(row) for _ in range(rows or h)) + comp.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def test_12000px_png_is_refused_by_the_pixel_limit(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    _png(d / "huge.png", 12000, 12000)
    with pytest.raises(DataError, match=r"huge\.png: .*64-megapixel limit"):
        load_images("folder", "train", d, res=8, channels=1)


def test_30000px_png_is_one_line_from_the_cli(tmp_path, capsys):
    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(3):
        Image.fromarray(np.full((12, 12), 40 * i, np.uint8)).save(d / f"{i}.png")
    _png(d / "enormous.png", 30000, 30000, rows=16)
    code, _, err = run_cli(["fit", "images", "--dataset", "folder", "--data-dir", d, "--res", "8", "--channels", "1",
                            "--out", tmp_path / "r", "--steps", "1"], capsys)
    _one_line_error(code, err, "enormous.png", "64-megapixel limit")


# -- 5. declared sizes -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [False, True])
def test_idx_header_claiming_2_to_the_32_images(tmp_path, gz):
    raw = struct.pack(">4I", 0x803, 0xFFFFFFFF, 28, 28) + bytes(28 * 28 * 3)
    p = tmp_path / "t10k-images-idx3-ubyte"
    p.write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte: its header declares .* GiB limit"):
        split_shapes("mnist", tmp_path)


def test_idx_gzip_claim_a_small_file_cannot_hold(tmp_path):
    raw = struct.pack(">4I", 0x803, 5_000_000, 28, 28) + bytes(28 * 28 * 3)  # 3.9 GB claimed, 3 images there
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw))
    with pytest.raises(DataError, match="more than a .*-byte gzip file can hold"):
        load_images("mnist", "test", tmp_path)


def test_idx_gzip_bomb_is_not_decompressed_into_memory(tmp_path):
    """The header says 10 images (7,856 bytes); the gzip stream expands to 200 MB."""
    p = tmp_path / "t10k-images-idx3-ubyte.gz"
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    body = comp.compress(struct.pack(">4I", 0x803, 10, 28, 28))
    body += b"".join(comp.compress(bytes(1 << 20)) for _ in range(200)) + comp.flush()
    p.write_bytes(body)
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="holds more data than its header declares|oversized"):
            load_images("mnist", "test", tmp_path)
        with pytest.raises(DataError, match="holds more data than its header declares"):
            from signals.datasets.idx import parse_images
            parse_images(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40e6, peak  # chunks of 16 MB at most, never the 200 MB


def _cifar_dir(tmp_path, payload: bytes):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    (d / "test_batch").write_bytes(payload)
    return tmp_path


def _nested_list_bomb(levels=6, width=100) -> bytes:
    """{b'data': L} where L nests `levels` lists, each holding `width` memo references to the one below:
    a few kB of pickle, 10^12 elements once numpy turns it into an array."""
    out = [b"\x80\x02}U\x04data"]
    for k in range(levels):
        items = b"K\x00" * width if k == 0 else (b"h" + bytes([k - 1])) * width  # ints, or BINGETs of level k-1
        out += [b"(", items, b"l", b"q" + bytes([k])] + ([b"0"] if k < levels - 1 else [])  # POP all but the last
    return b"".join(out) + b"s."


def test_cifar_pickle_memo_bomb_is_refused(tmp_path):
    payload = _nested_list_bomb()
    assert len(payload) < 10_000
    with pytest.raises(DataError, match=r"test_batch: CIFAR-10 batch data is list"):
        load_images("cifar10", "test", _cifar_dir(tmp_path, payload))


def test_cifar_pickle_with_millions_of_opcodes_is_refused(tmp_path):
    payload = b"\x80\x02]q\x00(" + b"K\x01" * 250_000 + b"e."
    with pytest.raises(DataError, match="pickle opcodes"):
        load_images("cifar10", "test", _cifar_dir(tmp_path, payload))


def test_cifar_array_shape_larger_than_the_file_is_refused(tmp_path):
    payload = (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
               b"\x8a\x06" + (10 ** 12).to_bytes(6, "little") + b"\x85U\x01b\x87R.")
    with pytest.raises(DataError, match="refusing an array of shape"):
        load_images("cifar10", "test", _cifar_dir(tmp_path, payload))


def test_cifar_batch_with_no_images(tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    (d / "test_batch").write_bytes(pickle.dumps({b"labels": [], b"data": np.zeros((0, 3072), np.uint8)}, protocol=2))
    with pytest.raises(DataError, match=r"test_batch: .*expected \(n >= 1, 3072\)"):
        split_shapes("cifar10", tmp_path)


@pytest.mark.parametrize("dims", [(-5, 2, 96, 96), (5, 2, -96, 96), (5, 2, 100_000, 100_000), (0, 2, 96, 96)])
def test_smallnorb_header_with_absurd_dims(tmp_path, dims):
    name = "smallnorb-5x01235x9x18x6x2x96x96-testing-dat.mat"
    (tmp_path / name).write_bytes(struct.pack("<6i", 0x1E3D4C55, 4, *dims) + bytes(1000))
    with pytest.raises(DataError, match=rf"{name}: SmallNORB images should be"):
        split_shapes("smallnorb", tmp_path)


def test_smallnorb_truncated_is_caught_by_dataset_info(tmp_path, capsys):
    p = tmp_path / "smallnorb-5x01235x9x18x6x2x96x96-testing-dat.mat.gz"
    write_norb(p, np.zeros((4, 2, 96, 96), np.uint8), gz=True)
    p.write_bytes(p.read_bytes()[:-40])
    code, _, err = run_cli(["dataset", "info", "smallnorb", "--data-dir", tmp_path], capsys)
    _one_line_error(code, err, p.name)


def test_idx_with_zero_images(tmp_path):
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((0, 28, 28), np.uint8))
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz: the IDX file holds no images"):
        split_shapes("mnist", tmp_path)


def test_folder_with_no_images_is_one_line(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("no pictures here")
    code, _, err = run_cli(["dataset", "info", "folder", "--data-dir", tmp_path], capsys)
    _one_line_error(code, err, str(tmp_path), "no folder files found")


def test_non_utf8_file_names_in_a_folder(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    a = imgs(1, 8, 8, 3)[0]
    Image.fromarray(a).save(d / os.fsdecode(b"caf\xe9.png"))  # Latin-1 name: not UTF-8
    assert np.array_equal(load_images("folder", "train", d, res=8)[0], a)
    (d / os.fsdecode(b"\xff\xfebroken.png")).write_bytes(b"not a png")
    exe = REPO / ".venv" / "bin" / "implicit-gon"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "cli"]
    p = subprocess.run(cmd + ["fit", "images", "--dataset", "folder", "--data-dir", str(d), "--res", "8",
                              "--out", str(tmp_path / "r"), "--steps", "1"], capture_output=True, cwd=REPO)
    err = p.stderr.decode("utf-8", "replace")
    _one_line_error(p.returncode, err, "broken.png", "not a readable image")


def test_celeba_partition_file_that_is_not_text(tmp_path):
    d = tmp_path / "img_align_celeba"
    d.mkdir()
    Image.fromarray(imgs(1, 218, 178, 3)[0]).save(d / "000001.jpg")
    (tmp_path / "list_eval_partition.txt").write_bytes(b"000001.jpg 0\n\xff\xfe\x00garbage 1\n")
    with pytest.raises(DataError, match=r"list_eval_partition\.txt: not a text file"):
        split_shapes("celeba", tmp_path)


# -- 6. non-finite samples and vertices --------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_audio_clip_with_non_finite_samples(tmp_path, bad):
    import soundfile as sf
    from signals.audio import read_clip
    x = np.sin(np.linspace(0, 50, 4000)).astype(np.float32)
    x[1234] = bad
    sf.write(tmp_path / "clip.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(DataError, match=r"clip\.wav: 1 non-finite samples .* sample 1234"):
        read_clip(tmp_path / "clip.wav", 16000)


def test_audio_clip_with_an_absurd_finite_peak(tmp_path):
    """Finite but far past full scale (the hostile check's 3e38): refused as data, not left to overflow the loss;
    float headroom over 1 is kept."""
    import soundfile as sf
    from signals.audio import read_clip
    x = np.sin(np.linspace(0, 50, 4000)).astype(np.float32) * 4  # +12 dB: loud, and read as it is
    sf.write(tmp_path / "loud.wav", x, 16000, subtype="FLOAT")
    assert abs(read_clip(tmp_path / "loud.wav", 16000)).max() > 3.9
    x[99] = 3e38
    sf.write(tmp_path / "clip.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(DataError, match=r"clip\.wav: samples reach 3e\+38, over 1000x full scale"):
        read_clip(tmp_path / "clip.wav", 16000)


def test_mesh_with_non_finite_vertices(tmp_path):
    from signals.sdf import load_mesh
    p = tmp_path / "bad.obj"
    p.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nv nan 0 1\nf 1 2 3\nf 1 2 4\nf 1 3 5\nf 2 3 4\n")
    with pytest.raises(DataError, match=r"bad\.obj: 1 vertices with non-finite coordinates"):
        load_mesh(p)
    p.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 1 2 3\nf 1 2 4\nf 1 3 4\nf 2 3 4\n")
    assert len(load_mesh(p).faces) == 4  # the same mesh without the NaN vertex loads whole


# -- 7. caches per data directory --------------------------------------------------------------------------------------
def test_caches_of_one_dataset_in_two_directories_coexist(tmp_path, monkeypatch):
    from signals.datasets import idx
    a, b = imgs(20, 28, 28, 1)[..., 0], imgs(20, 28, 28, 1)[..., 0]
    write_idx(tmp_path / "A" / "t10k-images-idx3-ubyte.gz", a)
    write_idx(tmp_path / "B" / "t10k-images-idx3-ubyte.gz", b)
    cache = str(tmp_path / "cache")
    load_images("mnist", "train", tmp_path / "A", cache_dir=cache)
    load_images("mnist", "train", tmp_path / "B", cache_dir=cache)
    assert len(list((tmp_path / "cache").glob("mnist-train-28px-*.npy"))) == 2
    monkeypatch.setattr(idx, "parse_images", lambda p: pytest.fail("decoded again"))
    assert np.array_equal(load_images("mnist", "train", tmp_path / "A", cache_dir=cache)[..., 0], a[:18])
    assert np.array_equal(load_images("mnist", "train", tmp_path / "B", cache_dir=cache)[..., 0], b[:18])


# -- 8. stray files, dataset info checks what loading checks -----------------------------------------------------------
def test_stray_non_image_files_are_skipped_with_one_line(tmp_path, capsys):
    for i in range(3):
        Image.fromarray(np.full((12, 12, 3), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "notes.txt").write_text("taken on holiday")
    (tmp_path / "Thumbs.db").write_bytes(b"\0" * 10)
    a = load_images("folder", "train", tmp_path, res=8)
    err = capsys.readouterr().err
    assert a.shape == (3, 8, 8, 3)
    assert [ln for ln in err.splitlines() if "skipped" in ln] == [
        f"note: {tmp_path}: skipped 2 files without an image extension (e.g. Thumbs.db)"]


@pytest.mark.parametrize("gz", [False, True])
def test_dataset_info_on_truncated_idx_fails_like_fit(tmp_path, shared_data, capsys, gz):
    raw = gzip.decompress((shared_data / "mnist" / "t10k-images-idx3-ubyte.gz").read_bytes())
    name = "t10k-images-idx3-ubyte" + (".gz" if gz else "")
    (tmp_path / name).write_bytes(gzip.compress(raw, 1)[:300_000] if gz else raw[:len(raw) // 2])
    code, out, err = run_cli(["dataset", "info", "mnist", "--data-dir", tmp_path], capsys)
    _one_line_error(code, err, name)
    assert "9000" not in out
    code, _, err2 = run_cli(["fit", "images", "--dataset", "mnist", "--data-dir", tmp_path, "--out", tmp_path / "r",
                             "--steps", "1"], capsys)
    _one_line_error(code, err2, name)


def test_idx_with_trailing_bytes_beyond_its_header(tmp_path):
    write_idx(tmp_path / "t10k-images-idx3-ubyte", imgs(5, 28, 28, 1)[..., 0], gz=False)
    with open(tmp_path / "t10k-images-idx3-ubyte", "ab") as f:
        f.write(bytes(28 * 28))
    with pytest.raises(DataError, match="oversized IDX file"):
        split_shapes("mnist", tmp_path)


# -- 9. test caches never go beside the data ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def _cache_seen_by_a_module_fixture():
    return os.environ.get("IMPLICIT_GON_CACHE")


def test_module_fixtures_already_see_the_test_cache(_cache_seen_by_a_module_fixture, tmp_path_factory):
    assert _cache_seen_by_a_module_fixture == str(tmp_path_factory.getbasetemp() / "cache")


def test_no_data_folder_gets_a_cache_inside_it(tmp_path, monkeypatch):
    """Issue 21: caches go to the user's cache folder, never inside the data folder (read-only or shared drives)."""
    from signals.datasets.cache import default_cache_dir
    monkeypatch.delenv("IMPLICIT_GON_CACHE")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    ro, rw = tmp_path / "ro", tmp_path / "rw"
    ro.mkdir()
    rw.mkdir()
    ro.chmod(0o555)
    try:
        assert default_cache_dir(ro) == default_cache_dir(rw) == tmp_path / "home" / ".cache" / "implicit-gon"
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        assert default_cache_dir(rw) == tmp_path / "xdg" / "implicit-gon"
        monkeypatch.setenv("XDG_CACHE_HOME", "relative")  # not absolute: ignored, as the XDG spec says
        assert default_cache_dir(rw) == tmp_path / "home" / ".cache" / "implicit-gon"
        monkeypatch.setenv("IMPLICIT_GON_CACHE", str(tmp_path / "env"))
        assert default_cache_dir(rw) == tmp_path / "env" and str(default_cache_dir(rw, "flag")) == "flag"
    finally:
        ro.chmod(0o755)


def test_a_fit_writes_no_cache_into_its_data_folder(tmp_path, monkeypatch, capsys, shared_data):
    import shutil

    from conftest import run_cli
    data = tmp_path / "celeba"
    shutil.copytree(shared_data / "celeba", data)
    monkeypatch.delenv("IMPLICIT_GON_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    before = sorted(p.relative_to(data) for p in data.rglob("*"))
    code, _, err = run_cli(["fit", "images", "--dataset", "celeba", "--data-dir", data, "--res", "8", "--steps", "1",
                            "--hidden", "8", "--layers", "2", "--device", "cpu", "--quiet", "--out",
                            tmp_path / "run"], capsys)
    assert code == 0, err
    assert sorted(p.relative_to(data) for p in data.rglob("*")) == before
    assert list((tmp_path / "xdg" / "implicit-gon").glob("celeba-*.npy"))


# -- more of the same: corrupt archives ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["coil-20-proc.zip", "cifar-10-python.tar.gz"])
def test_truncated_archive_is_one_line(tmp_path, capsys, name):
    src = tmp_path / "src"
    src.mkdir()
    write_cifar_batch(src / "test_batch", imgs(4, 32, 32, 3))
    arch = tmp_path / "data" / name
    arch.parent.mkdir()
    if name.endswith(".zip"):
        with zipfile.ZipFile(arch, "w") as zf:
            zf.write(src / "test_batch", "coil-20-proc/obj1__0.png")
    else:
        with tarfile.open(arch, "w:gz") as tf:
            tf.add(src / "test_batch", arcname=TEST_BATCH)
    arch.write_bytes(arch.read_bytes()[:len(arch.read_bytes()) // 3])
    dataset = "coil20" if name.endswith(".zip") else "cifar10"
    code, _, err = run_cli(["dataset", "info", dataset, "--data-dir", arch.parent], capsys)
    _one_line_error(code, err, name, "not a readable")
    assert not [ln for ln in err.splitlines() if ln.startswith("- method")]


def test_archive_with_too_many_members_is_refused(tmp_path, monkeypatch):
    from signals.datasets import archive
    monkeypatch.setattr(archive, "MAX_MEMBERS", 50)  # the real limit is 100,000; the check is the same
    arch = tmp_path / "cifar-10-python.tar.gz"
    _tar_with(arch, [(f"f{i}", "file", b"") for i in range(51)])
    with pytest.raises(DataError, match="more than 50 members"):
        extract(arch, tmp_path / "t")
    assert list((tmp_path / "t").iterdir()) == []


def test_dataset_info_checks_what_fit_checks(tmp_path, capsys):
    """A truncated image in a folder and a CIFAR batch with too few or out-of-range labels: `dataset info` decodes
    as `fit` does and gives fit's one line naming the file; --quick counts from headers alone."""
    folder = tmp_path / "fold"
    folder.mkdir()
    for i in range(12):
        Image.fromarray(np.full((8, 8, 3), i * 20, np.uint8)).save(folder / f"{i:02d}.png")
    (folder / "05.png").write_bytes((folder / "05.png").read_bytes()[:40])
    code, _, err = run_cli(["dataset", "info", "folder", "--data-dir", folder], capsys)
    _one_line_error(code, err, str(folder / "05.png"), "not a readable image")
    code, out, err = run_cli(["dataset", "info", "folder", "--data-dir", folder, "--quick"], capsys)
    assert code == 0 and "11 images" in out, err
    for labels, needle in ((list(range(3)), "(train split): 3 labels for 5 images"), ([0, 1, 99, 2, 3, 4], "got 99")):
        root = tmp_path / f"cifar{len(labels)}{labels[2]}" / "cifar-10-batches-py"
        write_cifar_batch(root / "test_batch", np.zeros((6, 32, 32, 3), np.uint8), labels=labels)
        code, _, err = run_cli(["dataset", "info", "cifar10", "--data-dir", root], capsys)
        _one_line_error(code, err, "test_batch", needle)
