"""The divergence guard (issue 21): a run that goes non-finite or explodes stops with one line naming the step
(exit 1), or rolls back; no non-finite checkpoint is ever written (the last good one stays byte for byte), verbs
refuse one written before the guard, and metrics.jsonl stays strict JSON."""
import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load as load_bytes
from safetensors.torch import save_file

from conftest import run_cli
from implicit_gon import checkpoint, rundir
from implicit_gon.checkpoint import CKPT
from implicit_gon.fsio import append_jsonl
from implicit_gon.guard import Diverged, LossWatch
from implicit_gon.train import fit
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


@pytest.mark.parametrize("amount, needle", [(float("nan"), "loss is nan at step 5"),
                                            (1e4, "jumped to")])
def test_divergence_stops_and_keeps_the_last_checkpoint_byte_identical(tmp_path, saves, amount, needle):
    # the poisoned output bias quadruples this model's loss (the step's latents absorb much of it): factor 2
    cfg, sig = small_cfg(steps=40, ckpt_every=2, divergence_factor=2.0), signal()
    run = tmp_path / "run"
    at = 5 if math.isnan(amount) else 14  # an explosion is judged once 10 losses are known
    with pytest.raises(Diverged, match=needle) as e:
        fit(sig, cfg, run, progress=False, on_step=Poison(at, amount))
    assert f"step {at}" in str(e.value) and str(run / CKPT) in str(e.value)
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
