"""``LSTMModule``: an LSTM whose hidden state travels in the TensorDict."""

from __future__ import annotations

import copy

import torch
from torch import Tensor
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence
from torch.nn.utils.rnn import pad_packed_sequence

from rlbricks.modules._common import KeysLike
from rlbricks.modules._common import TensorDictModuleBase
from rlbricks.modules._common import as_keys
from rlbricks.modules._common import read_key
from rlbricks.modules._errors import ModuleValueError
from rlbricks.tensordict import NestedKey
from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import unravel_key

__all__ = ["LSTMModule"]

_DeviceLike = torch.device | str | int | None


class LSTMModule(TensorDictModuleBase):
    """An LSTM for recurrent policies and critics, with its hidden state stored in the TensorDict.

    The module reads the input features and the hidden state ``(h, c)`` from
    the root of the TensorDict (``"recurrent_state_h"``, ``"recurrent_state_c"``,
    each ``[*batch, num_layers, hidden_size]``) and writes the output
    features and the **next** state under ``("next", "recurrent_state_h")``
    and ``("next", "recurrent_state_c")``, so that ``step_mdp`` moves the new
    state to the root of the following step.  Where the entry ``is_init_key``
    (``[*batch, 1]``, written by the ``InitTracker`` transform) is ``True``,
    the state is reset to zeros before the step: a new episode starts from a
    blank memory.  **Missing state entries are read as zeros**; in step mode
    the zeros are also written at the root, so that every step of a rollout
    holds the same keys.

    Two modes:

    * **step mode** (default, for collecting data): the TensorDict holds one
      time step per environment, batch size ``[*batch]``; the input is
      ``[*batch, input_size]``.
    * **sequence mode** (``recurrent_mode=True`` or :meth:`set_recurrent_mode`,
      for losses on stored trajectories): the batch size is ``[*batch, T]``
      with time last, as collectors and slice samplers produce it.  The
      initial state is the one stored at ``t = 0``; the state is reset to
      zeros at every step whose ``is_init`` is ``True``, also in the middle
      of the sequence, and the whole sequence runs in one LSTM call.  The
      output at every step equals what step mode gives when fed the steps one
      by one.  Only the last time step of the ``("next", ...)`` state entries
      holds the final state; the earlier steps hold zeros.

    Args:
        input_size: the number of input features.
        hidden_size: the number of hidden features (also the output size).
        num_layers: the number of stacked LSTM layers.
        in_key: the input entry.
        out_key: the output entry.
        in_keys: instead of ``in_key``: ``[input, h, c]`` keys.
        out_keys: instead of ``out_key``: ``[output, next_h, next_c]`` keys.
        bias: use bias weights.
        dropout: dropout between layers (training only).
        is_init_key: the entry that flags episode starts.
        recurrent_mode: start in sequence mode.
        device: the device of the parameters.

    Raises:
        ModuleValueError: ``in_keys``/``out_keys`` do not hold three keys each.

    Example:
        >>> import torch
        >>> from rlbricks.modules import LSTMModule
        >>> from rlbricks.tensordict import TensorDict
        >>> lstm = LSTMModule(input_size=3, hidden_size=8)
        >>> td = lstm(TensorDict({"observation": torch.randn(4, 3)}, [4]))
        >>> td["embed"].shape, td["next", "recurrent_state_h"].shape
        (torch.Size([4, 8]), torch.Size([4, 1, 8]))
        >>> seq = lstm.set_recurrent_mode(True)  # shares the weights
        >>> traj = TensorDict({"observation": torch.randn(4, 10, 3)}, [4, 10])
        >>> seq(traj)["embed"].shape
        torch.Size([4, 10, 8])
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        in_key: NestedKey = "observation",
        out_key: NestedKey = "embed",
        in_keys: KeysLike | None = None,
        out_keys: KeysLike | None = None,
        bias: bool = True,
        dropout: float = 0.0,
        is_init_key: NestedKey = "is_init",
        recurrent_mode: bool = False,
        device: _DeviceLike = None,
    ) -> None:
        super().__init__()
        if in_keys is None:
            in_keys = [in_key, "recurrent_state_h", "recurrent_state_c"]
        if out_keys is None:
            out_keys = [out_key, ("next", "recurrent_state_h"), ("next", "recurrent_state_c")]
        ins = as_keys(in_keys, "in_keys")
        outs = as_keys(out_keys, "out_keys")
        if len(ins) != 3 or len(outs) != 3:
            raise ModuleValueError(
                "LSTMModule: in_keys must be [input, h, c] and out_keys [output, next_h, next_c], "
                f"got in_keys={ins} and out_keys={outs}"
            )
        self.lstm = nn.LSTM(
            input_size,
            hidden_size,
            num_layers,
            bias=bias,
            batch_first=True,
            dropout=dropout,
            device=device,
        )
        self.is_init_key = unravel_key(is_init_key)
        self.in_keys = [*ins, self.is_init_key]
        self.out_keys = outs
        self._recurrent_mode = bool(recurrent_mode)

    @property
    def recurrent_mode(self) -> bool:
        """Whether the module runs whole sequences (``[*batch, T]`` TensorDicts)."""
        return self._recurrent_mode

    def set_recurrent_mode(self, mode: bool = True) -> LSTMModule:
        """A module in sequence mode (``True``) or step mode (``False``) sharing these weights.

        ``self`` is left unchanged, so a policy (step mode) and a loss
        (sequence mode) can hold the two views of the same LSTM.

        Example:
            >>> from rlbricks.modules import LSTMModule
            >>> lstm = LSTMModule(3, 8)
            >>> seq = lstm.set_recurrent_mode(True)
            >>> seq.recurrent_mode, lstm.recurrent_mode, seq.lstm is lstm.lstm
            (True, False, True)
        """
        other = copy.copy(self)
        # fresh registries: attribute changes on the copy must not leak into self
        other._modules = dict(self._modules)
        other._parameters = dict(self._parameters)
        other._buffers = dict(self._buffers)
        other._recurrent_mode = bool(mode)
        return other

    def forward(self, tensordict: TensorDict) -> TensorDict:
        """Run one step per environment (step mode) or whole sequences (sequence mode).

        Raises:
            ModuleKeyError: the input entry is missing.
            ModuleValueError: the input does not end with ``input_size`` features,
                or a sequence-mode TensorDict has no batch dim.

        Example:
            >>> import torch
            >>> from rlbricks.modules import LSTMModule
            >>> from rlbricks.tensordict import TensorDict
            >>> lstm = LSTMModule(2, 4)
            >>> td = lstm(TensorDict({"observation": torch.ones(2)}))  # a single env
            >>> td["embed"].shape, td["recurrent_state_c"].abs().sum()
            (torch.Size([4]), tensor(0.))
        """
        x = read_key(self, tensordict, self.in_keys[0])
        batch = tensordict.batch_size
        if tuple(x.shape[len(batch) :]) != (self.lstm.input_size,):
            raise ModuleValueError(
                f"LSTMModule: the input {self.in_keys[0]!r} must be [*batch_size, "
                f"{self.lstm.input_size}] with batch_size {tuple(batch)}, got shape "
                f"{tuple(x.shape)}"
            )
        if self._recurrent_mode:
            return self._forward_sequence(tensordict, x)
        return self._forward_step(tensordict, x)

    # ------------------------------------------------------------------ #
    # helpers
    # ------------------------------------------------------------------ #
    def _state_shape(self) -> tuple[int, int]:
        return self.lstm.num_layers, self.lstm.hidden_size

    def _read_state(self, tensordict: TensorDict, x: Tensor) -> tuple[Tensor | None, Tensor | None]:
        h = tensordict.get(self.in_keys[1], None)
        c = tensordict.get(self.in_keys[2], None)
        if h is None or c is None:
            return None, None
        return h.to(x.dtype), c.to(x.dtype)

    def _resets(self, tensordict: TensorDict) -> Tensor | None:
        is_init = tensordict.get(self.is_init_key, None)
        if is_init is None:
            return None
        return is_init.reshape(tensordict.batch_size).to(torch.bool)

    def _forward_step(self, tensordict: TensorDict, x: Tensor) -> TensorDict:
        batch = tensordict.batch_size
        n = batch.numel()
        layers, hidden = self._state_shape()
        h, c = self._read_state(tensordict, x)
        if h is None or c is None:
            h = x.new_zeros((*batch, layers, hidden))
            c = x.new_zeros((*batch, layers, hidden))
            tensordict.set(self.in_keys[1], h)
            tensordict.set(self.in_keys[2], c)
        reset = self._resets(tensordict)
        if reset is not None:
            keep = (~reset).reshape(*batch, 1, 1).to(x.dtype)
            h, c = h * keep, c * keep
        h0 = h.reshape(n, layers, hidden).transpose(0, 1).contiguous()
        c0 = c.reshape(n, layers, hidden).transpose(0, 1).contiguous()
        y, (hn, cn) = self.lstm(x.reshape(n, 1, -1), (h0, c0))
        tensordict.set(self.out_keys[0], y.reshape(*batch, hidden))
        tensordict.set(self.out_keys[1], hn.transpose(0, 1).reshape(*batch, layers, hidden))
        tensordict.set(self.out_keys[2], cn.transpose(0, 1).reshape(*batch, layers, hidden))
        return tensordict

    def _forward_sequence(self, tensordict: TensorDict, x: Tensor) -> TensorDict:
        batch = tensordict.batch_size
        if not batch:
            raise ModuleValueError(
                "LSTMModule in sequence mode needs a TensorDict of batch size [*batch, T] "
                "(time last); got batch size []: use step mode for single steps"
            )
        steps = batch[-1]
        n = batch[:-1].numel()
        layers, hidden = self._state_shape()
        x = x.reshape(n, steps, -1)
        h, c = self._read_state(tensordict, x)
        if h is None or c is None:
            h0 = x.new_zeros((layers, n, hidden))
            c0 = x.new_zeros((layers, n, hidden))
        else:
            h0 = h.reshape(n, steps, layers, hidden)[:, 0].transpose(0, 1)
            c0 = c.reshape(n, steps, layers, hidden)[:, 0].transpose(0, 1)
        reset = self._resets(tensordict)
        if reset is not None:
            reset = reset.reshape(n, steps)
            keep = (~reset[:, 0]).reshape(1, n, 1).to(x.dtype)
            h0, c0 = h0 * keep, c0 * keep
        if reset is None or not bool(reset[:, 1:].any()):
            y, (hn, cn) = self.lstm(x, (h0.contiguous(), c0.contiguous()))
        else:
            y, (hn, cn) = self._run_segments(x, h0, c0, reset)
        tensordict.set(self.out_keys[0], y.reshape(*batch, hidden))
        for key, final in ((self.out_keys[1], hn), (self.out_keys[2], cn)):
            last = final.transpose(0, 1).unsqueeze(1)  # [n, 1, layers, hidden]
            earlier = last.new_zeros((n, steps - 1, layers, hidden))
            tensordict.set(key, torch.cat([earlier, last], 1).reshape(*batch, layers, hidden))
        return tensordict

    def _run_segments(
        self, x: Tensor, h0: Tensor, c0: Tensor, reset: Tensor
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Run sequences cut at every reset: each segment starts from zeros, in one LSTM call.

        ``x`` is ``[n, T, F]``, ``h0``/``c0`` ``[layers, n, hidden]`` (the state
        at ``t = 0``), ``reset`` ``[n, T]``.  Returns the outputs ``[n, T, hidden]``
        and the final state of each row.
        """
        n, steps, features = x.shape
        starts = reset.clone()
        starts[:, 0] = True
        flat = starts.reshape(-1)
        segment = flat.long().cumsum(0) - 1  # segment id of every element
        start_positions = flat.nonzero().squeeze(-1)
        n_segments = start_positions.numel()
        time = torch.arange(steps, device=x.device).repeat(n)
        position = time - (start_positions % steps)[segment]  # position inside its segment
        lengths = torch.bincount(segment, minlength=n_segments)
        longest = int(lengths.max())
        padded = x.new_zeros((n_segments, longest, features))
        padded = padded.index_put((segment, position), x.reshape(n * steps, features))
        layers, hidden = self._state_shape()
        first = segment.reshape(n, steps)[:, 0]
        h_seg = h0.new_zeros((layers, n_segments, hidden)).index_copy(1, first, h0)
        c_seg = c0.new_zeros((layers, n_segments, hidden)).index_copy(1, first, c0)
        packed = pack_padded_sequence(padded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out_packed, (hn, cn) = self.lstm(packed, (h_seg, c_seg))
        out, _ = pad_packed_sequence(out_packed, batch_first=True, total_length=longest)
        y = out[segment, position].reshape(n, steps, hidden)
        last = segment.reshape(n, steps)[:, -1]
        return y, (hn[:, last], cn[:, last])

    def extra_repr(self) -> str:
        """The keys and the mode, shown by ``repr(module)``."""
        return f"{super().extra_repr()}, recurrent_mode={self._recurrent_mode}"
