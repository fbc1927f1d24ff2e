"""The conv GON decoder, the general gradient step, the baselines (ae, tied-ae, glo, vae) and `compare`."""
import json

import numpy as np
import pytest
import torch

from conftest import run_cli
from implicit_gon import GON
from implicit_gon.config import GONConfig, ModelConfig, resolve
from implicit_gon.conv import ConvDecoder
from implicit_gon.errors import GONError
from implicit_gon.methods.ae import ConvEncoder
from implicit_gon.step import gon_latents, make_loss
from signals.images import grid

pytestmark = pytest.mark.xdist_group("conv")


def decoder(res=28, channels=1, latent=5, width=3, variational=False, seed=0):
    torch.manual_seed(seed)
    return ConvDecoder(res, channels, ModelConfig(latent_dim=latent, conv_width=width, variational=variational))


def images(B=4, res=28, C=1, seed=1, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, res * res, C, generator=g, dtype=dtype)


@pytest.mark.parametrize("res,channels", [(28, 1), (32, 3)])
def test_decoder_renders_its_grid_and_gathers_subsets(res, channels):
    m = decoder(res, channels).eval()
    z = torch.randn(3, 5)
    full = m(grid(res), z)[0]
    assert full.shape == (3, res * res, channels) and 0 <= full.min() and full.max() <= 1
    sub = torch.tensor([5, 0, res * res - 1, 17])
    assert torch.equal(m(grid(res)[sub], z)[0], full[:, sub])  # a Monte Carlo subset: those pixels of the image
    per = torch.stack([sub, sub.flip(0), sub, sub])[:3]  # (B, N) per-sample subsets
    got = m(grid(res)[per], z)[0]
    assert torch.equal(got[1], full[1, sub.flip(0)])
    with pytest.raises(GONError, match="renders only its"):
        m(grid(64), z)


def test_general_step_matches_finite_differences():
    """z = -a dL/dz0 at 0 by the general autograd path, with L the per-sample summed loss (BatchNorm on running
    statistics, as in every step): central differences of L."""
    m = decoder().double()
    with torch.no_grad():  # running statistics away from their (0, 1) start, so they matter
        for bn in (b for b in m.modules() if isinstance(b, torch.nn.BatchNorm2d)):
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 2.0)
    m.train()  # the step must still use running statistics
    x = images(B=3, dtype=torch.float64)
    cfg = GONConfig(step_size=0.3)
    z = gon_latents(m, grid(28, dtype=torch.float64), x, cfg, create_graph=False)
    m.eval()
    fn = make_loss("mse")
    eps = 1e-6
    for b in range(3):
        for k in range(5):
            e = torch.zeros(1, 5, dtype=torch.float64)
            e[0, k] = eps
            fd = (fn(m(grid(28, dtype=torch.float64), e)[0], x[b:b + 1]).sum()
                  - fn(m(grid(28, dtype=torch.float64), -e)[0], x[b:b + 1]).sum()) / (2 * eps)
            assert torch.isclose(z[b, k], -0.3 * fd, rtol=1e-5, atol=1e-10)


@pytest.mark.parametrize("train_mode", [False, True])
def test_conv_latents_do_not_depend_on_the_batch(train_mode):
    m = decoder()
    m.train()
    m(grid(28), torch.randn(8, 5))  # one training pass: running statistics off their start
    m.train(train_mode)
    x = images(B=8)
    cfg = GONConfig(step_size=0.5, inner_steps=2)
    whole = gon_latents(m, grid(28), x, cfg, create_graph=False)
    parts = torch.cat([gon_latents(m, grid(28), x[:3], cfg, create_graph=False),
                       gon_latents(m, grid(28), x[3:], cfg, create_graph=False)])
    assert torch.allclose(whole, parts, atol=1e-6)
    assert m.training == train_mode  # the step leaves BatchNorm's mode as it found it


@pytest.mark.parametrize("loss,inner_steps,affine", [("mse", 1, True), ("bce", 1, True), ("mse", 10, False)])
def test_one_step_latents_are_affine_in_the_image(loss, inner_steps, affine):
    """One step from the origin is an affine encoder: F(0) and dF/dz at 0 do not depend on x, and the loss
    derivative (MSE; BCE through the sigmoid) is affine in x. Ten steps are not: that is what gon-10 adds
    (docs/baselines.md, Table 1)."""
    m = decoder(latent=6, width=4).double()
    m.train()
    m(grid(28, dtype=torch.float64), torch.randn(8, 6, dtype=torch.float64))  # running statistics off their start
    x = images(B=2, dtype=torch.float64)
    cfg = GONConfig(step_size=0.5, inner_steps=inner_steps, loss=loss)
    mix = 0.3 * x[:1] + 0.7 * x[1:]
    z = gon_latents(m, grid(28, dtype=torch.float64), torch.cat([x, mix]), cfg, create_graph=False)
    assert z.abs().max() > 1e-3
    gap = (z[2] - (0.3 * z[0] + 0.7 * z[1])).abs().max() / z.abs().max()
    assert (gap < 1e-9) if affine else (gap > 1e-4)


def test_tied_ae_shares_the_decoders_weights_by_identity():
    m = decoder()
    enc = ConvEncoder(m, 5, tied=True)
    convs = m.convs()[::-1]
    assert all(w is c.weight for w, c in zip(enc.weights, convs))
    assert enc(images(B=2)).shape == (2, 5)
    own = {id(p) for p in enc.parameters()}
    assert not own & {id(c.weight) for c in convs}  # registered once, in the decoder
    m.zero_grad()
    enc(images(B=2)).sum().backward()
    assert convs[0].weight.grad is not None  # the encoder's loss reaches the decoder's weights


METHODS = {"gon": {}, "detach": {"gon.detach": True}, "gon-10": {"gon.inner_steps": 10},
           "detach-10": {"gon.detach": True, "gon.inner_steps": 10}, "ae": {"method.name": "ae"},
           "tied-ae": {"method.name": "tied-ae"}, "glo": {"method.name": "glo", "method.glo_encode_steps": 3},
           "vae": {"method.name": "vae"}, "vgon": {"model.variational": True}}


@pytest.fixture(scope="module")
def digits(shared_data):
    """32 real MNIST digits to train on and 16 held out."""
    from signals import task_signal
    cfg = resolve("images", "mnist", None, {"data.data_dir": str(shared_data / "mnist"), "data.train_limit": 32})
    train = task_signal(cfg.data, "reconstruct", "train", progress=False, notes=False)
    test = task_signal(cfg.data, "reconstruct", "test", progress=False, notes=False)
    return train, test


@pytest.mark.parametrize("method", list(METHODS))
def test_each_method_trains_and_evaluates_on_real_digits(method, digits, tmp_path, shared_data):
    from implicit_gon.train import evaluate, fit
    flags = {"data.data_dir": str(shared_data / "mnist"), "model.decoder": "conv", "train.points": 1.0,
             "train.steps": 2, "train.batch_size": 8, "train.log_every": 1, **METHODS[method]}
    cfg = resolve("images", "mnist", None, flags)
    train, test = digits
    gon = fit(train, cfg, tmp_path / method, progress=False)
    rows = [json.loads(r) for r in (tmp_path / method / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 2 and np.isfinite(rows[-1]["loss"])
    res = evaluate(GON.load(tmp_path / method, "cpu"), test, torch.arange(16), 8)
    assert np.isfinite(res["sse"]) and res["n"] == 16
    assert ("bits_per_dim" in res) == (method in ("vae", "vgon"))


def test_glo_latents_and_batchnorm_buffers_are_in_the_checkpoint(digits, tmp_path, shared_data):
    from safetensors.torch import load_file
    from implicit_gon.train import fit
    cfg = resolve("images", "mnist", None, {"data.data_dir": str(shared_data / "mnist"), "model.decoder": "conv",
                                            "method.name": "glo", "train.steps": 2, "train.batch_size": 8,
                                            "method.glo_encode_steps": 2})
    gon = fit(digits[0], cfg, tmp_path / "glo", progress=False)
    tensors = load_file(str(tmp_path / "glo" / "checkpoint.safetensors"))
    assert tensors["model.glo.z"].shape == (32, cfg.model.latent_dim)
    assert torch.equal(tensors["model.glo.z"], gon.model.glo.z.detach())
    assert any(k.endswith("running_var") for k in tensors)
    again = GON.load(tmp_path / "glo", "cpu")
    assert torch.equal(again.model.glo.z, gon.model.glo.z)
    assert torch.allclose(again.gaussian[0].float(), gon.model.glo.z.detach().mean(0).double().float())


def test_config_rules_for_the_conv_decoder_and_baselines():
    with pytest.raises(GONError, match="data.res 28 or 32"):
        resolve("images", "mnist", None, {"model.decoder": "conv", "data.res": 64})
    with pytest.raises(GONError, match="encoder reads whole images"):
        resolve("images", "mnist", None, {"model.decoder": "conv", "method.name": "ae", "train.points": 0.25})
    assert resolve("images", "mnist", None, {"model.decoder": "conv", "method.name": "ae"}).train.points == 1.0
    with pytest.raises(GONError, match="needs model.decoder conv"):
        resolve("images", "mnist", None, {"method.name": "tied-ae", "train.points": 1.0})
    with pytest.raises(GONError, match="no gradient step"):
        resolve("images", "mnist", None, {"model.decoder": "conv", "method.name": "glo", "gon.detach": True})


# -- the command line --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def conv_run(tmp_path_factory, shared_data):
    import cli
    run = tmp_path_factory.mktemp("runs") / "conv"
    cli.main(["fit", "images", "--dataset", "mnist", "--data-dir", str(shared_data / "mnist"), "--out", str(run),
              "--decoder", "conv", "--steps", "2", "--batch-size", "8", "--quiet", "--set", "data.train_limit=32",
              "--device", "cpu"])
    return run


def test_cli_conv_run_every_verb(conv_run, tmp_path, capsys):
    code, out, _ = run_cli(["eval", conv_run, "--n", "16", "--json"], capsys)
    assert code == 0 and np.isfinite(json.loads(out)["sse"])
    code, _, err = run_cli(["render", conv_run, "--n", "4", "--out", tmp_path / "r.png"], capsys)
    assert code == 0 and "28x28" in err
    from PIL import Image
    img = np.asarray(Image.open(tmp_path / "r.png"))
    code, _, _ = run_cli(["render", conv_run, "--n", "1", "--out", tmp_path / "one.png"], capsys)
    assert code == 0 and np.asarray(Image.open(tmp_path / "one.png")).shape[:2] == (28, 28) and img.size
    Image.fromarray(np.asarray(Image.open(tmp_path / "one.png"))).save(tmp_path / "in.png")
    code, _, _ = run_cli(["encode", conv_run, tmp_path / "in.png", "--out", tmp_path / "z.npy"], capsys)
    assert code == 0 and np.load(tmp_path / "z.npy").shape == (1, 32)
    code, _, _ = run_cli(["decode", conv_run, tmp_path / "z.npy", "--out", tmp_path / "d.png"], capsys)
    assert code == 0
    code, _, _ = run_cli(["sample", conv_run, "--n", "4", "--out", tmp_path / "s.png"], capsys)
    assert code == 0
    code, _, _ = run_cli(["interpolate", conv_run, "--pairs", "1", "--frames", "3", "--out", tmp_path / "i.png"],
                         capsys)
    assert code == 0
    code, _, err = run_cli(["latents", conv_run, "--n", "6", "--out", tmp_path / "l.npz"], capsys)
    assert code == 0, err
    code, _, err = run_cli(["decode", conv_run, tmp_path / "l.npz", "--out", tmp_path / "dl.png"], capsys)
    assert code == 0 and Image.open(tmp_path / "dl.png").size[0] > 28, err  # the .npz latents writes, read back
    code, _, err = run_cli(["latents", conv_run, "--n", "1", "--out", tmp_path / "l1.png"], capsys)
    assert code == 2 and err.count("\n") == 1 and "at least 2" in err
    code, _, err = run_cli(["interpolate", conv_run, "--fps", "10", "--out", tmp_path / "f.png"], capsys)
    assert code == 2 and err.count("\n") == 1 and "no frame rate" in err


def test_cli_conv_render_above_its_grid_is_one_line(conv_run, tmp_path, capsys):
    """Every image verb refuses another resolution in the same words, naming its own flag, before it decodes."""
    np.save(tmp_path / "z.npy", np.zeros((1, 32), np.float32))
    for verb, extra in (("render", []), ("sample", ["--n", "2"]), ("interpolate", ["--pairs", "1"]),
                        ("decode", [tmp_path / "z.npy"])):
        code, _, err = run_cli([verb, conv_run, *extra, "--res", "64", "--out", tmp_path / f"{verb}.png"], capsys)
        assert code == 2 and err.count("\n") == 1, err
        label = "res 64" if verb == "decode" else f"{verb} --res 64"  # decode is also the API's render(z)
        assert f"{label}: a conv GON renders only its 28x28 training grid" in err, err
        assert not (tmp_path / f"{verb}.png").exists()


def test_cli_variational_conv_samples_from_the_prior(tmp_path, shared_data, capsys):
    run = tmp_path / "vgon"
    code, _, _ = run_cli(["fit", "images", "--dataset", "mnist", "--data-dir", shared_data / "mnist", "--out", run,
                          "--decoder", "conv", "--variational", "--steps", "2", "--batch-size", "8", "--quiet",
                          "--set", "data.train_limit=16", "--points", "1"], capsys)
    assert code == 0
    code, _, _ = run_cli(["sample", run, "--n", "4", "--out", tmp_path / "s.png"], capsys)
    assert code == 0
    before = (run / "checkpoint.safetensors").read_bytes()
    code, _, err = run_cli(["sample", run, "--refit", "--n", "4", "--out", tmp_path / "r.png"], capsys)
    assert code == 2 and err.count("\n") == 1 and "samples from its prior" in err
    assert (run / "checkpoint.safetensors").read_bytes() == before and not (tmp_path / "r.png").exists()


def test_cli_fit_method_smoke(tmp_path, shared_data, capsys):
    run = tmp_path / "tied"
    code, _, _ = run_cli(["fit", "images", "--dataset", "mnist", "--data-dir", shared_data / "mnist", "--out", run,
                          "--decoder", "conv", "--method", "tied-ae", "--points", "1", "--steps", "2",
                          "--batch-size", "8", "--quiet", "--set", "data.train_limit=16"], capsys)
    assert code == 0
    code, out, _ = run_cli(["eval", run, "--n", "8", "--json"], capsys)
    assert code == 0 and np.isfinite(json.loads(out)["sse"])


def test_compare_end_to_end_at_toy_size(tmp_path, shared_data, capsys):
    out = tmp_path / "cmp"
    methods = ["gon", "ae", "tied-ae", "detach", "gon-10", "detach-10", "glo"]
    args = ["compare", "--dataset", "mnist", "--data-dir", shared_data / "mnist", "--methods", ",".join(methods),
            "--steps", "2", "--seeds", "2", "--val-every", "1", "--val-samples", "8", "--batch-size", "8",
            "--train-limit", "16", "--held-out", "16", "--set", "method.glo_encode_steps=2", "--out", out]
    code, stdout, err = run_cli(args, capsys)
    assert code == 0, err
    for f in ("table.md", "table.json", "curves.png"):
        assert (out / f).is_file()
    table = json.loads((out / "table.json").read_text())
    assert set(table["methods"]) == set(methods)
    for m in methods:
        r = table["methods"][m]
        assert len(r["per_seed"]) == 2 and all(np.isfinite(r["per_seed"])) and r["parameters"] > 0
        assert f"| {m} |" in (out / "table.md").read_text()
        for s in range(2):
            assert (out / f"{m}-s{s}" / "checkpoint.safetensors").is_file()
    assert table["methods"]["tied-ae"]["parameters"] < table["methods"]["ae"]["parameters"]
    assert table["reference"] == "gon" and table["methods"]["gon"]["minus_reference"] is None
    gon = table["methods"]["gon"]["per_seed"]
    for m in methods[1:]:  # the same-seed difference from gon
        d = [a - b for a, b in zip(table["methods"][m]["per_seed"], gon)]
        got = table["methods"][m]["minus_reference"]
        assert got["n"] == 2 and got["mean"] == pytest.approx(sum(d) / 2)
        assert got["std"] == pytest.approx(abs(d[0] - d[1]) / 2 ** 0.5)
    assert "minus gon, same seed" in (out / "table.md").read_text()
    for m in methods:  # the curves averaged over seeds, one point per validation (--val-every 1: steps 1 and 2)
        c = table["curves"][m]
        assert c["steps"] == [1, 2] and len(c["mean"]) == 2 and all(np.isfinite(c["mean"]))
    assert "| step 1 | step 2 |" in (out / "table.md").read_text()
    assert "[14/14]" in err
    code, _, _ = run_cli(["eval", out / "glo-s1", "--n", "4"], capsys)  # a normal run directory
    assert code == 0
    code, _, err = run_cli(args + ["--resume"], capsys)
    assert code == 0 and err.count("skipped") == 14
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "--resume" in err
    before = (out / "table.md").read_text()
    code, _, err = run_cli(args + ["--resume", "--lr", "0.003"], capsys)  # finished runs of another comparison
    assert code == 2 and err.count("\n") == 1 and "gon-s0 was trained with train.lr = 0.0001" in err
    assert (out / "table.md").read_text() == before
    held = args.index("--held-out") + 1  # scored on 16: not reusable
    code, _, err = run_cli(args[:held] + ["8"] + args[held + 1:] + ["--resume"], capsys)
    assert code == 2 and err.count("\n") == 1 and "held_out 16" in err and "--held-out" in err
    t2 = ["compare", "--data-dir", shared_data / "mnist", "--variational", "--steps", "2", "--seeds", "2",
          "--val-every", "1", "--batch-size", "8", "--train-limit", "16", "--held-out", "16", "--out", out]
    code, _, err = run_cli(t2 + ["--resume"], capsys)  # Table 2 into Table 1's folder
    assert code == 2 and err.count("\n") == 1 and "table 1" in err and "--variational" in err
    assert (out / "table.md").read_text() == before and not (out / "vgon-s0").exists()
    from PIL import Image
    width, height = Image.open(out / "curves.png").size
    assert width > 1.5 * height  # the second panel: each method less gon on the same seed


def test_a_run_the_guard_stops_is_left_out_and_the_others_go_on(tmp_path, shared_data, capsys, monkeypatch):
    """At the paper's 500 epochs detach's loss rose slowly and the divergence guard stopped it: the whole comparison
    ended there, no table was written and the stopped run's folder (its curve) was removed. Now the other runs go
    on, the table is written without it and lists it, its folder keeps its curve and last good checkpoint, and
    compare exits 1 with one line."""
    import importlib
    train_mod = importlib.import_module("implicit_gon.train")  # the module: the package exports a function `train`
    real_fit = train_mod.fit

    def poison_detach(gon, seconds):  # after step 2 every weight is NaN: step 3's loss is NaN
        if gon.step == 2:
            with torch.no_grad():
                for p in gon.model.parameters():
                    p.fill_(float("nan"))

    def fit(signal, cfg, run, *a, **k):
        return real_fit(signal, cfg, run, *a, **k, **({"on_step": poison_detach} if cfg.gon.detach else {}))

    monkeypatch.setattr(train_mod, "fit", fit)
    out = tmp_path / "cmp"
    code, _, err = run_cli(["compare", "--dataset", "mnist", "--data-dir", shared_data / "mnist", "--methods",
                            "gon,detach,ae", "--steps", "4", "--seeds", "1", "--val-every", "1", "--val-samples", "8",
                            "--batch-size", "8", "--train-limit", "16", "--held-out", "16", "--out", out], capsys)
    last = err.strip().splitlines()[-1]
    assert code == 1 and "Traceback" not in err and last.startswith("error: compare: 1 of 3 runs stopped")
    assert "detach seed 0" in last and "train.drift_factor=0" in last and "[3/3] ae seed 0: held-out" in err
    table = json.loads((out / "table.json").read_text())
    assert set(table["methods"]) == {"gon", "ae"} and table["stopped"][0]["method"] == "detach"
    assert "- detach seed 0: training diverged" in (out / "table.md").read_text()
    kept = out / "detach-s0"  # its curve up to the stop, and its last good checkpoint: step 1 (step 2's save
    rows = [json.loads(r) for r in (kept / "metrics.jsonl").read_text().splitlines()]  # met the NaN, was refused)
    assert np.isfinite(next(r["val_sse"] for r in rows if r["step"] == 1 and "val_sse" in r))
    assert GON.load(kept, "cpu").step == 1
    code, _, err = run_cli(["compare", "--dataset", "mnist", "--data-dir", shared_data / "mnist", "--methods",
                            "gon,detach,ae", "--steps", "4", "--seeds", "1", "--val-every", "1", "--val-samples", "8",
                            "--batch-size", "8", "--train-limit", "16", "--held-out", "16", "--out", out, "--resume",
                            "--set", "train.drift_factor=0"], capsys)  # the remedy the line gives
    assert code == 0 and err.count("skipped") == 2  # the finished runs are reused
    assert "detach seed 0: continued from step 1 of 4" in err  # from its last good checkpoint (no poison this time)
    assert GON.load(kept, "cpu").step == 4 and "detach" in json.loads((out / "table.json").read_text())["methods"]
    steps = [json.loads(r)["step"] for r in (kept / "metrics.jsonl").read_text().splitlines()]
    assert [s for s in steps if s >= 2] == sorted(s for s in steps if s >= 2)  # metrics cut back to step 1 first


def test_resume_continues_an_interrupted_run_exactly(tmp_path, shared_data, capsys, monkeypatch):
    """`compare --resume` makes a long comparison restartable: a run interrupted at step 3 continues from its last
    checkpoint (every curve point) and ends with the weights of an uninterrupted one."""
    import importlib
    from safetensors.torch import load_file
    train_mod = importlib.import_module("implicit_gon.train")
    real_fit = train_mod.fit

    def interrupt_at_3(gon, seconds):
        if gon.step == 3:
            raise KeyboardInterrupt

    args = ["compare", "--dataset", "mnist", "--data-dir", shared_data / "mnist", "--methods", "gon", "--steps", "5",
            "--seeds", "1", "--val-every", "2", "--val-samples", "8", "--batch-size", "8", "--train-limit", "16",
            "--held-out", "16"]
    code, _, err = run_cli(args + ["--out", tmp_path / "straight"], capsys)
    assert code == 0, err
    monkeypatch.setattr(train_mod, "fit", lambda *a, **k: real_fit(*a, **k, on_step=interrupt_at_3))
    code, _, err = run_cli(args + ["--out", tmp_path / "cut"], capsys)
    assert code == 130 and "Traceback" not in err
    assert "gon-s0 stopped at" in err and "the same `implicit-gon compare` command and --resume" in err, err
    assert "fit images" not in err  # a member's own fit --resume would finish it but never write the table
    assert 2 <= GON.load(tmp_path / "cut" / "gon-s0", "cpu").step < 5
    code, _, err = run_cli(args + ["--out", tmp_path / "cut", "--resume"], capsys)
    assert code == 0 and "continued from step" in err, err
    a = load_file(tmp_path / "straight" / "gon-s0" / "checkpoint.safetensors")
    b = load_file(tmp_path / "cut" / "gon-s0" / "checkpoint.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    (tmp_path / "cut" / "gon-s0" / "compare.json").unlink()  # killed after its last step, while it was scored
    code, _, err = run_cli(args + ["--out", tmp_path / "cut", "--resume"], capsys)
    assert code == 0 and "continued from step 5 of 5" in err, err  # scored, not trained again from step 0
    c = load_file(tmp_path / "cut" / "gon-s0" / "checkpoint.safetensors")
    assert all(torch.equal(a[k], c[k]) for k in a)


def test_paired_curves_subtract_the_reference_seed_by_seed(tmp_path):
    from implicit_gon.compare import load_curves, paired_curves

    def run(name, vals):
        (tmp_path / name).mkdir()
        rows = [{"step": 10 * (i + 1), "val_sse": v} for i, v in enumerate(vals)] + [{"step": 5, "loss": 1.0}]
        (tmp_path / name / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows))

    run("gon-s0", [10.0, 8.0, 6.0])
    run("gon-s1", [20.0, 16.0, 12.0])
    run("ae-s0", [11.0, 7.0, 6.5])
    run("ae-s1", [23.0, 15.0, 11.0])
    results = {"gon": [{"seed": 0}, {"seed": 1}], "ae": [{"seed": 0}, {"seed": 1}]}
    d = paired_curves(load_curves(tmp_path, results, "sse"), "gon")
    assert set(d) == {"ae"} and d["ae"]["steps"] == [10, 20, 30]
    assert d["ae"]["mean"] == pytest.approx([2.0, -1.0, -0.25])
    assert d["ae"]["min"] == pytest.approx([1.0, -1.0, -1.0]) and d["ae"]["max"] == pytest.approx([3.0, -1.0, 0.5])


@pytest.mark.parametrize("extra,needle", [(["--methods", "gon,nope"], "unknown method 'nope'"),
                                          (["--methods", "ae", "--decoder", "siren"], "needs --decoder conv"),
                                          (["--methods", "vae"], "add --variational"),
                                          (["--out", "FILE"], "is not a directory"),
                                          (["--methods", "gon,,ae"], "an empty name"),
                                          (["--set", "train.seed=3"], "compare --set train.seed: compare sets it"),
                                          (["--set", "method.name=ae"], "use --methods"),
                                          (["--hidden-flag-via-set"], "a siren decoder setting"),
                                          (["--methods", "gon,ae", "--set", "train.points=0.25"],
                                           "ae's encoder reads whole images"),
                                          (["--methods", "ae,tied-ae", "--set", "gon.step_size=0.5"],
                                           "a gradient-step setting"),
                                          (["--data-dir", "MISSING"], "MISSING")])
def test_compare_refuses_in_one_line(extra, needle, tmp_path, shared_data, capsys):
    """Refused before anything is trained: no run directory is left (the ae refusal comes from its own config,
    checked with gon's before gon trains)."""
    (tmp_path / "FILE").write_text("keep")
    extra = [tmp_path / a if a in ("FILE", "MISSING") else a for a in extra]
    extra = ["--set", "model.hidden=64"] if extra == ["--hidden-flag-via-set"] else extra
    base = {"--data-dir": shared_data / "mnist", "--steps": "2", "--out": tmp_path / "c"}
    base = [w for flag, value in base.items() if flag not in extra for w in (flag, value)]  # extra's own value
    code, _, err = run_cli(["compare", *base, *extra], capsys)
    # the dataset's own note ("only test files found") is printed once per process, so it may precede the error
    lines = [ln for ln in err.splitlines() if not ln.startswith("note:")]
    assert code == (1 if needle == "MISSING" else 2)  # a missing data folder is a file problem, the rest usage
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in err
    assert not (tmp_path / "c").exists()  # a refused comparison leaves no folder behind


def test_compare_checks_each_decoder_against_the_data_before_making_out(tmp_path, capsys):
    """The conv GON and the digits' 8 px: refused before OUT exists. The refusal came from the first run, after
    OUT/comparison.json was written, and the folder then refused every command but a --resume with conv."""
    code, _, err = run_cli(["compare", "--dataset", "digits", "--methods", "gon", "--steps", "2", "--seeds", "1",
                            "--out", tmp_path / "c"], capsys)
    assert code == 1 and "renders 28 or 32 px images" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("flags,needle", [(["--decoder", "conv", "--hidden", "64"], "--hidden: a siren decoder"),
                                          (["--decoder", "conv", "--set", "gon.fast=false"], "--set gon.fast: a siren"),
                                          (["--conv-width", "8"], "--conv-width: a conv decoder setting"),
                                          (["--decoder", "conv", "--method", "ae", "--set", "gon.step_size=0.5"],
                                           "--set gon.step_size: a gradient-step setting"),
                                          (["--set", "method.glo_encode_steps=5"], "a GLO setting"),
                                          (["--set", "train.head_lr_mult=3"], "has no variational head"),
                                          (["--set", "gon.beta_warmup=10"], "this run is not variational")])
def test_fit_refuses_settings_the_run_would_not_read(flags, needle, tmp_path, shared_data, capsys):
    code, _, err = run_cli(["fit", "images", "--dataset", "mnist", "--data-dir", shared_data / "mnist", "--out",
                            tmp_path / "r", "--steps", "1", "--quiet", *flags], capsys)
    assert code == 2 and err.count("\n") == 1 and needle in err and not (tmp_path / "r" / "config.json").exists()


def test_a_seed_gives_every_method_the_same_decoder_initialisation():
    """compare pairs methods by seed: that is only fair if a seed starts every method from the same decoder."""
    meta = {"signal": "images", "res": 28, "channels": 1, "coord_dim": 2, "out_dim": 1}
    starts = []
    for method in ("gon", "ae", "tied-ae", "glo"):
        cfg = resolve("images", "mnist", None, {"model.decoder": "conv", "method.name": method})
        torch.manual_seed(cfg.train.seed)
        starts.append(GON(cfg, {**meta, "train_samples": 10}).model.main.state_dict())
    for other in starts[1:]:
        assert all(torch.equal(other[k], starts[0][k]) for k in starts[0])


def test_memory_check_counts_the_conv_decoder_it_will_build(monkeypatch):
    from implicit_gon import limits
    cfg = ModelConfig(decoder="conv", latent_dim=32, conv_width=16)
    for res, channels in [(28, 1), (32, 3)]:
        real = sum(p.numel() for p in ConvDecoder(res, channels, cfg).parameters())
        assert limits.model_parameters(cfg, 2, channels, res) == real
    monkeypatch.setenv("IMPLICIT_GON_MEMORY", str(4 * real))  # the weights fit; with Adam's state they do not
    limits.check_model(cfg, 2, 3, res=32)
    with pytest.raises(GONError, match=r"\(conv width 16\) with .*lower model.conv_width"):
        limits.check_model(cfg, 2, 3, training=True, res=32)


def test_resume_reuses_a_finished_run_across_guard_thresholds_only_where_the_guard_never_acted(tmp_path):
    """A finished run was never stopped; without a rollback its steps are those of any threshold it did not reach,
    so compare --resume reuses it whatever train.drift_factor and the other guard fields were. A rollback changed
    its trajectory, so then they must match; other fields must match always."""
    from implicit_gon import compare, config
    from implicit_gon.config import Config, merge
    assert {"train.drift_factor", "train.divergence_factor", "train.grad_factor", "train.on_divergence"} \
        == config.guard_keys() <= config.resumable()
    run, trained = tmp_path / "detach-s0", merge(Config(), {"train": {"drift_factor": 0.0}})
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"config": trained.to_dict()}))
    (run / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n')
    compare.check_finished(run, Config())  # drift guard on now, off then: the same run
    with pytest.raises(GONError, match="train.lr = 0.0001"):
        compare.check_finished(run, merge(Config(), {"train": {"lr": 3e-4}}))
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"step": 1, "event": "rollback", "diverged": "jump"}\n')
    with pytest.raises(GONError, match="train.drift_factor = 0.0, this comparison gives 4.0"):
        compare.check_finished(run, Config())
    compare.check_finished(run, trained)
