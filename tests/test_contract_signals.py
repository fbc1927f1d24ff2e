"""The Signal contract, one suite parametrised over every adapter: what the engine relies on."""
import math

import numpy as np
import pytest
import torch

from signals import ImageSignal
from signals.audio import AudioSignal
from signals.base import Signal


def image_signal():
    return ImageSignal(np.random.default_rng(0).integers(0, 256, (6, 12, 12, 3), dtype=np.uint8))


def audio_signal(oversample=1):
    t = np.arange(4000) / 8000
    clips = [np.sin(2 * np.pi * 440 * t)[:, None].astype(np.float32),
             np.sin(2 * np.pi * 300 * t[:3000])[:, None].astype(np.float32)]
    return AudioSignal(clips, 8000, window=0.05, hop=None, oversample=oversample)


def sdf_signal():
    import trimesh
    from implicit_gon.config import DataConfig
    from signals import sdf
    rows = [sdf.sample_sdf(trimesh.creation.icosphere(subdivisions=2, radius=r), 800, [0.01, 0.05], 0.2)
            for r in (0.3, 0.45, 0.6)]
    return sdf.SDFSignal(np.stack(rows), ["a", "b", "c"], [([0.0, 0.0, 0.0], 1.0)] * 3)


ADAPTERS = {"images": image_signal, "audio": audio_signal, "audio-oversampled": lambda: audio_signal(3),
            "sdf": sdf_signal}


@pytest.fixture(params=sorted(ADAPTERS))
def sig(request):
    return ADAPTERS[request.param]()


def test_is_a_signal(sig):
    assert isinstance(sig, Signal) and sig.kind in ("images", "audio", "sdf")
    assert len(sig) > 1 and sig.coord_dim >= 1 and sig.out_dim >= 1


def test_full_batch_shapes_and_ranges(sig):
    b = sig.full(torch.arange(2), "cpu")
    B, N, C = b.values.shape
    assert b.coords.dim() == 2 or b.coords.shape[0] == B  # shared by the batch, or one set per sample
    assert (B, C) == (2, sig.out_dim) and b.scale > 0
    assert b.coords.shape[-2:] == (N, sig.coord_dim) and b.coords.dtype == torch.float32
    assert b.coords.abs().max() <= 1 and torch.isfinite(b.values).all()


def test_subsampled_batch_is_unbiased_and_seeded(sig):
    full = sig.full(torch.arange(3), "cpu")
    N = full.values.shape[1]
    g = torch.Generator().manual_seed(0)
    b = sig.batch(torch.arange(3), 0.25, g, "cpu")
    n = b.values.shape[1]
    assert n == round(0.25 * N) and math.isclose(b.scale * n, full.scale * N)  # sums estimate the same integral
    b2 = sig.batch(torch.arange(3), 0.25, torch.Generator().manual_seed(0), "cpu")
    assert torch.equal(b.coords, b2.coords) and torch.equal(b.values, b2.values)
    # the subset's values are the full batch's values at the same coordinates, sample by sample
    for i in range(3):
        coords = full.coords if full.coords.dim() == 2 else full.coords[i]
        sub = b.coords if b.coords.dim() == 2 else b.coords[i]
        pos = [int(torch.nonzero((coords == c).all(-1))[0]) for c in sub]
        assert torch.equal(b.values[i], full.values[i, pos])
    # mean of scale * subset sums over draws approaches the full sum
    sums = torch.stack([(lambda bb: bb.scale * bb.values.sum((1, 2)))(sig.batch(torch.arange(3), 0.25, g, "cpu"))
                        for _ in range(400)])
    se = sums.std(0) / 20
    assert ((sums.mean(0) - full.scale * full.values.sum((1, 2))).abs() < 4 * se + 1e-6).all()


def test_outer_loss_points_estimate_the_same_integral(sig):
    """A batch's query (where the outer loss is measured, when not at the step's points) has the batch's layout
    and a scale that makes its sums estimate the same integral."""
    full = sig.full(torch.arange(3), "cpu")
    b = sig.batch(torch.arange(3), 0.25, torch.Generator().manual_seed(0), "cpu")
    q = b.query or b
    assert q.query is None and q.values.shape[0] == 3 and q.values.shape[-1] == sig.out_dim
    # points between samples may lie past the last sample centre, by less than one sample (2 / N)
    N = full.values.shape[1]
    assert q.coords.shape[-1] == sig.coord_dim and q.coords.abs().max() <= 1 + 2 / N
    assert torch.isfinite(q.values).all()
    assert math.isclose(q.scale * q.values.shape[1], full.scale * full.values.shape[1])
    assert (b.query is not None) == (getattr(sig, "oversample", 1) > 1)


def test_count_of_points(sig):
    b = sig.batch(torch.arange(2), 5, torch.Generator().manual_seed(1), "cpu")
    assert b.values.shape[1] == 5


def test_meta_is_json_and_names_the_signal(sig):
    import json
    m = sig.meta()
    assert json.loads(json.dumps(m)) == m and m["signal"] == sig.kind


def test_engine_trains_on_it(sig, tmp_path):
    """Two steps through the real training loop, then encode: the engine needs nothing else from an adapter."""
    from implicit_gon import GON
    from implicit_gon.config import Config, merge
    from implicit_gon.train import train
    cfg = merge(Config(), {"model": {"latent_dim": 4, "hidden": 16, "layers": 2},
                           "train": {"steps": 2, "batch_size": 2, "points": 0.5, "device": "cpu"}})
    gon = GON(cfg, {**sig.meta(), "coord_dim": sig.coord_dim, "out_dim": sig.out_dim}, "cpu")
    train(gon, sig, tmp_path, progress=False)
    z = gon.encode_signal(sig, [0, 1])
    assert z.shape == (2, 4) and torch.isfinite(z).all()
