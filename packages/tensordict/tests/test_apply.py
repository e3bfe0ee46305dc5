"""Leaf-wise operations: apply/apply_/named_apply, dtype and device casts, comparisons,
reductions, in-place fills, copies and shared memory."""

from __future__ import annotations

import pytest
import torch

from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import TensorDictKeyError

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
BS = (3, 2)


def make_td() -> TensorDict:
    g = torch.Generator().manual_seed(0)
    return TensorDict(
        {
            "obs": torch.randn(*BS, 4, generator=g),
            "act": torch.randint(-3, 3, BS, generator=g),
            "next": {
                "done": torch.tensor([[True, False], [False, False], [True, True]]).unsqueeze(-1)
            },
            "traj": TensorDict({"t": torch.randn(*BS, 5, 2, generator=g)}, batch_size=[*BS, 5]),
        },
        batch_size=BS,
    )


def leaves(td: TensorDict) -> dict:
    return dict(td.items(include_nested=True, leaves_only=True))


# --------------------------------------------------------------------------- #
# apply family
# --------------------------------------------------------------------------- #
def test_apply_golden():
    td = make_td()
    out = td.apply(lambda x: x * 2)
    assert out is not td
    assert out.batch_size == td.batch_size
    assert out["traj"].batch_size == td["traj"].batch_size
    assert list(out.keys(True)) == list(td.keys(True))
    for key, leaf in leaves(td).items():
        assert torch.equal(out[key], leaf * 2), key


def test_apply_drops_none_results():
    td = make_td()
    out = td.apply(lambda x: x if x.dtype == torch.float32 else None)
    assert set(out.keys(True, True)) == {"obs", ("traj", "t")}
    assert td.apply(lambda x: None).is_empty()


def test_apply_with_others():
    a = make_td().float()
    b = a.apply(lambda x: x * 3 + 1)
    out = a.apply(lambda x, y: y - x, b)
    for key, leaf in leaves(a).items():
        assert torch.equal(out[key], b[key] - leaf), key
    with pytest.raises(TensorDictKeyError, match="'obs'"):
        a.apply(lambda x, y: x, b.exclude("obs"))


def test_apply_batch_size_and_device():
    td = make_td()
    out = td.apply(lambda x: x[0], batch_size=[2])
    assert out.batch_size == torch.Size([2])
    assert out["traj"].batch_size == torch.Size([2, 5])
    assert torch.equal(out["obs"], td["obs"][0])
    assert td.apply(lambda x: x, device="cpu").device == torch.device("cpu")


def test_apply_():
    td = make_td()
    before = leaves(td)
    # apply_ writes into each leaf's own storage: same tensor objects, same dtypes
    expected = {k: (v * 3).to(v.dtype) for k, v in before.items()}
    assert td.apply_(lambda x: x * 3) is td
    for key, value in expected.items():
        assert td[key] is before[key], key
        assert torch.equal(td[key], value), key
    other = make_td()
    td.apply_(lambda x, y: y, other)
    for key, leaf in leaves(other).items():
        assert torch.equal(td[key], leaf), key


def test_named_apply():
    td = make_td()
    seen = []

    def fn(key, value):
        seen.append(key)
        return value + 1 if key == ("traj", "t") or key == "obs" else None

    out = td.named_apply(fn)
    assert seen == ["obs", "act", ("next", "done"), ("traj", "t")]
    assert set(out.keys(True, True)) == {"obs", ("traj", "t")}
    assert torch.equal(out["traj", "t"], td["traj", "t"] + 1)
    assert out["traj"].batch_size == td["traj"].batch_size


# --------------------------------------------------------------------------- #
# dtype / device casts
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    ("method", "dtype"),
    [
        ("float", torch.float32),
        ("double", torch.float64),
        ("half", torch.float16),
        ("int", torch.int32),
        ("long", torch.int64),
        ("bool", torch.bool),
    ],
)
def test_cast_methods_cast_every_leaf(method, dtype):
    td = make_td()
    out = getattr(td, method)()
    assert out.batch_size == td.batch_size
    assert out["traj"].batch_size == td["traj"].batch_size
    for key, leaf in leaves(td).items():
        assert out[key].dtype == dtype, key
        assert torch.equal(out[key], leaf.to(dtype)), key


@pytest.mark.parametrize("dtype", [torch.float64, torch.int16, torch.bool, torch.float32])
def test_to_dtype_casts_every_leaf(dtype):
    td = make_td()
    for out in (td.to(dtype), td.to(dtype=dtype), td.to("cpu", dtype)):
        for key, leaf in leaves(td).items():
            assert out[key].dtype == dtype, key
            assert torch.equal(out[key], leaf.to(dtype)), key


def test_to_same_device_returns_self():
    td = TensorDict({"a": torch.zeros(2)}, [2], device="cpu")
    assert td.to("cpu") is td
    assert td.to(torch.device("cpu")) is td


@cuda
def test_to_cuda_and_back():
    td = make_td()
    gpu = td.to("cuda")
    assert gpu.device.type == "cuda"
    assert gpu["traj"].device.type == "cuda"
    assert all(v.is_cuda for v in leaves(gpu).values())
    back = gpu.cpu()
    for key, leaf in leaves(td).items():
        assert torch.equal(back[key], leaf), key
    both = td.to("cuda", torch.float64)
    assert both["act"].dtype == torch.float64
    assert both["act"].is_cuda


def test_detach_and_requires_grad():
    td = make_td()
    assert td.requires_grad_() is td
    assert td["obs"].requires_grad
    assert td["traj", "t"].requires_grad
    assert not td["act"].requires_grad  # integer leaves are skipped
    out = td.detach()
    assert not out["obs"].requires_grad
    assert not out["traj", "t"].requires_grad
    assert out["obs"].data_ptr() == td["obs"].data_ptr()
    y = td["obs"] * 2
    holder = TensorDict({"y": y}, BS)
    holder.detach_()
    assert not holder["y"].requires_grad
    td.requires_grad_(False)
    assert not td["obs"].requires_grad


def test_contiguous():
    td = make_td().expand(4, *BS)
    assert not td["obs"].is_contiguous()
    out = td.contiguous()
    for key, leaf in leaves(td).items():
        assert out[key].is_contiguous(), key
        assert torch.equal(out[key], leaf), key


# --------------------------------------------------------------------------- #
# masked_fill / where
# --------------------------------------------------------------------------- #
MASK = torch.tensor([[True, False], [False, False], [False, True]])


def naive_masked_fill(leaf: torch.Tensor, mask: torch.Tensor, value) -> torch.Tensor:
    out = leaf.clone()
    for i in range(mask.shape[0]):
        for j in range(mask.shape[1]):
            if mask[i, j]:
                out[i, j] = value
    return out


def test_masked_fill_golden():
    td = make_td()
    out = td.masked_fill(MASK, 1)
    assert out["traj"].batch_size == td["traj"].batch_size
    for key, leaf in leaves(td).items():
        assert torch.equal(out[key], naive_masked_fill(leaf, MASK, 1)), key
        assert not torch.equal(out[key], leaf) or bool(leaf[MASK].eq(1).all()), key
    assert not torch.equal(td["obs"], out["obs"])  # the source is untouched


def test_masked_fill_leading_dims_only():
    td = make_td()
    mask = torch.tensor([True, False, True])
    out = td.masked_fill(mask, 0)
    for key in leaves(td):
        assert not out[key][mask].any(), key
        assert torch.equal(out[key][1], td[key][1]), key


def test_masked_fill_():
    td = make_td()
    ptrs = {k: v.data_ptr() for k, v in leaves(td).items()}
    expected = {k: naive_masked_fill(v, MASK, 0) for k, v in leaves(td).items()}
    assert td.masked_fill_(MASK, 0) is td
    for key, value in expected.items():
        assert td[key].data_ptr() == ptrs[key]
        assert torch.equal(td[key], value), key


# --------------------------------------------------------------------------- #
# comparisons and reductions
# --------------------------------------------------------------------------- #
def test_eq_ne_return_tensordicts_of_bools():
    a, b = make_td(), make_td()
    b["obs"][0, 0, 0] += 1
    eq, ne = a == b, a != b
    assert isinstance(eq, TensorDict)
    assert isinstance(ne, TensorDict)
    assert eq.batch_size == a.batch_size
    assert eq["traj"].batch_size == a["traj"].batch_size
    for key, leaf in leaves(a).items():
        assert eq[key].dtype == torch.bool, key
        assert torch.equal(eq[key], leaf == b[key]), key
        assert torch.equal(ne[key], leaf != b[key]), key
    assert not eq.all()
    assert eq.any()
    assert ne.any()
    assert not ne.all()


def test_eq_with_scalar_and_dict():
    td = TensorDict({"a": torch.tensor([0, 1]), "n": {"b": torch.tensor([1, 1])}}, [2])
    out = td == 1
    assert torch.equal(out["a"], torch.tensor([False, True]))
    assert bool(out["n", "b"].all())
    out = td == {"a": torch.tensor([0, 0]), "n": {"b": torch.tensor([1, 0])}}
    assert torch.equal(out["a"], torch.tensor([True, False]))
    assert torch.equal(out["n", "b"], torch.tensor([True, False]))


def test_eq_key_mismatch():
    with pytest.raises(TensorDictKeyError, match="'obs'"):
        make_td() == make_td().exclude("obs")


@pytest.mark.parametrize("other", [None, "text", object()])
def test_eq_with_unrelated_object(other):
    out = make_td() == other
    if isinstance(out, TensorDict):
        assert all(isinstance(v, torch.Tensor) for v in leaves(out).values())
        assert not out.any()
    else:
        assert out is False


def test_bool_raises_and_unhashable():
    td = make_td()
    with pytest.raises(ValueError, match="ambiguous"):
        bool(td)
    with pytest.raises(ValueError):
        bool(td == td)
    with pytest.raises(TypeError):
        hash(td)


def test_all_any_without_dim_return_python_bools():
    td = make_td()
    assert td.all() is False
    assert td.any() is True
    ones = td.apply(torch.ones_like)
    assert ones.all() is True
    zeros = td.apply(torch.zeros_like)
    assert zeros.any() is False
    assert TensorDict().all() is True
    assert TensorDict().any() is False


@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("name", ["all", "any"])
def test_all_any_with_dim(dim, name):
    td = make_td().bool()
    out = getattr(td, name)(dim)
    expected_bs = list(BS)
    del expected_bs[dim]
    assert out.batch_size == torch.Size(expected_bs)
    assert out["traj"].batch_size == torch.Size([*expected_bs, 5])
    for key, leaf in leaves(td).items():
        assert torch.equal(out[key], getattr(torch, name)(leaf, dim=dim % 2)), key
    with pytest.raises(IndexError, match=name):
        getattr(td, name)(2)


# --------------------------------------------------------------------------- #
# in-place fills
# --------------------------------------------------------------------------- #
def test_zero_():
    td = make_td()
    ptrs = {k: v.data_ptr() for k, v in leaves(td).items()}
    assert td.zero_() is td
    for key, leaf in leaves(td).items():
        assert leaf.data_ptr() == ptrs[key], key
        assert not leaf.any(), key


def test_fill_():
    td = make_td()
    assert td.fill_("obs", 2.5) is td
    assert (td["obs"] == 2.5).all()
    td.fill_(("next", "done"), True)
    assert td["next", "done"].all()
    td.fill_("traj", -1)
    assert (td["traj", "t"] == -1).all()
    with pytest.raises(TensorDictKeyError, match="available keys"):
        td.fill_("missing", 0)


# --------------------------------------------------------------------------- #
# copies and memory
# --------------------------------------------------------------------------- #
def test_clone_is_deep():
    td = make_td()
    out = td.clone()
    assert out.batch_size == td.batch_size
    assert out["traj"].batch_size == td["traj"].batch_size
    for key, leaf in leaves(td).items():
        assert torch.equal(out[key], leaf), key
        assert out[key].data_ptr() != leaf.data_ptr(), key
    out["next", "new"] = torch.zeros(BS)
    assert ("next", "new") not in td


@pytest.mark.parametrize("method", ["copy", "clone_shallow"])
def test_shallow_copies(method):
    td = make_td()
    out = td.copy() if method == "copy" else td.clone(recurse=False)
    for key, leaf in leaves(td).items():
        assert out[key] is leaf, key
    out["x"] = torch.zeros(BS)
    out["next", "y"] = torch.zeros(BS)
    assert "x" not in td.keys()
    assert ("next", "y") not in td


def test_empty():
    td = make_td()
    out = td.empty()
    assert out.batch_size == td.batch_size
    assert out.device == td.device
    assert list(out.keys()) == []
    deep = td.empty(recurse=True)
    assert list(deep.keys(True)) == ["next", "traj"]
    assert deep["traj"].batch_size == td["traj"].batch_size
    assert deep.is_empty()


def test_share_memory_():
    td = make_td()
    assert not td.is_shared()
    assert td.share_memory_() is td
    assert td.is_shared()
    assert all(v.is_shared() for v in leaves(td).values())
    assert not TensorDict().is_shared()
