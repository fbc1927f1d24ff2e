"""`dataset info RUN|FOLDER` (signals/listing.py): the clips or meshes of a run or a folder, numbered as render,
export-mesh and interpolate --index and eval number them."""
import json

import trimesh

from conftest import run_cli


def _listing(path, capsys) -> dict:
    code, out, err = run_cli(["dataset", "info", path, "--json"], capsys)
    assert code == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_a_folder_of_meshes_is_numbered_in_sorted_order(shared_data, capsys):
    meshes = shared_data / "meshes"
    found = _listing(meshes, capsys)
    assert list(found) == ["sdf"] and found["sdf"] == [str(p) for p in sorted(meshes.glob("*.obj"))]
    code, out, _ = run_cli(["dataset", "info", meshes], capsys)
    assert code == 0 and "  0  cow.obj  (" in out and "--index" in out  # the table says what counts them


def test_an_sdf_run_lists_the_meshes_render_index_and_eval_count(tmp_path, capsys):
    from implicit_gon import GON
    from signals import sdf
    for name, mesh in [("sphere.ply", trimesh.creation.icosphere(subdivisions=2, radius=0.5)),
                       ("box.stl", trimesh.creation.box(extents=[1.0, 0.6, 0.6])),
                       ("cone.obj", trimesh.creation.cone(radius=0.5, height=1.0))]:
        mesh.export(tmp_path / name)
    run = tmp_path / "run"
    code, _, err = run_cli(["fit", "sdf", tmp_path / "sphere.ply", tmp_path / "box.stl", "--val", tmp_path / "cone.obj",
                            "--out", run, "--steps", "1", "--samples", "500", "--points", "256", "--hidden", "16",
                            "--layers", "2", "--latent-dim", "4", "--quiet"], capsys)
    assert code == 0, err
    files = _listing(run, capsys)
    assert files["signal"] == "sdf" and files["held out"] == [str(tmp_path / "cone.obj")]
    assert files["training"] == [str(tmp_path / n) for n in ("sphere.ply", "box.stl")]  # the order given
    assert files["training"] == list(map(str, sdf.signal_for_run(GON.load(run, "cpu"), None).names))  # --index's
    code, out, err = run_cli(["eval", run, "--json"], capsys)
    assert code == 0, err
    rows = json.loads(out.strip().splitlines()[-1])["shapes"]
    assert [(r["index"], r["shape"]) for r in rows] == [(0, "cone.obj")]  # eval scored the held-out list


def test_an_audio_run_lists_the_clips_eval_names(shared_data, tmp_path, capsys):
    a, b = (shared_data / "audio" / n for n in ("cmu_arctic_us_axb_a0005.wav", "cmu_arctic_us_axb_a0004.wav"))
    run = tmp_path / "run"
    code, _, err = run_cli(["fit", "audio", a, b, "--out", run, "--steps", "1", "--batch-size", "4", "--hidden", "16",
                            "--layers", "2", "--quiet"], capsys)
    assert code == 0, err
    files = _listing(run, capsys)
    assert files == {"signal": "audio", "training": [str(a.resolve()), str(b.resolve())], "held out": []}  # as stored
    code, out, err = run_cli(["eval", run, "--json"], capsys)
    names = json.loads(out.strip().splitlines()[-1])["clip_names"]
    assert code == 0 and names == f"0: {a.name}, 1: {b.name}", err


def test_image_flags_and_folders_without_clips_or_meshes_are_one_line_errors(shared_data, tmp_path, capsys):
    code, _, err = run_cli(["dataset", "info", shared_data / "meshes", "--res", "32"], capsys)
    assert code == 2 and "--res" in err and len(err.strip().splitlines()) == 1, err
    (tmp_path / "notes.txt").write_text("not a clip")
    code, _, err = run_cli(["dataset", "info", tmp_path], capsys)
    assert code == 1 and str(tmp_path) in err and "--data-dir" in err and len(err.strip().splitlines()) == 1, err
    code, _, err = run_cli(["dataset", "info", tmp_path / "absent"], capsys)  # neither a dataset nor a path
    assert code == 1 and "unknown dataset" in err and len(err.strip().splitlines()) == 1, err
