"""SDF: analytic shapes against closed forms, marching cubes, metrics, holes, the real meshes, CLI and errors."""
import json
import math
import re

import numpy as np
import pytest
import torch
import trimesh

from conftest import run_cli
from implicit_gon.config import DataConfig
from implicit_gon.errors import DataError
from signals import sdf

pytestmark = pytest.mark.xdist_group("sdf")


def sphere_sdf(p, r=0.5):
    return np.linalg.norm(p, axis=1) - r


def box_sdf(p, h=np.array([0.4, 0.3, 0.2])):
    q = np.abs(p) - h
    return np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(1), 0)


def torus_sdf(p, R=0.5, r=0.15):  # trimesh's torus lies around the z axis
    return np.hypot(np.hypot(p[:, 0], p[:, 1]) - R, p[:, 2]) - r


SHAPES = {
    "sphere": (lambda: trimesh.creation.icosphere(subdivisions=5, radius=0.5), sphere_sdf, 2e-3),
    "box": (lambda: trimesh.creation.box(extents=[0.8, 0.6, 0.4]), box_sdf, 1e-5),
    "torus": (lambda: trimesh.creation.torus(major_radius=0.5, minor_radius=0.15, major_sections=128,
                                             minor_sections=64), torus_sdf, 2e-3),
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_samples_match_closed_form_distance(name):
    make, closed, tol = SHAPES[name]
    rows = sdf.sample_sdf(make(), 4000, [0.01, 0.05], 0.3, seed=1)
    assert rows.shape == (4000, 4) and np.abs(rows[:, :3]).max() <= 1
    err = np.abs(rows[:, 3] - closed(rows[:, :3].astype(np.float64)))
    assert err.max() < tol + 1e-4, err.max()
    near = np.abs(rows[:, 3]) < 0.02
    assert near.mean() > 0.3  # most samples hug the surface


def test_marching_cubes_of_closed_form_sphere():
    ax = np.linspace(-1, 1, 64)
    X, Y, Z = np.meshgrid(ax, ax, ax, indexing="ij")
    vol = sphere_sdf(np.stack([X, Y, Z], -1).reshape(-1, 3)).reshape(64, 64, 64).astype(np.float32)
    mesh = sdf.marching_cubes(vol)
    r = np.linalg.norm(mesh.vertices, axis=1)
    assert np.abs(r - 0.5).max() < 0.01
    assert abs(mesh.area - 4 * math.pi * 0.25) / (4 * math.pi * 0.25) < 0.02
    assert mesh.is_watertight and mesh.volume > 0  # outward-facing
    with pytest.raises(DataError, match="no zero crossing"):
        sdf.marching_cubes(np.ones((8, 8, 8), np.float32))


def test_volume_slabs_equal_direct_evaluation():
    field = lambda p: torch.from_numpy(box_sdf(p.double().numpy())).float()
    vol = sdf.volume(field, 9)
    ax = np.linspace(-1, 1, 9)
    assert np.isclose(vol[2, 5, 7], box_sdf(np.array([[ax[2], ax[5], ax[7]]]))[0], atol=1e-6)


def test_chamfer_and_iou_against_self_and_scaled_copy():
    s = trimesh.creation.icosphere(subdivisions=5, radius=0.5)
    pts = sdf.surface_points(s)
    assert sdf.chamfer_x1e3(pts, pts) == 0
    big = sdf.surface_points(trimesh.creation.icosphere(subdivisions=5, radius=0.6), seed=1)
    hand = 2 * 0.1**2 * 1e3  # every nearest neighbour is ~0.1 away, both ways
    assert abs(sdf.chamfer_x1e3(pts, big) - hand) / hand < 0.03
    rng = np.random.default_rng(0)
    p = rng.uniform(-1, 1, (200000, 3))
    inside_a, inside_b = sphere_sdf(p, 0.5) < 0, sphere_sdf(p, 0.6) < 0
    assert sdf.iou(inside_a, inside_a) == 1
    assert abs(sdf.iou(inside_a, inside_b) - (0.5 / 0.6) ** 3) < 0.02


def test_mesh_with_a_hole_keeps_sensible_signs_and_warns(tmp_path, capsys):
    s = trimesh.creation.icosphere(subdivisions=4, radius=0.5)
    holed = trimesh.Trimesh(s.vertices, s.faces[6:], process=False)  # six triangles cut out
    assert not holed.is_watertight
    rng = np.random.default_rng(0)
    p = rng.uniform(-1, 1, (3000, 3))
    far = np.abs(sphere_sdf(p)) > 0.05
    d = sdf.Distance(holed)(p)
    assert (np.sign(d[far]) == np.sign(sphere_sdf(p[far]))).mean() > 0.99
    holed.export(tmp_path / "holed.ply")
    sdf.load_signal([tmp_path / "holed.ply"], DataConfig(sdf_samples=500, cache_dir=str(tmp_path)))
    assert "not watertight" in capsys.readouterr().err


def test_normalisation_round_trip():
    m = trimesh.creation.box(extents=[4, 2, 2])
    m.apply_translation([10, -3, 5])
    norm, centre, scale = sdf.normalise(m)
    assert abs(np.linalg.norm(norm.vertices, axis=1).max() - sdf.RADIUS) < 1e-9
    np.testing.assert_allclose(norm.vertices * scale + centre, m.vertices)


def test_samples_are_cached_by_content_and_settings(tmp_path, monkeypatch):
    p = tmp_path / "s.ply"
    trimesh.creation.icosphere(subdivisions=2, radius=0.5).export(p)
    data = DataConfig(sdf_samples=300, cache_dir=str(tmp_path / "c"))
    a = sdf.load_signal([p], data).samples
    monkeypatch.setattr(sdf, "sample_sdf", lambda *a, **k: pytest.fail("sampled again"))
    assert torch.equal(sdf.load_signal([p], data).samples, a)
    monkeypatch.undo()
    data.sdf_samples = 200
    assert sdf.load_signal([p], data).samples.shape == (1, 200, 4)


def test_real_meshes_load_normalise_and_sample(shared_data, tmp_path):
    files = sorted((shared_data / "meshes").glob("*.obj"))
    assert len(files) == 5
    for f in files:
        m = sdf.load_mesh(f)
        norm, _, _ = sdf.normalise(m)
        assert abs(np.linalg.norm(norm.vertices, axis=1).max() - sdf.RADIUS) < 1e-6
    watertight = {f.name: sdf.load_mesh(f).is_watertight for f in files}
    assert watertight["spot.obj"] and watertight["cow.obj"] and not watertight["teapot.obj"]
    sig = sdf.load_signal([shared_data / "meshes" / "spot.obj"], DataConfig(sdf_samples=2000, cache_dir=str(tmp_path)))
    inside = (sig.samples[0, :, 3] < 0).float().mean()
    assert 0.1 < inside < 0.7  # near-surface samples fall on both sides


@pytest.fixture(scope="module")
def sphere_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("sdf")
    trimesh.creation.icosphere(subdivisions=3, radius=0.5).export(d / "sphere.ply")
    trimesh.creation.box(extents=[1.0, 0.6, 0.6]).export(d / "box.stl")
    run = d / "run"
    code, _, err = run_cli(["fit", "sdf", "--data", d / "sphere.ply", "--data", d / "box.stl", "--out", run,
                            "--steps", "80", "--samples", "3000", "--points", "1024", "--hidden", "48",
                            "--layers", "3", "--latent-dim", "8", "--quiet"])
    return run, d


def test_fit_sdf_and_every_command(sphere_run, tmp_path, capsys):
    run, d = sphere_run
    assert (run / "checkpoint.safetensors").is_file()
    code, out, err = run_cli(["eval", run, "--json"], capsys)
    res = json.loads(out.strip().splitlines()[-1])
    assert code == 0, err
    assert res["n"] == 2 and "chamfer_x1e3" in res and 0 <= res["iou"] <= 1 and len(res["shapes"]) == 2
    assert res["iou"] > 0.5  # a sphere and a box are easy
    assert res["scored"].startswith("training meshes")  # none held out; rows carry render's --index
    assert [(r["index"], r["shape"]) for r in res["shapes"]] == [(0, "sphere.ply"), (1, "box.stl")]
    for fmt in ("ply", "obj", "stl", "glb"):
        code, _, err = run_cli(["export-mesh", run, "--index", "0", "--res", "48", "--out", tmp_path / f"m.{fmt}"],
                               capsys)
        assert code == 0, err
        m = trimesh.load(tmp_path / f"m.{fmt}", force="mesh")
        assert len(m.faces) > 100 and np.abs(m.vertices).max() <= 1
    code, _, err = run_cli(["export-mesh", run, "--input", d / "sphere.ply", "--res", "48", "--original-units",
                            "--out", tmp_path / "u.ply"], capsys)
    assert code == 0, err
    r = np.linalg.norm(trimesh.load(tmp_path / "u.ply").vertices, axis=1)
    assert 0.35 < np.median(r) < 0.65  # back in the sphere's own units (radius 0.5)
    code, _, err = run_cli(["render", run, "--index", "1", "--res", "64", "--out", tmp_path / "r.png"], capsys)
    from PIL import Image
    img = np.asarray(Image.open(tmp_path / "r.png"))
    assert code == 0 and img.shape == (64, 64, 3) and img.std() > 5  # a shaded shape, not a blank
    code, _, err = run_cli(["interpolate", run, "--from", "0", "--to", "1", "--frames", "3", "--res", "32",
                            "--out", tmp_path / "frames"], capsys)
    assert code == 0 and len(list((tmp_path / "frames").glob("frame_*.ply"))) == 3, err
    code, _, err = run_cli(["interpolate", run, "--from", "0", "--to", d / "box.stl", "--frames", "3", "--res", "32",
                            "--out", tmp_path / "v.gif"], capsys)
    assert code == 0 and f"wrote {tmp_path / 'v.gif'}" in err, err
    code, _, err = run_cli(["sample", run, "--n", "2", "--out", tmp_path / "s.png"], capsys)
    assert code == 0 and f"wrote {tmp_path / 's.png'}" in err, err
    for args, flag in [(["render", "--index", "0", "--sample-rate", "8000"], "--sample-rate"),
                       (["eval", "--plot", "p.png"], "--plot"), (["sample", "--compare"], "--compare"),
                       (["interpolate", "--from", "0", "--to", "1", "--pairs", "2"], "--pairs")]:
        code, _, err = run_cli([args[0], run, *args[1:]] + ([] if args[0] == "eval" else ["--out", tmp_path / "o.gif"]),
                               capsys)
        assert code == 2 and flag in err and "not used for SDF runs" in err and len(err.strip().splitlines()) == 1, err
    code, _, err = run_cli(["interpolate", run, "--from", "0", "--to", "1", "--out", tmp_path / "m.png"], capsys)
    assert code == 2 and "cannot write .png" in err, err


def test_eval_scores_the_held_out_meshes_when_the_run_has_them(tmp_path, capsys):
    trimesh.creation.icosphere(subdivisions=2, radius=0.5).export(tmp_path / "sphere.ply")
    trimesh.creation.box(extents=[1.0, 0.6, 0.6]).export(tmp_path / "box.stl")
    run = tmp_path / "run"
    code, _, err = run_cli(["fit", "sdf", tmp_path / "sphere.ply", "--val", tmp_path / "box.stl", "--out", run,
                            "--steps", "1", "--samples", "500", "--points", "256", "--hidden", "16", "--layers", "2",
                            "--latent-dim", "4", "--quiet"], capsys)
    assert code == 0, err
    code, out, err = run_cli(["eval", run, "--json"], capsys)
    res = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and res["scored"] == "held-out meshes" and res["n"] == 1, err
    assert [(r["index"], r["shape"]) for r in res["shapes"]] == [(0, "box.stl")]


@pytest.mark.parametrize("case", ["missing", "not_a_mesh", "empty"])
def test_bad_meshes_give_one_line_errors(case, tmp_path, capsys):
    p = tmp_path / "shape.obj"
    if case == "not_a_mesh":
        p = tmp_path / "shape.ply"
        p.write_bytes(b"\x89PNG\r\n\x1a\n not a mesh at all")
    elif case == "empty":
        p.write_text("# an OBJ with no faces\nv 0 0 0\n")
    code, _, err = run_cli(["fit", "sdf", "--data", p, "--out", tmp_path / "r", "--steps", "1"], capsys)
    expected = {"missing": "file not found", "not_a_mesh": "not a", "empty": "empty"}[case]
    assert code == 1 and "Traceback" not in err and str(p) in err and expected in err, err


@pytest.mark.parametrize("call,needle", [
    (lambda g, z: g.volume(z, -4), r"volume res = -4: must be at least 2"),
    (lambda g, z: g.volume(z, "8"), r"volume res = '8'"), (lambda g, z: g.volume(z, 8.5), "volume res = 8.5"),
    (lambda g, z: g.volume(np.zeros((10**6, 8), np.float32), 8), "1000000 volumes: at most 10,000"),
    (lambda g, z: g.render(z, res=0), "render res = 0"),  # drew at 256 px: 0 read as "not given"
    (lambda g, z: g.render(z, res=-1), "render res = -1"),
    (lambda g, z: g.render(np.zeros((10**5, 8), np.float32), res=64), "more than 268,435,456 rays"),
    (lambda g, z: g.encode(np.zeros((4, 3))), r"an array of shape \(4, 3\): an SDF run reads mesh files"),
    (lambda g, z: g.mesh(index=0, res=16, out=5), "GON.mesh out = 5: give a path"),
    (lambda g, z: g.render(z, index=0), "GON.render index=: not used with latents z"),  # was "not used for SDF runs"
    (lambda g, z: g.encode([g.cfg.data.paths[0]] * 2), r"encode: an SDF run takes one mesh at a time \(2 given\)")])
def test_the_api_checks_sizes_and_types_before_any_work(sphere_run, call, needle):
    """GON.volume and render(z) on an SDF run: res typed and ranged as the CLI's, the count of shapes bounded
    (each is its own pass or sphere trace: 100,000 latents at 64 px ran for minutes unrefused)."""
    from implicit_gon import GON, GONError
    gon = GON.load(sphere_run[0], "cpu")
    with pytest.raises(GONError, match=needle):
        call(gon, np.zeros((1, 8), np.float32))
    assert gon.volume(np.zeros((2, 8), np.float32), 8).shape == (2, 8, 8, 8)  # the default path still works


def test_moved_training_meshes_are_named_with_what_to_do(tmp_path, capsys):
    """render --index, export-mesh and eval encode the run's training meshes (a latent is a step on their
    samples): moved, the line says so and what to give instead; sample needs none."""
    trimesh.creation.icosphere(subdivisions=2, radius=0.5).export(tmp_path / "sphere.ply")
    run = tmp_path / "run"
    code, _, err = run_cli(["fit", "sdf", tmp_path / "sphere.ply", "--out", run, "--steps", "2", "--samples",
                            "1000", "--points", "256", "--hidden", "16", "--layers", "2", "--quiet"], capsys)
    assert code == 0, err
    (tmp_path / "sphere.ply").rename(tmp_path / "moved.ply")
    for args in (["render", run, "--index", "0", "--res", "16", "--out", tmp_path / "r.png"], ["eval", run],
                 ["export-mesh", run, "--index", "0", "--res", "8", "--out", tmp_path / "m.ply"]):
        code, _, err = run_cli(args, capsys)
        assert code == 1 and len(err.strip().splitlines()) == 1, err
        assert f"{tmp_path / 'sphere.ply'}: not found (the run reads its training meshes" in err and "--input" in err
    code, _, err = run_cli(["sample", run, "--n", "1", "--out", tmp_path / "s.png"], capsys)
    assert code == 0, err


def test_a_stop_during_trimeshs_import_is_not_swallowed(tmp_path):
    """trimesh's optional imports catch BaseException, so a stop raised inside `import trimesh` was lost and the
    run trained on to exit 0. A stand-in trimesh that swallows a SIGTERM arriving during its import: the stop is
    raised once the import ends."""
    import subprocess
    import sys

    from conftest import REPO
    (tmp_path / "trimesh.py").write_text("import os, signal, time\ntry:\n    os.kill(os.getpid(), signal.SIGTERM)\n"
                                         "    time.sleep(0.1)\nexcept BaseException:\n    pass\n")
    code = (f"import sys\nsys.path.insert(0, {str(tmp_path)!r})\nfrom implicit_gon import interrupts\n"
            "from signals import sdf\ninterrupts.install()\n"
            "try:\n    sdf.import_trimesh()\n    print('swallowed')\nexcept interrupts.Stop as e:\n    print('stopped', e.name)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert p.stdout.strip() == "stopped SIGTERM", (p.stdout, p.stderr)


@pytest.mark.parametrize("args,needle", [
    (["encode", "RUN", "D/sphere.ply", "D/box.stl", "--out", "T/z.npy"],
     "encode: an SDF run takes one mesh at a time (2 given)"),
    (["render", "RUN", "--input", "D/sphere.ply", "--input", "D/box.stl", "--out", "T/r.png"],
     "render --input: an SDF run takes one mesh at a time (2 given)"),
    (["render", "RUN", "--index", "0", "--input", "D/sphere.ply", "--out", "T/r.png"], "give exactly one of --index"),
    (["export-mesh", "RUN", "--index", "0", "--res", "16", "--format", "glb", "--out", "T/m.ply"],
     "--format glb but --out T/m.ply names ply")])
def test_sdf_command_line_conflicts_exit_2(sphere_run, args, needle, tmp_path, capsys):
    """Two meshes where a verb takes one, --index with --input, a --format the output's name contradicts: the
    command line is wrong (exit 2, as for a flag out of range), not a file (1); the verb is named."""
    run, d = sphere_run
    fill = lambda a: str(a).replace("RUN", str(run)).replace("D/", f"{d}/").replace("T/", f"{tmp_path}/")  # noqa: E731
    code, _, err = run_cli([fill(a) for a in args], capsys)
    assert code == 2 and err.count("\n") == 1 and fill(needle) in err, err
    assert not any(tmp_path.iterdir())
