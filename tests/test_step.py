import pytest
import torch

from implicit_gon.config import GONConfig, ModelConfig
from implicit_gon.siren import Siren
from implicit_gon.step import gon_latents, gon_objective, inner_grad, make_loss

torch.set_default_dtype(torch.float32)


def tiny(variational=False, out=1, seed=0, **kw):
    torch.manual_seed(seed)
    cfg = ModelConfig(latent_dim=6, hidden=24, layers=3, variational=variational, **kw)
    m = Siren(2, out, cfg).double()
    if variational:  # move the head off its identity start, so a path that skipped it would show
        with torch.no_grad():
            for p in m.head.parameters():
                p.add_(0.3 * torch.randn_like(p))
    return m


def data(B=4, N=30, C=1, per_sample=False, seed=1):
    g = torch.Generator().manual_seed(seed)
    shape = (B, N, 2) if per_sample else (N, 2)
    return (torch.rand(*shape, generator=g, dtype=torch.float64) * 2 - 1,
            torch.rand(B, N, C, generator=g, dtype=torch.float64))


@pytest.mark.parametrize("loss", ["mse", "l1", "bce"])
def test_origin_step_matches_finite_differences(loss):
    """z = -a * dL/dz0 at 0, with L the per-sample summed loss: compare with central differences of L."""
    m = tiny().eval()
    c, x = data(B=3)
    cfg = GONConfig(step_size=0.3, loss=loss)
    z = gon_latents(m, c, x, cfg, create_graph=False)
    fn = make_loss(loss)

    def L(zb):  # loss of sample b at latent zb
        return fn(m(c, zb[None])[0], x[b:b + 1]).sum()
    eps = 1e-6
    for b in range(3):
        for k in range(6):
            e = torch.zeros(6, dtype=torch.float64)
            e[k] = eps
            fd = (L(e) - L(-e)) / (2 * eps)
            assert torch.isclose(z[b, k], -0.3 * fd, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("variational", [False, True])
@pytest.mark.parametrize("per_sample", [False, True])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("zero_origin", [False, True])
def test_fast_path_equals_reference(variational, per_sample, channels, zero_origin):
    """Shared-origin Jacobian path vs plain autograd double backward: same latents and parameter gradients."""
    kw = dict(zero_origin=True, out_activation="identity") if zero_origin else {}
    m = tiny(variational, out=channels, **kw)
    c, x = data(C=channels, per_sample=per_sample)
    results = []
    for fast in (True, False):
        m.zero_grad()
        cfg = GONConfig(fast=fast, likelihood="gaussian" if zero_origin else "bernoulli")  # identity output
        gen = torch.Generator().manual_seed(5)
        loss, _ = gon_objective(m, c, x, cfg, scale=2.5, generator=gen)
        loss.backward()
        z = gon_latents(m, c, x, cfg, 2.5, create_graph=False)
        results.append((z, [p.grad.clone() for p in m.parameters()]))
    (z1, g1), (z2, g2) = results
    torch.testing.assert_close(z1, z2, rtol=1e-4, atol=1e-10)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-10)


def test_fast_path_equals_reference_in_float32_on_image_sizes():
    torch.manual_seed(0)
    m = Siren(2, 1, ModelConfig(latent_dim=32, hidden=64, layers=3))
    c = torch.rand(196, 2) * 2 - 1
    x = torch.rand(16, 196, 1)
    z_fast = gon_latents(m, c, x, GONConfig(fast=True), create_graph=False)
    z_ref = gon_latents(m, c, x, GONConfig(fast=False), create_graph=False)
    torch.testing.assert_close(z_fast, z_ref, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("fast", [True, False])
def test_latents_do_not_depend_on_batch_size(fast):
    m = tiny()
    c, x = data(B=8)
    cfg = GONConfig(fast=fast)
    together = gon_latents(m, c, x, cfg, create_graph=False)
    alone = torch.cat([gon_latents(m, c, x[i:i + 1], cfg, create_graph=False) for i in range(8)])
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-12)


def test_monte_carlo_subset_is_unbiased():
    """Mean over many random subsets of (scale * subset sum) equals the full sum, for the loss and the latent."""
    from signals.base import draw_subset
    m = tiny()
    c, x = data(B=2, N=40)
    fn = make_loss("mse")
    cfg = GONConfig()
    z0 = torch.zeros(2, 6, dtype=torch.float64)
    full_loss = fn(m(c, z0)[0], x).sum((1, 2))
    full_z = gon_latents(m, c, x, cfg, create_graph=False)
    g = torch.Generator().manual_seed(0)
    losses, zs = [], []
    for _ in range(3000):
        sub, scale = draw_subset(40, 0.25, g)
        losses.append(scale * fn(m(c[sub], z0)[0], x[:, sub]).sum((1, 2)))
        zs.append(gon_latents(m, c[sub], x[:, sub], cfg, scale, create_graph=False))
    losses, zs = torch.stack(losses), torch.stack(zs)
    se = losses.std(0) / len(losses) ** 0.5
    assert ((losses.mean(0) - full_loss).abs() < 4 * se).all()
    zse = zs.std(0) / len(zs) ** 0.5
    assert ((zs.mean(0) - full_z).abs() < 4 * zse + 1e-9).all()
    assert (scale * 10 == 40) and zs.std(0).max() > 0  # really subsampled: 10 of 40, estimates vary


def test_more_inner_steps_lower_the_inner_loss():
    m = tiny(seed=3)
    c, x = data()
    fn = make_loss("mse")
    losses = []
    for k in (1, 3):
        z = gon_latents(m, c, x, GONConfig(inner_steps=k, step_size=0.05), create_graph=False)
        losses.append(fn(m(c, z)[0], x).sum().item())
    base = fn(m(c, torch.zeros(4, 6, dtype=torch.float64))[0], x).sum().item()
    assert losses[1] < losses[0] < base


def test_detach_stops_second_order_gradient():
    """With detach, the latent map's weights only get gradient from the outer pass at the fixed latent."""
    m = tiny()
    c, x = data()
    loss, _ = gon_objective(m, c, x, GONConfig(detach=True))
    loss.backward()
    g_detach = m.input.latent.weight.grad.clone()
    m.zero_grad()
    z = gon_latents(m, c, x, GONConfig(), create_graph=False).detach()
    (make_loss("mse")(m(c, z)[0], x).sum((1, 2)).mean()).backward()
    torch.testing.assert_close(g_detach, m.input.latent.weight.grad)
    m.zero_grad()
    gon_objective(m, c, x, GONConfig())[0].backward()
    assert not torch.allclose(g_detach, m.input.latent.weight.grad)


def test_reference_inner_grad_is_per_sample_sum():
    m = tiny()
    c, x = data(B=3)
    g = inner_grad(m, c, x, torch.zeros(3, 6, dtype=torch.float64), make_loss("mse"), 1.0, False)
    g1 = inner_grad(m, c, x[1:2], torch.zeros(1, 6, dtype=torch.float64), make_loss("mse"), 1.0, False)
    torch.testing.assert_close(g[1:2], g1)


def test_zero_origin_decodes_the_zero_latent_to_zero_and_silence_to_the_zero_latent():
    """model.zero_origin: F(c ⊕ z) - F(c ⊕ 0), so a silent window's origin step gives z = 0 and renders as 0."""
    m = tiny(zero_origin=True, out_activation="identity")
    c, x = data(B=3)
    y, _, _ = m(c, torch.zeros(3, 6, dtype=torch.float64))
    assert y.abs().max() < 1e-12  # to rounding: batched and unbatched passes may sum in another order
    z = gon_latents(m, c, torch.zeros_like(x), GONConfig(), create_graph=False)
    assert z.abs().max() < 1e-12
    z = gon_latents(m, c, x, GONConfig(step_size=0.3), create_graph=False)
    e = torch.zeros(6, dtype=torch.float64)
    e[2] = 1e-6  # the step is still -a dL/dz0, now with L measured against F(c ⊕ z) - F(c ⊕ 0)
    fd = (((m(c, e[None])[0] - x[0]).square().sum() - (m(c, -e[None])[0] - x[0]).square().sum()) / 2e-6)
    assert torch.isclose(z[0, 2], -0.3 * fd, rtol=1e-5)
    plain = tiny(out_activation="identity")
    assert not torch.equal(plain(c, torch.zeros(3, 6, dtype=torch.float64))[0], torch.zeros(3, 30, 1))
    from implicit_gon.config import Config, check_rules
    from implicit_gon.errors import GONError
    with pytest.raises(GONError, match="zero_origin"):  # a sigmoid's zero is 0.5; the config holds the rule
        check_rules(Config(model=ModelConfig(zero_origin=True)))


def test_objective_can_measure_the_outer_loss_elsewhere():
    """query: the step encodes (c, x) and the outer loss is the per-sample sum at the query points, times its scale;
    a query of the step's own points is the paper's objective."""
    m = tiny(out_activation="identity")
    c, x = data(B=3, N=30)
    cq, xq = data(B=3, N=12, seed=7)
    cfg = GONConfig(step_size=0.3)
    same, _ = gon_objective(m, c, x, cfg, 2.0)
    torch.testing.assert_close(gon_objective(m, c, x, cfg, 2.0, query=(c, x, 2.0))[0], same)
    loss, _ = gon_objective(m, c, x, cfg, 2.0, query=(cq, xq, 0.5))
    z = gon_latents(m, c, x, cfg, 2.0, create_graph=False)
    expect = 0.5 * (m(cq, z)[0] - xq).square().sum((1, 2)).mean()
    torch.testing.assert_close(loss, expect)
    assert not torch.isclose(loss, same)


# -- gon.origin_std (the paper's Appendix C: z0 ~ N(0, sigma^2 I) per sample in training) ----------------------------


def test_origin_std_range_and_task_are_checked_by_the_config():
    from implicit_gon.config import Config, check_rules, merge
    from implicit_gon.errors import GONError
    with pytest.raises(GONError, match=r"gon\.origin_std = -0\.1"):
        merge(Config(), {"gon": {"origin_std": -0.1}})
    assert merge(Config(), {"gon": {"origin_std": 0.5}}).gon.origin_std == 0.5
    with pytest.raises(GONError, match="origin_std = 0.5 is for gon.task reconstruct"):
        check_rules(merge(Config(), {"gon": {"origin_std": 0.5, "task": "classify"}}))


def _objective_and_grads(m, c, x, cfg, seed):
    m.zero_grad()
    loss, _ = gon_objective(m, c, x, cfg, scale=2.5, generator=torch.Generator().manual_seed(seed))
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in m.parameters()]


@pytest.mark.parametrize("fast", [True, False])
def test_origin_std_zero_is_the_origin_step_bit_for_bit(fast):
    """std 0 draws nothing: loss and gradients equal (exactly) the step from the origin composed by hand, with the
    variational head's noise read from the same generator, so no draw was taken before it."""
    from implicit_gon.step import outer_loss
    m = tiny(variational=True)
    c, x = data()
    cfg = GONConfig(fast=fast, origin_std=0.0)
    loss, grads = _objective_and_grads(m, c, x, cfg, seed=5)
    m.zero_grad()
    z = gon_latents(m, c, x, cfg, 2.5)
    ref, _ = outer_loss(m, z, c, x, cfg, 2.5, torch.Generator().manual_seed(5))
    ref.backward()
    assert torch.equal(loss, ref.detach())
    assert all(torch.equal(a, p.grad) for a, p in zip(grads, m.parameters()))


@pytest.mark.parametrize("per_sample", [False, True])
def test_general_path_from_a_zero_origin_agrees_with_the_shared_origin_path(per_sample):
    m = tiny()
    c, x = data(per_sample=per_sample)
    zero = torch.zeros(4, 6, dtype=torch.float64)
    fast = gon_latents(m, c, x, GONConfig(fast=True), create_graph=False)
    general = gon_latents(m, c, x, GONConfig(fast=True), create_graph=False, origin=zero)
    torch.testing.assert_close(general, fast, rtol=1e-4, atol=1e-10)


def test_origin_std_above_zero_steps_from_a_seeded_draw():
    """std > 0: z = z0 - a grad L(z0) from the generator's draw, on the general path (fast or not, the same);
    reproducible with the seed, different with another seed and from std 0."""
    from implicit_gon.step import draw_origin
    m = tiny()
    c, x = data()
    cfg = GONConfig(origin_std=0.5, step_size=0.3)
    once, again = (_objective_and_grads(m, c, x, cfg, seed=3) for _ in range(2))
    assert torch.equal(once[0], again[0]) and all(torch.equal(a, b) for a, b in zip(once[1], again[1]))
    assert not torch.equal(once[0], _objective_and_grads(m, c, x, cfg, seed=4)[0])
    assert not torch.isclose(once[0], _objective_and_grads(m, c, x, GONConfig(step_size=0.3), seed=3)[0])
    slow = GONConfig(origin_std=0.5, step_size=0.3, fast=False)
    assert torch.equal(once[0], _objective_and_grads(m, c, x, slow, seed=3)[0])
    z0 = draw_origin(cfg, 4, 6, "cpu", torch.float64, torch.Generator().manual_seed(3))
    assert z0.std() > 0.2  # the draw is N(0, 0.5^2): not the origin
    z = gon_latents(m, c, x, cfg, create_graph=False, origin=z0)
    g = inner_grad(m, c, x, z0.clone(), make_loss("mse"), 1.0, False)
    torch.testing.assert_close(z, z0 - 0.3 * g)
    from implicit_gon.errors import GONError
    with pytest.raises(GONError, match="origin_std = 0.5 draws each z0 from a generator"):
        gon_objective(m, c, x, cfg)


def test_origin_std_trains_reproducibly_and_encodes_from_the_origin(tmp_path):
    """A run with origin_std > 0 trains the same twice with one seed (and not as std 0 does); its latents outside
    training start from the origin: equal for any batch size, and to a std-0 GON's with the same weights."""
    import dataclasses
    import json
    from implicit_gon import GON, fit
    from implicit_gon.config import resolve
    from signals import image_signal

    def run(name, std):
        cfg = resolve("images", "digits", None, {"train.steps": 4, "model.hidden": 32, "model.layers": 2,
                                                 "train.device": "cpu", "train.log_every": 1,
                                                 "gon.origin_std": std})
        gon = fit(image_signal(cfg.data, "train"), cfg, tmp_path / name, progress=False)
        rows = [json.loads(r) for r in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        return gon, [r["loss"] for r in rows if "loss" in r]

    gon, losses = run("a", 0.5)
    assert len(losses) == 4 and losses == run("b", 0.5)[1] and losses[1:] != run("c", 0.0)[1][1:]
    signal = image_signal(gon.cfg.data, "test")
    one = gon.encode_signal(signal, torch.arange(9), batch_size=1)
    nine = gon.encode_signal(signal, torch.arange(9), batch_size=9)
    torch.testing.assert_close(one, nine, rtol=1e-5, atol=1e-7)
    at_origin = GON(dataclasses.replace(gon.cfg, gon=dataclasses.replace(gon.cfg.gon, origin_std=0.0)), gon.meta)
    at_origin.model.load_state_dict(gon.model.state_dict())
    torch.testing.assert_close(at_origin.encode_signal(signal, torch.arange(9), batch_size=9), nine)
