"""`SystemPreview`: a `System` roll-out in which chosen nodes also see the future of chosen signals.

Reference tracking with preview (a controller that knows the next ``L`` reference values) and
control with known future disturbances need a policy whose input at step ``i`` holds a window
``r[i], r[i+1], ..., r[i+L]`` of a signal instead of ``r[i]`` alone. `SystemPreview` rolls its nodes
out exactly as `System` does, except that each (signal, node) pair named in ``preview_keys_map``
receives that window, flattened time-major to ``[batch, (L + 1) * dim]``. Near the end of the
sequence the window is completed by padding the signal (``torch.nn.functional.pad`` modes).
Imported by ``neuromancer.system`` lazily, as ``neuromancer.system.SystemPreview``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from neuromancer.exceptions import warn_lenient_input
from neuromancer.system import System, TensorDict

PAD_MODES = ("constant", "reflect", "replicate", "circular")


class SystemPreview(System):
    """A `System` whose nodes may read a preview window of future values of some signals.

    :param nodes: the nodes, run in order at every step (as in `System`)
    :param preview_keys_map: for each signal key, the names of the nodes that receive its preview window
    :param preview_length: the number ``L`` of future steps each previewed signal shows; None previews every
        signal over ``nsteps`` steps (or over the roll-out length where ``nsteps`` is None)
    :param pad_mode: how windows running past the end of a signal are completed: 'circular' (wrap to the
        start), 'replicate' (repeat the last value), 'reflect' (mirror) or 'constant' (``pad_constant``)
    :param pad_constant: padding value for 'constant'
    :param name: the system's name in graphs
    :param nstep_key: key whose time length gives the roll-out length where ``nsteps`` is None
    :param init_func: replaces `init`
    :param nsteps: roll-out length
    :raises ValueError: unknown ``pad_mode``, a negative preview length, or a preview length given
        for a key that is not previewed
    :raises TypeError: ``preview_keys_map`` is not a dict of lists of node names (a one-character str
        is read as that one name, with a `LenientInputWarning`)
    """

    def __init__(self, nodes: Sequence[nn.Module], preview_keys_map: dict[str, list[str]] | None = None,
                 preview_length: dict[str, int] | None = None, pad_mode: str = "circular",
                 pad_constant: float = 0.0, name: str | None = None, nstep_key: str = "X",
                 init_func: Callable[[TensorDict], TensorDict] | None = None, nsteps: int | None = None) -> None:
        super().__init__(nodes, name=name, nstep_key=nstep_key, init_func=init_func, nsteps=nsteps)
        preview_keys_map = dict(preview_keys_map or {})
        for key, node_names in preview_keys_map.items():
            if isinstance(node_names, str) and len(node_names) == 1:
                warn_lenient_input(f"preview_keys_map[{key!r}] is the str {node_names!r}; it is read as the one node "
                                   f"name [{node_names!r}], as upstream 1.5 reads it. Pass a list: [{node_names!r}].")
                preview_keys_map[key] = node_names = [node_names]
            if isinstance(node_names, str):
                raise TypeError(f"preview_keys_map[{key!r}] must be a list of node names, got the str "
                                f"{node_names!r}, which upstream 1.5 reads as one name per character; pass "
                                f"[{node_names!r}]")
            if not all(isinstance(n, str) for n in node_names):
                raise TypeError(f"preview_keys_map[{key!r}] must be a list of node names, got {node_names!r}")
        if pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode={pad_mode!r}; use one of {PAD_MODES}")
        if preview_length is not None:
            unknown = sorted(set(preview_length) - set(preview_keys_map))
            if unknown:
                raise ValueError(f"preview_length names {unknown}, which preview_keys_map does not preview")
            negative = {k: v for k, v in preview_length.items() if v is not None and v < 0}
            if negative:
                raise ValueError(f"preview lengths must be >= 0, got {negative}")
        self.preview_keys_map = {key: list(names) for key, names in preview_keys_map.items()}
        self.pad_mode = pad_mode
        self.pad_constant = pad_constant if pad_mode == "constant" else None
        self.preview_length = (dict(preview_length) if preview_length is not None
                               else {key: nsteps for key in self.preview_keys_map})
        self._previews = {(key, node_name) for key, names in self.preview_keys_map.items() for node_name in names}

    def get_data_with_preview(self, input_dict: TensorDict, var_name: str, iteration: int) -> torch.Tensor:
        """Return the window ``input_dict[var_name][:, iteration : iteration + 1 + L]``, padded to full length.

        :param input_dict: ``[batch, time, dim]`` sequences
        :param var_name: the previewed key
        :param iteration: the current roll-out step
        :return: ``[batch, 1 + L, dim]``: the current value and ``L`` future ones
        :raises KeyError: ``var_name`` is not in ``input_dict``
        """
        if var_name not in input_dict:
            raise KeyError(f"SystemPreview {self.name!r}: previewed key {var_name!r} is not in the data "
                           f"(keys: {sorted(map(str, input_dict))})")
        sequence = input_dict[var_name]
        length = self._length(var_name, sequence)
        window = sequence[:, iteration:iteration + 1 + length]
        if window.shape[1] < length + 1:
            padded = nn.functional.pad(sequence, (0, 0, 0, length), mode=self.pad_mode, value=self.pad_constant)
            window = padded[:, iteration:iteration + 1 + length]
        return window

    def _length(self, var_name: str, sequence: torch.Tensor) -> int:
        """Preview length of ``var_name``: the configured one, else ``nsteps``, else the sequence's length."""
        length = self.preview_length.get(var_name)
        if length is None:
            length = self.nsteps if self.nsteps is not None else sequence.shape[1]
        return length

    def _step_inputs(self, data: TensorDict, node: nn.Module, step: int) -> TensorDict:
        """The inputs of ``node`` at ``step``: ``data[key][:, step]``, or the flattened preview window."""
        node_name = getattr(node, "name", None)
        inputs = {}
        for key in node.input_keys:
            if key not in data:
                raise KeyError(f"SystemPreview {self.name!r}: node {node_name!r} needs key {key!r}, which is "
                               f"neither in the data nor produced by a node (keys: {sorted(map(str, data))})")
            if (key, node_name) in self._previews:
                window = self.get_data_with_preview(data, key, step)
                inputs[key] = window.reshape(window.shape[0], -1)
            else:
                inputs[key] = data[key][:, step]
        return inputs

    def forward(self, input_dict: TensorDict) -> TensorDict:
        """Roll the nodes out as `System.forward` does, feeding preview windows where configured.

        :param input_dict: ``[batch, time, dim]`` tensors; not modified
        :return: every input key plus the stacked outputs
        :raises KeyError: ``nsteps`` is None and ``data[nstep_key]`` is missing, or a node input is missing
        """
        data = self.init(dict(input_dict))
        if self.nsteps is not None:
            nsteps = self.nsteps
        elif self.nstep_key in data:
            nsteps = data[self.nstep_key].shape[1]
        else:
            raise KeyError(f"SystemPreview {self.name!r} takes its number of steps from data[{self.nstep_key!r}], "
                           f"which is missing (keys: {sorted(map(str, data))}). Pass nsteps=... or nstep_key=...")
        for step in range(nsteps):
            for node in self.nodes:
                data = self.cat(data, node(self._step_inputs(data, node, step)))
        return data
