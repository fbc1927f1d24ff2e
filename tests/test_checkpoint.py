import json

import numpy as np
import pytest
import torch

from implicit_gon import GON, Config
from implicit_gon.checkpoint import CKPT, FORMAT_VERSION
from implicit_gon.config import merge
from implicit_gon.errors import GONError
from implicit_gon.train import batch_indices, train
from signals import ImageSignal


def small_cfg(steps=4, **train):
    return merge(Config(), {"model": {"latent_dim": 8, "hidden": 32, "layers": 2},
                            "train": {"steps": steps, "batch_size": 8, "points": 0.5, "log_every": 1,
                                      "ckpt_every": 2, "device": "cpu", **train}})


def signal(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return ImageSignal(rng.integers(0, 256, (n, 8, 8, 1), dtype=np.uint8))


def new_gon(cfg, sig):
    torch.manual_seed(cfg.train.seed)
    return GON(cfg, {**sig.meta(), "coord_dim": 2, "out_dim": 1}, "cpu")


def test_round_trip_restores_weights_config_optimizer_and_gaussian(tmp_path):
    cfg, sig = small_cfg(), signal()
    gon = new_gon(cfg, sig)
    train(gon, sig, tmp_path, progress=False)
    back, opt = GON.load(tmp_path, "cpu", with_optimizer=True)
    assert back.cfg == gon.cfg and back.step == 4 and back.meta == gon.meta
    for (k, a), (_, b) in zip(gon.model.state_dict().items(), back.model.state_dict().items()):
        assert torch.equal(a, b), k
    assert opt["state"] and all("exp_avg" in s for s in opt["state"].values())
    torch.testing.assert_close(back.gaussian[1], gon.gaussian[1])
    b = sig.full(torch.arange(5), "cpu")
    torch.testing.assert_close(back.encode_batch(b), gon.encode_batch(b))
    info = json.loads((tmp_path / "config.json").read_text())
    assert info["config"]["model"]["hidden"] == 32  # the human-readable copy says the same


def test_checkpoint_is_safetensors_not_pickle(tmp_path):
    cfg, sig = small_cfg(steps=1), signal()
    train(new_gon(cfg, sig), sig, tmp_path, progress=False)
    raw = (tmp_path / CKPT).read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    meta = json.loads(raw[8:8 + header_len])["__metadata__"]
    assert meta["format"] == str(FORMAT_VERSION) and len(meta["sha256"]) == 64
    assert not list(tmp_path.glob("*.tmp*"))  # the temporary file was renamed into place


def test_resume_continues_the_same_run(tmp_path):
    sig = signal()
    straight = new_gon(small_cfg(steps=4), sig)
    train(straight, sig, tmp_path / "a", progress=False)

    half = new_gon(small_cfg(steps=2), sig)
    train(half, sig, tmp_path / "b", progress=False)
    resumed, opt = GON.load(tmp_path / "b", "cpu", with_optimizer=True)
    resumed.cfg = merge(resumed.cfg, {"train": {"steps": 4}})
    train(resumed, sig, tmp_path / "b", optimizer_state=opt, progress=False)
    for (k, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)
    rows = [json.loads(r) for r in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3, 4]


def test_batch_indices_walk_epochs_without_repeats():
    seen = torch.cat([batch_indices(10, 5, seed=3, step=s) for s in range(2)])
    assert sorted(seen.tolist()) == list(range(10))
    assert torch.equal(batch_indices(10, 4, 3, 7), batch_indices(10, 4, 3, 7))
    assert not torch.equal(batch_indices(10, 10, 3, 0), batch_indices(10, 10, 3, 1))


def test_nan_loss_is_a_clear_error_and_keeps_last_checkpoint(tmp_path):
    cfg, sig = small_cfg(steps=4), signal()
    gon = new_gon(cfg, sig)
    train(gon, sig, tmp_path, progress=False)
    before = (tmp_path / CKPT).read_bytes()
    gon.cfg = merge(gon.cfg, {"train": {"steps": 8}})
    with torch.no_grad():
        gon.model.out.bias.fill_(float("nan"))
    with pytest.raises(GONError, match="diverged: the loss is nan at step 5"):  # the step after the checkpoint
        train(gon, sig, tmp_path, progress=False)
    assert (tmp_path / CKPT).read_bytes() == before


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / CKPT).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(GONError, match="not a readable implicit-gon checkpoint"):
        GON.load(tmp_path, "cpu")


WRITER = """
import sys, torch
from implicit_gon import GON
gon = GON.load(sys.argv[1], "cpu")
for step in range(10**9):  # as `fit` does, many times over: write a new checkpoint, rename it over the last
    with torch.no_grad():
        for p in gon.model.parameters():
            p.fill_(step % 2)
    gon.step = step
    gon.save(sys.argv[2])
"""


def test_a_checkpoint_renamed_over_while_it_is_read_loads_whole(tmp_path):
    """`render RUN` while `fit` writes RUN: another process renames new checkpoints over the one being read, as
    fast as it can. Every load gets one whole checkpoint (its checksum, its step and its weights agree), never a
    mix of two. (Read through safetensors' safe_open, a load failed within the first 36 in each of 5 tries.)"""
    import subprocess
    import sys
    import time

    from conftest import REPO
    from implicit_gon import checkpoint
    sig = signal()
    train(new_gon(small_cfg(steps=2), sig), sig, tmp_path / "a", progress=False)
    run = tmp_path / "live"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "a"), str(run)], cwd=REPO)
    try:
        while not (run / CKPT).is_file():
            assert writer.poll() is None, "the writer ended"
            time.sleep(0.01)
        steps = set()
        for _ in range(400):
            info, state, _, _ = checkpoint.load(run)  # a mix of two would fail its checksum here
            steps.add(info["step"])
            assert all(bool((v == info["step"] % 2).all()) for v in state.values()), info["step"]
        assert len(steps) > 5, steps  # the file really was replaced again and again while it was read
    finally:
        writer.kill()
        writer.wait()
