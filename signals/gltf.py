"""glTF and GLB files checked before trimesh reads them: every length, span and reference they declare lies within
the data they have, and what their nodes place fits in memory, so a hostile file is one line of error, not an
allocation of gigabytes, a bare AssertionError, or a mesh silently read wrong.

A glTF is JSON (a .gltf, or a GLB's JSON chunk) describing buffers (files beside it, data: URIs, or a GLB's BIN
chunk), views (byte spans of a buffer), accessors (typed items read from a view), meshes (primitives naming
accessors) and nodes (placing meshes, and other nodes, in a scene).
"""
from __future__ import annotations

import json
import os
import re
import struct
from pathlib import Path
from urllib.parse import unquote

from implicit_gon import jsonio, limits
from implicit_gon.errors import DataError

MAX_JSON = 64 << 20  # bytes of a glTF's JSON (a real one is kilobytes; its arrays live in buffers)
MAX_DEPTH = 32  # JSON nesting (a glTF's is about 6 deep): 100,000 `{` was a RecursionError
MAX_PLACEMENTS = 100_000  # meshes placed by the nodes, counted as they are walked (a cycle never ends)
MAX_NODE_DEPTH = 64  # nodes within nodes (a character's skeleton is a few dozen deep)
BYTES_PER_VALUE = 48  # memory trimesh holds per accessor value it reads (measured: ~38 for an icosphere placed 200x)
COMPONENT_BYTES = {5120: 1, 5121: 1, 5122: 2, 5123: 2, 5125: 4, 5126: 4}
TYPE_COMPONENTS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}


def check(path: Path) -> None:
    """Refuse, with one line naming `path`, a glTF or GLB whose declarations its data does not bear out."""
    path = Path(path)
    glb = path.suffix.lower() == ".glb"
    if glb and not _check_glb(path):
        return  # not binary glTF: trimesh says what it is
    text = _json(path, glb)
    if jsonio.depth(text) > MAX_DEPTH:
        raise DataError(f"{path}: not a glTF (its JSON is nested more than {MAX_DEPTH} deep)")
    try:
        doc = json.loads(text)
    except RecursionError:  # nesting that depth() could not see (its count of escaped quotes is bounded)
        raise DataError(f"{path}: not a glTF (its JSON is nested more than {MAX_DEPTH} deep)") from None
    except (ValueError, UnicodeDecodeError) as e:  # trimesh's own message named a file not found
        raise DataError(f"{path}: not a glTF (its JSON does not parse: {str(e).splitlines()[0][:120]})") from None
    doc = doc if isinstance(doc, dict) else {}
    sizes = _buffer_sizes(path, doc)
    if glb and _items(doc, "buffers") and "uri" not in _items(doc, "buffers")[0]:
        sizes[0] = _bin_length(path)  # a GLB's first buffer is its BIN chunk
    values = _check_spans(path, doc, sizes)
    _check_placements(path, doc, values)


def _check_glb(path: Path) -> bool:
    """A GLB's declared lengths (its header, then each chunk's) within the file, before trimesh allocates them: a
    48-byte file declaring a 4 GB JSON chunk was a MemoryError. False if the file is not binary glTF."""
    with open(path, "rb") as f:
        size, head = os.fstat(f.fileno()).st_size, f.read(12)
        if len(head) < 12 or head[:4] != b"glTF":
            return False
        declared, pos = struct.unpack("<I", head[8:12])[0], 12
        while pos + 8 <= min(size, declared):
            f.seek(pos)
            (length,) = struct.unpack("<I", f.read(4))
            if pos + 8 + length > size:
                raise DataError(f"{path}: a GLB chunk of {length:,} bytes at byte {pos}; the file has {size:,}")
            pos += 8 + length
    if declared > size:
        raise DataError(f"{path}: the GLB header declares {declared:,} bytes; the file has {size:,}")
    return True


def _json(path: Path, glb: bool) -> bytes:
    """A .gltf's text, or a GLB's JSON chunk (its lengths already checked), at most MAX_JSON bytes."""
    with open(path, "rb") as f:
        if not glb:
            if os.fstat(f.fileno()).st_size > MAX_JSON:
                raise DataError(f"{path}: a glTF larger than {MAX_JSON >> 20} MB (its data belongs in buffers)")
            return f.read()
        head = f.read(20)
        length = int.from_bytes(head[12:16], "little") if len(head) == 20 and head[16:20] == b"JSON" else 0
        if length > MAX_JSON:
            raise DataError(f"{path}: a GLB JSON chunk of {length:,} bytes (at most {MAX_JSON >> 20} MB)")
        return f.read(length)


def _bin_length(path: Path) -> int:
    """The length of a GLB's BIN chunk, which follows its JSON chunk (0 if it has none)."""
    with open(path, "rb") as f:
        f.seek(12)
        f.seek(20 + int.from_bytes(f.read(4), "little"))
        head = f.read(8)
    return int.from_bytes(head[:4], "little") if len(head) == 8 and head[4:] == b"BIN\0" else 0


def _items(doc: dict, kind: str) -> list[dict]:
    items = doc.get(kind)
    return [item if isinstance(item, dict) else {} for item in items] if isinstance(items, list) else []


def _buffer_sizes(path: Path, doc: dict) -> dict[int, int]:
    """The files a glTF's buffers name must lie beside it, in its folder or below, and be regular files (trimesh
    refused the others with advice for programmers, `pass FilePathResolver(path, allow_anywhere=True)`, and a FIFO
    blocked the read forever); so must its images that are there (one outside is not read, as a missing one is
    not: a shape needs no texture). Returns the bytes each buffer holds, from its file or its data: URI."""
    folder, sizes = Path(path).resolve().parent, {}
    for kind in ("buffers", "images"):
        for i, item in enumerate(_items(doc, kind)):
            uri = item.get("uri")
            if kind == "buffers" and uri is None and (i or path.suffix.lower() != ".glb"):
                raise DataError(f"{path}: buffer {i} names no data (only a GLB's first buffer, its BIN chunk, "
                                f"may have no uri)")
            if not isinstance(uri, str):
                continue
            if "base64," in uri:  # trimesh decodes any URI holding this as data
                payload = uri[uri.index("base64,") + 7:]
                if kind == "buffers":  # b64decode drops what is not in the alphabet: spaces, line breaks, '='
                    sizes[i] = len(re.sub(r"[^A-Za-z0-9+/]", "", payload)) * 3 // 4
                continue
            target = (folder / unquote(uri)).resolve()
            if kind == "images" and not (target.is_relative_to(folder) and target.exists()):
                continue  # not read (resolver: files beside the mesh only), and a shape needs no texture
            if not target.is_relative_to(folder):
                raise DataError(f"{path}: {kind[:-1]} {i} names {uri!r:.80}, outside the file's folder (a glTF is "
                                f"read with the files beside it only)")
            if not target.is_file():
                raise DataError(f"{path}: {kind[:-1]} {i} names {uri!r:.80}, which is "
                                f"{'not a regular file' if target.exists() else 'not there'}")
            if kind == "buffers":
                sizes[i] = target.stat().st_size
    return sizes


def _check_spans(path: Path, doc: dict, sizes: dict[int, int]) -> list[int]:
    """Each buffer within its data, each view within its buffer, each accessor within its view: trimesh failed on a
    view past its buffer with a bare AssertionError and on an accessor past its view with a reshape error. Returns
    the number of values each accessor holds."""
    buffers = [_whole(path, f"buffer {i}", b, "byteLength") for i, b in enumerate(_items(doc, "buffers"))]
    for i, size in sizes.items():
        if i < len(buffers) and buffers[i] > size:
            raise DataError(f"{path}: buffer {i} declares {buffers[i]:,} bytes; its data holds {size:,}")
    views = []
    for i, view in enumerate(_items(doc, "bufferViews")):
        start, length, b = (_whole(path, f"bufferView {i}", view, k) for k in ("byteOffset", "byteLength", "buffer"))
        if b >= len(buffers) or start + length > buffers[b]:
            raise DataError(f"{path}: bufferView {i} spans bytes {start:,}-{start + length:,} of buffer {b}, "
                            f"which {'is not there' if b >= len(buffers) else f'declares {buffers[b]:,}'}")
        stride = _whole(path, f"bufferView {i}", view, "byteStride")
        if "byteStride" in view and not 4 <= stride <= 252:
            raise DataError(f"{path}: bufferView {i}'s byteStride is {stride}, outside glTF's 4-252")
        views.append((length, stride))
    return [_check_accessor(path, i, acc, views) for i, acc in enumerate(_items(doc, "accessors"))]


def _check_accessor(path: Path, i: int, acc: dict, views: list[tuple[int, int]]) -> int:
    """Accessor i's items within its view (an accessor without one is zeros, its size bounded with the rest)."""
    count = _whole(path, f"accessor {i}", acc, "count")
    components = TYPE_COMPONENTS.get(acc.get("type"), 1)
    if "sparse" in acc:  # trimesh ignores it and reads the values it replaces: the wrong shape, silently
        raise DataError(f"{path}: accessor {i} is sparse, which is not supported (its replaced values would be lost)")
    if "bufferView" not in acc:
        return count * components
    v, start = (_whole(path, f"accessor {i}", acc, k) for k in ("bufferView", "byteOffset"))
    item = COMPONENT_BYTES.get(acc.get("componentType"), 1) * components
    if v < len(views) and 0 < views[v][1] < item:
        raise DataError(f"{path}: bufferView {v}'s byteStride {views[v][1]} is less than accessor {i}'s "
                        f"{item}-byte items")
    end = start + (count - 1) * max(views[v][1], item) + item if v < len(views) and count else start
    if v >= len(views) or end > views[v][0]:
        raise DataError(f"{path}: accessor {i} reads {count:,} items from bufferView {v}, which "
                        f"{'is not there' if v >= len(views) else f'holds {views[v][0]:,} bytes'}")
    return count * components


def _check_placements(path: Path, doc: dict, values: list[int]) -> None:
    """The meshes the nodes place, each placement read anew by trimesh: one primitive listed 200 times took 2.9 GB
    from a 10 KB file. Every reference must exist; the values read in all must fit in memory."""
    _check_references(path, doc)
    meshes = [_mesh_values(path, i, mesh, values) for i, mesh in enumerate(_items(doc, "meshes"))]
    placed = sum(meshes[m] for m in _placed_meshes(path, doc, len(meshes)))
    total = sum(values) + sum(meshes) + placed
    limits.check(f"{path}: its accessors and the meshes its nodes place ({total:,} values)", total * BYTES_PER_VALUE)


REFERENCES = (("images", "bufferView", "bufferViews"), ("textures", "source", "images"),
              ("textures", "sampler", "samplers"))
"""(kind, key, the kind its value indexes) that trimesh follows outside the checks below (an IndexError)."""


def _check_references(path: Path, doc: dict) -> None:
    for kind, key, target in REFERENCES:
        for i, item in enumerate(_items(doc, kind)):
            _check_index(path, f"{kind[:-1]} {i}", item.get(key), target, len(_items(doc, target)))
    for i, mesh in enumerate(_items(doc, "meshes")):
        for j, prim in enumerate(_list(path, f"mesh {i}'s primitives", mesh.get("primitives"))):
            if isinstance(prim, dict):
                _check_index(path, f"mesh {i} primitive {j}", prim.get("material"), "materials",
                             len(_items(doc, "materials")))
    if "scene" in doc:
        _check_index(path, "the file", doc["scene"], "scenes", len(_items(doc, "scenes")), required=True)


def _check_index(path: Path, where: str, value, kind: str, n: int, required: bool = False) -> None:
    """value, if given (or required), indexes one of the n items of `kind` (a plural: "meshes")."""
    if (value is not None or required) and (type(value) is not int or not 0 <= value < n):
        noun = kind[:-2] if kind.endswith("hes") else kind[:-1]
        verb = "places" if kind == "meshes" else "names"
        raise DataError(f"{path}: {where} {verb} {noun} {value!r:.40}, which is not there")


def _mesh_values(path: Path, i: int, mesh: dict, values: list[int]) -> int:
    total = 0
    for j, prim in enumerate(_list(path, f"mesh {i}'s primitives", mesh.get("primitives"))):
        prim = prim if isinstance(prim, dict) else {}
        refs = list(prim["attributes"].values()) if isinstance(prim.get("attributes"), dict) else []
        for ref in refs + ([prim["indices"]] if "indices" in prim else []):
            if type(ref) is not int or not 0 <= ref < len(values):
                raise DataError(f"{path}: mesh {i} primitive {j} names accessor {ref!r:.40}, which is not there")
            total += values[ref]
    return total


def _placed_meshes(path: Path, doc: dict, n_meshes: int) -> list[int]:
    """The mesh of every node reached from the scenes' roots (without scenes, from the nodes no node names as a
    child), once per path. trimesh's time grows with the cube of a chain's depth (400 nodes deep: 6 s)."""
    nodes = _items(doc, "nodes")
    children = [_list(path, f"node {n}'s children", node.get("children")) for n, node in enumerate(nodes)]
    roots = [n for k, scene in enumerate(_items(doc, "scenes")) for n in _list(path, f"scene {k}'s nodes",
                                                                                 scene.get("nodes"))]
    if not _items(doc, "scenes"):
        named = {c for kids in children for c in kids if type(c) is int}
        roots = [n for n in range(len(nodes)) if n not in named]
    stack, placed, visits = [(n, 1) for n in roots], [], 0
    while stack:
        n, depth = stack.pop()
        _check_index(path, "a scene or node", n, "nodes", len(nodes), required=True)
        visits += 1
        if visits > MAX_PLACEMENTS or depth > MAX_NODE_DEPTH:
            raise DataError(f"{path}: its nodes are reached more than {MAX_PLACEMENTS:,} times or nest more than "
                            f"{MAX_NODE_DEPTH} deep (a node that is its own descendant, or a subtree shared many "
                            f"times)")
        if nodes[n].get("mesh") is not None:
            _check_index(path, f"node {n}", nodes[n]["mesh"], "meshes", n_meshes)
            placed.append(nodes[n]["mesh"])
        stack.extend((c, depth + 1) for c in children[n])
    return placed


def _list(path: Path, what: str, value) -> list:
    if value is not None and not isinstance(value, list):
        raise DataError(f"{path}: {what} is {value!r:.40}, not a list")
    return value or []


def _whole(path: Path, where: str, item: dict, key: str) -> int:
    value = item.get(key, 0)
    if type(value) is not int or value < 0:
        raise DataError(f"{path}: {where}'s {key} is {value!r:.40}, not a whole number of at least 0")
    return value
