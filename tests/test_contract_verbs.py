"""The verb contract: every registered signal adapter through each verb it declares, from the CLI and the Python API
alike, and issue 22's exercise: a toy 1-D signal (a curve) defined in this module, registered, fitted (from Python
and from `implicit-gon fit curve`), then rendered, sampled, interpolated and evaluated through both front ends with no
other edit to the project."""
from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

import signals
from conftest import run_cli
from implicit_gon import GON, GONError, fit
from implicit_gon.commands.dispatch import CLI_NAME as CLI  # a verb's command name where it differs
from implicit_gon.config import Config, merge
from implicit_gon.verbs import OPTION_NAMES, Output, VerbOptions, save_npy, verb
from signals.base import Batch, SignalAdapter, draw_subset

pytestmark = pytest.mark.xdist_group("verb_contract")


# -- the toy adapter: curves y(t) sampled at L points, t in [-1, 1] ------------------------------------------------
# (everything a new signal needs: its Signal, its adapter with the verbs it supports, one registry line)
L = 32
NPY = {".npy": None}


def curve_grid(n: int) -> torch.Tensor:
    return ((torch.arange(n) + 0.5) / n * 2 - 1)[:, None]  # (n, 1) sample centres


class CurveSignal:
    kind, coord_dim, out_dim = "curve", 1, 1

    def __init__(self, curves: np.ndarray, path: str = ""):
        self.curves, self.path = torch.as_tensor(curves, dtype=torch.float32)[..., None], path  # (n, L, 1)

    def __len__(self) -> int:
        return len(self.curves)

    def batch(self, idx, points, generator, device) -> Batch:
        sub, scale = draw_subset(L, points, generator)
        values, coords = self.curves[idx], curve_grid(L)
        if sub is not None:
            values, coords = values[:, sub], coords[sub]
        return Batch(coords.to(device), values.to(device), scale)

    def full(self, idx, device) -> Batch:
        return Batch(curve_grid(L).to(device), self.curves[idx].to(device), 1.0)

    def meta(self) -> dict:
        return {"signal": "curve", "length": L, "data": self.path}


class CurveAdapter(SignalAdapter):
    kind, noun, metric, coord_dim = "curve", "curve", "mse", 1
    meta_rules = {"length": (int, 2, 4096), "data": (str, 1, 4096)}
    val_metrics = {"mse": False}
    # `implicit-gon fit curve FILE.npy`: trained on files, from its own config (an adapter outside the package)
    fit_data, file, files, extensions = "files", "curve file", "curve files", (".npy",)
    fit_help = "Train a GON on curves: .npy files of (n, 32) samples."
    configs = {"default": {"model": {"latent_dim": 8, "hidden": 32, "layers": 2},
                           "train": {"batch_size": 4, "device": "cpu"}}}
    verbs = {"eval": verb(), "render": verb("inputs", "res", outputs=(NPY,)),
             "sample": verb("n", "temperature", "seed", outputs=(NPY,)),
             "interpolate": verb("from_", "to", "frames", "res", outputs=(NPY,))}

    def fit_signals(self, cfg):
        path = str(self.find(cfg.data.paths)[0])
        return CurveSignal(np.load(path), path), None

    def signal_for_run(self, gon, paths=None) -> CurveSignal:
        return CurveSignal(np.load(gon.meta["data"]), gon.meta["data"])

    def eval(self, gon, opts: VerbOptions) -> Output:
        sig = self.signal_for_run(gon)
        y = gon.decode(gon.encode_signal(sig), curve_grid(L))
        return Output({"n": len(sig), "mse": float((y - sig.curves).square().mean())})

    def _curves(self, gon, z, res) -> Output:
        y = gon.decode(z, curve_grid(res or L))[..., 0].numpy()  # (n, res)
        return Output(y, save_npy(y))

    def render(self, gon, opts: VerbOptions) -> Output:
        return self._curves(gon, gon.encode_signal(CurveSignal(np.load(opts.inputs[0]))), opts.res)

    def sample(self, gon, opts: VerbOptions) -> Output:
        return self._curves(gon, gon.sample_latents(opts.n or 4, torch.Generator().manual_seed(opts.seed),
                                                    opts.temperature), None)

    def interpolate(self, gon, opts: VerbOptions) -> Output:
        from implicit_gon import slerp
        z = gon.encode_signal(self.signal_for_run(gon), [int(opts.from_ or 0), int(opts.to or 1)])
        return self._curves(gon, slerp(z[0], z[1], torch.linspace(0, 1, opts.frames)), opts.res)


signals.register("curve", CurveAdapter())  # the one registry line


# -- runs of every registered signal, and the arguments each verb is tried with --------------------------------------
TINY = CurveAdapter.configs["default"]


def curve_run(d):
    t = np.linspace(-1, 1, L)
    np.save(d / "curves.npy", np.stack([np.sin(3 * t + p) * 0.5 for p in np.linspace(0, 3, 8)]).astype(np.float32))
    np.save(d / "new.npy", (0.4 * np.cos(2 * t))[None].astype(np.float32))
    cfg = merge(Config(), {**TINY, "train": {**TINY["train"], "steps": 3}})
    fit(CurveSignal(np.load(d / "curves.npy"), str(d / "curves.npy")), cfg, d / "run", progress=False)
    return d / "run", {"render": (["--input", d / "new.npy"], {"inputs": [d / "new.npy"]}),
                       "interpolate": (["--from", "0", "--to", "1"], {})}


def image_run(d):
    from implicit_gon.config import resolve
    from signals import image_signal
    cfg = resolve("images", "digits", None, {"train.steps": 2, "model.hidden": 32, "model.layers": 2,
                                             "train.device": "cpu"})
    fit(image_signal(cfg.data, "train"), cfg, d / "run", progress=False)
    np.save(d / "z.npy", np.zeros((2, cfg.model.latent_dim), np.float32))
    from PIL import Image
    Image.fromarray(np.full((8, 8), 40, np.uint8)).save(d / "a.png")
    return d / "run", {"render": ([], {}), "encode": ([d / "a.png"], {"inputs": [d / "a.png"]}),
                       "decode": ([d / "z.npy"], {"latents": d / "z.npy"}),
                       "latents": (["--n", "4"], {"n": 4})}


def audio_run(d):
    import soundfile as sf
    t = np.arange(4000) / 16000
    sf.write(d / "a.wav", 0.5 * np.sin(2 * np.pi * 440 * t), 16000)
    sf.write(d / "b.wav", 0.3 * np.sin(2 * np.pi * 300 * t), 16000)
    code, _, err = run_cli(["fit", "audio", d / "a.wav", "--out", d / "run", "--steps", "2", "--hidden", "16",
                            "--layers", "2", "--quiet"])
    assert code == 0, err
    clip = {"inputs": [d / "a.wav"]}
    return d / "run", {"render": (["--input", d / "a.wav"], clip), "encode": ([d / "a.wav"], clip),
                       "interpolate": (["--from", d / "a.wav", "--to", d / "b.wav", "--frames", "2"],
                                       {"from_": d / "a.wav", "to": d / "b.wav", "frames": 2}),
                       "sample": (["--seconds", "0.5"], {"seconds": 0.5})}


def sdf_run(d):
    import trimesh
    trimesh.creation.icosphere(subdivisions=3, radius=0.5).export(d / "sphere.ply")
    trimesh.creation.box(extents=[1.0, 0.6, 0.6]).export(d / "box.stl")
    code, _, err = run_cli(["fit", "sdf", "--data", d / "sphere.ply", "--data", d / "box.stl", "--out", d / "run",
                            "--steps", "80", "--samples", "3000", "--points", "1024", "--hidden", "48",
                            "--layers", "3", "--latent-dim", "8", "--quiet"])
    assert code == 0, err
    np.save(d / "z.npy", np.zeros((1, 8), np.float32))
    one = {"index": 0, "res": 24}
    return d / "run", {"render": (["--index", "0", "--res", "24"], one),
                       "encode": ([d / "box.stl"], {"inputs": [d / "box.stl"]}),
                       "decode": ([d / "z.npy", "--res", "24"], {"latents": d / "z.npy", "res": 24}),
                       "sample": (["--n", "2"], {"n": 2}), "export": (["--index", "0", "--res", "24"], one),
                       "interpolate": (["--from", "0", "--to", "1", "--frames", "2", "--res", "24"],
                                       {"from_": 0, "to": 1, "frames": 2, "res": 24})}


RUNS = {"curve": curve_run, "images": image_run, "audio": audio_run, "sdf": sdf_run}


@pytest.fixture(scope="module", params=sorted(RUNS))
def run(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(request.param)
    path, args = RUNS[request.param](d)
    return request.param, path, args


def test_every_registered_signal_has_a_run_here():
    assert set(signals.signal_kinds()) <= set(RUNS)  # a new adapter adds its run maker above, and inherits the rest


def test_adapters_declare_what_they_implement():
    for kind in signals.signal_kinds():
        adapter = signals.adapter(kind)
        assert isinstance(adapter, SignalAdapter) and adapter.kind == kind and adapter.noun and adapter.metric
        assert adapter.coord_dim >= 1 and "eval" in adapter.verbs
        for name, spec in adapter.verbs.items():
            method = getattr(type(adapter), name)
            params = inspect.signature(method).parameters
            assert list(params) == ["self", "gon", "opts"], (kind, name)  # one shape, no catch-all **_
            assert spec.options <= OPTION_NAMES
            assert (method.__doc__ or adapter is signals.adapter("curve")), (kind, name)


def _out_name(spec) -> str:
    return "out" + (sorted(spec.outputs[0])[0] if spec.outputs else "")


def test_every_verb_from_the_cli(run, tmp_path, capsys):
    kind, path, args = run
    adapter = signals.adapter(kind)
    for name, spec in adapter.verbs.items():
        cli_args, _ = args.get(name, ([], {}))
        out = tmp_path / f"{name}-{_out_name(spec)}"
        extra = [] if name == "eval" else ["--out", out]
        code, _, err = run_cli([CLI.get(name, name), path, *cli_args, *extra, "--device", "cpu"], capsys)
        assert code == 0, (kind, name, err)
        if name != "eval":
            assert out.exists() and f"wrote {out}" in err, (kind, name, err)


def test_every_verb_from_the_api_returns_arrays(run):
    kind, path, args = run
    gon = GON.load(path, "cpu")
    adapter = signals.adapter(kind)
    for name in adapter.verbs:
        value = gon.run_verb(name, **args.get(name, ([], {}))[1])
        if name == "eval":
            assert isinstance(value, dict) and value["n"] >= 1
        elif name == "export":
            assert len(value.vertices) > 0 and len(value.faces) > 0  # a trimesh.Trimesh
        else:
            assert isinstance(value, np.ndarray) and value.size and np.isfinite(value).all(), (kind, name)


def test_options_a_verb_does_not_read_are_refused(run):
    kind, path, _ = run
    gon = GON.load(path, "cpu")
    for name, spec in signals.adapter(kind).verbs.items():
        unread = sorted(OPTION_NAMES - spec.options - {"latents"})[0]
        with pytest.raises(GONError, match=f"not used for {signals.adapter(kind).noun} runs") as e:
            gon.run_verb(name, **{unread: 1})
        assert "\n" not in str(e.value)


@pytest.mark.parametrize("run", ["curve"], indirect=True)  # the toy's own checks
def test_the_toy_curve_through_cli_and_api(run, tmp_path, capsys):
    """The exercise of issue 22: the curve adapter above gets render, sample, interpolate and eval from both."""
    kind, path, args = run
    assert kind == "curve"
    gon = GON.load(path, "cpu")
    assert "curve" in repr(gon)
    new = args["render"][1]["inputs"]
    assert gon.render(inputs=new, res=100).shape == (1, 100)  # any resolution along t
    assert gon.sample(3, seed=1).shape == (3, L) and np.array_equal(gon.sample(3, seed=1), gon.sample(3, seed=1))
    frames = gon.interpolate(0, 1, frames=5)
    ends = gon.render(inputs=[path.parent / "curves.npy"])[:2]
    assert frames.shape == (5, L) and np.allclose(frames[[0, -1]], ends, atol=1e-5)  # the ends are the encodings
    assert gon.evaluate()["n"] == 8
    code, _, err = run_cli(["sample", path, "--n", "3", "--seed", "1", "--out", tmp_path / "s.npy"], capsys)
    assert code == 0 and np.array_equal(np.load(tmp_path / "s.npy"), gon.sample(3, seed=1)), err
    code, _, err = run_cli(["render", path, "--index", "0", "--out", tmp_path / "r.npy"], capsys)
    assert code == 2 and "render --index: not used for curve runs (only for SDF runs)" in err, err
    code, _, err = run_cli(["export-mesh", path, "--index", "0", "--out", tmp_path / "m.ply"], capsys)
    assert code == 2 and "export is not a verb of curve runs" in err, err


@pytest.mark.parametrize("run", ["curve"], indirect=True)  # the toy's own checks
def test_the_toy_curve_is_fitted_from_the_cli(run, tmp_path, capsys):
    """`implicit-gon fit curve` exists with no edit outside this module: the adapter's declarations (fit_data,
    fit_help, configs) make the command, its options and its config; the run it trains serves every verb."""
    kind, path, _ = run
    assert kind == "curve"
    data = path.parent / "curves.npy"
    code, out, _ = run_cli(["fit", "-h"], capsys)
    assert code == 0 and "Train a GON on curves" in out
    code, out, _ = run_cli(["fit", "curve", "-h"], capsys)
    assert code == 0 and "Curve files or folders" in out and "--val" in out and "--dataset" not in out
    code, _, err = run_cli(["fit", "curve", "--out", tmp_path / "none"], capsys)
    assert code == 2 and "fit curve needs curve files: --data PATH" in err, err
    code, _, err = run_cli(["fit", "curve", "--data", data, "--res", "8", "--out", tmp_path / "r"], capsys)
    assert code == 2 and "No such option: --res" in err  # an image field's flag: not offered, refused
    code, _, err = run_cli(["fit", "curve", data, "--steps", "3", "--out", tmp_path / "r"], capsys)
    assert code == 0 and "fit curve: 8 training samples" in err, err
    gon = GON.load(tmp_path / "r", "cpu")
    assert gon.cfg.data.signal == "curve" and gon.cfg.data.paths == [str(data)] and gon.step == 3
    assert gon.cfg.model.hidden == 32  # from the adapter's own config
    assert gon.evaluate()["n"] == 8 and gon.sample(2, seed=0).shape == (2, L)
    code, _, err = run_cli(["fit", "curve", "--steps", "5", "--resume", "--out", tmp_path / "r", "--quiet"], capsys)
    assert code == 0 and GON.load(tmp_path / "r", "cpu").step == 5, err
    code, out, err = run_cli(["config", "show", "curve"], capsys)
    assert code == 0 and "hidden: 32" in out and "paths: []" in out and "dataset:" not in out, err
    from implicit_gon.fitting import fit_run  # the same fit from Python
    fit_run("curve", tmp_path / "api", paths=[data], flags={"train.steps": 2}, progress=False)
    assert GON.load(tmp_path / "api", "cpu").cfg.data.paths == [str(data)]
