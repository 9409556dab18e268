"""Config files, ``--config.x=y`` overrides, the optimizer factory and the ``train`` CLI."""

from __future__ import annotations

import json
import re
import textwrap

import ml_collections
import optax
import pytest

from routellm_jax.cli import build_parser
from routellm_jax.training import config as C


def test_overrides_are_typed_like_the_field_they_replace():
    cfg = C.default_config()
    C.apply_overrides(
        cfg,
        [
            "--config.optimizer.lr=3e-5",
            "--config.optimizer.lr=1",  # int literal into a float field stays a float
            "--config.steps=7",
            "--config.arch=mf",
            "--config.checkpoint.async_save=False",
            "--config.arch_config.models=('a', 'b')",  # new key in the open arch_config dict
            "--config.data.mixture.total_rows=500",
        ],
    )
    assert cfg.optimizer.lr == 1.0 and isinstance(cfg.optimizer.lr, float)
    assert cfg.steps == 7 and cfg.arch == "mf" and cfg.checkpoint.async_save is False
    assert cfg.arch_config.models == ("a", "b") and cfg.data.mixture.total_rows == 500


@pytest.mark.parametrize(
    "bad, match",
    [
        ("--config.optimizer.lrr=1", "no config key 'optimizer.lrr'"),
        ("--config.nothere.x=1", "no config key 'nothere'"),
        ("--config.steps=abc", "expected int"),
        ("--steps=3", "expected --config"),
    ],
)
def test_bad_overrides_name_the_key(bad, match):
    with pytest.raises(C.ConfigError, match=match):
        C.apply_overrides(C.default_config(), [bad])


def test_config_json_round_trip_and_file_loading(tmp_path):
    path = tmp_path / "exp.py"
    path.write_text(
        textwrap.dedent(
            """
            from routellm_jax.training.config import default_config

            def get_config():
                c = default_config()
                c.arch = "mf"
                c.arch_config.dim = 8
                return c
            """
        )
    )
    cfg = C.load_config(str(path), ["--config.arch_config.dim=4", "--config.batch_size=32"])
    assert cfg.arch_config.dim == 4 and cfg.batch_size == 32
    back = C.from_json(json.loads(json.dumps(C.to_json(cfg))))
    assert back.to_dict() == cfg.to_dict()
    with pytest.raises(C.ConfigError, match="does not exist"):
        C.load_config(str(tmp_path / "missing.py"))


FAMILY = """
from routellm_jax.training.config import default_config

CELLS = {"small": 8, "large": 64}


def sweep():
    return list(CELLS)


def get_config(arg):
    c = default_config()
    c.name = arg
    c.arch = "mf"
    c.arch_config.dim = CELLS[arg]
    return c
"""


def test_family_file_takes_its_argument_after_a_colon(tmp_path):
    path = tmp_path / "family.py"
    path.write_text(FAMILY)
    cfg = C.load_config(f"{path}:large", ["--config.batch_size=32"])
    assert (cfg.name, cfg.arch_config.dim, cfg.batch_size) == ("large", 64, 32)
    assert C.expand_sweep(str(path)) == [f"{path}:small", f"{path}:large"]
    assert C.expand_sweep(f"{path}:small") == [f"{path}:small"]
    with pytest.raises(C.ConfigError, match=r"needs an argument, .*family.py:<arg>; one of: small"):
        C.load_config(str(path))
    single = tmp_path / "single.py"
    single.write_text("from routellm_jax.training.config import default_config as get_config\n")
    with pytest.raises(C.ConfigError, match="takes no argument"):
        C.load_config(f"{single}:small")
    assert C.expand_sweep(str(single)) == [str(single)]
    args = build_parser(["train", f"{path}:small", "--workdir", str(tmp_path)]).parse_args(
        ["train", f"{path}:small", "--workdir", str(tmp_path)]
    )
    assert C.load_config(args.config).name == "small"


def test_optimizer_schedule_warmup_and_accumulation():
    oc = C.default_config().optimizer
    oc.lr, oc.warmup_steps, oc.schedule, oc.accum_steps = 0.1, 4, "linear", 2
    tx, schedule = C.make_optimizer(oc, total_steps=20)  # 10 optimizer updates
    assert float(schedule(0)) == 0.0 and float(schedule(4)) == pytest.approx(0.1)
    assert float(schedule(10)) == pytest.approx(0.0, abs=1e-7)
    assert isinstance(tx, optax.MultiSteps)
    with pytest.raises(C.ConfigError, match="schedule"):
        oc.schedule = "exp"
        C.make_optimizer(oc, 10)


def test_train_cli_parses_overrides_in_both_forms(tmp_path):
    argv = [
        "train",
        "exp.py",
        "--workdir",
        str(tmp_path),
        "--config.optimizer.lr=3e-5",
        "--resume",
        "--config.steps",
        "5",
    ]
    args = build_parser(argv).parse_args(argv)
    assert args.config == "exp.py" and args.resume and args.workdir == str(tmp_path)
    assert args.config_overrides == ["--config.optimizer.lr=3e-5", "--config.steps=5"]
    cfg = C.apply_overrides(C.default_config(), args.config_overrides)
    assert cfg.optimizer.lr == 3e-5 and cfg.steps == 5
    assert isinstance(cfg, ml_collections.ConfigDict)


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["--config.steps=20", "--config.optimizer.warmup_steps=30"], "optimizer.warmup_steps"),
        (  # warm-up counts optimizer updates: 40 steps accumulated 4 at a time are 10
            [
                "--config.steps=40",
                "--config.optimizer.accum_steps=4",
                "--config.optimizer.warmup_steps=12",
            ],
            "optimizer.warmup_steps",
        ),
        (["--config.steps=20", "--config.eval.every=50"], "eval.every"),
        (
            ["--config.data.mixture.sources=[{'name': 'alpaca_eval'}, {'name': 'alpaca_evl'}]"],
            "data.mixture.sources[1].name",
        ),
    ],
)
def test_impossible_configs_fail_before_any_work_naming_the_key(tmp_path, overrides, key):
    from routellm_jax.training.train import train

    cfg = C.apply_overrides(C.default_config(), ["--config.arch=mf", *overrides])
    with pytest.raises(C.ConfigError, match=re.escape(key) + ":"):
        C.validate_config(cfg)
    workdir = tmp_path / "never"
    with pytest.raises(C.ConfigError, match=re.escape(key)):
        train(cfg, workdir)
    assert not workdir.exists()  # nothing read or written


def test_valid_and_fit_built_configs_pass_validation():
    cfg = C.apply_overrides(
        C.default_config(),
        ["--config.arch=mf", "--config.steps=20", "--config.optimizer.warmup_steps=20"],
    )
    C.validate_config(cfg)
    # A router built by fit() takes no steps: its schedule and cadence are not checked.
    built = C.apply_overrides(
        C.default_config(),
        ["--config.arch=sw_ranking", "--config.steps=0", "--config.eval.every=500"],
    )
    C.validate_config(built)


def test_train_cli_reports_a_bad_config_as_one_line(tmp_path, capsys):
    from routellm_jax.cli import main

    exp = tmp_path / "exp.py"
    exp.write_text(
        "from routellm_jax.training.config import default_config\n\n\ndef get_config():\n"
        "    c = default_config()\n    c.arch = 'mf'\n    c.steps = 20\n    return c\n"
    )
    argv = ["train", str(exp), "--workdir", str(tmp_path / "run"), "--config.eval.every=30"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("routellm-jax train: error: eval.every: every 30 steps") and "\n" not in err
    )
