"""A readable, nested ``repr`` for TensorDicts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

if TYPE_CHECKING:
    from rlbricks.tensordict._td import TensorDict

__all__ = ["td_repr"]

_INDENT = "    "


def _leaf_repr(value: Tensor) -> str:
    kind = type(value).__name__
    return f"{kind}(shape={tuple(value.shape)}, dtype={value.dtype}, device={value.device})"


def td_repr(td: TensorDict, depth: int = 0) -> str:
    """The repr of ``td``: one line per key, nested TensorDicts indented.

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict
        >>> print(TensorDict({"obs": torch.zeros(2, 3)}, batch_size=[2]))
        TensorDict(
            obs: Tensor(shape=(2, 3), dtype=torch.float32, device=cpu),
            batch_size=(2,),
            device=None)
    """
    from rlbricks.tensordict._td import TensorDict

    pad = _INDENT * (depth + 1)
    lines = [f"{type(td).__name__}("]
    for key, value in td._tensordict.items():
        if isinstance(value, TensorDict):
            lines.append(f"{pad}{key}: {td_repr(value, depth + 1)},")
        else:
            lines.append(f"{pad}{key}: {_leaf_repr(value)},")
    lines.append(f"{pad}batch_size={tuple(td._batch_size)},")
    lines.append(f"{pad}device={td._device})")
    return "\n".join(lines)
