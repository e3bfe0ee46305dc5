"""Episode boundaries of stored trajectories, shared by the transforms that look along time."""

from __future__ import annotations

import torch

from rlbricks.tensordict import TensorDict
from rlbricks.transforms._errors import TransformKeyError
from rlbricks.transforms._errors import TransformValueError

__all__ = ["TRAJ_KEY", "trajectory_ends"]

TRAJ_KEY = ("collector", "traj_ids")


def _as_batch(value: torch.Tensor, td: TensorDict, key: object, owner: str) -> torch.Tensor:
    """``value`` ``[*batch]`` or ``[*batch, 1]`` as ``[*batch]``."""
    batch = td.batch_size
    if value.shape == batch:
        return value
    if value.shape == (*batch, 1):
        return value.squeeze(-1)
    raise TransformValueError(
        f"{owner}: {key!r} has shape {tuple(value.shape)}, expected {(*batch, 1)} for data of "
        f"batch size {tuple(batch)}"
    )


def trajectory_ends(td: TensorDict, owner: str, require_done: bool = True) -> torch.Tensor:
    """Where the episodes of trajectories ``[*B, T]`` (time last) end: bool ``[*B, T]``.

    Step ``t`` ends an episode when ``("next", "done")`` is True there, or when
    ``("collector", "traj_ids")`` (if present) changes between ``t`` and ``t + 1``.

    Args:
        td: the trajectories: batch ``[*B, T]`` with time as the last batch dim.
        owner: the transform's name, for error messages.
        require_done: raise when ``("next", "done")`` is missing (otherwise
            only trajectory ids, if any, cut the data).

    Raises:
        TransformValueError: ``td`` has no batch dim, or the flags have the wrong shape.
        TransformKeyError: ``("next", "done")`` is missing and ``require_done``.

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict
        >>> td = TensorDict({"next": {"done": torch.tensor([[False], [True], [False], [False]])},
        ...                  "collector": {"traj_ids": torch.tensor([0, 0, 1, 2])}}, batch_size=[4])
        >>> trajectory_ends(td, "demo").tolist()
        [False, True, True, False]
    """
    if td.batch_dims == 0:
        raise TransformValueError(
            f"{owner} on a plain TensorDict needs trajectories: batch size [*B, T] with time as "
            "the last dim (as collectors and rollouts produce), got a TensorDict without batch dims"
        )
    done = td.get(("next", "done"), None)
    if done is None:
        if require_done:
            raise TransformKeyError(
                f"{owner} needs ('next', 'done') to find the episode boundaries of the data; "
                f"its keys are {list(td.keys(include_nested=True, leaves_only=True))}"
            )
        ends = torch.zeros(td.batch_size, dtype=torch.bool, device=td.device)
    else:
        ends = _as_batch(done, td, ("next", "done"), owner).bool().clone()
    traj = td.get(TRAJ_KEY, None)
    if traj is not None:
        traj = _as_batch(traj, td, TRAJ_KEY, owner)
        ends[..., :-1] |= traj[..., 1:] != traj[..., :-1]
    return ends
