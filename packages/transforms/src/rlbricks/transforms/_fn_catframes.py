"""Frame stacking: the maths behind ``CatFrames``.

Two views of the same operation:

* **online** (an env): a buffer holds the last ``N`` frames concatenated
  along ``dim``; a reset fills it with the first frame repeated
  (:func:`fill_frames`) and each step drops the oldest frame and appends the
  newest (:func:`push_frame`);
* **offline** (a stored trajectory ``[*B, T]``): the stack of every step is
  rebuilt from the frames of the same episode (:func:`stack_frames_in_time`),
  so a replay buffer can store single frames and stack them at sampling time.

Episode boundaries come from the ``("next", "done")`` flags: step ``t + 1``
starts a new episode when ``done[t]`` is True. Frames before the start of an
episode (or of the batch) are replaced by the episode's first frame, exactly
as the online buffer does after a reset.
"""

from __future__ import annotations

import torch

from rlbricks.transforms._errors import TransformValueError

__all__ = ["episode_start", "fill_frames", "push_frame", "stack_frames_in_time"]


def fill_frames(frame: torch.Tensor, n: int, dim: int) -> torch.Tensor:
    """The stack after a reset: ``frame`` repeated ``n`` times along ``dim``.

    Example:
        >>> import torch
        >>> fill_frames(torch.tensor([[1.0, 2.0]]), 3, -1).tolist()
        [[1.0, 2.0, 1.0, 2.0, 1.0, 2.0]]
    """
    return torch.cat([frame] * n, dim)


def push_frame(stack: torch.Tensor, frame: torch.Tensor, dim: int) -> torch.Tensor:
    """Drop the oldest frame of ``stack`` and append ``frame`` (a new tensor).

    Args:
        stack: ``N`` frames concatenated along ``dim``.
        frame: the newest frame; its size along ``dim`` is one frame's.
        dim: the concatenation dim (negative: counted from the end).

    Example:
        >>> import torch
        >>> push_frame(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([4.0]), -1).tolist()
        [2.0, 3.0, 4.0]
    """
    size = frame.shape[dim]
    total = stack.shape[dim]
    return torch.cat([stack.narrow(dim, size, total - size), frame], dim)


def episode_start(done: torch.Tensor) -> torch.Tensor:
    """For every step, the index of the first step of its episode within the batch.

    Args:
        done: bool ``[*B, T]``: the ``("next", "done")`` flag of every step.

    Returns:
        long ``[*B, T]``.

    Example:
        >>> import torch
        >>> episode_start(torch.tensor([False, True, False, True, False])).tolist()
        [0, 0, 2, 2, 4]
    """
    steps = done.shape[-1]
    t = torch.arange(steps, device=done.device)
    starts = torch.zeros(done.shape, dtype=torch.bool, device=done.device)
    starts[..., 0] = True
    starts[..., 1:] = done[..., :-1].bool()
    return torch.where(starts, t, 0).cummax(-1).values


def _gather_time(value: torch.Tensor, index: torch.Tensor, time_dim: int) -> torch.Tensor:
    trailing = value.ndim - time_dim - 1
    idx = index.reshape(*index.shape, *([1] * trailing)).expand(value.shape)
    return torch.gather(value, time_dim, idx)


def stack_frames_in_time(
    frames: torch.Tensor,
    next_frames: torch.Tensor | None,
    done: torch.Tensor,
    n: int,
    dim: int,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Stack the last ``n`` frames of every step of trajectories, episode by episode.

    Args:
        frames: the root frames ``[*B, T, *F]`` (the observation each step acted on).
        next_frames: the ``("next", ...)`` frames ``[*B, T, *F]``, or None.
        done: bool ``[*B, T]``: the ``("next", "done")`` flag of every step.
        n: the number of frames per stack.
        dim: the concatenation dim, negative, counted from the end of ``F``.

    Returns:
        ``(stacks, next_stacks)``: the root stack of step ``t`` holds the frames
        ``t - n + 1 .. t`` of its episode, oldest first; the next stack holds the
        root frames ``t - n + 2 .. t`` and ``next_frames[t]``. Frames from
        before the episode start are the episode's first frame.

    Raises:
        TransformValueError: ``dim`` is not negative, or the shapes do not fit.

    Example:
        >>> import torch
        >>> obs = torch.tensor([[0.0], [1.0], [2.0], [10.0], [11.0]])  # T=5, F=(1,)
        >>> nxt = torch.tensor([[1.0], [2.0], [3.0], [11.0], [12.0]])
        >>> done = torch.tensor([False, False, True, False, False])
        >>> root, after = stack_frames_in_time(obs, nxt, done, 2, -1)
        >>> root.tolist()
        [[0.0, 0.0], [0.0, 1.0], [1.0, 2.0], [10.0, 10.0], [10.0, 11.0]]
        >>> after.tolist()
        [[0.0, 1.0], [1.0, 2.0], [2.0, 3.0], [10.0, 11.0], [11.0, 12.0]]
    """
    if dim >= 0:
        raise TransformValueError(
            f"dim must be negative (counted from the end of the frame), got {dim}"
        )
    if n < 1:
        raise TransformValueError(f"n must be >= 1, got {n}")
    time_dim = done.ndim - 1
    if tuple(frames.shape[: done.ndim]) != tuple(done.shape):
        raise TransformValueError(
            f"frames of shape {tuple(frames.shape)} do not start with the done shape "
            f"{tuple(done.shape)} (batch dims then time)"
        )
    if frames.ndim - done.ndim < -dim:
        raise TransformValueError(
            f"dim={dim} is out of range for frames of shape {tuple(frames.shape[done.ndim :])}"
        )
    if next_frames is not None and next_frames.shape != frames.shape:
        raise TransformValueError(
            f"next frames have shape {tuple(next_frames.shape)}, frames {tuple(frames.shape)}; "
            "give both with the same shape"
        )
    start = episode_start(done)
    t = torch.arange(done.shape[-1], device=done.device)
    root = [
        _gather_time(frames, torch.maximum(t - offset, start), time_dim)
        for offset in range(n - 1, -1, -1)
    ]
    stacks = torch.cat(root, dim)
    if next_frames is None:
        return stacks, None
    # the next stack of step t is the root stack of step t + 1 in the same episode
    after = [*root[1:], next_frames]
    return stacks, torch.cat(after, dim)
