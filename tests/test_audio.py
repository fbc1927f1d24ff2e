"""Audio: windowing and re-joining, resampling, a short fit on a tone, the real clips, the CLI and its errors."""
import json
import re

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import erase_flac_length, run_cli
from implicit_gon.errors import DataError
from signals.audio import AudioSignal, join_windows, read_clip, time_grid, window_starts


def tone(freq, sr, seconds, amp=0.5):
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t))[:, None].astype(np.float32)


def peak_freq(x, sr):
    spec = np.abs(np.fft.rfft(x[:, 0] * np.hanning(len(x))))
    return np.fft.rfftfreq(len(x), 1 / sr)[spec.argmax()]


def test_window_starts_cover_every_sample():
    starts = window_starts(1000, 300, 150)
    assert starts[0] == 0 and starts[-1] + 300 == 1000
    covered = np.zeros(1000, bool)
    for s in starts:
        covered[s:s + 300] = True
    assert covered.all() and window_starts(299, 300, 150) == []


@pytest.mark.parametrize("n", [16000, 16123])
def test_split_and_join_round_trip_is_exact_with_identity_network(n):
    """Replace the network by the identity on samples: re-joined windows reproduce the clip exactly."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
    sig = AudioSignal([x], 16000, window=0.1, hop=0.03)
    idx, starts = sig.clip_windows(0)
    L = sig.length
    grid = time_grid(L)[:, 0]

    def identity(ws, t):  # look the samples up at their coordinates
        pos = torch.round((t[:, 0] + 1) / 2 * L - 0.5).long()
        assert torch.allclose(grid[pos], t[:, 0], atol=1e-6)
        return sig.windows[idx[ws]][:, pos]
    out = join_windows(identity, starts, L, n, 16000, 16000)
    assert out.shape == (n, 1)
    torch.testing.assert_close(out, torch.from_numpy(x), rtol=0, atol=1e-6)


def test_oversampled_batches_are_the_band_limited_signal_between_samples():
    """data.oversample U: training points on a U-times finer grid carry the band-limited signal's values there."""
    sr, f1, f2 = 16000, 440.0, 5000.0
    n = np.arange(8000)
    x = (0.3 * np.sin(2 * np.pi * f1 * n / sr) + 0.2 * np.sin(2 * np.pi * f2 * n / sr + 1))[:, None]
    sig = AudioSignal([x.astype(np.float32)], sr, window=0.016, hop=None, oversample=3)
    b = sig.batch(torch.tensor([7, 20]), 0.5, torch.Generator().manual_seed(0), "cpu")
    # the step encodes samples, as rendering does: half of them, on the sample grid
    assert b.values.shape == (2, 128, 1) and b.scale == 2.0
    grid_pos = ((b.coords[:, 0].double() + 1) / 2 * sig.length - 0.5)
    assert torch.allclose(grid_pos, grid_pos.round(), atol=1e-3)
    torch.testing.assert_close(b.values, sig.windows[[7, 20]][:, grid_pos.round().long()])
    q = b.query  # the outer loss: as many points, anywhere in time
    assert q.values.shape == (2, 128, 1) and q.scale == 2.0
    pos = ((q.coords[:, 0].double() + 1) / 2 * sig.length - 0.5)  # in input samples, multiples of 1/3
    assert torch.allclose(pos * 3, (pos * 3).round(), atol=1e-3) and not torch.allclose(pos, pos.round(), atol=1e-3)
    for row, w in enumerate([7, 20]):
        t = (sig.index[w][1] + pos) / sr
        true = 0.3 * torch.sin(2 * np.pi * f1 * t) + 0.2 * torch.sin(2 * np.pi * f2 * t + 1)
        torch.testing.assert_close(q.values[row, :, 0].double(), true, atol=1e-4, rtol=0)
    assert AudioSignal([x.astype(np.float32)], sr, 0.016, None).batch(torch.tensor([7]), 0.5, torch.Generator(),
                                                                      "cpu").query is None
    full = sig.full(torch.tensor([7]), "cpu")  # encoding and evaluation stay on the samples
    torch.testing.assert_close(full.values, sig.windows[[7]])


def test_spectral_match_is_perfect_for_the_same_signal_at_another_rate():
    from signals.audio import spectral_match
    rng = np.random.default_rng(0)
    x = rng.standard_normal(16000).astype(np.float32) * 0.1
    import soxr
    up = soxr.resample(x, 16000, 48000, quality="VHQ")
    m = spectral_match(x, 16000, up, 48000)
    assert m["band_hz"] == [[0, 2000], [2000, 4000], [4000, 6000], [6000, 7600]]
    assert max(m["lsd_db"][:3]) < 0.01 and m["lsd_db"][3] < 1 and min(m["snr_db"]) > 25
    low = soxr.resample(soxr.resample(x, 16000, 4000, quality="VHQ"), 4000, 48000, quality="VHQ")
    m = spectral_match(x, 16000, low, 48000)  # everything above 2 kHz lost
    assert m["snr_db"][0] > 10 and max(m["snr_db"][1:]) < 1 and min(m["lsd_db"][1:]) > 10


def test_join_at_a_higher_rate_keeps_duration_and_tone():
    x = tone(440, 8000, 1.0)
    sig = AudioSignal([x], 8000, window=0.1, hop=None)
    idx, starts = sig.clip_windows(0)
    # a 'network' that knows the tone: value at window coordinate t of window w
    def render(ws, t):
        sec = torch.tensor(starts, dtype=torch.float64)[ws, None] / 8000 + ((t[:, 0] + 1) / 2 * sig.length - 0.5) / 8000  # (G, M)
        return (0.5 * torch.sin(2 * np.pi * 440 * sec.double())).float()[..., None]
    for rate in (24000, 22050):  # an integer ratio (one batch of windows) and not
        out = join_windows(render, starts, sig.length, len(x), 8000, rate)
        assert out.shape[0] == rate and abs(peak_freq(out.numpy(), rate) - 440) < 2
        t = torch.arange(rate, dtype=torch.float64) / rate  # the exact tone everywhere, seams included
        torch.testing.assert_close(out[:, 0], (0.5 * torch.sin(2 * np.pi * 440 * t)).float(), atol=1e-4, rtol=0)


def test_resampling_keeps_a_tones_frequency(tmp_path):
    sf.write(tmp_path / "t.wav", tone(1000, 44100, 0.5), 44100)
    y = read_clip(tmp_path / "t.wav", 16000)
    assert y.shape == (8000, 1) and abs(peak_freq(y, 16000) - 1000) < 3
    assert abs(np.abs(y).max() - 0.5) < 0.02  # band-limited, not decimated: amplitude kept


def test_a_flac_without_its_length_reads_the_same_samples(tmp_path):
    """The FLAC format allows a STREAMINFO of 0 samples; libsndfile then reports 2^63 - 1 frames, which the memory
    check from the header refused, and soundfile's own read fails after the first block."""
    x = (0.5 * np.sin(np.arange(200_003) / 7.0)).astype(np.float32)[:, None]  # over three decoding blocks
    sf.write(tmp_path / "a.flac", x, 16000, "PCM_16")
    want = read_clip(tmp_path / "a.flac", 16000)
    erase_flac_length(tmp_path / "a.flac")
    assert sf.info(tmp_path / "a.flac").frames > 1 << 62
    got = read_clip(tmp_path / "a.flac", 16000)
    assert got.shape == (200_003, 1) and np.array_equal(got, want)


def _set_flac_length(path, n: int) -> None:
    b = bytearray(path.read_bytes())
    v = (int.from_bytes(b[21:26], "big") & ~((1 << 36) - 1)) | n  # the low 36 bits of bytes 21-25
    b[21:26] = v.to_bytes(5, "big")
    path.write_bytes(bytes(b))


@pytest.mark.parametrize("case,needle", [
    ("short header", "the header declares 100 samples; the stream holds 48,000 (truncated or corrupt)"),
    ("cut", "decoding stopped after"), ("cut, no length", "decoding stopped after"),
    ("ID3 tag, short header", "the header declares 100 samples; the stream holds 48,000")])
def test_a_flac_whose_stream_disagrees_with_its_header_is_refused(case, needle, tmp_path):
    """libsndfile trusts STREAMINFO's length: one declaring 100 of 48,000 samples trained on 100 (99.8% dropped);
    a stream cut in half with no length in its header trained on the first 20,480 samples."""
    p = tmp_path / "a.flac"
    sf.write(p, (0.5 * np.sin(np.arange(48_000) / 7.0)).astype(np.float32), 16000, "PCM_16")
    if case.endswith("short header"):
        _set_flac_length(p, 100)
        if case.startswith("ID3"):  # libsndfile skips the tag and trusts the header behind it
            p.write_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x0a" + bytes(10) + p.read_bytes())
    else:
        if case == "cut, no length":
            erase_flac_length(p)
        p.write_bytes(p.read_bytes()[:p.stat().st_size // 2])
    with pytest.raises(DataError, match=re.escape(f"{p}: {needle}")):
        read_clip(p, 16000)


@pytest.mark.parametrize("rate,needle", [(0, "at least 100"), (16000.5, "an integer"), (10**9, "at most 384000")])
def test_read_clip_takes_the_rates_a_config_allows(rate, needle, tmp_path):
    """0 was soxr's bare ValueError; a rate is checked by data.sample_rate's own range."""
    from implicit_gon.errors import UsageError
    sf.write(tmp_path / "a.wav", np.zeros(100, np.float32), 16000)
    with pytest.raises(UsageError, match=f"read_clip sample_rate = {rate}: must be {needle}"):
        read_clip(tmp_path / "a.wav", rate)


def test_short_fit_on_a_pure_tone_reaches_high_snr(tmp_path):
    from implicit_gon import GON
    from implicit_gon.config import resolve
    from implicit_gon.train import train
    from signals.audio import evaluate
    cfg = resolve("audio", "default", None, {"train.steps": 150, "train.device": "cpu", "model.hidden": 128})
    sig = AudioSignal([tone(440, 16000, 1.0)], 16000, cfg.data.window, None)
    torch.manual_seed(0)
    gon = GON(cfg, {**sig.meta(), "coord_dim": 1, "out_dim": 1}, "cpu")
    train(gon, sig, tmp_path, progress=False)
    assert evaluate(gon, sig)["snr_db"] > 18  # 23 dB measured with the default config; silence is 0 dB


@pytest.mark.parametrize("held", [True, False])
def test_eval_without_data_names_the_clips_it_scored(shared_data, tmp_path, capsys, held):
    """Held-out clips when the run has them (as image eval scores the test split), else the training clips, said so;
    each named with its index in the order the run holds them. Two short clips keep it to a few seconds."""
    a, b = (shared_data / "audio" / n for n in ("cmu_arctic_us_axb_a0005.wav", "cmu_arctic_us_axb_a0004.wav"))
    run = tmp_path / "run"
    code, _, err = run_cli(["fit", "audio", a, *(["--val", b] if held else [b]), "--out", run, "--steps", "1",
                            "--batch-size", "4", "--hidden", "16", "--layers", "2", "--quiet"], capsys)
    assert code == 0, err
    code, out, err = run_cli(["eval", run, "--json"], capsys)
    res = json.loads(out.strip().splitlines()[-1])
    assert code == 0, err
    if held:
        assert res["scored"] == "held-out clips" and res["clips"] == 1 and res["clip_names"] == f"0: {b.name}"
    else:  # files given one by one stay in the order given
        assert res["scored"].startswith("training clips") and res["clips"] == 2
        assert res["clip_names"] == f"0: {a.name}, 1: {b.name}"


def test_real_clips_load_window_and_fit_two_steps(shared_data, tmp_path, capsys):
    clips = sorted((shared_data / "audio").iterdir())
    assert {p.suffix for p in clips} >= {".wav", ".ogg"}
    run = tmp_path / "run"
    code, _, err = run_cli(["fit", "audio", "--data", shared_data / "audio", "--out", run, "--steps", "2",
                            "--batch-size", "4", "--hidden", "32", "--layers", "2", "--quiet"], capsys)
    assert code == 0, err
    meta = json.loads((run / "config.json").read_text())["meta"]
    assert meta["sample_rate"] == 16000 and meta["length"] == 64  # 4 ms windows
    wav = shared_data / "audio" / "cmu_arctic_us_axb_a0005.wav"
    code, out, err = run_cli(["eval", run, "--data", wav, "--json", "--plot", tmp_path / "spec.png"], capsys)
    res = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and res["clips"] == 1 and "snr_db" in res and (tmp_path / "spec.png").stat().st_size > 0
    assert res["scored"] == "the clips given" and res["clip_names"] == f"0: {wav.name}"
    code, _, err = run_cli(["render", run, "--input", wav, "--sample-rate", "48000", "--out", tmp_path / "r.wav"],
                           capsys)
    assert code == 0, err
    info = sf.info(tmp_path / "r.wav")
    assert info.samplerate == 48000 and abs(info.duration - sf.info(wav).duration) < 1e-3
    code, _, err = run_cli(["render", run, "--input", wav, "--hop", "0.5", "--out", tmp_path / "h.wav"], capsys)
    assert code == 2 and "--hop 0.5" in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "h.wav").exists()
    ogg = shared_data / "audio" / "456440__inspectorj__bird-whistling-robin-single-13.ogg"
    code, _, err = run_cli(["interpolate", run, "--from", wav, "--to", ogg, "--frames", "4",
                            "--out", tmp_path / "m.wav"], capsys)
    gap = 4000  # 0.25 s of silence between frames or clips
    n = round(min(sf.info(wav).duration, sf.info(ogg).duration) * 16000)  # whole clips, cut to the shorter one
    assert code == 0 and sf.info(tmp_path / "m.wav").frames == 4 * n + 3 * gap
    code, _, err = run_cli(["sample", run, "--n", "3", "--seconds", "0.1", "--out", tmp_path / "s.wav"], capsys)
    assert code == 0 and sf.info(tmp_path / "s.wav").frames == 3 * 1600 + 2 * gap
    code, _, err = run_cli(["sample", run, "--seconds", "0.001", "--out", tmp_path / "t.wav"], capsys)
    assert code == 2 and "shorter than one window of this run (0.004 s)" in err  # was lengthened silently
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "t.wav").exists()
    from implicit_gon import GON, GONError
    gon = GON.load(run, "cpu")
    with pytest.raises(GONError, match=r"an array of shape \(16000,\): an audio run reads clip files"):
        gon.encode(np.zeros(16000, np.float32))
    with pytest.raises(GONError, match="audio file = 0: give a path"):
        gon.interpolate(0, 1, frames=3)


@pytest.mark.parametrize("case", ["missing", "unreadable", "short"])
def test_bad_clips_give_one_line_errors(case, tmp_path, capsys):
    p = tmp_path / "clip.wav"
    if case == "unreadable":
        p.write_bytes(b"RIFF....WAVEfmt garbage")
    elif case == "short":
        sf.write(p, tone(440, 16000, 0.003), 16000)  # shorter than the 4 ms default window
    code, _, err = run_cli(["fit", "audio", "--data", p, "--out", tmp_path / "r", "--steps", "1"], capsys)
    expected = {"missing": "file not found", "unreadable": "not a readable audio file",
                "short": "shorter than one window"}[case]
    assert code == 1 and "Traceback" not in err and str(p) in err and expected in err


def test_audio_command_line_mistakes_exit_2(shared_data, tmp_path, capsys):
    """A --hop beyond the run's window and two clips where a verb takes one are the command line's (exit 2), not a
    bad file's (1)."""
    a, b = shared_data / "audio" / "cmu_arctic_us_aew_a0001.wav", shared_data / "audio" / "gt_bach.wav"
    run = tmp_path / "run"
    code, _, err = run_cli(["fit", "audio", a, "--out", run, "--steps", "1", "--hidden", "16", "--layers", "2",
                            "--quiet"], capsys)
    assert code == 0, err
    for args, needle in ((["render", run, "--input", a, "--hop", "1", "--out", tmp_path / "o.wav"],
                          "--hop 1.0: must be above 0 and at most the run's window"),
                         (["encode", run, a, b, "--out", tmp_path / "z.npy"],
                          "an audio run encodes one clip at a time (2 given)"),
                         (["render", run, "--input", a, "--input", b, "--out", tmp_path / "o.wav"],
                          "render --input: an audio run renders one file at a time (2 given)")):
        code, _, err = run_cli(args, capsys)
        assert code == 2 and err.count("\n") == 1 and needle in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
