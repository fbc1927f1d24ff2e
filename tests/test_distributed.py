"""Data-parallel training under torchrun (gloo on CPU) and mixed precision.

N processes must take exactly the steps one process takes with the same global batch; a run may resume with another
number of processes; a rank that dies ends the others with one line and leaves a loadable checkpoint."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from conftest import REPO, run_cli
from implicit_gon.distributed import Dist

TINY = ["--dataset", "digits", "--batch-size", "15", "--hidden", "32", "--layers", "2", "--device", "cpu", "--quiet"]
TALKING = TINY[:-1]  # without --quiet: the header and the summary line are printed (by rank 0 alone)
pytestmark = pytest.mark.xdist_group("torchrun")  # two ranks each: keep these off the other worker's core


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _torchrun(n: int, args, **kw) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}", "-m", "cli"]
    return subprocess.Popen(cmd + [str(a) for a in args], cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def _finish(p: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    _, err = p.communicate(timeout=timeout)
    return p.returncode, err


def _weights(run):
    return {k: v for k, v in load_file(str(run / "checkpoint.safetensors")).items() if k.startswith("model.")}


def _max_diff(a, b) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


def test_rows_split_a_batch_exactly():
    for n, world in [(15, 2), (64, 3), (7, 7)]:
        rows = [Dist(r, world).rows(n) for r in range(world)]
        assert [i for s in rows for i in range(n)[s]] == list(range(n))
        assert max(s.stop - s.start for s in rows) - min(s.stop - s.start for s in rows) <= 1


def test_two_processes_train_as_one(tmp_path, capsys):
    """A 2-process gloo run equals a 1-process run with the same global batch and seed, uneven split included."""
    code, err = _finish(_torchrun(2, ["fit", "images", *TALKING, "--steps", "4", "--out", tmp_path / "two"]))
    assert code == 0, err
    assert err.count("done:") == 1 and "2 processes" in err  # rank 0 alone reports
    code, _, err = run_cli(["fit", "images", *TINY, "--steps", "4", "--out", tmp_path / "one"], capsys)
    assert code == 0, err
    assert _max_diff(_weights(tmp_path / "one"), _weights(tmp_path / "two")) < 1e-5
    evals = []
    for run in ("one", "two"):
        code, out, err = run_cli(["eval", tmp_path / run, "--json", "--n", "32", "--device", "cpu"], capsys)
        evals.append(out.strip().splitlines()[-1])
    assert evals[0] == evals[1]

    # resume the 2-process run with one process: the same as 1 process all along
    code, _, err = run_cli(["fit", "images", "--resume", "--steps", "7", "--out", tmp_path / "two", "--quiet"],
                           capsys)
    assert code == 0, err
    code, _, err = run_cli(["fit", "images", "--resume", "--steps", "7", "--out", tmp_path / "one", "--quiet"],
                           capsys)
    assert code == 0, err
    assert _max_diff(_weights(tmp_path / "one"), _weights(tmp_path / "two")) < 1e-5


def _rank_pids(parent: int, rank: str) -> list[int]:
    """Processes below parent whose environment says RANK=rank (the torchrun workers)."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
            stat = open(f"/proc/{pid}/stat").read().split()
        except OSError:
            continue
        if f"RANK={rank}".encode() in env and int(stat[3]) == parent:
            out.append(int(pid))
    return out


def test_a_dead_rank_ends_the_others_cleanly(tmp_path):
    run = tmp_path / "run"
    p = _torchrun(2, ["fit", "images", *TINY, "--steps", "100000", "--set", "train.ckpt_every=3", "--out", run])
    ckpt = run / "checkpoint.safetensors"
    deadline = time.time() + 240
    while not ckpt.exists() and time.time() < deadline and p.poll() is None:
        time.sleep(0.5)
    assert ckpt.exists(), p.communicate()[1]
    victims = _rank_pids(p.pid, "1")
    assert len(victims) == 1
    os.kill(victims[0], signal.SIGKILL)
    code, err = _finish(p)
    assert code != 0
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert any("rank 0" in ln and "another rank failed" in ln for ln in lines), err
    assert "cli.py" not in err and "implicit_gon/" not in err  # no traceback of ours (torchrun reports rank 1)
    from implicit_gon import GON
    gon = GON.load(run, "cpu")  # the last checkpoint is whole
    assert gon.step > 0 and gon.step % 3 == 0


def test_term_to_the_launcher_is_a_stop_with_a_checkpoint(tmp_path):
    """A scheduler stopping torchrun: its SIGTERM reaches every rank, which stop together at a step's end; rank 0
    checkpoints that step and says so (not "another rank failed")."""
    from implicit_gon import rundir
    run = tmp_path / "run"
    p = _torchrun(2, ["fit", "images", *TINY, "--steps", "100000", "--set", "train.ckpt_every=1000",
                      "--set", "train.log_every=1", "--out", run])
    deadline = time.time() + 240
    while time.time() < deadline and p.poll() is None and \
            max([r["step"] for r in rundir.read_metrics(run / rundir.METRICS)] or [0]) < 2:
        time.sleep(0.1)
    p.send_signal(signal.SIGTERM)
    code, err = _finish(p)
    assert code != 0 and "another rank failed" not in err, err
    ours = [ln for ln in err.splitlines() if ln.startswith("error:")]
    from implicit_gon import checkpoint
    step = checkpoint.load(run)[0]["step"]
    assert any("interrupted by SIGTERM" in ln and f"(step {step})" in ln for ln in ours), err
    assert step >= 2 and step == max(r["step"] for r in rundir.read_metrics(run / rundir.METRICS))


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains(precision, tmp_path, capsys):
    run = tmp_path / precision
    code, _, err = run_cli(["fit", "images", *TINY, "--steps", "3", "--precision", precision, "--out", run], capsys)
    assert code == 0, err
    code, out, err = run_cli(["eval", run, "--json", "--n", "8", "--device", "cpu"], capsys)
    assert code == 0 and '"psnr"' in out, err


def test_fast_step_matches_reference_under_autocast():
    """The shared-origin step and plain double backward agree in bf16 to about bf16's resolution."""
    from implicit_gon.config import GONConfig, ModelConfig
    from implicit_gon.siren import Siren
    from implicit_gon.step import gon_latents
    from signals.images import grid
    torch.manual_seed(0)
    model = Siren(2, 1, ModelConfig(latent_dim=8, hidden=64, layers=3))
    coords, values = grid(8), torch.rand(5, 64, 1)
    out = {}
    for fast in (True, False):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            z = gon_latents(model, coords, values, GONConfig(fast=fast), create_graph=False)
        out[fast] = z.float()
    exact = gon_latents(model, coords, values, GONConfig(fast=True), create_graph=False)
    scale = exact.abs().max()
    assert (out[True] - out[False]).abs().max() < 0.05 * scale
    assert (out[True] - exact).abs().max() < 0.05 * scale  # bf16 stays close to float32


def test_rank_0_decides_when_to_stop(tmp_path):
    """A wall-clock budget and early stopping are judged on rank 0 and every rank leaves at the same step (a rank
    that went on alone would wait at the next all_reduce for ever)."""
    run = tmp_path / "run"
    p = _torchrun(2, ["fit", "images", *TALKING, "--steps", "100000", "--max-time", "3s", "--val-every", "5",
                      "--out", run])
    code, err = _finish(p)
    assert code == 0, err
    assert err.count("wall-clock budget") == 1 and err.count("done:") == 1, err
    from implicit_gon import GON
    gon = GON.load(run, "cpu")
    assert 0 < gon.step < 100000 and (run / "best.safetensors").is_file()


ROLLBACK_UNDER_TORCHRUN = """
import sys
sys.path.insert(0, {tests!r})
from implicit_gon.distributed import from_env, leave
from implicit_gon.train import fit
from test_checkpoint import signal, small_cfg
from test_guard import Poison
dist = from_env("cpu")
cfg = small_cfg(steps=30, ckpt_every=2, keep=3, divergence_factor=2.0, on_divergence="rollback")
gon = fit(signal(), cfg, {run!r}, progress=False, dist=dist, on_step=Poison(14, 1e4))
print("rank", dist.rank, "step", gon.step, flush=True)
leave(dist)
"""


def test_every_rank_rolls_back_to_rank_0s_checkpoint(tmp_path):
    """Two ranks poisoned alike after step 14 (whose checkpoint then diverges at its own next step): both go back
    to rank 0's choice, the kept step-12 checkpoint, once, and finish together."""
    run = tmp_path / "run"
    script = tmp_path / "rollback.py"
    script.write_text(ROLLBACK_UNDER_TORCHRUN.format(tests=str(REPO / "tests"), run=str(run)))
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                        str(script)], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert sorted(p.stdout.split("\n"))[-2:] == ["rank 0 step 30", "rank 1 step 30"], p.stdout
    events = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines() if '"rollback"' in r]
    assert [e["step"] for e in events] == [12]
