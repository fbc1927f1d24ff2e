"""SDF adapter: meshes as signed distance functions. The coordinate is a point in [-1, 1]^3, the value its signed
distance (negative inside), in the units of the normalised shape.

Meshes (OBJ, PLY, STL, OFF, GLB, glTF) are read with trimesh (meshes.py), duplicate vertices merged, and each
shape is centred and scaled into the sphere of radius 0.9 (inside the unit sphere with a margin, so marching cubes
never clips it); the transform is kept so that exports can go back to the original units. Distances come from open3d's
RaycastingScene. The sign is the majority vote of several rays cast from each point (open3d's occupancy with
nsamples > 1), which tolerates small holes: meshes that are not watertight are common, so they are accepted with a
warning. Samples are cached per mesh, keyed by the file's content and the sampling settings.
"""
from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
from implicit_gon.lazy import lazy_import, no_grad

torch = lazy_import("torch")  # loaded on first use: `fit KIND -h` imports this module, not torch

from implicit_gon import limits
from implicit_gon.errors import DataError, GONError, UsageError
from implicit_gon.fsio import atomic_path, write_error

from implicit_gon.media import IMAGE, VIDEO
from implicit_gon.verbs import Output, save_npy, verb

from .base import Batch, SignalAdapter
from .images import save_png
from .meshes import EXTENSIONS, find_meshes, import_trimesh, load_mesh


RADIUS = 0.9
SIGN_RAYS = 11  # rays per point for the occupancy vote
QUERY_CHUNK = 32768  # points per open3d distance query (about 0.1-1 s each), so a stop waits at most one
ENCODE_POINTS = 16384  # fixed subset of the cached samples used to encode a shape (its "full" integral)


def normalise(mesh) -> tuple[Any, np.ndarray, float]:
    """Centre (bounding-box centre) and scale into the sphere of radius RADIUS: (mesh, centre, scale), with
    original = normalised * scale + centre."""
    centre = mesh.bounds.mean(0)
    scale = float(np.linalg.norm(mesh.vertices - centre, axis=1).max()) / RADIUS
    out = mesh.copy()
    out.vertices = (mesh.vertices - centre) / scale
    return out, centre, scale


# -- signed distances --------------------------------------------------------------------------------------------------
def _o3d():
    from implicit_gon.interrupts import deferred
    try:
        with deferred():  # as import_trimesh: a third party's import is not where a stop is raised
            import open3d as o3d
    except ImportError as e:
        raise DataError(f"open3d could not be imported ({e}); on Debian/Ubuntu: apt-get install libusb-1.0-0") from None
    return o3d


class Distance:
    """Signed distance to a mesh: open3d's exact unsigned distance with a multi-ray occupancy vote for the sign."""

    def __init__(self, mesh):
        o3d = _o3d()
        self.scene = o3d.t.geometry.RaycastingScene()
        self.scene.add_triangles(o3d.core.Tensor(np.asarray(mesh.vertices, np.float32)),
                                 o3d.core.Tensor(np.asarray(mesh.faces, np.uint32)))
        self.o3d = o3d

    def __call__(self, points: np.ndarray) -> np.ndarray:
        # in chunks: a stop signal is seen between open3d's calls, which do not return to Python until done
        return np.concatenate([self._signed(points[i:i + QUERY_CHUNK]) for i in range(0, len(points), QUERY_CHUNK)])

    def _signed(self, points: np.ndarray) -> np.ndarray:
        q = self.o3d.core.Tensor(np.ascontiguousarray(points, np.float32))
        dist = self.scene.compute_distance(q).numpy()
        inside = self.scene.compute_occupancy(q, nsamples=SIGN_RAYS).numpy() > 0.5
        return np.where(inside, -dist, dist).astype(np.float32)

    def occupancy(self, points: np.ndarray) -> np.ndarray:
        q = self.o3d.core.Tensor(np.ascontiguousarray(points, np.float32))
        return self.scene.compute_occupancy(q, nsamples=SIGN_RAYS).numpy() > 0.5


def sample_sdf(mesh, n: int, near_std: list[float], uniform_frac: float, seed: int = 0) -> np.ndarray:
    """(n, 4) float32 rows (x, y, z, sdf), shuffled: surface samples plus Gaussian offsets at each scale in
    near_std, and uniform points in the cube; the shape is already normalised."""
    trimesh = import_trimesh()
    rng = np.random.default_rng(seed)
    n_uniform = int(round(n * uniform_frac))
    per = (n - n_uniform) // len(near_std)
    surface, _ = trimesh.sample.sample_surface(mesh, per * len(near_std), seed=seed)
    near = [surface[k * per:(k + 1) * per] + rng.normal(0, s, (per, 3)) for k, s in enumerate(near_std)]
    pts = np.concatenate(near + [rng.uniform(-1, 1, (n - per * len(near_std), 3))]).clip(-1, 1)
    rows = np.concatenate([pts, Distance(mesh)(pts)[:, None]], 1).astype(np.float32)
    return rows[rng.permutation(len(rows))]


def _cache_dir(data) -> Path:
    from .datasets.cache import default_cache_dir
    return default_cache_dir(None, data.cache_dir) / "sdf"


def cached_samples(path: Path, mesh, data) -> np.ndarray:
    """Samples of one normalised mesh, cached by file content and sampling settings."""
    settings = {"n": data.sdf_samples, "near": list(data.sdf_near_std), "uniform": data.sdf_uniform_frac,
                "radius": RADIUS, "rays": SIGN_RAYS, "v": 2}
    h = hashlib.sha256(path.read_bytes())
    h.update(json.dumps(settings, sort_keys=True).encode())
    cache = _cache_dir(data) / f"{path.stem}-{h.hexdigest()[:16]}.npy"
    if cache.is_file():
        try:
            arr = limits.load_array(cache, "samples", "SDF sample cache")  # its header checked before its data
            if arr.shape == (data.sdf_samples, 4):
                return arr
        except GONError:
            pass  # a damaged cache entry is sampled again
    arr = sample_sdf(mesh, data.sdf_samples, data.sdf_near_std, data.sdf_uniform_frac)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a read-only or forbidden cache folder: one line, as the image cache says it
        raise write_error(cache.parent, e) from None
    with atomic_path(cache) as tmp:
        np.save(tmp, arr)
    return arr


# -- the Signal ----------------------------------------------------------------------------------------------------------
class SDFSignal:
    """Shapes as Signals: each sample's coordinates are its own cached SDF sample points."""

    kind = "sdf"
    coord_dim = 3
    out_dim = 1

    def __init__(self, samples: np.ndarray, names: list[str], transforms: list[tuple[list[float], float]],
                 encode_points: int = ENCODE_POINTS):
        self.samples = torch.from_numpy(np.ascontiguousarray(samples))  # (n, S, 4)
        self.names, self.transforms = names, transforms
        self.encode_points = min(encode_points, self.samples.shape[1])
        self._truth: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def _split(self, rows: torch.Tensor, scale: float, device) -> Batch:
        return Batch(rows[..., :3].to(device), rows[..., 3:].to(device), scale)

    def batch(self, idx, points, generator, device) -> Batch:
        """A fresh random subset of each shape's cached samples. The integral is the mean over the sampling
        distribution, so scale = 1 / N for every N (the step size is set for that)."""
        S = self.samples.shape[1]
        n = max(1, min(S, round(points * S) if points <= 1 else int(points)))
        pick = torch.randint(0, S, (len(idx), n), generator=generator)
        rows = torch.gather(self.samples[idx], 1, pick[..., None].expand(-1, -1, 4))
        return self._split(rows, 1.0 / n, device)

    def full(self, idx, device) -> Batch:
        """The first encode_points cached samples (a uniform subset: the cache is shuffled), scale 1 / N."""
        return self._split(self.samples[idx, :self.encode_points], 1.0 / self.encode_points, device)

    def truth(self, i: int, n_surface: int, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ground truth of shape i: n_surface points on its normalised surface and the occupancy of pts, computed
        once per signal (validation scores the same shapes many times)."""
        key = (i, n_surface, len(pts))
        if key not in self._truth:
            gt, _, _ = normalise(load_mesh(Path(self.names[i])))
            self._truth[key] = (surface_points(gt, n_surface), Distance(gt).occupancy(pts))
        return self._truth[key]

    def validate(self, gon, n: int, batch_size: int = 8) -> dict[str, Any]:
        """Held-out scores during training: Chamfer x1e3 and IoU of the first n shapes at the VAL_* settings."""
        res = score_shapes(gon, self, n, batch_size, VAL_RES, VAL_SURFACE, VAL_IOU_POINTS)
        res.pop("shapes")
        return res

    def meta(self) -> dict[str, Any]:
        return {"signal": "sdf", "names": self.names,
                "transforms": [[list(map(float, c)), float(s)] for c, s in self.transforms]}


def load_signal(paths, data, quiet: bool = False) -> SDFSignal:
    """An SDFSignal of every mesh under paths."""
    files = find_meshes(paths)
    samples, transforms = [], []
    for f in files:
        mesh = load_mesh(f)
        if not mesh.is_watertight and not quiet:
            print(f"warning: {f}: not watertight; signs come from a {SIGN_RAYS}-ray vote, which tolerates small "
                  f"holes", file=sys.stderr)
        norm, centre, scale = normalise(mesh)
        samples.append(cached_samples(f, norm, data))
        transforms.append((centre.tolist(), scale))
    return SDFSignal(np.stack(samples), [str(f) for f in files], transforms)


def signal_for_run(gon, paths) -> SDFSignal:
    """The run's training meshes (their samples give a training shape's latent), or the meshes `paths`."""
    gone = [p for p in gon.cfg.data.paths if not Path(p).exists()]
    if not paths and gone:
        raise DataError(f"{gone[0]}: not found (the run reads its training meshes from where it was trained: put "
                        f"them back, or name meshes: --input MESH, eval RUN MESHES; sample needs no data)")
    return load_signal(paths or gon.cfg.data.paths, gon.cfg.data, quiet=True)


# -- the network as a field: volumes, meshes, pictures ------------------------------------------------------------------
def _field(gon, z: torch.Tensor):
    """points (M, 3) -> SDF (M,) of the shape with latent z (1, K), on CPU."""
    return lambda p: gon.decode(z, p)[0, :, 0]


@no_grad
def volume(field, res: int) -> np.ndarray:
    """The field on a res^3 grid over [-1, 1]^3, one z-slab at a time so memory stays at the volume itself."""
    ax = torch.linspace(-1, 1, res)
    out = np.empty((res, res, res), np.float32)
    yy, zz = torch.meshgrid(ax, ax, indexing="ij")
    plane = torch.stack([yy.reshape(-1), zz.reshape(-1)], 1)  # (res^2, 2)
    for i, x in enumerate(ax):
        pts = torch.cat([x.expand(len(plane), 1), plane], 1)
        out[i] = field(pts).reshape(res, res).numpy()
    return out


def marching_cubes(vol: np.ndarray):
    """Zero level set of a volume over [-1, 1]^3 as a trimesh.Trimesh."""
    trimesh = import_trimesh()
    from skimage import measure
    if not (vol.min() < 0 < vol.max()):
        raise DataError("the field has no zero crossing on the grid: no surface to extract")
    res = vol.shape[0]
    verts, faces, normals, _ = measure.marching_cubes(vol, level=0.0, spacing=(2 / (res - 1),) * 3)
    # skimage orients faces for increasing values outward; our field is negative inside, as it expects
    return trimesh.Trimesh(verts - 1, faces, vertex_normals=normals, process=False)


def export(mesh, path: Path, fmt: str | None = None) -> None:
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    if fmt not in ("ply", "obj", "glb", "stl"):
        raise DataError(f"{path}: unsupported mesh format {fmt!r} (ply, obj, glb or stl)")
    with atomic_path(path) as tmp:
        mesh.export(str(tmp), file_type=fmt)


def look_at_rays(res: int, azimuth: float = 35.0, elevation: float = 25.0, distance: float = 2.6, fov: float = 45.0):
    """Pinhole camera rays looking at the origin: origins (res^2, 3) and unit directions (res^2, 3)."""
    a, e = math.radians(azimuth), math.radians(elevation)
    eye = torch.tensor([math.cos(e) * math.sin(a), math.sin(e), math.cos(e) * math.cos(a)]) * distance
    fwd = -eye / eye.norm()
    right = torch.linalg.cross(fwd, torch.tensor([0.0, 1.0, 0.0]))
    right = right / right.norm()
    up = torch.linalg.cross(right, fwd)
    s = math.tan(math.radians(fov) / 2)
    t = (torch.arange(res) + 0.5) / res * 2 - 1
    v, u = torch.meshgrid(-t, t, indexing="ij")
    d = fwd + s * (u.reshape(-1, 1) * right + v.reshape(-1, 1) * up)
    return eye.expand(len(d), 3), d / d.norm(dim=1, keepdim=True)


@no_grad
def sphere_trace(field, res: int, steps: int = 64, **camera) -> np.ndarray:
    """A shaded (res, res, 3) uint8 picture of the field's zero level set by sphere tracing F itself: no display
    or OpenGL needed. Steps are 0.9 F (F is a clamped, learned distance), inside the bounding sphere."""
    o, d = look_at_rays(res, **camera)
    b = (o * d).sum(1)  # ray-sphere(radius 1) entry and exit
    disc = b**2 - (o * o).sum(1) + 1
    t, t_far = (-b - disc.clamp_min(0).sqrt()).clamp_min(0), -b + disc.clamp_min(0).sqrt()
    active, hit = disc > 0, torch.zeros(len(o), dtype=torch.bool)
    for _ in range(steps):
        idx = torch.nonzero(active).squeeze(1)
        if len(idx) == 0:
            break
        f = field(o[idx] + t[idx, None] * d[idx])
        done = f.abs() < 2e-3
        hit[idx[done]] = True
        t[idx] += 0.9 * f.clamp_min(-0.05) * (~done)
        active[idx] = ~done & (t[idx] < t_far[idx])
    img = torch.full((len(o), 3), 0.93)
    idx = torch.nonzero(hit).squeeze(1)
    if len(idx):
        p = o[idx] + t[idx, None] * d[idx]
        n = _normals(field, p)
        light = torch.tensor([0.4, 0.8, 0.45])
        light = light / light.norm()
        diffuse = (n @ light).clamp_min(0)
        shade = 0.2 + 0.7 * diffuse + 0.2 * (n * -d[idx]).sum(1).clamp_min(0) ** 8
        img[idx] = shade[:, None] * torch.tensor([0.55, 0.68, 0.85])
    return (img.clamp(0, 1) * 255).round().to(torch.uint8).reshape(res, res, 3).numpy()


def _normals(field, p: torch.Tensor, eps: float = 2e-3) -> torch.Tensor:
    """Unit normals from central differences of the field."""
    offs = torch.eye(3) * eps
    g = torch.stack([field(p + offs[k]) - field(p - offs[k]) for k in range(3)], 1)
    return g / g.norm(dim=1, keepdim=True).clamp_min(1e-9)


# -- metrics --------------------------------------------------------------------------------------------------------------
def chamfer_x1e3(a: np.ndarray, b: np.ndarray) -> float:
    """DeepSDF's Chamfer distance: mean squared nearest-neighbour distance a->b plus b->a, times 1e3."""
    from scipy.spatial import cKDTree
    da, _ = cKDTree(b).query(a)
    db, _ = cKDTree(a).query(b)
    return float((np.mean(da**2) + np.mean(db**2)) * 1e3)


def iou(inside_a: np.ndarray, inside_b: np.ndarray) -> float:
    """Volumetric IoU of two occupancy masks over the same points."""
    union = np.logical_or(inside_a, inside_b).sum()
    return float(np.logical_and(inside_a, inside_b).sum() / union) if union else 1.0


def surface_points(mesh, n: int = 30000, seed: int = 0) -> np.ndarray:
    trimesh = import_trimesh()
    return trimesh.sample.sample_surface(mesh, n, seed=seed)[0]


# -- what the CLI's verbs do for SDF ------------------------------------------------------------------------------------
EVAL_RES = 128
IOU_POINTS = 100_000


def latent_for(gon, index: int | None = None, input_=None) -> tuple[torch.Tensor, Any, tuple]:
    """(latent (1, K), the normalised ground-truth mesh or None, (centre, scale)) of a training shape or a new mesh,
    the latter encoded in one gradient step."""
    if (index is None) == (input_ is None):
        raise UsageError("give exactly one of --index (a training shape) or --input (a mesh)")
    if input_ is not None:
        sig = load_signal([input_], gon.cfg.data, quiet=True)
        i = 0
    else:
        sig = signal_for_run(gon, None)
        if not 0 <= index < len(sig):
            raise UsageError(f"--index {index}: the run has {len(sig)} training shapes (0..{len(sig) - 1})")
        i = index
    z = gon.encode_signal(sig, [i]).cpu()
    return z, Path(sig.names[i]), tuple(sig.transforms[i])


def mesh_of(gon, z: torch.Tensor, res: int):
    return marching_cubes(volume(_field(gon, z), res))


VAL_RES, VAL_SURFACE, VAL_IOU_POINTS = 64, 10_000, 20_000
"""Held-out scoring during training (train.val_every) is the same measurement, cheaper: marching cubes on a 64^3
grid, 10,000 surface samples each way, IoU on 20,000 points."""


def score_shapes(gon, sig: SDFSignal, n: int, batch_size: int, res: int, n_surface: int,
                 n_iou: int) -> dict[str, Any]:
    """Chamfer x1e3 and IoU of the first n shapes of sig, per shape and averaged (shapes whose reconstruction has
    no surface count in no_surface and are left out of the Chamfer mean)."""
    z = gon.encode_signal(sig, torch.arange(n), batch_size=batch_size).cpu()
    pts = np.random.default_rng(0).uniform(-1, 1, (n_iou, 3)).astype(np.float32)
    shapes = []
    for i in range(n):
        truth_surface, truth_in = sig.truth(i, n_surface, pts)
        field = _field(gon, z[i:i + 1])
        pred_in = np.concatenate([(field(torch.from_numpy(c)) < 0).numpy() for c in np.array_split(pts, 10)])
        row = {"index": i, "shape": Path(sig.names[i]).name, "iou": iou(truth_in, pred_in)}
        try:
            row["chamfer_x1e3"] = chamfer_x1e3(truth_surface, surface_points(mesh_of(gon, z[i:i + 1], res),
                                                                              n_surface))
        except DataError:
            row["chamfer_x1e3"] = None  # the reconstruction has no surface
        shapes.append(row)
    ok = [s["chamfer_x1e3"] for s in shapes if s["chamfer_x1e3"] is not None]
    return {"n": len(shapes), "chamfer_x1e3": float(np.mean(ok)) if ok else None,
            "iou": float(np.mean([s["iou"] for s in shapes])), "no_surface": len(shapes) - len(ok), "shapes": shapes}


def _ends(gon, a, b) -> torch.Tensor:
    """Latents of two shapes given as training indices or mesh files: (2, K)."""
    out = []
    for e in (a, b):
        if e is None:
            raise UsageError("SDF interpolation needs --from and --to (training indices or mesh files)")
        out.append(latent_for(gon, int(e), None)[0] if str(e).isdigit() else latent_for(gon, None, e)[0])
    return torch.cat(out)


def _prior_field(gon, z):
    if gon.model.head is None:
        return _field(gon, z)
    return lambda p: gon.decode_prior(z, p)[0, :, 0]


def _input(opts, verb: str) -> Any:
    if opts.inputs and len(opts.inputs) > 1:
        raise UsageError(f"{verb}: an SDF run takes one mesh at a time ({len(opts.inputs)} given)")
    return opts.inputs[0] if opts.inputs else None


def _export_meshes(fields, out: Path, stem: str, res: int) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    for k, f in enumerate(fields):
        export(marching_cubes(volume(f, res)), out / f"{stem}_{k:03d}.ply")
    return []


# -- the verbs ------------------------------------------------------------------------------------------------------
MESHES = {".ply": None, ".obj": None, ".glb": None, ".stl": None}


class SDFAdapter(SignalAdapter):
    """SDF verbs. Pictures are shaded sphere-traced renders (n, res, res, 3) uint8; volumes (res, res, res)
    float32 signed distances over [-1, 1]^3; meshes trimesh.Trimesh in the normalised units."""

    kind, noun, metric = "sdf", "SDF", "chamfer_x1e3"
    verbs = {
        "eval": verb("paths"),
        "render": verb("inputs", "index", "res", outputs=(IMAGE,)),
        "encode": verb("inputs", "index", outputs=({".npy": None},)),
        "decode": verb("latents", "res", "nrow", outputs=(IMAGE,)),
        "sample": verb("n", "temperature", "seed", outputs=(IMAGE,), folder=True),
        "interpolate": verb("from_", "to", "frames", "res", "fps", outputs=(VIDEO,), folder=True),
        "export": verb("inputs", "index", "res", "format", "original_units", outputs=(MESHES,)),
    }
    hints = {"latents": "latents takes image runs"}
    coord_dim, file, files, extensions = 3, "mesh", "meshes", EXTENSIONS
    file_uses = ("render, export-mesh and interpolate --index", "eval's rows")
    find = staticmethod(find_meshes)
    val_metrics = {"chamfer_x1e3": False, "iou": True}
    fit_data, fit_help = "files", "Train a GON over the signed distance functions of meshes."

    def fit_signals(self, cfg) -> tuple[SDFSignal, SDFSignal | None]:
        """Samples of the meshes' signed distances (cached per mesh)."""
        return (load_signal(cfg.data.paths, cfg.data),
                load_signal(cfg.data.val_paths, cfg.data, quiet=True) if cfg.data.val_paths else None)
    meta_rules = {"names": (list, 1, 10**7), "transforms": (list, 1, 10**7)}

    def check_meta(self, meta: dict, source: str) -> None:
        """names: one file name per shape; transforms: [[x, y, z], scale > 0] per shape."""
        super().check_meta(meta, source)
        if not all(isinstance(n, str) for n in meta["names"]) or len(meta["names"]) != len(meta["transforms"]):
            raise GONError(f"{source}: meta.names must be one file name per shape of meta.transforms")
        for t in meta["transforms"]:
            ok = (isinstance(t, list) and len(t) == 2 and isinstance(t[0], list) and len(t[0]) == 3
                  and all(_finite(v) for v in t[0]) and _finite(t[1]) and t[1] > 0)
            if not ok:
                raise GONError(f"{source}: meta.transforms entry {t!r:.40}: must be [[x, y, z], scale > 0]")

    def signal_for_run(self, gon, paths=None) -> SDFSignal:
        return signal_for_run(gon, paths)

    def describe(self, meta: dict) -> str:
        return "signed distance fields"

    def eval(self, gon, opts) -> Output:
        """Per shape and averaged: Chamfer x1e3 (30,000 surface samples each way) and volumetric IoU (100,000
        uniform points in the cube) of the one-step reconstruction against the normalised ground truth: a dict. The
        meshes given, else the run's held-out meshes when it has them, else its training meshes (whose row indices
        are render's --index); the result says which (`scored`)."""
        held = list(gon.cfg.data.val_paths)
        scored = ("the meshes given" if opts.paths else "held-out meshes" if held
                  else "training meshes (this run holds none out; index: render's --index)")
        sig = signal_for_run(gon, opts.paths or held or None)
        return Output({"scored": scored, **score_shapes(gon, sig, len(sig), opts.batch_size, EVAL_RES, 30000,
                                                        IOU_POINTS)})

    def render(self, gon, opts) -> Output:
        """A training shape (index) or a mesh (inputs) encoded in one step, sphere-traced at res (default 256):
        (1, res, res, 3) uint8."""
        res = opts.res or 256
        limits.check_sphere_trace(res)
        z, _, _ = latent_for(gon, opts.index, _input(opts, "render --input"))
        pic = sphere_trace(_field(gon, z), res)[None]
        return Output(pic, lambda out: (save_png(pic, out), [f"{out} ({res}x{res})"])[1])

    def encode(self, gon, opts) -> Output:
        """The latent of a mesh (inputs) or a training shape (index), one gradient step: (1, K) float32."""
        z, _, _ = latent_for(gon, opts.index, _input(opts, "encode"))
        return Output(z.numpy(), save_npy(z.numpy()))

    def decode(self, gon, opts) -> Output:
        """Latents (n, K) sphere-traced at res (default 256): (n, res, res, 3) uint8."""
        from implicit_gon.options import api_res
        from implicit_gon.verbs import read_latents
        res = api_res(opts.res, 256)
        z = read_latents(gon, opts.latents)
        limits.check_sphere_trace(res, len(z))
        pics = np.stack([sphere_trace(_field(gon, z[i:i + 1]), res) for i in range(len(z))])
        return Output(pics, lambda out: (save_png(pics, out, opts.nrow), [f"{out} ({len(z)} x {res}x{res})"])[1])

    def volume(self, gon, z, res: int = 128) -> np.ndarray:
        """The signed distances of latents z (n, K) on a res^3 grid over [-1, 1]^3: (n, res, res, res) float32."""
        from implicit_gon.options import api_res
        from implicit_gon.verbs import read_latents
        res = api_res(res, 128, "volume", "export-mesh")
        z = read_latents(gon, z)
        limits.check_volume(res, len(z))
        return np.stack([volume(_field(gon, z[i:i + 1]), res) for i in range(len(z))])

    def sample(self, gon, opts) -> Output:
        """n shapes (default 64) from the prior or fitted Gaussian: pictures (n, 160, 160, 3) uint8; written as a
        grid of renders, or one mesh each into a folder."""
        from implicit_gon.device import make_generator
        n = opts.n or 64
        folder = opts.out is not None and not Path(opts.out).suffix
        limits.check_volume(128) if folder else limits.check_sphere_trace(160, n)
        z = gon.sample_latents(n, make_generator(opts.seed), opts.temperature)
        fields = [_prior_field(gon, z[i:i + 1]) for i in range(n)]
        pics = lambda: np.stack([sphere_trace(f, 160) for f in fields])  # noqa: E731 (drawn only when wanted)
        if folder:  # the meshes are the output
            return Output(pics, lambda out: _export_meshes(fields, Path(out), "sample", 128) +
                          [f"{out} ({n} samples)"])
        return Output(pics, lambda out: (save_png(pics(), out), [f"{out} ({n} samples)"])[1])

    def interpolate(self, gon, opts) -> Output:
        """slerp between two shapes (from_, to: training indices or mesh files): frames pictures (frames, res, res,
        3) uint8 (res default 256) written as a video, or one mesh per frame (res default 128) into a folder."""
        from implicit_gon.media import write_video
        from implicit_gon.metrics import slerp
        folder = opts.out is not None and not Path(opts.out).suffix
        res = opts.res or (128 if folder else 256)
        limits.check_volume(res) if folder else limits.check_sphere_trace(res, opts.frames)
        z = _ends(gon, opts.from_, opts.to)
        path = slerp(z[0], z[1], torch.linspace(0, 1, opts.frames))
        fields = [_field(gon, p[None]) for p in path]
        note = [f"{opts.out} ({opts.frames} frames)"]  # the CLI's wrote line
        pics = lambda: np.stack([sphere_trace(f, res) for f in fields])  # noqa: E731 (drawn only when wanted)
        if folder:
            return Output(pics, lambda out: _export_meshes(fields, Path(out), "frame", res) + note)
        return Output(pics, lambda out: (write_video(pics(), out, opts.fps), note)[1])

    def export(self, gon, opts) -> Output:
        """Marching cubes (res^3, default 256) over the field of a training shape (index) or a mesh (inputs),
        in the normalised units or with original_units the mesh's own: a trimesh.Trimesh."""
        out = opts.out
        fmt = mesh_format(out, opts.format) if out is not None else None
        res = opts.res or 256
        limits.check_volume(res)
        z, _, (centre, scale) = latent_for(gon, opts.index, _input(opts, "export-mesh --input"))
        mesh = mesh_of(gon, z, res)
        if opts.original_units:
            mesh.vertices = mesh.vertices * scale + np.asarray(centre)
        return Output(mesh, lambda o: (export(mesh, Path(o), fmt), [f"{o} ({len(mesh.vertices)} vertices, "
                                                                     f"{len(mesh.faces)} faces)"])[1])


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def mesh_format(out, fmt: str | None) -> str:
    """The mesh format the output names (and format, if given, agrees with), checked before any work."""
    from implicit_gon.media import check_out
    out = check_out(out, MESHES)
    if fmt and fmt.lower() != out.suffix.lower().lstrip("."):
        raise UsageError(f"--format {fmt} but --out {out} names {out.suffix.lstrip('.')}: give one of them, or both "
                        f"alike")
    return out.suffix.lower().lstrip(".")


ADAPTER = SDFAdapter()
