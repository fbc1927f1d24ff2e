"""The divergence guard (issue 21): a run that goes non-finite or explodes stops with one line naming the step
(exit 1), or rolls back; no non-finite checkpoint is ever written (the last good one stays byte for byte), verbs
refuse one written before the guard, and metrics.jsonl stays strict JSON."""
import collections
import importlib
import json
import math
import statistics

import numpy as np
import pytest
import torch
from safetensors.torch import load as load_bytes
from safetensors.torch import save_file

from conftest import run_cli
from implicit_gon import checkpoint, rundir
from implicit_gon.checkpoint import CKPT
from implicit_gon.fsio import append_jsonl
from implicit_gon.guard import WINDOW, Diverged, GradWatch, LossWatch
from implicit_gon.api import GON
from implicit_gon.config import merge
from implicit_gon.train import fit, train
from test_checkpoint import signal, small_cfg

TINY = ["--dataset", "digits", "--hidden", "16", "--layers", "2", "--batch-size", "8", "--device", "cpu", "--quiet"]


def strict_rows(path):
    """metrics.jsonl read as strict JSON: a bare NaN or Infinity token is an error, as in any non-Python reader."""
    def refuse(token):
        raise ValueError(f"non-JSON number {token}")
    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


class Poison:
    """on_step hook: after step `at`, add `amount` to the output layer's weights and bias (NaN: the next loss is
    NaN; a large finite amount: the next loss explodes but stays finite), `times` times."""

    def __init__(self, at, amount, times=1):
        self.at, self.amount, self.times = at, amount, times

    def __call__(self, gon, seconds):
        if gon.step == self.at and self.times:
            self.times -= 1
            with torch.no_grad():
                for p in gon.model.out.parameters():
                    p.add_(self.amount)


@pytest.fixture
def saves(monkeypatch):
    """The bytes of every checkpoint.safetensors that a save completed, in order."""
    written, real = [], checkpoint.save

    def spy(run, *args, **kwargs):
        path = real(run, *args, **kwargs)
        if path.name == CKPT:
            written.append(path.read_bytes())
        return path
    monkeypatch.setattr(checkpoint, "save", spy)
    return written


def _all_finite(run):
    return all(bool(torch.isfinite(t).all()) for t in load_bytes((run / CKPT).read_bytes()).values()
               if t.is_floating_point())


@pytest.mark.parametrize("amount, needle", [(float("nan"), "loss is nan at step 6"),
                                            (1e4, "jumped to")])
def test_divergence_stops_and_keeps_the_last_checkpoint_byte_identical(tmp_path, saves, amount, needle):
    # the poisoned output bias quadruples this model's loss (the step's latents absorb much of it): factor 2
    cfg, sig = small_cfg(steps=40, ckpt_every=2, divergence_factor=2.0), signal()
    run = tmp_path / "run"
    at = 5 if math.isnan(amount) else 14  # an explosion is judged once 10 losses are known
    with pytest.raises(Diverged, match=needle) as e:
        fit(sig, cfg, run, progress=False, on_step=Poison(at, amount))
    assert f"at step {at + 1}" in str(e.value) and str(run / CKPT) in str(e.value)  # poisoned after step at
    if needle == "jumped to":  # a finite loss judged by its spread: how to judge non-finite losses only
        assert "--set train.divergence_factor=0 --set train.drift_factor=0" in str(e.value)
    if at % 2 == 0:  # the checkpoint at `at` was written after the poison: the line sends no one back to it
        assert "its very next step diverges" in str(e.value) and f"checkpoint-{at - 2:09d}" in str(e.value)
    assert saves and (run / CKPT).read_bytes() == saves[-1]  # the last good checkpoint, untouched since
    assert _all_finite(run) and checkpoint.load(run)[0]["step"] == at - at % 2
    rows = strict_rows(run / "metrics.jsonl")
    assert rows and all(r["step"] <= at for r in rows)


def test_non_finite_weights_are_never_saved(tmp_path, saves):
    """Weights that go NaN in the update of the last step (no later loss shows it) stop the run at its save."""
    cfg, sig = small_cfg(steps=3, ckpt_every=1), signal()
    run = tmp_path / "run"
    with pytest.raises(Diverged, match="after step 2, checkpoint.safetensors not written: .*holds NaN or infinity") as e:
        fit(sig, cfg, run, progress=False, on_step=Poison(2, float("nan")))
    assert "(step 1)" in str(e.value) and (run / CKPT).read_bytes() == saves[-1] and _all_finite(run)


def test_divergence_before_any_checkpoint_names_no_removed_folder(tmp_path):
    cfg, sig = small_cfg(steps=40, ckpt_every=100), signal()
    run = tmp_path / "run"
    with pytest.raises(Diverged, match="nothing is kept") as e:
        fit(sig, cfg, run, progress=False, on_step=Poison(3, float("nan")))
    assert str(run) not in str(e.value) and not run.exists()


def test_rollback_halves_the_learning_rate_and_finishes(tmp_path):
    cfg, sig = small_cfg(steps=14, ckpt_every=4, on_divergence="rollback"), signal()
    run = tmp_path / "run"
    gon = fit(sig, cfg, run, progress=False, on_step=Poison(6, float("nan")))
    assert gon.step == 14 and _all_finite(run)
    rows = strict_rows(run / "metrics.jsonl")
    events = [r for r in rows if r.get("event") == "rollback"]
    assert len(events) == 1 and events[0]["step"] == 4 and events[0]["lr_scale"] == 0.5
    losses = [r for r in rows if "loss" in r]
    assert [r["step"] for r in losses] == list(range(1, 15))  # each step logged once: the lost ones were cut
    lr = {r["step"]: r["lr"] for r in losses}
    assert lr[8] == pytest.approx(lr[2] / 2)
    assert checkpoint.load(run)[0]["train_state"]["lr_scale"] == 0.5  # --resume keeps the halved rate


def test_rollback_without_a_checkpoint_stops(tmp_path):
    cfg, sig = small_cfg(steps=20, ckpt_every=100, on_divergence="rollback"), signal()
    with pytest.raises(Diverged, match="nothing is kept"):
        fit(sig, cfg, tmp_path / "run", progress=False, on_step=Poison(3, float("nan")))


def test_loss_watch_judges_against_the_recent_median():
    watch = LossWatch(10.0)
    assert all(watch.check(v, i) is None for i, v in enumerate([100.0, 50, 200] + [5.0] * 9))  # a falling start
    assert watch.check(49.0, 12) is None and "jumped" in watch.check(51.0, 13)
    assert "nan" in watch.check(float("nan"), 14) and "inf" in LossWatch(0).check(float("inf"), 0)
    assert LossWatch(0).check(1e30, 0) is None  # factor 0: non-finite losses only


def test_metrics_rows_are_strict_json(tmp_path):
    path = tmp_path / "m.jsonl"
    append_jsonl(path, {"step": 1, "loss": float("nan"), "val": {"sse": float("inf")}, "lr": 0.5})
    assert strict_rows(path) == [{"step": 1, "loss": None, "val": {"sse": None}, "lr": 0.5}]


def test_issue_command_does_not_end_with_exit_0(tmp_path, capsys):
    """`--lr 1 --set model.w0_first=1e6 --set model.w0_hidden=1e6 --steps 3` ended 'done ... sse nan', exit 0."""
    for extra in ([], ["--set", "train.ckpt_every=1"]):
        run = tmp_path / f"run{len(extra)}"
        code, _, err = run_cli(["fit", "images", *TINY, "--out", run, "--lr", "1", "--set", "model.w0_first=1e6",
                                "--set", "model.w0_hidden=1e6", "--steps", "3", "--set", "train.log_every=1",
                                *extra], capsys)
        lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
        assert not run.exists() or all(_finite_row(r) for r in strict_rows(run / "metrics.jsonl"))
        assert code == 1 and len(lines) == 1 and "diverged" in lines[0] and "step" in lines[0], err
        assert "Traceback" not in err
        if (run / CKPT).exists():
            assert _all_finite(run) and str(run) in lines[0]
        else:
            assert not run.exists() and str(run) not in lines[0]


def _finite_row(row) -> bool:
    return all(v is None or not isinstance(v, float) or math.isfinite(v) for v in row.values())


def _poisoned_run(tmp_path, capsys):
    """A run whose checkpoint holds a NaN weight under a valid checksum (as written before the guard)."""
    run = tmp_path / "run"
    code, _, err = run_cli(["fit", "images", *TINY, "--out", run, "--steps", "2"], capsys)
    assert code == 0, err
    meta, tensors = checkpoint._read(run / CKPT)
    name = next(k for k in tensors if k.startswith("model."))
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] = float("nan")
    meta["sha256"] = checkpoint.checksum(tensors, meta)
    save_file(tensors, str(run / CKPT), metadata=meta)
    return run, name


def test_verbs_refuse_non_finite_weights(tmp_path, capsys):
    run, name = _poisoned_run(tmp_path, capsys)
    for cmd in (["eval", run, "--n", "4", "--device", "cpu"],
                ["render", run, "--n", "1", "--out", tmp_path / "r.png"],
                ["sample", run, "--n", "1", "--out", tmp_path / "s.png"],
                ["interpolate", run, "--pairs", "1", "--frames", "2", "--out", tmp_path / "i.png"],
                ["fit", "images", "--out", run, "--resume", "--steps", "4", "--quiet"]):
        code, _, err = run_cli(cmd, capsys)
        lines = err.strip().splitlines()
        assert code == 1 and len(lines) == 1 and name in lines[0] and "NaN" in lines[0], (cmd, err)
    assert not list(tmp_path.glob("*.png"))
    assert np.isnan(checkpoint._read(run / CKPT)[1][name].view(-1)[0].item())  # refused, not altered


def test_loss_watch_stops_a_slow_rise_that_no_jump_shows():
    """CelebA seed 1's kind of blow-up (docs/celeba.md): the loss climbs a few percent a step, never 10x its recent
    median, until the median of the last 25 is over drift_factor x the lowest such median of the run."""
    watch = LossWatch(10.0, 4.0)
    falling = [100.0 / (1 + 0.05 * t) for t in range(200)]  # down to ~9.2: the lowest median is recorded on the way
    assert all(watch.check(v, t) is None for t, v in enumerate(falling))
    assert watch.lowest == pytest.approx(statistics.median(falling[-25:])) and watch.lowest_step == 199
    why, t, v = None, 200, falling[-1]
    while why is None:
        v *= 1.05  # 5% a step: never a jump
        why, t = watch.check(v, t), t + 1
    lowest = watch.lowest  # the first rising step or two still lower the median (its oldest loss leaves the window)
    assert "rose to" in why and f"at step {t - 1}" in why and "drift_factor" in why
    assert f"its lowest {lowest:.4g} (step {watch.lowest_step})" in why and 199 <= watch.lowest_step < 215
    assert float(why.split("rose to ")[1].split()[0]) > 4 * lowest  # both figures named, the first over 4x the second
    assert LossWatch(10.0, 0.0).check(1e6, 0) is None  # drift_factor 0: off


def test_loss_watch_state_survives_json_and_a_warm_up_is_not_judged():
    watch = LossWatch(10.0, 4.0)
    for t in range(40):
        watch.check(10.0 + t % 3, t)
    again = LossWatch(10.0, 4.0, json.loads(json.dumps(watch.state())))
    assert again.state() == watch.state() and again.lowest_step == 24  # the window first full at step 24
    # while the objective changes (a KL warm-up), a rising loss is neither judged nor the lowest median
    ramp = LossWatch(10.0, 4.0)
    assert all(ramp.check(1.0 + 0.2 * t, t, steady=False) is None for t in range(100))
    assert ramp.lowest is None and ramp.check(20.0, 100) is None and ramp.lowest == statistics.median(ramp.recent)


def test_healthy_noise_never_trips_the_slow_criterion():
    """Per-step losses with log-normal noise (sigma 0.4: a healthy run's max jump over its median stays under 6x here,
    shipped configs measure 1.3-1.6x) over 20,000 steps, flat or falling: the median never reaches 4x its lowest."""
    rng = np.random.default_rng(0)
    noise = np.exp(rng.normal(0, 0.4, 20000))
    for trend in (np.ones(20000), 100 / (1 + 0.01 * np.arange(20000))):
        watch = LossWatch(10.0, 4.0)
        assert all(watch.check(float(v), t) is None for t, v in enumerate(trend * noise))


class Growing:
    """The objective with its loss multiplied by 1.1 per call from call `start` on: Adam's steps hardly change (they
    are invariant to the loss's scale), so training goes on as before while the loss rises 10% a step, never a jump."""

    def __init__(self, objective, start):
        self.objective, self.start, self.calls = objective, start, 0

    def __call__(self, *args, **kwargs):
        loss, parts = self.objective(*args, **kwargs)
        self.calls += 1
        return loss * 1.1 ** max(0, self.calls - self.start), parts


def _blown_up_fit(tmp_path, capsys, monkeypatch, make_objective):
    """`fit` through the CLI (300 steps, a checkpoint every 10) with the objective wrapped by make_objective from
    call 30 on: (the run, its one error line), after checking that it exited 1 with exactly that line."""
    train_module = importlib.import_module("implicit_gon.train")  # the module (the package exports train())
    monkeypatch.setattr(train_module, "objective", make_objective(train_module.objective, 30))
    run = tmp_path / "run"
    code, _, err = run_cli(["fit", "images", *TINY, "--out", run, "--steps", "300", "--ckpt-every", "10",
                            "--set", "train.log_every=1"], capsys)
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert code == 1 and len(lines) == 1 and "Traceback" not in err, err
    return run, lines[0]


def test_a_slow_blow_up_stops_with_one_line_and_keeps_the_last_checkpoint(tmp_path, capsys, saves, monkeypatch):
    run, line = _blown_up_fit(tmp_path, capsys, monkeypatch, Growing)
    assert "diverged: the median of the last 25 losses rose to" in line and "train.drift_factor" in line
    assert str(run / CKPT) in line and saves and (run / CKPT).read_bytes() == saves[-1] and _all_finite(run)
    rows = strict_rows(run / "metrics.jsonl")
    assert rows and all(_finite_row(r) for r in rows) and rows[-1]["step"] < 300
    state = checkpoint.load(run)[0]["train_state"]["guard"]  # the checkpoint's guard: its own window, lowest median
    assert len(state["recent"]) == 25 and state["lowest"] > 0


def _blow_up_until_rollback(monkeypatch, wrapper, start: int):
    """Train with the objective wrapped in `wrapper` (a blow-up from step `start`) until the first rollback, which
    takes the cause away, as a halved rate can."""
    train_module = importlib.import_module("implicit_gon.train")  # the module (the package exports train())
    wrapped = wrapper(train_module.objective, start)
    monkeypatch.setattr(train_module, "objective", wrapped)
    real = train_module._roll_back

    def roll_back(*args, **kwargs):
        wrapped.start = 10**9
        return real(*args, **kwargs)
    monkeypatch.setattr(train_module, "_roll_back", roll_back)


def test_a_slow_blow_up_rolls_back_and_the_run_finishes(tmp_path, monkeypatch):
    _blow_up_until_rollback(monkeypatch, Growing, 30)
    cfg, sig = small_cfg(steps=90, ckpt_every=10, on_divergence="rollback"), signal()
    run = tmp_path / "run"
    gon = fit(sig, cfg, run, progress=False)
    assert gon.step == 90 and _all_finite(run)
    rows = strict_rows(run / "metrics.jsonl")
    events = [r for r in rows if r.get("event") == "rollback"]
    # one rollback: the watch went back to the checkpoint's window (a window of the lost steps would trip again)
    assert len(events) == 1 and "drift_factor" in events[0]["diverged"] and events[0]["step"] % 10 == 0
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, 91))


def test_the_guard_state_resumes_as_if_never_stopped(tmp_path):
    cfg, sig = small_cfg(steps=60, ckpt_every=100), signal()
    straight = fit(sig, cfg, tmp_path / "a", progress=False)
    fit(sig, merge(cfg, {"train": {"steps": 35}}), tmp_path / "b", progress=False)
    resumed, opt = GON.load(tmp_path / "b", "cpu", with_optimizer=True)
    resumed.cfg = cfg
    train(resumed, sig, tmp_path / "b", optimizer_state=opt, progress=False)
    assert resumed.train_state["guard"] == straight.train_state["guard"]
    assert checkpoint.load(tmp_path / "b")[0]["train_state"]["guard"] == straight.train_state["guard"]


@pytest.mark.parametrize("value", ["0.5", "1"])
def test_a_factor_at_or_below_1_is_refused(tmp_path, capsys, value):
    for key in ("divergence_factor", "drift_factor", "grad_factor"):
        code, _, err = run_cli(["fit", "images", *TINY, "--out", tmp_path / "r", "--set", f"train.{key}={value}"],
                               capsys)
        assert code == 2 and f"train.{key} = {value}: must be above 1" in err and len(err.strip().splitlines()) == 1


def test_a_run_left_worse_than_it_started_ends_with_a_warning(tmp_path, capsys, monkeypatch):
    """No jump and (with drift_factor 0) no slow criterion: the loss is held at twice the mean of the first 5 from
    call 30 on (scaled, so Adam's steps hardly change). Exit 0 with one warning line, also a metrics.jsonl row."""
    train_module = importlib.import_module("implicit_gon.train")  # the module (the package exports train())
    real, first = train_module.objective, []

    def doubled(*args, **kwargs):
        loss, parts = real(*args, **kwargs)
        first.append(loss.item())
        return (loss * (2 * sum(first[:5]) / 5 / loss.item()) if len(first) > 30 else loss), parts
    monkeypatch.setattr(train_module, "objective", doubled)
    run = tmp_path / "run"
    code, _, err = run_cli(["fit", "images", *TINY, "--out", run, "--steps", "60", "--set", "train.drift_factor=0"],
                           capsys)
    warnings = [ln for ln in err.splitlines() if ln.startswith("warning:")]
    assert code == 0 and len(warnings) == 1 and "2.0x above where it started" in warnings[0], err
    assert f"mean of the first 5 {sum(first[:5]) / 5:.4g}" in warnings[0]
    rows = strict_rows(run / "metrics.jsonl")
    assert [r["warning"] for r in rows if r.get("event") == "warning"] == [warnings[0][len("warning: "):]]


def test_worse_than_start_needs_a_full_window_and_a_steady_first_loss():
    watch = LossWatch(10.0, 0.0)
    for t in range(24):
        watch.check(30.0, t, steady=t >= 5)  # a warm-up of 5 steps: the first steady loss is step 5's
    assert watch.first == 30.0 and watch.worse_than_start() is None  # 24 losses: no verdict
    watch.check(46.0, 24)
    assert watch.worse_than_start() is None  # median 30: not worse
    healthy = LossWatch(10.0, 4.0, {"recent": [5.0] * 25, "first": 100.0})  # a checkpoint's state
    assert healthy.worse_than_start() is None and LossWatch(10.0, 4.0, {"recent": [151.0] * 25, "first": 100.0}) \
        .worse_than_start().startswith("the training loss ended 1.5x above")


def test_where_a_run_started_is_its_first_losses_mean_not_one_lucky_batch():
    """Mostly-silent audio: a first batch of faint noise alone (1,000x below one with tone) is no start to judge the
    end by; the run fell 10x from its opening mean and is not 'worse'. The opening survives a checkpoint."""
    watch = LossWatch(0.0, 0.0)
    for t, loss in enumerate([6e-5, 0.05, 0.02, 6e-5, 0.03]):
        watch.check(loss, t)
        if t == 2:  # resumed mid-opening: the state carries the losses seen so far
            watch = LossWatch(0.0, 0.0, json.loads(json.dumps(watch.state())))
    assert watch.first == pytest.approx((6e-5 * 2 + 0.1) / 5) and watch.state()["opening"] == []
    for t in range(5, 30):
        watch.check([6e-5, 2e-3][t % 2], t)  # its last window's median 2e-3: 33x its first loss, 0.1x its opening
    assert watch.worse_than_start() is None
    assert LossWatch(0.0, 0.0, {"recent": [0.04] * 25, "first": watch.first}).worse_than_start() is not None


def test_grad_watch_stops_a_rising_gradient_norm_and_names_both_medians():
    """The blow-up the loss does not show (docs/robustness.md: CelebA's gradient norm 1.5e4 -> 6.6e8 at a flat
    loss): the median of the last 25 norms over grad_factor x the lowest such median of the run."""
    watch = GradWatch(100.0, {})
    assert all(watch.check(50.0 + t % 7, t) is None for t in range(100))  # noisy but flat: the lowest is recorded
    lowest, why, t, norm = watch.lowest, None, 100, 50.0
    while why is None:
        norm *= 1.3
        why, t = watch.check(norm, t), t + 1
    assert f"at step {t - 1}" in why and "gradient norms rose to" in why and "train.grad_factor" in why
    assert float(why.split("rose to ")[1].split()[0]) > 100 * lowest and f"its lowest {lowest:.4g}" in why
    assert GradWatch(0.0, {}).check(1e30, 0) is None  # 0: off
    assert "nan at step 3" in GradWatch(0.0, {}).check(float("nan"), 3)  # non-finite: always, unless fp16 skips it
    assert GradWatch(100.0, {}).check(float("inf"), 3, overflow_ok=True) is None


def test_grad_watch_skips_a_warm_up_and_its_state_travels_with_the_loss_watch():
    ramp = GradWatch(2.0, {})
    assert all(ramp.check(1.0 + t, t, steady=False) is None for t in range(100)) and not ramp.recent
    watch = LossWatch(10.0, 4.0, grad=100.0)
    for t in range(40):
        watch.check(10.0 + t % 3, t)
        watch.grads.check(5.0 + t % 4, t)
    again = LossWatch(10.0, 4.0, json.loads(json.dumps(watch.state())), grad=100.0)
    assert again.state() == watch.state() and again.grads.lowest_step == WINDOW - 1
    assert LossWatch(10.0, 4.0, {"recent": [1.0] * 5}).grads.recent == collections.deque()  # a guard saved before


class SteeperGradients:
    """The objective with the same loss value and its gradient multiplied by 1.1 per call from call `start` on
    (loss + (k - 1)(loss - loss.detach())): Adam's steps hardly change and the loss does not show it."""

    def __init__(self, objective, start):
        self.objective, self.start, self.calls = objective, start, 0

    def __call__(self, *args, **kwargs):
        loss, parts = self.objective(*args, **kwargs)
        self.calls += 1
        k = 1.1 ** max(0, self.calls - self.start)
        return loss + (k - 1) * (loss - loss.detach()), parts


def test_a_gradient_blow_up_stops_with_one_line_and_keeps_the_last_checkpoint(tmp_path, capsys, saves, monkeypatch):
    run, line = _blown_up_fit(tmp_path, capsys, monkeypatch, SteeperGradients)
    assert "diverged: the median of the last 25 gradient norms rose to" in line, line
    assert "train.grad_factor" in line and str(run / CKPT) in line
    assert saves and (run / CKPT).read_bytes() == saves[-1] and _all_finite(run)
    rows = [r for r in strict_rows(run / "metrics.jsonl") if "loss" in r]
    assert rows and rows[-1]["step"] < 300 and all(r["grad_norm"] > 0 for r in rows)
    assert rows[-1]["grad_norm"] > 100 * min(r["grad_norm"] for r in rows)  # the logged norms show the rise


def test_a_gradient_blow_up_rolls_back_and_the_run_finishes(tmp_path, monkeypatch):
    _blow_up_until_rollback(monkeypatch, SteeperGradients, 30)
    cfg, sig = small_cfg(steps=150, ckpt_every=10, on_divergence="rollback"), signal()
    gon = fit(sig, cfg, tmp_path / "run", progress=False)
    rows = strict_rows(tmp_path / "run" / "metrics.jsonl")
    events = [r for r in rows if r.get("event") == "rollback"]
    assert gon.step == 150 and len(events) == 1 and "grad_factor" in events[0]["diverged"]
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, 151))


def test_a_step_far_above_the_runs_lowest_median_is_unsettled():
    """The window's median lags a blow-up by steps; the step's own loss or gradient norm does not."""
    watch = LossWatch(10.0, 4.0, grad=100.0)
    for t in range(1, 31):
        watch.check(10.0, t)
        watch.grads.check(50.0, t)
    assert watch.unsettled() is None
    watch.grads.check(8.5e17, 31)  # the median of 25 norms is still 50: no criterion fires
    assert "gradient norm 8.5e+17 is over 100x the run's lowest median 50" in watch.unsettled()
    watch.grads.check(50.0, 32)
    for t in range(33, 58):  # the loss's median rises to 3x its lowest: under drift_factor's 4x
        assert watch.check(30.0, t) is None
    assert watch.check(120.0, 58) is None  # 4x the recent median: no jump; 12x the run's lowest median
    assert "loss 120 is over 10x the run's lowest median 10" in watch.unsettled()
    assert LossWatch(0.0, 4.0).unsettled() is None  # nothing known yet


def test_an_unsettled_state_is_not_checkpointed_until_a_step_that_is_not(tmp_path, saves, monkeypatch):
    """A checkpoint due at an unsettled step waits for the first settled one (and says so in metrics.jsonl): the
    last checkpoint on disk is a state the guard would roll back to."""
    real = LossWatch.unsettled
    at = {}

    def unsettled(self):  # step 4 looks unsettled; the checkpoint it was due waits for step 5
        return "its gradient norm 1e+17 is over 100x" if at.get("step") == 4 else real(self)

    monkeypatch.setattr(LossWatch, "unsettled", unsettled)
    cfg, sig = small_cfg(steps=8, ckpt_every=2, keep=10), signal()
    fit(sig, cfg, tmp_path, progress=False, on_step=lambda gon, s: at.update(step=gon.step))
    steps = sorted(p.name for p in tmp_path.glob("checkpoint*.safetensors"))
    assert steps == ["checkpoint-000000002.safetensors", "checkpoint-000000005.safetensors",
                     "checkpoint-000000006.safetensors", "checkpoint.safetensors"]
    rows = rundir.read_metrics(tmp_path / rundir.METRICS)
    assert [r["step"] for r in rows if r.get("event") == "checkpoint_postponed"] == [4]


def test_a_blow_up_from_the_second_step_is_unsettled_and_stops_when_the_first_window_fills():
    """The hostile check's `--lr 10` (gradient norm 22, then 1e16 from step 2): no healthy median was ever known,
    so the first value is the reference, and the first full window is judged against it too."""
    watch = LossWatch(10.0, 4.0, grad=100.0)
    watch.check(5.0, 1)
    assert watch.grads.check(22.0, 1) is None and watch.unsettled() is None
    watch.check(5.0, 2)
    assert watch.grads.check(1e16, 2) is None  # one value is no median: not a divergence yet ...
    assert "gradient norm 1e+16 is over 100x its first value 22" in watch.unsettled()  # ... nor good
    for t in range(3, WINDOW):
        watch.check(5.0, t)
        assert watch.grads.check(1e16, t) is None
    why = watch.grads.check(1e16, WINDOW)
    assert why and "over 100x its first value 22 (step 1)" in why and "grad_factor" in why


def test_gradient_norms_that_fall_then_settle_never_trip_the_first_window():
    """Healthy first windows have medians 0.5-11x their first norm (every config kind, 30 steps logged each),
    whatever their noise: the smallest norm is no reference (SDF's 0.77 among 3-20). The criterion is 100x."""
    watch = GradWatch(100.0, {})
    noisy = [18.8, 18.5, 20.3, 15.0, 7.6, 20.2, 7.6, 8.4, 17.4, 0.05, 8.9, 3.3, 12.8, 7.8, 8.5, 0.01, 12.7]
    norms = noisy + [0.01 if t % 9 == 0 else 8.0 + 5 * (t % 4) for t in range(300)]  # tiny draws all along
    assert all(watch.check(n, t) is None for t, n in enumerate(norms, 1)) and watch.lowest is not None
    falling = GradWatch(100.0, {})  # CelebA-like: 3,460 at step 1, then 1,000-5,000
    norms = [3460.0] + [3000.0 - 80 * t for t in range(WINDOW)] + [1000.0 * (1 + (t % 5)) for t in range(300)]
    assert all(falling.check(n, t) is None for t, n in enumerate(norms, 1)) and falling.lowest is not None


def _bad_checkpoint_run(tmp_path, on_divergence):
    """A run whose checkpoint at step 14 holds weights shifted far off (finite; written after the poison): step
    15's loss explodes whatever the learning rate. Checkpoints every 2 steps, 3 kept; factor 2 as above."""
    cfg = small_cfg(steps=30, ckpt_every=2, keep=3, divergence_factor=2.0, on_divergence=on_divergence)
    return cfg, signal(), tmp_path / "run", Poison(14, 1e4)


def test_a_rollback_never_returns_to_a_checkpoint_whose_own_next_step_diverges(tmp_path):
    """Halving the rate cannot help a checkpoint whose very next step diverges (its loss and gradient are computed
    before any update): the rollback goes to the kept checkpoint before it, once, and the run finishes."""
    cfg, sig, run, poison = _bad_checkpoint_run(tmp_path, "rollback")
    gon = fit(sig, cfg, run, progress=False, on_step=poison)
    events = [r for r in strict_rows(run / "metrics.jsonl") if r.get("event") == "rollback"]
    assert gon.step == 30 and _all_finite(run) and [e["step"] for e in events] == [12]


def test_a_stop_at_a_checkpoints_own_next_step_names_the_earlier_one(tmp_path):
    cfg, sig, run, poison = _bad_checkpoint_run(tmp_path, "stop")
    with pytest.raises(Diverged) as e:
        fit(sig, cfg, run, progress=False, on_step=poison)
    line = str(e.value)
    assert "at step 15" in line and f"{run / CKPT} (step 14) is untouched, but its very next step diverges" in line
    assert str(run / "checkpoint-000000012.safetensors") in line and checkpoint.load(run)[0]["step"] == 14
    gon, opt = GON.load(run, "cpu", with_optimizer=True)  # resumed with a tenth of the rate: the same line
    gon.cfg = merge(cfg, {"train": {"lr": cfg.train.lr / 10}})
    with pytest.raises(Diverged, match="its very next step diverges"):
        train(gon, sig, run, optimizer_state=opt, progress=False)


def test_batches_of_silence_are_no_scale_to_judge_sound_by():
    """A clip that is mostly silence: batches of it cost ~1e-36, those with sound ~0.02 (the hostile check's 20 s
    clip with 0.3 s of tone was stopped at its first batch with sound, on six seeds of six)."""
    rng = np.random.default_rng(0)
    watch = LossWatch(10.0, 4.0, grad=100.0)
    for t in range(1, 400):
        sound = rng.random() < 0.15
        assert watch.check(0.02 * (1 + rng.random()) if sound else 1e-36 * rng.random(), t) is None, t
        assert watch.grads.check(5.0 * (1 + rng.random()) if sound else 0.0, t) is None, t
        assert watch.unsettled() is None, t
    assert watch.worse_than_start() is None  # its first batch may be silence: no scale to be worse than
    watch = LossWatch(10.0, 4.0)  # where every batch is silent the jump criterion still needs no scale to keep off
    assert all(watch.check(1e-36, t) is None for t in range(1, 40))
    big = LossWatch(10.0, 4.0)
    assert all(big.check(5.0 + t % 3, t) is None for t in range(1, 40)) and "jumped" in big.check(80.0, 40)


def test_rollbacks_spent_on_an_earlier_checkpoint_name_that_one_as_the_good_one(tmp_path):
    """The poison comes back at step 14 after every rollback: the run goes back to step 12 (the checkpoint at 14
    diverges at its own next step) until the rollbacks are spent, and the stop line sends the user to step 12's
    file, not to the last checkpoint, which was judged broken."""
    cfg, sig, run, _ = _bad_checkpoint_run(tmp_path, "rollback")
    with pytest.raises(Diverged) as e:
        fit(sig, cfg, run, progress=False, on_step=Poison(14, 1e4, times=100))
    line = str(e.value)
    assert f"the last good checkpoint is {run / 'checkpoint-000000012.safetensors'} (step 12); copy it over" in line
    events = [r for r in strict_rows(run / "metrics.jsonl") if r.get("event") == "rollback"]
    assert [r["step"] for r in events] == [12] * 8 and checkpoint.load(run)[0]["step"] == 14
