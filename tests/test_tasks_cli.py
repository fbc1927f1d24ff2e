"""Two-step smoke tests of the tasks of Sec. 3.5 on real data (classify, joint, convert; latents; render --input
--mask), and their one-line errors."""
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli

pytestmark = pytest.mark.xdist_group("task_runs")
TINY = ["--steps", "2", "--batch-size", "8", "--hidden", "32", "--layers", "2", "--device", "cpu", "--quiet"]


def _fit(args, capsys):
    code, _, err = run_cli(["fit", "images", *args, *TINY], capsys)
    assert code == 0, err


def _json(args, capsys):
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory, shared_data):
    """The shared CIFAR-10 subset laid out as distributed."""
    root = tmp_path_factory.mktemp("cifar") / "cifar-10-batches-py"
    root.mkdir()
    shutil.copy(shared_data / "cifar-10-batches-py" / "test_batch_first78", root / "test_batch")
    return root


def test_classify_fit_eval_latents(shared_data, tmp_path, capsys):
    run = tmp_path / "cls"
    _fit(["--dataset", "mnist", "--data-dir", shared_data / "mnist", "--task", "classify", "--out", run], capsys)
    res = _json(["eval", run, "--json", "--n", "64"], capsys)
    assert res["n"] == 64 and 0 <= res["accuracy"] <= 1 and res["ce"] > 0 and "psnr" not in res
    code, _, err = run_cli(["latents", run, "--n", "50", "--out", tmp_path / "l.npz"], capsys)
    assert code == 0, err
    z = np.load(tmp_path / "l.npz")
    from signals.datasets import load_labels
    assert z["latents"].shape == (50, 32) and np.array_equal(z["labels"], load_labels(
        "mnist", "test", shared_data / "mnist")[0][:50]) and list(z["classes"]) == [str(d) for d in range(10)]
    code, _, err = run_cli(["latents", run, "--n", "50", "--out", tmp_path / "l.png"], capsys)
    assert code == 0 and Image.open(tmp_path / "l.png").size[0] > 200, err


def test_joint_fit_eval_encode_sample_latents_2d(shared_data, tmp_path, capsys):
    run = tmp_path / "joint"
    _fit(["--dataset", "mnist", "--data-dir", shared_data / "mnist", "--task", "joint", "--class-weight", "5",
          "--latent-dim", "2", "--out", run], capsys)
    assert json.loads((run / "config.json").read_text())["config"]["gon"]["class_weight"] == 5
    res = _json(["eval", run, "--json", "--n", "32"], capsys)
    assert 0 <= res["accuracy"] <= 1 and res["sse"] > 0 and 0 < res["psnr"] < 60
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "a.png")
    code, _, err = run_cli(["encode", run, tmp_path / "a.png", "--out", tmp_path / "z.npy"], capsys)
    assert code == 0 and np.load(tmp_path / "z.npy").shape == (1, 2), err
    code, _, err = run_cli(["sample", run, "--n", "4", "--out", tmp_path / "s.png"], capsys)
    assert code == 0 and (tmp_path / "s.png").is_file(), err
    code, _, err = run_cli(["latents", run, "--n", "40", "--out", tmp_path / "l.npz"], capsys)
    assert code == 0 and np.load(tmp_path / "l.npz")["latents"].shape == (40, 2), err


def test_convert_gray_on_real_cifar(cifar_root, tmp_path, capsys):
    run = tmp_path / "gray"
    _fit(["--dataset", "cifar10", "--data-dir", cifar_root, "--task", "convert", "--source", "gray", "--out", run],
         capsys)
    res = _json(["eval", run, "--json"], capsys)
    assert res["n"] == 7 and 0 < res["psnr"] < 60 and 15 < res["naive_psnr"] < 40
    code, _, err = run_cli(["render", run, "--n", "3", "--res", "32", "--out", tmp_path / "g.png"], capsys)
    assert code == 0 and Image.open(tmp_path / "g.png").size == (3 * 34 + 2, 3 * 34 + 2), err  # 3 rows of 3
    from signals.datasets.cifar import parse_batch
    Image.fromarray(parse_batch(cifar_root / "test_batch")[0]).save(tmp_path / "in.png")
    code, _, err = run_cli(["render", run, "--input", tmp_path / "in.png", "--res", "64",
                            "--out", tmp_path / "o.png"], capsys)
    im = Image.open(tmp_path / "o.png")
    assert code == 0 and im.size == (64, 64) and im.mode == "RGB", err


def test_convert_mask_and_low_res_on_real_mnist(shared_data, tmp_path, capsys):
    run = tmp_path / "mask"
    _fit(["--dataset", "mnist", "--data-dir", shared_data / "mnist", "--task", "convert", "--source", "mask:0.25",
          "--out", run], capsys)
    res = _json(["eval", run, "--json", "--n", "16"], capsys)
    assert res["n"] == 16 and res["naive_psnr"] > 0
    from signals.datasets.idx import parse_images
    Image.fromarray(parse_images(shared_data / "mnist" / "t10k-images-idx3-ubyte.gz")[0, :, :, 0]).save(
        tmp_path / "d.png")
    m = np.zeros((28, 28), np.uint8)
    m[::2] = 255
    Image.fromarray(m).save(tmp_path / "m.png")
    code, _, err = run_cli(["render", run, "--input", tmp_path / "d.png", "--mask", tmp_path / "m.png",
                            "--res", "56", "--out", tmp_path / "o.png"], capsys)
    assert code == 0 and Image.open(tmp_path / "o.png").size == (56, 56), err
    Image.fromarray(m[:20, :20]).save(tmp_path / "small.png")
    code, _, err = run_cli(["render", run, "--input", tmp_path / "d.png", "--mask", tmp_path / "small.png",
                            "--out", tmp_path / "x.png"], capsys)
    _one_line_error(code, err, "small.png", "mask is 20x20")
    low = tmp_path / "low"
    _fit(["--dataset", "mnist", "--data-dir", shared_data / "mnist", "--task", "convert", "--source", "low-res:7",
          "--out", low], capsys)
    assert json.loads((low / "config.json").read_text())["config"]["data"]["source_res"] == 7
    assert _json(["eval", low, "--json", "--n", "8"], capsys)["naive_psnr"] > 0
    code, _, err = run_cli(["render", low, "--input", tmp_path / "d.png", "--mask", tmp_path / "m.png",
                            "--out", tmp_path / "y.png"], capsys)
    _one_line_error(code, err, "--mask", "source is low-res")


def _one_line_error(code, err, *needles):
    assert code != 0 and "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.mark.parametrize("args,needles", [
    (["--dataset", "celeba", "--data-dir", "{data}/celeba", "--task", "classify"], ["celeba", "no class labels"]),
    (["--dataset", "mnist", "--data-dir", "{data}/mnist", "--task", "convert", "--source", "sepia"],
     ["sepia", "unknown view"]),
    (["--dataset", "mnist", "--data-dir", "{data}/mnist", "--task", "convert", "--source", "gray"],
     ["gray needs colour"]),
    (["--dataset", "mnist", "--data-dir", "{data}/mnist", "--source", "gray"], ["--source", "a convert-task setting"]),
    (["--dataset", "mnist", "--data-dir", "{data}/mnist", "--task", "classify", "--class-weight", "2"],
     ["--class-weight", "joint"]),
    (["--dataset", "mnist", "--data-dir", "{data}/mnist", "--task", "convert", "--source", "low-res:28"],
     ["low-res:28", "below the training resolution 28"]),
])
def test_task_errors_are_one_line(args, needles, shared_data, tmp_path, capsys):
    args = [a.replace("{data}", str(shared_data)) for a in args]
    code, _, err = run_cli(["fit", "images", *args, "--out", tmp_path / "r", *TINY], capsys)
    _one_line_error(code, err, *needles)
    assert not (tmp_path / "r" / "checkpoint.safetensors").exists()
