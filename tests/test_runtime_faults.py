"""Fault injection on the runtime: locked run directories, Ctrl-C, full and read-only disks, torn and duplicated
metrics, stale temporary files, corrupt and tampered checkpoints, --resume overrides, unbounded memory, and a table
of bad verb options. Every failure must be one line, a non-zero exit and no traceback."""
from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO, run_cli
from safetensors.torch import save_file

from implicit_gon import checkpoint, fsio, rundir
from implicit_gon.errors import GONError

EXE = [str(REPO / ".venv" / "bin" / "implicit-gon")] if (REPO / ".venv" / "bin" / "implicit-gon").exists() \
    else [sys.executable, "-c", "import cli; cli.main()"]
TINY = ["--steps", "2", "--hidden", "16", "--layers", "2", "--quiet"]
CLIP = "audio/cmu_arctic_us_aew_a0001.wav"


def one_line_error(code: int, err: str, *needles: str, status: int = 1) -> None:
    assert code == status, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert 1 <= len(lines) <= 2 and lines[-1].startswith("error:"), err
    for n in needles:
        assert n in lines[-1], (n, err)


def cli_env(shared_data, tmp_path) -> dict:
    return dict(os.environ, IMPLICIT_GON_DATA=str(shared_data), IMPLICIT_GON_CACHE=str(tmp_path / "cache"),
                OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))


def _ctrl_c_default() -> None:
    """In the child: Ctrl-C as a terminal delivers it. A shell's background job (or a test runner started as one)
    ignores SIGINT, and an ignored SIGINT stays ignored across exec, as it should for `nohup implicit-gon fit &`."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_limited(args, env, limit=2 << 30, timeout=300) -> subprocess.CompletedProcess:
    """The CLI in a subprocess whose address space is capped (a regression fails instead of swapping)."""
    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return subprocess.run(EXE + [str(a) for a in args], preexec_fn=cap, capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=timeout)


# -- tiny real runs ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    run = tmp_path_factory.mktemp("tiny") / "run"
    code, _, _ = run_cli(["fit", "images", "--dataset", "digits", "--out", run, *TINY,
                          "--set", "train.log_every=1"])
    assert code == 0
    return run


@pytest.fixture(scope="module")
def tiny_audio(tmp_path_factory, shared_data):
    run = tmp_path_factory.mktemp("tiny_audio") / "run"
    code, _, _ = run_cli(["fit", "audio", "--data", shared_data / CLIP, "--out", run, *TINY])
    assert code == 0
    return run


@pytest.fixture(scope="module")
def tiny_sdf(tmp_path_factory, shared_data):
    run = tmp_path_factory.mktemp("tiny_sdf") / "run"
    code, _, _ = run_cli(["fit", "sdf", "--data", shared_data / "meshes" / "teapot.obj", "--samples", "2000",
                          "--out", run, *TINY])
    assert code == 0
    return run


@pytest.fixture
def run(tiny, tmp_path):
    """A private copy of the tiny image run, to damage."""
    shutil.copytree(tiny, tmp_path / "run")
    return tmp_path / "run"


# -- bad verb options: one line, exit 2 (exit 1 where only this machine's memory refuses) -----------------------------
OUT = {"render": "o.png", "sample": "o.png", "interpolate": "o.gif", "export-mesh": "o.ply", "encode": "z.npy"}
BAD_OPTIONS = [
    ("images", "render", ["--n", "0"]), ("images", "render", ["--res", "0"]), ("images", "render", ["--res", "-5"]),
    ("images", "render", ["--split", "validation"]), ("images", "render", ["--device", "bogus"]),
    ("images", "render", ["--res", "100000"]), ("images", "render", ["--res", "20000"]),
    ("images", "eval", ["--batch-size", "0"]), ("images", "eval", ["--n", "0"]), ("images", "eval", ["--n", "-2"]),
    ("images", "eval", ["--split", "bogus"]), ("images", "eval", ["--device", "cuda:x"]),
    ("images", "sample", ["--res", "-3"]), ("images", "sample", ["--n", "0"]), ("images", "sample", ["--n", "1000000000"]),
    ("images", "sample", ["--temperature", "nan"]), ("images", "sample", ["--device", "tpu"]),
    ("images", "sample", ["--n", "10000", "--res", "4096"]),
    ("images", "interpolate", ["--fps", "0"]), ("images", "interpolate", ["--frames", "1"]),
    ("images", "interpolate", ["--frames", "100000"]), ("images", "interpolate", ["--from", "0", "--to", "100000"]),
    ("images", "interpolate", ["--pairs", "0"]), ("images", "interpolate", ["--device", "bogus"]),
    ("images", "encode", ["--batch-size", "0"]), ("images", "encode", ["--device", "bogus"]),
    ("audio", "render", ["--input", CLIP, "--sample-rate", "0"]),
    ("audio", "render", ["--input", CLIP, "--sample-rate", "1000000000"]),
    ("audio", "render", ["--input", CLIP, "--hop", "-0.001"]), ("audio", "render", ["--input", CLIP, "--hop", "10"]),
    ("audio", "render", ["--input", CLIP, "--device", "bogus"]), ("audio", "eval", ["--batch-size", "0"]),
    ("audio", "sample", ["--n", "0"]), ("audio", "interpolate", ["--from", CLIP, "--to", CLIP, "--frames", "1"]),
    ("sdf", "export-mesh", ["--index", "0", "--res", "0"]), ("sdf", "export-mesh", ["--index", "99"]),
    ("sdf", "export-mesh", ["--index", "-1"]), ("sdf", "export-mesh", ["--index", "0", "--res", "5000"]),
    ("sdf", "export-mesh", ["--index", "0", "--format", "xyz"]), ("sdf", "export-mesh", ["--device", "x", "--index", "0"]),
    ("sdf", "render", ["--index", "7"]), ("sdf", "render", ["--index", "0", "--res", "20000"]),
    ("sdf", "sample", ["--n", "0"]), ("sdf", "interpolate", ["--from", "0", "--to", "0", "--frames", "2", "--res", "10000"]),
    # flags the run's signal cannot use are refused, never ignored
    ("images", "render", ["--index", "3"]), ("images", "render", ["--sample-rate", "48000"]),
    ("images", "eval", ["--data", CLIP]), ("audio", "sample", ["--res", "64"]), ("audio", "eval", ["--n", "3"]),
    ("sdf", "render", ["--index", "0", "--hop", "0.001"]), ("audio", "interpolate", ["--from", CLIP, "--to", CLIP,
                                                                                    "--res", "64"]),
]


OVER_MEMORY = {("render", "--res", "100000"), ("render", "--res", "20000"), ("sample", "--n", "10000", "--res", "4096"),
               ("export-mesh", "--index", "0", "--res", "5000")}


@pytest.mark.parametrize("kind,verb,args", BAD_OPTIONS, ids=[f"{k}-{v}-{' '.join(a)}" for k, v, a in BAD_OPTIONS])
def test_bad_verb_option_is_one_line(kind, verb, args, request, shared_data, tmp_path, capsys):
    run = request.getfixturevalue({"images": "tiny", "audio": "tiny_audio", "sdf": "tiny_sdf"}[kind])
    capsys.readouterr()  # the fixture's fit, when it ran just now
    args = [str(shared_data / a) if a == CLIP else a for a in args]
    cmd = [verb, run, *args]
    if verb == "encode":
        cmd.insert(2, shared_data / "coil-20-32x32" / "obj1__0.png")
    if verb in OUT:
        cmd += ["--out", tmp_path / OUT[verb]]
    code, _, err = run_cli(cmd, capsys)
    one_line_error(code, err, status=1 if (verb, *args) in OVER_MEMORY else 2)
    assert not list(tmp_path.glob("o.*")) and not list(tmp_path.glob(".o.*"))  # nothing written, no temp file


# -- the run directory: lock, Ctrl-C, metrics, stale temporary files ------------------------------------------------------
def _wait_for(cond, proc, what: str, timeout: float = 240) -> None:
    t0 = time.time()
    while not cond():
        if proc.poll() is not None:
            pytest.fail(f"the process ended ({proc.returncode}) before {what}: {proc.stderr.read()}")
        if time.time() - t0 > timeout:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_second_fit_is_locked_out_and_ctrl_c_names_the_checkpoint(tmp_path, shared_data, capsys):
    out = tmp_path / "run"
    p = subprocess.Popen(EXE + ["fit", "images", "--dataset", "digits", "--out", str(out), "--steps", "1000000",
                                "--hidden", "16", "--layers", "2", "--quiet", "--set", "train.ckpt_every=3",
                                "--set", "train.log_every=1"],
                         stderr=subprocess.PIPE, text=True, env=cli_env(shared_data, tmp_path), cwd=REPO,
                         preexec_fn=_ctrl_c_default)
    try:
        _wait_for(lambda: (out / checkpoint.CKPT).is_file(), p, "the first checkpoint")
        # a second fit of the same run (with or without --resume), and a refit into it, are refused while it trains
        for cmd in (["fit", "images", "--dataset", "digits", "--out", out, *TINY],
                    ["fit", "images", "--out", out, "--resume", "--quiet"],
                    ["sample", out, "--refit", "--out", tmp_path / "s.png"],
                    ["render", out, "--n", "1", "--res", "8", "--out", out / "r.png"]):
            code, _, err = run_cli(cmd, capsys)
            one_line_error(code, err, str(out), f"pid {p.pid}")
        assert not (out / "r.png").exists() and not (tmp_path / "s.png").exists()
        p.send_signal(signal.SIGINT)
        err = p.stderr.read()
        assert p.wait(60) == 130
    finally:
        p.kill()
    one_line_error(130, err, "interrupted", str(out / checkpoint.CKPT), "step", status=130)
    step = checkpoint.load(out)[0]["step"]
    assert f"(step {step})" in err
    # resuming cuts the log back to the checkpoint: every step is logged once
    code, _, err = run_cli(["fit", "images", "--out", out, "--resume", "--steps", step + 2, "--quiet"], capsys)
    assert code == 0, err
    steps = [r["step"] for r in rundir.read_metrics(out / rundir.METRICS) if "loss" in r]
    assert steps == list(range(1, step + 3))


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc to see that rendering has begun")
def test_ctrl_c_during_render_exits_130_with_one_line(tiny, tmp_path, shared_data):
    out = tmp_path / "big.png"
    p = subprocess.Popen(EXE + ["render", str(tiny), "--res", "4000", "--n", "16", "--out", str(out)],
                         stderr=subprocess.PIPE, text=True, env=cli_env(shared_data, tmp_path), cwd=REPO,
                         preexec_fn=_ctrl_c_default)
    try:
        _wait_for(lambda: _rss_mib(p.pid) > 700, p, "the render's output to grow")  # decoding: 1 GB of output
        p.send_signal(signal.SIGINT)
        err = p.stderr.read()
        assert p.wait(60) == 130
    finally:
        p.kill()
    one_line_error(130, err, "interrupted", status=130)
    assert list(tmp_path.glob("*big*")) == []


def test_resume_cuts_metrics_to_the_checkpoint_and_cleans_stale_temps(run, capsys):
    with open(run / rundir.METRICS, "a") as f:
        f.write(json.dumps({"step": 500, "loss": 1.0}) + "\n" + '{"step": 7, "lo')  # rows past step 2, torn line
    stale = run / ".checkpoint.safetensors.k2x_9abc.tmp.safetensors"  # what kill -9 during a save leaves
    stale.write_bytes(b"\0" * 1000)
    keep = run / "notes.tmp.txt"
    keep.write_text("mine")
    code, _, err = run_cli(["fit", "images", "--out", run, "--resume", "--steps", "4", "--quiet"], capsys)
    assert code == 0, err
    lines = (run / rundir.METRICS).read_text().splitlines()
    rows = [json.loads(line) for line in lines]  # every line is whole JSON
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3, 4]
    assert not stale.exists() and keep.read_text() == "mine"


def test_repair_metrics_tolerates_a_torn_last_line(tmp_path):
    (tmp_path / rundir.METRICS).write_text('{"step": 1, "loss": 2}\n{"step": 2, "loss": 1}\n{"step": 3, "lo')
    assert rundir.repair_metrics(tmp_path, 2) == 1
    assert [r["step"] for r in rundir.read_metrics(tmp_path / rundir.METRICS)] == [1, 2]
    assert (tmp_path / rundir.METRICS).read_text().endswith("\n")


def test_repair_metrics_drops_a_row_with_a_bare_nan(tmp_path):
    """A hand-edited row with NaN (not JSON) goes on resume like a torn line: the file is strict JSON again."""
    (tmp_path / rundir.METRICS).write_text('{"step": 1, "loss": 2}\n{"step": 2, "loss": NaN}\n{"step": 2, "x": 1}\n')
    assert rundir.repair_metrics(tmp_path, 5) == 1
    def refuse(token):
        raise ValueError(f"non-JSON number {token}")
    assert [json.loads(line, parse_constant=refuse) for line in
            (tmp_path / rundir.METRICS).read_text().splitlines()] == [{"step": 1, "loss": 2}, {"step": 2, "x": 1}]


def test_config_json_is_written_before_the_checkpoint(run, monkeypatch):
    from implicit_gon import GON
    gon, opt = GON.load(run, "cpu", with_optimizer=True)
    gon.step = 77
    seen = {}

    def spy(tensors, path, metadata):
        seen["config_step"] = json.loads((run / "config.json").read_text())["step"]
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(checkpoint, "save_file", spy)
    with pytest.raises(GONError, match="checkpoint.safetensors: cannot write"):
        gon.save(run, opt)
    assert seen["config_step"] == 77
    assert checkpoint.load(run)[0]["step"] == 2  # the old checkpoint is intact
    assert not [p for p in run.iterdir() if ".tmp" in p.name]


# -- --resume overrides ---------------------------------------------------------------------------------------------------
def test_resume_applies_lr_batch_size_points_and_logs_them(run, capsys):
    code, _, err = run_cli(["fit", "images", "--out", run, "--resume", "--steps", "3", "--lr", "0.002",
                            "--batch-size", "16", "--points", "0.5", "--quiet"], capsys)
    assert code == 0, err
    info, _, opt, _ = checkpoint.load(run)
    assert info["config"]["train"]["lr"] == 0.002 and info["config"]["train"]["batch_size"] == 16
    assert [g["lr"] for g in opt["param_groups"]] == [0.002]  # Adam continues at the new rate
    event = [r for r in rundir.read_metrics(run / rundir.METRICS) if r.get("event") == "resume"]
    assert event[0]["step"] == 2 and event[0]["changed"]["train.lr"] == [0.0005, 0.002]
    assert event[0]["changed"]["train.points"] == [1.0, 0.5]


def test_a_resume_with_nothing_to_do_logs_no_change_and_sweeps_the_run(run, capsys):
    """Already at its --steps, a resume applies nothing: it logged the flags' changes as applied (and a later real
    resume logged them again), and left a killed writer's temporary file, swept only once it trained."""
    dead = run / f".{checkpoint.CKPT}.999999999.abcd1234.tmp.safetensors"  # beyond pid_max: its writer is dead
    dead.write_bytes(b"partial")
    before = (run / rundir.METRICS).read_bytes()
    code, _, err = run_cli(["fit", "images", "--out", run, "--resume", "--steps", "2", "--lr", "0.002"], capsys)
    assert code == 0 and "nothing to do" in err, err
    assert (run / rundir.METRICS).read_bytes() == before and not dead.exists()


@pytest.mark.parametrize("flags,needle", [(["--hidden", "32"], "model.hidden"), (["--seed", "3"], "train.seed"),
                                          (["--dataset", "mnist"], "data.dataset"), (["--variational"], "variational"),
                                          (["--set", "gon.step_size=0.5"], "gon.step_size"), (["--lr", "-1"], "lr"),
                                          (["--steps", "1"], "already at step 2"), (["--res", "16"], "data.res")])
def test_resume_refuses_what_cannot_change(run, flags, needle, capsys):
    before = (run / checkpoint.CKPT).read_bytes()
    code, _, err = run_cli(["fit", "images", "--out", run, "--resume", *flags, "--quiet"], capsys)
    one_line_error(code, err, needle, status=2)
    assert (run / checkpoint.CKPT).read_bytes() == before


# -- checkpoints --------------------------------------------------------------------------------------------------------------
def rewrite(run: Path, info=None, tensors=None, drop_optim=False, **meta) -> None:
    """Rewrite a checkpoint with changes and a valid checksum (so the check under test is the one that fires)."""
    path = run / checkpoint.CKPT
    metadata, t = checkpoint._read(path)
    t = tensors(t) if tensors else t
    if info:
        d = json.loads(metadata["info"])
        info(d)
        metadata["info"] = json.dumps(d)
    if drop_optim:
        t = {k: v for k, v in t.items() if not k.startswith("optim.")}
        metadata.pop("optim_groups")
    metadata.update(meta)
    metadata["sha256"] = checkpoint.checksum(t, metadata)
    save_file(t, str(path), metadata=metadata)


def _same(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_flipped_bits_in_the_header_never_load_silently_wrong(run):
    raw = (run / checkpoint.CKPT).read_bytes()
    info0, model0, opt0, extra0 = checkpoint.load(run)
    header_end = 8 + int.from_bytes(raw[:8], "little")
    silent = 0
    for i in range(header_end):
        bad = bytearray(raw)
        bad[i] ^= 1 << (i % 8)
        (run / checkpoint.CKPT).write_bytes(bad)
        try:
            info, model, opt, extra = checkpoint.load(run)
        except GONError:
            continue
        silent += 1  # loaded: then it must be exactly what was saved, Adam state included
        assert info == info0 and _same(model, model0) and _same(extra, extra0) and opt is not None
        assert opt["param_groups"] == opt0["param_groups"] and opt.keys() == opt0.keys()
    assert silent < header_end // 10


def test_flipped_bits_in_the_weights_are_a_one_line_error(run, capsys):
    raw = (run / checkpoint.CKPT).read_bytes()
    start = 8 + int.from_bytes(raw[:8], "little")
    for k, i in enumerate(range(start, len(raw), max(1, (len(raw) - start) // 40))):
        bad = bytearray(raw)
        bad[i] ^= 1 << (k % 8)
        (run / checkpoint.CKPT).write_bytes(bad)
        with pytest.raises(GONError, match="checksum mismatch"):
            checkpoint.load(run)
    code, _, err = run_cli(["eval", run], capsys)
    one_line_error(code, err, str(run / checkpoint.CKPT), "checksum")


@pytest.mark.parametrize("fmt,needle", [("3", "newer"), ("0", "unknown"), ("x", "unknown")])
def test_checkpoint_format_version_is_checked(run, fmt, needle, capsys):
    rewrite(run, format=fmt)
    code, _, err = run_cli(["eval", run], capsys)
    one_line_error(code, err, str(run / checkpoint.CKPT), needle)


def test_resume_refuses_a_checkpoint_without_optimiser_state(run, capsys):
    rewrite(run, drop_optim=True)
    code, _, err = run_cli(["fit", "images", "--out", run, "--resume", "--steps", "4", "--quiet"], capsys)
    one_line_error(code, err, "optimiser state")
    code, _, err = run_cli(["eval", run], capsys)  # still fine for everything but resuming
    assert code == 0, err


def _set(path: str, value):
    def f(d):
        *keys, last = path.split(".")
        for k in keys:
            d = d[k]
        d[last] = value
    return f


@pytest.mark.parametrize("path,value,needle", [
    ("meta.res", "8", "meta.res"), ("meta.channels", 5, "meta.channels"), ("meta.coord_dim", 3, "meta.coord_dim"),
    ("meta.out_dim", [1], "meta.out_dim"), ("meta.signal", "video", "meta.signal"), ("step", -1, "step"),
    ("step", "2", "step"), ("config.model.hidden", "wide", "model.hidden"), ("config.train", [1], "train"),
    ("config.model.layers", 1000000, "model.layers"), ("meta", None, "meta"), ("config.gon.loss", "huber", "gon.loss")])
def test_checkpoint_metadata_with_wrong_types_is_one_line(run, path, value, needle, capsys):
    rewrite(run, info=_set(path, value))
    for cmd in (["eval", run], ["render", run, "--out", run.parent / "o.png"]):
        code, _, err = run_cli(cmd, capsys)
        one_line_error(code, err, str(run / checkpoint.CKPT), needle)


def test_an_audio_runs_rate_is_held_to_the_configs_range(tiny_audio, tmp_path, capsys):
    """meta.sample_rate was allowed up to 10**7 where data.sample_rate stops at 384,000: a crafted rate made render
    --input of a 1 s clip take 48 s and 1.3 GB."""
    run = tmp_path / "a"
    shutil.copytree(tiny_audio, run)
    rewrite(run, info=_set("meta.sample_rate", 10**7))
    code, _, err = run_cli(["sample", run, "--n", "1", "--out", tmp_path / "s.wav"], capsys)
    one_line_error(code, err, "meta.sample_rate")


def test_nan_weights_and_nan_gaussian_are_refused_with_one_line(run, capsys):
    rewrite(run, tensors=lambda t: {k: (torch.full_like(v, float("nan")) if k.startswith(("model.", "extra."))
                                        else v) for k, v in t.items()})
    code, out, err = run_cli(["eval", run, "--json"], capsys)  # issue 21: eval exited 0 with "sse": null
    one_line_error(code, err, str(run / checkpoint.CKPT), "not finite")
    assert out == ""
    code, _, err = run_cli(["sample", run, "--out", run.parent / "s.png"], capsys)
    one_line_error(code, err, "not finite")


# -- output disks ---------------------------------------------------------------------------------------------------------------
@pytest.fixture
def tmpfs(tmp_path):
    """A small tmpfs (needs mount rights: root in a container), unmounted afterwards."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()

    def mount(size: str, ro: bool = False) -> Path:
        opts = f"size={size}" + (",ro" if ro else "")
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(mnt)], capture_output=True, text=True)
        if p.returncode:
            pytest.skip(f"cannot mount a tmpfs here ({p.stderr.strip() or p.returncode}): full-disk case not run")
        return mnt
    yield mount
    subprocess.run(["umount", str(mnt)], capture_output=True)


@pytest.mark.parametrize("size,model", [("12k", []), ("200k", ["--hidden", "256", "--layers", "3"])])
def test_full_disk_fit_is_one_line_and_leaves_nothing(tmpfs, size, model, capsys):
    """A tiny checkpoint fills the disk to the last bytes; a 1 MB one fails with room to spare, where safetensors
    wraps ENOSPC in its own error type. Either way: one line, and a new run that never checkpointed leaves nothing."""
    mnt = tmpfs(size)
    tiny = TINY if not model else ["--steps", "2", "--quiet"]  # the model's own size instead of TINY's
    code, _, err = run_cli(["fit", "images", "--dataset", "digits", "--out", mnt / "run", *tiny, *model], capsys)
    one_line_error(code, err, str(mnt / "run" / checkpoint.CKPT), "No space left")
    assert list(mnt.iterdir()) == []


@pytest.mark.parametrize("verb,args,name", [("render", ["--n", "16", "--res", "512"], "o.png"),
                                            ("encode", [], "z.npy"), ("interpolate", ["--frames", "8"], "m.gif")])
def test_full_disk_outputs_are_one_line(tiny, tmpfs, verb, args, name, shared_data, capsys):
    mnt = tmpfs("8k")
    (mnt / "filler").write_bytes(b"x" * 8192)  # the disk is full
    cmd = [verb, tiny] + ([shared_data / "coil-20-32x32" / "obj1__0.png"] if verb == "encode" else [])
    cmd += args + ["--out", mnt / name]
    code, _, err = run_cli(cmd, capsys)
    one_line_error(code, err, str(mnt / name), "No space left")
    assert sorted(p.name for p in mnt.iterdir()) == ["filler"]


def test_read_only_disk_is_one_line(tiny, tmpfs, capsys):
    mnt = tmpfs("1m", ro=True)
    code, _, err = run_cli(["render", tiny, "--out", mnt / "o.png"], capsys)
    one_line_error(code, err, str(mnt / "o.png"), "Read-only")
    code, _, err = run_cli(["fit", "images", "--dataset", "digits", "--out", mnt / "run", *TINY], capsys)
    one_line_error(code, err, str(mnt / "run"), "Read-only")


def test_a_full_disk_never_tears_a_metrics_line(tmpfs):
    mnt = tmpfs("8k")
    path = mnt / rundir.METRICS
    fsio.append_jsonl(path, {"step": 1, "loss": 0.5})
    before = path.read_bytes()
    with pytest.raises(GONError, match="No space left"):
        fsio.append_jsonl(path, {"step": 2, "pad": "x" * 20000})  # more than the disk holds: a short write
    assert path.read_bytes() == before


def test_a_failed_append_is_cut_back_when_the_write_fails_midway(tmp_path, monkeypatch):
    """The same guarantee without a tmpfs: the OS writes half the line, then reports ENOSPC."""
    path = tmp_path / rundir.METRICS
    fsio.append_jsonl(path, {"step": 1})
    real = os.write

    def half(fd, data):
        real(fd, data[:len(data) // 2])
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(fsio.os, "write", half)
    with pytest.raises(GONError, match=f"{path}: cannot write"):
        fsio.append_jsonl(path, {"step": 2, "loss": 0.25})
    monkeypatch.undo()
    assert [r["step"] for r in rundir.read_metrics(path)] == [1] and path.read_text().endswith("\n")


def test_out_that_is_a_file_is_one_line(tmp_path, tiny, capsys):
    f = tmp_path / "afile"
    f.write_text("keep")
    code, _, err = run_cli(["fit", "images", "--dataset", "digits", "--out", f, *TINY], capsys)
    one_line_error(code, err, str(f), "not a directory", status=2)
    code, _, err = run_cli(["render", tiny, "--out", f / "o.png"], capsys)
    one_line_error(code, err, str(f))
    code, _, err = run_cli(["render", tiny, "--out", tmp_path], capsys)
    one_line_error(code, err, "is a directory", status=2)
    assert f.read_text() == "keep"


# -- memory: refused up front, under a 2 GB address-space limit -------------------------------------------------------
@pytest.mark.parametrize("kind,args", [
    ("images", ["render", "RUN", "--res", "20000", "--out", "o.png"]),
    ("images", ["render", "RUN", "--res", "100000", "--out", "o.png"]),
    ("images", ["sample", "RUN", "--n", "10000", "--res", "2048", "--out", "o.png"]),
    ("images", ["interpolate", "RUN", "--pairs", "100", "--frames", "3600", "--res", "64", "--out", "o.png"]),
    ("images", ["fit", "images", "--dataset", "digits", "--res", "64", "--batch-size", "1500", "--out", "o.run"]),
    ("sdf", ["export-mesh", "RUN", "--index", "0", "--res", "5000", "--out", "o.ply"]),
    ("sdf", ["render", "RUN", "--index", "0", "--res", "4096", "--out", "o.png"]),  # above 4096: a fixed limit, exit 2
    ("audio", ["render", "RUN", "--input", CLIP, "--sample-rate", "384000", "--hop", "0.00001", "--out", "o.wav"])])
def test_memory_hungry_commands_are_refused_within_2gb(kind, args, request, tmp_path, shared_data):
    run = request.getfixturevalue({"images": "tiny", "audio": "tiny_audio", "sdf": "tiny_sdf"}[kind])
    args = [run if a == "RUN" else tmp_path / a if a.startswith("o.") else shared_data / a if a == CLIP else a
            for a in args]
    p = run_limited(args, cli_env(shared_data, tmp_path))
    one_line_error(p.returncode, p.stderr, "memory")


def test_a_model_too_large_is_refused_before_it_is_built(run, tmp_path, shared_data):
    env = cli_env(shared_data, tmp_path)
    big = tmp_path / "big.yaml"
    big.write_text("model: {hidden: 16384, layers: 64}\n")
    p = run_limited(["fit", "images", "--dataset", "digits", "--config", big, "--out", tmp_path / "r"], env)
    one_line_error(p.returncode, p.stderr, "parameters", "memory")
    assert not (tmp_path / "r" / checkpoint.CKPT).exists()
    rewrite(run, info=_set("config.model", {**checkpoint.load(run)[0]["config"]["model"], "hidden": 16384,
                                            "layers": 64}))  # a tampered checkpoint, checksum and all
    p = run_limited(["render", run, "--out", tmp_path / "o.png"], env)
    one_line_error(p.returncode, p.stderr, "parameters", "memory")


def test_tampered_sdf_transforms_are_one_line(tiny_sdf, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_sdf, run)
    rewrite(run, info=_set("meta.transforms", [[["x"], 1.0]]))
    code, _, err = run_cli(["export-mesh", run, "--index", "0", "--original-units", "--out", tmp_path / "o.ply"],
                           capsys)
    one_line_error(code, err, "meta.transforms")


@pytest.mark.parametrize("res", ["0", "-1"])
def test_dataset_info_refuses_a_bad_res(res, capsys):
    code, _, err = run_cli(["dataset", "info", "digits", "--res", res], capsys)
    one_line_error(code, err, f"--res {res}", status=2)


def test_resume_refuses_an_optimiser_state_that_does_not_fit(run, capsys):
    rewrite(run, tensors=lambda t: {k: (v[:1] if k.startswith("optim.") and k.endswith("exp_avg") else v)
                                    for k, v in t.items()})
    code, _, err = run_cli(["fit", "images", "--out", run, "--resume", "--steps", "4", "--quiet"], capsys)
    one_line_error(code, err, "optimiser state does not fit")


def _groups(change):
    def edit(meta_groups):
        groups = json.loads(meta_groups)
        change(groups[0])
        return json.dumps(groups)
    return edit


@pytest.mark.parametrize("change,needle", [
    (lambda g: g.update(lr=-1.0), "lr, betas, eps or weight_decay"),
    (lambda g: g.update(betas=[2, 5]), "lr, betas, eps or weight_decay"),
    (lambda g: g.update(eps=0), "lr, betas, eps or weight_decay")])
def test_resume_refuses_adam_settings_adam_cannot_use(run, change, needle, capsys):
    """A crafted checkpoint (checksum recomputed) with lr -1 or betas [2, 5] was a RuntimeError at the first step."""
    metadata, _ = checkpoint._read(run / checkpoint.CKPT)
    rewrite(run, optim_groups=_groups(change)(metadata["optim_groups"]))
    code, _, err = run_cli(["fit", "images", "--out", run, "--resume", "--steps", "4", "--quiet"], capsys)
    one_line_error(code, err, "optimiser state", needle)


@pytest.mark.parametrize("edit,needle", [
    (lambda k, v: -v.abs() - 1 if k.endswith("exp_avg_sq") else v, "exp_avg_sq is negative"),
    (lambda k, v: v - 100 if k.endswith(".step") else v, "step is negative"),
    (lambda k, v: v.to(torch.float8_e4m3fn) if k == "model.out.weight" else v, "is float8_e4m3fn"),
    (lambda k, v: v.to(torch.int32) if k.startswith("model.") else v, "is int32")])
def test_checkpoint_tensors_of_a_type_or_sign_nothing_writes_are_refused(run, edit, needle, capsys):
    """float8 weights failed in isfinite with a traceback; int32 weights were cast in silently; a negative second
    moment was reported as a divergence to cure with a lower --lr."""
    rewrite(run, tensors=lambda t: {k: edit(k, v) for k, v in t.items()})
    for args in (["render", run, "--out", run.parent / "o.png"], ["fit", "images", "--out", run, "--resume",
                                                                  "--steps", "4", "--quiet"]):
        code, _, err = run_cli(args, capsys)  # every command reads the checkpoint through the same checks
        one_line_error(code, err, needle)
    assert not (run.parent / "o.png").exists()


def test_legacy_format_1_checkpoints_without_checksum_still_load(run, capsys):
    path = run / checkpoint.CKPT
    metadata, t = checkpoint._read(path)
    del metadata["sha256"]
    save_file(t, str(path), metadata={**metadata, "format": "1"})
    code, _, err = run_cli(["eval", run], capsys)
    assert code == 0 and "format 1 (before checksums)" in err, err


def test_resume_refuses_a_partial_optimiser_state(run, capsys):
    rewrite(run, tensors=lambda t: {k: v for k, v in t.items() if not k.startswith("optim.3.")})
    code, _, err = run_cli(["fit", "images", "--out", run, "--resume", "--steps", "4", "--quiet"], capsys)
    one_line_error(code, err, "optimiser state is incomplete", "1 of")


def test_eval_lowers_its_batch_to_the_memory_budget_with_the_same_result(tiny, monkeypatch, capsys):
    code, out, err = run_cli(["eval", tiny, "--json", "--batch-size", "297"], capsys)
    assert code == 0, err
    monkeypatch.setenv("IMPLICIT_GON_MEMORY", "100000")  # room to encode one 8x8 digit at a time, not 297
    from implicit_gon import GON, limits
    assert limits.encode_batch(GON.load(tiny, "cpu"), 297) == 1
    code, small, err = run_cli(["eval", tiny, "--json", "--batch-size", "297"], capsys)
    assert code == 0, err
    a, b = json.loads(out.splitlines()[-1]), json.loads(small.splitlines()[-1])
    assert a["n"] == b["n"] == 297 and a["sse"] == pytest.approx(b["sse"], rel=1e-5)
    code, _, err = run_cli(["render", tiny, "--res", "64", "--out", tiny.parent / "o.png"], capsys)
    one_line_error(code, err, "memory", "97.7 KiB")


def test_run_files_get_the_permissions_a_plain_open_gives(tiny):
    """mkstemp makes 0600 and safetensors replaces the file it is given: the checkpoint must still be readable by
    whoever may read config.json (the umask's choice)."""
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tiny.iterdir() if not p.name.startswith(".")}
    umask = os.umask(0)
    os.umask(umask)
    assert set(modes.values()) == {0o666 & ~umask}, modes
