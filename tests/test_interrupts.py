"""Work is never lost (issue 21): SIGINT, SIGTERM and SIGHUP checkpoint a fit at the step they arrive in (also
before its first periodic checkpoint) and exit 130 / 143 / 129 with one line; --resume then gives the very weights
an uninterrupted run gives. train.keep bounds the checkpoints on disk; train.ckpt_minutes checkpoints on a clock.
A process stopped or killed while writing leaves no temporary file after the next use of the folder."""
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import REPO
from implicit_gon import checkpoint, rundir
from implicit_gon.checkpoint import CKPT
from implicit_gon.train import fit
from test_checkpoint import signal as image_signal
from test_checkpoint import small_cfg

STEPS = 60
FIT = ["fit", "images", "--dataset", "digits", "--hidden", "16", "--layers", "2", "--batch-size", "8",
       "--points", "0.25", "--device", "cpu", "--quiet", "--set", "train.log_every=1",
       "--set", "train.ckpt_every=1000"]  # no periodic checkpoint: the signal's is the only one


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _default_signals() -> None:
    """In the child: the stop signals at their defaults, as in a terminal. The test runner may have inherited them
    ignored (a shell's background job ignores SIGINT, nohup SIGHUP), and an ignored signal rightly stays ignored."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def _cli(args, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import cli; cli.main()", *map(str, args)], cwd=REPO,
                            env=_env(), stderr=subprocess.PIPE, text=True, preexec_fn=_default_signals, **kw)


def _last_step(run) -> int:
    rows = rundir.read_metrics(run / rundir.METRICS)
    return max((r["step"] for r in rows), default=0)


def _wait(cond, proc, what, timeout=240):
    t0 = time.time()
    while not cond():
        assert proc.poll() is None, f"exited {proc.returncode} before {what}: {proc.stderr.read()}"
        assert time.time() - t0 < timeout, f"timed out waiting for {what}"
        time.sleep(0.02)


def _weights(run):
    return load_file(str(run / CKPT))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run = tmp_path_factory.mktemp("whole") / "run"
    p = _cli([*FIT, "--steps", STEPS, "--out", run])
    assert p.wait(300) == 0, p.stderr.read()
    return _weights(run)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_signal_checkpoints_at_its_step_and_resumes_bit_exactly(tmp_path, uninterrupted, sig, code):
    run = tmp_path / "run"
    p = _cli([*FIT, "--steps", STEPS, "--out", run])
    try:
        target = random.randint(2, 20)
        _wait(lambda: _last_step(run) >= target, p, f"step {target}")
        p.send_signal(sig)
        err = p.stderr.read()
        assert p.wait(60) == code, err
    finally:
        p.kill()
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("fit images:")]  # the header line
    step = checkpoint.load(run)[0]["step"]
    assert len(lines) == 1 and "Traceback" not in err and signal.Signals(sig).name in lines[0] and f"(step {step})" in lines[0], err
    assert 2 <= step < STEPS and step == _last_step(run)  # the checkpoint is at the step the signal arrived in
    assert not [f for f in os.listdir(run) if ".tmp" in f]
    p = _cli(["fit", "images", "--out", run, "--resume", "--quiet"])
    assert p.wait(300) == 0, p.stderr.read()
    resumed = _weights(run)
    assert resumed.keys() == uninterrupted.keys()
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in resumed), "resumed run differs"


def test_stop_before_any_step_keeps_nothing_and_says_so(tmp_path):
    """A stop while the data load (before any step): no checkpoint to write; the folder goes, and is not named."""
    run = tmp_path / "run"
    p = _cli([*FIT, "--steps", STEPS, "--out", run, "--set", "data.train_limit=1500"])
    try:
        _wait(lambda: (run / ".lock").exists(), p, "the run to start")
        p.send_signal(signal.SIGTERM)
        err = p.stderr.read()
        code = p.wait(60)
    finally:
        p.kill()
    lines = err.strip().splitlines()
    assert code == 143 and len(lines) <= 2 and "SIGTERM" in lines[-1], err
    if "nothing was kept" in lines[-1]:
        assert not run.exists() and str(run) not in lines[-1]
    else:  # the signal came after the first step: it checkpointed
        assert checkpoint.load(run)[0]["step"] >= 1


@pytest.mark.parametrize("where", ["pwrite", "_own_files"])
def test_a_stop_while_the_lock_is_taken_leaves_nothing(tmp_path, monkeypatch, where):
    """A stop that lands after RUN/.lock exists but before the run is touched (the window a test under load hit):
    the one line that says nothing was kept, no folder, no lock held."""
    run, real = tmp_path / "run", getattr(os if where == "pwrite" else rundir, where)

    def stopped(*a):
        real(*a)
        raise KeyboardInterrupt
    monkeypatch.setattr(os if where == "pwrite" else rundir, where, stopped)
    with pytest.raises(rundir.Interrupted, match="nothing was kept"):
        with rundir.session(run, 0):
            pass
    monkeypatch.undo()
    assert not run.exists() and not rundir._HELD
    with rundir.session(run, 0):  # the lock was released: the folder can be held again at once
        pass


def _count(run):
    return len(list(run.glob("checkpoint*.safetensors")))


def test_keep_bounds_the_checkpoints_on_disk(tmp_path):
    run, seen = tmp_path / "run", []
    cfg = small_cfg(steps=9, ckpt_every=1, keep=3, val_every=2)
    fit(image_signal(), cfg, run, image_signal(seed=1), progress=False,
        on_step=lambda gon, s: seen.append(_count(run)))
    assert max(seen) <= 3 and _count(run) == 3 and (run / "best.safetensors").is_file()
    kept = [checkpoint.load(p)[0]["step"] for p in checkpoint.previous(run)]
    assert kept == [7, 8] and checkpoint.load(run)[0]["step"] == 9
    single = tmp_path / "single"
    fit(image_signal(), small_cfg(steps=4, ckpt_every=1, keep=1), single, progress=False)
    assert _count(single) == 1


def test_ckpt_minutes_checkpoints_on_the_clock(tmp_path):
    """A fake clock: 60 s a step. ckpt_minutes 2.5 checkpoints at steps 3 and 6 although ckpt_every is 1000."""
    now, run, steps = [0.0], tmp_path / "run", []

    def on_step(gon, seconds):
        now[0] += 60.0
        steps.append(checkpoint.load(run)[0]["step"] if (run / CKPT).exists() else None)

    cfg = small_cfg(steps=8, ckpt_every=1000, ckpt_minutes=2.5, keep=5)
    fit(image_signal(), cfg, run, progress=False, on_step=on_step, clock=lambda: now[0])
    assert [checkpoint.load(p)[0]["step"] for p in checkpoint.previous(run)] == [3, 6]
    assert steps == [None, None, None, 3, 3, 3, 6, 6]  # on_step of a step runs before that step's save


# -- temporary files -------------------------------------------------------------------------------------------------
WRITER = """
import sys, time
import numpy as np
from implicit_gon import interrupts
from implicit_gon.fsio import atomic_path
from signals.datasets.cache import cached_array
interrupts.install()
folder, what = sys.argv[1], sys.argv[2]
def slow(arr):
    arr[:] = 1
    print("writing", flush=True)
    time.sleep(120)
try:
    if what == "cache":
        cached_array(__import__("pathlib").Path(folder), "digits-train", "k", (50, 8, 8, 1), slow)
    else:
        with atomic_path(folder + "/movie.mp4") as tmp:
            tmp.write_bytes(b"frames")
            slow(np.zeros(1))
except interrupts.Stop as e:  # as cli.main ends
    sys.exit(e.code)
"""


def _temps(folder):
    return [f for f in os.listdir(folder) if ".tmp" in f]


@pytest.mark.parametrize("what", ["cache", "video"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL])
def test_a_stopped_or_killed_writer_leaves_no_temp_file(tmp_path, what, sig):
    folder = tmp_path / "out"
    folder.mkdir()
    p = subprocess.Popen([sys.executable, "-c", WRITER, str(folder), what], cwd=REPO, env=_env(),
                         stdout=subprocess.PIPE, text=True, preexec_fn=_default_signals)
    try:
        assert p.stdout.readline() == "writing\n"
        assert _temps(folder)  # the write is under way
        p.send_signal(sig)
        assert p.wait(60) == (-9 if sig == signal.SIGKILL else 128 + sig)
    finally:
        p.kill()
    if sig != signal.SIGKILL:
        assert _temps(folder) == []  # the signal unwound the write: its temporary file is gone
        return
    assert len(_temps(folder)) == 1  # kill -9 runs nothing: the next writer in the folder removes it
    from signals.datasets.cache import cached_array
    cached_array(folder, "digits-train", "k", (2, 8, 8, 1), lambda a: a.fill(0))
    assert _temps(folder) == []


def test_a_cache_folder_is_swept_when_a_cache_is_read_not_only_built(tmp_path, monkeypatch):
    """A killed builder's temporary file stayed while later runs only read their caches from the folder."""
    from implicit_gon import fsio
    from signals.datasets.cache import cached_array
    cached_array(tmp_path, "digits-train", "k", (2, 8, 8, 1), lambda a: a.fill(0))
    dead = tmp_path / ".mnist-train-j.npy.999999999.abcd1234.tmp.npy"  # beyond pid_max: no such process
    dead.write_bytes(b"partial")
    monkeypatch.setattr(fsio, "_SWEPT", set())  # a later process: each sweeps a folder once
    cached_array(tmp_path, "digits-train", "k", (2, 8, 8, 1), lambda a: pytest.fail("the cache was rebuilt"))
    assert not dead.exists()


def test_a_live_writers_temp_file_is_left_alone(tmp_path):
    from implicit_gon.fsio import sweep_stale
    mine = tmp_path / f".x.png.{os.getpid()}.abcd1234.tmp.png"
    dead = tmp_path / ".x.png.999999999.abcd1234.tmp.png"  # beyond pid_max: no such process
    mine.write_bytes(b"")
    dead.write_bytes(b"")
    assert sweep_stale(tmp_path) == [dead] and mine.exists()


def _python(code: str) -> subprocess.CompletedProcess:
    """A child Python running `code` in the repository, its output captured."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)


def test_a_stop_after_the_command_ended_is_recorded_not_raised():
    """torchrun sends SIGTERM to a rank that is already reporting "another rank failed": once main has its
    command's result (or error), a stop signal must not raise again and print a traceback over the line."""
    code = ("import os, signal\nfrom implicit_gon import interrupts\ninterrupts.install()\n"
            "interrupts.settle()\nos.kill(os.getpid(), signal.SIGTERM)\nos.kill(os.getpid(), signal.SIGINT)\n"
            "print('reported', interrupts.pending() == signal.SIGTERM)\n")
    p = _python(code)
    assert p.returncode == 0 and p.stdout.strip() == "reported True" and "Traceback" not in p.stderr, p.stderr


def test_a_stop_delivered_twice_is_one_stop_and_a_later_one_stops_at_once():
    """Ctrl-C reaches every process of the terminal's group and a wrapper may forward it again milliseconds later:
    that echo, inside a training step, must not cut the step (and its checkpoint) short. A signal after
    REPEAT_GRACE seconds is the user insisting, and stops at once."""
    code = ("import os, signal, time\nfrom implicit_gon import interrupts\ninterrupts.install()\n"
            "def step(pause):\n"
            "    with interrupts.deferred():\n"
            "        os.kill(os.getpid(), signal.SIGINT); os.kill(os.getpid(), signal.SIGTERM); time.sleep(pause)\n"
            "        os.kill(os.getpid(), signal.SIGINT)\n"
            "        print('step ended', flush=True)\n"
            "for pause in (0.0, interrupts.REPEAT_GRACE + 0.2):\n"
            "    try:\n        step(pause)\n"
            "    except interrupts.Stop as e:\n        print(pause > 0, e.name, flush=True)\n")
    p = _python(code)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert p.stdout.split("\n")[:3] == ["step ended", "False SIGINT", "True SIGINT"]  # the first signal's stop


def test_a_stop_swallowed_inside_unswallowed_is_raised_when_it_ends():
    """trimesh reads a mesh's assets inside `except BaseException`: a SIGTERM there was swallowed (the fit trained
    on to exit 0). Held instead (deferred), a stop waited out minutes of trimesh's work, or was lost behind the
    error the load then raised. unswallowed() lets it through at once and raises it again if it was caught."""
    code = ("import os, signal\nfrom implicit_gon import interrupts\ninterrupts.install()\n"
            "for swallow in (True, False):\n"
            "    try:\n"
            "        with interrupts.unswallowed():\n"
            "            try:\n                os.kill(os.getpid(), signal.SIGTERM)\n"
            "            except BaseException:\n"
            "                if not swallow:\n                    raise\n"
            "                print('swallowed', flush=True)\n"
            "            print('went on', flush=True)\n"
            "    except interrupts.Stop as e:\n        print(swallow, e.name, flush=True)\n"
            "    interrupts._state['raised'] = None  # the next round's stop is a new one\n")
    p = _python(code)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert p.stdout.split("\n")[:4] == ["swallowed", "went on", "True SIGTERM", "False SIGTERM"], p.stdout


def test_a_second_stop_while_the_first_unwinds_is_the_same_stop():
    """Outside a step (a stop during the imports, say) the first signal raises at once; a second within
    REPEAT_GRACE must not raise again inside the first one's handling (once in twenty tries it printed a traceback
    and exited 1), and one after it stops anew."""
    code = ("import os, signal, time\nfrom implicit_gon import interrupts\ninterrupts.install()\n"
            "for pause in (0.0, interrupts.REPEAT_GRACE + 0.2):\n"
            "    time.sleep(pause)\n"
            "    try:\n        os.kill(os.getpid(), signal.SIGTERM); time.sleep(1)\n"
            "    except interrupts.Stop as e:\n"
            "        os.kill(os.getpid(), signal.SIGINT); print(e.name, 'handled', flush=True)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120,
                       preexec_fn=_default_signals)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert p.stdout.split("\n")[:1] == ["SIGTERM handled"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_stop_in_a_verb_exits_with_its_own_status(sig, tmp_path, capsys, monkeypatch):
    """click wraps a KeyboardInterrupt raised in a command in its Abort: the status and the line must still be
    the signal's (143 for SIGTERM, 129 for SIGHUP), not Ctrl-C's 130."""
    from conftest import run_cli
    import cli

    def stopped(*a, **k):  # the signal arrives while the verb works
        os.kill(os.getpid(), sig)
        time.sleep(5)

    monkeypatch.setattr(cli, "verb", stopped)
    before = signal.signal(sig, signal.SIG_DFL)  # under nohup SIGHUP is ignored, and the CLI rightly leaves it so
    try:
        code, _, err = run_cli(["eval", tmp_path], capsys)
    finally:
        signal.signal(sig, before)
    assert code == 128 + sig and err.strip().splitlines()[-1] == f"error: interrupted by {sig.name}", err


def test_an_error_a_stop_caused_is_reported_as_the_stop(capsys, monkeypatch):
    """A SIGTERM that lands while torch is being imported leaves it half made, and the next use of it fails with
    an AttributeError or ImportError: that is the stop's doing, so one line and 143, not a traceback."""
    from conftest import run_cli
    from implicit_gon import interrupts
    import cli

    def half_imported(*a, **k):
        interrupts._state["raised"] = signal.SIGTERM  # the stop was raised inside an import and swallowed there
        raise AttributeError("module 'torch' has no attribute 'jit'")

    monkeypatch.setattr(cli, "verb", half_imported)
    code, _, err = run_cli(["eval", "RUN"], capsys)
    assert code == 143 and err.strip() == "error: interrupted by SIGTERM" and "Traceback" not in err


# -- the test harness ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args", [["config", "show", "images", "mnist"], ["render", "--no-such-flag"]])
def test_run_cli_puts_back_the_stop_signal_handlers(args, capsys):
    """conftest.run_cli runs the CLI in pytest's process: the handlers cli.main installs for its own process must
    not outlive the call (pytest's Ctrl-C, a later test's own handlers), whether the command succeeds or not."""
    from conftest import run_cli
    from implicit_gon.interrupts import SIGNALS

    def mine(signum, frame):  # a handler of the calling process's own
        pass

    before = {s: signal.signal(s, mine) for s in SIGNALS}
    try:
        run_cli(args, capsys)
        assert {s: signal.getsignal(s) for s in SIGNALS} == {s: mine for s in SIGNALS}
    finally:
        for s, h in before.items():
            signal.signal(s, h)


LATE_STOP = """
import os, runpy, signal, sys, time
class Late:  # torn down with the modules, after Python has put its default signal handlers back
    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)  # a wrapper forwarding a stop that already ended the command
        time.sleep(0.2)
sys.modules["late_stop"] = type(sys)("late_stop")
sys.modules["late_stop"].late = Late()
sys.argv = ["implicit-gon", "--help"]
runpy.run_module("cli", run_name="__main__")
"""


def test_a_stop_while_the_program_exits_keeps_its_exit_status(tmp_path):
    """Once the program has said its last line a stop signal is ignored: during the interpreter's teardown it
    killed the process by the signal, whatever its line had said (the hostile check: -2, -15 for 130, 143)."""
    (tmp_path / "late.py").write_text(LATE_STOP)
    p = subprocess.run([sys.executable, str(tmp_path / "late.py")], env=_env(), capture_output=True, text=True,
                       timeout=120, preexec_fn=_default_signals)
    assert p.returncode == 0 and "Usage" in p.stdout, (p.returncode, p.stderr[-500:])


def test_the_stop_line_names_the_command_that_continues(tmp_path):
    run = tmp_path / "a run"  # a space: the command is quoted for a shell
    fit(image_signal(), small_cfg(steps=2), run, progress=False)
    line = str(rundir.interrupted(run, signal.SIGTERM))
    assert f"continue with `implicit-gon fit images --out '{run}' --resume`" in line and "(step 2)" in line


def test_a_stop_during_an_import_waits_for_the_import_to_finish(tmp_path):
    """torch registers its operators as its modules import, and clears an exception raised there: a stop raised
    inside was swallowed and the run went on with a module half made (torchrun's ranks then failed with
    tracebacks). The stop now lands once the import is done, whole."""
    (tmp_path / "slow_module.py").write_text("import time\ntime.sleep(1.0)\ndone = True\n")
    code = ("import os, signal, sys, threading, time\nfrom implicit_gon import interrupts\ninterrupts.install()\n"
            f"sys.path.insert(0, {str(tmp_path)!r})\n"
            "threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()\n"
            "try:\n    import slow_module\n    time.sleep(30)\n"
            "except KeyboardInterrupt as e:\n"
            "    print(type(e).__name__, getattr(sys.modules.get('slow_module'), 'done', False))\n")
    p = _python(code)
    assert p.returncode == 0 and p.stdout.strip() == "Stop True", (p.stdout, p.stderr)


def test_a_collective_that_a_stop_broke_is_that_stop(monkeypatch):
    """torchrun stops every rank; a rank whose peer had left first said "stopped because another rank failed"
    and exited 1."""
    from implicit_gon import distributed, interrupts
    from implicit_gon.errors import GONError, Interrupted
    d = distributed.Dist(rank=0, world=2)
    monkeypatch.setitem(interrupts._state, "pending", signal.SIGTERM)  # it came during the step's collective
    with pytest.raises(Interrupted, match=r"^rank 0: interrupted by SIGTERM \(another rank stopped first\)") as e:
        with distributed.collective(d):
            raise RuntimeError("Connection closed by peer")
    assert e.value.code == 143
    monkeypatch.setitem(interrupts._state, "pending", None)
    monkeypatch.setitem(interrupts._state, "raised", None)
    with pytest.raises(GONError, match=r"^rank 0: stopped because another rank failed \(Connection closed"):
        with distributed.collective(d):
            raise RuntimeError("Connection closed by peer")
