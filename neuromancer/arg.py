"""Command-line argument helpers for training scripts (upstream's ``neuromancer.arg``).

`ArgParser` is an ``argparse.ArgumentParser`` with short method names (``add`` for
``add_argument``, ``group`` for ``add_argument_group``), an optional ``prefix`` put in front of every
option name (so that the same parser definition can be bundled twice without name clashes), and
`ArgParser.parse_arg_groups`, which also returns one namespace per argument group. The functions
`log`, `opt`, `data`, `lin`, `loss`, `freeze`, `ctrl_loss`, `ssm` and `policy` return ready-made
parsers (``add_help=False``) to combine as ``ArgParser(parents=[arg.log(), arg.opt()])``.

Unlike upstream, importing this module does not patch ``argparse`` itself: ``add`` is a method of
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

    :param self: (ArgumentParser or argument group) where the option goes
    :param argname: (str) the option name, with its leading dashes
    :param kwargs: keyword arguments of ``add_argument`` (type, default, help, ...)
    :return: (argparse.Action) what ``add_argument`` returns
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

    :param prefix: (str) inserted after the dashes of every option added with ``add``, default ''
    :param kwargs: keyword arguments of ``argparse.ArgumentParser`` (``parents``, ``add_help``, ...)
    """

    def __init__(self, prefix: str = "", **kwargs: Any) -> None:
        self.prefix = prefix
        super().__init__(**kwargs)

    add = add

    def add_argument_group(self, *args: Any, **kwargs: Any) -> _PrefixedGroup:
        """Create an argument group that has ``add`` and this parser's prefix."""
        group = _PrefixedGroup(self, *args, **kwargs)
        self._action_groups.append(group)
        return group

    def check_for_group(self, group_name: str) -> argparse._ArgumentGroup | None:
        """Return the argument group titled ``group_name``, or None where there is none.

        :param group_name: (str) the group's title
        """
        return next((group for group in self._action_groups if group.title == group_name), None)

    def group(self, group_name: str, prefix: str | None = None) -> argparse._ArgumentGroup:
        """Return the argument group titled ``group_name``, creating it where needed.

        :param group_name: (str) the group's title (shown in ``--help``)
        :param prefix: (str or None) prefix for the options added through the group; None (default)
            uses the parser's
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


def log(prefix: str = "") -> ArgParser:
    """Options of logging and reproducibility: ``-gpu``, ``-seed`` and group LOGGING (``-savedir``,
    ``-verbosity``, ``-exp``, ``-location``, ``-run``, ``-logger``).

    :param prefix: (str) option-name prefix, default ''
    """
    parser = ArgParser(prefix=prefix, add_help=False)
    parser.add("-gpu", type=int, help="index of the GPU to use")
    parser.add("-seed", type=int, default=408, help="random seed of weight initialization")
    group = parser.group("LOGGING")
    group.add("-savedir", type=str, default="test", help="directory for the trained model and plots")
    group.add("-verbosity", type=int, default=1, help="epochs between progress reports")
    group.add("-exp", type=str, default="test", help="experiment name grouping the runs")
    group.add("-location", type=str, default="mlruns", help="where experiment tracking writes")
    group.add("-run", type=str, default="neuromancer", help="name of this run")
    group.add("-logger", type=str, choices=["mlflow", "stdout"], default="stdout", help="logging back end")
    return parser


def opt(prefix: str = "") -> ArgParser:
    """Options of optimization, group OPTIMIZATION: ``-epochs``, ``-lr``, ``-patience``, ``-warmup``,
    ``-skip_eval_sim``.

    :param prefix: (str) option-name prefix, default ''
    """
    parser = ArgParser(prefix=prefix, add_help=False)
    group = parser.group("OPTIMIZATION")
    group.add("-epochs", type=int, default=20, help="number of training epochs")
    group.add("-lr", type=float, default=0.001, help="learning rate")
    group.add("-patience", type=int, default=100, help="epochs without improvement before early stopping")
    group.add("-warmup", type=int, default=100, help="epochs before early stopping may act")
    group.add("-skip_eval_sim", action="store_true", help="skip the simulation during evaluation")
    return parser


def data(prefix: str = "", system: str = "CSTR") -> ArgParser:
    """Options of the data set, group DATA: ``-nsteps``, ``-dataset`` (default ``system``), ``-nsim``,
    ``-norm``, ``-data_seed``.

    :param prefix: (str) option-name prefix, default ''
    :param system: (str) default of ``-dataset``, default 'CSTR'
    """
    parser = ArgParser(prefix=prefix, add_help=False)
    group = parser.group("DATA")
    group.add("-nsteps", type=int, default=32, help="prediction horizon of training roll-outs")
    group.add("-dataset", type=str, default=system, help="name of the system or data set")
    group.add("-nsim", type=int, default=10000,
              help="number of simulated time steps, split evenly into train, dev and test")
    group.add("-norm", nargs="+", default=["U", "D", "Y"], choices=["U", "D", "Y", "X"],
              help="sequences to min-max normalize")
    group.add("-data_seed", type=int, default=408, help="random seed of the simulated data")
    return parser


def lin(prefix: str = "") -> ArgParser:
    """Options of linear maps, group LINEAR: ``-linear_map``, ``-sigma_min``, ``-sigma_max``.

    :param prefix: (str) option-name prefix, default ''
    """
    parser = ArgParser(prefix=prefix, add_help=False)
    group = parser.group("LINEAR")
    group.add("-linear_map", type=str, choices=["linear", "softSVD", "pf"], default="linear",
              help="linear map class from neuromancer.slim")
    group.add("-sigma_min", type=float, default=0.1, help="smallest singular value of constrained maps")
    group.add("-sigma_max", type=float, default=1.0, help="largest singular value of constrained maps")
    return parser


def loss(prefix: str = "") -> ArgParser:
    """Loss weights of system identification, group LOSS: ``-Q_con_x``, ``-Q_dx``, ``-Q_sub``, ``-Q_y``,
    ``-Q_e``, ``-Q_con_fdu``.

    :param prefix: (str) option-name prefix, default ''
    """
    parser = ArgParser(prefix=prefix, add_help=False)
    group = parser.group("LOSS")
    group.add("-Q_con_x", type=float, default=1.0, help="weight of hidden state constraints")
    group.add("-Q_dx", type=float, default=0.1, help="weight of one-step hidden state changes")
    group.add("-Q_sub", type=float, default=0.1, help="weight of linear map regularization")
    group.add("-Q_y", type=float, default=1.0, help="weight of output tracking")
    group.add("-Q_e", type=float, default=1.0, help="weight of the state estimator's prediction error")
    group.add("-Q_con_fdu", type=float, default=0.0, help="weight of input and disturbance constraints")
    return parser


def freeze(prefix: str = "") -> ArgParser:
    """Options of weight freezing, group FREEZE: ``-freeze``, ``-unfreeze``.

    :param prefix: (str) option-name prefix, default ''
    """
    parser = ArgParser(prefix=prefix, add_help=False)
    group = parser.group("FREEZE")
    group.add("-freeze", nargs="+", default=[""], help="parameter names whose requires_grad is set to False")
    group.add("-unfreeze", default=["components.2"], help="parameter names whose requires_grad is set to True")
    return parser


def ctrl_loss(prefix: str = "") -> ArgParser:
    """Loss options of control, group LOSS: ``-Q_con_u``, ``-Q_r``, ``-Q_du``, ``-con_tighten``, ``-tighten``,
    ``-loss_clip``, ``-noise``, ``-Q_con_y``.

    :param prefix: (str) option-name prefix, default ''
    """
    parser = ArgParser(prefix=prefix, add_help=False)
    group = parser.group("LOSS")
    group.add("-Q_con_u", type=float, default=0.0, help="weight of input constraints")
    group.add("-Q_r", type=float, default=1.0, help="weight of reference tracking")
    group.add("-Q_du", type=float, default=0.0, help="weight of control action changes")
    group.add("-con_tighten", action="store_true", help="tighten the constraints")
    group.add("-tighten", type=float, default=0.00, help="amount of constraint tightening")
    group.add("-loss_clip", action="store_true", help="clip loss terms early in training")
    group.add("-noise", action="store_true", help="add noise to control actions in training")
    group.add("-Q_con_y", type=float, default=0.0, help="weight of output constraints")
    return parser


def ssm(prefix: str = "") -> ArgParser:
    """Options of state-space models, group SSM: ``-ssm_type``, ``-nx_hidden``, ``-n_layers``,
    ``-state_estimator``, ``-estimator_input_window``, ``-nonlinear_map``, ``-bias``, ``-activation``.

    :param prefix: (str) option-name prefix, default ''
    """
    from neuromancer.modules.activations import activations

    parser = ArgParser(prefix=prefix, add_help=False)
    group = parser.group("SSM")
    group.add("-ssm_type", type=str, choices=["blackbox", "hw", "hammerstein", "blocknlin", "linear"],
              default="hammerstein", help="block structure of the identified model")
    group.add("-nx_hidden", type=int, default=32, help="hidden states per output")
    group.add("-n_layers", type=int, default=2, help="hidden layers of the state transition")
    group.add("-state_estimator", type=str, choices=["rnn", "mlp", "linear", "residual_mlp", "fully_observable"],
              default="mlp", help="architecture of the state estimator")
    group.add("-estimator_input_window", type=int, default=8, help="past measurements fed to the state estimator")
    group.add("-nonlinear_map", type=str, default="mlp", choices=["mlp", "rnn", "pytorch_rnn", "linear", "residual_mlp"],
              help="architecture of the model's component blocks")
    group.add("-bias", action="store_true", help="use biases in the component blocks")
    group.add("-activation", choices=activations.keys(), default="gelu", help="activation of the component blocks")
    return parser


def policy(prefix: str = "") -> ArgParser:
    """Options of control policies, group POLICY: ``-policy``, ``-controlled_outputs``, ``-n_hidden``,
    ``-n_layers``, ``-bias``, ``-policy_features``, ``-activation``, ``-perturbation``.

    :param prefix: (str) option-name prefix, default ''
    """
    parser = ArgParser(prefix=prefix, add_help=False)
    group = parser.group("POLICY")
    group.add("-policy", type=str, choices=["mlp", "linear"], default="mlp", help="policy architecture")
    group.add("-controlled_outputs", type=int, nargs="+", default=[0], help="indices of the controlled outputs")
    group.add("-n_hidden", type=int, default=20, help="hidden units per layer")
    group.add("-n_layers", type=int, default=3, help="hidden layers")
    group.add("-bias", action="store_true", help="use biases in the policy")
    group.add("-policy_features", nargs="+", default=["Y_ctrl_p", "Rf", "Y_maxf", "Y_minf"],
              help="data keys the policy reads")
    group.add("-activation", choices=["gelu", "softexp"], default="gelu", help="activation of the policy")
    group.add("-perturbation", choices=["white_noise_sine_wave", "white_noise"], default="white_noise",
              help="how the system is perturbed")
    return parser
