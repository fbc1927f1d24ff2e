"""The typed config: every value checked in one place, whichever layer it came from; layering; packaging."""
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile

import pytest
import yaml

from conftest import REPO, run_cli
from implicit_gon.config import Config, check_rules, resolve, signal_keys, to_yaml
from implicit_gon.errors import GONError, UsageError


def _one_line(code, err, *needles, status=1):
    """One line, no traceback, the words; exit status 1 for a wrong file, 2 for a wrong command line (usage)."""
    lines = err.strip().splitlines()
    assert code == status and len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, err)


# (flags, words the one-line error must hold): each value would otherwise train, crash or silently reinterpret
BAD_FLAGS = [
    (["--batch-size", "0"], "train.batch_size"), (["--points", "0"], "train.points"),
    (["--points", "nan"], "train.points"), (["--lr", "nan"], "train.lr"), (["--lr", "-1"], "train.lr"),
    (["--hidden", "0"], "model.hidden"), (["--ckpt-every", "0"], "train.ckpt_every"),
    (["--res", "-5"], "data.res"), (["--channels", "5"], "data.channels"), (["--steps", "0"], "train.steps"),
    (["--latent-dim", "0"], "model.latent_dim"), (["--layers", "0"], "model.layers"),
    (["--hidden", "20000"], "model.hidden"), (["--device", "tpu"], "train.device"),
    (["--camera", "top"], "data.camera"), (["--seed", "-1"], "train.seed"),
    (["--set", "gon.loss=hinge"], "gon.loss"), (["--set", "train.log_every=0"], "train.log_every"),
    (["--set", "train.steps=three"], "train.steps"), (["--set", "nonsense"], "section.key=value"),
    (["--set", "train.bogus=1"], "train.bogus"), (["--set", "model.zero_origin=true"], "zero_origin"),
]


@pytest.mark.parametrize("flags,needle", BAD_FLAGS, ids=[" ".join(f) for f, _ in BAD_FLAGS])
def test_bad_flag_values_are_one_line_errors(flags, needle, tmp_path, capsys):
    code, _, err = run_cli(["fit", "images", "--dataset", "digits", "--out", tmp_path / "r", *flags], capsys)
    _one_line(code, err, needle, status=2)
    assert not (tmp_path / "r").exists()  # refused before any work


BAD_YAML = [
    ("train: {steps: three}", "train.steps"), ("train: {batch_size: 8.5}", "train.batch_size"),
    ("model: {hidden: [1]}", "model.hidden"), ("gon: {loss: hinge}", "gon.loss"),
    ("model: 3", "section model"), ("- a\n- b", "mapping"), ("train: {lr: .nan}", "train.lr"),
    ("model: {layers: 1000000}", "model.layers"), ("data: {hop: 0.5, window: 0.25}", "data.hop"),
    ("a: &x [1, 2]\nb: *x", "aliases"), ("train: {steps: [", "not valid YAML"),
    ("model: {hidden: 32}\nmodel: {hidden: 64}", "key 'model' is given twice"),
    ("train: {steps: 1, steps: 2}", "key 'steps' is given twice"),
    ("model: {hidden: " + "9" * 5000 + "}", "hidden: an integer of 5,000 digits"),
    ("model: {[1, 2]: 3}", "not valid YAML"),  # a list as a key: was a TypeError in the duplicate-key check
    ("model: {zero_origin: true}", "zero_origin"),  # a file's own conflict exits 1; the same from --set exits 2
]


@pytest.mark.parametrize("text,needle", BAD_YAML, ids=[t for t, _ in BAD_YAML])
def test_bad_yaml_values_are_one_line_errors(text, needle, tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    code, _, err = run_cli(["fit", "images", "--dataset", "digits", "--config", cfg, "--out", tmp_path / "r"],
                           capsys)
    _one_line(code, err, needle)


def test_billion_laughs_is_refused_quickly(tmp_path):
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    lines += [f'{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, '
              f'*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]' for i in range(8)]
    path = tmp_path / "laughs.yaml"
    path.write_text("data:\n  paths:\n" + "\n".join("    " + x for x in lines) + "\n")
    with pytest.raises(GONError, match="aliases"):
        resolve("images", "digits", path)


@pytest.mark.parametrize("kwargs,needle", [({"flags": "abc"}, "flags = 'abc': give a dict"),
                                           ({"sets": "train.lr=1"}, "sets = 'train.lr=1': give a list"),
                                           ({"config_files": 5}, "config_files = 5: give a path")])
def test_resolve_refuses_arguments_of_the_wrong_type(kwargs, needle):
    """The Python API's resolve(): a str of flags was an AttributeError, a str of sets its characters."""
    with pytest.raises(GONError, match=needle):
        resolve("images", "digits", **kwargs)


def test_numbers_from_yaml_and_flags_are_normalised():
    cfg = resolve("images", "digits", None, {}, ["train.lr=1e-3", "train.steps=100.0"])
    assert cfg.train.lr == 1e-3 and isinstance(cfg.train.lr, float)  # YAML reads 1e-3 as a string
    assert cfg.train.steps == 100 and isinstance(cfg.train.steps, int)


def test_config_file_layers_on_the_dataset_config(tmp_path):
    """--config adds to configs/images/mnist.yaml instead of replacing it (points stays 0.25)."""
    base = resolve("images", "mnist")
    extra = tmp_path / "extra.yaml"
    extra.write_text("train: {log_every: 5}\n")
    more = tmp_path / "more.yaml"
    more.write_text("train: {log_every: 7, lr: 0.001}\n")
    cfg = resolve("images", "mnist", [extra, more], {"train.lr": 0.002}, ["train.seed=3"])
    assert base.train.points == 0.25 and cfg.train.points == 0.25
    assert (cfg.train.log_every, cfg.train.lr, cfg.train.seed) == (7, 0.002, 3)  # later layers win


def test_variational_section_of_a_config_file_applies_after_it(tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text("gon: {beta: 0.5}\nvariational:\n  gon: {beta: 2.0}\n")
    assert resolve("images", "mnist", extra).gon.beta == 0.5
    var = resolve("images", "mnist", extra, {"model.variational": True})
    assert var.gon.beta == 2.0 and var.gon.step_size == 0.25  # mnist.yaml's section, then this file's


def test_conv_section_applies_to_conv_runs_only_and_flags_win(tmp_path):
    siren = resolve("images", "mnist")
    conv = resolve("images", "mnist", None, {"model.decoder": "conv"})
    assert (siren.train.lr, siren.train.points, siren.train.schedule) == (3e-4, 0.25, "cosine")
    assert (conv.train.lr, conv.train.points, conv.train.schedule, conv.train.sampling) == \
        (1e-4, 1.0, "constant", "uniform")  # the authors' conv script
    assert resolve("images", "mnist", None, {"model.decoder": "conv", "train.lr": 1e-3}).train.lr == 1e-3
    extra = tmp_path / "extra.yaml"
    extra.write_text("conv:\n  train: {batch_size: 16}\nvariational:\n  train: {batch_size: 8}\n")
    assert resolve("images", "mnist", extra, {"model.decoder": "conv"}).train.batch_size == 16
    both = resolve("images", "mnist", extra, {"model.decoder": "conv", "model.variational": True})
    assert both.train.batch_size == 8  # the variational section comes after the conv one


def test_a_bad_conv_section_is_an_error_even_for_a_siren_run(tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text("conv:\n  train: {lr: -1}\n")
    with pytest.raises(GONError, match="conv"):
        resolve("images", "mnist", extra)
    for bad in ("conv: 3", "conv: 0", "conv: []", "conv: false"):
        extra.write_text(bad + "\n")
        with pytest.raises(GONError, match=r"extra.yaml: conv: a section of sections"):
            resolve("images", "mnist", extra)
    for bad in ("conv:\n  model: {decoder: siren}", "conv:\n  model: {variational: true}",
                "variational:\n  model: {decoder: conv}"):
        extra.write_text(bad + "\n")
        with pytest.raises(GONError, match=r"which decides which sections apply"):
            resolve("images", "mnist", extra)


def test_config_show_resolves_for_a_decoder(capsys):
    code, out, err = run_cli(["config", "show", "images", "mnist", "--decoder", "conv"], capsys)
    assert code == 0, err
    shown = yaml.safe_load(out)
    assert shown["model"]["decoder"] == "conv" and shown["train"]["lr"] == 1e-4 and shown["train"]["points"] == 1.0
    code, _, err = run_cli(["config", "show", "images", "mnist", "--decoder", "conv", "--set", "model.hidden=3"],
                           capsys)  # refused as fit refuses it: the conv decoder has no hidden width
    assert code == 2 and err.count("\n") == 1 and "--set model.hidden: a siren decoder setting" in err


def test_config_show_round_trips(tmp_path, capsys):
    code, out, err = run_cli(["config", "show", "images", "mnist", "--set", "train.log_every=5"], capsys)
    assert code == 0, err
    shown = yaml.safe_load(out)
    assert shown["train"]["log_every"] == 5 and shown["train"]["points"] == 0.25
    path = tmp_path / "shown.yaml"
    path.write_text(out)
    assert resolve("images", "mnist", path).to_dict() == Config.from_dict(shown).to_dict()
    assert to_yaml(Config.from_dict(shown), signal_keys("images")) == out


def test_unknown_dataset_config_is_an_error():
    with pytest.raises(GONError, match="unknown dataset 'mnsit'"):
        resolve("images", "mnsit")


def test_checkpoint_configs_are_checked_like_any_other():
    good = Config().to_dict()
    for section, key, val in [("model", "hidden", "256"), ("train", "batch_size", -1), ("model", "layers", 10**6),
                              ("gon", "loss", None), ("data", "sdf_near_std", ["a"])]:
        bad = json.loads(json.dumps(good))
        bad[section][key] = val
        with pytest.raises(GONError, match=f"checkpoint: {section}.{key}"):
            Config.from_dict(bad, "checkpoint")
    bad = json.loads(json.dumps(good))
    bad["model"].update(zero_origin=True, out_activation="sigmoid")
    with pytest.raises(GONError, match="zero_origin"):
        check_rules(Config.from_dict(bad))


def _cli(*args, cwd=REPO, env=None):
    exe = REPO / ".venv" / "bin" / "implicit-gon"
    cmd = [str(exe)] if exe.exists() and env is None else [sys.executable, "-m", "cli"]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, cwd=cwd, env=env)


@pytest.mark.parametrize("args,see", [(["fit", "images", "--stepz", "3"], "implicit-gon fit images"),
                                      (["fit", "images"], "implicit-gon fit images"), (["bogus"], "implicit-gon"),
                                      (["eval"], "implicit-gon eval"), (["render", "--res"], "implicit-gon render"),
                                      (["fit", "images", "--steps"], "implicit-gon fit images")])
def test_usage_errors_exit_2_in_one_line(args, see):
    """click's own refusals read like the project's: one `error:` line, and the verb's help to read (a flag
    missing its value named the top-level help: click gives that error no context)."""
    p = _cli(*args)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.startswith("error: ") and p.stderr.count("\n") == 1, p.stderr
    assert p.stderr.endswith(f"(see {see} -h)\n"), p.stderr


@pytest.mark.parametrize("args,says", [
    (["fit", "images", "--lr", "1e-3", "--steps", "3", "--lr=1e-4"], "--lr is given twice"),
    (["fit", "images", "--variational", "--no-variational"], "--variational and --no-variational are both given"),
    (["render", "RUN", "--res", "8", "--out", "x.png", "--res", "16"], "--res is given twice"),
    (["fit", "images", "--out", "--", "--steps", "3", "--steps", "4"], "--steps is given twice")])  # `--`: --out's
def test_a_flag_given_twice_is_refused(args, says):
    """click kept the last value and ignored the first without a word."""
    p = _cli(*args)
    assert p.returncode == 2 and p.stderr.startswith(f"error: {says} ") and p.stderr.count("\n") == 1, p.stderr


@pytest.mark.parametrize("args,says", [
    (["--set", "train.steps=3", "--set", "train.steps=4"],
     "--set train.steps is given twice (in Python, twice in sets=)"),
    (["--steps", "3", "--set", "train.steps=4"], "--set train.steps: train.steps is given by its flag too")])
def test_a_setting_given_twice_is_refused(args, says, tmp_path):
    """--set after --set, or after the field's own flag, silently won (YAML refuses a repeated key for this)."""
    p = _cli("fit", "images", "--dataset", "digits", "--out", str(tmp_path / "r"), *args)
    assert p.returncode == 2 and p.stderr.startswith(f"error: {says}") and p.stderr.count("\n") == 1, p.stderr
    assert not (tmp_path / "r").exists()
    with pytest.raises(UsageError, match=re.escape(says)):
        resolve("images", "digits", flags={"train.steps": 3} if "flag" in says else None,
                sets=[a for a in args if "=" in a])


def test_flags_of_many_values_may_repeat(tmp_path):
    """--set and --config take many values; a value that spells a flag is a value, not the flag again."""
    p = _cli("fit", "images", "--set", "train.lr=1e-3", "--set", "train.steps=2", "--out", str(tmp_path / "r"),
             "--steps", "1", "--dataset", "nope")
    assert p.returncode == 2 and "unknown dataset 'nope'" in p.stderr, p.stderr
    p = _cli("fit", "images", "--out", "--steps", "--steps", "1", "--dataset", "nope")
    assert p.returncode == 2 and "twice" not in p.stderr, p.stderr
    p = _cli("fit", "images", "--quiet", "--quiet", "--out", str(tmp_path / "r"), "--dataset", "nope")
    assert p.returncode == 2 and "unknown dataset 'nope'" in p.stderr, p.stderr  # the same switch twice says one thing
    p = _cli("fit", "images", "--steps", "3", "--steps", "4", "-h")  # help is what was asked for
    assert p.returncode == 0 and "Usage: implicit-gon fit images" in p.stdout, p.stderr


def test_help_alias_and_version():
    h = _cli("-h")
    assert h.returncode == 0 and "Usage: implicit-gon" in h.stdout and "Traceback" not in h.stderr
    assert _cli("fit", "images", "-h").returncode == 0
    v = _cli("--version")
    assert v.returncode == 0 and v.stdout.startswith("implicit-gon ")


def test_wheel_ships_its_configs_and_runs_outside_the_source_tree(tmp_path, shared_data):
    """A built wheel holds configs/ as package data; installed elsewhere, fit images and fit audio use them."""
    src, wheels = tmp_path / "src", tmp_path / "wheels"  # build from a copy: setuptools writes build/ beside it
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".venv", ".git", "runs", "build", "*.egg-info",
                                                             "__pycache__", ".pytest_cache"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheels), str(src)], check=True, capture_output=True)
    wheel = next(wheels.glob("implicit_gon-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "implicit_gon/configs/audio/default.yaml" in names and "implicit_gon/configs/images/mnist.yaml" in names
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(site),
                    str(wheel)], check=True, capture_output=True)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    # every module of the source tree must come from the wheel (an editable install elsewhere would hide a
    # subpackage missing from pyproject's package list)
    modules = sorted(".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
                     for top in ("implicit_gon", "signals") for p in (REPO / top).rglob("*.py"))
    probe = subprocess.run([sys.executable, "-c", "import importlib, sys, cli, implicit_gon.config as c; "
                            "print(c.config_root()); print(cli.__file__); "
                            "[print(importlib.import_module(m).__file__) for m in sys.argv[1:]]", *modules],
                           capture_output=True, text=True, cwd=work, env=env)
    files = probe.stdout.split()
    assert probe.returncode == 0 and len(files) == len(modules) + 2, probe.stderr
    assert all(f.startswith(str(site)) for f in files), [f for f in files if not f.startswith(str(site))]
    run = [sys.executable, "-m", "cli"]
    p = subprocess.run(run + ["fit", "images", "--dataset", "digits", "--steps", "2", "--out", "d", "--quiet"],
                       capture_output=True, text=True, cwd=work, env=env)
    assert p.returncode == 0, p.stderr
    clip = next((shared_data / "audio").glob("*.wav"))
    p = subprocess.run(run + ["fit", "audio", "--data", str(clip), "--steps", "2", "--hidden", "32", "--out", "a",
                              "--quiet"], capture_output=True, text=True, cwd=work, env=env)
    assert p.returncode == 0, p.stderr
    saved = json.loads((work / "a" / "config.json").read_text())["config"]
    assert saved["model"]["latent_dim"] == 64 and saved["data"]["window"] == 0.004  # the shipped audio config


# -- fields declare themselves: the fit options, their help, the refusals, --resume and config show are read from
# each field's declaration (implicit_gon/config.py `param`) ---------------------------------------------------
def _fit_options() -> dict:
    """{signal: {option: click parameter}} of the fit commands the app builds."""
    import typer

    import cli
    group = typer.main.get_command(cli.app).commands["fit"]
    return {name: {o: p for p in cmd.params for o in p.opts} for name, cmd in group.commands.items()}


def test_every_field_has_a_docstring():
    from implicit_gon.config import fields
    from implicit_gon.config_help import field_docs
    docs = field_docs()
    assert [key for key, _ in fields() if not docs.get(key)] == []


def test_each_flag_is_on_exactly_the_fit_commands_of_the_signals_that_read_it():
    from implicit_gon.config import fields, offers
    from implicit_gon.config_help import field_docs
    from implicit_gon.plugins import fit_kinds
    from signals import SIGNALS
    opts, docs, flagged = _fit_options(), field_docs(), 0
    assert set(opts) == set(fit_kinds()) >= set(SIGNALS)  # every adapter that says how its data is given
    for key, f in fields():
        if "flag" in f.metadata:
            flag, flagged = f.metadata["flag"].split("/")[0], flagged + 1
            offered = {s for s in SIGNALS if flag in opts[s]}
            assert offered == {s for s in SIGNALS if offers(f, s)} and offered, key
            assert all(docs[key] in opts[s][flag].help and key in opts[s][flag].help for s in offered), key
    assert flagged >= 30 and "--samples" in opts["sdf"] and "--res" not in opts["sdf"]
    assert "--sample-rate" in opts["audio"] and "--sample-rate" not in opts["images"]


def test_a_decoder_fields_flag_is_offered_only_where_the_decoder_renders():
    from implicit_gon import registry
    from implicit_gon.config import fields, offers
    from signals import SIGNALS
    for key, f in fields():
        spec = registry.decoders().get(f.metadata.get("reads"))
        if "flag" in f.metadata and spec is not None and spec.signals is not None:
            assert {s for s in SIGNALS if offers(f, s)} <= set(spec.signals), key


def test_given_settings_a_run_does_not_read_are_refused_from_the_declarations():
    from implicit_gon.config import fields, reads, unread_keys
    for cfg in (Config(), resolve("images", "mnist", flags={"model.decoder": "conv", "method.name": "ae"})):
        for key, f in fields():
            if "reads" in f.metadata:
                unread = unread_keys(cfg, {key: f"--set {key}"})
                assert (key in unread) == (not reads(f, cfg)), key
    assert "a conv decoder setting (model.conv_width)" in unread_keys(Config(), {"model.conv_width": "x"})[
        "model.conv_width"]


def test_resume_may_change_exactly_the_declared_fields():
    from implicit_gon.config import resumable, resume_config
    assert {"train.steps", "train.lr", "data.data_dir"} <= resumable() and "model.hidden" not in resumable()
    cfg = resolve("images", "digits")
    new, changed = resume_config(cfg, None, {"train.steps": 7, "train.max_time": 60.0})
    assert new.train.steps == 7 and set(changed) == {"train.steps", "train.max_time"}
    with pytest.raises(GONError, match="model.hidden cannot change"):
        resume_config(cfg, None, {"model.hidden": 8})
    with pytest.raises(GONError, match="--class-weight: the joint task's setting"):  # unread, even unchanged
        resume_config(cfg, None, {"gon.class_weight": cfg.gon.class_weight})


def test_compare_reads_its_field_facts_from_the_declarations(monkeypatch):
    """compare's keys are derived: a finished run may differ in the fields declared resume="where" (where it read,
    ran and wrote), and --set of a field that compare or any registered method sets is refused, a plug-in
    method's included."""
    from implicit_gon import compare, config, registry
    where = config.where_keys()
    assert {"data.data_dir", "train.device", "train.ckpt_every", "train.keep"} <= where <= config.resumable()
    assert not {"train.steps", "train.lr", "train.batch_size"} & where  # they change what is trained
    own = compare.own_keys()
    assert own["train.seed"] == "--seeds" and own["train.steps"] == "--steps" and own["gon.detach"] == "--methods"
    assert compare.MAX_COUNTS["steps"] == config.range_of("train.steps")["max"]
    monkeypatch.setitem(registry._METHODS, "toy-step", registry.MethodSpec("toy-step", {"gon.step_size": 0.5}))
    with pytest.raises(GONError, match="compare --set gon.step_size: compare sets it .*; use --methods"):
        compare.check_sets(["gon.step_size=0.1"])
    with pytest.raises(TypeError, match="resume='always'"):
        config.param(1, resume="always")


def test_config_show_prints_the_fields_the_signal_reads(capsys):
    shown = {}
    for signal in ("images", "audio", "sdf"):
        code, out, err = run_cli(["config", "show", signal] + (["mnist"] if signal == "images" else []), capsys)
        assert code == 0, err
        shown[signal] = yaml.safe_load(out)
    assert "res" in shown["images"]["data"] and "sample_rate" not in shown["images"]["data"]
    assert "sample_rate" in shown["audio"]["data"] and "sdf_samples" not in shown["audio"]["data"]
    assert "sdf_samples" in shown["sdf"]["data"] and not {"dataset", "res", "window"} & set(shown["sdf"]["data"])
    assert "conv_width" in shown["images"]["model"] and "conv_width" not in shown["sdf"]["model"]
    assert shown["sdf"]["model"]["hidden"] == 256 and shown["audio"]["train"]["steps"] > 0
    code, out, err = run_cli(["config", "show", "images"], capsys)  # no name: fit's default dataset, not 'default'
    assert code == 0 and yaml.safe_load(out)["data"]["dataset"] == "digits", err


def test_fit_help_is_not_read_at_import():
    """The flags' help comes from config.py's docstrings when help is shown, not from parsing source at import."""
    probe = subprocess.run([sys.executable, "-c", "import sys, cli; print('implicit_gon.config_help' in sys.modules)"],
                           capture_output=True, text=True, cwd=REPO)
    assert probe.returncode == 0 and probe.stdout.split() == ["False"], probe.stderr


def test_the_section_list_of_errors_names_every_section():
    from implicit_gon.config import merge
    with pytest.raises(GONError, match=r"\(model, gon, train, data, method\)"):
        merge(Config(), ["train"])


@pytest.mark.parametrize("flags,needle", [(["--samples", "0"], "data.sdf_samples = 0: must be at least 16"),
                                          (["--samples", "100000001"], "data.sdf_samples"),
                                          (["--max-time", "soon"], "--max-time 'soon'")])
def test_fit_sdf_flags_go_through_the_typed_config(flags, needle, tmp_path, capsys):
    (tmp_path / "m.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    code, _, err = run_cli(["fit", "sdf", "--data", tmp_path / "m.obj", "--out", tmp_path / "r", *flags], capsys)
    _one_line(code, err, needle, status=2)
    assert not (tmp_path / "r").exists()


TOY = '''
import dataclasses, sys
from implicit_gon import config
from implicit_gon.config import param


@dataclasses.dataclass
class ToyTrain(config.TrainConfig):
    toy_width: int = param(3, min=1, max=9, flag="--toy-width", signals=("images",))
    """A toy field declared by a test."""


@dataclasses.dataclass
class ToyConfig(config.Config):
    train: ToyTrain = dataclasses.field(default_factory=ToyTrain)


config.Config = ToyConfig
import cli
cli.main(sys.argv[1:])
'''


def test_a_new_field_with_a_flag_needs_no_cli_edit(tmp_path):
    """A field declared outside config.py (a subclassed section) becomes a `fit images` option with its docstring
    as help, is refused on the fit commands of other signals, is checked, and `config show` prints it."""
    (tmp_path / "toy.py").write_text(TOY)

    def toy(*args):
        return subprocess.run([sys.executable, str(tmp_path / "toy.py"), *map(str, args)], capture_output=True,
                              text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"})
    p = toy("fit", "images", "-h")
    assert p.returncode == 0 and "--toy-width" in p.stdout and "A toy field declared by a test." in p.stdout, p.stderr
    p = toy("fit", "audio", "--data", "x.wav", "--toy-width", "2", "--out", tmp_path / "a")
    assert p.returncode == 2 and "--toy-width" in p.stderr
    p = toy("fit", "images", "--toy-width", "0", "--out", tmp_path / "r")
    assert p.returncode == 2 and "train.toy_width = 0: must be at least 1" in p.stderr and not (tmp_path / "r").exists()
    p = toy("config", "show", "images", "mnist", "--set", "train.toy_width=5")
    assert p.returncode == 0 and yaml.safe_load(p.stdout)["train"]["toy_width"] == 5, p.stderr


def test_given_keys_name_each_field_by_its_flag():
    """Refusals quote the flag the user typed: --samples sets data.sdf_samples, --method method.name."""
    from implicit_gon.config import given_keys
    given = given_keys({"data.sdf_samples": 5, "method.name": "ae", "train.lr": None}, ["gon.beta=2"])
    assert given == {"data.sdf_samples": "--samples", "method.name": "--method", "gon.beta": "--set gon.beta"}


@pytest.mark.parametrize("signal,flag", [("sdf", "--res"), ("audio", "--samples"), ("images", "--window")])
def test_a_flag_of_another_signal_is_refused_not_ignored(signal, flag, tmp_path, capsys):
    code, _, err = run_cli(["fit", signal, "--out", tmp_path / "r", flag, "3"], capsys)
    assert code == 2 and f"No such option: {flag}" in err and not (tmp_path / "r").exists()


def test_compare_sets_fields_through_their_declared_flags():
    """compare's --batch-size, --lr, ... are the fields' own options (help from their docstrings), so a renamed
    flag or a lost declaration shows here."""
    import typer

    import cli
    from implicit_gon.config_help import field_docs
    opts = {o: p for p in typer.main.get_command(cli.app).commands["compare"].params for o in p.opts}
    assert set(cli.COMPARE_KEYS.values()) == {"data.data_dir", "train.batch_size", "train.lr", "model.latent_dim",
                                              "data.train_limit", "train.device"}
    assert all(field_docs()[key] in opts[flag].help for flag, key in cli.COMPARE_KEYS.items())
    assert opts["--steps"].help.startswith("Training steps of every run")  # compare's own --steps keeps its help


def test_a_signal_kind_a_plugin_registers_is_a_data_signal(monkeypatch):
    """data.signal takes the kinds registered with implicit_gon.plugins, so a new adapter needs no config edit;
    such a run reads the fields declared for every signal, none of the shipped signals' own data fields."""
    from implicit_gon import plugins
    from implicit_gon.config import merge
    from signals.base import SignalAdapter
    with pytest.raises(GONError, match="data.signal = 'toy-wave'"):
        merge(Config(), {"data": {"signal": "toy-wave"}})
    plugins.load_plugins()
    wave = type("WaveAdapter", (SignalAdapter,), {"kind": "toy-wave"})()  # says nothing of how data is given
    monkeypatch.setitem(plugins._ADAPTERS, "toy-wave", wave)
    cfg = check_rules(merge(Config(), {"data": {"signal": "toy-wave"}}))
    assert cfg.data.signal == "toy-wave" and "train.lr" in signal_keys("toy-wave")
    assert not {"data.paths", "data.res", "data.sample_rate"} & set(signal_keys("toy-wave"))
    with pytest.raises(GONError, match="data.res = 28 is for images runs"):
        check_rules(merge(cfg, {"data": {"res": 28}}))
    monkeypatch.setattr(wave, "fit_data", "files", raising=False)  # trained on files: it reads data.paths
    assert {"data.paths", "data.val_paths"} <= set(signal_keys("toy-wave")) and "data.dataset" not in signal_keys(
        "toy-wave")


def test_refusals_list_signals_as_a_sentence(monkeypatch, capsys):
    """Lists in refusals read 'a, b and c' (a choice: 'a, b or c'), never a tuple or a bare comma list."""
    from types import SimpleNamespace

    from implicit_gon import plugins
    from implicit_gon.errors import natural_list
    from implicit_gon.verbs import refuse_unused
    plugins.load_plugins()  # the shipped signals only: other tests in this process register toy ones
    monkeypatch.setattr(plugins, "_ADAPTERS", {k: plugins._ADAPTERS[k] for k in ("audio", "images", "sdf")})
    assert [natural_list(x) for x in ([], ["a"], ("a", "b"), ("a", "b", "c"))] == ["", "a", "a and b", "a, b and c"]
    assert natural_list([16, 32, 64], "or") == "16, 32 or 64"
    code, _, err = run_cli(["config", "show", "wave", "x"], capsys)
    assert code == 2 and err.strip() == "error: signal 'wave': choose one of audio, images or sdf", err
    with pytest.raises(GONError, match=r"data.signal = 'wave': choose one of audio, images or sdf$"):
        resolve("images", "mnist", sets=["data.signal=wave"])
    with pytest.raises(GONError, match=r"data.channels = 3 is for images and audio runs"):
        resolve("sdf", "default", sets=["data.channels=3"])
    curve = SimpleNamespace(noun="curve", verbs={"sample": SimpleNamespace(options=("n",))})  # reads no --seed
    with pytest.raises(GONError, match=r"^sample --seed: not used for curve runs \(only for audio, image and SDF "
                                       r"runs\)$"):
        refuse_unused(curve, "sample", {"seed"}, lambda name: f"--{name}")
