"""Meshes from files (signals/meshes.py): what each format declares is checked against what it holds, hostile files
are one line, and whole files with comments, polygons and relative indices still load."""
import re

import pytest
import trimesh

from implicit_gon.errors import DataError
from signals.meshes import load_mesh


def _binary_ply(path, faces):
    """A binary PLY of a tetrahedron's 4 vertices and the given faces, indices written as they are."""
    import struct
    head = ("ply\nformat binary_little_endian 1.0\nelement vertex 4\nproperty float x\nproperty float y\n"
            "property float z\nelement face %d\nproperty list uchar int vertex_indices\nend_header\n" % len(faces))
    verts = b"".join(struct.pack("<3f", *v) for v in ((0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1)))
    path.write_bytes(head.encode() + verts + b"".join(struct.pack("<B3i", 3, *f) for f in faces))


@pytest.mark.parametrize("case,needle", [
    ("index_high", "a face refers to vertex 2147483647; the mesh has 4 (0..3)"),
    ("index_negative", "a face refers to vertex -5; the mesh has 4"),
    ("huge", "a coordinate of 1e+308; meshes are read up to 1e+30")])
def test_hostile_meshes_are_one_line_before_any_work(case, needle, tmp_path):
    """A binary PLY's face indices are read as written (2**31 - 1 was an IndexError traceback from trimesh's
    processing); coordinates of 1e308 trained a collapsed shape and stored an infinite scale."""
    p = tmp_path / ("m.obj" if case == "huge" else "m.ply")
    tet = [(0, 2, 1), (0, 1, 3), (0, 3, 2)]
    if case == "huge":
        p.write_text("v 1e308 0 0\nv -1e308 0 0\nv 0 1e308 0\nv 0 0 1e308\nf 1 2 3\nf 1 3 4\nf 1 2 4\nf 2 3 4\n")
    else:
        _binary_ply(p, tet + [(1, 2, 2**31 - 1 if case == "index_high" else -5)])
    with pytest.raises(DataError, match=re.escape(f"{p}: {needle}")):
        load_mesh(p)


TET_ASCII = "0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 2 1\n3 0 1 3\n"


def _ascii_ply(vertices: int, faces: int, comment: str = "") -> str:
    return (f"ply\nformat ascii 1.0\n{comment}element vertex {vertices}\nproperty float x\nproperty float y\n"
            f"property float z\nelement face {faces}\nproperty list uchar int vertex_indices\nend_header\n")


@pytest.mark.parametrize("name,text,needle", [
    ("m.ply", _ascii_ply(4, 2_000_000_000) + TET_ASCII,
     "the header declares 2,000,000,000 faces; the file holds 2 (truncated or corrupt)"),
    ("m.ply", _ascii_ply(400, 2) + TET_ASCII, "the header declares 400 vertices; the file holds 6"),
    ("m.ply", _ascii_ply(4, 1) + TET_ASCII, "the header declares 5 elements (one per line); the file has 6 lines"),
    ("m.ply", _ascii_ply(4, 2_000_000_000, "comment " + "x" * 70_000 + "\n") + TET_ASCII,
     "no end_header in the first 65,536 bytes"),
    ("m.off", "OFF\n5 2 0\n" + TET_ASCII, "the header declares 2 faces; the file holds 1"),
    ("m.off", "OFF\n4 1 0\n" + TET_ASCII, "the header declares 5 elements (one per line); the file has 6 lines"),
    ("m.off", "OFF\n4 2 0\n" + TET_ASCII.replace("3 0 2 1", "1000000000 0 2 1"),
     "face 0 declares 1,000,000,000 vertices and lists 3 (corrupt)"),
    ("m.ply", _ascii_ply(4, 2) + TET_ASCII.replace("3 0 1 3", "200 0 1 3 0"),
     "face 1 declares 200 vertices and lists 4 (corrupt)"),
    ("m.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 0 1 2\nf 1 2 3\n",
     "a face refers to vertex 0 (OBJ numbers vertices from 1)")])
def test_a_mesh_holding_other_than_its_header_declares_is_refused(name, text, needle, tmp_path):
    """trimesh reads an ASCII PLY or OFF line by line as far as it goes: 2e9 faces declared with 2 present trained
    on the 2, one vertex too many read a face line as a vertex, one face too few dropped the last, and a 70 KB
    comment hid the counts from a check that read 64 KB; a face line whose count lies was read as the triangle of
    its first indices; an OBJ face of vertex 0 became the last vertex."""
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(DataError, match=re.escape(f"{p}: {needle}")):
        load_mesh(p)


def test_whole_meshes_with_comments_polygons_and_relative_indices_still_load(tmp_path):
    files = {"quads.ply": _ascii_ply(4, 2) + "0 0 0\n1 0 0\n1 1 0\n0 0 1\n4 0 1 2 3\n3 0 1 3\n",
             "m.off": "OFF\n# a comment\n4 2 0\n\n" + TET_ASCII, "inline.off": "OFF 4 2 0\n" + TET_ASCII,
             "no-edges.off": "OFF\n4 2\n" + TET_ASCII,  # the edge count is optional (it took a vertex line)
             "colours.off": "OFF\n4 2 0\n" + TET_ASCII.replace("3 0 2 1", "3 0 2 1 255 0 0"),  # after the indices
             "flagged.ply": _ascii_ply(4, 2).replace("property list", "property uchar flag\nproperty list")
             + TET_ASCII.replace("3 0 2 1", "9 3 0 2 1").replace("3 0 1 3", "9 3 0 1 3"),  # the list comes second
             "m.obj": "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 1/1 2/0 3\nf -4 -3 -1\n"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert [len(load_mesh(tmp_path / n).faces) for n in files] == [3, 2, 2, 2, 2, 2, 2]
    binary = trimesh.creation.box().export(file_type="ply", encoding="binary")  # "format ascii" in a comment only
    (tmp_path / "b.ply").write_bytes(binary.replace(b"end_header", b"comment made from format ascii\nend_header"))
    assert len(load_mesh(tmp_path / "b.ply").faces) == 12
    trimesh.creation.icosphere(subdivisions=1).export(tmp_path / "ok.stl")
    assert len(load_mesh(tmp_path / "ok.stl").faces) == 80


def test_a_binary_stl_whose_count_disagrees_with_its_size_says_so(tmp_path):
    """trimesh reads such a file as ASCII and finds nothing: "the mesh is empty" hid a corrupt header."""
    p = tmp_path / "m.stl"
    trimesh.creation.icosphere(subdivisions=1).export(p)  # 80 triangles: 84 + 80 x 50 = 4,084 bytes
    b = bytearray(p.read_bytes())
    b[80:84] = (1000).to_bytes(4, "little")
    p.write_bytes(bytes(b))
    with pytest.raises(DataError, match=re.escape(f"{p}: not an ASCII STL, and as a binary one its header declares "
                                                  f"1,000 triangles (50,084 bytes) where the file has 4,084")):
        load_mesh(p)


def test_a_face_listed_many_times_is_one_face(tmp_path):
    """250,000 copies of one face (a 2 MB OBJ) made every distance query walk them all: minutes per fit."""
    p = tmp_path / "dup.obj"
    p.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\n" + "f 2 3 4\n" * 1000 + "f 1 3 2\nf 1 2 4\nf 1 4 3\n")
    assert len(load_mesh(p).faces) == 4


@pytest.mark.parametrize("face", ["-0", "00", "+0"])
def test_obj_vertex_zero_in_any_spelling_is_refused(face, tmp_path):
    """`f 2 3 -0` was read as the face (1, 2, 0), a copy merged away: 3 of 4 faces trained on."""
    p = tmp_path / "m.obj"
    p.write_text(f"v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 1 2 3\nf 1 2 4\nf 1 3 4\nf 2 3 {face}\n")
    with pytest.raises(DataError, match=re.escape(f"{p}: a face refers to vertex 0")):
        load_mesh(p)


def test_a_missing_file_and_a_point_cloud_say_so(tmp_path):
    """A missing path was 'not a readable mesh (ValueError: string is not a file ...)'; a PLY of vertices only
    'the header declares 3 vertices; the file holds 0'."""
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'no.obj'}: no such file")):
        load_mesh(tmp_path / "no.obj")
    p = tmp_path / "cloud.ply"
    p.write_text(_ascii_ply(3, 0).replace("element face 0\nproperty list uchar int vertex_indices\n", "")
                 + "0 0 0\n1 0 0\n0 1 0\n")
    with pytest.raises(DataError, match=re.escape(f"{p}: its header declares no faces (a point cloud, not a mesh)")):
        load_mesh(p)


def test_an_obj_whose_material_is_a_fifo_loads_without_waiting(tmp_path):
    """trimesh opened an OBJ's mtllib wherever it pointed: a FIFO blocked the load forever, inside trimesh's
    `except BaseException`, so a SIGTERM there was swallowed. Run in a child with a time limit: a hang fails."""
    import os
    import subprocess
    import sys
    p = tmp_path / "c.obj"
    p.write_text("mtllib m.mtl\n" + trimesh.creation.box().export(file_type="obj"))
    os.mkfifo(tmp_path / "m.mtl")
    code = f"from signals.meshes import load_mesh; print(len(load_mesh({str(p)!r}).faces))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert r.returncode == 0 and r.stdout.strip() == "12", r.stderr


def test_an_obj_line_that_goes_on_to_the_next_is_refused(tmp_path):
    """trimesh reads each line alone: `f 1 \\` then `2 3` trained on garbage faces without a word."""
    p = tmp_path / "m.obj"
    p.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 1 2 3\nf 1 2 4\nf 1 \\\n3 4\nf 2 3 4\n# ends \\\n")
    with pytest.raises(DataError, match=re.escape(f"{p}: line 7 goes on to the next (it ends in a backslash)")):
        load_mesh(p)
