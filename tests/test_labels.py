"""Class labels per dataset format: the real MNIST, Fashion-MNIST, CIFAR-10 and COIL-20 files, SmallNORB's category
files and the folder-per-class convention, their cache, and a dataset without labels."""
import gzip
import json
import shutil
import struct

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli
from implicit_gon.errors import DataError
from signals.datasets import load_images, load_labels, split_shapes


def _idx1(path):
    raw = gzip.decompress(path.read_bytes())
    return np.frombuffer(raw, np.uint8, offset=8).astype(np.int64)


def test_real_mnist_labels_follow_the_test_only_split(shared_data):
    full = _idx1(shared_data / "mnist" / "t10k-labels-idx1-ubyte.gz")
    train, classes = load_labels("mnist", "train", shared_data / "mnist")
    test, _ = load_labels("mnist", "test", shared_data / "mnist")
    assert classes == [str(d) for d in range(10)]
    assert np.array_equal(train, full[:9000]) and np.array_equal(test, full[9000:])
    assert train[:5].tolist() == [7, 2, 1, 0, 4]  # the well-known first MNIST test digits


def test_real_fashion_labels_cover_the_images_present(shared_data):
    full = _idx1(shared_data / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz")  # 10,000 labels, 4,443 images
    train, classes = load_labels("fashion-mnist", "train", shared_data / "fashion-mnist")
    test, _ = load_labels("fashion-mnist", "test", shared_data / "fashion-mnist")
    assert len(full) == 10000 and len(train) + len(test) == 4443
    assert np.array_equal(np.concatenate([train, test]), full[:4443])
    assert classes[0] == "T-shirt/top" and classes[9] == "Ankle boot"


def test_real_cifar_batch_labels(shared_data, tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    shutil.copy(shared_data / "cifar-10-batches-py" / "test_batch_first78", d / "test_batch")
    train, classes = load_labels("cifar10", "train", tmp_path)
    test, _ = load_labels("cifar10", "test", tmp_path)
    counts = np.bincount(np.concatenate([train, test]), minlength=10)
    assert counts.tolist() == [7, 4, 6, 8, 6, 7, 13, 8, 9, 10]  # as SOURCES.md lists them
    assert classes[0] == "airplane" and len(classes) == 10 and len(test) == 7


def test_real_coil20_labels_are_objects(shared_data):
    root = shared_data / "coil-20-32x32"
    train, classes = load_labels("coil20", "train", root)
    test, _ = load_labels("coil20", "test", root)
    assert classes == [f"obj{i}" for i in range(1, 21)]
    assert np.bincount(train).tolist() == [40] * 20 and np.bincount(test).tolist() == [10] * 20
    x = load_images("coil20", "test", root)
    obj1 = np.asarray(Image.open(root / "obj1__4.png"))  # the first test image: object 1, pose 4
    assert test[0] == 0 and np.array_equal(x[0, ..., 0], obj1)
    assert test[-1] == 19


def _tree(root, layout):
    rng = np.random.default_rng(0)
    for path in layout:
        p = root / path
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(p)


def test_folder_per_class(tmp_path):
    _tree(tmp_path, [f"{c}/{i}.png" for c in ("dog", "cat", "bird") for i in range(10)])
    train, classes = load_labels("folder", "train", tmp_path)
    test, _ = load_labels("folder", "test", tmp_path)
    assert classes == ["bird", "cat", "dog"]
    # every tenth file in path order is test: bird/9, cat/9, dog/9
    assert test.tolist() == [0, 1, 2] and np.bincount(train).tolist() == [9, 9, 9]
    assert split_shapes("folder", tmp_path)["train"]["classes"] == classes


def test_folder_per_class_with_train_and_test(tmp_path):
    _tree(tmp_path, ["train/a/0.png", "train/a/1.png", "train/b/0.png", "test/b/7.png", "test/a/3.png"])
    assert load_labels("folder", "train", tmp_path)[0].tolist() == [0, 0, 1]
    assert load_labels("folder", "test", tmp_path)[0].tolist() == [0, 1]


def test_folder_without_class_subfolders_has_no_labels(tmp_path):
    _tree(tmp_path, [f"{i}.png" for i in range(10)] + ["sub/x.png"])
    with pytest.raises(DataError, match="folder: no class labels"):
        load_labels("folder", "train", tmp_path)


def test_dataset_without_labels(shared_data):
    with pytest.raises(DataError, match="celeba: no class labels"):
        load_labels("celeba", "train", shared_data / "celeba")


def test_smallnorb_categories(tmp_path):
    """-cat.mat beside each -dat.mat: an int32 matrix of one dimension (its header holds three)."""
    rng = np.random.default_rng(1)
    for ids, word, n in (("46789", "training", 6), ("01235", "testing", 4)):
        stem = tmp_path / f"smallnorb-5x{ids}x9x18x6x2x96x96-{word}"
        pairs = rng.integers(0, 256, (n, 2, 8, 8), dtype=np.uint8)
        stem.with_name(stem.name + "-dat.mat").write_bytes(struct.pack("<6i", 0x1E3D4C55, 4, *pairs.shape)
                                                           + pairs.tobytes())
        cats = (np.arange(n) % 5).astype("<i4")
        raw = struct.pack("<5i", 0x1E3D4C54, 1, n, 1, 1) + cats.tobytes()
        stem.with_name(stem.name + "-cat.mat.gz").write_bytes(gzip.compress(raw))
    train, classes = load_labels("smallnorb", "train", tmp_path)
    assert train.tolist() == [0, 1, 2, 3, 4, 0] and classes[0] == "animal" and len(classes) == 5
    assert load_labels("smallnorb", "test", tmp_path)[0].tolist() == [0, 1, 2, 3]


def test_digits_labels_are_sklearns():
    from sklearn.datasets import load_digits
    lab, classes = load_labels("digits", "test")
    assert np.array_equal(lab, load_digits().target[1500:]) and len(classes) == 10


def test_labels_are_cached(shared_data, monkeypatch):
    from signals.datasets import idx
    first, _ = load_labels("mnist", "test", shared_data / "mnist")

    def boom(path):
        raise AssertionError("labels decoded again")
    monkeypatch.setattr(idx, "parse_idx_labels", boom)
    assert np.array_equal(load_labels("mnist", "test", shared_data / "mnist")[0], first)


def test_labels_fewer_than_images(tmp_path):
    raw = struct.pack(">4I", 0x803, 5, 4, 4) + bytes(80)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(raw)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(struct.pack(">2I", 0x801, 3) + bytes([1, 2, 3]))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte: 3 labels for 5 images"):
        load_labels("mnist", "test", tmp_path)


def test_dataset_info_reports_classes(shared_data, capsys):
    code, out, err = run_cli(["dataset", "info", "coil20", "--data-dir", shared_data / "coil-20-32x32", "--json"],
                             capsys)
    info = json.loads(out)  # --json: stdout is the JSON document alone, the table goes to stderr
    assert code == 0 and len(info["train"]["classes"]) == 20 and "classes: 20 (obj1, obj2" in err
