"""Mixed precision's `auto`: bf16 only where the device has it natively and, on a CPU, a probe layer shows it pays;
decided once when a run starts and kept by --resume."""
import math

import pytest

import implicit_gon.precision as precision
from implicit_gon import GON
from implicit_gon.train import train
from test_checkpoint import new_gon, signal, small_cfg
from test_schedule import Interrupt, stop_at


def fake_probe(monkeypatch, native: bool, speedup: float) -> list[int]:
    """The device's flag and the probe's ratio as given; returns the widths the probe was asked for."""
    asked = []
    monkeypatch.setattr(precision, "native_bf16", lambda device: native)
    monkeypatch.setattr(precision, "bf16_speedup", lambda width: asked.append(width) or speedup)
    return asked


@pytest.mark.parametrize("native, speedup, want, probed", [(True, 2.7, "bf16", True), (True, 1.1, "fp32", True),
                                                           (False, 2.7, "fp32", False)])
def test_auto_takes_bf16_only_where_the_device_has_it_and_the_probe_shows_it_pays(native, speedup, want, probed,
                                                                                  tmp_path, monkeypatch):
    asked = fake_probe(monkeypatch, native, speedup)
    cfg, sig = small_cfg(steps=1, precision="auto"), signal()
    train(new_gon(cfg, sig), sig, tmp_path, progress=False)
    state = GON.load(tmp_path, "cpu").train_state
    assert state["precision"] == want and state["auto_chose"] == want
    assert asked == ([cfg.model.hidden] if probed else [])  # no probe without native bf16: emulation never pays


def test_named_precisions_are_never_probed(monkeypatch):
    asked = fake_probe(monkeypatch, True, 2.7)
    assert [precision.Precision(n, "cpu").name for n in ("fp32", "bf16", "fp16")] == ["fp32", "bf16", "fp16"]
    assert asked == []


def test_a_resumed_run_keeps_what_auto_chose_whatever_the_probe_says_now(tmp_path, monkeypatch):
    cfg, sig = small_cfg(steps=4, precision="auto"), signal()
    fake_probe(monkeypatch, True, 2.7)
    with pytest.raises(Interrupt):
        train(new_gon(cfg, sig), sig, tmp_path, progress=False, on_step=stop_at(3))
    asked = fake_probe(monkeypatch, True, 0.6)  # the machine is now one where bf16 does not pay
    resumed, opt = GON.load(tmp_path, "cpu", with_optimizer=True)
    assert resumed.step == 2
    train(resumed, sig, tmp_path, optimizer_state=opt, progress=False)
    assert GON.load(tmp_path, "cpu").train_state["precision"] == "bf16" and asked == []


def test_a_run_started_in_a_named_precision_and_resumed_with_auto_is_probed(tmp_path, monkeypatch):
    cfg, sig = small_cfg(steps=4, precision="fp32"), signal()
    with pytest.raises(Interrupt):
        train(new_gon(cfg, sig), sig, tmp_path, progress=False, on_step=stop_at(3))
    asked = fake_probe(monkeypatch, True, 2.7)
    resumed, opt = GON.load(tmp_path, "cpu", with_optimizer=True)
    resumed.cfg.train.precision = "auto"
    train(resumed, sig, tmp_path, optimizer_state=opt, progress=False)
    assert GON.load(tmp_path, "cpu").train_state["precision"] == "bf16" and asked == [cfg.model.hidden]


def test_the_probe_measures_a_ratio_on_this_cpu_and_bounds_its_layer(monkeypatch):
    assert math.isfinite(ratio := precision.bf16_speedup(16, reps=1)) and ratio > 0
    shapes = []
    real = precision._time_layer
    monkeypatch.setattr(precision, "_time_layer", lambda lin, x, dtype: shapes.append(tuple(x.shape)) or
                        real(lin, x[:8], dtype))
    precision.bf16_speedup(16384, reps=1)  # the widest model a config allows: the probe stays at 1,024
    assert set(shapes) == {(precision.PROBE_ROWS, precision.PROBE_MAX_WIDTH)} and len(shapes) == 4


def test_the_probe_leaves_the_global_random_state_as_it_was():
    """Training draws from explicit generators, but a probe that moved the global state would make a run with
    `auto` differ from its --resume (which does not probe) wherever anything reads it."""
    import torch
    torch.manual_seed(3)
    before = torch.random.get_rng_state()
    precision.bf16_speedup(16, reps=1)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_an_fp16_run_resumes_bit_exactly_with_its_loss_scale(tmp_path):
    """fp16's gradient scaler decides which steps are skipped and how the loss is scaled; a resumed run that
    started it afresh took other steps than the uninterrupted one."""
    import torch
    cfg, sig = small_cfg(steps=6, precision="fp16", ckpt_every=2), signal()
    straight = new_gon(cfg, sig)
    train(straight, sig, tmp_path / "a", progress=False)
    with pytest.raises(Interrupt):
        train(new_gon(cfg, sig), sig, tmp_path / "b", progress=False, on_step=stop_at(5))
    resumed, opt = GON.load(tmp_path / "b", "cpu", with_optimizer=True)
    assert resumed.step == 4 and resumed.train_state["grad_scaler"]["scale"] > 0
    train(resumed, sig, tmp_path / "b", optimizer_state=opt, progress=False)
    for (k, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)
    assert resumed.train_state["grad_scaler"] == straight.train_state["grad_scaler"]  # its scale, growth count


@pytest.mark.parametrize("state", [{"scale": 1.0}, {"scale": float("nan"), "growth_factor": 2.0, "backoff_factor": 0.5,
                                                    "growth_interval": 2000, "_growth_tracker": 0}, [1, 2]])
def test_a_malformed_scaler_state_is_one_line(state):
    from implicit_gon.errors import GONError
    with pytest.raises(GONError, match="train_state.grad_scaler: not a gradient scaler's state"):
        precision.Precision("fp16", "cpu").load_scaler(state)
