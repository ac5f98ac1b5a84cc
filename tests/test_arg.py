"""Tests of neuromancer.arg: prefixed options, groups, grouped parsing and the ready-made parsers."""
import argparse
import sys

import pytest

from neuromancer import arg


def test_prefix_goes_after_the_dashes():
    parser = arg.ArgParser(prefix="ctl_")
    parser.add("-lr", type=float, default=0.1)
    parser.add("--epochs", type=int, default=3)
    parser.add("name")
    args = parser.parse_args(["-ctl_lr", "0.5", "--ctl_epochs", "7", "x"])
    assert (args.ctl_lr, args.ctl_epochs, args.ctl_name) == (0.5, 7, "x")


def test_groups_are_reused_and_take_their_prefix():
    parser = arg.ArgParser(prefix="a_")
    group = parser.group("TRAIN")
    group.add("-lr", type=float, default=0.1)
    assert parser.group("TRAIN") is group and parser.check_for_group("TRAIN") is group
    assert parser.check_for_group("missing") is None
    other = parser.group("OTHER", prefix="b_")
    other.add("-lr", type=float, default=0.2)
    args = parser.parse_args([])
    assert (args.a_lr, args.b_lr) == (0.1, 0.2)


def test_parse_arg_groups_splits_the_namespace(monkeypatch):
    parser = arg.ArgParser(parents=[arg.opt(), arg.data(system="TwoTank"), arg.policy(prefix="p_")])
    monkeypatch.setattr(sys, "argv", ["script", "-epochs", "5", "-p_n_hidden", "7", "-norm", "X"])
    args, groups = parser.parse_arg_groups()
    assert args.epochs == 5 and args.lr == 0.001 and args.dataset == "TwoTank" and args.norm == ["X"]
    assert vars(groups["OPTIMIZATION"]) == {"epochs": 5, "lr": 0.001, "patience": 100, "warmup": 100,
                                            "skip_eval_sim": False}
    assert groups["POLICY"].p_n_hidden == 7 and groups["POLICY"].p_policy_features == ["Y_ctrl_p", "Rf", "Y_maxf",
                                                                                        "Y_minf"]


@pytest.mark.parametrize("factory, expected", [
    (arg.log, {"gpu": None, "seed": 408, "savedir": "test", "verbosity": 1, "exp": "test", "location": "mlruns",
               "run": "neuromancer", "logger": "stdout"}),
    (arg.lin, {"linear_map": "linear", "sigma_min": 0.1, "sigma_max": 1.0}),
    (arg.loss, {"Q_con_x": 1.0, "Q_dx": 0.1, "Q_sub": 0.1, "Q_y": 1.0, "Q_e": 1.0, "Q_con_fdu": 0.0}),
    (arg.freeze, {"freeze": [""], "unfreeze": ["components.2"]}),
    (arg.ctrl_loss, {"Q_con_u": 0.0, "Q_r": 1.0, "Q_du": 0.0, "con_tighten": False, "tighten": 0.0,
                     "loss_clip": False, "noise": False, "Q_con_y": 0.0}),
    (arg.ssm, {"ssm_type": "hammerstein", "nx_hidden": 32, "n_layers": 2, "state_estimator": "mlp",
               "estimator_input_window": 8, "nonlinear_map": "mlp", "bias": False, "activation": "gelu"}),
    (arg.data, {"nsteps": 32, "dataset": "CSTR", "nsim": 10000, "norm": ["U", "D", "Y"], "data_seed": 408}),
])
def test_ready_made_parsers_have_upstreams_defaults(factory, expected):
    assert vars(factory().parse_args([])) == expected


def test_invalid_choices_are_rejected_and_argparse_is_not_patched(capsys):
    with pytest.raises(SystemExit):
        arg.lin().parse_args(["-linear_map", "nope"])
    assert "invalid choice" in capsys.readouterr().err
    assert not hasattr(argparse.ArgumentParser, "add")
    plain = argparse.ArgumentParser()
    arg.add(plain, "-x", type=int, default=1)
    assert plain.parse_args([]).x == 1
