"""Meshes read from files (OBJ, PLY, STL, OFF, GLB, glTF) with trimesh, after checking that each file holds what
it declares, so a truncated or hostile file is one line of error rather than a mesh read wrong or an allocation of
gigabytes. glTF's own checks are in gltf.py."""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
from implicit_gon import limits
from implicit_gon.errors import DataError

from . import gltf
from .base import find_files

EXTENSIONS = (".obj", ".ply", ".stl", ".off", ".glb", ".gltf")
MAX_EXTENT = 1e30  # a mesh's side in its own units: any real unit system; 1e308 overflowed the normalisation


def find_meshes(paths) -> list[Path]:
    return find_files(paths, EXTENSIONS, "meshes")


def import_trimesh():
    """trimesh, imported with stop signals held (interrupts.deferred): its optional imports catch BaseException,
    so a Ctrl-C or SIGTERM raised inside them was swallowed and the run trained on to exit 0 (a hostile check,
    1.4-1.9 s into `fit sdf`). A signal that came during the import is raised once it ends."""
    from implicit_gon.interrupts import deferred
    with deferred():
        import trimesh
    return trimesh


def load_mesh(path: Path):
    """A trimesh.Trimesh with duplicate vertices merged; one-line errors for non-meshes and empty meshes."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {'not a regular file' if path.exists() else 'no such file'}")
    if path.suffix.lower() in (".glb", ".gltf"):
        gltf.check(path)
    mesh = _read(path)
    bad = np.flatnonzero(~np.isfinite(np.asarray(mesh.vertices)).all(1))
    if len(bad):
        raise DataError(f"{path}: {len(bad)} vertices with non-finite coordinates (NaN or inf), the first is "
                        f"vertex {bad[0]}")
    _check_faces(path, np.asarray(mesh.vertices), np.asarray(mesh.faces))
    _check_declared(path, len(mesh.vertices), len(mesh.faces))
    mesh.process()
    if len(mesh.faces) == 0 or len(mesh.vertices) == 0:
        raise DataError(f"{path}: the mesh is empty (no triangles)")
    mesh.merge_vertices(merge_tex=True, merge_norm=True)  # UV seams split vertices that are one point
    mesh.update_faces(mesh.unique_faces())  # a face listed twice is one surface (250,000 copies: hours of distances)
    if mesh.extents.max() <= 0:
        raise DataError(f"{path}: the mesh has no extent (all its vertices are one point)")
    return mesh


MAX_TEXTURE_PIXELS = 1 << 24  # an image a mesh names is decoded only up to this (a 419 KB PNG of 12,000 x 12,000
# took 3 GB): textures are not used, and a larger one is skipped as an unreadable one is


def _read(path: Path):
    """trimesh.load of one mesh, unprocessed (processing drops non-finite vertices silently), its materials left
    out (an SDF needs none) and its images bounded. trimesh reads a glTF's images inside `except BaseException`, so
    a SIGTERM there was swallowed and the fit trained on to exit 0: a stop in the load is raised when it ends
    (interrupts.unswallowed). Files it names are read through _resolver."""
    import warnings

    from PIL import Image

    from implicit_gon.interrupts import unswallowed
    trimesh = import_trimesh()
    bound = Image.MAX_IMAGE_PIXELS
    try:
        with unswallowed(), warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # raised, so trimesh skips the image
            Image.MAX_IMAGE_PIXELS = MAX_TEXTURE_PIXELS
            mesh = trimesh.load(str(path), force="mesh", process=False, resolver=_resolver(path), skip_materials=True)
    except Exception as e:  # trimesh raises many types for unparsable input
        why = str(e).splitlines()[0] if str(e) else ""
        raise DataError(f"{path}: not a readable mesh ({type(e).__name__}: {why})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = bound
    if not isinstance(mesh, trimesh.Trimesh):
        raise DataError(f"{path}: not a triangle mesh")
    return mesh


def _resolver(path: Path):
    """How trimesh reads the files a mesh names (an OBJ's materials and textures, a glTF's buffers and images):
    regular files beside the mesh's real file only (a FIFO blocked the read forever; a symlinked glTF was checked
    beside its target and read beside the link), within the memory budget, and a glTF's names percent-decoded as
    its spec writes them ('my%20buffer.bin' names 'my buffer.bin': trimesh said FileNotFoundError)."""
    from urllib.parse import unquote
    resolvers = import_trimesh().resolvers
    decode = unquote if path.suffix.lower() in (".glb", ".gltf") else str

    class Beside(resolvers.FilePathResolver):
        def get(self, name: str) -> bytes:
            name = decode(name)
            for candidate in (name.strip(), name.strip().lstrip("/"), os.path.split(name)[-1]):  # as trimesh tries
                try:
                    target = self.absolute(candidate)
                except ValueError:  # outside the folder
                    continue
                if target.is_file():
                    limits.check(f"{path}: the file it names, {target.name}", target.stat().st_size)
                    return target.read_bytes()
            raise FileNotFoundError(f"{name}: not a regular file beside the mesh")

    return Beside(str(path.resolve()))


MAX_PLY_HEADER = 1 << 16  # bytes of a PLY header at most (a real one is a few hundred)


def _check_declared(path: Path, n_vertices: int, n_faces: int) -> None:
    """A file holding other than its header declares is truncated or corrupt: refused, not trained on what trimesh
    makes of it (an ASCII PLY declaring 2e9 faces with 2 present trained on the 2; an OFF declaring one vertex too
    many read the first face as a vertex; a binary STL whose count disagrees with its size was read as ASCII,
    "empty"; an OBJ face of vertex 0, which OBJ's 1-based indices do not have, became the last vertex)."""
    check = {".ply": _check_ply, ".off": _check_off, ".stl": _check_stl, ".obj": _check_obj}.get(
        Path(path).suffix.lower())
    if check is not None:
        check(path, n_vertices, n_faces)


def _check_counts(path: Path, declared: dict[str, int], got: dict[str, int]) -> None:
    """Elements read against those declared: a whole file gives at least as many of each (polygons become several
    triangles)."""
    for noun, n in got.items():
        if n < declared.get(noun, 0):
            raise DataError(f"{path}: the header declares {declared[noun]:,} {noun}; the file holds {n:,} "
                            f"(truncated or corrupt)")


def _element_lines(text: bytes) -> list[bytes]:
    """An ASCII body's element lines: comments and blank lines aside."""
    return [line for line in map(bytes.strip, text.split(b"\n")) if line and not line.startswith(b"#")]


def _check_lines(path: Path, lines: list[bytes], declared: int) -> None:
    """An ASCII body of one element per line: as many lines as its header declares (trimesh reads the declared ones
    and drops the rest, or runs short)."""
    if len(lines) != declared:
        raise DataError(f"{path}: the header declares {declared:,} elements (one per line); the file has "
                        f"{len(lines):,} lines of them (truncated or corrupt)")


def _check_face_counts(path: Path, faces: list[bytes]) -> None:
    """Each face line opens with its vertex count, and must list that many: trimesh reads whatever indices follow
    (`1000000000 0 2 1` was the triangle 0 2 1). More tokens than the count are allowed (colours may follow)."""
    for i, words in enumerate(map(bytes.split, faces)):
        if words[0].isdigit() and int(words[0]) > len(words) - 1:
            raise DataError(f"{path}: face {i:,} declares {int(words[0]):,} vertices and lists {len(words) - 1} "
                            f"(corrupt)")


def _check_ply(path: Path, n_vertices: int, n_faces: int) -> None:
    with open(path, "rb") as f:
        head = f.read(MAX_PLY_HEADER)
        end = head.find(b"end_header")
        if end < 0:
            raise DataError(f"{path}: no end_header in the first {MAX_PLY_HEADER:,} bytes (not a PLY header)")
        counts, listed = {}, {}  # element -> declared count; element -> whether its first property is a list
        for words in map(str.split, head[:end].decode("latin-1").splitlines()):
            if len(words) == 3 and words[0] == "element" and words[2].isdigit():
                counts[words[1]] = int(words[2])
            elif words and words[0] == "property" and counts:
                listed.setdefault(list(counts)[-1], words[1:2] == ["list"])
        if not counts.get("face"):  # trimesh reads it as a point cloud: 'declares 3 vertices; holds 0' said nothing
            raise DataError(f"{path}: its header declares no faces (a point cloud, not a mesh)")
        _check_counts(path, {"vertices": counts.get("vertex", 0), "faces": counts.get("face", 0)},
                      {"vertices": n_vertices, "faces": n_faces})
        if re.search(rb"(?m)^format[ \t]+ascii\b", head[:end]):  # the format line's, not a comment's
            f.seek(head.index(b"\n", end) + 1)
            lines = _element_lines(f.read())
            _check_lines(path, lines, sum(counts.values()))
            if listed.get("face"):  # face lines open with their count where the list comes first
                start = sum(counts[e] for e in list(counts)[:list(counts).index("face")])
                _check_face_counts(path, lines[start:start + counts["face"]])


def _check_off(path: Path, n_vertices: int, n_faces: int) -> None:
    """OFF: the keyword (OFF, COFF, NOFF, ...), then 'vertices faces [edges]' on its line or the next, then one
    element per line."""
    rest, lines = Path(path).read_bytes(), []
    while len(lines) < 2 and rest:
        line, _, rest = rest.partition(b"\n")
        if line.strip() and not line.strip().startswith(b"#"):
            lines.append(line.split())
            if len(lines) == 1 and len(lines[0]) >= 3:  # the counts on the keyword's line
                lines.append(lines[0][1:])
    counts = lines[1][:2] if len(lines) == 2 else []
    if len(counts) < 2 or not all(w.isdigit() for w in counts):
        return  # not a header we know: trimesh says what it is
    nv, nf = int(counts[0]), int(counts[1])
    _check_counts(path, {"vertices": nv, "faces": nf}, {"vertices": n_vertices, "faces": n_faces})
    lines = _element_lines(rest)
    _check_lines(path, lines, nv + nf)
    _check_face_counts(path, lines[nv:])


def _check_stl(path: Path, n_vertices: int, n_faces: int) -> None:
    size = os.path.getsize(path)
    if n_faces == 0 and size >= 84:
        with open(path, "rb") as f:
            head = f.read(84)
        if head[:5].lower() == b"solid" and head.isascii():
            return  # an ASCII STL with no facets: "empty" says it
        declared = int.from_bytes(head[80:], "little")
        raise DataError(f"{path}: not an ASCII STL, and as a binary one its header declares {declared:,} triangles "
                        f"({84 + 50 * declared:,} bytes) where the file has {size:,}")


OBJ_VERTEX_ZERO = re.compile(rb"(?m)^f[ \t][^\n]*?(?<=[ \t])[+-]?0+(?=[/ \t\r\n]|$)")  # 0, 00, +0, -0
OBJ_CONTINUED = re.compile(rb"(?m)^[ \t]*(?:v|vt|vn|f)[ \t][^\n]*\\\r?$")  # an element line ending in a backslash


def _check_obj(path: Path, n_vertices: int, n_faces: int) -> None:
    text = Path(path).read_bytes()
    if OBJ_VERTEX_ZERO.search(text):
        raise DataError(f"{path}: a face refers to vertex 0 (OBJ numbers vertices from 1)")
    continued = OBJ_CONTINUED.search(text)
    if continued:  # trimesh reads each line alone: the face `f 1 \` + `2 3` became garbage, silently
        line = text.count(b"\n", 0, continued.start()) + 1
        raise DataError(f"{path}: line {line} goes on to the next (it ends in a backslash), which is not read")


def _check_faces(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Face indices within the vertex list (a binary PLY's are read as given: 2**31 - 1 was an IndexError) and
    coordinates within MAX_EXTENT (1e308 overflowed trimesh's vertex merge, then the normalisation)."""
    n = len(vertices)
    if faces.size and (faces.min() < 0 or faces.max() >= n):
        k = int(faces.max()) if faces.max() >= n else int(faces.min())
        raise DataError(f"{path}: a face refers to vertex {k}; the mesh has {n} (0..{n - 1})")
    largest = float(np.abs(vertices).max()) if n else 0.0
    if largest > MAX_EXTENT:
        raise DataError(f"{path}: a coordinate of {largest:g}; meshes are read up to {MAX_EXTENT:g} in their own "
                        f"units")
