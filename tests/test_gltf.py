"""glTF and GLB (signals/gltf.py): the files they name, the spans, references and placements they declare, each
checked against the data they hold before trimesh reads them."""
import json
import re
from pathlib import Path

import pytest
import trimesh

from implicit_gon.errors import DataError, GONError
from signals.meshes import load_mesh


@pytest.mark.parametrize("uri,needle", [
    ("../secret.bin", "buffer 0 names '../secret.bin', outside the file's folder"),
    ("%2E%2E/secret.bin", "buffer 0 names '%2E%2E/secret.bin', outside the file's folder"),
    ("missing.bin", "buffer 0 names 'missing.bin', which is not there"),
    (None, "not a glTF (its JSON does not parse: ")])
def test_a_gltf_reads_only_the_files_beside_it(uri, needle, tmp_path):
    """A glTF naming a buffer outside its folder, or one that is not there, is one line of ours (trimesh's told
    the user to `pass FilePathResolver(path, allow_anywhere=True)`); the same file with its own buffer loads."""
    (tmp_path / "m").mkdir()
    files = trimesh.creation.box().export(file_type="gltf")  # {"model.gltf": JSON, buffer name: bytes}
    for name, data in files.items():
        (tmp_path / "m" / name).write_bytes(data)
    p = tmp_path / "m" / "model.gltf"
    assert len(load_mesh(p).faces) == 12
    doc = json.loads(p.read_text())
    (tmp_path / "secret.bin").write_bytes((tmp_path / "m" / doc["buffers"][0]["uri"]).read_bytes())
    doc["buffers"][0]["uri"] = uri
    p.write_text(json.dumps(doc) if uri else "{not json")  # trimesh said "FileNotFoundError: model.gltf"
    with pytest.raises(DataError, match=re.escape(f"{p}: {needle}")):
        load_mesh(p)


def test_a_glb_declaring_more_than_it_holds_is_refused_before_reading(tmp_path):
    """48 bytes declaring a 4 GB JSON chunk: trimesh allocated it (MemoryError); a real GLB still loads."""
    import struct

    bad = tmp_path / "j.glb"
    bad.write_bytes(b"glTF" + struct.pack("<III", 2, 48, 0xFFFFFFF0) + b"JSON{}" + b" " * 26)
    with pytest.raises(DataError, match=re.escape(f"{bad}: a GLB chunk of 4,294,967,280 bytes at byte 12")):
        load_mesh(bad)
    trimesh.creation.icosphere(1).export(tmp_path / "ok.glb")
    assert len(load_mesh(tmp_path / "ok.glb").faces) == 80


def _gltf_box(folder: Path) -> tuple[Path, dict]:
    """trimesh's box as a .gltf with its two buffer files, in `folder`; returns its path and parsed JSON."""
    folder.mkdir()
    for name, data in trimesh.creation.box().export(file_type="gltf").items():
        (folder / name).write_bytes(data)
    return folder / "model.gltf", json.loads((folder / "model.gltf").read_text())


def test_a_gltf_names_its_files_percent_encoded(tmp_path):
    """The glTF spec percent-encodes URIs: 'my%20buffer.bin' is the file 'my buffer.bin' (trimesh looked up the
    name as written: FileNotFoundError)."""
    p, doc = _gltf_box(tmp_path / "m")
    (p.parent / doc["buffers"][0]["uri"]).rename(p.parent / "my buffer.bin")
    doc["buffers"][0]["uri"] = "my%20buffer.bin"
    p.write_text(json.dumps(doc))
    assert len(load_mesh(p).faces) == 12


@pytest.mark.parametrize("kind,i,field,value,needle", [
    ("buffers", 0, "byteLength", 4_000_000_000, "buffer 0 declares 4,000,000,000 bytes; its data holds 144"),
    ("bufferViews", 0, "byteOffset", 4_000_000_000,
     "bufferView 0 spans bytes 4,000,000,000-4,000,000,144 of buffer 0, which declares 144"),
    ("bufferViews", 1, "buffer", 7, "bufferView 1 spans bytes 0-96 of buffer 7, which is not there"),
    ("accessors", 0, "count", 1_000_000_000, "accessor 0 reads 1,000,000,000 items from bufferView 0, which holds 144"),
    ("accessors", 1, "bufferView", 9, "accessor 1 reads 8 items from bufferView 9, which is not there"),
    ("accessors", 0, "byteOffset", -4, "accessor 0's byteOffset is -4, not a whole number of at least 0"),
    ("accessors", 0, "count", 2.5, "accessor 0's count is 2.5, not a whole number of at least 0")])
def test_a_gltf_declaring_spans_past_its_data_is_refused(kind, i, field, value, needle, tmp_path):
    """A view past its buffer was trimesh's bare AssertionError, an accessor past its view a reshape error."""
    p, doc = _gltf_box(tmp_path / "m")
    doc[kind][i][field] = value
    p.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=re.escape(f"{p}: {needle}")):
        load_mesh(p)


def test_a_glb_buffer_longer_than_its_bin_chunk_is_refused(tmp_path):
    import struct

    trimesh.creation.box().export(tmp_path / "ok.glb")
    raw = (tmp_path / "ok.glb").read_bytes()
    n = struct.unpack("<I", raw[12:16])[0]
    doc = json.loads(raw[20:20 + n])
    held = doc["buffers"][0]["byteLength"]
    doc["buffers"][0]["byteLength"] = held + 100
    text = json.dumps(doc).encode()
    text += b" " * (-len(text) % 4)
    body = struct.pack("<I", len(text)) + b"JSON" + text + raw[20 + n:]
    bad = tmp_path / "bad.glb"
    bad.write_bytes(b"glTF" + struct.pack("<II", 2, 12 + len(body)) + body)
    assert len(load_mesh(tmp_path / "ok.glb").faces) == 12
    with pytest.raises(DataError, match=re.escape(f"{bad}: buffer 0 declares {held + 100:,} bytes; its data holds")):
        load_mesh(bad)


def _write(p: Path, doc: dict) -> Path:
    p.write_text(json.dumps(doc))
    return p


def _append_accessor(doc: dict) -> None:
    doc["accessors"].append({"componentType": 5126, "type": "VEC3", "count": 10**9})  # zeros: no bufferView


def _chain(doc: dict) -> None:
    """The box's node at the end of a chain of 100 (trimesh's time grows with the cube of the depth: minutes)."""
    doc["nodes"] = [{"children": [i + 1]} for i in range(100)] + doc["nodes"]
    doc["scenes"] = [{"nodes": [0]}]


@pytest.mark.parametrize("change,needle", [
    (lambda d: d["accessors"][1].update(sparse={"count": 1}), "accessor 1 is sparse, which is not supported"),
    (lambda d: d["bufferViews"][d["accessors"][1]["bufferView"]].update(byteStride=4),
     "bufferView 1's byteStride 4 is less than accessor 1's 12-byte items"),
    (lambda d: d["nodes"][0].update(mesh=5), "node 0 places mesh 5, which is not there"),
    (lambda d: d["nodes"][0].update(children=[0]), "its nodes are reached more than 100,000 times"),
    (lambda d: d["meshes"][0]["primitives"][0].update(indices=99), "mesh 0 primitive 0 names accessor 99, which is"),
    (lambda d: d["buffers"][0].update(uri="data:application/octet-stream;base64,AAAA"),
     "buffer 0 declares 144 bytes; its data holds 3"),
    (_append_accessor, "its accessors and the meshes its nodes place (3,000,000,"),
    (lambda d: d["meshes"][0].update(primitives=d["meshes"][0]["primitives"] * 20_000),
     "its accessors and the meshes its nodes place ("),
    (_chain, "its nodes are reached more than 100,000 times or nest more than 64 deep"),
    (lambda d: d.update(scene=5), "the file names scene 5, which is not there"),
    (lambda d: d["nodes"][0].update(children=3), "node 0's children is 3, not a list"),
    (lambda d: d["meshes"][0]["primitives"][0].update(material=7), "mesh 0 primitive 0 names material 7, which is"),
    (lambda d: d["buffers"][0].pop("uri"), "buffer 0 names no data (only a GLB's first buffer"),
    (lambda d: d["bufferViews"][0].update(byteStride=0), "bufferView 0's byteStride is 0, outside glTF's 4-252"),
    (lambda d: d["buffers"][0].update(uri="data:application/octet-stream;base64," + "AAAA " * 20 + " " * 400),
     "buffer 0 declares 144 bytes; its data holds 60")])
def test_a_gltf_whose_references_or_placements_are_wrong_is_refused(change, needle, tmp_path, monkeypatch):
    """trimesh ignored a sparse accessor (the wrong shape, silently), read a stride shorter than an item as
    overlapping garbage, walked a node cycle, said 'the mesh is empty' for a node placing no mesh, and read a
    primitive listed 200 times 200 times over (2.9 GB from a 10 KB file), and made 10^9 items of zeros; an index
    past the list or a non-list where a list belongs was an IndexError or TypeError; base64's spaces, which decoding
    drops, counted as data."""
    monkeypatch.setenv("IMPLICIT_GON_MEMORY", "100M")  # the same budget on every machine
    p, doc = _gltf_box(tmp_path / "m")
    change(doc)
    with pytest.raises(GONError, match=re.escape(f"{_write(p, doc)}: {needle}")):
        load_mesh(p)


def test_a_gltf_nested_deeper_than_any_real_one_is_one_line(tmp_path):
    """100,000 levels of `{"a":` was a RecursionError traceback."""
    p = tmp_path / "deep.gltf"
    p.write_text('{"a":' * 100_000 + "1" + "}" * 100_000)
    with pytest.raises(DataError, match=re.escape(f"{p}: not a glTF (its JSON is nested more than 32 deep)")):
        load_mesh(p)


def test_a_gltf_is_read_beside_its_real_file_and_only_from_regular_files(tmp_path):
    """A symlinked glTF was checked beside its target but read beside the link (trimesh's advice for programmers
    leaked out); an image that is a FIFO blocked the read forever (and swallowed a SIGTERM)."""
    import os
    p, doc = _gltf_box(tmp_path / "m")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "link.gltf").symlink_to(p)
    assert len(load_mesh(tmp_path / "elsewhere" / "link.gltf").faces) == 12
    (tmp_path / "outside.png").write_bytes(b"not read")
    doc["images"] = [{"uri": "../outside.png"}]  # a texture is not needed: one outside the folder is not read
    assert len(load_mesh(_write(p, doc)).faces) == 12
    os.mkfifo(p.parent / "tex.png")
    doc["images"] = [{"uri": "tex.png"}]
    needle = "image 0 names 'tex.png', which is not a regular file"
    with pytest.raises(DataError, match=re.escape(f"{_write(p, doc)}: {needle}")):
        load_mesh(p)


def test_a_huge_texture_is_skipped_not_decoded(tmp_path):
    """An image a glTF names is not needed for a shape: one declaring 10,000 x 10,000 pixels (a 419 KB PNG of
    12,000 x 12,000 took 3 GB) is skipped as an unreadable one is, without PIL's warning on stderr."""
    import struct
    import warnings
    import zlib

    from PIL import Image
    p, doc = _gltf_box(tmp_path / "m")
    ihdr = struct.pack(">IIBBBBB", 10_000, 10_000, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    (p.parent / "big.png").write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk
                                       + struct.pack(">I", zlib.crc32(chunk)))
    doc["images"] = [{"uri": "big.png"}]
    doc["textures"] = [{"source": 0}]
    bound = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert len(load_mesh(_write(p, doc)).faces) == 12
    assert not [w for w in seen if issubclass(w.category, Image.DecompressionBombWarning)]
    assert Image.MAX_IMAGE_PIXELS == bound
