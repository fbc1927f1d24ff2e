"""Variational head and ELBO, the fitted Gaussian, slerp, videos, chunked rendering, sample/interpolate commands."""
import math

import numpy as np
import pytest
import torch

from conftest import run_cli
from implicit_gon import GON, fit_gaussian, slerp
from implicit_gon import api
from implicit_gon.api import bits_per_dim
from implicit_gon.config import Config, GONConfig, ModelConfig, merge
from implicit_gon.siren import Siren, VariationalHead
from implicit_gon.step import gon_objective, kl_standard_normal, nll_per_sample
from implicit_gon.train import train
from signals import ImageSignal, images


def test_kl_matches_closed_form_and_monte_carlo():
    mu, logvar = torch.tensor([[0.5, -1.0]]), torch.tensor([[0.2, -0.7]])
    var = logvar.exp()
    closed = 0.5 * (var + mu**2 - 1 - logvar).sum()
    assert torch.isclose(kl_standard_normal(mu, logvar)[0], closed)
    q = torch.distributions.Normal(mu, var.sqrt())
    s = q.sample((200000,))
    mc = (q.log_prob(s) - torch.distributions.Normal(0, 1).log_prob(s)).sum(-1).mean()
    assert abs(mc.item() - closed.item()) < 0.01
    assert kl_standard_normal(torch.zeros(1, 3), torch.zeros(1, 3)).item() == 0


def test_reparameterisation_noise_in_training_mean_in_eval():
    head = VariationalHead(4)
    z = torch.randn(3, 4)
    head.train()
    a = head(z, torch.Generator().manual_seed(0))[0]
    b = head(z, torch.Generator().manual_seed(1))[0]
    assert not torch.allclose(a, b)
    zs, mu, logvar = head(z, torch.Generator().manual_seed(0))
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(zs, mu + eps * torch.exp(0.5 * logvar))
    head.eval()
    zs, mu, _ = head(z)
    assert torch.equal(zs, mu)


def test_head_starts_as_a_pass_through_with_small_noise():
    """Mean map I and noise init_std: the origin-step latents reach F unchanged, not swamped by unit noise."""
    head = VariationalHead(8, init_std=0.2)
    z = torch.randn(5000, 8)
    zs, mu, logvar = head(z, torch.Generator().manual_seed(0))
    torch.testing.assert_close(mu, z)
    assert abs((zs - mu).std().item() - 0.2) < 0.01
    assert torch.equal(head.eval()(z)[0], z)


def test_variational_head_has_its_own_learning_rate():
    from implicit_gon.config import TrainConfig
    from implicit_gon.train import make_optimizer
    m = Siren(2, 1, ModelConfig(latent_dim=4, hidden=16, layers=2, variational=True))
    opt = make_optimizer(m, TrainConfig(lr=1e-4, head_lr_mult=30))
    head_ids = {id(p) for p in m.head.parameters()}
    for group in opt.param_groups:
        in_head = {id(p) in head_ids for p in group["params"]}
        assert len(in_head) == 1
        assert group["lr"] == pytest.approx(3e-3 if in_head.pop() else 1e-4)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(m.parameters()))


def test_bits_per_dim_by_hand_on_a_tiny_case():
    y = torch.tensor([[[0.8], [0.3]]])  # two pixels, Bernoulli means
    x = torch.tensor([[[1.0], [0.0]]])
    cfg = GONConfig(likelihood="bernoulli")
    nll = nll_per_sample(y, x, cfg)
    hand = -(math.log(0.8) + math.log(0.7))
    assert abs(nll.item() - hand) < 1e-5
    kl = 0.25
    assert abs(bits_per_dim(nll + kl, 2).item() - (hand + kl) / (2 * math.log(2))) < 1e-6
    g = nll_per_sample(y, x, GONConfig(likelihood="gaussian", sigma=0.5))
    hand_g = ((0.2**2 + 0.3**2) / (2 * 0.25)) + 2 * 0.5 * math.log(2 * math.pi * 0.25)
    assert abs(g.item() - hand_g) < 1e-5


def test_variational_objective_is_negative_elbo():
    torch.manual_seed(0)
    m = Siren(2, 1, ModelConfig(latent_dim=4, hidden=16, layers=2, variational=True))
    c, x = torch.rand(10, 2) * 2 - 1, torch.rand(3, 10, 1)
    loss, parts = gon_objective(m, c, x, GONConfig(beta=0.5), generator=torch.Generator().manual_seed(0))
    assert torch.isclose(loss, parts["nll"] + 0.5 * parts["kl"])


def test_fitted_gaussian_matches_numpy():
    z = torch.randn(500, 6, dtype=torch.float64) @ torch.randn(6, 6, dtype=torch.float64) + 3
    mean, cov = fit_gaussian(z)
    np.testing.assert_allclose(mean.numpy(), z.numpy().mean(0), rtol=1e-10)
    np.testing.assert_allclose(cov.numpy(), np.cov(z.numpy(), rowvar=False), rtol=1e-10)


def test_slerp_ends_and_great_circle():
    z0, z1 = torch.tensor([3.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 1.0])
    t = torch.linspace(0, 1, 11)
    p = slerp(z0, z1, t)
    torch.testing.assert_close(p[0], z0)
    torch.testing.assert_close(p[-1], z1)
    u = p / p.norm(dim=1, keepdim=True)
    normal = torch.linalg.cross(z0, z1)
    assert (u @ normal).abs().max() < 1e-6  # in the plane of the two ends
    angles = torch.arccos((u[:-1] * u[1:]).sum(1).clamp(-1, 1))
    assert torch.allclose(angles, angles[0].expand_as(angles), atol=1e-5)  # constant angular speed


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("gen") / "run"
    x = np.random.default_rng(0).integers(0, 256, (40, 8, 8, 1), dtype=np.uint8)
    cfg = merge(Config(), {"model": {"latent_dim": 6, "hidden": 32, "layers": 2},
                           "train": {"steps": 2, "batch_size": 8, "device": "cpu"},
                           "data": {"dataset": "digits"}})
    sig = ImageSignal(x, "digits")
    gon = GON(cfg, {**sig.meta(), "coord_dim": 2, "out_dim": 1}, "cpu")
    train(gon, sig, run, progress=False)
    return run


def test_chunked_rendering_equals_one_shot(digits_run, monkeypatch):
    gon = GON.load(digits_run, "cpu")
    z = torch.randn(3, 6)
    c = images.grid(50)
    one_shot = gon.decode(z, c)
    monkeypatch.setattr(api, "DECODE_BUDGET", 7 * 3 * 32)  # chunks of 7 points
    torch.testing.assert_close(gon.decode(z, c), one_shot, rtol=0, atol=1e-6)


def test_sample_and_interpolate_commands(digits_run, tmp_path, capsys):
    import imageio.v3 as iio
    from PIL import Image
    code, _, err = run_cli(["sample", digits_run, "--n", "9", "--res", "16", "--out", tmp_path / "s.png"], capsys)
    assert code == 0, err
    assert Image.open(tmp_path / "s.png").size == (3 * 18 + 2, 3 * 18 + 2)
    code, _, err = run_cli(["sample", digits_run, "--n", "4", "--refit", "--out", tmp_path / "s2.png"], capsys)
    assert code == 0, err
    code, _, err = run_cli(["interpolate", digits_run, "--pairs", "2", "--frames", "5", "--res", "16",
                            "--out", tmp_path / "i.png"], capsys)
    assert code == 0, err
    assert Image.open(tmp_path / "i.png").size == (5 * 18 + 2, 2 * 18 + 2)  # a row per pair
    for ext in ("mp4", "gif"):
        code, _, err = run_cli(["interpolate", digits_run, "--from", "0", "--to", "3", "--frames", "30",
                                "--fps", "10", "--res", "32", "--out", tmp_path / f"v.{ext}"], capsys)
        assert code == 0, err
    frames = iio.imread(tmp_path / "v.mp4", index=None)
    assert frames.shape[0] == 30 and frames.shape[1:3] == (32, 32)
    # GIF: Pillow merges identical consecutive frames into one longer frame, so check the playing time
    gif = Image.open(tmp_path / "v.gif")
    durations = []
    for k in range(gif.n_frames):
        gif.seek(k)
        durations.append(gif.info["duration"])
    assert gif.size == (32, 32) and abs(sum(durations) - 3000) <= 30


def test_interpolate_bad_index_is_one_line(digits_run, tmp_path, capsys):
    code, _, err = run_cli(["interpolate", digits_run, "--from", "0", "--to", "999", "--out", tmp_path / "x.png"],
                           capsys)
    assert code == 2 and "999" in err and "Traceback" not in err


def test_variational_run_reports_bits_per_dim(tmp_path, shared_data, capsys):
    import json
    run = tmp_path / "v"
    code, _, err = run_cli(["fit", "images", "--dataset", "mnist", "--data-dir", shared_data / "mnist",
                            "--variational", "--steps", "2", "--batch-size", "8", "--hidden", "32", "--layers", "2",
                            "--out", run, "--quiet"], capsys)
    assert code == 0, err
    code, out, _ = run_cli(["eval", run, "--json", "--n", "16"], capsys)
    res = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and 0 < res["bits_per_dim"] < 10
    code, _, err = run_cli(["sample", run, "--n", "4", "--out", tmp_path / "s.png"], capsys)
    assert code == 0, err
