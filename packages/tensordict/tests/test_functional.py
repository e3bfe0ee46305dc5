"""stack / cat / where over TensorDicts, through our functions and through torch.*, and the
``*_like`` torch functions."""

from __future__ import annotations

import pytest
import torch

from rlbricks.tensordict import BatchSizeError
from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import TensorDictKeyError
from rlbricks.tensordict import cat
from rlbricks.tensordict import stack
from rlbricks.tensordict import where

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def make_td(bs=(3, 2), seed=0) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    return TensorDict(
        {
            "obs": torch.randn(*bs, 4, generator=g),
            "act": torch.randint(0, 5, bs, generator=g),
            "next": {"done": torch.randint(0, 2, (*bs, 1), generator=g).bool()},
            "traj": TensorDict({"t": torch.randn(*bs, 2, 3, generator=g)}, batch_size=[*bs, 2]),
        },
        batch_size=bs,
    )


def leaves(td: TensorDict) -> dict:
    return dict(td.items(include_nested=True, leaves_only=True))


STACK_FNS = {"ours": stack, "torch": torch.stack}
CAT_FNS = {
    "ours": cat,
    "torch": torch.cat,
    "concat": torch.concat,
    "concatenate": torch.concatenate,
}


# --------------------------------------------------------------------------- #
# stack
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("fn", list(STACK_FNS.values()), ids=list(STACK_FNS))
@pytest.mark.parametrize("dim", [0, 1, 2, -1, -3])
def test_stack_golden(fn, dim):
    tds = [make_td(seed=i) for i in range(4)]
    out = fn(tds, dim)
    d = dim % 3
    expected_bs = [3, 2]
    expected_bs.insert(d, 4)
    assert out.batch_size == torch.Size(expected_bs)
    assert out["traj"].batch_size == torch.Size([*expected_bs, 2])
    assert out["next"].batch_size == torch.Size(expected_bs)
    for key in leaves(tds[0]):
        assert torch.equal(out[key], torch.stack([td[key] for td in tds], d)), key
    # naive reference: selecting the i-th entry along the new dim gives back td i
    for i, td in enumerate(tds):
        back = out[(slice(None),) * d + (i,)]
        for key, leaf in leaves(td).items():
            assert torch.equal(back[key], leaf), key


def test_stack_keyword_dim():
    tds = [make_td(seed=i) for i in range(2)]
    assert torch.stack(tds, dim=1).batch_size == torch.Size([3, 2, 2])
    assert stack(tds, dim=-1).batch_size == torch.Size([3, 2, 2])
    assert torch.stack(tuple(tds)).batch_size == torch.Size([2, 3, 2])


def test_stack_zero_dim_tds():
    tds = [TensorDict({"a": torch.tensor(float(i)), "n": {"b": torch.ones(2)}}) for i in range(3)]
    out = stack(tds)
    assert out.batch_size == torch.Size([3])
    assert torch.equal(out["a"], torch.tensor([0.0, 1.0, 2.0]))
    assert out["n", "b"].shape == (3, 2)


@pytest.mark.parametrize("fn", list(STACK_FNS.values()), ids=list(STACK_FNS))
def test_stack_out(fn):
    tds = [make_td(seed=i) for i in range(2)]
    out = torch.zeros_like(stack(tds))
    ptrs = {k: v.data_ptr() for k, v in leaves(out).items()}
    res = fn(tds, 0, out=out)
    assert res is out
    for key, ptr in ptrs.items():
        assert out[key].data_ptr() == ptr, key  # written in place, no allocation
        assert torch.equal(out[key], torch.stack([td[key] for td in tds])), key


def test_stack_out_wrong_batch_size():
    tds = [make_td(seed=i) for i in range(2)]
    with pytest.raises(BatchSizeError, match=r"out has batch_size \(3, 2\), expected \(2, 3, 2\)"):
        stack(tds, out=make_td())


def test_stack_key_mismatch():
    a, b = make_td(), make_td().exclude("act")
    with pytest.raises(TensorDictKeyError) as info:
        stack([a, b])
    assert "'act'" in str(info.value)
    with pytest.raises(TensorDictKeyError):
        torch.stack([a, b])


def test_stack_nested_key_mismatch():
    a, b = make_td(), make_td()
    b["next", "extra"] = torch.zeros(3, 2)
    with pytest.raises(TensorDictKeyError, match="'extra'"):
        stack([a, b])


def test_stack_batch_mismatch():
    with pytest.raises(BatchSizeError) as info:
        stack([make_td(), make_td((3, 3))])
    msg = str(info.value)
    assert "(3, 3)" in msg
    assert "(3, 2)" in msg


def test_stack_nested_batch_mismatch():
    # same leaf shapes, different nested batch sizes: the result would be ambiguous
    a, b = make_td(), make_td()
    b["traj"] = TensorDict({"t": torch.zeros(3, 2, 2, 3)}, batch_size=[3, 2])
    with pytest.raises(BatchSizeError, match="'traj'"):
        stack([a, b])
    with pytest.raises(BatchSizeError, match="'traj'"):
        stack([b, a])


def test_stack_leaf_shape_mismatch_names_key():
    a, b = make_td(), make_td()
    b["obs"] = torch.zeros(3, 2, 5)
    with pytest.raises((RuntimeError, ValueError)) as info:
        stack([a, b])
    assert "'obs'" in str(info.value)


def test_stack_errors():
    with pytest.raises(ValueError, match="non-empty"):
        stack([])
    with pytest.raises(TypeError, match="element 1"):
        stack([make_td(), {"obs": torch.zeros(3, 2, 4)}])
    with pytest.raises(IndexError, match="stack"):
        stack([make_td(), make_td()], 3)


# --------------------------------------------------------------------------- #
# cat
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("fn", list(CAT_FNS.values()), ids=list(CAT_FNS))
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat_golden(fn, dim):
    d = dim % 2
    shapes = [(3, 2), (3, 2), (3, 2)]
    shapes = [
        tuple(s if i != d else s + k for i, s in enumerate(shape)) for k, shape in enumerate(shapes)
    ]
    tds = [make_td(s, seed=i) for i, s in enumerate(shapes)]
    out = fn(tds, dim)
    total = sum(s[d] for s in shapes)
    expected_bs = list(shapes[0])
    expected_bs[d] = total
    assert out.batch_size == torch.Size(expected_bs)
    assert out["traj"].batch_size == torch.Size([*expected_bs, 2])
    for key in leaves(tds[0]):
        assert torch.equal(out[key], torch.cat([td[key] for td in tds], d)), key
    # split back gives the originals
    for part, td in zip(out.split([s[d] for s in shapes], d), tds):
        for key, leaf in leaves(td).items():
            assert torch.equal(part[key], leaf), key


def test_cat_single_and_keyword_dim():
    td = make_td()
    out = torch.cat([td], dim=1)
    assert out.batch_size == td.batch_size
    assert torch.cat([td, td], dim=1).batch_size == torch.Size([3, 4])


def test_cat_errors():
    with pytest.raises(BatchSizeError, match="empty batch_size"):
        cat([TensorDict(), TensorDict()])
    with pytest.raises(BatchSizeError, match=r"\(4, 3\)"):
        cat([make_td(), make_td((4, 3))])
    with pytest.raises(BatchSizeError):
        cat([make_td(), make_td((3,))])
    with pytest.raises(TensorDictKeyError, match="'obs'"):
        torch.cat([make_td(), make_td().exclude("obs")])
    b = make_td()
    b["next", "extra"] = torch.zeros(3, 2)
    with pytest.raises(TensorDictKeyError, match="'extra'"):
        cat([make_td(), b])
    with pytest.raises(ValueError, match="non-empty"):
        cat([])
    with pytest.raises(IndexError, match="cat"):
        cat([make_td(), make_td()], 2)


# --------------------------------------------------------------------------- #
# where
# --------------------------------------------------------------------------- #
def naive_where(cond: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    out = b.clone()
    for i in range(cond.shape[0]):
        for j in range(cond.shape[1]):
            if cond[i, j]:
                out[i, j] = a[i, j]
    return out


COND = torch.tensor([[True, False], [False, False], [True, True]])


@pytest.mark.parametrize("fn", [where, torch.where], ids=["ours", "torch"])
def test_where_two_tensordicts(fn):
    a, b = make_td(seed=0), make_td(seed=1)
    out = fn(COND, a, b)
    assert out.batch_size == a.batch_size
    assert out["traj"].batch_size == a["traj"].batch_size
    for key, leaf in leaves(a).items():
        assert torch.equal(out[key], naive_where(COND, leaf, b[key])), key


@pytest.mark.parametrize("fn", [where, torch.where], ids=["ours", "torch"])
def test_where_scalar_other_and_input(fn):
    a = make_td()
    out = fn(COND, a, 0)
    for key, leaf in leaves(a).items():
        assert torch.equal(out[key], naive_where(COND, leaf, torch.zeros_like(leaf))), key
    out = fn(COND, 1, a)
    for key, leaf in leaves(a).items():
        assert torch.equal(out[key], naive_where(COND, torch.ones_like(leaf), leaf)), key


def test_where_method():
    a, b = make_td(seed=0), make_td(seed=1)
    out = a.where(COND, b)
    for key, leaf in leaves(a).items():
        assert torch.equal(out[key], naive_where(COND, leaf, b[key])), key


def test_where_errors():
    a = make_td()
    with pytest.raises(TensorDictKeyError):
        where(COND, a, a.exclude("obs"))
    with pytest.raises(TypeError, match="out="):
        torch.where(COND, a, a, out=a)
    with pytest.raises(TypeError):
        where(COND, torch.zeros(3, 2), torch.ones(3, 2))


# --------------------------------------------------------------------------- #
# *_like and other torch functions
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    ("fn", "args", "check"),
    [
        (torch.zeros_like, (), lambda x: (x == 0).all()),
        (torch.ones_like, (), lambda x: (x == 1).all()),
        (torch.full_like, (1,), lambda x: (x == 1).all()),
        (torch.empty_like, (), lambda x: True),
        (torch.rand_like, (), lambda x: ((x >= 0) & (x < 1)).all()),
        (torch.randn_like, (), lambda x: x.isfinite().all()),
    ],
)
def test_like_functions(fn, args, check):
    td = make_td().float()
    out = fn(td, *args)
    assert isinstance(out, TensorDict)
    assert out.batch_size == td.batch_size
    assert out["traj"].batch_size == td["traj"].batch_size
    for key, leaf in leaves(td).items():
        assert out[key].shape == leaf.shape, key
        assert out[key].dtype == leaf.dtype, key
        assert out[key].data_ptr() != leaf.data_ptr()
        assert check(out[key]), key


def test_like_functions_keep_dtypes_and_accept_dtype():
    td = make_td()
    zeros = torch.zeros_like(td)
    assert zeros["act"].dtype == torch.int64
    assert zeros["next", "done"].dtype == torch.bool
    doubles = torch.ones_like(td, dtype=torch.float64)
    assert all(v.dtype == torch.float64 for v in leaves(doubles).values())


def test_torch_clone():
    td = make_td()
    out = torch.clone(td)
    for key, leaf in leaves(td).items():
        assert torch.equal(out[key], leaf)
        assert out[key].data_ptr() != leaf.data_ptr()


def test_unsupported_torch_function_raises_type_error():
    with pytest.raises(TypeError):
        torch.sum(make_td())


@cuda
def test_stack_cat_on_cuda():
    tds = [make_td(seed=i).to("cuda") for i in range(2)]
    assert stack(tds).device.type == "cuda"
    assert cat(tds).device.type == "cuda"
    assert stack(tds)["obs"].is_cuda


def test_stack_cat_doubly_nested_batch_sizes():
    inner = TensorDict({"x": torch.zeros(4, 2, 3, 5)}, [4, 2, 3])
    td = TensorDict({"mid": TensorDict({"inner": inner}, [4, 2])}, [4])
    for out, bs in (
        (stack([td, td]), (2, 4)),
        (cat([td, td]), (8,)),
        (torch.stack([td, td], 1), (4, 2)),
    ):
        assert out.batch_size == bs
        assert out["mid"].batch_size == (*bs, 2)
        assert out["mid", "inner"].batch_size == (*bs, 2, 3)
        assert out["mid", "inner", "x"].shape == (*bs, 2, 3, 5)
