"""The policy weights that the worker processes of a multiprocess collector read.

A CPU ``nn.Module`` policy is shared as it is: ``policy.share_memory()`` moves
its parameters and buffers to shared memory in place, so the workers see every
in-place change the learner makes (optimiser steps, ``load_state_dict``). A
policy with tensors elsewhere (a GPU) is copied to the CPU once and that copy
is shared; :meth:`SharedWeights.update_from` refreshes it. Other callables are
sent to the workers as they are and never updated.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from rlbricks.collectors._errors import CollectorRuntimeError

__all__ = ["SharedWeights"]


def _named_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = dict(module.named_parameters())
    tensors.update(module.named_buffers())
    return tensors


class SharedWeights:
    """The shared-memory tensors of a policy, and the policy object to send to the workers.

    Args:
        policy: the learner's policy (an ``nn.Module``, another callable, or None).
        owner: the collector's name, for error messages.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from rlbricks.collectors._shared import SharedWeights
        >>> policy = nn.Linear(2, 1)
        >>> weights = SharedWeights(policy, "collector")
        >>> weights.worker_policy is policy, policy.weight.is_shared()
        (True, True)
        >>> with torch.no_grad():
        ...     policy.weight.data = torch.ones(1, 2)  # a new tensor: no longer the shared one
        >>> weights.update_from(policy)
        >>> weights.tensors["weight"].tolist()
        [[1.0, 1.0]]
    """

    def __init__(self, policy: Any, owner: str) -> None:
        self.owner = owner
        self.tensors: dict[str, torch.Tensor] = {}
        self.worker_policy: Any = policy
        if not isinstance(policy, nn.Module):
            return
        named = _named_tensors(policy)
        if any(t.device.type != "cpu" for t in named.values()):
            shared = copy.deepcopy(policy).cpu()
        else:
            shared = policy
        shared.share_memory()
        self.worker_policy = shared
        # detached aliases: they keep pointing at the shared storage even when the
        # learner later swaps a parameter's ``.data`` for a new tensor
        self.tensors = {name: t.detach() for name, t in _named_tensors(shared).items()}

    def update_from(self, policy: Any) -> None:
        """Copy the values of ``policy``'s tensors into the shared ones that differ from them."""
        if not self.tensors or not isinstance(policy, nn.Module):
            return
        current = _named_tensors(policy)
        if current.keys() != self.tensors.keys():
            raise CollectorRuntimeError(
                f"{self.owner}.update_policy_weights_: the policy's parameters and buffers "
                f"changed since the collector was built (now {sorted(current)}, then "
                f"{sorted(self.tensors)}); build a new collector for a new architecture"
            )
        with torch.no_grad():
            for name, shared in self.tensors.items():
                value = current[name]
                if value.data_ptr() != shared.data_ptr() or value.device != shared.device:
                    shared.copy_(value)
