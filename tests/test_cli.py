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


def test_resuming_a_finished_run_changes_nothing(tmp_path, capsys):
    """--resume at train.steps: one line, exit 0; the final step was validated and logged again (twice in
    metrics.jsonl) and the checkpoint rewritten."""
    run = tmp_path / "r"
    flags = ["--dataset", "digits", "--hidden", "16", "--layers", "2", "--steps", "4", "--val-every", "2"]
    code, _, err = run_cli(["fit", "images", *flags, "--out", run, "--quiet"], capsys)
    assert code == 0, err
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"}
    code, _, err = run_cli(["fit", "images", "--out", run, "--resume"], capsys)
    assert code == 0 and "already trained to step 4 (train.steps 4): nothing to do" in err, err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"} == before


def test_fit_refuses_to_overwrite_a_run(mnist_run, capsys):
    code, _, err = run_cli(["fit", "images", "--dataset", "mnist", "--out", mnist_run, "--steps", "1"], capsys)
    assert code == 2 and "already holds a run" in err


def test_fit_refuses_a_folder_of_other_files(tmp_path, shared_data, capsys):
    """A new run never writes among files that are not a run's (`--out .` in a project, `--out ''`); the folder
    is left as it was, without even a lock file."""
    (tmp_path / "notes.txt").write_text("mine")
    code, _, err = run_cli(["fit", "images", "--dataset", "mnist", "--data-dir", shared_data / "mnist", "--out",
                            tmp_path, "--steps", "1"], capsys)
    assert code == 2 and "notes.txt" in err and "not empty" in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_fit_quiet_prints_nothing_on_success(tmp_path, shared_data, capsys):
    """--quiet: no note, header, progress or summary; the run is written all the same."""
    code, out, err = run_cli(["fit", "images", "--dataset", "mnist", "--data-dir", shared_data / "mnist", "--out",
                              tmp_path / "r", "--steps", "1", "--batch-size", "4", "--hidden", "16", "--layers", "2",
                              "--quiet"], capsys)
    assert code == 0 and out == "" and err == "" and (tmp_path / "r" / "checkpoint.safetensors").is_file()


def _one_line_error(code, err, *needles, status=1):
    """One error line naming the needles; exit status 1 for a wrong file, 2 for a wrong command line."""
    assert code == status, err
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
    _one_line_error(code, err, "mnsit", "unknown dataset", status=2)


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


# -- the first hour of a new user: help, --json, output names, options per signal, messages, your own data ---------
def _commands():
    """(path, click command) of every leaf command of the app."""
    import typer

    import cli
    stack = [((), typer.main.get_command(cli.app))]
    while stack:
        path, cmd = stack.pop()
        subs = getattr(cmd, "commands", None)
        if subs:
            stack += [(path + (name,), c) for name, c in subs.items()]
        else:
            yield path, cmd


def test_every_option_of_every_command_has_help():
    names = set()
    for path, cmd in _commands():
        names.add(" ".join(path))
        for p in cmd.params:
            assert (getattr(p, "help", None) or "").strip(), f"{' '.join(path)} {p.name}: no help"
    assert {"decode", "config show", "fit images", "render", "dataset info"} <= names


def test_fit_help_says_defaults_are_resolved_per_dataset(capsys):
    code, out, _ = run_cli(["fit", "images", "-h"], capsys)
    flat = " ".join(out.replace("│", " ").split())
    assert code == 0 and "Number of optimiser steps." in flat
    assert "resolved per dataset: train.steps in `implicit-gon config show images DATASET`" in flat
    code, out, _ = run_cli(["fit", "audio", "-h"], capsys)
    assert "config show audio default" in " ".join(out.replace("│", " ").split())


def test_every_command_has_a_smoke_test():
    """Each command the app has appears as a run_cli call in some test (two steps of fit, then the verb)."""
    text = "".join(p.read_text() for p in (REPO / "tests").glob("test_*.py"))
    for path, _ in _commands():
        assert "run_cli([" + ", ".join(f'"{w}"' for w in path) in text, f"no smoke test runs {' '.join(path)}"


def test_eval_json_stdout_is_only_the_json_document(mnist_run, capsys):
    code, out, err = run_cli(["eval", mnist_run, "--json", "--n", "20"], capsys)
    res = json.loads(out)  # the whole of stdout, as `| jq` reads it
    assert code == 0 and res["n"] == 20 and "psnr" in err  # the table went to stderr


def test_dataset_info_json_stdout_is_only_the_json_document(shared_data, capsys):
    code, out, err = run_cli(["dataset", "info", "mnist", "--data-dir", shared_data / "mnist", "--json"], capsys)
    assert code == 0 and json.loads(out)["test"]["n"] == 1000 and "images of shape" in err


def test_dataset_list_names_every_dataset(capsys):
    code, out, _ = run_cli(["dataset", "list"], capsys)
    assert code == 0 and all(name in out for name in ("digits", "mnist", "cifar10", "celeba", "folder"))


@pytest.mark.parametrize("args,ext,fmt", [(["render", "--n", "2"], "jpg", "JPEG"), (["render", "--n", "1"], "webp", "WEBP"),
                                          (["sample", "--n", "4"], "webp", "WEBP"),
                                          (["interpolate", "--pairs", "1", "--frames", "3"], "jpeg", "JPEG")])
def test_pictures_take_the_format_of_their_extension(mnist_run, tmp_path, capsys, args, ext, fmt):
    out = tmp_path / f"x.{ext}"
    code, _, err = run_cli([args[0], mnist_run, *args[1:], "--out", out], capsys)
    assert code == 0 and Image.open(out).format == fmt and f"wrote {out}" in err, err


def test_interpolate_writes_webm(mnist_run, tmp_path, capsys):
    out = tmp_path / "m.webm"
    code, _, err = run_cli(["interpolate", mnist_run, "--pairs", "2", "--frames", "3", "--out", out], capsys)
    import imageio.v3 as iio
    assert code == 0 and out.read_bytes()[:4] == b"\x1a\x45\xdf\xa3" and iio.imread(out).shape[0] == 6, err


@pytest.mark.parametrize("verb,name", [("render", "r.bmp"), ("interpolate", "x.mov"), ("sample", "s.tiff"),
                                       ("render", "r.wav")])
def test_unwritable_output_names_are_refused_before_any_work(mnist_run, tmp_path, capsys, monkeypatch, verb, name):
    from implicit_gon import GON

    def no_work(*a, **k):
        raise AssertionError("work started before the output name was checked")
    monkeypatch.setattr(GON, "encode_signal", no_work)
    monkeypatch.setattr(GON, "sample_latents", no_work)
    code, _, err = run_cli([verb, mnist_run, "--out", tmp_path / name], capsys)
    _one_line_error(code, err, name, "cannot write", status=2)
    assert not (tmp_path / name).exists()


@pytest.mark.parametrize("args,flag", [(["render", "--sample-rate", "8000"], "--sample-rate"),
                                       (["render", "--index", "0"], "--index"),
                                       (["render", "--hop", "0.1"], "--hop"),
                                       (["eval", "--data", "x.wav"], "--data"),
                                       (["render", "--plot", "p.png"], "--plot")])
def test_options_an_image_run_cannot_use_are_refused(mnist_run, tmp_path, capsys, args, flag):
    code, _, err = run_cli([args[0], mnist_run, *args[1:], "--out", tmp_path / "o.png"] if args[0] != "eval"
                           else [args[0], mnist_run, *args[1:]], capsys)
    _one_line_error(code, err, flag, "not used for image runs", status=2)


def test_render_input_refuses_dataset_choosers(mnist_run, tmp_path, capsys):
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "a.png")
    code, _, err = run_cli(["render", mnist_run, "--input", tmp_path / "a.png", "--n", "3", "--out",
                            tmp_path / "o.png"], capsys)
    _one_line_error(code, err, "--n", "--input", status=2)


def _digit_files(shared_data, tmp_path, n=3):
    from signals.datasets.idx import parse_images
    imgs = parse_images(shared_data / "mnist" / "t10k-images-idx3-ubyte.gz")[:n, :, :, 0]
    paths = []
    for i, a in enumerate(imgs):
        Image.fromarray(a).save(tmp_path / f"digit{i}.png")
        paths.append(tmp_path / f"digit{i}.png")
    return imgs, paths


def test_render_input_equals_encode_then_decode(mnist_run, shared_data, tmp_path, capsys):
    _, paths = _digit_files(shared_data, tmp_path)
    code, _, err = run_cli(["render", mnist_run, *[a for p in paths for a in ("--input", p)], "--res", "56",
                            "--out", tmp_path / "r.png"], capsys)
    assert code == 0, err
    code, _, err = run_cli(["encode", mnist_run, *paths, "--out", tmp_path / "z.npy"], capsys)
    assert code == 0, err
    code, _, err = run_cli(["decode", mnist_run, tmp_path / "z.npy", "--res", "56", "--out", tmp_path / "d.png"],
                           capsys)
    assert code == 0 and f"wrote {tmp_path / 'd.png'} (3 x 56x56)" in err, err
    r, d = np.asarray(Image.open(tmp_path / "r.png")), np.asarray(Image.open(tmp_path / "d.png"))
    assert r.shape == d.shape == (2 * 58 + 2, 2 * 58 + 2) and np.array_equal(r, d)


def test_render_compare_puts_the_originals_above(mnist_run, shared_data, tmp_path, capsys):
    imgs, paths = _digit_files(shared_data, tmp_path, 2)
    code, _, err = run_cli(["render", mnist_run, "--input", paths[0], "--input", paths[1], "--res", "56",
                            "--compare", "--out", tmp_path / "c.png"], capsys)
    pic = np.asarray(Image.open(tmp_path / "c.png"))
    assert code == 0 and pic.shape[0] == 2 * 58 + 2, err
    left = pic.shape[1] - 2 * 58  # the label column, then the first image
    assert np.array_equal(pic[2:58, left:left + 56], np.repeat(np.repeat(imgs[0], 2, 0), 2, 1))


def test_decode_refuses_latents_of_another_size(mnist_run, tmp_path, capsys):
    np.save(tmp_path / "z.npy", np.zeros((2, 5), np.float32))
    code, _, err = run_cli(["decode", mnist_run, tmp_path / "z.npy", "--out", tmp_path / "d.png"], capsys)
    _one_line_error(code, err, "z.npy", "(2, 5)", "(n, 32)")
    (tmp_path / "t.npy").write_text("not numpy")
    code, _, err = run_cli(["decode", mnist_run, tmp_path / "t.npy", "--out", tmp_path / "d.png"], capsys)
    _one_line_error(code, err, "t.npy", "not a readable")


def test_eval_plot_compare(mnist_run, tmp_path, capsys):
    code, out, err = run_cli(["eval", mnist_run, "--n", "5", "--plot", tmp_path / "p.png", "--compare"], capsys)
    pic = np.asarray(Image.open(tmp_path / "p.png"))
    assert code == 0 and pic.shape[0] == 2 * 30 + 2 and "5 reconstructions below their originals" in err, err


def test_sample_compare_finds_nearest_training_images(mnist_run, tmp_path, capsys):
    code, _, err = run_cli(["sample", mnist_run, "--n", "3", "--res", "56", "--compare", "--out", tmp_path / "s.png"],
                           capsys)
    assert code == 0 and "nearest training images" in err and Image.open(tmp_path / "s.png").size[1] == 2 * 58 + 2


def test_nearest_finds_a_training_image_itself():
    from signals.images import nearest
    rng = np.random.default_rng(1)
    train = rng.integers(0, 256, (50, 6, 6, 1), dtype=np.uint8)
    idx, mse = nearest(train, train[[7, 3, 41]], chunk=16)  # chunks: the best may lie in any of them
    assert idx.tolist() == [7, 3, 41] and np.allclose(mse, 0)


def test_fit_prints_the_dataset_note_once_and_names_the_device(shared_data, tmp_path, capsys):
    import signals.datasets
    signals.datasets._NOTED.clear()
    run = tmp_path / "r"
    code, _, err = run_cli(["fit", "images", "--dataset", "mnist", "--data-dir", shared_data / "mnist", "--out", run,
                            "--steps", "40", "--batch-size", "4", "--hidden", "16", "--layers", "2",
                            "--device", "cpu"], capsys)
    assert code == 0 and err.count("only test files found") == 1 and "device cpu" in err, err
    steps = [ln for ln in err.splitlines() if ln.startswith("step ")]
    assert 1 < len(steps) <= 21 and steps[-1].startswith("step 40/40")  # not a bar redrawn per step
    signals.datasets._NOTED.clear()
    code, _, err = run_cli(["eval", run, "--n", "4"], capsys)
    assert code == 0 and "note:" not in err


@pytest.fixture(scope="module")
def tone_run(tmp_path_factory):
    import soundfile as sf
    d = tmp_path_factory.mktemp("tone")
    t = np.arange(4000) / 16000
    sf.write(d / "tone.wav", 0.5 * np.sin(2 * np.pi * 440 * t), 16000)
    code, _, err = run_cli(["fit", "audio", d / "tone.wav", "--out", d / "run", "--steps", "2", "--hidden", "16",
                            "--layers", "2", "--quiet"])
    assert code == 0, err
    return d / "run", d / "tone.wav"


@pytest.mark.parametrize("args,flag", [(["sample", "--res", "64"], "--res"),
                                       (["render", "--index", "0"], "--index"),
                                       (["render", "--compare"], "--compare"),
                                       (["eval", "--n", "3"], "--n"),
                                       (["interpolate", "--pairs", "2"], "--pairs")])
def test_options_an_audio_run_cannot_use_are_refused(tone_run, tmp_path, capsys, args, flag):
    run, clip = tone_run
    extra = [] if args[0] == "eval" else ["--out", tmp_path / "o.wav"]
    code, _, err = run_cli([args[0], run, *args[1:], *extra], capsys)
    _one_line_error(code, err, flag, "not used for audio runs", status=2)


def test_audio_verbs_say_what_they_wrote(tone_run, tmp_path, capsys):
    import soundfile as sf
    run, clip = tone_run
    code, _, err = run_cli(["render", run, "--input", clip, "--out", tmp_path / "r.flac", "--plot",
                            tmp_path / "r.png"], capsys)
    assert code == 0 and f"wrote {tmp_path / 'r.flac'}" in err and f"wrote {tmp_path / 'r.png'}" in err, err
    assert sf.info(tmp_path / "r.flac").format == "FLAC"
    code, _, err = run_cli(["eval", run, "--plot", tmp_path / "e.png"], capsys)
    assert code == 0 and f"wrote {tmp_path / 'e.png'}" in err, err
    code, _, err = run_cli(["sample", run, "--n", "2", "--out", tmp_path / "s.ogg"], capsys)
    assert code == 0 and f"wrote {tmp_path / 's.ogg'}" in err and sf.info(tmp_path / "s.ogg").format == "OGG", err
    code, _, err = run_cli(["encode", run, clip, "--out", tmp_path / "z.npy"], capsys)  # a latent per window
    z = np.load(tmp_path / "z.npy")
    assert code == 0 and z.ndim == 2 and len(z) > 1 and f"wrote {tmp_path / 'z.npy'}" in err, err
    code, _, err = run_cli(["decode", run, tmp_path / "z.npy", "--out", tmp_path / "d.png"], capsys)
    _one_line_error(code, err, "decode is not a verb of audio runs", "render --input", status=2)
    assert "export-mesh" not in err and "--index" not in err


def test_a_file_argument_an_image_run_cannot_use_is_one_line(mnist_run, tmp_path, capsys):
    """`eval RUN FILE` on an image run: building the refusal raised an AttributeError traceback (typer's argument
    has no human_readable_name); --data was refused in one line."""
    (tmp_path / "x.wav").write_bytes(b"RIFF")
    for args in (["eval", mnist_run, tmp_path / "x.wav"], ["eval", mnist_run, "--data", tmp_path / "x.wav"]):
        code, _, err = run_cli(args, capsys)
        assert code == 2 and err.count("\n") == 1 and ": not used for image runs" in err, err
    assert "eval PATHS: not used" in run_cli(["eval", mnist_run, tmp_path / "x.wav"], capsys)[2]
