"""Trajectory ids of collected batches, and splitting a batch into padded trajectories."""

from __future__ import annotations

from typing import Any

import torch

from rlbricks.collectors._errors import CollectorRuntimeError
from rlbricks.tensordict import NestedKey
from rlbricks.tensordict import TensorDict

__all__ = ["TrajectoryCounter", "split_trajectories"]

TRAJ_IDS: NestedKey = ("collector", "traj_ids")
MASK: NestedKey = ("collector", "mask")


class TrajectoryCounter:
    """Gives every trajectory a unique id, batch after batch, without a per-step op.

    The ids of a batch come from its done flags in a few vectorised ops: a
    new trajectory starts at the step after a done, and trajectories that
    start in the same batch are numbered in the order they start (time
    first, then the flattened env index). A trajectory that spans two
    batches keeps its id.

    Args:
        num_envs: the number of sub-envs (the env's batch numel).
        device: where the ids live.

    Example:
        >>> import torch
        >>> from rlbricks.collectors._trajectories import TrajectoryCounter
        >>> counter = TrajectoryCounter(2)
        >>> done = torch.tensor([[False, True, False], [True, False, True]])
        >>> counter.ids(done).tolist()  # env 1 ends first (t=0): its next trajectory is 2
        [[0, 0, 3], [1, 2, 2]]
        >>> counter.ids(torch.zeros(2, 1, dtype=torch.bool)).tolist()  # 2 ended at t=2: 4
        [[3], [4]]
    """

    def __init__(self, num_envs: int, device: torch.device | str | None = None) -> None:
        self.current = torch.arange(num_envs, device=device)
        self.next_id = num_envs

    def ids(self, done: torch.Tensor) -> torch.Tensor:
        """The ids ``[num_envs, T]`` of a batch whose done flags are ``done`` ``[num_envs, T]``."""
        n, steps = done.shape
        if n != self.current.numel():
            raise CollectorRuntimeError(
                f"TrajectoryCounter: {n} sub-envs, expected {self.current.numel()}"
            )
        flags = done.to(device=self.current.device, dtype=torch.bool).transpose(0, 1)  # [T, n]
        rank = flags.reshape(-1).to(torch.int64).cumsum(0).reshape(steps, n)  # 1-based order
        latest = torch.where(flags, rank, 0).cummax(0).values  # the last done at or before t
        before = torch.cat([latest.new_zeros(1, n), latest[:-1]])  # ... strictly before t
        ids = torch.where(before > 0, self.next_id + before - 1, self.current)
        self.current = torch.where(latest[-1] > 0, self.next_id + latest[-1] - 1, self.current)
        self.next_id += int(rank[-1, -1])
        return ids.transpose(0, 1)

    def state_dict(self) -> dict[str, Any]:
        """The counter's state.

        Example:
            >>> from rlbricks.collectors._trajectories import TrajectoryCounter
            >>> TrajectoryCounter(2).state_dict()
            {'current': tensor([0, 1]), 'next_id': 2}
        """
        return {"current": self.current.clone(), "next_id": self.next_id}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state saved by :meth:`state_dict`.

        Example:
            >>> from rlbricks.collectors._trajectories import TrajectoryCounter
            >>> a, b = TrajectoryCounter(2), TrajectoryCounter(2)
            >>> b.load_state_dict({"current": a.current + 5, "next_id": 9})
            >>> b.next_id, b.current.tolist()
            (9, [5, 6])
        """
        self.current = state["current"].to(self.current.device).clone()
        self.next_id = int(state["next_id"])


def split_trajectories(
    tensordict: TensorDict,
    *,
    traj_key: NestedKey = TRAJ_IDS,
    mask_key: NestedKey = MASK,
) -> TensorDict:
    """Split a collected batch ``[*env_batch, T]`` into trajectories ``[num_traj, max_len]``.

    Each row holds one trajectory (the steps of one ``traj_key`` id, in time
    order), zero-padded to the longest; ``mask_key`` is True on real steps.
    Rows are ordered by trajectory id.

    Args:
        tensordict: a batch written by a collector (time is the last batch dim).
        traj_key: where the trajectory ids are.
        mask_key: where to write the mask.

    Raises:
        CollectorRuntimeError: ``traj_key`` is missing or the batch has no time dim.

    Example:
        >>> import torch
        >>> from rlbricks.collectors import split_trajectories
        >>> from rlbricks.tensordict import TensorDict
        >>> batch = TensorDict({"x": torch.arange(6.0).reshape(2, 3),
        ...                     "collector": {"traj_ids": torch.tensor([[0, 0, 2], [1, 1, 1]])}},
        ...                    batch_size=[2, 3])
        >>> out = split_trajectories(batch)
        >>> out["x"].tolist(), out["collector", "mask"].tolist()
        ([[0.0, 1.0, 0.0], [3.0, 4.0, 5.0], [2.0, 0.0, 0.0]], [[True, True, False], [True, True, True], [True, False, False]])
    """
    if tensordict.batch_dims < 1:
        raise CollectorRuntimeError(
            "split_trajectories needs a batch with a time dim ([*env_batch, T]), got batch_size "
            f"{tuple(tensordict.batch_size)}: pass a batch a collector yielded"
        )
    if traj_key not in tensordict.keys(include_nested=True):
        raise CollectorRuntimeError(
            f"split_trajectories: the batch has no {traj_key!r} entry (collectors write it); "
            f"its keys are {list(tensordict.keys())}"
        )
    steps = tensordict.batch_size[-1]
    flat = tensordict.reshape(-1, steps)  # [n, T]
    ids = flat.get(traj_key)
    unique, index = torch.unique(ids.reshape(-1), return_inverse=True)
    time = torch.arange(steps, device=ids.device).expand_as(ids).reshape(-1)
    start = torch.full((unique.numel(),), steps, dtype=torch.int64, device=ids.device)
    start = start.scatter_reduce(0, index, time, reduce="amin")
    position = time - start[index]
    length = torch.bincount(index, minlength=unique.numel())
    max_len = int(length.max())

    def pad(value: torch.Tensor) -> torch.Tensor:
        value = value.reshape(-1, *value.shape[2:])
        out = value.new_zeros((unique.numel(), max_len, *value.shape[1:]))
        out[index, position] = value
        return out

    out = flat.apply(pad, batch_size=[unique.numel(), max_len])
    mask = torch.zeros(unique.numel(), max_len, dtype=torch.bool, device=ids.device)
    mask[index, position] = True
    out.set(mask_key, mask)
    return out
