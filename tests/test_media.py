"""Outputs in the format their extension names, refused extensions, labelled comparison grids, plain progress
lines, and help text for config flags."""
import io

import imageio.v3 as iio
import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from implicit_gon import media
from implicit_gon.errors import GONError


def digits(n=6, size=12, c=1):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, size, size, c), dtype=np.uint8)


@pytest.mark.parametrize("ext,fmt", [("png", "PNG"), ("jpg", "JPEG"), ("jpeg", "JPEG"), ("webp", "WEBP"),
                                     ("gif", "GIF")])
def test_pictures_are_written_in_the_format_their_extension_names(ext, fmt, tmp_path):
    a = digits(1, 20, 3)
    media.save_grid(a, tmp_path / f"x.{ext}")
    im = Image.open(tmp_path / f"x.{ext}")
    assert im.format == fmt and im.size == (20, 20)
    if fmt == "PNG":  # lossless: the very pixels
        assert np.array_equal(np.asarray(im), a[0])


@pytest.mark.parametrize("ext", ["mp4", "webm", "gif"])
def test_videos_are_written_in_the_format_their_extension_names(ext, tmp_path):
    frames = digits(5, 16, 1)
    media.write_video(frames, tmp_path / f"v.{ext}", fps=5)
    head = (tmp_path / f"v.{ext}").read_bytes()[:12]
    magic = {"mp4": lambda h: h[4:8] == b"ftyp", "webm": lambda h: h[:4] == b"\x1a\x45\xdf\xa3",
             "gif": lambda h: h[:4] == b"GIF8"}[ext]
    assert magic(head)
    assert iio.imread(tmp_path / f"v.{ext}").shape[:3] == (5, 16, 16)


@pytest.mark.parametrize("ext,fmt", [("wav", "WAV"), ("flac", "FLAC"), ("ogg", "OGG")])
def test_sound_is_written_in_the_format_its_extension_names(ext, fmt, tmp_path):
    x = (0.5 * np.sin(np.arange(8000) / 5))[:, None]
    media.write_audio(x, 8000, tmp_path / f"a.{ext}")
    info = sf.info(tmp_path / f"a.{ext}")
    assert info.format == fmt and info.samplerate == 8000 and info.frames == 8000


@pytest.mark.parametrize("name,kinds", [("r.bmp", (media.IMAGE,)), ("x.webm", (media.IMAGE,)),
                                        ("a.mp3", (media.AUDIO,)), ("noext", (media.VIDEO,)),
                                        ("v.png", (media.VIDEO,))])
def test_unwritable_extensions_are_refused_in_one_line(name, kinds, tmp_path):
    with pytest.raises(GONError) as e:
        media.check_out(tmp_path / name, *kinds)
    msg = str(e.value)
    assert name in msg and "use" in msg and "\n" not in msg


def test_a_folder_is_accepted_only_where_asked(tmp_path):
    assert media.check_out(tmp_path / "frames", media.VIDEO, folder=True) == tmp_path / "frames"
    with pytest.raises(GONError):
        media.check_out(tmp_path / "frames", media.VIDEO)


def test_writers_refuse_before_writing(tmp_path):
    with pytest.raises(GONError):
        media.save_grid(digits(), tmp_path / "g.tiff")
    with pytest.raises(GONError):
        media.write_audio(np.zeros((10, 1)), 8000, tmp_path / "a.mp3")
    assert list(tmp_path.iterdir()) == []


def test_compare_grid_keeps_each_sample_in_its_column_and_draws_labels():
    a, b = digits(3, 16, 1), 255 - digits(3, 16, 1)
    pic = media.compare_grid([("original", a), ("one step", b)], pad=2)
    label_w = pic.shape[1] - 3 * (16 + 2) - 2
    assert pic.shape[0] == 2 * (16 + 2) + 2 and label_w > 20
    # the first image of each row sits right after the label column
    assert np.array_equal(pic[2:18, label_w + 2:label_w + 18], a[0])
    assert np.array_equal(pic[20:36, label_w + 2:label_w + 18], b[0])
    assert (pic[:, :label_w] < 128).any()  # the labels are drawn (black on white)


def test_compare_grid_wraps_into_blocks_with_every_row():
    a = digits(10, 8, 3)
    pic = media.compare_grid([("x", a), ("y", a)], cols=4)
    assert pic.ndim == 3 and pic.shape[2] == 3
    blocks = 3  # 10 samples, 4 per block
    assert pic.shape[0] >= blocks * 2 * 8


def test_plain_progress_writes_a_line_every_few_steps():
    from implicit_gon.progress import LINES, PlainProgress, progress_bar
    out = io.StringIO()
    bar = progress_bar(1000, 0, True, out)  # a StringIO is no terminal
    assert isinstance(bar, PlainProgress)
    for _ in range(1000):
        bar.update(1)
        bar.set_postfix(loss="0.1")
    lines = out.getvalue().splitlines()
    assert len(lines) == LINES + 1 and lines[-1] == "step 1000/1000: loss 0.1"
    assert lines[0] == "step 1/1000: loss 0.1"  # at once, not after a twentieth of the run
    quiet = io.StringIO()
    bar = progress_bar(10, 0, False, quiet)
    bar.update(10)
    bar.set_postfix(loss="1")
    assert quiet.getvalue() == ""


def test_plain_progress_writes_at_least_every_line_s_seconds():
    """A slow run (here 7 s a step, 1000 steps: the step count alone would wait 350 s) writes a line after its
    first step and then at least every LINE_S seconds."""
    from implicit_gon.progress import LINE_S, PlainProgress
    now, out = [0.0], io.StringIO()
    bar = PlainProgress(1000, 0, True, out, clock=lambda: now[0])
    for _ in range(20):
        now[0] += 7.0
        bar.update(1)
        bar.set_postfix(loss="1")
    steps = [int(ln.split()[1].split("/")[0]) for ln in out.getvalue().splitlines()]
    assert steps[0] == 1 and len(steps) >= 140 // LINE_S
    assert all(7 * (b - a) <= LINE_S + 7 for a, b in zip(steps, steps[1:]))


def test_eta_from_rate_and_budget():
    from implicit_gon.progress import duration, eta
    assert eta(10, 90, 5.0) == 45.0  # 0.5 s a step, 90 to go
    assert eta(10, 90, 5.0, max_time=20.0) == 15.0  # the budget ends first
    assert eta(0, 90, 0.0) is None and duration(None) == "?"
    assert (duration(45), duration(185), duration(7500)) == ("45s", "3m05s", "2h05m")


def test_work_bar_is_silent_when_quick_and_writes_lines_when_slow(monkeypatch):
    """Off a terminal, decoding and downloads write nothing when quick (an error stays one line) and a line per
    PlainWork.EVERY_S seconds when slow, ending on the total."""
    from implicit_gon import progress
    quick = io.StringIO()
    with progress.work_bar(297, "decoding digits test", "img", True, quick) as bar:
        bar.update(297)
    assert quick.getvalue() == ""
    now = [0.0]
    monkeypatch.setattr(progress.PlainWork, "EVERY_S", 30.0)
    slow = io.StringIO()
    with progress.work_bar(4, "decoding celeba train", "img", True, slow) as bar:
        bar._clock, bar._last = (lambda: now[0]), 0.0
        for _ in range(4):
            now[0] += 20.0  # 20 s an image: a line once 30 s have passed since the last one
            bar.update(1)
    assert slow.getvalue().splitlines() == ["decoding celeba train: 2/4 img", "decoding celeba train: 4/4 img"]


def test_every_fit_flag_that_sets_a_config_field_has_its_docstring():
    from implicit_gon.config import flag_keys
    from implicit_gon.config_help import field_docs
    docs = field_docs()
    assert all(key in docs for key in flag_keys().values()), set(flag_keys().values()) - set(docs)
    assert docs["train.steps"] == "Number of optimiser steps."


def test_a_notebook_gets_a_tqdm_bar(monkeypatch):
    from tqdm import tqdm

    from implicit_gon import progress
    assert not progress._in_notebook()  # pytest is no Jupyter kernel
    monkeypatch.setattr(progress, "_in_notebook", lambda: True)
    bar = progress.progress_bar(10, 0, True, io.StringIO())
    assert isinstance(bar, tqdm)  # tqdm.auto's class, a widget where ipywidgets is installed
    bar.close()
    assert isinstance(progress.progress_bar(10, 0, False), progress.PlainProgress)  # --quiet stays quiet
