"""Two-step smoke tests of every command on the real MNIST files, and the one-line errors for bad input."""
import gzip
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, run_cli

pytestmark = pytest.mark.xdist_group("mnist_run")


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory, shared_data):
    run = tmp_path_factory.mktemp("runs") / "mnist"
    import cli
    cli.main(["fit", "images", "--dataset", "mnist", "--data-dir", str(shared_data / "mnist"), "--out", str(run),
              "--steps", "2", "--batch-size", "8", "--hidden", "32", "--layers", "2", "--device", "cpu", "--quiet"])
    return run


def test_fit_writes_checkpoint_config_and_metrics(mnist_run):
    info = json.loads((mnist_run / "config.json").read_text())
    assert info["step"] == 2 and info["meta"]["res"] == 28 and info["config"]["train"]["batch_size"] == 8
    rows = [json.loads(r) for r in (mnist_run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["val_n"] == 256 and np.isfinite(rows[-1]["val_psnr"])


def test_eval_json(mnist_run, capsys):
    code, out, _ = run_cli(["eval", mnist_run, "--json", "--n", "50", "--device", "cpu"], capsys)
    res = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and res["n"] == 50 and res["sse"] > 0 and 0 < res["psnr"] < 60


def test_render_single_image_at_256(mnist_run, tmp_path, capsys):
    code, _, _ = run_cli(["render", mnist_run, "--res", "256", "--n", "1", "--out", tmp_path / "d.png"], capsys)
    im = Image.open(tmp_path / "d.png")
    assert code == 0 and im.size == (256, 256) and im.mode == "L"


def test_render_grid(mnist_run, tmp_path, capsys):
    code, _, _ = run_cli(["render", mnist_run, "--res", "40", "--n", "4", "--out", tmp_path / "g.png"], capsys)
    assert code == 0 and Image.open(tmp_path / "g.png").size == (2 * 42 + 2, 2 * 42 + 2)


def test_encode_is_batch_size_invariant(mnist_run, tmp_path, shared_data, capsys):
    from signals.datasets.idx import parse_images
    imgs = parse_images(shared_data / "mnist" / "t10k-images-idx3-ubyte.gz")[:8, :, :, 0]
    paths = []
    for i, a in enumerate(imgs):
        Image.fromarray(a).save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    for bs in (8, 1):
        code, _, _ = run_cli(["encode", mnist_run, *paths, "--out", tmp_path / f"z{bs}.npy", "--batch-size", bs], capsys)
        assert code == 0
    z8, z1 = np.load(tmp_path / "z8.npy"), np.load(tmp_path / "z1.npy")
    assert z8.shape == (8, 32) and np.abs(z8 - z1).max() < 1e-5 and np.abs(z8).max() > 0


def test_resume_extends_a_run(mnist_run, tmp_path, shared_data, capsys):
    run = tmp_path / "r"
    shutil.copytree(mnist_run, run)
    code, _, err = run_cli(["fit", "images", "--dataset", "mnist", "--out", run, "--steps", "3", "--resume",
                            "--quiet"], capsys)
    assert code == 0, err
    assert json.loads((run / "config.json").read_text())["step"] == 3


def test_fit_refuses_to_overwrite_a_run(mnist_run, capsys):
    code, _, err = run_cli(["fit", "images", "--dataset", "mnist", "--out", mnist_run, "--steps", "1"], capsys)
    assert code == 1 and "already holds a run" in err


def _one_line_error(code, err, *needles):
    assert code != 0
    assert "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], lines[0]


def test_missing_data_dir(tmp_path, capsys):
    code, _, err = run_cli(["fit", "images", "--dataset", "mnist", "--data-dir", tmp_path / "nope",
                            "--out", tmp_path / "r", "--steps", "1"], capsys)
    _one_line_error(code, err, "nope", "not found")


def test_truncated_idx(tmp_path, shared_data, capsys):
    raw = gzip.decompress((shared_data / "mnist" / "t10k-images-idx3-ubyte.gz").read_bytes())
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(raw[:len(raw) // 2])
    code, _, err = run_cli(["fit", "images", "--dataset", "mnist", "--data-dir", tmp_path,
                            "--out", tmp_path / "r", "--steps", "1"], capsys)
    _one_line_error(code, err, "t10k-images-idx3-ubyte", "truncated")


def test_unknown_dataset(tmp_path, capsys):
    code, _, err = run_cli(["fit", "images", "--dataset", "mnsit", "--data-dir", tmp_path,
                            "--out", tmp_path / "r", "--steps", "1"], capsys)
    _one_line_error(code, err, "mnsit", "unknown dataset")


def test_non_image_file_in_folder(tmp_path, capsys):
    for i in range(3):
        Image.fromarray(np.full((12, 12, 3), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "notes.png").write_text("this is not an image")
    code, _, err = run_cli(["fit", "images", "--dataset", "folder", "--data-dir", tmp_path, "--res", "8",
                            "--out", tmp_path / "r", "--steps", "1"], capsys)
    _one_line_error(code, err, "notes.png", "not a readable image")


def test_console_script_error_has_no_traceback(tmp_path):
    exe = REPO / ".venv" / "bin" / "implicit-gon"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "cli"]
    p = subprocess.run(cmd + ["eval", str(tmp_path / "missing-run")], capture_output=True, text=True, cwd=REPO)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines()[-1].startswith("error:") and "missing-run" in p.stderr


@pytest.mark.parametrize("name,sub", [("mnist", "mnist"), ("fashion-mnist", "fashion-mnist"), ("cifar10", None),
                                      ("coil20", "coil-20-32x32"), ("celeba", "celeba")])
def test_real_dataset_info_fit_eval(name, sub, shared_data, tmp_path, capsys):
    if sub is None:  # the CIFAR subset is stored under another name: lay it out as distributed
        root = tmp_path / "cifar-10-batches-py"
        root.mkdir()
        shutil.copy(shared_data / "cifar-10-batches-py" / "test_batch_first78", root / "test_batch")
        shutil.copy(shared_data / "cifar-10-batches-py" / "batches.meta", root / "batches.meta")
    else:
        root = shared_data / sub
    code, out, err = run_cli(["dataset", "info", name, "--data-dir", root, "--json"], capsys)
    info = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and info["train"]["n"] > 0 and info["test"]["n"] > 0, err
    run = tmp_path / "run"
    code, _, err = run_cli(["fit", "images", "--dataset", name, "--data-dir", root, "--out", run, "--steps", "2",
                            "--batch-size", "8", "--hidden", "32", "--layers", "2", "--quiet"], capsys)
    assert code == 0, err
    code, out, err = run_cli(["eval", run, "--json", "--n", "8"], capsys)
    res = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and res["n"] == min(8, info["test"]["n"]) and res["psnr"] > 0, err
