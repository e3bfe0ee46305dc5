"""Reductions (TorchRL's ``td.mean()``, ``td.sum(dim=...)``...), ``setdefault`` and ``to_tensordict``."""

from __future__ import annotations

import pytest
import torch

from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import TensorDictIndexError
from rlbricks.tensordict import TensorDictValueError

OPS = ["sum", "mean", "nansum", "nanmean", "std", "var", "prod"]


def _td() -> TensorDict:
    gen = torch.Generator().manual_seed(0)
    return TensorDict(
        {"a": torch.rand(3, 4, 5, generator=gen), "n": {"b": torch.rand(3, 4, 2, generator=gen)}},
        [3, 4],
    )


def _torch(name: str, x: torch.Tensor, dims: tuple[int, ...] | None, keepdim: bool) -> torch.Tensor:
    if name == "prod":
        if dims is None:
            return x.prod()
        for d in sorted(dims, reverse=True):
            x = x.prod(d, keepdim=keepdim)
        return x
    fn = getattr(torch, name)
    return fn(x) if dims is None else fn(x, dim=dims, keepdim=keepdim)


@pytest.mark.parametrize("name", OPS)
@pytest.mark.parametrize(
    ("dim", "keepdim", "batch"),
    [
        (None, False, []),
        (0, False, [4]),
        (-1, True, [3, 1]),
        ((0, 1), False, []),
        ((1, 0), True, [1, 1]),
    ],
)
def test_each_leaf_is_reduced_as_torch_does(
    name: str, dim, keepdim: bool, batch: list[int]
) -> None:
    td = _td()
    out = getattr(td, name)(dim=dim, keepdim=keepdim)
    assert out.batch_size == torch.Size(batch)
    dims = None if dim is None else tuple(d % 2 for d in ((dim,) if isinstance(dim, int) else dim))
    for key in ("a", ("n", "b")):
        want = _torch(name, td[key], dims, keepdim)
        torch.testing.assert_close(out[key], want)


@pytest.mark.parametrize("name", OPS)
def test_reduce_true_gives_one_tensor_over_every_leaf(name: str) -> None:
    td = _td()
    flat = torch.cat([td["a"].reshape(-1), td["n", "b"].reshape(-1)])
    torch.testing.assert_close(getattr(td, name)(reduce=True), _torch(name, flat, None, False))


def test_bad_dims_and_reduce_name_the_fix() -> None:
    td = _td()
    with pytest.raises(TensorDictIndexError, match="out of range"):
        td.mean(dim=2)
    with pytest.raises(TensorDictValueError, match="leave dim=None"):
        td.sum(dim=0, reduce=True)
    with pytest.raises(TensorDictValueError, match="twice"):
        td.sum(dim=(0, -2))
    with pytest.raises(TensorDictValueError, match="no leaf"):
        TensorDict({}, [2]).sum(reduce=True)


def test_setdefault_sets_only_when_missing_and_follows_nested_keys() -> None:
    td = _td()
    first = td.setdefault(("n", "c"), torch.ones(3, 4))
    again = td.setdefault(("n", "c"), torch.zeros(3, 4))
    assert torch.equal(first, torch.ones(3, 4))
    assert torch.equal(again, torch.ones(3, 4))
    assert td.setdefault("a", torch.zeros(3, 4, 5)) is td["a"]


def test_to_tensordict_copies_every_leaf() -> None:
    td = _td()
    copy = td.to_tensordict()
    assert isinstance(copy, TensorDict)
    assert copy.batch_size == td.batch_size
    copy["n", "b"] += 1
    assert not torch.equal(copy["n", "b"], td["n", "b"])
