"""The shipped CelebA config trains on real faces: a few dozen steps of `fit` with the config's own learning rate,
gradient-origin step size and gradient clipping (a narrower SIREN and fewer images keep it short), every loss finite
and the loss falling. The long stability runs over the whole schedule are benchmarks/stability.py, not tests."""
import json
import statistics

from conftest import run_cli


def test_celeba_config_trains_with_its_own_lr_step_and_clip(shared_data, tmp_path, capsys):
    run = tmp_path / "run"
    code, _, err = run_cli(["fit", "images", "--dataset", "celeba", "--data-dir", shared_data / "celeba", "--out", run,
                            "--steps", "60", "--batch-size", "8", "--hidden", "64", "--device", "cpu", "--quiet",
                            "--set", "train.log_every=1", "--set", "data.train_limit=8"], capsys)
    assert code == 0, err
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert len(losses) == 60 and all(isinstance(v, float) and v == v and abs(v) < float("inf") for v in losses)
    # 60 steps learn the faces' mean (loss ~15% below the start); a diverging step size or rate jumps above it
    assert statistics.median(losses[-10:]) < 0.92 * losses[0], losses


def test_stability_finds_the_jump_of_a_diverging_trace():
    import sys

    from conftest import REPO
    sys.path.insert(0, str(REPO / "benchmarks"))
    from stability import DIVERGED, max_jump, summarise
    calm = [100.0 / (1 + 0.01 * t) * (1.1 if t % 2 else 0.9) for t in range(200)]  # falling, with noise
    assert max_jump(calm, 20)[0] < 1.5
    spiked = calm[:150] + [60.0 * 20] + [60.0 * 15] * 49  # a jump to 20x the running median, then staying there
    jump, at = max_jump(spiked, 20)
    assert at == 150 and jump > DIVERGED
    s = summarise([(t + 1, v) for t, v in enumerate(spiked)] + [(201, None)], 20)
    assert not s["finite"] and s["jump_step"] == 151 and s["steps"] == 201


def test_stability_without_data_is_one_line_naming_the_way_to_give_it(tmp_path):
    import subprocess
    import sys

    from conftest import REPO
    env = {"PATH": "/usr/bin:/bin", "IMPLICIT_GON_DATA": str(tmp_path / "nowhere"), "HOME": str(tmp_path)}
    p = subprocess.run([sys.executable, str(REPO / "benchmarks" / "stability.py")], capture_output=True, text=True,
                       env=env, cwd=tmp_path, timeout=300)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    line, = p.stderr.strip().splitlines()
    assert "nowhere" in line and "--data-dir" in line and "IMPLICIT_GON_DATA" in line


def test_stability_reports_a_run_already_trained_from_its_metrics(tmp_path):
    import subprocess
    import sys

    from conftest import REPO
    run = tmp_path / "run"
    run.mkdir()
    rows = [{"step": t, "loss": 100.0 - t, "lr": 1e-4} for t in range(1, 61)]
    rows += [{"step": 61, "loss": 400.0, "lr": 1e-4}]
    rows += [{"step": 61, "val_sse": 9.0, "val_psnr": 12.5}]  # validation rows are not training losses
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    script = str(REPO / "benchmarks" / "stability.py")
    p = subprocess.run([sys.executable, script, "--runs", str(run), "--window", "10"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert p.returncode == 0, p.stderr
    # step 61's 400 over the median of steps 51-60 (44.5): a 8.99x jump
    assert "61 steps, max jump 8.99x (step 61)" in p.stdout and "held-out PSNR 12.5 dB at step 61" in p.stdout, p.stdout
    p = subprocess.run([sys.executable, script, "--runs", str(tmp_path / "none")], capture_output=True, text=True,
                       cwd=tmp_path, timeout=300)
    assert p.returncode == 1 and "Traceback" not in p.stderr and "none: no metrics.jsonl" in p.stderr, p.stderr


def test_stability_replay_leaves_the_kl_warm_up_unjudged_as_the_guard_does():
    """A gradient norm that rises 40x while the KL weight warms up, then holds: the guard judges nothing during the
    warm-up, so its replay from the warm-up's end reports no drift; from step 0 it reports the rise (40x over the
    lowest median of 25 norms, 2.7 at step 25: 14.9x)."""
    import sys

    from conftest import REPO
    sys.path.insert(0, str(REPO / "benchmarks"))
    from stability import max_drift
    from implicit_gon.guard import WINDOW, GradWatch
    warm = 300
    norms = [(t, 1.0 + 39.0 * min(1.0, t / warm)) for t in range(1, 2 * warm)]  # 1 -> 40 by step 300, then flat
    rise, at = max_drift(norms, GradWatch(0.0, {}))
    assert rise > 10 and at > WINDOW
    assert max_drift(norms, GradWatch(0.0, {}), steady_from=warm) == (1.0, None)
