"""The CUDA path. These run where a GPU is present and are reported as skipped, with the reason, elsewhere."""
import pytest
import torch

from conftest import run_cli

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")
two_gpus = pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")


@cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_fit_eval_render_on_cuda(precision, tmp_path, capsys):
    run = tmp_path / "run"
    code, _, err = run_cli(["fit", "images", "--dataset", "digits", "--steps", "3", "--device", "cuda",
                            "--precision", precision, "--out", run, "--quiet"], capsys)
    assert code == 0, err
    code, out, err = run_cli(["eval", run, "--json", "--device", "cuda"], capsys)
    assert code == 0 and '"psnr"' in out, err
    code, _, err = run_cli(["render", run, "--res", "64", "--n", "4", "--device", "cuda",
                            "--out", tmp_path / "r.png"], capsys)
    assert code == 0 and (tmp_path / "r.png").is_file(), err


@cuda
def test_fast_step_matches_reference_on_cuda():
    from implicit_gon.config import GONConfig, ModelConfig
    from implicit_gon.siren import Siren
    from implicit_gon.step import gon_latents
    from signals.images import grid
    torch.manual_seed(0)
    model = Siren(2, 1, ModelConfig(latent_dim=8, hidden=64, layers=3)).to("cuda")
    coords, values = grid(8, "cuda"), torch.rand(5, 64, 1, device="cuda")
    fast = gon_latents(model, coords, values, GONConfig(fast=True), create_graph=False)
    ref = gon_latents(model, coords, values, GONConfig(fast=False), create_graph=False)
    assert torch.allclose(fast, ref, rtol=1e-4, atol=1e-6)


@cuda
def test_image_batches_arrive_from_pinned_memory():
    import numpy as np
    from signals import ImageSignal
    sig = ImageSignal(np.zeros((4, 8, 8, 1), np.uint8))
    b = sig.batch(torch.arange(4), 1.0, torch.Generator().manual_seed(0), "cuda")
    assert b.values.device.type == "cuda"


@two_gpus
def test_nccl_two_processes(tmp_path):
    import os
    import subprocess
    import sys
    from conftest import REPO
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "cli", "fit",
           "images", "--dataset", "digits", "--steps", "3", "--device", "cuda", "--out", str(tmp_path / "r"),
           "--quiet"]
    p = subprocess.run(cmd, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
