"""Running mean and variance: the maths and buffer layout behind ``VecNorm``.

The statistics of one entry of shape ``F`` live in a single float64 buffer
of shape ``[3, *F]`` (so that one ``share_memory_()`` tensor carries
everything a worker process needs, and its shape tells ``F``)::

    buffer[0] = count (per element: the same value everywhere)
    buffer[1] = sum of the samples
    buffer[2] = sum of their squares

An update with a batch ``x`` of ``n`` samples (decay ``d``, ``d = 1`` for
exact statistics) is::

    count <- d * count + n
    sum   <- d * sum   + sum_i x_i
    sumsq <- d * sumsq + sum_i x_i**2

and the statistics read ``mean = sum / count``,
``var = max(sumsq / count - mean**2, 0)``. With ``d = 1`` the update is
additive: the result does not depend on how the samples were split into
batches or in which order the batches came, which is what lets several
processes update one buffer (under a lock) and agree with a single-process
run. float64 keeps the ``sumsq / count - mean**2`` cancellation harmless for
observations of moderate scale.
"""

from __future__ import annotations

import torch

from rlbricks.transforms._errors import TransformValueError

__all__ = [
    "STATS_DTYPE",
    "mean_and_std",
    "new_stats_buffer",
    "stats_shape",
    "stats_views",
    "update_stats_",
]

STATS_DTYPE = torch.float64


def stats_shape(shape: torch.Size | tuple[int, ...]) -> torch.Size:
    """The shape of the buffer holding the statistics of an entry of ``shape``.

    Example:
        >>> stats_shape((4, 2))
        torch.Size([3, 4, 2])
    """
    return torch.Size((3, *shape))


def new_stats_buffer(shape: torch.Size | tuple[int, ...], shared: bool = True) -> torch.Tensor:
    """A zeroed statistics buffer (in shared memory when ``shared``).

    Example:
        >>> buf = new_stats_buffer((2,))
        >>> buf.shape, buf.dtype, buf.is_shared()
        (torch.Size([3, 2]), torch.float64, True)
    """
    buf = torch.zeros(stats_shape(shape), dtype=STATS_DTYPE)
    return buf.share_memory_() if shared else buf


def stats_views(
    buffer: torch.Tensor, shape: torch.Size | tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Views ``(count, sum, sumsq)`` into ``buffer``, each of shape ``shape``.

    Raises:
        TransformValueError: the buffer's shape is not ``[3, *shape]``.

    Example:
        >>> import torch
        >>> count, total, sumsq = stats_views(torch.arange(6.0).reshape(3, 2), (2,))
        >>> count.tolist(), total.tolist(), sumsq.tolist()
        ([0.0, 1.0], [2.0, 3.0], [4.0, 5.0])
    """
    if buffer.shape != stats_shape(shape):
        raise TransformValueError(
            f"a statistics buffer for entries of shape {tuple(shape)} has shape "
            f"{tuple(stats_shape(shape))}, got {tuple(buffer.shape)}"
        )
    return buffer[0], buffer[1], buffer[2]


def update_stats_(
    buffer: torch.Tensor,
    value: torch.Tensor,
    shape: torch.Size | tuple[int, ...],
    decay: float | None = None,
) -> None:
    """Add the samples ``value`` (``[*batch, *shape]``) to the statistics in ``buffer`` (in place).

    Args:
        buffer: the flat statistics buffer (see the module docstring).
        value: samples; every leading dim before ``shape`` is a sample dim.
            An empty batch leaves the buffer untouched (no decay either).
        shape: the shape of one sample.
        decay: forget factor applied to the old statistics before adding
            (None: exact statistics, as ``decay=1``).

    Raises:
        TransformValueError: ``value`` does not end with ``shape``.

    Example:
        >>> import torch
        >>> buf = new_stats_buffer((1,), shared=False)
        >>> update_stats_(buf, torch.tensor([[1.0], [3.0]]), (1,))
        >>> buf[:, 0].tolist()
        [2.0, 4.0, 10.0]
    """
    nd = len(shape)
    if tuple(value.shape[value.ndim - nd :]) != tuple(shape) or value.ndim < nd:
        raise TransformValueError(
            f"samples of shape {tuple(value.shape)} do not end with the statistics' entry shape "
            f"{tuple(shape)}"
        )
    flat = value.detach().reshape(-1, *shape).to(device=buffer.device, dtype=buffer.dtype)
    n = flat.shape[0]
    if n == 0:
        return
    stats_views(buffer, shape)  # checks the layout
    if decay is not None and decay != 1.0:
        buffer.mul_(decay)
    buffer.add_(torch.stack([torch.full_like(flat[0], n), flat.sum(0), flat.square().sum(0)]))


def mean_and_std(
    buffer: torch.Tensor, shape: torch.Size | tuple[int, ...], eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The running mean and standard deviation (float64); ``(0, 1)`` before any sample.

    The standard deviation is clamped below at ``eps`` so that a constant
    entry does not divide by zero.

    Example:
        >>> import torch
        >>> buf = new_stats_buffer((1,), shared=False)
        >>> update_stats_(buf, torch.tensor([[1.0], [3.0]]), (1,))
        >>> mean, std = mean_and_std(buf, (1,), eps=1e-4)
        >>> mean.tolist(), std.tolist()
        ([2.0], [1.0])
    """
    _, total, sumsq = stats_views(buffer, shape)
    c = float(buffer.reshape(3, -1)[0, 0]) if total.numel() else 0.0  # the same everywhere
    if c <= 0.0:
        return torch.zeros_like(total), torch.ones_like(total)
    mean = total / c
    var = (sumsq / c - mean.square()).clamp_min(0.0)
    return mean, var.sqrt().clamp_min(eps)
