"""The image adapter's verbs (signals/image_verbs.py) where a count meets what exists, and the polarity warning of
render --input (issue 24's frictions): CelebA's shared copy holds 3 held-out images; MNIST is white on black."""
import numpy as np
import pytest
from PIL import Image

from conftest import run_cli
from implicit_gon import GON, GONError

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
    assert code == 1 and lines == ["error: --pairs 2: the test split (3 images) has 1 pairs"], err
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


def test_render_input_warns_when_polarity_is_inverted(mnist_run, tmp_path, capsys):
    dark_on_light = _drawing(tmp_path, 0, 255)
    code, _, err = run_cli(["render", mnist_run, "--input", dark_on_light, "--res", "28", "--out",
                            tmp_path / "r.png"], capsys)
    warnings = [ln for ln in err.splitlines() if ln.startswith("warning:")]
    assert code == 0 and len(warnings) == 1 and str(dark_on_light) in warnings[0], err
    assert "polarity is the opposite of the training set's" in warnings[0]
    light_on_dark = _drawing(tmp_path, 255, 0)
    code, _, err = run_cli(["render", mnist_run, "--input", light_on_dark, "--res", "28", "--out",
                            tmp_path / "s.png"], capsys)
    assert code == 0 and "warning:" not in err, err
    GON.load(mnist_run, "cpu").render(inputs=np.full((1, 28, 28, 1), 230, np.uint8))  # the API warns alike
    assert "input 0: mean brightness 0.90" in capsys.readouterr().err
