"""Command-line argument helpers for training scripts.

`ArgParser` is an ``argparse.ArgumentParser`` with short method names (``add`` for
``add_argument``, ``group`` for ``add_argument_group``), an optional ``prefix`` put in front of every
option name (so that the same parser definition can be bundled twice without name clashes), and
`ArgParser.parse_arg_groups`, which also returns one namespace per argument group. The functions
`log`, `opt`, `data`, `lin`, `loss`, `freeze`, `ctrl_loss`, `ssm` and `policy` return ready-made
parsers (``add_help=False``) to combine as ``ArgParser(parents=[arg.log(), arg.opt()])``.

Importing this module leaves ``argparse`` itself unchanged: ``add`` is a method of
`ArgParser` and of the groups it creates, and the module-level `add` works on any parser or group.
"""
from __future__ import annotations

import argparse
import logging
from typing import Any

logger = logging.getLogger(__name__)


def add(self, argname: str, **kwargs: Any) -> argparse.Action:
    """Add option ``argname`` to the parser or group ``self``, with the container's prefix inserted.

    ``-lr`` becomes ``-<prefix>lr``, ``--lr`` becomes ``--<prefix>lr`` and a positional ``lr`` becomes
    ``<prefix>lr``; a container without a ``prefix`` attribute adds the name unchanged.

    :param self: where the option goes
    :param argname: the option name, with its leading dashes
    :param kwargs: keyword arguments of ``add_argument`` (type, default, help, ...)
    :return: what ``add_argument`` returns
    """
    dashes = "--" if argname.startswith("--") else "-" if argname.startswith("-") else ""
    prefix = getattr(self, "prefix", "") or ""
    return self.add_argument(f"{dashes}{prefix}{argname[len(dashes):]}", **kwargs)


class _PrefixedGroup(argparse._ArgumentGroup):
    """An argument group with ``add``; its ``prefix`` defaults to its parser's."""

    def __init__(self, container: argparse._ActionsContainer, *args: Any, **kwargs: Any) -> None:
        super().__init__(container, *args, **kwargs)
        self._parser = container
        self._prefix: str | None = None

    @property
    def prefix(self) -> str:
        """The prefix this group puts before option names (its parser's unless set)."""
        return self._prefix if self._prefix is not None else getattr(self._parser, "prefix", "")

    @prefix.setter
    def prefix(self, value: str | None) -> None:
        self._prefix = value

    add = add


class ArgParser(argparse.ArgumentParser):
    """``ArgumentParser`` with ``add``/``group`` shortcuts, option-name prefixes and grouped results.

    :param prefix: inserted after the dashes of every option added with ``add``, default ''
    :param kwargs: keyword arguments of ``argparse.ArgumentParser`` (``parents``, ``add_help``, ...)
    """

    def __init__(self, prefix: str = "", **kwargs: Any) -> None:
        self.prefix = prefix
        super().__init__(**kwargs)

    add = add

    def add_argument_group(self, *args: Any, **kwargs: Any) -> argparse._ArgumentGroup:
        """Create an argument group that has ``add`` and this parser's prefix."""
        group = _PrefixedGroup(self, *args, **kwargs)
        self._action_groups.append(group)
        return group

    def check_for_group(self, group_name: str) -> argparse._ArgumentGroup | None:
        """Return the argument group titled ``group_name``, or None where there is none.

        :param group_name: the group's title
        """
        return next((group for group in self._action_groups if group.title == group_name), None)

    def group(self, group_name: str, prefix: str | None = None) -> argparse._ArgumentGroup:
        """Return the argument group titled ``group_name``, creating it where needed.

        :param group_name: the group's title (shown in ``--help``)
        :param prefix: prefix for the options added through the group; None (default) uses the parser's
        :return: the group; add options with ``group.add('-name', ...)``
        """
        found = self.check_for_group(group_name)
        if found is None:
            found = self.add_argument_group(group_name)
        found.prefix = prefix if prefix is not None else self.prefix
        return found

    def parse_arg_groups(self) -> tuple[argparse.Namespace, dict[str, argparse.Namespace]]:
        """Parse ``sys.argv`` and also split the result by argument group.

        :return: the full namespace and a dict from each group's title to a namespace holding only
            that group's options
        """
        args = self.parse_args()
        logger.info("parsed arguments: %s", args)
        groups = {group.title: argparse.Namespace(**{action.dest: getattr(args, action.dest, None)
                                                     for action in group._group_actions})
                  for group in self._action_groups}
        return args, groups


def _parser(prefix: str, title: str, options: list[tuple[str, dict]],
            ungrouped: list[tuple[str, dict]] = ()) -> ArgParser:
    """A parser without ``-h`` holding ``ungrouped`` options and the group ``title`` of ``options``.

    :param prefix: option-name prefix
    :param title: the group's title
    :param options: the group's options, in order
    :param ungrouped: options outside any group
    """
    parser = ArgParser(prefix=prefix, add_help=False)
    for name, kwargs in ungrouped:
        parser.add(name, **kwargs)
    group = parser.group(title)
    for name, kwargs in options:
        group.add(name, **kwargs)
    return parser


def log(prefix: str = "") -> ArgParser:
    """Options of logging and reproducibility: ``-gpu``, ``-seed`` and group LOGGING (``-savedir``,
    ``-verbosity``, ``-exp``, ``-location``, ``-run``, ``-logger``).

    :param prefix: option-name prefix, default ''
    """
    return _parser(prefix, "LOGGING", [
        ("-savedir", dict(type=str, default="test", help="directory for the trained model and plots")),
        ("-verbosity", dict(type=int, default=1, help="epochs between progress reports")),
        ("-exp", dict(type=str, default="test", help="experiment name grouping the runs")),
        ("-location", dict(type=str, default="mlruns", help="where experiment tracking writes")),
        ("-run", dict(type=str, default="neuromancer", help="name of this run")),
        ("-logger", dict(type=str, choices=["mlflow", "stdout"], default="stdout", help="logging back end")),
    ], ungrouped=[
        ("-gpu", dict(type=int, help="index of the GPU to use")),
        ("-seed", dict(type=int, default=408, help="random seed of weight initialization")),
    ])


def opt(prefix: str = "") -> ArgParser:
    """Options of optimization, group OPTIMIZATION: ``-epochs``, ``-lr``, ``-patience``, ``-warmup``,
    ``-skip_eval_sim``.

    :param prefix: option-name prefix, default ''
    """
    return _parser(prefix, "OPTIMIZATION", [
        ("-epochs", dict(type=int, default=20, help="number of training epochs")),
        ("-lr", dict(type=float, default=0.001, help="learning rate")),
        ("-patience", dict(type=int, default=100, help="epochs without improvement before early stopping")),
        ("-warmup", dict(type=int, default=100, help="epochs before early stopping may act")),
        ("-skip_eval_sim", dict(action="store_true", help="skip the simulation during evaluation")),
    ])


def data(prefix: str = "", system: str = "CSTR") -> ArgParser:
    """Options of the data set, group DATA: ``-nsteps``, ``-dataset`` (default ``system``), ``-nsim``,
    ``-norm``, ``-data_seed``.

    :param prefix: option-name prefix, default ''
    :param system: the default value of the ``-dataset`` option
    """
    return _parser(prefix, "DATA", [
        ("-nsteps", dict(type=int, default=32, help="prediction horizon of training roll-outs")),
        ("-dataset", dict(type=str, default=system, help="name of the system or data set")),
        ("-nsim", dict(type=int, default=10000,
                       help="number of simulated time steps, split evenly into train, dev and test")),
        ("-norm", dict(nargs="+", default=["U", "D", "Y"], choices=["U", "D", "Y", "X"],
                       help="sequences to min-max normalize")),
        ("-data_seed", dict(type=int, default=408, help="random seed of the simulated data")),
    ])


def lin(prefix: str = "") -> ArgParser:
    """Options of linear maps, group LINEAR: ``-linear_map``, ``-sigma_min``, ``-sigma_max``.

    :param prefix: option-name prefix, default ''
    """
    return _parser(prefix, "LINEAR", [
        ("-linear_map", dict(type=str, choices=["linear", "softSVD", "pf"], default="linear",
                             help="linear map class from neuromancer.slim")),
        ("-sigma_min", dict(type=float, default=0.1, help="smallest singular value of constrained maps")),
        ("-sigma_max", dict(type=float, default=1.0, help="largest singular value of constrained maps")),
    ])


def loss(prefix: str = "") -> ArgParser:
    """Loss weights of system identification, group LOSS: ``-Q_con_x``, ``-Q_dx``, ``-Q_sub``, ``-Q_y``,
    ``-Q_e``, ``-Q_con_fdu``.

    :param prefix: option-name prefix, default ''
    """
    return _parser(prefix, "LOSS", [
        ("-Q_con_x", dict(type=float, default=1.0, help="weight of hidden state constraints")),
        ("-Q_dx", dict(type=float, default=0.1, help="weight of one-step hidden state changes")),
        ("-Q_sub", dict(type=float, default=0.1, help="weight of linear map regularization")),
        ("-Q_y", dict(type=float, default=1.0, help="weight of output tracking")),
        ("-Q_e", dict(type=float, default=1.0, help="weight of the state estimator's prediction error")),
        ("-Q_con_fdu", dict(type=float, default=0.0, help="weight of input and disturbance constraints")),
    ])


def freeze(prefix: str = "") -> ArgParser:
    """Options of weight freezing, group FREEZE: ``-freeze``, ``-unfreeze``.

    :param prefix: option-name prefix, default ''
    """
    return _parser(prefix, "FREEZE", [
        ("-freeze", dict(nargs="+", default=[""], help="parameter names whose requires_grad is set to False")),
        ("-unfreeze", dict(default=["components.2"], help="parameter names whose requires_grad is set to True")),
    ])


def ctrl_loss(prefix: str = "") -> ArgParser:
    """Loss options of control, group LOSS: ``-Q_con_u``, ``-Q_r``, ``-Q_du``, ``-con_tighten``, ``-tighten``,
    ``-loss_clip``, ``-noise``, ``-Q_con_y``.

    :param prefix: option-name prefix, default ''
    """
    return _parser(prefix, "LOSS", [
        ("-Q_con_u", dict(type=float, default=0.0, help="weight of input constraints")),
        ("-Q_r", dict(type=float, default=1.0, help="weight of reference tracking")),
        ("-Q_du", dict(type=float, default=0.0, help="weight of control action changes")),
        ("-con_tighten", dict(action="store_true", help="tighten the constraints")),
        ("-tighten", dict(type=float, default=0.00, help="amount of constraint tightening")),
        ("-loss_clip", dict(action="store_true", help="clip loss terms early in training")),
        ("-noise", dict(action="store_true", help="add noise to control actions in training")),
        ("-Q_con_y", dict(type=float, default=0.0, help="weight of output constraints")),
    ])


def ssm(prefix: str = "") -> ArgParser:
    """Options of state-space models, group SSM: ``-ssm_type``, ``-nx_hidden``, ``-n_layers``,
    ``-state_estimator``, ``-estimator_input_window``, ``-nonlinear_map``, ``-bias``, ``-activation``.

    :param prefix: option-name prefix, default ''
    """
    from neuromancer.modules.activations import activations

    return _parser(prefix, "SSM", [
        ("-ssm_type", dict(type=str, default="hammerstein",
                           choices=["blackbox", "hw", "hammerstein", "blocknlin", "linear"],
                           help="block structure of the identified model")),
        ("-nx_hidden", dict(type=int, default=32, help="hidden states per output")),
        ("-n_layers", dict(type=int, default=2, help="hidden layers of the state transition")),
        ("-state_estimator", dict(type=str, default="mlp",
                                  choices=["rnn", "mlp", "linear", "residual_mlp", "fully_observable"],
                                  help="architecture of the state estimator")),
        ("-estimator_input_window", dict(type=int, default=8, help="past measurements fed to the state estimator")),
        ("-nonlinear_map", dict(type=str, default="mlp",
                                choices=["mlp", "rnn", "pytorch_rnn", "linear", "residual_mlp"],
                                help="architecture of the model's component blocks")),
        ("-bias", dict(action="store_true", help="use biases in the component blocks")),
        ("-activation", dict(choices=activations.keys(), default="gelu", help="activation of the component blocks")),
    ])


def policy(prefix: str = "") -> ArgParser:
    """Options of control policies, group POLICY: ``-policy``, ``-controlled_outputs``, ``-n_hidden``,
    ``-n_layers``, ``-bias``, ``-policy_features``, ``-activation``, ``-perturbation``.

    :param prefix: option-name prefix, default ''
    """
    return _parser(prefix, "POLICY", [
        ("-policy", dict(type=str, choices=["mlp", "linear"], default="mlp", help="policy architecture")),
        ("-controlled_outputs", dict(type=int, nargs="+", default=[0], help="indices of the controlled outputs")),
        ("-n_hidden", dict(type=int, default=20, help="hidden units per layer")),
        ("-n_layers", dict(type=int, default=3, help="hidden layers")),
        ("-bias", dict(action="store_true", help="use biases in the policy")),
        ("-policy_features", dict(nargs="+", default=["Y_ctrl_p", "Rf", "Y_maxf", "Y_minf"],
                                  help="data keys the policy reads")),
        ("-activation", dict(choices=["gelu", "softexp"], default="gelu", help="activation of the policy")),
        ("-perturbation", dict(choices=["white_noise_sine_wave", "white_noise"], default="white_noise",
                               help="how the system is perturbed")),
    ])
