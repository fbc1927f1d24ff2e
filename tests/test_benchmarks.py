"""The benchmark scripts: data from --data-dir or $IMPLICIT_GON_DATA with one-line errors, and the Eq. 12
baseline scored at its training scale for every held-out batch."""
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))


@pytest.mark.parametrize("script", ["step_speed.py", "time_to_quality.py", "peak_memory.py", "ddp_parity.py",
                                    "conv_vs_siren.py", "conv_batchnorm.py"])
def test_missing_data_is_one_line_naming_the_way_to_give_it(script, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "IMPLICIT_GON_DATA": str(tmp_path / "nowhere"), "HOME": str(tmp_path)}
    p = subprocess.run([sys.executable, str(REPO / "benchmarks" / script)], capture_output=True, text=True, env=env,
                       cwd=tmp_path, timeout=300)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    line, = p.stderr.strip().splitlines()
    assert "nowhere" in line and "--data-dir" in line and "IMPLICIT_GON_DATA" in line


def test_data_dir_flag_wins_over_the_environment(tmp_path, shared_data, monkeypatch):
    from common import mnist_split
    monkeypatch.setenv("IMPLICIT_GON_DATA", str(tmp_path / "nowhere"))
    assert mnist_split("test", shared_data / "mnist").shape == (1000, 28, 28, 1)


def test_eq12_latents_are_scored_at_the_training_scale_whatever_the_batch_length():
    """8 images scored alone (a batch of 8) must score as they do inside a full batch of 64 (8 copies each): the
    baseline's latents get 1/64 either way, where a .mean() over the batch gave the short batch 1/8."""
    from eq12 import ConcatSiren, eval_eq12

    from implicit_gon.config import ModelConfig
    from signals import ImageSignal
    torch.manual_seed(0)
    model = ConcatSiren(2, 1, ModelConfig(latent_dim=32, hidden=32, layers=2))
    with torch.no_grad():  # a latent that matters (as after training), so its scale shows in the PSNR
        model.net[0].linear.weight[:, 2:] *= 10
    imgs = np.random.default_rng(0).integers(0, 256, (8, 6, 6, 1), dtype=np.uint8)
    alone = eval_eq12(model, ImageSignal(imgs))["psnr"]
    in_full_batch = eval_eq12(model, ImageSignal(np.tile(imgs, (8, 1, 1, 1))))["psnr"]
    assert abs(alone - in_full_batch) < 1e-4  # a .mean() differs by 0.05 dB here


def test_time_to_quality_trains_both_for_the_budget_and_writes_the_curve(tmp_path, shared_data):
    """A 3-second budget each on real MNIST: the engine is `fit` with max_time (it stops on time, far short of
    its 5,000 steps), the baseline runs as long; both curves are scored and plotted."""
    import json
    out = tmp_path / "ttq"
    p = subprocess.run([sys.executable, str(REPO / "benchmarks" / "time_to_quality.py"), "--seconds", "3", "--marks",
                        "2", "--data-dir", str(shared_data), "--out", str(out), "--threads", "1"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert p.returncode == 0, p.stderr
    r = json.loads((out / "time_to_quality.json").read_text())
    assert 1 <= len(r["engine"]["curve"]) <= 2  # a mark a slow step outlasts is skipped (a loaded machine)
    for name in ("engine", "eq12"):
        curve = r[name]["curve"]
        assert curve and [c["seconds"] for c in curve] == sorted(c["seconds"] for c in curve)
        assert curve[-1]["seconds"] > 2.9 and 0 < r[name]["steps"] < 5000  # no upper time bound: machines vary
        assert all(5 < c["psnr"] < 40 and c["sse"] > 0 for c in curve)
    assert r["engine"]["steps_per_s"] > 0 and r["eq12"]["steps_per_s"] > 0  # which is faster is the benchmark's to say
    assert r["engine"]["precision"] in ("fp32", "bf16")  # what the MNIST config's `auto` chose here, recorded
    assert (out / "time_to_quality.png").read_bytes()[:4] == b"\x89PNG"
    assert "lead" in p.stdout and "steps/s" in p.stdout


def test_eq12_is_the_authors_initialisation_grid_and_loss():
    """benchmarks/eq12.py against the formulas of the authors' Implicit-GON.py: the first layer U(±1/fan_in) over
    coordinates and latent, every later layer (the output too) U(±sqrt(6/fan_in)/30), biases nn.Linear's
    U(±1/sqrt(fan_in)), sin(30 x) in every hidden layer and a linear output, a linspace(-1, 1) "ij" grid, and
    ((F - x) ** 2).sum(1).mean() as the loss."""
    import math

    from eq12 import ConcatSiren, authors_grid, authors_loss

    from implicit_gon.config import ModelConfig
    torch.manual_seed(0)
    model = ConcatSiren(2, 3, ModelConfig(latent_dim=32, hidden=256, layers=4))
    layers = [m.linear for m in model.net]
    assert [tuple(w.weight.shape) for w in layers] == [(256, 34), (256, 256), (256, 256), (256, 256), (3, 256)]
    bounds = [1 / 34] + [math.sqrt(6 / 256) / 30] * 4
    for lin, bound in zip(layers, bounds):
        w, b = lin.weight, lin.bias
        assert w.abs().max() <= bound and w.abs().max() > 0.98 * bound  # uniform up to the bound, not beyond
        assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05 if w.numel() > 1000 else 0.25)
        assert w.mean().abs() < 0.1 * bound
        fan = lin.in_features
        assert b.abs().max() <= 1 / math.sqrt(fan) and b.abs().max() > 0.8 / math.sqrt(fan)
    x = torch.randn(5, 34)
    h = torch.sin(30 * layers[0](x))
    assert torch.allclose(model.net[0](x), h)
    for lin in layers[1:4]:
        h = torch.sin(30 * lin(h))
    assert torch.allclose(model.net(x), layers[4](h), atol=1e-6)  # linear output, no sigmoid
    g = authors_grid(28)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, 28), torch.linspace(-1, 1, 28), indexing="ij")
    assert torch.equal(g, torch.stack([ys, xs], -1).reshape(-1, 2)) and g[0].tolist() == [-1, -1]
    assert g[1].tolist() == pytest.approx([-1, -1 + 2 / 27])  # the second pixel of the first row
    y, t = torch.rand(4, 784, 3), torch.rand(4, 784, 3)
    assert authors_loss(y, t) == pytest.approx(((y - t) ** 2).sum(1).mean().item(), rel=1e-5)
    assert authors_loss(y, t, batch=64) == pytest.approx(((y - t) ** 2).sum().item() / (64 * 3), rel=1e-5)


def test_eq12_trains_and_scores_clamped_outputs(shared_data):
    """One training step moves the authors' F; the score clamps its linear output to [0, 1] (an output of 2 on
    a white pixel costs nothing)."""
    from common import mnist_split
    from eq12 import ConcatSiren, eq12_step, eval_eq12

    from implicit_gon.config import ModelConfig
    from signals import ImageSignal
    sig = ImageSignal(mnist_split("test", shared_data / "mnist")[:64])
    torch.manual_seed(0)
    model = ConcatSiren(2, 1, ModelConfig(latent_dim=8, hidden=16, layers=2))
    before = [p.detach().clone() for p in model.parameters()]
    eq12_step(model, torch.optim.Adam(model.parameters(), 1e-4), sig, 0)
    assert all(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
    with torch.no_grad():
        model.net[-1].linear.weight.zero_()
        model.net[-1].linear.bias.fill_(2.0)  # F = 2 everywhere: clamped to 1
    r = eval_eq12(model, ImageSignal(np.full((3, 4, 4, 1), 255, np.uint8)))
    assert r["sse"] == 0 and r["psnr"] == float("inf")


def test_flops_counts_every_product_of_a_step_forward_and_backward():
    """A linear layer's forward and backward are three products of 2·B·in·out each (y, dx, dW); a gradient step
    trained through (double backward, batched products) counts as torch's own FlopCounterMode does."""
    import flops
    from torch.utils.flop_counter import FlopCounterMode
    lin = torch.nn.Linear(16, 8, bias=False)
    x = torch.randn(4, 16, requires_grad=True)
    log = flops.count(lambda: lin(x).sum().backward())
    assert log.flops == 3 * 2 * 4 * 16 * 8 and sum(log.shapes.values()) == 3
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    coords, values = torch.rand(3, 9, 2), torch.rand(3, 9, 1)

    def step():  # Eq. 12's shape of computation; z0 a non-leaf (FlopCounterMode's module hooks refuse a leaf)
        z0 = torch.zeros(3, 1, 4, requires_grad=True) * 1.0
        inner = (net(torch.cat([coords, z0.expand(3, 9, 4)], -1)) - values).square().sum()
        z = -torch.autograd.grad(inner, z0, create_graph=True)[0]
        (net(torch.cat([coords, z.expand(3, 9, 4)], -1)) - values).square().sum().backward()
    with FlopCounterMode(display=False) as ref:
        step()
    assert flops.count(step).flops == ref.get_total_flops() > 0


def test_mm_rate_replays_the_logged_products():
    import flops
    from collections import Counter
    rate = flops.mm_rate(Counter({(1, 8, 8, 8, torch.float32, (False, True)): 2,
                                  (2, 4, 8, 4, torch.float32, (True, False)): 1}), "cpu", 0.01)
    assert rate > 0 and flops.total_flops(Counter({(2, 4, 8, 4, torch.float32, (False, False)): 3})) == 3 * 2 * 2 * 4 * 8 * 4


def test_bf16_errors_compares_every_part_of_the_step(tmp_path, shared_data):
    """One batch in fp32 and bf16: every tensor of the step and every gradient gets a row per variant, and the
    variant with the step in fp32 has the step's parts exact."""
    p = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bf16_errors.py"), "--batch-size", "2",
                        "--data-dir", str(shared_data)], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert p.returncode == 0, p.stderr
    rows = [line.split() for line in p.stdout.splitlines() if line.startswith(("bf16 ", "bf16,"))]
    tensors = {r[-5] for r in rows}  # variant words, tensor, rel err, cosine, underflow, Adam flips
    assert {"r", "jac", "m", "z", "loss", "input.latent.weight", "out.weight"} <= tensors
    exact = {r[-5]: float(r[-4]) for r in rows if r[:4] == ["bf16,", "step", "in", "fp32"]}
    assert exact["z"] == 0 and exact["jac"] == 0
    assert all(0 < float(r[-4]) < 0.1 for r in rows if r[0] == "bf16" and r[1] not in ("+", "loss"))


def test_precision_seeds_pairs_each_seed_across_precisions_and_resumes(tmp_path):
    """Two seeds x fp32 and bf16 of the embedded digits: every pair scored, the table printed, and a second run
    reuses the finished runs instead of training them again."""
    cmd = [sys.executable, str(REPO / "benchmarks" / "precision_seeds.py"), "images", "--dataset", "digits",
           "--seeds", "0-1", "--steps", "3", "--out", str(tmp_path / "out")]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert p.returncode == 0, p.stderr
    import json
    res = json.loads((tmp_path / "out" / "precision_seeds.json").read_text())["results"]
    assert sorted(res) == ["0", "1"] and all(sorted(r) == ["bf16", "fp32"] for r in res.values())
    assert all(isinstance(r[q]["score"], float) and r[q]["steps"] == 3 for r in res.values() for q in r)
    assert "bf16 less fp32 per seed" in p.stdout and "0 of 2 collapsed" in p.stdout
    stamp = (tmp_path / "out" / "bf16" / "seed1" / "metrics.jsonl").stat().st_mtime_ns
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert again.returncode == 0 and again.stdout == p.stdout
    assert (tmp_path / "out" / "bf16" / "seed1" / "metrics.jsonl").stat().st_mtime_ns == stamp


def test_precision_seeds_calls_a_guard_stop_or_a_large_loss_a_collapse():
    from precision_seeds import collapsed
    ref = {"score": 20.0, "error": None}
    assert not collapsed({"score": 17.5, "error": None}, ref, "images", 3.0)
    assert collapsed({"score": 16.5, "error": None}, ref, "images", 3.0)
    assert collapsed({"score": 20.0, "error": "the loss jumped"}, ref, "images", 3.0)
    assert collapsed({"score": None, "error": None}, None, "images", 3.0)
    chamfer = {"score": 2.0, "error": None}  # lower is better: a factor, not a difference
    assert not collapsed({"score": 5.0, "error": None}, chamfer, "sdf", 3.0)
    assert collapsed({"score": 7.0, "error": None}, chamfer, "sdf", 3.0)


def test_a_signal_stops_a_seed_study_instead_of_counting_as_a_collapse(tmp_path, monkeypatch, capsys):
    """SIGTERM to precision_seeds.py or stability.py stopped only the seed in training (the fit wrote its
    checkpoint and raised Interrupted, a GONError): the study recorded a 'collapse' and went on to the next seed.
    Now the signal ends the study with the CLI's exit status, and no result is written for the interrupted seed, so
    running the study again trains it."""
    import argparse

    import precision_seeds
    import stability
    from common import run_benchmark
    from implicit_gon.errors import Interrupted

    def stopped(*args, **kwargs):
        raise Interrupted("stopped by SIGTERM at step 3; checkpoint in RUN", 143)

    monkeypatch.setattr(precision_seeds, "fit_run", stopped)
    args = argparse.Namespace(steps=5, data_dir=None, signal="images", dataset="digits", paths=[], sets=[])
    run = tmp_path / "fp32" / "seed0"
    with pytest.raises(Interrupted):
        precision_seeds.train_one(args, "fp32", 0, run)
    assert not (run / "result.json").exists()
    monkeypatch.setattr(stability, "fit", stopped)
    with pytest.raises(Interrupted):
        stability.run_seed(None, None, None, tmp_path / "seed0", 50)
    with pytest.raises(SystemExit) as e:
        run_benchmark(lambda: stopped())
    assert e.value.code == 143 and capsys.readouterr().err == "error: stopped by SIGTERM at step 3; checkpoint in RUN\n"


@pytest.mark.parametrize("script, args, owned", [
    ("stability.py", ["--steps", "4000", "--set", "train.steps=50000"], "--steps"),
    ("stability.py", ["--seeds", "0,1", "--set", "train.seed=3"], "--seeds"),
    ("precision_seeds.py", ["images", "--steps", "500", "--set", "train.steps=50000"], "--steps"),
    ("precision_seeds.py", ["images", "--steps", "5", "--set", "train.precision=bf16"], "--precisions"),
    # fields the study fixes without a flag: a per-step trace, the score at the last step
    ("stability.py", ["--steps", "40", "--set", "train.log_every=100"], "needs its own value"),
    ("precision_seeds.py", ["images", "--steps", "5", "--set", "train.val_every=1"], "needs its own value"),
])
def test_a_set_of_a_field_the_benchmark_owns_is_a_usage_error(script, args, owned, tmp_path):
    """--set is applied last, so `--steps 4000 --set train.steps=50000` trained 50,000 steps without a word; a
    field the benchmark sets from its own flag is now refused before anything is read or trained."""
    p = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args, "--out", str(tmp_path / "out")],
                       capture_output=True, text=True, cwd=tmp_path, timeout=300)
    line = p.stderr.strip().splitlines()[-1]
    assert p.returncode == 2 and "Traceback" not in p.stderr and args[-1] in line and owned in line, p.stderr
    assert not (tmp_path / "out").exists()
