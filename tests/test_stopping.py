"""Training a researcher can steer: early stopping and best.safetensors, --max-time, held-out audio and SDF
sets, `plot`, and whole-clip audio interpolation and sampling."""
import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import run_cli
from implicit_gon.errors import GONError
from implicit_gon.stopping import EarlyStop, parse_duration

pytestmark = pytest.mark.xdist_group("steer")

SMALL = ["--hidden", "32", "--layers", "2", "--device", "cpu", "--quiet"]
# digits at lr 0.01: held-out SSE falls to a minimum, then rises as the small model overfits, so patience 2 stops
# it well before STEPS (the step differs between machines: tests read it from the run, never assume it)
STEPS = 400
EARLY = ["fit", "images", "--dataset", "digits", "--lr", "0.01", "--val-every", "5", "--patience", "2",
         "--set", "train.val_samples=64", *SMALL]


def rows(run):
    return [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]


def info(run):
    return json.loads((run / "config.json").read_text())


@pytest.mark.parametrize("text, seconds", [("240s", 240), ("4m", 240), ("2h", 7200), ("1h30m", 5400),
                                           ("1.5h", 5400), ("90", 90), ("0", 0), ("1m30s", 90)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "4x", "m", "-5", "1h-3m", "nan", "inf"])
def test_parse_duration_refuses_garbage(text):
    with pytest.raises(GONError, match="not a duration"):
        parse_duration(text)


def test_early_stop_counts_evaluations_without_improvement():
    s = EarlyStop("sse", higher=False)
    flags = [s.update(step, {"sse": v}) for step, v in zip(range(1, 7), [5.0, 4.0, 4.5, 3.9, 3.9, 4.1])]
    assert flags == [True, True, False, True, False, False]
    assert (s.best, s.best_step, s.bad) == (3.9, 4, 2) and s.exhausted(2) and not s.exhausted(3)
    assert not s.exhausted(0)  # patience 0: never stop
    up = EarlyStop("snr_db", higher=True)
    assert up.update(1, {"snr_db": 1.0}) and up.update(2, {"snr_db": 2.0}) and not up.update(3, {"snr_db": None})
    assert up.bad == 1  # an SDF reconstruction with no surface never counts as an improvement


@pytest.fixture(scope="module")
def early_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("steer") / "early"
    code, _, err = run_cli([*EARLY, "--steps", STEPS, "--out", run])
    assert code == 0, err
    return run


def test_early_stopping_stops_and_keeps_the_best(early_run, capsys):
    vals = [(r["step"], r["val_sse"]) for r in rows(early_run) if "val_sse" in r]
    steps = [s for s, _ in vals]
    best_step, best_sse = min(vals, key=lambda v: v[1])
    last = info(early_run)
    assert last["step"] < STEPS and last["step"] == steps[-1]  # it stopped early, right after an evaluation
    assert last["step"] == best_step + 2 * 5  # two evaluations after the best one
    es = last["train_state"]["early_stop"]
    assert es["best_step"] == best_step and es["best"] == pytest.approx(best_sse) and es["bad"] == 2
    from safetensors import safe_open
    with safe_open(str(early_run / "best.safetensors"), "pt") as f:
        assert json.loads(f.metadata()["info"])["step"] == best_step
        assert "extra.gauss_mean" in f.keys()  # the sampling Gaussian is fitted on the best weights
    # eval on the same 64 held-out digits reproduces the monitored score of each checkpoint
    for which, expected in (("best", best_sse), ("last", vals[-1][1])):
        code, out, err = run_cli(["eval", early_run, "--checkpoint", which, "--n", "64", "--json"], capsys)
        assert code == 0, err
        assert json.loads(out.strip().splitlines()[-1])["sse"] == pytest.approx(expected, rel=1e-5)


def test_every_verb_takes_checkpoint_best(early_run, tmp_path, capsys):
    from PIL import Image
    for args in (["render", "--n", "4", "--res", "16", "--out", tmp_path / "r.png"],
                 ["sample", "--n", "4", "--out", tmp_path / "s.png"],
                 ["interpolate", "--pairs", "1", "--frames", "3", "--out", tmp_path / "i.png"]):
        code, _, err = run_cli([args[0], early_run, *args[1:], "--checkpoint", "best"], capsys)
        assert code == 0, err
    best = np.asarray(Image.open(tmp_path / "s.png"))
    run_cli(["sample", early_run, "--n", "4", "--out", tmp_path / "s_last.png"], capsys)
    assert not np.array_equal(best, np.asarray(Image.open(tmp_path / "s_last.png")))  # two different models
    digit = tmp_path / "d.png"
    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(digit)
    code, _, err = run_cli(["encode", early_run, digit, "--checkpoint", "best", "--out", tmp_path / "z.npy"], capsys)
    assert code == 0 and np.load(tmp_path / "z.npy").shape == (1, 32), err
    code, _, err = run_cli(["render", early_run, "--checkpoint", "bset", "--out", tmp_path / "x.png"], capsys)
    assert code == 2 and "bset" in err



def test_refit_with_checkpoint_best_rewrites_only_best(early_run, tmp_path, capsys):
    from implicit_gon import checkpoint
    run = tmp_path / "r"
    shutil.copytree(early_run, run)
    last_before = (run / "checkpoint.safetensors").read_bytes()
    code, _, err = run_cli(["sample", run, "--refit", "--checkpoint", "best", "--n", "2", "--out", tmp_path / "s.png"],
                           capsys)
    assert code == 0, err
    assert (run / "checkpoint.safetensors").read_bytes() == last_before  # the resumable checkpoint is untouched
    info_best, _, opt, extra = checkpoint.load(run, checkpoint.BEST)
    assert opt is None and "gauss_mean" in extra and info_best["step"] < info(run)["step"]


def test_a_run_without_best_says_so_in_one_line(tmp_path, capsys):
    run = tmp_path / "plain"
    code, _, err = run_cli(["fit", "images", "--dataset", "digits", "--steps", "2", "--out", run, *SMALL], capsys)
    assert code == 0, err
    assert not (run / "best.safetensors").exists()
    code, _, err = run_cli(["eval", run, "--checkpoint", "best"], capsys)
    assert code == 2 and err.count("\n") == 1 and "no best.safetensors" in err and "--val-every" in err


def counters(run):
    """(step, evaluations without improvement) after each held-out evaluation, replayed from metrics.jsonl."""
    es, out = EarlyStop("sse", higher=False), []
    for r in rows(run):
        if "val_sse" in r:
            es.update(r["step"], {"sse": r["val_sse"]})
            out.append((r["step"], es.bad))
    return out


def test_resume_continues_the_patience_counter(early_run, tmp_path, capsys):
    """Stopped at an evaluation where the uninterrupted run's counter was above 0 (derived from its metrics, not a
    step of one trajectory) and resumed: the run stops exactly where the uninterrupted one did, with the same best.
    A counter restarted at resume would not stop there."""
    whole = info(early_run)
    pending = [(s, bad) for s, bad in counters(early_run) if bad > 0 and s < whole["step"]]
    assert pending, "patience 2 stops one evaluation after a counter of 1"
    split_step, bad = pending[-1]
    run = tmp_path / "split"
    code, _, err = run_cli([*EARLY, "--steps", split_step, "--out", run], capsys)
    assert code == 0, err
    assert info(run)["train_state"]["early_stop"]["bad"] == bad
    code, _, err = run_cli(["fit", "images", "--out", run, "--resume", "--steps", STEPS], capsys)
    assert code == 0 and "stopped early at step" in err, err
    split = info(run)
    assert split["step"] == whole["step"]
    assert split["train_state"]["early_stop"] == whole["train_state"]["early_stop"]
    code, _, err = run_cli(["fit", "images", "--out", run, "--resume", "--steps", STEPS], capsys)
    assert code == 0 and "already stopped early" in err and info(run)["step"] == whole["step"]


def test_early_stopping_flags_are_checked(tmp_path, capsys):
    base = ["fit", "images", "--dataset", "digits", "--steps", "2", "--out", tmp_path / "r", *SMALL]
    code, _, err = run_cli([*base, "--patience", "3"], capsys)
    assert code == 2 and "train.patience = 3 needs train.val_every" in err
    code, _, err = run_cli([*base, "--val-every", "1", "--val-metric", "snr_db"], capsys)
    assert code == 2 and "snr_db is not reported for images" in err
    code, _, err = run_cli([*base, "--val-every", "1", "--val-metric", "bits_per_dim"], capsys)
    assert code == 2 and "needs a variational run" in err
    code, _, err = run_cli([*base, "--max-time", "soon"], capsys)
    assert code == 2 and err.strip() == "error: --max-time 'soon': not a duration (e.g. 240s, 4m, 2h, 1h30m, or seconds)"
    code, _, err = run_cli([*base, "--set", "train.max_time=-1"], capsys)
    assert code == 2 and "train.max_time = -1: must be at least 0" in err


def test_max_time_stops_checkpoints_and_resumes(tmp_path, capsys):
    run = tmp_path / "timed"
    code, _, err = run_cli(["fit", "images", "--dataset", "digits", "--steps", "1000000", "--max-time", "1s",
                            "--out", run, *SMALL[:-1]], capsys)  # not --quiet: the stop is said
    assert code == 0 and "wall-clock budget" in err, err
    first = info(run)
    assert 0 < first["step"] < 1000000 and first["config"]["train"]["max_time"] == 1.0
    assert rows(run)[-1]["val_n"] > 0  # the end-of-run validation ran
    assert first["train_state"]["elapsed"] >= 1.0
    code, _, err = run_cli(["sample", run, "--n", "2", "--out", tmp_path / "s.png"], capsys)
    assert code == 0, err  # the latent Gaussian was fitted
    code, _, err = run_cli(["fit", "images", "--out", run, "--resume", "--max-time", "2s"], capsys)
    assert code == 0 and "wall-clock budget" in err, err
    second = info(run)
    assert second["step"] > first["step"] and second["config"]["train"]["max_time"] == 2.0
    assert second["train_state"]["elapsed"] >= first["train_state"]["elapsed"] + 2.0
    steps = [r["step"] for r in rows(run) if "loss" in r]
    assert steps == sorted(steps) and steps[-1] == second["step"]


def test_plot_draws_loss_and_every_held_out_metric(early_run, tmp_path, capsys):
    from implicit_gon.plot import make_figure
    plain = tmp_path / "plain"
    run_cli(["fit", "images", "--dataset", "digits", "--steps", "20", "--out", plain,
             "--set", "train.log_every=5", *SMALL], capsys)
    code, _, err = run_cli(["plot", early_run, plain, "--out", tmp_path / "c.png"], capsys)
    assert code == 0 and (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", err
    fig = make_figure([early_run, plain])
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_visible()}
    assert set(panels) == {"loss", "held out: sse", "held out: psnr"}
    assert len(panels["loss"].lines) == 2  # one line per run
    assert len(panels["held out: sse"].lines) == 2  # the plain run has its end-of-run validation
    assert [t.get_text() for t in panels["loss"].get_legend().get_texts()] == ["early", "plain"]
    line = panels["held out: sse"].lines[0]
    expected = [(r["step"], r["val_sse"]) for r in rows(early_run) if "val_sse" in r]
    assert list(line.get_xdata()) == [s for s, _ in expected]
    assert list(line.get_ydata()) == pytest.approx([v for _, v in expected])
    fig = make_figure([early_run], x="time")
    xs = fig.axes[0].lines[0].get_xdata()
    assert xs[0] > 0 and all(np.diff(xs) >= 0) and xs[-1] == pytest.approx(info(early_run)["train_state"]["elapsed"])
    code, _, err = run_cli(["plot", early_run, "--x", "time", "--out", tmp_path / "t.png"], capsys)
    assert code == 0 and (tmp_path / "t.png").stat().st_size > 0
    code, _, err = run_cli(["plot", tmp_path / "nothing", "--out", tmp_path / "n.png"], capsys)
    assert code == 1 and "no metrics here" in err and not (tmp_path / "n.png").exists()
    code, _, err = run_cli(["plot", early_run, "--out", tmp_path / "c.jpg"], capsys)
    assert code == 1 and "c.jpg" in err


# -- audio ------------------------------------------------------------------------------------------------------
AUDIO_SMALL = ["--hidden", "32", "--layers", "2", "--batch-size", "8", "--quiet"]


@pytest.fixture(scope="module")
def audio_run(tmp_path_factory, shared_data):
    run = tmp_path_factory.mktemp("steer") / "audio"
    code, _, err = run_cli(["fit", "audio", "--data", shared_data / "audio", "--out", run, "--steps", "6",
                            "--val-every", "2", *AUDIO_SMALL])
    assert code == 0, err
    return run


def test_audio_holds_out_every_tenth_clip_and_validates(audio_run, shared_data):
    data = info(audio_run)["config"]["data"]
    clips = sorted(str(p.resolve()) for p in (shared_data / "audio").iterdir())  # runs store resolved paths
    # 8 clips: fewer than 10, so the last in path order is held out
    assert data["val_paths"] == clips[-1:] and data["paths"] == clips[:-1]
    vals = [r for r in rows(audio_run) if "val_snr_db" in r]
    assert [r["step"] for r in vals] == [2, 4, 6] and all(r["val_clips"] == 1 for r in vals)
    assert (audio_run / "best.safetensors").is_file()


def test_audio_val_flag_and_too_few_clips(shared_data, tmp_path, capsys):
    wav = (shared_data / "audio" / "cmu_arctic_us_aew_a0001.wav").resolve()  # runs store resolved paths
    other = (shared_data / "audio" / "cmu_arctic_us_aew_a0002.wav").resolve()
    code, _, err = run_cli(["fit", "audio", "--data", wav, "--out", tmp_path / "one", "--steps", "2",
                            "--val-every", "1", "--patience", "1", *AUDIO_SMALL], capsys)
    assert code == 1 and err.count("\n") == 1 and "1 cannot be split" in err and "--val" in err
    run = tmp_path / "val"
    code, _, err = run_cli(["fit", "audio", "--data", wav, "--val", other, "--out", run, "--steps", "2",
                            *AUDIO_SMALL], capsys)
    assert code == 0, err
    data = info(run)["config"]["data"]
    assert data["paths"] == [str(wav)] and data["val_paths"] == [str(other)]
    assert "val_snr_db" in rows(run)[-1]  # validated at the end, as image runs are
    code, _, err = run_cli(["fit", "audio", "--out", run, "--resume", "--val", wav, "--steps", "3"], capsys)
    assert code == 2 and "leave out --data and --val" in err
    code, _, err = run_cli(["fit", "audio", "--data", shared_data / "audio", "--val", other, "--out", tmp_path / "x",
                            "--steps", "1", *AUDIO_SMALL], capsys)
    assert code == 2 and f"{other}: given both to train on (--data) and to hold out (--val)" in err


def test_audio_interpolate_morphs_whole_clips(audio_run, shared_data, tmp_path, capsys):
    a = shared_data / "audio" / "cmu_arctic_us_aew_a0001.wav"  # 3.88 s
    b = shared_data / "audio" / "456440__inspectorj__bird-whistling-robin-single-13.ogg"  # 2.70 s, at 16 kHz
    code, _, err = run_cli(["interpolate", audio_run, "--from", a, "--to", b, "--frames", "3",
                            "--out", tmp_path / "m.wav"], capsys)
    assert code == 0, err
    m, sr = sf.read(tmp_path / "m.wav", dtype="float32")
    n = round(sf.info(b).duration * 16000)  # the shorter clip at the run's rate
    gap = round(0.25 * sr)
    assert sr == 16000 and len(m) == 3 * n + 2 * gap
    code, _, err = run_cli(["interpolate", audio_run, "--from", a, "--to", b, "--frames", "3",
                            "--out", tmp_path / "frames"], capsys)
    assert code == 0, err
    frames = [sf.read(tmp_path / "frames" / f"frame_{k:03d}.wav", dtype="float32")[0] for k in range(3)]
    assert all(len(f) == n for f in frames)
    np.testing.assert_array_equal(frames[1], m[n + gap:2 * n + gap])
    # the ends are the clips as `render` renders them (a only up to its last window before the cut)
    for end, clip in ((frames[0], a), (frames[2], b)):
        code, _, err = run_cli(["render", audio_run, "--input", clip, "--out", tmp_path / "r.wav"], capsys)
        r = sf.read(tmp_path / "r.wav", dtype="float32")[0]
        L = info(audio_run)["meta"]["length"]
        np.testing.assert_allclose(end[:n - L], r[:n - L], atol=2 / 32768)
    assert np.abs(frames[1] - frames[0]).max() > 1e-3  # the middle frame is neither end
    code, _, err = run_cli(["interpolate", audio_run, "--from", a, "--to", b, "--out", tmp_path / "m.mp3"], capsys)
    assert code == 2 and "m.mp3" in err and ".wav" in err


def test_audio_sample_seconds(audio_run, tmp_path, capsys):
    code, _, err = run_cli(["sample", audio_run, "--n", "2", "--seconds", "0.5", "--out", tmp_path / "s.wav"], capsys)
    assert code == 0, err
    x, sr = sf.read(tmp_path / "s.wav", dtype="float32")
    assert len(x) == 2 * 8000 + round(0.25 * sr)
    first, second = x[:8000], x[-8000:]
    assert np.abs(first).max() > 0 and not np.allclose(first, second)
    code, _, err = run_cli(["sample", audio_run, "--seconds", "1.25", "--checkpoint", "best",
                            "--out", tmp_path / "clips"], capsys)
    assert code == 0, err
    assert [sf.info(p).frames for p in sorted((tmp_path / "clips").glob("sample_*.wav"))] == [20000]


def test_seconds_is_refused_for_images(early_run, tmp_path, capsys):
    code, _, err = run_cli(["sample", early_run, "--seconds", "1", "--out", tmp_path / "s.png"], capsys)
    assert code == 2 and "--seconds" in err and "audio" in err and len(err.strip().splitlines()) == 1


# -- SDF ----------------------------------------------------------------------------------------------------------
def test_sdf_validates_on_held_out_meshes(tmp_path, capsys):
    import trimesh
    for k, r in enumerate((0.5, 0.6, 0.7)):
        trimesh.creation.icosphere(subdivisions=3, radius=r).export(tmp_path / f"s{k}.ply")
    run = tmp_path / "run"
    code, _, err = run_cli(["fit", "sdf", "--data", tmp_path / "s0.ply", "--data", tmp_path / "s1.ply",
                            "--val", tmp_path / "s2.ply", "--out", run, "--steps", "4", "--val-every", "2", "--val-metric", "iou",
                            "--samples", "2000", "--points", "512", "--hidden", "32", "--layers", "2",
                            "--latent-dim", "8", "--quiet"], capsys)
    assert code == 0, err
    vals = [r for r in rows(run) if "val_iou" in r]
    assert [r["step"] for r in vals] == [2, 4] and all("val_chamfer_x1e3" in r and r["val_n"] == 1 for r in vals)
    best = max(vals, key=lambda r: r["val_iou"])  # the first of equals: only a strict gain counts
    assert info(run)["train_state"]["early_stop"]["best_step"] == best["step"]
    code, _, err = run_cli(["render", run, "--checkpoint", "best", "--index", "0", "--res", "16",
                            "--out", tmp_path / "r.png"], capsys)
    assert code == 0, err


def test_resume_refuses_what_would_make_another_run(early_run, tmp_path, capsys):
    """Schedule fields (--lr, --val-every) may change on --resume; the model's may not, in one line, run untouched."""
    run = tmp_path / "r"
    shutil.copytree(early_run, run)
    before = (run / "checkpoint.safetensors").read_bytes()
    code, _, err = run_cli(["fit", "images", "--out", run, "--resume", "--hidden", "8", "--val-every", "3"], capsys)
    assert code == 2 and err.count("\n") == 1 and "model.hidden cannot change" in err
    code, _, err = run_cli(["fit", "images", "--out", run, "--resume", "--set", "gon.step_size=0.5"], capsys)
    assert code == 2 and "gon.step_size cannot change" in err
    assert (run / "checkpoint.safetensors").read_bytes() == before
