# mypy: disable-error-code="misc"
"""Shape operations on the batch dims of a TensorDict.

Each op checks its arguments against the batch dims once, computes the new
batch size, and applies the matching tensor op to every leaf with explicit,
non-negative dims so that feature dims are never touched.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

import torch
from torch import Tensor

from rlbricks.tensordict import _td
from rlbricks.tensordict._errors import TensorDictIndexError
from rlbricks.tensordict._errors import TensorDictValueError

if TYPE_CHECKING:
    from rlbricks.tensordict._td import TensorDict

__all__ = [
    "ShapeMixin",
    "chunk",
    "expand",
    "flatten",
    "permute",
    "reduce_dim",
    "reshape",
    "shape_arg",
    "split",
    "squeeze",
    "transpose",
    "unbind",
    "unflatten",
    "unsqueeze",
]


def shape_arg(args: tuple[Any, ...]) -> tuple[int, ...]:
    """Accept both ``f(2, 3)`` and ``f((2, 3))`` / ``f(torch.Size([2, 3]))``."""
    if len(args) == 1 and not isinstance(args[0], int):
        return tuple(int(a) for a in args[0])
    return tuple(int(a) for a in args)


def _dim(dim: int, ndim: int, op: str, extra: int = 0) -> int:
    """Normalise ``dim`` against ``ndim`` batch dims (``extra`` = 1 for insertion points)."""
    size = ndim + extra
    if not -size <= dim < size:
        raise TensorDictIndexError(
            f"{op}: dim {dim} is out of range for a TensorDict with {ndim} batch dims "
            f"(valid: {-size}..{size - 1})"
        )
    return dim + size if dim < 0 else dim


def _map(td: TensorDict, fn: Callable[[Tensor], Tensor], nd: int, new_bs: torch.Size) -> TensorDict:
    """Apply ``fn`` to every leaf; nested TensorDicts keep their extra batch dims."""
    source: dict[str, Any] = {}
    for key, value in td._tensordict.items():
        if isinstance(value, _td.TensorDict):
            source[key] = _map(value, fn, nd, new_bs + value._batch_size[len(td._batch_size) :])
        else:
            source[key] = fn(value)
    return _td.TensorDict._new_unsafe(source, new_bs, td._device)


def _pieces(
    td: TensorDict, fn: Callable[[Tensor], Sequence[Tensor]], nd: int, bss: list[torch.Size]
) -> list[TensorDict]:
    """Apply a splitting ``fn`` to every leaf and regroup the pieces into TensorDicts."""
    sources: list[dict[str, Any]] = [{} for _ in bss]
    for key, value in td._tensordict.items():
        if isinstance(value, _td.TensorDict):
            extra = value._batch_size[len(td._batch_size) :]
            parts: Sequence[Any] = _pieces(value, fn, nd, [bs + extra for bs in bss])
        else:
            parts = fn(value)
        for source, part in zip(sources, parts):
            source[key] = part
    return [_td.TensorDict._new_unsafe(s, bs, td._device) for s, bs in zip(sources, bss)]


def _infer(shape: Sequence[int], numel: int, op: str, old: Sequence[int]) -> torch.Size:
    shape = list(shape)
    unknown = [i for i, s in enumerate(shape) if s == -1]
    if len(unknown) > 1:
        raise TensorDictValueError(f"{op}: only one dim can be -1, got {tuple(shape)}")
    known = math.prod(s for s in shape if s != -1)
    if unknown:
        if known == 0 or numel % known:
            raise TensorDictValueError(
                f"{op}: batch_size {tuple(old)} cannot become {tuple(shape)}"
            )
        shape[unknown[0]] = numel // known
    elif known != numel:
        raise TensorDictValueError(
            f"{op}: batch_size {tuple(old)} ({numel} elements) cannot become {tuple(shape)}"
        )
    return torch.Size(shape)


def reshape(td: TensorDict, shape: tuple[int, ...], view: bool) -> TensorDict:
    bs = td._batch_size
    nd = len(bs)
    new_bs = _infer(shape, bs.numel(), "view" if view else "reshape", bs)
    if view:
        return _map(td, lambda x: x.view(new_bs + x.shape[nd:]), nd, new_bs)
    return _map(td, lambda x: x.reshape(new_bs + x.shape[nd:]), nd, new_bs)


def flatten(td: TensorDict, start_dim: int, end_dim: int) -> TensorDict:
    bs = td._batch_size
    nd = len(bs)
    if nd == 0:
        raise TensorDictIndexError("flatten: the TensorDict has no batch dims")
    s = _dim(start_dim, nd, "flatten")
    e = _dim(end_dim, nd, "flatten")
    if s > e:
        raise TensorDictIndexError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    new_bs = bs[:s] + torch.Size((math.prod(bs[s : e + 1]),)) + bs[e + 1 :]
    return _map(td, lambda x: x.flatten(s, e), nd, new_bs)


def unflatten(td: TensorDict, dim: int, sizes: Sequence[int]) -> TensorDict:
    bs = td._batch_size
    nd = len(bs)
    d = _dim(dim, nd, "unflatten")
    inner = _infer(sizes, bs[d], "unflatten", (bs[d],))
    new_bs = bs[:d] + inner + bs[d + 1 :]
    return _map(td, lambda x: x.unflatten(d, inner), nd, new_bs)


def unsqueeze(td: TensorDict, dim: int) -> TensorDict:
    bs = td._batch_size
    nd = len(bs)
    d = _dim(dim, nd, "unsqueeze", extra=1)
    new_bs = bs[:d] + torch.Size((1,)) + bs[d:]
    return _map(td, lambda x: x.unsqueeze(d), nd, new_bs)


def squeeze(td: TensorDict, dim: int | None) -> TensorDict:
    bs = td._batch_size
    nd = len(bs)
    if dim is None:
        dims = tuple(i for i, s in enumerate(bs) if s == 1)
    else:
        d = _dim(dim, nd, "squeeze")
        dims = (d,) if bs[d] == 1 else ()
    if not dims:
        return td.clone(recurse=False)
    new_bs = torch.Size(s for i, s in enumerate(bs) if i not in dims)
    return _map(td, lambda x: x.squeeze(dims), nd, new_bs)


def permute(td: TensorDict, dims: tuple[int, ...]) -> TensorDict:
    bs = td._batch_size
    nd = len(bs)
    norm = tuple(_dim(d, nd, "permute") for d in dims)
    if sorted(norm) != list(range(nd)):
        raise TensorDictValueError(
            f"permute: dims {dims} are not a permutation of the {nd} batch dims"
        )
    new_bs = torch.Size(bs[d] for d in norm)
    return _map(td, lambda x: x.permute((*norm, *range(nd, x.ndim))), nd, new_bs)


def transpose(td: TensorDict, dim0: int, dim1: int) -> TensorDict:
    bs = td._batch_size
    nd = len(bs)
    d0 = _dim(dim0, nd, "transpose")
    d1 = _dim(dim1, nd, "transpose")
    new = list(bs)
    new[d0], new[d1] = new[d1], new[d0]
    return _map(td, lambda x: x.transpose(d0, d1), nd, torch.Size(new))


def expand(td: TensorDict, shape: tuple[int, ...]) -> TensorDict:
    bs = td._batch_size
    nd = len(bs)
    if len(shape) < nd:
        raise TensorDictValueError(
            f"expand: the new shape {shape} has fewer dims than batch_size {tuple(bs)}"
        )
    lead = len(shape) - nd
    new = list(shape)
    for i, old in enumerate(bs):
        want = shape[lead + i]
        if want == -1:
            new[lead + i] = old
        elif old != want and old != 1:
            raise TensorDictValueError(
                f"expand: batch_size {tuple(bs)} cannot expand to {shape} "
                f"(dim {i} has size {old}, not 1 or {want})"
            )
    if any(s < 0 for s in new[:lead]):
        raise TensorDictValueError(f"expand: -1 is not allowed for the new leading dims of {shape}")
    new_bs = torch.Size(new)
    return _map(td, lambda x: x.expand(new_bs + x.shape[nd:]), nd, new_bs)


def _split_sizes(n: int, split_size: int | Sequence[int], op: str) -> list[int]:
    if isinstance(split_size, int):
        if split_size <= 0:
            raise TensorDictValueError(f"{op}: split_size must be positive, got {split_size}")
        sizes = [split_size] * (n // split_size)
        if n % split_size or not sizes:
            sizes.append(n % split_size)
        return sizes
    sizes = [int(s) for s in split_size]
    if sum(sizes) != n:
        raise TensorDictValueError(f"{op}: sizes {sizes} do not add up to the dim size {n}")
    return sizes


def split(td: TensorDict, split_size: int | Sequence[int], dim: int) -> tuple[TensorDict, ...]:
    bs = td._batch_size
    nd = len(bs)
    d = _dim(dim, nd, "split")
    sizes = _split_sizes(bs[d], split_size, "split")
    bss = [bs[:d] + torch.Size((s,)) + bs[d + 1 :] for s in sizes]
    return tuple(_pieces(td, lambda x: x.split(sizes, d), nd, bss))


def chunk(td: TensorDict, chunks: int, dim: int) -> tuple[TensorDict, ...]:
    if chunks <= 0:
        raise TensorDictValueError(f"chunk: chunks must be positive, got {chunks}")
    d = _dim(dim, len(td._batch_size), "chunk")
    n = td._batch_size[d]
    if n == 0:  # like torch.chunk: ``chunks`` empty pieces
        return split(td, [0] * chunks, d)
    return split(td, math.ceil(n / chunks), d)


def unbind(td: TensorDict, dim: int) -> tuple[TensorDict, ...]:
    bs = td._batch_size
    nd = len(bs)
    d = _dim(dim, nd, "unbind")
    new_bs = bs[:d] + bs[d + 1 :]
    return tuple(_pieces(td, lambda x: x.unbind(d), nd, [new_bs] * bs[d]))


def reduce_dim(td: TensorDict, dim: int, fn: Callable[..., Tensor]) -> TensorDict:
    bs = td._batch_size
    nd = len(bs)
    d = _dim(dim, nd, fn.__name__)
    return _map(td, lambda x: fn(x, dim=d), nd, bs[:d] + bs[d + 1 :])


class ShapeMixin:
    """Shape operations on the batch dims of ``TensorDict`` (feature dims are kept)."""

    __slots__ = ()

    def reshape(self: TensorDict, *shape: Any) -> TensorDict:
        """Reshape the batch dims (``-1`` infers one dim); feature dims are kept."""
        return reshape(self, shape_arg(shape), view=False)

    def view(self: TensorDict, *shape: Any) -> TensorDict:
        """Like ``reshape`` but every leaf must be viewable (no copy)."""
        return reshape(self, shape_arg(shape), view=True)

    def flatten(self: TensorDict, start_dim: int = 0, end_dim: int = -1) -> TensorDict:
        """Merge batch dims ``start_dim..end_dim`` into one."""
        return flatten(self, start_dim, end_dim)

    def unflatten(self: TensorDict, dim: int, sizes: Sequence[int]) -> TensorDict:
        """Split batch dim ``dim`` into ``sizes``."""
        return unflatten(self, dim, sizes)

    def unsqueeze(self: TensorDict, dim: int) -> TensorDict:
        """Insert a batch dim of size one at ``dim``."""
        return unsqueeze(self, dim)

    def squeeze(self: TensorDict, dim: int | None = None) -> TensorDict:
        """Remove batch dims of size one (all, or only ``dim``)."""
        return squeeze(self, dim)

    def permute(self: TensorDict, *dims: Any) -> TensorDict:
        """Permute the batch dims."""
        return permute(self, shape_arg(dims))

    def transpose(self: TensorDict, dim0: int, dim1: int) -> TensorDict:
        """Swap two batch dims."""
        return transpose(self, dim0, dim1)

    def expand(self: TensorDict, *shape: Any) -> TensorDict:
        """Expand (broadcast, without copy) to a new batch shape; ``-1`` keeps a dim."""
        return expand(self, shape_arg(shape))

    def split(
        self: TensorDict, split_size: int | Sequence[int], dim: int = 0
    ) -> tuple[TensorDict, ...]:
        """Split along batch dim ``dim`` like ``torch.split``."""
        return split(self, split_size, dim)

    def chunk(self: TensorDict, chunks: int, dim: int = 0) -> tuple[TensorDict, ...]:
        """Split into ``chunks`` pieces along batch dim ``dim`` like ``torch.chunk``."""
        return chunk(self, chunks, dim)

    def unbind(self: TensorDict, dim: int = 0) -> tuple[TensorDict, ...]:
        """The slices along batch dim ``dim``, like ``torch.unbind``."""
        return unbind(self, dim)
