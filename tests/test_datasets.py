"""Every image dataset format: synthetic fixtures written in the native format, the real files where they exist,
corrupt files, the decode cache, checked downloads against a local HTTP server, and safe archive extraction."""
import gzip
import http.server
import io
import pickle
import shutil
import struct
import tarfile
import threading
import zipfile

import numpy as np
import pytest
from PIL import Image

from implicit_gon.errors import DataError
from signals.datasets import fetch, load_images, split_shapes
from signals.datasets.archive import extract
from signals.datasets.download import download, file_digest

RNG = np.random.default_rng(0)


# -- writers of each native format ---------------------------------------------------------------------------------
def write_idx(path, images, gz=True):
    n, r, c = images.shape
    raw = struct.pack(">4I", 0x803, n, r, c) + images.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(raw) if gz else raw)


def write_cifar_batch(path, images, labels=None):
    data = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump({b"batch_label": b"x", b"labels": [0] * len(images) if labels is None else labels,
                     b"data": data}, f, protocol=2)


def write_norb(path, pairs, gz=False):
    raw = struct.pack("<6i", 0x1E3D4C55, 4, *pairs.shape) + pairs.tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def write_lmdb(path, images):
    import lmdb
    env = lmdb.open(str(path), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for i, im in enumerate(images):
            buf = io.BytesIO()
            Image.fromarray(im).save(buf, format="WEBP", lossless=True)
            txn.put(f"{i:08d}".encode(), buf.getvalue())
    env.close()


def imgs(n, h, w, c):
    return RNG.integers(0, 256, (n, h, w, c), dtype=np.uint8)


# -- synthetic fixtures ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout,gz", [(".", True), ("MNIST/raw", False), ("mnist", True)])
def test_mnist_idx_layouts(tmp_path, layout, gz):
    train, test = imgs(30, 28, 28, 1)[..., 0], imgs(10, 28, 28, 1)[..., 0]
    suffix = ".gz" if gz else ""
    write_idx(tmp_path / layout / f"train-images-idx3-ubyte{suffix}", train, gz)
    write_idx(tmp_path / layout / f"t10k-images-idx3-ubyte{suffix}", test, gz)
    a = load_images("mnist", "train", tmp_path)
    assert a.shape == (30, 28, 28, 1) and np.array_equal(a[..., 0], train)
    assert np.array_equal(load_images("mnist", "test", tmp_path)[..., 0], test)


def test_fashion_mnist_resized(tmp_path):
    write_idx(tmp_path / "FashionMNIST/raw/train-images-idx3-ubyte.gz", imgs(12, 28, 28, 1)[..., 0])
    write_idx(tmp_path / "FashionMNIST/raw/t10k-images-idx3-ubyte.gz", imgs(4, 28, 28, 1)[..., 0])
    assert load_images("fashion-mnist", "train", tmp_path, res=32).shape == (12, 32, 32, 1)


def test_cifar_batches_and_archive(tmp_path):
    x = imgs(20, 32, 32, 3)
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    for i in range(1, 6):
        write_cifar_batch(d / f"data_batch_{i}", x[(i - 1) * 3:i * 3])
    write_cifar_batch(d / "test_batch", x[15:])
    a = load_images("cifar10", "train", tmp_path)
    assert a.shape == (15, 32, 32, 3) and np.array_equal(a, x[:15])
    arch = tmp_path / "arch"
    arch.mkdir()
    with tarfile.open(arch / "cifar-10-python.tar.gz", "w:gz") as tf:
        tf.add(d, arcname="cifar-10-batches-py")
    assert np.array_equal(load_images("cifar10", "test", arch), x[15:])


def test_cifar_refuses_pickled_objects(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": Evil()}, protocol=2))
    with pytest.raises(DataError, match="test_batch"):
        load_images("cifar10", "test", tmp_path)


@pytest.mark.parametrize("camera,channels", [("left", 1), ("right", 1), ("both", 2)])
def test_smallnorb_binary(tmp_path, camera, channels):
    pairs = RNG.integers(0, 256, (6, 2, 96, 96), dtype=np.uint8)
    write_norb(tmp_path / "smallnorb-5x46789x9x18x6x2x96x96-training-dat.mat", pairs)
    write_norb(tmp_path / "smallnorb-5x01235x9x18x6x2x96x96-testing-dat.mat.gz", pairs[:2], gz=True)
    a = load_images("smallnorb", "train", tmp_path, res=96, camera=camera)
    assert a.shape == (6, 96, 96, channels)
    cam = {"left": 0, "right": 1, "both": 0}[camera]
    assert np.array_equal(a[..., 0], pairs[:, cam])
    assert load_images("smallnorb", "test", tmp_path, camera=camera).shape == (2, 32, 32, channels)


def test_coil20_pngs_and_zip(tmp_path):
    d = tmp_path / "coil-20-proc"
    d.mkdir()
    for i in (1, 2):
        for j in range(10):
            Image.fromarray(imgs(1, 128, 128, 1)[0, ..., 0]).save(d / f"obj{i}__{j}.png")
    info = split_shapes("coil20", tmp_path)
    classes = ["obj1", "obj2"]
    assert info == {"train": {"n": 16, "shape": [1, 32, 32], "classes": classes},
                    "test": {"n": 4, "shape": [1, 32, 32], "classes": classes}}
    z = tmp_path / "z"
    z.mkdir()
    with zipfile.ZipFile(z / "coil-20-proc.zip", "w") as zf:
        for p in d.iterdir():
            zf.write(p, f"coil-20-proc/{p.name}")
    assert load_images("coil20", "test", z).shape == (4, 32, 32, 1)


def test_celeba_with_partition(tmp_path):
    d = tmp_path / "img_align_celeba"
    d.mkdir()
    for i in range(1, 7):
        Image.fromarray(imgs(1, 218, 178, 3)[0]).save(d / f"{i:06d}.jpg")
    (tmp_path / "list_eval_partition.txt").write_text("".join(f"{i:06d}.jpg {[0, 0, 0, 1, 2, 2][i - 1]}\n"
                                                              for i in range(1, 7)))
    info = split_shapes("celeba", tmp_path)
    assert {k: v["n"] for k, v in info.items()} == {"train": 3, "valid": 1, "test": 2}
    assert load_images("celeba", "test", tmp_path).shape == (2, 64, 64, 3)


def test_lsun_lmdb(tmp_path):
    x = imgs(5, 40, 50, 3)
    write_lmdb(tmp_path / "bedroom_train_lmdb", x)
    write_lmdb(tmp_path / "bedroom_val_lmdb", x[:2])
    a = load_images("lsun-bedroom", "train", tmp_path, res=40)
    assert a.shape == (5, 40, 40, 3)
    assert np.array_equal(a[0], x[0][:, 5:45])  # lossless, centre-cropped to the square


def test_folder_with_train_test_subfolders(tmp_path):
    for s, n in (("train", 4), ("test", 2)):
        (tmp_path / s).mkdir()
        for i in range(n):
            Image.fromarray(imgs(1, 20, 30, 3)[0]).save(tmp_path / s / f"{i}.png")
    assert load_images("folder", "train", tmp_path, res=16).shape == (4, 16, 16, 3)
    assert load_images("folder", "test", tmp_path, res=16, channels=1).shape == (2, 16, 16, 1)


# -- corrupt files name the file ------------------------------------------------------------------------------------
def _truncate(path):
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def test_corrupt_files_of_each_format_name_the_file(tmp_path):
    cases = {}
    p = tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz"
    write_idx(p, imgs(5, 28, 28, 1)[..., 0])
    _truncate(p)
    cases["mnist"] = (tmp_path / "mnist", p.name)
    d = tmp_path / "cifar"
    d.mkdir()
    write_cifar_batch(d / "test_batch", imgs(5, 32, 32, 3))
    _truncate(d / "test_batch")
    cases["cifar10"] = (d, "test_batch")
    d = tmp_path / "norb"
    d.mkdir()
    write_norb(d / "smallnorb-5x01235x9x18x6x2x96x96-testing-dat.mat", RNG.integers(0, 256, (3, 2, 96, 96), dtype=np.uint8))
    _truncate(d / "smallnorb-5x01235x9x18x6x2x96x96-testing-dat.mat")
    cases["smallnorb"] = (d, "testing-dat.mat")
    d = tmp_path / "coil"
    d.mkdir()
    for j in range(5):
        Image.fromarray(imgs(1, 32, 32, 1)[0, ..., 0]).save(d / f"obj1__{j}.png")
    _truncate(d / "obj1__4.png")
    cases["coil20"] = (d, "obj1__4.png")
    d = tmp_path / "celeba" / "img_align_celeba"
    d.mkdir(parents=True)
    for i in range(1, 11):
        Image.fromarray(imgs(1, 218, 178, 3)[0]).save(d / f"{i:06d}.jpg")
    (d / "000010.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    cases["celeba"] = (d.parent, "000010.jpg")
    d = tmp_path / "lsun" / "bedroom_val_lmdb"
    d.mkdir(parents=True)
    (d / "data.mdb").write_bytes(b"\x00" * 64 + b"not an lmdb database" * 100)
    cases["lsun-bedroom"] = (d.parent, "bedroom_val_lmdb")
    for name, (root, needle) in cases.items():
        with pytest.raises(DataError, match=needle.replace(".", r"\.")):
            load_images(name, "test", root)


# -- real data --------------------------------------------------------------------------------------------------------
def test_real_mnist_and_fashion(shared_data):
    a = load_images("mnist", "test", shared_data / "mnist")
    assert a.shape == (1000, 28, 28, 1) and 20 < a.mean() < 50  # dark background, bright strokes
    assert split_shapes("mnist", shared_data / "mnist")["train"]["n"] == 9000
    f = split_shapes("fashion-mnist", shared_data / "fashion-mnist")
    assert f["train"]["n"] + f["test"]["n"] == 4443


def test_real_cifar_test_batch(shared_data, tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    shutil.copy(shared_data / "cifar-10-batches-py" / "test_batch_first78", d / "test_batch")
    shutil.copy(shared_data / "cifar-10-batches-py" / "batches.meta", d / "batches.meta")
    info = split_shapes("cifar10", tmp_path)
    assert info["train"]["n"] + info["test"]["n"] == 78 and info["test"]["shape"] == [3, 32, 32]
    a = load_images("cifar10", "train", tmp_path)
    assert a.shape == (71, 32, 32, 3) and a.std() > 30  # 78 images: 71 train, 7 test


def test_a_renamed_cifar_batch_is_named_with_how_to_read_it(shared_data, tmp_path):
    """The shared subset's file is test_batch_first78: not read as the test split by a guess, but named, with the
    link that reads it, instead of 'no cifar10 files found'; the link then reads all 78 images."""
    subset = shared_data / "cifar-10-batches-py" / "test_batch_first78"
    for root in (shared_data / "cifar-10-batches-py", shared_data):
        with pytest.raises(DataError, match=r"test_batch_first78: a CIFAR-10 batch is read only under its archive "
                                            r"name .* ln -s \S+ c/test_batch\)") as e:
            load_images("cifar10", "test", root)
        assert "\n" not in str(e.value)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "test_batch").symlink_to(subset)
    info = split_shapes("cifar10", tmp_path / "c")
    assert info["train"]["n"] + info["test"]["n"] == 78


def test_real_coil20_and_celeba(shared_data):
    c = load_images("coil20", "train", shared_data / "coil-20-32x32")
    assert c.shape == (800, 32, 32, 1)  # poses 0-49 of 20 objects; j mod 5 == 4 held out
    f = load_images("celeba", "train", shared_data / "celeba")
    assert f.shape == (29, 64, 64, 3) and f.std() > 30


def test_second_load_reads_the_cache(shared_data, tmp_path, monkeypatch):
    from signals.datasets import base
    load_images("celeba", "train", shared_data / "celeba", cache_dir=str(tmp_path))
    cache = list(tmp_path.glob("celeba-train-64px-*.npy"))
    assert len(cache) == 1
    mtime = cache[0].stat().st_mtime_ns
    monkeypatch.setattr(base, "open_image", lambda *a: pytest.fail("decoded again"))
    again = load_images("celeba", "train", shared_data / "celeba", cache_dir=str(tmp_path))
    assert isinstance(again, np.memmap) and cache[0].stat().st_mtime_ns == mtime


def test_cache_is_rebuilt_when_settings_change(tmp_path):
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", imgs(20, 28, 28, 1)[..., 0])
    load_images("mnist", "train", tmp_path, cache_dir=str(tmp_path / "c"))
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", imgs(30, 28, 28, 1)[..., 0])
    assert load_images("mnist", "train", tmp_path, cache_dir=str(tmp_path / "c")).shape[0] == 27
    assert len(list((tmp_path / "c").glob("mnist-train-28px-*.npy"))) == 1  # the stale cache was removed


# -- downloads against a local server --------------------------------------------------------------------------------
class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict = {}
    cut_once: set = set()

    def log_message(self, *a):
        pass

    def do_GET(self):
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if self.path in self.cut_once:  # an interrupted transfer: half the bytes, then the connection drops
            self.cut_once.discard(self.path)
            self.wfile.write(body[start:start + (len(body) - start) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(body[start:])


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()


def _sha(data):
    import hashlib
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_download_good(server, tmp_path):
    body = RNG.bytes(200_000)
    _Handler.files["/a.bin"] = body
    out = download(f"{server}/a.bin", tmp_path / "a.bin", _sha(body), progress=False)
    assert out.read_bytes() == body and not list(tmp_path.glob("*.part"))


def test_download_checksum_mismatch_leaves_nothing(server, tmp_path):
    _Handler.files["/b.bin"] = b"not what was promised"
    with pytest.raises(DataError, match="checksum mismatch"):
        download(f"{server}/b.bin", tmp_path / "b.bin", _sha(b"something else"), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_download_interrupted_then_resumed(server, tmp_path):
    body = RNG.bytes(300_000)
    _Handler.files["/c.bin"] = body
    _Handler.cut_once.add("/c.bin")
    with pytest.raises(DataError, match="could not download .*a partial file resumes"):
        download(f"{server}/c.bin", tmp_path / "c.bin", _sha(body), progress=False)
    assert not (tmp_path / "c.bin").exists() and (tmp_path / "c.bin.part").stat().st_size == 150_000
    download(f"{server}/c.bin", tmp_path / "c.bin", _sha(body), progress=False)
    assert (tmp_path / "c.bin").read_bytes() == body and not (tmp_path / "c.bin.part").exists()


def _served_mnist(server, tmp_path, monkeypatch):
    """A small MNIST (8 train, 3 test) served from 127.0.0.1, and the registry pointed at it."""
    import signals.datasets as ds
    train, test = imgs(8, 28, 28, 1)[..., 0], imgs(3, 28, 28, 1)[..., 0]
    write_idx(tmp_path / "src" / "train.gz", train)
    write_idx(tmp_path / "src" / "test.gz", test)
    blobs = {n: (tmp_path / "src" / f"{n}.gz").read_bytes() for n in ("train", "test")}
    _Handler.files.update({f"/{n}.gz": b for n, b in blobs.items()})
    info = ds.DATASETS["mnist"]
    fake = ds.DatasetInfo("mnist", 28, 1, info.formats, (
        (f"{server}/train.gz", "train-images-idx3-ubyte.gz", "md5:" + file_digest(tmp_path / "src/train.gz", "md5")),
        (f"{server}/test.gz", "t10k-images-idx3-ubyte.gz", "md5:" + file_digest(tmp_path / "src/test.gz", "md5"))))
    monkeypatch.setitem(ds.DATASETS, "mnist", fake)
    return train, test


def test_dataset_download_end_to_end(server, tmp_path, monkeypatch):
    train, _ = _served_mnist(server, tmp_path, monkeypatch)
    a = load_images("mnist", "train", tmp_path / "data", download=True, progress=False)
    assert np.array_equal(a[..., 0], train)


def test_a_runs_verbs_read_what_its_fit_downloaded_and_never_fetch(server, tmp_path, monkeypatch):
    """A run trained with --download (into the cache's downloads folder: no --data-dir) keeps download: true in its
    config; its eval and render read the files fit fetched and never reach for the network (offline, each of them
    printed a failed download's note, and behind a firewall that drops packets each would wait for the timeout)."""
    import types

    import signals.datasets as ds
    from implicit_gon.config import Config, DataConfig
    from signals.image_verbs import image_split
    train, test = _served_mnist(server, tmp_path, monkeypatch)
    cache = str(tmp_path / "cache")
    load_images("mnist", "train", None, download=True, progress=False, cache_dir=cache)  # what fit does

    def no_network(*a, **k):
        raise AssertionError("a verb tried to download")
    monkeypatch.setattr(ds, "fetch", no_network)
    cfg = Config(data=DataConfig(dataset="mnist", download=True, cache_dir=cache))
    run = types.SimpleNamespace(cfg=cfg, meta={"res": 28, "channels": 1})
    assert np.array_equal(np.asarray(image_split(run, "test").images)[..., 0], test)
    assert np.array_equal(load_images("mnist", "train", None, progress=False, cache_dir=cache)[..., 0], train)


def test_download_offline_uses_the_files_already_there(tmp_path, monkeypatch, capsys):
    """--download with no network: where data_dir already holds a usable set (MNIST's test files alone), a note
    and the local files (the README's command failed offline beside them); where it holds none, the error, and a
    data_dir the download made is not left behind empty."""
    import socket

    import signals.datasets as ds
    with socket.socket() as s:  # a port nothing listens on: connection refused, as with no network
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    info = ds.DATASETS["mnist"]
    monkeypatch.setitem(ds.DATASETS, "mnist", ds.DatasetInfo("mnist", 28, 1, info.formats, (
        (f"{dead}/train.gz", "train-images-idx3-ubyte.gz", "md5:" + "0" * 32),)))
    with pytest.raises(DataError, match="could not download"):
        load_images("mnist", "train", tmp_path / "none", download=True, progress=False)
    assert not (tmp_path / "none").exists()
    test = imgs(10, 28, 28, 1)[..., 0]
    write_idx(tmp_path / "d" / "t10k-images-idx3-ubyte.gz", test)
    a = load_images("mnist", "train", tmp_path / "d", download=True, progress=False, cache_dir=str(tmp_path / "c"))
    assert np.array_equal(a[..., 0], test[:9])  # the test-only split: 9 to train
    err = capsys.readouterr().err
    assert "note: --download:" in err and f"using the mnist files already in {tmp_path / 'd'}" in err, err


def test_no_download_for_celeba_says_what_to_put_where(tmp_path):
    with pytest.raises(DataError, match="img_align_celeba"):
        fetch("celeba", tmp_path)
    with pytest.raises(DataError, match="img_align_celeba"):
        load_images("celeba", "train", tmp_path)


# -- archives -------------------------------------------------------------------------------------------------------
def test_tar_member_outside_target_is_refused(tmp_path):
    arch = tmp_path / "evil.tar.gz"
    with tarfile.open(arch, "w:gz") as tf:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"bad"))
    with pytest.raises(DataError, match="outside"):
        extract(arch, tmp_path / "target")
    assert not (tmp_path / "escaped.txt").exists()


def test_zip_member_outside_target_is_refused(tmp_path):
    arch = tmp_path / "evil.zip"
    with zipfile.ZipFile(arch, "w") as zf:
        zf.writestr("../../escaped.txt", "bad")
    with pytest.raises(DataError, match="outside"):
        extract(arch, tmp_path / "target")


def test_every_dataset_has_a_config_that_resolves():
    from implicit_gon.config import default_config_path, resolve
    from signals.datasets import DATASETS
    for name, info in DATASETS.items():
        assert default_config_path("images", name) is not None, name
        cfg = resolve("images", name, None, {})
        assert cfg.data.dataset == name and (cfg.data.res or info.res) == info.res


def test_variational_section_applies_only_to_variational_runs(tmp_path):
    """configs/images/<name>.yaml's `variational:` section sits between the YAML's body and the flags."""
    from implicit_gon.config import resolve
    plain = resolve("images", "mnist", None, {})
    var = resolve("images", "mnist", None, {"model.variational": True})
    assert (plain.gon.step_size, plain.model.w0_latent) == (1 / 64, None)
    assert (var.gon.step_size, var.model.w0_latent, var.gon.likelihood) == (0.25, 7.5, "bernoulli")
    assert var.gon.beta_warmup > 0 and var.train.steps == plain.train.steps
    flag = resolve("images", "mnist", None, {"model.variational": True, "gon.step_size": 0.5})
    assert flag.gon.step_size == 0.5  # a flag still wins
    cfg = tmp_path / "v.yaml"
    cfg.write_text("model: {variational: true}\nvariational:\n  gon: {beta: 0.5}\n")
    assert resolve("images", "mnist", str(cfg), {}).gon.beta == 0.5
    assert resolve("images", "mnist", str(cfg), {"model.variational": False}).gon.beta == 1.0
    cfg.write_text("variational:\n  gon: {bogus: 1}\n")
    with pytest.raises(Exception, match="gon.bogus"):
        resolve("images", "mnist", str(cfg), {})
