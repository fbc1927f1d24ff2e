"""Runs written by an older version load and render as that version rendered them. tests/data/old_runs/ holds three
tiny runs (images, audio, SDF) made by commit 221d0cb, before issue 22's redesign, each beside the outputs its verbs
wrote then (README.md there says how); today's CLI and Python API must reproduce those files and eval's numbers.
Everything runs on CPU with one thread (conftest), as they were made. On the machine that made them the files agree
byte for byte; another CPU's float kernels (AVX2, AVX-512, AMX: a different order of summation) move results by a
few units in the last place, so `assert_same_output` accepts exactly that and no more: latents and volumes within
1e-6 (they are O(0.1)), pixels and PCM samples within one quantisation step on a small share of them, mesh
vertices within 1e-5 with the same faces and the same PLY header, eval's figures within 1e-3 relative (Chamfer
distance moves with the vertices). A changed decoder, normalisation or grid moves them by far more."""
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


def assert_same_output(new: Path, old: Path) -> None:
    """`new` is the file `old` was, up to another CPU's rounding (module docstring), by its kind."""
    if new.read_bytes() == old.read_bytes():
        return
    kind = old.suffix
    if kind == ".png":
        assert_same_image(_png(new), old)
    elif kind == ".wav":
        (a, ra), (b, rb) = sf.read(new, dtype="int16"), sf.read(old, dtype="int16")
        assert ra == rb and a.shape == b.shape and sf.info(new).subtype == sf.info(old).subtype, old.name
        _near_quantised(a.astype(int), b.astype(int), old.name, share=0.05)
    elif kind == ".npy":
        a = np.load(new)
        assert a.dtype == np.load(old).dtype, old.name
        assert_same_array(a, old)
    elif kind == ".ply":
        import trimesh
        head = lambda p: p.read_bytes().split(b"end_header")[0]  # noqa: E731
        assert head(new) == head(old), f"{old.name}: PLY header differs"
        a = trimesh.load(new)
        assert_same_mesh(a.vertices, a.faces, old)
    else:
        raise AssertionError(f"{old.name}: differs from the old version's")


def assert_same_array(a: np.ndarray, old: Path) -> None:
    """Latents and SDF volumes (O(0.1)) against the stored .npy: the same shape, within 1e-6."""
    b = np.load(old)
    assert a.shape == b.shape and np.allclose(a, b, rtol=0, atol=1e-6), old.name


def assert_same_image(a: np.ndarray, old: Path) -> None:
    """Pixels against the stored PNG: the same shape, one step apart on at most 1% of them."""
    b = _png(old)
    assert a.shape == b.shape, f"{old.name}: shape {a.shape} against {b.shape}"
    _near_quantised(a.astype(int), b.astype(int), old.name, share=0.01)


def assert_same_mesh(vertices: np.ndarray, faces: np.ndarray, old: Path) -> None:
    """A mesh against the stored PLY (float32 vertices): the same faces, vertices within 1e-5."""
    import trimesh
    b = trimesh.load(old)
    assert np.array_equal(faces, b.faces), f"{old.name}: faces differ"
    assert np.allclose(vertices.astype(np.float32), b.vertices, rtol=0, atol=1e-5), f"{old.name}: vertices differ"


def _near_quantised(a: np.ndarray, b: np.ndarray, name: str, share: float) -> None:
    """Integer samples (pixels, PCM): at most one step apart, on at most `share` of them."""
    diff = np.abs(a - b)
    assert diff.max() <= 1 and (diff > 0).mean() <= share, (
        f"{name}: differs by up to {diff.max()} on {(diff > 0).mean():.2%} of its samples")


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
    assert_same_output(out, OLD / run / name)


@pytest.mark.parametrize("run", list(EVAL))
def test_eval_gives_old_numbers(old, capsys, run):
    """Every figure the old eval --json printed (new keys may be added beside them): counts and names exactly,
    measurements to rounding (module docstring)."""
    code, out, err = run_cli(["eval", old / run, "--json", "--device", "cpu", *_args(EVAL[run], old, run)], capsys)
    assert code == 0, err
    then, now = json.loads((OLD / run / "eval.json").read_text()), json.loads(out)
    for key, value in then.items():
        if key == "shapes":  # per shape: the old entries' keys
            assert [{k: _approx(s[k]) for k in o} for s, o in zip(now[key], value)] == value
        else:
            assert now[key] == _approx(value), key


def _approx(v):
    """A float within 1e-3 relative (1e-9 absolute near 0); anything else as it is."""
    return pytest.approx(v, rel=1e-3, abs=1e-9) if isinstance(v, float) else v


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_api_images(old, tmp_path):
    gon = GON.load(old / "digits", device="cpu")
    z = gon.encode(old / "inputs" / "digit.png")
    assert_same_array(z, OLD / "digits" / "encode.npy")
    assert_same_image(gon.render(z, res=32)[0, ..., 0], OLD / "digits" / "decode.png")
    for call, name in [(lambda out: gon.render(res=16, n=4, out=out), "render.png"),
                       (lambda out: gon.sample(4, seed=0, out=out), "sample.png"),
                       (lambda out: gon.interpolate(pairs=1, frames=4, out=out), "interpolate.png")]:
        call(tmp_path / name)
        assert_same_output(tmp_path / name, OLD / "digits" / name)


def test_api_audio_at_another_rate(old, tmp_path):
    """render at 24 kHz a run trained at 16 kHz: the clip the old CLI wrote, as samples and as the WAV file."""
    gon = GON.load(old / "audio", device="cpu")
    clip = gon.render(inputs=old / "inputs" / "tone.wav", sample_rate=24000, out=tmp_path / "a.wav")
    stored = OLD / "audio" / "render-24k.wav"
    assert_same_output(tmp_path / "a.wav", stored)
    buf = io.BytesIO()  # the returned float samples, written as the WAV was (16-bit PCM): the very same ones
    sf.write(buf, clip, 24000, subtype="PCM_16", format="WAV")
    buf.seek(0)
    assert clip.shape == (7200, 1) and clip.dtype == np.float32
    assert np.array_equal(sf.read(buf, dtype="int16")[0], sf.read(tmp_path / "a.wav", dtype="int16")[0])


def test_api_sdf_volume_and_mesh(old, tmp_path):
    gon = GON.load(old / "sdf", device="cpu")
    box = old / "inputs" / "box.obj"
    vol = gon.volume(gon.encode(box), 12)
    assert vol.shape == (1, 12, 12, 12)
    assert_same_array(vol[0], OLD / "sdf" / "volume.npy")
    mesh = gon.mesh(inputs=box, res=16, out=tmp_path / "m.ply")
    assert_same_mesh(mesh.vertices, mesh.faces, OLD / "sdf" / "mesh.ply")
    assert_same_output(tmp_path / "m.ply", OLD / "sdf" / "mesh.ply")
    assert np.array_equal(gon.mesh(inputs=str(box), res=16).faces, mesh.faces)  # a str is one file, as for render
    assert_same_image(gon.render(inputs=box, res=32)[0], OLD / "sdf" / "render.png")


def test_old_run_resumes(old, capsys):
    """An old run's checkpoint (its Adam state too) continues with fit --resume."""
    code, _, err = run_cli(["fit", "images", "--resume", "--out", old / "digits", "--steps", "305", "--device", "cpu",
                            "--quiet"], capsys)
    assert code == 0, err
    assert GON.load(old / "digits", device="cpu").step == 305
