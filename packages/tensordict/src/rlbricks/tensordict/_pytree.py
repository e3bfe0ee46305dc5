"""Registration of TensorDict as a ``torch.utils._pytree`` node.

``tree_map``, ``tree_flatten`` and the torch.compile / export machinery then
see through TensorDicts to their tensors.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.utils._pytree as pytree

from rlbricks.tensordict._td import TensorDict

__all__ = ["register"]

Context = tuple[tuple[str, ...], torch.Size, "torch.device | None"]


def _flatten(td: TensorDict) -> tuple[list[Any], Context]:
    keys = tuple(td._tensordict)
    return list(td._tensordict.values()), (keys, td._batch_size, td._device)


def _flatten_with_keys(td: TensorDict) -> tuple[list[tuple[Any, Any]], Context]:
    values, context = _flatten(td)
    return [(pytree.MappingKey(k), v) for k, v in zip(context[0], values)], context


def _unflatten(values: Any, context: Context) -> TensorDict:
    keys, batch_size, device = context
    return TensorDict._new_unsafe(dict(zip(keys, values)), batch_size, device)


def register() -> None:
    """Register TensorDict with torch's pytree (idempotent)."""
    if TensorDict in pytree.SUPPORTED_NODES:
        return
    pytree.register_pytree_node(
        TensorDict,
        _flatten,
        _unflatten,
        serialized_type_name="rlbricks.tensordict.TensorDict",
        flatten_with_keys_fn=_flatten_with_keys,
    )
