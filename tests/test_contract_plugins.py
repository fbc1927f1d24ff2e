"""The decoder and method contracts, one suite each parametrised over the registry (implicit_gon/registry.py): a
decoder or method registered later, such as the toy ones at the end, is checked by the same functions."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from implicit_gon import registry
from implicit_gon.api import GON
from implicit_gon.config import Config
from implicit_gon.grids import pixel_grid
from implicit_gon.siren import HeadedDecoder, VariationalHead
from implicit_gon.step import gon_latents
from implicit_gon.train import evaluate, fit
from signals import ImageSignal

K = 4


def _res(spec) -> int:
    return min(spec.grid_sizes) if spec.grid_sizes else 8


def _config(decoder: str, res: int, **sections) -> Config:
    base = {"model": {"decoder": decoder, "latent_dim": K, "hidden": 16, "layers": 2, "conv_width": 4},
            "data": {"res": res, "channels": 1}, "train": {"steps": 2, "batch_size": 4, "points": 1.0, "seed": 0}}
    for key, value in sections.items():
        section, name = key.split(".")
        base.setdefault(section, {})[name] = value
    return Config.from_dict(base, "test")


def _images(res: int, n: int = 8) -> ImageSignal:
    return ImageSignal(np.random.default_rng(0).integers(0, 256, (n, res, res, 1), dtype=np.uint8))


def check_decoder(spec, tmp_path) -> None:
    """What the engine relies on of any F: values (B, N, C) on the pixel grid, a step's latents (B, K) that do not
    depend on the batch, and a checkpoint that rebuilds the same function."""
    res = _res(spec)
    cfg = _config(spec.name, res)
    meta = {"signal": "images", "res": res, "channels": 1, "coord_dim": 2, "out_dim": 1, "train_samples": 8}
    gon = GON(cfg, meta, "cpu")
    assert hasattr(gon.model, "head") and gon.model.head is None
    b = _images(res).full(torch.arange(4), "cpu")  # coords (N, 2), values (4, N, 1)
    y, mu, logvar = gon.model(b.coords, torch.zeros(4, K))
    assert y.shape == (4, res * res, 1) and mu is None and logvar is None and torch.isfinite(y).all()
    with torch.enable_grad():
        z = gon_latents(gon.model, b.coords, b.values, cfg.gon, create_graph=False)
        z1 = gon_latents(gon.model, b.coords, b.values[:1], cfg.gon, create_graph=False)
    assert z.shape == (4, K) and torch.isfinite(z).all()
    torch.testing.assert_close(z[:1], z1, rtol=1e-4, atol=1e-6)  # latents do not depend on the batch
    gon.save(tmp_path / "run")
    again = GON.load(tmp_path / "run", device="cpu")
    torch.testing.assert_close(again.decode(z, b.coords), gon.decode(z, b.coords))


def check_method(spec, tmp_path) -> None:
    """Any method trains, scores, encodes to (B, K) and round-trips through its checkpoint."""
    decoder = (spec.decoders or tuple(registry.decoders()))[0]
    res = _res(registry.decoder(decoder))
    cfg = _config(decoder, res, **spec.overrides)
    sig = _images(res)
    gon = fit(sig, cfg, tmp_path / "run", progress=False)
    scores = evaluate(gon, sig)
    assert np.isfinite(scores["sse"]) and ("bits_per_dim" in scores) == spec.variational
    z = gon.encode_batch(sig.full(torch.arange(3), "cpu"))
    assert z.shape == (3, K) and torch.isfinite(z).all()
    again = GON.load(tmp_path / "run", device="cpu")
    torch.testing.assert_close(again.encode_batch(sig.full(torch.arange(3), "cpu")), z)


@pytest.mark.parametrize("name", list(registry.decoders()))
def test_decoder_contract(name, tmp_path):
    check_decoder(registry.decoder(name), tmp_path)


@pytest.mark.parametrize("name", list(registry.methods()))
def test_method_contract(name, tmp_path):
    check_method(registry.methods()[name], tmp_path)


# -- adding a plug-in: a toy decoder and a toy method, registered here and checked by the suites above -------------
class AffineDecoder(HeadedDecoder):
    """F(c ⊕ z) = sigmoid(W [c, z] + b): the smallest decoder (no hidden layer)."""

    def __init__(self, coord_dim: int, out_dim: int, cfg):
        super().__init__()
        self.latent_dim = cfg.latent_dim
        self.linear = nn.Linear(coord_dim + cfg.latent_dim, out_dim)
        self.head = VariationalHead(cfg.latent_dim, cfg.head_init_std) if cfg.variational else None

    def after_head(self, coords, z):  # coords (N, d) or (B, N, d), z (B, K) -> (B, N, C)
        c = coords.expand(len(z), *coords.shape[-2:]) if coords.dim() == 2 else coords
        return torch.sigmoid(self.linear(torch.cat([c, z[:, None].expand(-1, c.shape[1], -1)], -1)))


class MeanLatent:
    """A toy method: every sample's latent is the learned mean (one vector), so F learns the average image."""

    @staticmethod
    def attach(model, cfg, meta):
        model.mean_latent = nn.Parameter(torch.zeros(model.latent_dim))

    @staticmethod
    def objective(model, batch, cfg, generator=None, beta=None):
        from implicit_gon.step import outer_loss
        z = model.mean_latent.expand(len(batch.values), -1)
        return outer_loss(model, z, batch.coords, batch.values, cfg.gon, batch.scale, generator, beta)

    @staticmethod
    def encode(gon, batch):
        return gon.model.mean_latent.detach().expand(len(batch.values), -1).clone()


@pytest.fixture
def toy_registry(monkeypatch):
    """The toy plug-ins registered for one test (the registry restored afterwards)."""
    registry.decoders()  # the shipped plug-ins first
    monkeypatch.setattr(registry, "_DECODERS", dict(registry._DECODERS))
    monkeypatch.setattr(registry, "_METHODS", dict(registry._METHODS))
    registry.register_decoder(registry.DecoderSpec(
        "affine", lambda meta, cfg: AffineDecoder(meta["coord_dim"], meta["out_dim"], cfg)))
    registry.register_method(registry.MethodSpec("mean", {"method.name": "mean"}, ("siren", "affine"),
                                                 implementation=MeanLatent))


def test_toy_decoder_inherits_the_contract(toy_registry, tmp_path):
    check_decoder(registry.decoder("affine"), tmp_path)


def test_toy_method_inherits_the_contract(toy_registry, tmp_path):
    check_method(registry.methods()["mean"], tmp_path)
    check_method(registry.MethodSpec("gon-on-affine", decoders=("affine",)), tmp_path / "affine")


def test_config_reads_the_registry(toy_registry):
    """Choices and constraints come from the specs: a registered name is accepted, an unknown one refused."""
    from implicit_gon.errors import GONError
    assert _config("affine", 8, **{"method.name": "mean"}).method.name == "mean"
    with pytest.raises(GONError, match="needs model.decoder siren or affine"):
        _config("conv", 28, **{"method.name": "mean"})
    with pytest.raises(GONError, match="choose one of siren, conv or affine"):
        _config("nope", 8)
    with pytest.raises(GONError, match="data.res 28 or 32"):
        _config("conv", 8)


# -- adding a plug-in, a second pair: driven through the command line and the Python API like a shipped one ------
class ReluMLP(HeadedDecoder):
    """F(c ⊕ z) = sigmoid(MLP([c, z])): model.layers ReLU layers of model.hidden units, no sines. It reads the
    SIREN's width and depth fields, which it declares (DecoderSpec.reads), so --hidden and --layers reach it."""

    def __init__(self, coord_dim: int, out_dim: int, cfg):
        super().__init__()
        self.latent_dim = cfg.latent_dim
        dims = [coord_dim + cfg.latent_dim] + [cfg.hidden] * cfg.layers
        hidden = [m for a, b in zip(dims, dims[1:]) for m in (nn.Linear(a, b), nn.ReLU())]
        self.net = nn.Sequential(*hidden, nn.Linear(dims[-1], out_dim))
        self.head = VariationalHead(cfg.latent_dim, cfg.head_init_std) if cfg.variational else None

    def after_head(self, coords, z):  # coords (N, d) or (B, N, d), z (B, K) -> (B, N, C)
        c = coords.expand(len(z), *coords.shape[-2:]) if coords.dim() == 2 else coords
        return torch.sigmoid(self.net(torch.cat([c, z[:, None].expand(-1, c.shape[1], -1)], -1)))


class RandomEncoder:
    """A toy method: z = x P, a fixed random projection of the whole image (seeded by train.seed, never trained;
    a buffer, so the checkpoint keeps it); only F learns to decode it."""

    @staticmethod
    def attach(model, cfg, meta):
        n = meta["res"] ** 2 * meta["out_dim"]  # pixels x channels of one image
        g = torch.Generator().manual_seed(cfg.train.seed)
        model.register_buffer("projection", torch.randn(n, cfg.model.latent_dim, generator=g) / n ** 0.5)

    @staticmethod
    def latents(model, values):  # (B, N, C) whole images -> (B, K)
        return values.flatten(1) @ model.projection

    @classmethod
    def objective(cls, model, batch, cfg, generator=None, beta=None):
        from implicit_gon.step import outer_loss
        z = cls.latents(model, batch.values)
        return outer_loss(model, z, batch.coords, batch.values, cfg.gon, batch.scale, generator, beta)

    @classmethod
    def encode(cls, gon, batch):
        return cls.latents(gon.model, batch.values).detach()


@pytest.fixture
def second_pair(monkeypatch):
    registry.decoders()
    monkeypatch.setattr(registry, "_DECODERS", dict(registry._DECODERS))
    monkeypatch.setattr(registry, "_METHODS", dict(registry._METHODS))
    registry.register_decoder(registry.DecoderSpec(
        "relu-mlp", lambda meta, cfg: ReluMLP(meta["coord_dim"], meta["out_dim"], cfg),
        reads=("model.hidden", "model.layers")))
    registry.register_method(registry.MethodSpec("random-encoder", {"method.name": "random-encoder"},
                                                 implementation=RandomEncoder, whole_images=True))


def test_second_pair_inherits_the_contracts(second_pair, tmp_path):
    check_decoder(registry.decoder("relu-mlp"), tmp_path / "d")
    check_method(registry.methods()["random-encoder"], tmp_path / "m")


def test_second_pair_fits_and_renders_from_both_front_ends(second_pair, tmp_path, capsys):
    """Registered in this module and nowhere else: `fit` takes them by name (with the MLP's --hidden and --layers),
    every image verb renders the run from the CLI and the API, and `compare` runs the method."""
    from conftest import run_cli
    run = tmp_path / "run"
    code, _, err = run_cli(["fit", "images", "--dataset", "digits", "--decoder", "relu-mlp", "--method",
                            "random-encoder", "--hidden", "24", "--layers", "2", "--latent-dim", str(K), "--steps", "3",
                            "--points", "1", "--quiet", "--device", "cpu", "--out", run], capsys)
    assert code == 0, err
    for verb, args, name in [("render", ["--res", "16", "--n", "4"], "r.png"), ("sample", ["--n", "4"], "s.png"),
                             ("interpolate", ["--pairs", "1", "--frames", "3"], "i.png"), ("eval", [], None)]:
        out = ["--out", tmp_path / name] if name else ["--json"]
        code, _, err = run_cli([verb, run, *args, *out, "--device", "cpu"], capsys)
        assert code == 0, f"{verb}: {err}"
    gon = GON.load(run, device="cpu")
    assert isinstance(gon.model, ReluMLP) and gon.model.net[0].out_features == 24
    assert "relu-mlp" in repr(gon) and "random-encoder" in repr(gon) and "conv" not in repr(gon)
    pics = gon.render(res=8, n=3)
    z = gon.encode(pics)
    assert z.shape == (3, K) and gon.render(z, res=16).shape == (3, 16, 16, 1)
    assert gon.sample(2).shape == (2, 8, 8, 1) and gon.interpolate(0, 1, frames=3).shape == (3, 8, 8, 1)
    code, _, err = run_cli(["compare", "--dataset", "digits", "--methods", "random-encoder,gon", "--decoder",
                            "relu-mlp", "--steps", "2", "--seeds", "1", "--held-out", "8", "--out", tmp_path / "cmp"],
                           capsys)
    assert code == 0, err
