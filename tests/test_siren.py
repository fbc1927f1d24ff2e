import math

import torch

from implicit_gon.config import ModelConfig
from implicit_gon.siren import LatentInput, SineLayer, Siren


def test_hidden_layer_init_bounds_and_std():
    torch.manual_seed(0)
    layer = SineLayer(256, 256, w0=30.0)
    bound = math.sqrt(6 / 256) / 30
    w = layer.linear.weight
    assert w.abs().max() <= bound
    assert abs(w.std().item() - bound / math.sqrt(3)) < 0.02 * bound  # U(-b, b) has std b/sqrt(3)


def test_first_layer_init_as_if_concatenated():
    torch.manual_seed(0)
    layer = LatentInput(2, 32, 256, w0=30.0)
    bound = 1 / 34
    for w in (layer.coord.weight, layer.latent.weight):
        assert w.abs().max() <= bound
    assert abs(layer.latent.weight.std().item() - bound / math.sqrt(3)) < 0.05 * bound


def test_activations_keep_arcsine_distribution_through_depth():
    """SIREN's init keeps every hidden sine layer's outputs ~ arcsine on [-1, 1] (variance 1/2), at any depth."""
    torch.manual_seed(0)
    m = Siren(2, 1, ModelConfig(latent_dim=8, hidden=512, layers=6))
    c = torch.rand(4096, 2) * 2 - 1
    h = torch.sin(m.input.pre_coords(c) + m.input.pre_latent(torch.zeros(1, 8)))
    for layer in m.body:
        h = layer(h)
        assert 0.4 < h.var().item() < 0.6
        assert h.abs().max() <= 1


def test_forward_shapes_shared_and_per_sample_coords():
    m = Siren(3, 2, ModelConfig(latent_dim=4, hidden=16, layers=2, out_activation="identity"))
    z = torch.randn(5, 4)
    assert m(torch.rand(7, 3), z)[0].shape == (5, 7, 2)
    assert m(torch.rand(5, 7, 3), z)[0].shape == (5, 7, 2)


def test_split_first_layer_equals_concatenated_linear():
    """W_c c + W_z z is the same function as one linear layer on c ⊕ z."""
    torch.manual_seed(1)
    inp = LatentInput(2, 6, 10, w0=1.0)
    c, z = torch.rand(9, 2), torch.randn(3, 6)
    W = torch.cat([inp.coord.weight, inp.latent.weight], 1)
    cat = torch.cat([c.expand(3, 9, 2), z[:, None].expand(3, 9, 6)], -1)
    ref = cat @ W.T + inp.coord.bias
    assert torch.allclose(inp.pre_coords(c) + inp.pre_latent(z)[:, None], ref, atol=1e-6)
