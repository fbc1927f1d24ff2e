"""The paper's figures inside the package and `compare`'s paper column: the ratio ours/paper, the paper's ordering
checked pair by pair, the training split's score and the train-test gap, --epochs. Fake run records for the table
(never a training trajectory); one toy comparison for the flags."""
import json
import os

import pytest

from conftest import run_cli
from implicit_gon import compare, paper_tables


def test_the_shipped_figures_are_the_shared_files(shared_data):
    """Every cell of paper_tables equals the project's copy of the paper's tables (typed in, so checked)."""
    path = shared_data.parent / "paper" / "tables.json"
    if not path.is_file():  # make test-data fetches no paper; in CI a missing file is an error, as for the data
        assert not os.environ.get("CI"), f"{path}: the paper's tables are missing"
        pytest.skip(f"{path}: not here")
    t = json.loads(path.read_text())
    assert tuple(t["table1"]["datasets"]) == paper_tables.TABLE1_DATASETS
    assert {m: [tuple(c) for c in v] for m, v in t["table1"]["rows"].items()} == \
        {m: list(v) for m, v in paper_tables.TABLE1.items()}
    assert tuple(t["table2"]["datasets"]) == paper_tables.TABLE2_DATASETS
    assert {m: tuple(v) for m, v in t["table2"]["rows"].items()} == paper_tables.TABLE2


def test_figure_looks_up_each_table_and_has_none_for_cells_the_paper_lacks():
    assert paper_tables.figure("coil20", "ae", False) == {"mean": 6.05, "std": 0.11, "epochs": 500}
    assert paper_tables.figure("celeba", "vgon", True) == {"mean": 5.41, "std": None, "epochs": 150}
    assert paper_tables.figure("mnist", "vae", True)["epochs"] == 1000
    assert paper_tables.figure("celeba", "gon", False) is None  # not in Table 1
    assert paper_tables.figure("mnist", "vgon", False) is None  # a Table 2 method asked of Table 1
    assert paper_tables.figure("folder", "gon", False) is None


def _paper(dataset="mnist", methods=("gon", "ae", "tied-ae", "detach", "gon-10")):
    return {m: paper_tables.figure(dataset, m, False) for m in methods}


def test_ordering_holds_when_every_pair_the_paper_tells_apart_agrees():
    ours = {"gon": 9.0, "ae": 10.0, "tied-ae": 11.0, "detach": 14.0, "gon-10": 9.5}  # gon-10 behind gon: a tie there
    o = paper_tables.ordering(ours, _paper())
    assert o["holds"] is True and o["disagree"] == []
    assert len(o["agree"]) == 9  # 5 methods, 10 pairs, less gon/gon-10 (0.41 ± 0.01 against 0.42 ± 0.01)
    assert o["paper"][:2] == ["gon", "gon-10"] and o["ours"] == ["gon", "gon-10", "ae", "tied-ae", "detach"]


def test_ordering_names_each_reversed_pair_as_the_paper_has_it():
    ours = {"gon": 9.1, "ae": 8.0, "tied-ae": 7.9, "detach": 14.5}  # the autoencoders ahead, as measured at 3,000 steps
    o = paper_tables.ordering(ours, _paper(methods=("gon", "ae", "tied-ae", "detach")))
    assert o["holds"] is False
    assert sorted(o["disagree"]) == [["ae", "tied-ae"], ["gon", "ae"], ["gon", "tied-ae"]]
    assert sorted(o["agree"]) == [["ae", "detach"], ["gon", "detach"], ["tied-ae", "detach"]]


def test_ordering_of_one_method_says_nothing():
    assert paper_tables.ordering({"gon": 1.0}, _paper(methods=("gon",)))["holds"] is None
    assert paper_tables.ordering({"gon": 1.0, "ae": 2.0}, {})["holds"] is None  # no paper figures: nothing to check


def _rec(method, seed, sse, train_sse, n=16):
    return {"method": method, "seed": seed, "sse": sse, "seconds": 1.0, "parameters": 100,
            "train": {"sse": train_sse, "n": n}}


def test_table_puts_the_paper_beside_ours_with_the_ratio_the_order_and_the_gap():
    results = {"gon": [_rec("gon", 0, 8.2, 8.0), _rec("gon", 1, 8.4, 8.1)],
               "ae": [_rec("ae", 0, 13.3, 12.0), _rec("ae", 1, 13.5, 12.1)],
               "detach": [_rec("detach", 0, 9.0, 8.5), _rec("detach", 1, 9.2, 8.8)]}
    t = compare.summarise(results, "mnist", "conv", "sse", 700, 2, 9000, 1000, 64)
    gon = t["methods"]["gon"]
    assert gon["paper"] == {"mean": 0.41, "std": 0.01, "epochs": 500}
    assert gon["ours_over_paper"] == pytest.approx(8.3 / 0.41)
    assert gon["train"]["mean"] == pytest.approx(8.05) and gon["train"]["n"] == 16
    assert gon["gap"]["mean"] == pytest.approx(0.25) and gon["gap"]["n"] == 2
    assert t["epochs"] == pytest.approx(700 * 64 / 9000)
    assert t["ordering"]["holds"] is False and t["ordering"]["disagree"] == [["ae", "detach"]]
    assert t["gap_claim"] == {"gaps": pytest.approx({"gon": 0.25, "ae": 1.35, "detach": 0.45}),
                              "pairs": [["gon", "ae", True]], "holds": True}
    md = compare.markdown(t)
    assert "| paper (Table 1, 500 epochs) | ours / paper |" in md and "training split (16 images) | gap |" in md
    assert "| 0.41 ± 0.01 | 20.2 |" in md  # gon: 8.3 / 0.41
    assert "The paper's order does not hold: detach before ae" in md
    assert "(Appendix E, Fig. 2c): holds (gon +0.25 < ae +1.35)" in md
    assert "4.98 epochs at batch 64" in md
    assert json.dumps(t)  # table.json: plain JSON


def test_table2_has_no_spread_and_a_row_without_a_training_score_reads_a_dash():
    results = {"vgon": [{"method": "vgon", "seed": 0, "bits_per_dim": 0.53, "seconds": 1.0, "parameters": 9}],
               "vae": [{"method": "vae", "seed": 0, "bits_per_dim": 0.575, "seconds": 1.0, "parameters": 9}]}
    t = compare.summarise(results, "mnist", "conv", "bits_per_dim", 10, 1, 100, 10, 8)
    assert t["methods"]["vgon"]["ours_over_paper"] == pytest.approx(0.5) and t["ordering"]["holds"] is True
    assert t["gap_claim"] is None and t["methods"]["vae"]["train"] is None
    md = compare.markdown(t)
    assert "| 1.06 | 0.5 |" in md and "| — | — |" in md and "Fig. 2c" not in md


@pytest.mark.parametrize("steps, epochs, n, bs, want", [(None, 500, 9000, 64, 70313), (None, 1, 16, 8, 2),
                                                        (None, 0.01, 16, 8, 1), (120, None, 9000, 64, 120)])
def test_budget_turns_epochs_into_steps_rounding_up(steps, epochs, n, bs, want):
    assert compare.budget(steps, epochs, n, bs) == want


@pytest.mark.parametrize("epochs", [0, -1, float("inf"), float("nan"), True, "5", 1e12])
def test_budget_refuses_epochs_it_cannot_train(epochs):
    from implicit_gon.errors import GONError
    with pytest.raises(GONError, match="compare --(epochs|steps)"):
        compare.budget(None, epochs, 9000, 64)


@pytest.mark.parametrize("extra, needle", [([], "give --steps N or --epochs N"),
                                           (["--steps", "2", "--epochs", "1"], "give --steps N or --epochs N"),
                                           (["--epochs", "0"], "--epochs 0.0: must be a number above 0"),
                                           (["--epochs", "nan"], "must be a number above 0")])
def test_compare_takes_exactly_one_budget(extra, needle, tmp_path, capsys):
    code, _, err = run_cli(["compare", "--out", tmp_path / "c", *extra], capsys)
    assert code == 2 and err.count("\n") == 1 and needle in err and not (tmp_path / "c").exists()


def test_compare_epochs_and_the_training_split_at_toy_size(tmp_path, shared_data, capsys):
    """--epochs 1 of 16 training images at batch 8 is 2 steps, recorded in the manifest; every run is scored on
    the training split too; a run finished before compare scored it gets its score on --resume."""
    out = tmp_path / "cmp"
    args = ["compare", "--data-dir", shared_data / "mnist", "--methods", "gon,ae", "--epochs", "1", "--seeds", "1",
            "--val-samples", "4", "--batch-size", "8", "--train-limit", "16", "--held-out", "8", "--out", out]
    code, stdout, err = run_cli(args, capsys)
    assert code == 0, err
    manifest = json.loads((out / "comparison.json").read_text())
    assert manifest["steps"] == 2 and manifest["epochs"] == 1.0 and manifest["epochs_asked"] == 1.0
    assert manifest["batch_size"] == 8 and manifest["train_samples"] == 16
    t = json.loads((out / "table.json").read_text())
    for m in ("gon", "ae"):
        r = t["methods"][m]
        assert r["steps"] == 2 and r["train"]["n"] == 8 and r["paper"]["epochs"] == 500
        assert r["gap"]["mean"] == pytest.approx(r["mean"] - r["train"]["mean"])
    assert "paper (Table 1, 500 epochs)" in stdout and "(1 epoch at batch 8)" in stdout
    row = json.loads((out / "ae-s0" / "compare.json").read_text())
    del row["train"]  # as written before compare scored the training split
    (out / "ae-s0" / "compare.json").write_text(json.dumps(row))
    code, _, err = run_cli(args + ["--resume"], capsys)
    assert code == 0 and "ae seed 0: finished earlier, skipped; scoring its training split" in err
    again = json.loads((out / "ae-s0" / "compare.json").read_text())["train"]
    assert again["sse"] == pytest.approx(t["methods"]["ae"]["train"]["mean"])
    two = [("2" if a == "1" and args[i - 1] == "--epochs" else a) for i, a in enumerate(args)]
    code, _, err = run_cli(two + ["--resume"], capsys)  # 2 epochs are 4 steps: another comparison
    assert code == 2 and err.count("\n") == 1 and "steps 2" in err and "--steps or --epochs" in err


@pytest.mark.parametrize("name", ["elu", "relu", "leaky_relu", "silu", "gelu", "tanh"])
def test_conv_activation_is_the_one_asked_for(name):
    """model.conv_activation (the paper's Fig. 3): every hidden activation of the conv GON is of that kind."""
    import torch

    from implicit_gon.config import ModelConfig
    from implicit_gon.conv import ACTIVATIONS, ConvDecoder
    dec = ConvDecoder(28, 1, ModelConfig(decoder="conv", latent_dim=8, conv_width=4, conv_activation=name))
    acts = [m for m in dec.main if isinstance(m, tuple(ACTIVATIONS.values()))]
    assert len(acts) == 3 and all(type(a) is ACTIVATIONS[name] for a in acts)
    assert dec.image(torch.randn(2, 8)).shape == (2, 1, 28, 28)


def test_conv_activation_is_checked_and_refused_for_the_siren(shared_data, tmp_path, capsys):
    from implicit_gon.config import ModelConfig, resolve
    from implicit_gon.errors import GONError
    assert ModelConfig().conv_activation == "elu"  # the paper's
    data = {"data.data_dir": str(shared_data / "mnist")}
    with pytest.raises(GONError, match="conv_activation = 'swish': choose one of elu"):
        resolve("images", "mnist", None, {**data, "model.decoder": "conv"}, ["model.conv_activation=swish"])
    code, _, err = run_cli(["fit", "images", "--data-dir", shared_data / "mnist", "--steps", "1", "--set",
                            "model.conv_activation=relu", "--out", tmp_path / "r"], capsys)
    assert code == 2 and err.count("\n") == 1 and "model.conv_activation" in err and "siren" in err
    cfg = resolve("images", "mnist", None, {**data, "model.decoder": "conv"}, ["model.conv_activation=silu"])
    assert cfg.model.conv_activation == "silu"
