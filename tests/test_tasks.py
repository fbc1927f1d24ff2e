"""The tasks of paper Sec. 3.5 (implicit_gon/tasks): the classifier's gradient through the step against finite
differences, the fast origin path against plain double backward for every task, and each conversion view's source
coordinates and values (signals/views.py)."""
import numpy as np
import pytest
import torch
from PIL import Image

from implicit_gon.config import Config, GONConfig, ModelConfig
from implicit_gon.errors import GONError
from implicit_gon.siren import Siren
from implicit_gon.step import make_loss
from implicit_gon.tasks import attach_heads, inner_loss, objective
from implicit_gon.tasks.convert import luminance
from signals import ImageSignal
from signals.base import Batch
from signals.images import grid
from signals.views import ConvertSignal, View, box_matrix, downsample, load_mask, parse_view


def tiny(out=1, classes=None, seed=0, task="reconstruct"):
    torch.manual_seed(seed)
    cfg = Config(model=ModelConfig(latent_dim=5, hidden=16, layers=3), gon=GONConfig(task=task, step_size=0.5))
    m = Siren(2, out, cfg.model)
    if classes:
        attach_heads(m, cfg, {"classes": [str(i) for i in range(classes)]})
    return m.double(), cfg


def labelled_batch(B=6, N=20, C=1, seed=1):
    g = torch.Generator().manual_seed(seed)
    c = torch.rand(N, 2, generator=g, dtype=torch.float64) * 2 - 1
    x = torch.rand(B, N, C, generator=g, dtype=torch.float64)
    return Batch(c, x, 1.5, labels=torch.arange(B) % 3)


def test_classify_gradient_through_the_step_matches_finite_differences():
    """Eq. 13: d CE(W z(theta) + b) / d theta, with z the one-step latent, against central differences."""
    m, cfg = tiny(classes=3, task="classify")
    m.eval()  # the classifier's standardisation on its running statistics: one fixed affine map of z
    with torch.no_grad():
        m.classifier[0].running_mean.uniform_(-0.05, 0.05)
        m.classifier[0].running_var.uniform_(0.001, 0.01)  # the latents' own scale, so the logits are O(1)
    b = labelled_batch()
    loss, parts = objective(m, b, cfg)
    assert 0.3 < loss.item() < 10 and torch.isclose(loss, parts["ce"])
    loss.backward()
    eps = 1e-6
    checked = 0
    for p in (m.input.coord.weight, m.input.latent.weight, m.body[0].linear.weight, m.out.bias,
              m.classifier[1].weight):
        for i in range(0, p.numel(), max(1, p.numel() // 4)):
            flat = p.data.view(-1)
            old = flat[i].item()
            flat[i] = old + eps
            up = objective(m, b, cfg)[0].item()
            flat[i] = old - eps
            down = objective(m, b, cfg)[0].item()
            flat[i] = old
            fd = (up - down) / (2 * eps)
            assert abs(p.grad.view(-1)[i].item() - fd) <= 1e-6 + 1e-5 * abs(fd), (p.shape, i)
            checked += abs(fd) > 1e-8
    assert checked >= 10  # the gradients checked are not all zero


def _grads(m, b, cfg):
    m.zero_grad()
    loss, _ = objective(m, b, cfg, torch.Generator().manual_seed(3))
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in m.parameters()]


def _convert_batch(view, C=3, B=4, res=6, seed=2):
    g = torch.Generator().manual_seed(seed)
    imgs = (torch.rand(B, res, res, C, generator=g) * 255).round().to(torch.uint8).numpy()
    sig = ConvertSignal(ImageSignal(imgs), view)
    if view.kind == "mask":  # held-out images: a mask of its own each, per-sample coordinates
        train = sig.batch(torch.arange(B), 1.0, torch.Generator().manual_seed(4), "cpu")
        assert train.coords.dim() == 2  # training draws one mask per batch: shared coordinates
        return sig.full(torch.arange(B), "cpu")
    return sig.batch(torch.arange(B), 1.0, torch.Generator().manual_seed(4), "cpu")


@pytest.mark.parametrize("task,view", [("classify", None), ("joint", None), ("convert", "gray"),
                                       ("convert", "low-res"), ("convert", "mask")])
def test_fast_origin_path_equals_reference_for_each_task(task, view):
    out = 3 if view == "gray" else 1
    m, cfg = tiny(out=out, classes=3 if task in ("classify", "joint") else None, task=task)
    if view:
        cfg.data.source, cfg.data.source_res, cfg.data.source_frac = view, 3, 0.5
        b = _convert_batch(View(view, 3, 0.5), C=out)
        b = Batch(b.coords.double(), b.values.double(), b.scale,
                  Batch(b.query.coords.double(), b.query.values.double(), b.query.scale))
        if view == "mask":
            assert b.coords.dim() == 3  # a random mask per image: per-sample coordinates
    else:
        b = labelled_batch()
    results = []
    for fast in (True, False):
        cfg.gon.fast = fast
        results.append(_grads(m, b, cfg))
    (l1, g1), (l2, g2) = results
    torch.testing.assert_close(l1, l2, rtol=1e-6, atol=1e-10)
    assert any(g.abs().max() > 0 for g in g1)
    for a, c in zip(g1, g2):
        torch.testing.assert_close(a, c, rtol=1e-5, atol=1e-10)


def test_joint_is_reconstruction_plus_weighted_cross_entropy():
    m, cfg = tiny(classes=3, task="joint")
    b = labelled_batch()
    m.eval()
    cfg.gon.class_weight = 0.0
    rec, parts = objective(m, b, cfg)
    cfg.gon.class_weight = 2.5
    both, parts2 = objective(m, b, cfg)
    torch.testing.assert_close(rec, parts["recon"])
    torch.testing.assert_close(both, rec + 2.5 * parts2["ce"])


def test_gray_inner_loss_sees_the_luminance_of_the_output():
    m, cfg = tiny(out=3, task="convert")
    cfg.data.source = "gray"
    y = torch.rand(2, 5, 3, dtype=torch.float64)
    x = torch.rand(2, 5, 1, dtype=torch.float64)
    lum = y @ torch.tensor([[0.299], [0.587], [0.114]], dtype=torch.float64)
    torch.testing.assert_close(inner_loss(m, cfg)(y, x), make_loss("mse")(lum, x))


def test_colourisation_keeps_the_source_luminance_and_a_grey_f_gives_the_naive_answer(shared_data):
    from implicit_gon.tasks.convert import keep_luminance, luminance, target_of
    m, cfg = tiny(out=3, task="convert")
    cfg.data.source = "gray"
    target = torch.rand(2, 5, 3, dtype=torch.float64)
    y = torch.rand(2, 5, 3, dtype=torch.float64)
    out = target_of(cfg, y, target)
    torch.testing.assert_close(luminance(out), luminance(target))  # the luminance is the source's
    torch.testing.assert_close(out - out.mean(-1, keepdim=True), y - y.mean(-1, keepdim=True))  # the chroma is F's
    grey = torch.rand(2, 5, 1).expand(2, 5, 3)
    imgs = _real_cifar(shared_data)
    sig = ConvertSignal(ImageSignal(imgs), View("gray"))
    x = sig.images.full(torch.arange(4), "cpu").values
    torch.testing.assert_close(keep_luminance(grey[:1, :1].expand_as(x), luminance(x)), sig.naive(torch.arange(4)))
    cfg.data.source = "mask"
    assert target_of(cfg, y, target) is y  # other views convert with F's output as it is


# -- the views -------------------------------------------------------------------------------------------------------
def _real_cifar(shared_data, n=4):
    from signals.datasets.cifar import parse_batch
    return parse_batch(shared_data / "cifar-10-batches-py" / "test_batch_first78")[:n]  # (n, 32, 32, 3)


def test_gray_view_is_luminance_on_the_same_grid(shared_data):
    imgs = _real_cifar(shared_data)
    sig = ConvertSignal(ImageSignal(imgs), View("gray"))
    b = sig.full(torch.arange(4), "cpu")
    pil = np.stack([np.asarray(Image.fromarray(a).convert("L")) for a in imgs]).reshape(4, -1, 1) / 255
    assert b.coords.shape == (1024, 2) and torch.equal(b.coords, grid(32)) and b.scale == 1.0
    assert b.values.shape == (4, 1024, 1) and np.abs(b.values.numpy() - pil).max() <= 0.5 / 255 + 1e-6
    assert b.query.values.shape == (4, 1024, 3)  # the outer loss sees the colour image
    naive = sig.naive(torch.arange(4))
    assert torch.equal(naive, b.values.expand(4, 1024, 3))


def test_low_res_view_is_a_box_downsample_on_its_own_grid(shared_data):
    imgs = _real_cifar(shared_data)
    b = ConvertSignal(ImageSignal(imgs), View("low-res", res=8)).full(torch.arange(4), "cpu")
    blocks = imgs.reshape(4, 8, 4, 8, 4, 3).astype(np.float64).mean((2, 4)) / 255  # 4x4 blocks
    assert torch.equal(b.coords, grid(8)) and b.scale == 16.0
    np.testing.assert_allclose(b.values.numpy().reshape(4, 8, 8, 3), blocks, atol=1e-6)
    # a size that does not divide the image: exact area averages (each pixel split 7 x 7, then 32 x 32 blocks)
    b7 = ConvertSignal(ImageSignal(imgs), View("low-res", res=7)).full(torch.arange(4), "cpu")
    fine = imgs.repeat(7, axis=1).repeat(7, axis=2).astype(np.float64)  # (4, 224, 224, 3)
    area = fine.reshape(4, 7, 32, 7, 32, 3).mean((2, 4)) / 255
    np.testing.assert_allclose(b7.values.numpy().reshape(4, 7, 7, 3), area, atol=1e-6)
    assert torch.allclose(box_matrix(32, 7).sum(1), torch.ones(7, dtype=torch.float32))


def test_mask_view_holds_a_fraction_of_pixels_on_their_own_coordinates(shared_data):
    from signals.datasets.idx import parse_images
    imgs = parse_images(shared_data / "mnist" / "t10k-images-idx3-ubyte.gz")[:6]
    sig = ConvertSignal(ImageSignal(imgs), View("mask", frac=0.25))
    b = sig.full(torch.arange(6), "cpu")
    k = round(0.25 * 784)
    assert b.coords.shape == (6, k, 2) and b.values.shape == (6, k, 1) and b.scale == 784 / k
    full = torch.from_numpy(imgs.reshape(6, -1, 1).astype(np.float32) / 255)
    g = grid(28)
    for i in range(6):  # each source point is a pixel centre carrying that pixel's value
        pos = ((b.coords[i] + 1) / 2 * 28 - 0.5).round().long()
        flat = pos[:, 0] * 28 + pos[:, 1]
        assert torch.equal(g[flat], b.coords[i]) and torch.equal(full[i, flat], b.values[i])
        assert len(flat.unique()) == k
    # an image gets the same mask in any batch (latents must not depend on the batch)
    again = sig.full(torch.tensor([3]), "cpu")
    assert torch.equal(again.coords, b.coords[3])  # one image: its coordinates are shared (k, 2)
    naive = sig.naive(torch.arange(6))
    seen = sig.observed(6, seeds=list(range(6)))
    assert torch.equal(naive[seen], full[seen])
    assert torch.allclose(naive[0, ~seen[0], 0], full[0, seen[0], 0].mean().expand(784 - k))


def test_mask_file_selects_shared_coordinates(shared_data, tmp_path):
    from signals.datasets.idx import parse_images
    imgs = parse_images(shared_data / "mnist" / "t10k-images-idx3-ubyte.gz")[:3]
    m = np.zeros((28, 28), np.uint8)
    m[:, :14] = 255  # the left half is seen
    Image.fromarray(m).save(tmp_path / "m.png")
    mask = load_mask(tmp_path / "m.png", 28)
    b = ConvertSignal(ImageSignal(imgs), View("mask"), mask).full(torch.arange(3), "cpu")
    assert b.coords.shape == (392, 2) and (b.coords[:, 1] < 0).all() and b.scale == 2.0
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(GONError, match="small.png: mask is 20x20, the run's images are 28x28"):
        load_mask(tmp_path / "small.png", 28)


@pytest.mark.parametrize("spec,needle", [("sepia", "unknown view"), ("low-res:x", "whole number"),
                                         ("mask:", "fraction"), ("gray:2", "no argument")])
def test_bad_view_specs(spec, needle):
    with pytest.raises(GONError, match=needle):
        parse_view(spec)


def test_view_specs_set_config_keys():
    assert parse_view("low-res:7") == {"data.source": "low-res", "data.source_res": 7}
    assert parse_view("mask:0.3") == {"data.source": "mask", "data.source_frac": 0.3}


def test_views_the_images_cannot_have(shared_data):
    gray_imgs = np.zeros((2, 8, 8, 1), np.uint8)
    with pytest.raises(GONError, match="gray needs colour"):
        ConvertSignal(ImageSignal(gray_imgs), View("gray"))
    with pytest.raises(GONError, match="low-res:8: must be below"):
        ConvertSignal(ImageSignal(gray_imgs), View("low-res", res=8))


def test_downsample_keeps_the_mean():
    x = torch.rand(2, 28 * 28, 3)
    assert torch.allclose(downsample(x, 28, 5).mean(1), x.mean(1), atol=1e-5)
    assert torch.allclose(luminance(torch.ones(1, 3)), torch.ones(1, 1))


def test_labelled_batches_encode_every_pixel_and_thin_the_outer_loss(shared_data):
    from implicit_gon.config import DataConfig
    from signals import task_signal
    data = DataConfig(dataset="mnist", data_dir=str(shared_data / "mnist"))
    sig = task_signal(data, "joint", "test")
    b = sig.batch(torch.arange(4), 0.25, torch.Generator().manual_seed(0), "cpu")
    assert b.coords.shape == (784, 2) and b.scale == 1.0 and b.labels.shape == (4,)
    assert b.query.coords.shape == (196, 2) and b.query.scale == 4.0
    plain = task_signal(data, "reconstruct", "test").batch(torch.arange(4), 0.25, torch.Generator().manual_seed(0),
                                                          "cpu")
    assert plain.coords.shape == (196, 2) and plain.query is None and plain.labels is None
