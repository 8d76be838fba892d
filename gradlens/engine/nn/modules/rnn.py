"""Recurrent cells and sequence modules (torch.nn.modules.rnn).

``RNNCell``, ``LSTMCell``, ``GRUCell`` have torch's parameter names (``weight_ih``, ``weight_hh``,
``bias_ih``, ``bias_hh``), init U(-1/sqrt(hidden), 1/sqrt(hidden)) and the graph of torch's cells
(``linear_hh(h) + linear_ih(x)``, gates from one ``UnsafeSplitBackward0``). ``RNN``/``GRU`` run like torch's
CPU kernels (the input projection of all steps at once, unbound per step) and build the same graph;
``LSTM`` gives torch's values and gradients, but torch's CPU LSTM is one fused oneDNN node
(``MkldnnRnnLayerBackward0``), which the native engine does not imitate.
"""

from __future__ import annotations

import math

from ... import _dtype
from ...creation import empty, zeros
from ...ops.nnops import transposed_, unsafe_chunk_
from ...tensor import Tensor
from .. import functional as F
from .. import init
from ..parameter import Parameter
from .module import Module

__all__ = ["RNNCellBase", "RNNCell", "LSTMCell", "GRUCell", "RNNBase", "RNN", "LSTM", "GRU"]


def _check_cell_input(input: Tensor, hx: Tensor, input_size: int, hidden_size: int, label: str = "0") -> None:
    if input.size(1) != input_size:
        raise RuntimeError(f"input has inconsistent input_size: got {input.size(1)} expected {input_size}")
    if input.size(0) != hx.size(0):
        raise RuntimeError(
            f"Input batch size {input.size(0)} doesn't match hidden{label} batch size {hx.size(0)}"
        )
    if hx.size(1) != hidden_size:
        raise RuntimeError(
            f"hidden{label} has inconsistent hidden_size: got {hx.size(1)}, expected {hidden_size}"
        )


class RNNCellBase(Module):
    """Parameters shared by the cells: ``weight_ih`` (chunks*hidden, input), ``weight_hh`` (chunks*hidden,
    hidden) and optional ``bias_ih``/``bias_hh``."""

    __constants__ = ["input_size", "hidden_size", "bias"]

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool, num_chunks: int, device=None, dtype=None
    ) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        dt = None if dtype is None else _dtype.to_dtype(dtype)
        self.weight_ih = Parameter(empty((num_chunks * hidden_size, input_size), dtype=dt))
        self.weight_hh = Parameter(empty((num_chunks * hidden_size, hidden_size), dtype=dt))
        if bias:
            self.bias_ih = Parameter(empty(num_chunks * hidden_size, dtype=dt))
            self.bias_hh = Parameter(empty(num_chunks * hidden_size, dtype=dt))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def extra_repr(self) -> str:
        s = "{input_size}, {hidden_size}"
        if "bias" in self.__dict__ and self.bias is not True:
            s += ", bias={bias}"
        if "nonlinearity" in self.__dict__ and self.nonlinearity != "tanh":
            s += ", nonlinearity={nonlinearity}"
        return s.format(**self.__dict__)

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    def _batched(self, name: str, input: Tensor, hx):
        if input.dim() not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.dim()}D instead")
        if isinstance(hx, Tensor) and hx.dim() not in (1, 2):
            raise ValueError(f"{name}: Expected hidden to be 1D or 2D, got {hx.dim()}D instead")
        return input.dim() == 2

    def _zeros(self, input: Tensor) -> Tensor:
        return zeros(input.size(0), self.hidden_size, dtype=input.dtype)


def _rnn_cell(input, hx, w_ih, w_hh, b_ih, b_hh, nonlinearity: str) -> Tensor:
    pre = F.linear(hx, w_hh, b_hh) + F.linear(input, w_ih, b_ih)
    return pre.tanh() if nonlinearity == "tanh" else pre.relu()


def _lstm_cell(input, hx, cx, w_ih, w_hh, b_ih, b_hh):
    gates = F.linear(hx, w_hh, b_hh) + F.linear(input, w_ih, b_ih)
    i, f, g, o = unsafe_chunk_(gates, 4, 1)
    ingate, forgetgate, cellgate, outgate = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
    cy = forgetgate * cx + ingate * cellgate
    hy = outgate * cy.tanh()
    return hy, cy


def _gru_cell(input, hx, w_ih, w_hh, b_ih, b_hh) -> Tensor:
    ir, ii, inew = unsafe_chunk_(F.linear(input, w_ih, b_ih), 3, 1)
    hr, hi, hnew = unsafe_chunk_(F.linear(hx, w_hh, b_hh), 3, 1)
    reset_gate = (hr + ir).sigmoid()
    input_gate = (hi + ii).sigmoid()
    new_gate = (inew + hnew * reset_gate).tanh()
    return (hx - new_gate) * input_gate + new_gate


class RNNCell(RNNCellBase):
    """Elman cell: ``h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)`` (or relu)."""

    __constants__ = ["input_size", "hidden_size", "bias", "nonlinearity"]

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, num_chunks=1, device=device, dtype=dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        is_batched = self._batched("RNNCell", input, hx)
        if not is_batched:
            input = input.unsqueeze(0)
        if hx is None:
            hx = self._zeros(input)
        elif not is_batched:
            hx = hx.unsqueeze(0)
        if self.nonlinearity not in ("tanh", "relu"):
            raise RuntimeError(f"Unknown nonlinearity: {self.nonlinearity}")
        _check_cell_input(input, hx, self.input_size, self.hidden_size)
        ret = _rnn_cell(
            input, hx, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, self.nonlinearity
        )
        if not is_batched:
            ret = ret.squeeze(0)
        return ret


class LSTMCell(RNNCellBase):
    """LSTM cell returning ``(h', c')``; gates in torch's order (input, forget, cell, output)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__(input_size, hidden_size, bias, num_chunks=4, device=device, dtype=dtype)

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        if input.dim() not in (1, 2):
            raise ValueError(f"LSTMCell: Expected input to be 1D or 2D, got {input.dim()}D instead")
        if hx is not None:
            for idx, value in enumerate(hx):
                if value.dim() not in (1, 2):
                    raise ValueError(
                        f"LSTMCell: Expected hx[{idx}] to be 1D or 2D, got {value.dim()}D instead"
                    )
        is_batched = input.dim() == 2
        if not is_batched:
            input = input.unsqueeze(0)
        if hx is None:
            z = self._zeros(input)
            hx = (z, z)
        else:
            hx = (hx[0].unsqueeze(0), hx[1].unsqueeze(0)) if not is_batched else hx
        _check_cell_input(input, hx[0], self.input_size, self.hidden_size, "0")
        _check_cell_input(input, hx[1], self.input_size, self.hidden_size, "1")
        hy, cy = _lstm_cell(input, hx[0], hx[1], self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        if not is_batched:
            hy, cy = hy.squeeze(0), cy.squeeze(0)
        return hy, cy


class GRUCell(RNNCellBase):
    """GRU cell; gates in torch's order (reset, update, new)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__(input_size, hidden_size, bias, num_chunks=3, device=device, dtype=dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        is_batched = self._batched("GRUCell", input, hx)
        if not is_batched:
            input = input.unsqueeze(0)
        if hx is None:
            hx = self._zeros(input)
        elif not is_batched:
            hx = hx.unsqueeze(0)
        _check_cell_input(input, hx, self.input_size, self.hidden_size)
        ret = _gru_cell(input, hx, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        if not is_batched:
            ret = ret.squeeze(0)
        return ret


# --- full sequence modules ---------------------------------------------------------------------------------
class RNNBase(Module):
    """Multi-layer (optionally bidirectional) recurrent module with torch's parameter names
    (``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``, ``..._reverse``)."""

    __constants__ = [
        "mode",
        "input_size",
        "hidden_size",
        "num_layers",
        "bias",
        "batch_first",
        "dropout",
        "bidirectional",
        "proj_size",
    ]

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if proj_size:
            raise NotImplementedError("gradlens.engine: proj_size is not supported")
        if not 0 <= dropout <= 1 or isinstance(dropout, bool):
            raise ValueError(
                "dropout should be a number in range [0, 1] representing the probability of an "
                "element being zeroed"
            )
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        gate_size = {"LSTM": 4, "GRU": 3}.get(mode, 1) * hidden_size
        num_directions = 2 if bidirectional else 1
        dt = None if dtype is None else _dtype.to_dtype(dtype)
        self._flat_weights_names = []
        for layer in range(num_layers):
            for direction in range(num_directions):
                layer_input_size = input_size if layer == 0 else hidden_size * num_directions
                suffix = "_reverse" if direction == 1 else ""
                names = [f"weight_ih_l{layer}{suffix}", f"weight_hh_l{layer}{suffix}"]
                shapes = [(gate_size, layer_input_size), (gate_size, hidden_size)]
                if bias:
                    names += [f"bias_ih_l{layer}{suffix}", f"bias_hh_l{layer}{suffix}"]
                    shapes += [(gate_size,), (gate_size,)]
                for name, shape in zip(names, shapes, strict=False):
                    setattr(self, name, Parameter(empty(shape, dtype=dt)))
                self._flat_weights_names.extend(names)
        self.reset_parameters()

    @property
    def _flat_weights(self) -> list:
        return [getattr(self, n) for n in self._flat_weights_names]

    @property
    def all_weights(self) -> list:
        per = 4 if self.bias else 2
        w = self._flat_weights
        return [w[i : i + per] for i in range(0, len(w), per)]

    def flatten_parameters(self) -> None:
        """No-op (there is no cuDNN weight buffer)."""

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    def extra_repr(self) -> str:
        s = "{input_size}, {hidden_size}"
        if self.num_layers != 1:
            s += ", num_layers={num_layers}"
        if self.bias is not True:
            s += ", bias={bias}"
        if self.batch_first is not False:
            s += ", batch_first={batch_first}"
        if self.dropout != 0:
            s += ", dropout={dropout}"
        if self.bidirectional is not False:
            s += ", bidirectional={bidirectional}"
        return s.format(**self.__dict__)

    def _layer(self, x: Tensor, state, layer: int, suffix: str, reverse: bool):
        """One direction of one layer over the whole sequence ``x`` (T, B, I), as torch's CPU kernels do it:
        the input projection for all steps at once, unbound per step, then the recurrent cell."""
        w_ih = getattr(self, f"weight_ih_l{layer}{suffix}")
        w_hh = getattr(self, f"weight_hh_l{layer}{suffix}")
        b_ih = getattr(self, f"bias_ih_l{layer}{suffix}") if self.bias else None
        b_hh = getattr(self, f"bias_hh_l{layer}{suffix}") if self.bias else None
        steps = F.linear(x, w_ih, b_ih).unbind(0)
        seq_len = len(steps)
        outs = [None] * seq_len
        order = range(seq_len - 1, -1, -1) if reverse else range(seq_len)
        mode = self.mode
        for t in order:
            pre = steps[t]
            if mode == "LSTM":
                h, c = state
                gates = F.linear(h, w_hh, b_hh) + pre
                i, f, g, o = unsafe_chunk_(gates, 4, 1)
                cy = f.sigmoid() * c + i.sigmoid() * g.tanh()
                state = (o.sigmoid() * cy.tanh(), cy)
                outs[t] = state[0]
            elif mode == "GRU":
                ir, ii, inew = unsafe_chunk_(pre, 3, 1)
                hr, hi, hnew = unsafe_chunk_(F.linear(state, w_hh, b_hh), 3, 1)
                reset_gate = (hr + ir).sigmoid()
                input_gate = (hi + ii).sigmoid()
                new_gate = (inew + hnew * reset_gate).tanh()
                state = (state - new_gate) * input_gate + new_gate
                outs[t] = state
            else:
                z = F.linear(state, w_hh, b_hh) + pre
                state = z.relu() if mode == "RNN_RELU" else z.tanh()
                outs[t] = state
        return outs, state

    def forward(self, input: Tensor, hx=None):
        from ... import cat, stack

        is_lstm = self.mode == "LSTM"
        if input.dim() not in (2, 3):
            raise ValueError(
                f"{type(self).__name__}: Expected input to be 2D or 3D, got {input.dim()}D instead"
            )
        is_batched = input.dim() == 3
        if not is_batched:
            input = input.unsqueeze(1)
            if hx is not None:
                hx = (hx[0].unsqueeze(1), hx[1].unsqueeze(1)) if is_lstm else hx.unsqueeze(1)
        elif self.batch_first:
            input = input.transpose(0, 1)
        if input.size(-1) != self.input_size:
            raise RuntimeError(
                f"input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                f"got {input.size(-1)}"
            )
        batch = input.size(1)
        num_directions = 2 if self.bidirectional else 1
        if hx is None:
            z = zeros(self.num_layers * num_directions, batch, self.hidden_size, dtype=input.dtype)
            hx = (z, z) if is_lstm else z
        expected = (self.num_layers * num_directions, batch, self.hidden_size)
        for h, msg in zip(
            hx if is_lstm else (hx,),
            ("Expected hidden[0] size", "Expected hidden[1] size") if is_lstm else ("Expected hidden size",),
            strict=True,
        ):
            if tuple(h.shape) != expected:
                raise RuntimeError(f"{msg} {expected}, got {list(h.shape)}")
        h0 = hx[0].unbind(0) if is_lstm else hx.unbind(0)
        c0 = hx[1].unbind(0) if is_lstm else None
        h_n, c_n = [], []
        layer_input = input
        for layer in range(self.num_layers):
            dir_outputs = []
            for direction in range(num_directions):
                idx = layer * num_directions + direction
                state = (h0[idx], c0[idx]) if is_lstm else h0[idx]
                suffix = "_reverse" if direction == 1 else ""
                outs, state = self._layer(layer_input, state, layer, suffix, direction == 1)
                dir_outputs.append(stack(outs, 0))
                if is_lstm:
                    h_n.append(state[0])
                    c_n.append(state[1])
                else:
                    h_n.append(state)
            layer_output = dir_outputs[0] if num_directions == 1 else cat(dir_outputs, -1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_output = F.dropout(layer_output, self.dropout, True)
            layer_input = layer_output
        output = layer_input
        hidden = (stack(h_n, 0), stack(c_n, 0)) if is_lstm else stack(h_n, 0)
        if not is_batched:
            output = output.squeeze(1)
            hidden = (hidden[0].squeeze(1), hidden[1].squeeze(1)) if is_lstm else hidden.squeeze(1)
        elif self.batch_first:
            output = transposed_(output, 0, 1)
        return output, hidden


class RNN(RNNBase):
    """Elman RNN (``nonlinearity`` 'tanh' or 'relu') over a sequence."""

    def __init__(self, *args, **kwargs) -> None:
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if len(args) > 3:
            self.nonlinearity = args[3]
            args = args[:3] + args[4:]
        else:
            self.nonlinearity = kwargs.pop("nonlinearity", "tanh")
        if self.nonlinearity == "tanh":
            mode = "RNN_TANH"
        elif self.nonlinearity == "relu":
            mode = "RNN_RELU"
        else:
            raise ValueError(f"Unknown nonlinearity '{self.nonlinearity}'. Select from 'tanh' or 'relu'.")
        nonlinearity = self.nonlinearity
        super().__init__(mode, *args, **kwargs)
        self.nonlinearity = nonlinearity

    def __setattr__(self, name, value):
        if name == "nonlinearity" and "_parameters" not in self.__dict__:
            object.__setattr__(self, name, value)
            return
        super().__setattr__(name, value)


class LSTM(RNNBase):
    """LSTM over a sequence; returns ``output, (h_n, c_n)``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__("LSTM", *args, **kwargs)


class GRU(RNNBase):
    """GRU over a sequence; returns ``output, h_n``."""

    def __init__(self, *args, **kwargs) -> None:
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        super().__init__("GRU", *args, **kwargs)
