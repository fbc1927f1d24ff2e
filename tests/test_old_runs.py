"""Runs written by an older version load and render as that version rendered them. tests/data/old_runs/ holds three
tiny runs (images, audio, SDF) made by commit 221d0cb, before issue 22's redesign, each beside the outputs its verbs
wrote then (README.md there says how); today's CLI and Python API must reproduce those files byte for byte and
eval's numbers exactly. Everything runs on CPU with one thread (conftest), as they were made."""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from conftest import REPO, run_cli
from implicit_gon import GON

OLD = REPO / "tests" / "data" / "old_runs"

CLI = {  # run: [(the verb's arguments, before --out and --device; the file it wrote then)]
    "digits": [(["render", "{run}", "--res", "16", "--n", "4"], "render.png"),
               (["encode", "{run}", "{inputs}/digit.png"], "encode.npy"),
               (["decode", "{run}", "{run}/encode.npy", "--res", "32"], "decode.png"),
               (["sample", "{run}", "--n", "4", "--seed", "0"], "sample.png"),
               (["interpolate", "{run}", "--pairs", "1", "--frames", "4"], "interpolate.png")],
    "audio": [(["render", "{run}", "--input", "{inputs}/tone.wav", "--sample-rate", "24000"], "render-24k.wav"),
              (["sample", "{run}", "--n", "1", "--seconds", "0.25", "--seed", "0"], "sample.wav")],
    "sdf": [(["render", "{run}", "--input", "{inputs}/box.obj", "--res", "32"], "render.png"),
            (["export-mesh", "{run}", "--input", "{inputs}/box.obj", "--res", "16"], "mesh.ply")],
}
EVAL = {"digits": [], "audio": ["--data", "{inputs}/tone.wav"], "sdf": ["--data", "{inputs}/box.obj"]}


@pytest.fixture
def old(tmp_path) -> Path:
    """A copy of tests/data/old_runs (loading takes the run's lock: tests write only under their tmp folder)."""
    return Path(shutil.copytree(OLD, tmp_path / "old"))


def _args(args: list[str], old: Path, run: str) -> list[str]:
    return [a.format(run=old / run, inputs=old / "inputs") for a in args]


@pytest.mark.parametrize("run,args,name", [(r, a, n) for r, cases in CLI.items() for a, n in cases],
                         ids=[f"{r}-{n}" for r, cases in CLI.items() for _, n in cases])
def test_cli_reproduces_old_outputs(old, tmp_path, capsys, run, args, name):
    out = tmp_path / name
    code, _, err = run_cli(_args(args, old, run) + ["--out", out, "--device", "cpu"], capsys)
    assert code == 0, err
    assert out.read_bytes() == (OLD / run / name).read_bytes(), f"{run}: {name} differs from the old version's"


@pytest.mark.parametrize("run", list(EVAL))
def test_eval_gives_old_numbers(old, capsys, run):
    """Every figure the old eval --json printed, the same to the last bit (new keys may be added beside them)."""
    code, out, err = run_cli(["eval", old / run, "--json", "--device", "cpu", *_args(EVAL[run], old, run)], capsys)
    assert code == 0, err
    then, now = json.loads((OLD / run / "eval.json").read_text()), json.loads(out)
    for key, value in then.items():
        if key == "shapes":  # per shape: the old entries' keys
            assert [{k: s[k] for k in o} for s, o in zip(now[key], value)] == value
        else:
            assert now[key] == value, key


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_api_images(old, tmp_path):
    gon = GON.load(old / "digits", device="cpu")
    z = gon.encode(old / "inputs" / "digit.png")
    assert np.array_equal(z, np.load(OLD / "digits" / "encode.npy"))
    assert np.array_equal(gon.render(z, res=32)[0, ..., 0], _png(OLD / "digits" / "decode.png"))
    for call, name in [(lambda out: gon.render(res=16, n=4, out=out), "render.png"),
                       (lambda out: gon.sample(4, seed=0, out=out), "sample.png"),
                       (lambda out: gon.interpolate(pairs=1, frames=4, out=out), "interpolate.png")]:
        call(tmp_path / name)
        assert (tmp_path / name).read_bytes() == (OLD / "digits" / name).read_bytes(), name


def test_api_audio_at_another_rate(old, tmp_path):
    """render at 24 kHz a run trained at 16 kHz: the clip the old CLI wrote, as samples and as the WAV file."""
    gon = GON.load(old / "audio", device="cpu")
    clip = gon.render(inputs=old / "inputs" / "tone.wav", sample_rate=24000, out=tmp_path / "a.wav")
    stored = OLD / "audio" / "render-24k.wav"
    assert (tmp_path / "a.wav").read_bytes() == stored.read_bytes()
    buf = io.BytesIO()  # the returned float samples, written as the old WAV was (16-bit PCM): the very same ones
    sf.write(buf, clip, 24000, subtype="PCM_16", format="WAV")
    buf.seek(0)
    assert clip.shape == (7200, 1) and clip.dtype == np.float32
    assert np.array_equal(sf.read(buf, dtype="int16")[0], sf.read(stored, dtype="int16")[0])


def test_api_sdf_volume_and_mesh(old, tmp_path):
    import trimesh
    gon = GON.load(old / "sdf", device="cpu")
    box = old / "inputs" / "box.obj"
    vol = gon.volume(gon.encode(box), 12)
    assert vol.shape == (1, 12, 12, 12) and np.array_equal(vol[0], np.load(OLD / "sdf" / "volume.npy"))
    mesh, then = gon.mesh(inputs=box, res=16, out=tmp_path / "m.ply"), trimesh.load(OLD / "sdf" / "mesh.ply")
    assert np.array_equal(mesh.vertices.astype(np.float32), then.vertices) and np.array_equal(mesh.faces, then.faces)
    # (the PLY keeps float32 vertices)
    assert (tmp_path / "m.ply").read_bytes() == (OLD / "sdf" / "mesh.ply").read_bytes()
    assert np.array_equal(gon.mesh(inputs=str(box), res=16).faces, mesh.faces)  # a str is one file, as for render
    assert np.array_equal(gon.render(inputs=box, res=32)[0], _png(OLD / "sdf" / "render.png"))


def test_old_run_resumes(old, capsys):
    """An old run's checkpoint (its Adam state too) continues with fit --resume."""
    code, _, err = run_cli(["fit", "images", "--resume", "--out", old / "digits", "--steps", "305", "--device", "cpu",
                            "--quiet"], capsys)
    assert code == 0, err
    assert GON.load(old / "digits", device="cpu").step == 305
