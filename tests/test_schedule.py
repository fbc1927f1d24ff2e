"""Learning-rate schedules: warm-up and cosine over the run's budget (steps, or --max-time when that ends first),
applied to every parameter group from the config's rates, and continued exactly by --resume."""
import math

import pytest
import torch

from implicit_gon import GON
from implicit_gon.errors import GONError
from implicit_gon.schedule import lr_factor, progress
from implicit_gon.train import train
from test_checkpoint import new_gon, signal, small_cfg


def tc(**kw):
    return small_cfg(**kw).train


def test_cosine_runs_from_lr_to_final_lr_after_a_linear_warmup():
    t = tc(steps=100, schedule="cosine", warmup=10, final_lr=0.1)
    assert lr_factor(t, 0, 0.0) == pytest.approx(0.1)  # step 0 of 10 warm-up steps
    assert lr_factor(t, 9, 0.09) == pytest.approx(0.5 * (1.1 + 0.9 * math.cos(math.pi * 0.09)))
    assert lr_factor(t, 50, 0.5) == pytest.approx(0.55)
    assert lr_factor(t, 99, 1.0) == pytest.approx(0.1)
    assert lr_factor(tc(steps=100), 50, 0.5) == 1.0  # constant, no warm-up


def test_progress_follows_whichever_budget_is_further_spent():
    assert progress(tc(steps=100), 25, 1e6) == 0.25  # no time budget: the step alone
    t = tc(steps=100, max_time=10.0)
    assert progress(t, 25, 5.0) == 0.5
    assert progress(t, 80, 5.0) == 0.8
    assert progress(t, 10, 50.0) == 1.0


def test_training_applies_the_schedule_to_every_group(tmp_path):
    cfg, sig = small_cfg(steps=4, lr=1e-3, schedule="cosine", final_lr=0.25), signal()
    gon = new_gon(cfg, sig)
    train(gon, sig, tmp_path, progress=False)
    _, opt = GON.load(tmp_path, "cpu", with_optimizer=True)
    # the last step (3 of 4) ran at progress 3/4
    want = 1e-3 * (0.25 + 0.75 * 0.5 * (1 + math.cos(math.pi * 0.75)))
    assert [g["lr"] for g in opt["param_groups"]] == pytest.approx([want])


class Interrupt(Exception):
    pass


def stop_at(n):
    def on_step(gon, seconds):
        if gon.step == n:
            raise Interrupt
    return on_step


def test_resume_continues_the_very_same_schedule(tmp_path):
    """Progress is step / steps without a time budget: a run cut off after its step-2 checkpoint and resumed
    takes bit for bit the steps of the uninterrupted one, warm-up and cosine included."""
    cfg, sig = small_cfg(steps=4, lr=1e-3, schedule="cosine", warmup=2), signal()
    straight = new_gon(cfg, sig)
    train(straight, sig, tmp_path / "a", progress=False)
    with pytest.raises(Interrupt):
        train(new_gon(cfg, sig), sig, tmp_path / "b", progress=False, on_step=stop_at(3))
    resumed, opt = GON.load(tmp_path / "b", "cpu", with_optimizer=True)
    assert resumed.step == 2
    train(resumed, sig, tmp_path / "b", optimizer_state=opt, progress=False)
    for (k, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)


@pytest.mark.parametrize("field, value", [("schedule", "linear"), ("warmup", -1), ("final_lr", 1.5)])
def test_bad_schedule_values_are_refused(field, value):
    from implicit_gon.config import resolve
    with pytest.raises(GONError, match=f"train.{field}"):
        resolve("images", "digits", None, {f"train.{field}": value})


@pytest.mark.parametrize("flags, needle", [({"train.final_lr": 0.1}, "final_lr = 0.1 is the cosine schedule's")])
def test_schedule_settings_that_would_do_nothing_are_refused(flags, needle):
    from implicit_gon.config import resolve
    with pytest.raises(GONError, match=needle):
        resolve("images", "digits", None, flags)


def test_a_rounded_stratified_fraction_means_its_exact_block():
    from implicit_gon.config import resolve
    from signals.images import stratified_subset
    cfg = resolve("images", "mnist", None, {"train.sampling": "stratified", "train.points": 0.0625, "data.res": 28})
    assert cfg.train.points == 0.0625
    sub, scale = stratified_subset(30, 0.111, torch.Generator().manual_seed(0))
    assert scale == 9.0 and len(sub) == 100


def test_encode_full_takes_the_latents_from_every_pixel_and_the_loss_from_the_subset(tmp_path):
    """train.encode = full: step 1's logged loss is the outer loss on that step's Monte Carlo subset, of latents
    found on the full grid (as at test time), not on the subset."""
    import copy
    import json

    from implicit_gon.step import gon_latents, outer_loss
    from implicit_gon.train import batch_indices, step_generator
    cfg, sig = small_cfg(steps=1, encode="full"), signal()
    gon = new_gon(cfg, sig)
    start = copy.deepcopy(gon.model)
    train(gon, sig, tmp_path, progress=False)
    logged = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])["loss"]
    idx = batch_indices(len(sig), 8, 0, 0)
    full = sig.full(idx, "cpu")
    sub = sig.batch(idx, 0.5, step_generator(0, 0, "cpu"), "cpu").query  # the subset step 0 drew
    assert sub is not None and sub.coords.shape[0] == 32 and sub.scale == 2.0
    z = gon_latents(start, full.coords, full.values, cfg.gon)
    want = outer_loss(start, z, sub.coords, sub.values, cfg.gon, sub.scale)[0].item()
    z_sub = gon_latents(start, sub.coords, sub.values, cfg.gon, sub.scale)
    other = outer_loss(start, z_sub, sub.coords, sub.values, cfg.gon, sub.scale)[0].item()
    assert logged == pytest.approx(want, rel=1e-5) and abs(want - other) > 1e-4 * abs(want)


def test_encode_full_is_refused_where_nothing_would_use_it():
    from implicit_gon.config import resolve
    with pytest.raises(GONError, match="train.encode = full is for image runs .this one is sdf"):
        resolve("sdf", "default", None, {"train.encode": "full"})
    with pytest.raises(GONError, match="train.encode are gradient-origin settings"):
        resolve("images", "digits", None, {"train.encode": "full", "method.name": "glo"})


def test_stratified_subsets_take_one_pixel_per_block_and_are_unbiased_with_less_variance():
    import numpy as np

    from signals import ImageSignal
    from signals.images import stratified_subset
    gen = torch.Generator().manual_seed(0)
    sub, scale = stratified_subset(8, 0.25, gen)
    assert scale == 4.0 and sorted({(int(i) // 8 // 2, int(i) % 8 // 2) for i in sub}) == \
        [(a, b) for a in range(4) for b in range(4)]  # 16 pixels, one in each 2 x 2 block
    # a smooth image: both estimators average to the full sum; the stratified one varies less
    y, x = np.mgrid[0:8, 0:8]
    img = (127 + 120 * np.sin(x / 2.0) * np.cos(y / 3.0)).astype(np.uint8)[None, :, :, None]
    sig, idx = ImageSignal(img), torch.tensor([0])
    truth = sig.full(idx, "cpu").values.sum().item()
    est = {s: torch.tensor([(b.scale * b.values.sum()).item() for b in
                            (sig.batch(idx, 0.25, gen, "cpu", stratified=s) for _ in range(4000))])
           for s in (False, True)}
    for s, e in est.items():
        assert abs(e.mean().item() - truth) < 4 * e.std().item() / 4000 ** 0.5, s
    assert est[True].std() < 0.6 * est[False].std()


@pytest.mark.parametrize("res, b", [(10, 4), (28, 3), (7, 7), (9, 2)])
def test_stratified_blocks_that_overhang_the_grid_keep_every_pixel_at_probability_one_over_b_squared(res, b):
    """Where b does not divide res, the last blocks overhang the image and a draw outside is dropped: every pixel,
    edges included, is still drawn with probability 1 / b^2 (the scaled sum stays unbiased), never twice a step."""
    import numpy as np

    from signals.images import stratified_subset
    gen, draws = torch.Generator().manual_seed(1), 4000
    counts = np.zeros(res * res)
    for _ in range(draws):
        sub, scale = stratified_subset(res, 1 / b ** 2, gen)
        assert scale == b * b and len(set(sub.tolist())) == len(sub) and 0 <= sub.min() and sub.max() < res * res
        counts[sub.numpy()] += 1
    p = 1 / b ** 2
    sd = (draws * p * (1 - p)) ** 0.5
    assert np.abs(counts - draws * p).max() < 5 * sd  # Binomial(4000, 1/b^2) per pixel: 5 sd of 100-784 pixels


def test_stratified_draws_are_unchanged_where_the_blocks_tile_the_grid():
    """The overhang changes nothing where b divides res: the same generator gives the same subset as the plain
    tiling (one pixel in each block, (res / b)^2 of them), so runs and checkpoints made before it resume alike."""
    from signals.images import stratified_subset
    sub, _ = stratified_subset(28, 1 / 16, torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)
    oy, ox = torch.randint(0, 4, (2, 7, 7), generator=gen)
    by, bx = torch.meshgrid(torch.arange(7), torch.arange(7), indexing="ij")
    assert torch.equal(sub, ((by * 4 + oy) * 28 + bx * 4 + ox).flatten())


@pytest.mark.parametrize("sets, needle", [({"train.points": 0.3}, "must be 1 / b.2"),
                                          ({"train.points": 1 / 1024}, "32 x 32 blocks, larger than the image .data.res = 28"),
                                          ({"data.signal": "sdf"}, "for image grids")])
def test_stratified_sampling_refuses_what_it_cannot_tile(sets, needle):
    from implicit_gon.config import resolve
    sig = sets.pop("data.signal", "images")
    with pytest.raises(GONError, match=needle):
        resolve(sig, "default" if sig == "sdf" else "mnist", None, {"train.sampling": "stratified", **sets})
