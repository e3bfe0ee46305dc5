"""Shape operations on the batch dims, checked against naive element-by-element references."""

from __future__ import annotations

import itertools

import pytest
import torch

from rlbricks.tensordict import TensorDict

BS = (2, 3, 4)


def make_td(bs=BS) -> TensorDict:
    n = torch.Size(bs).numel()
    return TensorDict(
        {
            "a": torch.arange(n, dtype=torch.float32).reshape(bs),
            "f": torch.arange(n * 5).reshape(*bs, 5),
            "n": {"b": torch.arange(n * 2).reshape(*bs, 2, 1).bool()},
            "x": TensorDict({"t": torch.arange(n * 6).reshape(*bs, 3, 2)}, batch_size=[*bs, 3]),
        },
        batch_size=bs,
    )


def leaves(td: TensorDict) -> dict:
    return dict(td.items(include_nested=True, leaves_only=True))


def batch_indices(bs):
    return itertools.product(*(range(s) for s in bs))


def check_structure(out: TensorDict, bs) -> None:
    bs = torch.Size(bs)
    assert out.batch_size == bs
    assert out["n"].batch_size == bs
    assert out["x"].batch_size == bs + (3,)
    assert out["a"].shape == bs
    assert out["f"].shape == bs + (5,)
    assert out["n", "b"].shape == bs + (2, 1)
    assert out["x", "t"].shape == bs + (3, 2)


# --------------------------------------------------------------------------- #
# reshape / view / flatten / unflatten
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ((24,), (24,)),
        ((-1,), (24,)),
        ((6, 4), (6, 4)),
        ((4, -1), (4, 6)),
        ((2, 3, 2, 2), (2, 3, 2, 2)),
    ],
)
@pytest.mark.parametrize("method", ["reshape", "view"])
def test_reshape_view_golden(shape, expected, method):
    td = make_td()
    out = getattr(td, method)(*shape)
    check_structure(out, expected)
    # naive reference: the row-major order of batch elements is preserved
    flat_in = [td[i] for i in batch_indices(BS)]
    flat_out = [out[i] for i in batch_indices(expected)]
    for a, b in zip(flat_in, flat_out):
        for key, leaf in leaves(a).items():
            assert torch.equal(b[key], leaf), key
    assert getattr(td, method)(torch.Size(shape)).batch_size == torch.Size(expected)
    assert getattr(td, method)(list(shape)).batch_size == torch.Size(expected)


def test_view_shares_storage_and_fails_on_non_contiguous():
    td = make_td()
    out = td.view(-1)
    out["a"][0] = 100.0
    assert td["a"][0, 0, 0] == 100.0
    with pytest.raises(RuntimeError):
        td.permute(2, 1, 0).view(-1)
    assert td.permute(2, 1, 0).reshape(-1).batch_size == torch.Size([24])


@pytest.mark.parametrize("shape", [(5,), (7, -1), (0, -1)])
def test_reshape_errors(shape):
    with pytest.raises(ValueError, match=r"\(2, 3, 4\)"):
        make_td().reshape(*shape)


def test_reshape_two_unknown_dims():
    with pytest.raises(ValueError, match="only one dim can be -1"):
        make_td().reshape(-1, -1)


def test_reshape_empty_and_scalar_batch():
    td = make_td((0, 3))
    assert td.reshape(-1).batch_size == torch.Size([0])
    assert td.reshape(3, 0).batch_size == torch.Size([3, 0])
    scalar = TensorDict({"a": torch.zeros(5)})
    assert scalar.reshape(1, 1).batch_size == torch.Size([1, 1])
    assert scalar.reshape(1, 1)["a"].shape == (1, 1, 5)
    assert scalar.unsqueeze(0).reshape(()).batch_size == torch.Size([])


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [(0, -1, (24,)), (0, 1, (6, 4)), (1, 2, (2, 12)), (-2, -1, (2, 12)), (1, 1, BS)],
)
def test_flatten(start, end, expected):
    td = make_td()
    out = td.flatten(start, end)
    check_structure(out, expected)
    for key, leaf in leaves(td).items():
        assert torch.equal(out[key], leaf.reshape(*expected, *leaf.shape[3:])), key


def test_flatten_errors():
    with pytest.raises(IndexError, match="flatten"):
        make_td().flatten(2, 1)
    with pytest.raises(IndexError, match="out of range"):
        make_td().flatten(0, 3)
    with pytest.raises(IndexError, match="no batch dims"):
        TensorDict().flatten()


@pytest.mark.parametrize(
    ("dim", "sizes", "expected"),
    [
        (2, (2, 2), (2, 3, 2, 2)),
        (-1, (4, 1), (2, 3, 4, 1)),
        (1, (-1,), BS),
        (0, (1, 2), (1, 2, 3, 4)),
    ],
)
def test_unflatten(dim, sizes, expected):
    td = make_td()
    out = td.unflatten(dim, sizes)
    check_structure(out, expected)
    for key, leaf in leaves(td).items():
        assert torch.equal(out[key], leaf.reshape(*expected, *leaf.shape[3:])), key
    back = out.flatten(dim % 3, dim % 3 + len(out.batch_size) - 3)
    assert back.batch_size == td.batch_size


def test_unflatten_error():
    with pytest.raises(ValueError, match="unflatten"):
        make_td().unflatten(2, (3, 2))


# --------------------------------------------------------------------------- #
# unsqueeze / squeeze
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("dim", [0, 1, 3, -1, -4, -2])
def test_unsqueeze(dim):
    td = make_td()
    out = td.unsqueeze(dim)
    d = dim if dim >= 0 else len(BS) + 1 + dim
    expected = list(BS)
    expected.insert(d, 1)
    check_structure(out, expected)
    for key, leaf in leaves(td).items():
        assert torch.equal(out[key], leaf.unsqueeze(d)), key
    assert out.squeeze(dim).batch_size == td.batch_size


@pytest.mark.parametrize("dim", [4, -5])
def test_unsqueeze_out_of_range(dim):
    with pytest.raises(IndexError, match="unsqueeze"):
        make_td().unsqueeze(dim)


def test_squeeze_all_and_dim():
    td = make_td((1, 3, 1))
    check_structure(td.squeeze(), (3,))
    check_structure(td.squeeze(0), (3, 1))
    check_structure(td.squeeze(-1), (1, 3))
    check_structure(td.squeeze(1), (1, 3, 1))  # not size one: unchanged
    # feature dims of size one are never squeezed
    assert td.squeeze()["n", "b"].shape == (3, 2, 1)
    with pytest.raises(IndexError, match="squeeze"):
        td.squeeze(3)


def test_squeeze_without_size_one_is_shallow_copy():
    td = make_td()
    out = td.squeeze()
    assert out is not td
    assert out["a"] is td["a"]


# --------------------------------------------------------------------------- #
# permute / transpose
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("dims", list(itertools.permutations(range(3))) + [(-1, 0, 1)])
def test_permute_golden(dims):
    td = make_td()
    out = td.permute(*dims)
    norm = [d % 3 for d in dims]
    check_structure(out, [BS[d] for d in norm])
    for idx in batch_indices(BS):
        new_idx = tuple(idx[d] for d in norm)
        for key, leaf in leaves(td).items():
            assert torch.equal(out[key][new_idx], leaf[idx]), key
    assert td.permute(dims).batch_size == out.batch_size


@pytest.mark.parametrize("dims", [(0, 0, 1), (0, 1), (0, 1, 3), (0, 1, 2, 3)])
def test_permute_errors(dims):
    with pytest.raises((ValueError, IndexError), match="permute"):
        make_td().permute(*dims)


@pytest.mark.parametrize(("d0", "d1"), [(0, 1), (0, 2), (-1, 0), (1, 1)])
def test_transpose(d0, d1):
    td = make_td()
    out = td.transpose(d0, d1)
    expected = list(BS)
    expected[d0], expected[d1] = expected[d1], expected[d0]
    check_structure(out, expected)
    for key, leaf in leaves(td).items():
        assert torch.equal(out[key], leaf.transpose(d0 % 3, d1 % 3)), key


def test_transpose_error():
    with pytest.raises(IndexError, match="transpose"):
        make_td().transpose(0, 3)


# --------------------------------------------------------------------------- #
# expand
# --------------------------------------------------------------------------- #
def test_expand_new_leading_dims():
    td = make_td()
    out = td.expand(5, *BS)
    check_structure(out, (5, *BS))
    for i in range(5):
        for key, leaf in leaves(td).items():
            assert torch.equal(out[key][i], leaf), key
    assert td.expand(torch.Size([5, *BS])).batch_size == out.batch_size
    assert td.expand(5, -1, 3, -1).batch_size == out.batch_size


def test_expand_size_one_dims():
    td = make_td((2, 1, 4))
    out = td.expand(2, 3, 4)
    check_structure(out, (2, 3, 4))
    for j in range(3):
        assert torch.equal(out["f"][:, j], td["f"][:, 0])
    assert out["a"].data_ptr() == td["a"].data_ptr()  # no copy


@pytest.mark.parametrize("shape", [(3,), (2, 5, 4), (-1, 2, 3, 4), (3, 3, 4)])
def test_expand_errors(shape):
    with pytest.raises(ValueError, match="expand"):
        make_td().expand(*shape)


# --------------------------------------------------------------------------- #
# split / chunk / unbind
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    ("split", "dim", "sizes"),
    [
        (2, 2, [2, 2]),
        (3, 2, [3, 1]),
        (5, 2, [4]),
        ([1, 3], -1, [1, 3]),
        (1, 0, [1, 1]),
        ([0, 3], 1, [0, 3]),
    ],
)
def test_split(split, dim, sizes):
    td = make_td()
    parts = td.split(split, dim)
    assert [p.batch_size[dim] for p in parts] == sizes
    for key, leaf in leaves(td).items():
        expected = leaf.split(sizes, dim % 3)
        for part, exp in zip(parts, expected):
            assert torch.equal(part[key], exp), key
    for part in parts:
        assert part["x"].batch_size == part.batch_size + (3,)


def test_split_errors():
    with pytest.raises(ValueError, match="add up"):
        make_td().split([1, 1], 2)
    with pytest.raises(ValueError, match="positive"):
        make_td().split(0, 2)
    with pytest.raises(IndexError, match="split"):
        make_td().split(1, 3)


@pytest.mark.parametrize(("n", "chunks"), [(4, 2), (4, 3), (5, 3), (6, 4), (4, 8), (1, 1), (0, 3)])
def test_chunk_matches_torch(n, chunks):
    td = make_td((n, 2))
    parts = td.chunk(chunks)
    expected = td["a"].chunk(chunks)
    assert [p.batch_size for p in parts] == [e.shape for e in expected]
    for part, exp in zip(parts, expected):
        assert torch.equal(part["a"], exp)


def test_chunk_error():
    with pytest.raises(ValueError, match="chunk"):
        make_td().chunk(0)


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_unbind(dim):
    td = make_td()
    parts = td.unbind(dim)
    assert len(parts) == BS[dim]
    expected_bs = list(BS)
    del expected_bs[dim]
    for i, part in enumerate(parts):
        check_structure(part, expected_bs)
        for key, leaf in leaves(td).items():
            assert torch.equal(part[key], leaf.select(dim % 3, i)), key


def test_unbind_size_zero_and_errors():
    assert make_td((0, 2)).unbind(0) == ()
    with pytest.raises(IndexError, match="unbind"):
        make_td().unbind(3)
    with pytest.raises(IndexError):
        TensorDict().unbind(0)


# --------------------------------------------------------------------------- #
# torch functions route to the shape ops
# --------------------------------------------------------------------------- #
def test_torch_shape_functions():
    td = make_td()
    assert torch.reshape(td, (6, 4)).batch_size == torch.Size([6, 4])
    assert torch.flatten(td).batch_size == torch.Size([24])
    assert torch.flatten(td, 1).batch_size == torch.Size([2, 12])
    assert torch.unflatten(td, 2, (2, 2)).batch_size == torch.Size([2, 3, 2, 2])
    assert torch.permute(td, (2, 0, 1)).batch_size == torch.Size([4, 2, 3])
    assert torch.transpose(td, 0, 2).batch_size == torch.Size([4, 3, 2])
    assert torch.unsqueeze(td, 1).batch_size == torch.Size([2, 1, 3, 4])
    assert torch.squeeze(td.unsqueeze(0)).batch_size == torch.Size(BS)
    assert torch.squeeze(td.unsqueeze(0), 0).batch_size == torch.Size(BS)
    assert len(torch.unbind(td, 1)) == 3
    assert [p.batch_size[2] for p in torch.split(td, 3, dim=2)] == [3, 1]
    assert [p.batch_size[0] for p in torch.split(td, [1, 1])] == [1, 1]
    assert len(torch.chunk(td, 2, dim=2)) == 2


# --------------------------------------------------------------------------- #
# nested TensorDicts inside nested TensorDicts, each with its own extra batch dims
# --------------------------------------------------------------------------- #
def make_deep() -> TensorDict:
    inner = TensorDict({"x": torch.arange(4 * 2 * 3 * 5).reshape(4, 2, 3, 5)}, [4, 2, 3])
    mid = TensorDict({"inner": inner, "y": torch.zeros(4, 2, 7)}, [4, 2])
    return TensorDict({"mid": mid, "a": torch.zeros(4)}, [4])


def extra_dims(td: TensorDict) -> dict:
    """For each nested TensorDict, how many batch dims it adds to its parent's."""
    out = {}
    for key, value in td.items(include_nested=True):
        if isinstance(value, TensorDict):
            parent = td if isinstance(key, str) or len(key) == 1 else td[key[:-1]]
            out[key] = value.batch_dims - parent.batch_dims
    return out


def assert_consistent(td: TensorDict) -> None:
    """Every value's leading dims equal its parent's batch_size, at every level."""
    for key, value in td.items(include_nested=True):
        parent = td if isinstance(key, str) else td[key[:-1]]
        shape = value.batch_size if isinstance(value, TensorDict) else value.shape
        assert shape[: parent.batch_dims] == parent.batch_size, (key, shape, parent.batch_size)


DEEP_OPS = {
    "unsqueeze": lambda t: t.unsqueeze(0),
    "squeeze": lambda t: t.unsqueeze(1).squeeze(1),
    "reshape": lambda t: t.reshape(2, 2),
    "view": lambda t: t.view(2, 2),
    "flatten": lambda t: t.unsqueeze(0).flatten(),
    "unflatten": lambda t: t.unflatten(0, (2, 2)),
    "permute": lambda t: t.unsqueeze(1).permute(1, 0),
    "transpose": lambda t: t.unsqueeze(1).transpose(0, 1),
    "expand": lambda t: t.expand(3, 4),
    "split": lambda t: t.split(3)[0],
    "chunk": lambda t: t.chunk(2)[1],
    "unbind": lambda t: t.unbind(0)[2],
    "all": lambda t: t.bool().all(0),
    "index-int": lambda t: t[1],
    "index-slice": lambda t: t[1:3],
    "index-mask": lambda t: t[torch.tensor([True, False, True, True])],
    "apply": lambda t: t.apply(lambda x: x + 1),
    "clone": lambda t: t.clone(),
}


@pytest.mark.parametrize("op", list(DEEP_OPS.values()), ids=list(DEEP_OPS))
def test_doubly_nested_batch_sizes_stay_consistent(op):
    td = make_deep()
    out = op(td)
    assert_consistent(out)
    assert extra_dims(out) == extra_dims(td) == {"mid": 1, ("mid", "inner"): 1}


def test_permute_zero_batch_dims_with_scalar_leaf():
    td = TensorDict({"a": torch.tensor(1.0), "b": torch.zeros(3)})
    out = td.permute()
    assert out.batch_size == torch.Size([])
    assert torch.equal(out["a"], td["a"])
    assert torch.equal(out["b"], td["b"])
