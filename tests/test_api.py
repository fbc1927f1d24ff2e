"""The notebook path: load a run, encode images (files, arrays, tensors), render at any resolution, save a grid;
fit() refuses an existing run unless overwrite=True."""
import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

import implicit_gon
from implicit_gon import GON, GONError, UsageError, checkpoint, fit, save_grid
from implicit_gon.config import resolve
from implicit_gon.fitting import fit_run
from signals import ImageSignal, image_signal
from signals.images import render


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("api") / "digits"
    cfg = resolve("images", "digits", None, {"train.steps": 2, "model.hidden": 32, "model.layers": 2,
                                             "train.device": "cpu"})
    gon = fit(image_signal(cfg.data, "train"), cfg, run, progress=False)
    return run, gon


def test_fit_refuses_an_existing_run_unless_overwrite(digits_run):
    run, gon = digits_run
    cfg = gon.cfg
    with pytest.raises(GONError, match="already holds a run"):
        fit(image_signal(cfg.data, "train"), cfg, run, progress=False)
    cfg.train.steps = 3
    again = fit(image_signal(cfg.data, "train"), cfg, run / ".." / "other", progress=False)
    assert again.step == 3
    replaced = fit(image_signal(cfg.data, "train"), cfg, run / ".." / "other", progress=False, overwrite=True)
    rows = [json.loads(r) for r in (run / ".." / "other" / "metrics.jsonl").read_text().splitlines()]
    assert replaced.step == 3 and [r["step"] for r in rows if "loss" in r] == [3]  # the old run's rows are gone


def test_repr_says_what_the_run_is(digits_run):
    run, _ = digits_run
    text = repr(GON.load(run, "cpu"))
    assert text.startswith("<GON: digits/train 8x8x1") and "latent 32" in text and "step 2" in text
    assert "cpu" in text


def test_encode_takes_images_as_files_arrays_tensors_or_a_batch(digits_run, tmp_path):
    run, _ = digits_run
    gon = GON.load(run, "cpu")
    test = image_signal(gon.cfg.data, "test", 8, 1)
    pics = np.array(test.images[:5])  # (5, 8, 8, 1) uint8, a writable copy of the memory map
    ref = gon.encode(test.full(torch.arange(5), "cpu"))
    assert isinstance(ref, np.ndarray) and ref.dtype == np.float32 and ref.shape == (5, 32)
    assert np.allclose(gon.encode(pics), ref, atol=1e-6)
    assert np.allclose(gon.encode_images(torch.from_numpy(pics).float() / 255), ref, atol=1e-6)
    assert np.allclose(gon.encode_images(pics[..., 0]), ref, atol=1e-6)  # (B, H, W)
    files = []
    for i, p in enumerate(pics):
        Image.fromarray(p[..., 0]).save(tmp_path / f"{i}.png")
        files.append(tmp_path / f"{i}.png")
    assert np.allclose(gon.encode_images(files), ref, atol=1e-6)
    big = np.repeat(np.repeat(pics, 4, 1), 4, 2)  # 32x32: brought to the run's 8x8
    assert gon.encode_images(big).shape == (5, 32)


def test_encode_images_refuses_bad_input_in_one_line(digits_run, tmp_path):
    run, _ = digits_run
    gon = GON.load(run, "cpu")
    with pytest.raises(GONError, match="shape"):
        gon.encode_images(np.zeros((2, 8), np.uint8))
    with pytest.raises(GONError, match="NaN"):
        gon.encode_images(np.full((1, 8, 8, 1), np.nan, np.float32))
    with pytest.raises(GONError, match="not found"):
        gon.encode_images([tmp_path / "missing.png"])


@pytest.mark.parametrize("batch_size,why", [(0, "must be at least 1"), ("8", "'8': must be an integer"),
                                            (2.5, "must be an integer"), (True, "must be an integer")])
def test_encode_batch_size_is_checked_by_its_field(digits_run, batch_size, why):
    """GON.encode*'s batch_size takes train.batch_size's values (its type and range): one line, never a traceback
    (0 once reached range(0, n, 0)) nor a silent reinterpretation (2.5 became 2)."""
    gon = GON.load(digits_run[0], "cpu")
    pics = np.zeros((2, 8, 8, 1), np.uint8)
    for call in (lambda: gon.encode(pics, batch_size=batch_size), lambda: gon.encode_images(pics, batch_size),
                 lambda: gon.encode_signal(image_signal(gon.cfg.data, "test"), batch_size=batch_size)):
        with pytest.raises(GONError, match=rf"GON\.encode\w* batch_size=.*{why}"):  # the keyword, not the flag
            call()
    assert gon.encode(pics, batch_size=np.int64(1)).shape == gon.encode(pics, batch_size=2.0).shape == (2, 32)


def test_render_and_save_grid_are_one_call_each(digits_run, tmp_path):
    run, _ = digits_run
    gon = GON.load(run, "cpu")
    z = gon.encode_images(np.asarray(image_signal(gon.cfg.data, "test", 8, 1).images[:4]))
    pics = gon.render(z, res=32)
    assert pics.shape == (4, 32, 32, 1) and pics.dtype == np.uint8
    assert np.array_equal(pics, render(gon, z, 32))
    assert gon.render(z[0]).shape == (1, 8, 8, 1)  # one latent, the training resolution
    save_grid(pics, tmp_path / "grid.jpg")
    assert Image.open(tmp_path / "grid.jpg").format == "JPEG"


def test_verbs_a_signal_lacks_are_refused_in_one_line():
    gon = GON(resolve("audio", "default"), {"signal": "audio", "coord_dim": 1, "out_dim": 1, "sample_rate": 16000,
                                           "length": 64, "hop": 32, "channels": 1}, "cpu")
    with pytest.raises(GONError, match="decode is not a verb of audio runs: .*render --input") as e:
        gon.render(torch.zeros(1, gon.cfg.model.latent_dim))  # audio latents are per window: render a clip
    with pytest.raises(GONError, match="encode_images needs an image run"):
        gon.encode_images(np.zeros((1, 8, 8, 1), np.uint8))
    with pytest.raises(GONError, match="no option 'colour'"):
        gon.sample(2, colour=True)
    with pytest.raises(UsageError, match=r"GON.evaluate: no option 'data' \(the CLI's --data is paths=\)"):
        gon.evaluate(data=["clip.wav"])  # the flag's name, where the keyword is spelled otherwise
    with pytest.raises(UsageError, match=r"^GON.sample res=: not used for audio runs"):  # the method, not a verb
        gon.sample(2, res=64)
    assert "\n" not in str(e.value) and "audio 16000 Hz" in repr(gon)


def test_the_api_docstring_names_only_what_exists():
    import implicit_gon.api as api
    for name in ("load", "encode", "render", "decode", "sample", "interpolate", "mesh", "volume"):
        assert f"gon.{name}(" in api.__doc__ or f"GON.{name}(" in api.__doc__
        assert hasattr(GON, name)
    assert "GON.fit" not in api.__doc__ and not hasattr(GON, "fit")
    assert implicit_gon.save_grid is save_grid and ImageSignal is not None


def test_finite_weights_too_large_to_evaluate_are_one_line_not_nan_scores(digits_run, tmp_path, capsys):
    """A checkpoint whose weights are finite (so it loads) but so large that F overflows gave `eval` NaN scores
    with exit 0, and `render` a picture of them: each now refuses in one line."""
    import shutil
    from conftest import run_cli
    run = tmp_path / "huge"
    shutil.copytree(digits_run[0], run)
    gon = GON.load(run, "cpu")
    with torch.no_grad():
        for p in gon.model.parameters():
            p.copy_(torch.where(p < 0, -3e38, 3e38))  # finite, but their products overflow
    gon.save(run)
    for args in (["eval", run], ["render", run, "--out", tmp_path / "x.png"]):
        code, _, err = run_cli(args, capsys)
        assert code == 1 and err.count("\n") == 1 and "outputs hold NaN or infinity" in err, err
    assert not (tmp_path / "x.png").exists()
    # encode wrote NaN latents with exit 0
    Image.fromarray(np.full((8, 8), 128, np.uint8)).save(tmp_path / "digit.png")
    code, _, err = run_cli(["encode", run, tmp_path / "digit.png", "--out", tmp_path / "z.npy"], capsys)
    assert code == 1 and err == ("error: encode: the result holds NaN or infinity: the model's outputs or their "
                                 "gradient overflow (its weights are finite but too large to evaluate)\n"), err
    assert not (tmp_path / "z.npy").exists()
    with pytest.raises(GONError, match="^GON.encode: the result holds NaN or infinity"):
        gon.encode(ImageSignal(np.full((1, 8, 8, 1), 0.5, np.float32), "x").full(torch.tensor([0]), "cpu"))


def test_overwrite_replaces_a_run_whole_and_nothing_else(tmp_path):
    """overwrite=True: the earlier run's kept checkpoints go with it (a rollback of the new run must never reach
    them, nor train.keep prune the new run's in their favour); a folder of other files is refused all the same."""
    from implicit_gon.checkpoint import previous
    cfg = resolve("images", "digits", None, {"train.steps": 6, "train.ckpt_every": 2, "model.hidden": 16,
                                             "model.layers": 2, "train.device": "cpu"})
    sig, run = image_signal(cfg.data, "train"), tmp_path / "run"
    fit(sig, cfg, run, progress=False)
    assert [p.name for p in previous(run)] == ["checkpoint-000000002.safetensors", "checkpoint-000000004.safetensors"]
    cfg.train.steps, cfg.train.ckpt_every = 3, 1
    fit(sig, cfg, run, progress=False, overwrite=True)
    kept = [int(p.stem.split("-")[1]) for p in previous(run)]
    assert kept and max(kept) < 3  # the new run's own: none of the old run's (its step 2 is rewritten)
    assert all(checkpoint.load(p)[0]["config"]["train"]["steps"] == 3 for p in previous(run))
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(GONError, match="not empty and holds no run"):
        fit(sig, cfg, tmp_path, progress=False, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "run"]


def test_api_arguments_of_the_wrong_type_are_one_line(digits_run, tmp_path):
    """A notebook's slips: one GONError naming the argument, never a TypeError from pathlib, a numpy error, or a
    9 GB allocation for a broadcast view that takes no memory itself."""
    run, gon0 = digits_run
    gon = GON.load(run, "cpu")
    cases = [(lambda: gon.encode(42), "GON.encode inputs = 42: give a path or a list of paths"),
             (lambda: gon.encode(np.broadcast_to(np.zeros((1, 1, 1, 1), np.uint8), (2, 100000, 100000, 1))),
              "each: 100000x100000 pixels is over the 64-megapixel limit"),
             (lambda: gon.render(np.zeros((1, 32)), res=0), "render res = 0"),
             (lambda: gon.sample(n=1, out=5), "GON.sample out = 5: give a path"),
             (lambda: GON.load(None), "run = None: give a path"),
             (lambda: GON.load(run, which="nope"), "GON.load which = 'nope': 'last' or 'best'")]
    for call, needle in cases:
        with pytest.raises(GONError, match=needle.replace("(", r"\(").replace(")", r"\)")):
            call()
    (tmp_path / "a.png").write_bytes(b"keep")
    for where, needle in ((None, "run = None: give a path"), (tmp_path / "a.png", "exists and is not a directory")):
        with pytest.raises(GONError, match=needle):
            fit(image_signal(gon0.cfg.data, "train"), gon0.cfg, where, progress=False)
    assert (tmp_path / "a.png").read_bytes() == b"keep"


def test_which_checkpoint_is_last_or_best(digits_run):
    """which= names a checkpoint: anything else is a usage error, and refit_gaussian writes nothing (a misspelt
    "bset" refitted and overwrote the last checkpoint)."""
    run, _ = digits_run
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    with pytest.raises(UsageError, match="GON.load which = 'nope': 'last' or 'best'"):
        GON.load(run, which="nope")
    with pytest.raises(UsageError, match="GON.refit_gaussian which = 'bset': 'last' or 'best'"):
        GON.load(run, "cpu").refit_gaussian(which="bset")
    with pytest.raises(UsageError, match="this GON holds checkpoint.safetensors, not best.safetensors"):
        GON.load(run, "cpu").refit_gaussian(which="best")  # made a best.safetensors that was never scored
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_complex_latents_are_refused_not_cast(digits_run):
    """torch dropped the imaginary parts with a warning and rendered; the CLI's decode refused them."""
    gon = GON.load(digits_run[0], "cpu")
    K = gon.cfg.model.latent_dim
    for z in (np.zeros((1, K), np.complex64), torch.zeros(1, K, dtype=torch.complex64)):
        with pytest.raises(GONError, match="latents of dtype .*complex64: expected real numbers"):
            gon.render(z, res=8)
    assert gon.render(np.zeros((1, K), np.float64), res=8).shape[:2] == (1, 8)


def test_messages_say_what_to_do_in_python_too(digits_run):
    """The engine's advice named only CLI flags (`use --checkpoint last`) to a notebook's user."""
    run, _ = digits_run
    with pytest.raises(UsageError, match=re.escape("use --checkpoint last (in Python, GON.load(run))")):
        GON.load(run, which="best")
    gon = GON.load(run, "cpu")
    gon.gaussian = None
    with pytest.raises(GONError, match=re.escape("(in Python, gon.refit_gaussian())")):
        gon.sample_latents(2, torch.Generator().manual_seed(0))
    with pytest.raises(UsageError, match=re.escape("GON.sample n=0: must be at least 1")):  # was `sample --n 0`
        gon.sample(0)


def test_refit_writes_back_to_the_checkpoint_it_was_loaded_from(tmp_path):
    """Loaded from the last checkpoint, refit(which="best") saved the last weights as best.safetensors, losing
    the real best; each checkpoint's refit now touches that checkpoint only, and keeps its weights and step."""
    cfg = resolve("images", "digits", None, {"train.steps": 4, "model.hidden": 16, "model.layers": 2,
                                             "train.val_every": 2, "train.ckpt_every": 1, "train.lr": 0.05,
                                             "train.device": "cpu"})
    fit(image_signal(cfg.data, "train"), cfg, tmp_path / "run", progress=False,
        val_signal=image_signal(cfg.data, "test"))
    files = lambda: {p.name: p.read_bytes() for p in (tmp_path / "run").glob("*.safetensors")}  # noqa: E731
    before, best = files(), GON.load(tmp_path / "run", "cpu", which="best")
    inode = (tmp_path / "run" / "best.safetensors").stat().st_ino
    best.refit_gaussian()
    after = files()
    assert (tmp_path / "run" / "best.safetensors").stat().st_ino != inode  # written (renamed into place)
    assert {k: v for k, v in after.items() if k != "best.safetensors"} == \
        {k: v for k, v in before.items() if k != "best.safetensors"}
    again = GON.load(tmp_path / "run", "cpu", which="best")
    assert again.step == best.step and again.gaussian is not None
    assert all(torch.equal(a, b) for a, b in zip(again.model.state_dict().values(),
                                                 best.model.state_dict().values()))
    with pytest.raises(UsageError, match="an earlier checkpoint"):
        GON.load(tmp_path / "run", "cpu", name=next(n for n in before if n.startswith("checkpoint-"))).refit_gaussian()


def test_fit_run_refuses_what_the_signal_has_no_flag_for(tmp_path, shared_data):
    """The CLI's `fit audio --dataset mnist` is "No such option"; fit_run trained on the clips and dropped
    dataset= (and options=) silently. An evaluate(paths="clip.wav") is that one file, not its characters."""
    wav = shared_data / "audio" / "gt_bach.wav"
    cases = [({"kind": "audio", "dataset": "mnist", "paths": [wav]}, "fit_run dataset=: not used for audio runs"),
             ({"kind": "audio", "paths": [wav], "options": {"source": "low-res:8"}},
              "fit_run options={'source': ...}: not an option of audio runs (theirs: none)"),
             ({"kind": "images", "dataset": "digits", "paths": [wav]}, "fit_run paths=: not used for images runs"),
             ({"kind": "images", "dataset": "digits", "options": {"sorce": "gray"}}, "(theirs: source)"),
             ({"kind": "vidio"}, "fit_run kind = 'vidio': not a signal that fits (registered: images, audio"),
             ({"kind": "audio", "paths": [wav], "resume": "no"}, "fit_run resume = 'no': True or False"),
             ({"kind": "images", "dataset": "digits", "options": ["source"]}, "fit_run options = ['source']")]
    tiny = {"train.steps": 1, "model.hidden": 16, "model.layers": 2, "train.device": "cpu"}
    for kw, needle in cases:
        with pytest.raises(UsageError, match=re.escape(needle)):
            fit_run(kw.pop("kind"), tmp_path / "r", flags=tiny, progress=False, **kw)
        assert not (tmp_path / "r").exists()
    fit_run("audio", tmp_path / "r", paths=[wav], flags=tiny, progress=False)
    scores = GON.load(tmp_path / "r", "cpu").evaluate(paths=str(wav))
    assert scores["clips"] == 1 and scores["clip_names"] == "0: gt_bach.wav"
    with pytest.raises(UsageError, match=re.escape("GON.evaluate paths = []: give at least one file")):
        GON.load(tmp_path / "r", "cpu").evaluate(paths=[])  # scored the training clips


def test_decode_checks_its_coordinates_and_their_output(digits_run, monkeypatch):
    """GON.decode(z, coords): coordinates of the wrong width were a matmul's RuntimeError, and the output of 10^9
    of them an allocator's error; both are one line before any work."""
    run, _ = digits_run
    gon = GON.load(run, "cpu")
    z = torch.zeros(2, gon.cfg.model.latent_dim)
    for coords in (torch.zeros(10, 3), torch.zeros(0, 2), [[0.0, 0.0]]):
        with pytest.raises(UsageError, match=r"GON.decode coords of shape .*: this run needs a tensor \(M, 2\)"):
            gon.decode(z, coords)
    for coords in (torch.full((5, 2), float("nan")), torch.zeros(5, 2, dtype=torch.bool),
                   torch.zeros(5, 2, dtype=torch.complex64), torch.zeros(5, 2, device="meta")):
        with pytest.raises(UsageError, match="they must be finite real numbers in memory"):
            gon.decode(z, coords)  # NaN blamed the latents; complex was cast to real with a warning
    for device in ("bogus", "meta", 3):  # torch's RuntimeError, or an AssertionError for "cuda" without CUDA
        with pytest.raises(UsageError, match="GON.decode out_device = "):
            gon.decode(z, torch.zeros(5, 2), out_device=device)
    for bad in ({"name": 5}, {"name": "../checkpoint.safetensors"}, {"device": 3}):
        with pytest.raises(UsageError):
            GON.load(run, **bad)
    monkeypatch.setenv("IMPLICIT_GON_MEMORY", "1M")
    with pytest.raises(GONError, match="GON.decode: 2 latents at 1,000,000 coordinates needs about 7.6 MiB"):
        gon.decode(z, torch.zeros(1, 2).expand(10**6, 2))
    monkeypatch.delenv("IMPLICIT_GON_MEMORY")
    assert gon.decode(z, torch.zeros(5, 2)).shape == (2, 5, 1)


def test_fit_run_takes_one_path_as_a_str(tmp_path):
    """paths="x.ply" is one path: iterated, its first character '/' was searched for meshes for seconds before
    't' failed."""
    import trimesh

    from implicit_gon.fitting import fit_run
    trimesh.creation.icosphere(subdivisions=1, radius=0.5).export(tmp_path / "s.ply")
    flags = {"train.steps": 1, "model.hidden": 8, "model.layers": 2, "data.sdf_samples": 500, "train.device": "cpu"}
    fit_run("sdf", tmp_path / "run", paths=str(tmp_path / "s.ply"), flags=flags, progress=False)
    assert GON.load(tmp_path / "run", "cpu").cfg.data.paths == [str(tmp_path / "s.ply")]
    with pytest.raises(GONError, match="paths = 5: give a path or a list of paths"):
        fit_run("sdf", tmp_path / "r2", paths=5, flags=flags, progress=False)


@pytest.mark.parametrize("kw,needle", [
    ({"flags": {"data.dataset": "fashion-mnist"}}, "data.dataset: set by the data the run is given"),
    ({"sets": ["data.signal=audio"]}, "data.signal: set by the data the run is given"),
    ({"options": {"source": "gray"}, "flags": {"data.source": "low-res:8"}},
     "data.source: given by the fit option source (--source; in Python options=) and again as a setting")])
def test_fit_run_refuses_a_setting_its_data_or_options_make(kw, needle, tmp_path):
    """flags={"data.dataset": "fashion-mnist"} trained on digits, the default, and options= overwrote flags=:
    the setting given last silently won."""
    with pytest.raises(UsageError, match=re.escape(needle)):
        fit_run("images", tmp_path / "r", progress=False, **kw)
    assert not (tmp_path / "r").exists()
