"""The image adapter's verbs (signals/image_verbs.py) where a count meets what exists, and the polarity warning of
render --input (issue 24's frictions): CelebA's shared copy holds 3 held-out images; MNIST is white on black."""
import json
import shutil

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import save_file

from conftest import run_cli
from implicit_gon import GON, GONError, checkpoint
from implicit_gon.checkpoint import CKPT

TINY = ["--steps", "2", "--batch-size", "8", "--hidden", "32", "--layers", "2", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def celeba_run(tmp_path_factory, shared_data):
    run = tmp_path_factory.mktemp("celeba") / "run"
    code, _, err = run_cli(["fit", "images", "--dataset", "celeba", "--data-dir", shared_data / "celeba", "--res", "16",
                            "--out", run, *TINY])
    assert code == 0, err
    return run


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory, shared_data):
    run = tmp_path_factory.mktemp("mnist") / "run"
    code, _, err = run_cli(["fit", "images", "--dataset", "mnist", "--data-dir", shared_data / "mnist", "--out", run,
                            "--set", "data.train_limit=64", *TINY])
    assert code == 0, err
    return run


def test_render_says_when_the_split_holds_fewer_than_asked(celeba_run, tmp_path, capsys):
    code, _, err = run_cli(["render", celeba_run, "--res", "16", "--out", tmp_path / "r.png"], capsys)
    assert code == 0 and "note: 16 images asked for, but the test split has 3: using 3" in err, err
    assert "(3 x 16x16)" in err
    code, _, err = run_cli(["render", celeba_run, "--n", "8", "--res", "16", "--out", tmp_path / "r.png"], capsys)
    assert code == 0 and "8 images asked for, but the test split has 3" in err, err
    code, out, err = run_cli(["eval", celeba_run, "--n", "8", "--json"], capsys)
    assert code == 0 and "8 images asked for" in err and '"n": 3' in out, err


def test_interpolate_by_default_uses_the_pairs_that_exist(celeba_run, tmp_path, capsys):
    code, _, err = run_cli(["interpolate", celeba_run, "--frames", "3", "--out", tmp_path / "i.png"], capsys)
    assert code == 0 and "note: 4 pairs asked for, but the test split (3 images) has 1: using 1" in err, err
    assert "1 pairs x 3 frames" in err and Image.open(tmp_path / "i.png").size[0] > 0
    code, _, err = run_cli(["interpolate", celeba_run, "--pairs", "2", "--out", tmp_path / "j.png"], capsys)
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert code == 2 and lines == ["error: --pairs 2: the test split (3 images) has 1 pairs"], err
    assert not (tmp_path / "j.png").exists()
    gon = GON.load(celeba_run, "cpu")
    assert gon.interpolate(frames=3).shape == (3, 16, 16, 3)  # the API: the same default
    with pytest.raises(GONError, match="--pairs 2"):
        gon.interpolate(frames=3, pairs=2)


def _drawing(tmp_path, ink: int, paper: int):
    a = np.full((28, 28), paper, np.uint8)
    a[6:22, 12:16] = ink  # a stroke: a "1"
    path = tmp_path / f"drawing-{ink}-on-{paper}.png"
    Image.fromarray(a).save(path)
    return path


def _hints(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("warning:") and "invert it?" in ln]


def test_render_input_hints_invert_only_when_input_and_training_images_disagree(mnist_run, tmp_path, capsys):
    mean = GON.load(mnist_run, "cpu").meta["mean_brightness"]  # stored at fit time: MNIST is white on black
    assert 0.05 < mean < 0.25, mean
    dark_on_light = _drawing(tmp_path, 0, 255)
    code, _, err = run_cli(["render", mnist_run, "--input", dark_on_light, "--res", "28", "--out",
                            tmp_path / "r.png"], capsys)
    assert code == 0 and len(_hints(err)) == 1, err
    assert _hints(err)[0].startswith(f"warning: {dark_on_light}: the input is mostly light (mean 0.92) while the "
                                     f"training images are mostly dark (mean {mean:.2f}): invert it?"), err
    light_on_dark = _drawing(tmp_path, 255, 0)
    code, _, err = run_cli(["render", mnist_run, "--input", light_on_dark, "--res", "28", "--out",
                            tmp_path / "s.png"], capsys)
    assert code == 0 and "warning:" not in err, err
    gon = GON.load(mnist_run, "cpu")
    gon.render(inputs=np.full((1, 28, 28, 1), 230, np.uint8))  # the API hints alike
    assert "input 0: the input is mostly light (mean 0.90)" in capsys.readouterr().err
    gon.meta["mean_brightness"] = 0.9  # the other way round: a run on light images given a dark one
    gon.render(inputs=np.full((2, 28, 28, 1), 20, np.uint8))
    hints = _hints(capsys.readouterr().err)
    assert len(hints) == 2 and "mostly dark (mean 0.08) while the training images are mostly light (mean 0.90)" \
        in hints[1], hints


def _rewrite_meta(run, **change):
    """RUN's checkpoint with its info changed as a run fitted before mean_brightness was stored would hold it."""
    meta, tensors = checkpoint._read(run / CKPT)
    info = json.loads(meta["info"])
    for key, value in change.items():
        section, name = key.split("__")
        if value is None:
            info[section].pop(name)
        else:
            info[section][name] = value
    meta["info"] = json.dumps(info)
    meta["sha256"] = checkpoint.checksum(tensors, meta)
    save_file(tensors, str(run / CKPT), metadata=meta)


def test_render_input_of_a_run_without_a_stored_mean(mnist_run, tmp_path, capsys):
    run = tmp_path / "old"
    shutil.copytree(mnist_run, run)
    _rewrite_meta(run, meta__mean_brightness=None)
    drawing = _drawing(tmp_path, 0, 255)
    cmd = ["render", run, "--input", drawing, "--res", "28", "--out", tmp_path / "r.png"]
    code, _, err = run_cli(cmd, capsys)  # the training split is there: the mean comes from it
    assert code == 0 and len(_hints(err)) == 1 and "training images are mostly dark" in err, err
    info = json.loads(checkpoint._read(run / CKPT)[0]["info"])
    _rewrite_meta(run, config__data={**info["config"]["data"], "data_dir": str(tmp_path / "moved")})
    code, _, err = run_cli(cmd, capsys)  # nor that: rendered without the hint
    assert code == 0 and "warning:" not in err and (tmp_path / "r.png").exists(), err
    _rewrite_meta(run, meta__mean_brightness=2)
    code, _, err = run_cli(cmd, capsys)
    assert code == 1 and err.strip().endswith("meta.mean_brightness = 2: must be a number 0..1"), err
