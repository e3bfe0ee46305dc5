"""Property tests (hypothesis) over random specs of every kind.

For random shapes, bounds, sizes and masks: ``rand`` is always ``is_in``,
``project`` of arbitrary tensors is always ``is_in``, ``encode`` round-trips,
the one-hot/categorical conversions are inverse, and ``expand``/``clone``/
``to`` preserve equality.
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from rlbricks.specs import Binary
from rlbricks.specs import Bounded
from rlbricks.specs import Categorical
from rlbricks.specs import Composite
from rlbricks.specs import MultiCategorical
from rlbricks.specs import MultiOneHot
from rlbricks.specs import OneHot
from rlbricks.specs import SpecError
from rlbricks.specs import TensorSpec
from rlbricks.specs import Unbounded

SETTINGS = settings(max_examples=60, deadline=None)

shapes = st.lists(st.integers(1, 3), max_size=3).map(tuple)
batches = st.lists(st.integers(0, 3), max_size=2).map(tuple)
seeds = st.integers(0, 2**31 - 1)
FLOATS = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
INTS = [torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _mask(layout: tuple[int, ...], seed: int) -> torch.Tensor:
    """A random bool mask with at least one True in every row of the last dim."""
    g = _gen(seed)
    mask = torch.rand(layout, generator=g) < 0.5
    keep = torch.randint(0, layout[-1], layout[:-1], generator=g)
    return mask.scatter(-1, keep.unsqueeze(-1), True)


@st.composite
def bounded_specs(draw: st.DrawFn) -> Bounded:
    shape = draw(shapes)
    g = _gen(draw(seeds))
    if draw(st.booleans()):
        dtype = draw(st.sampled_from(INTS))
        info = torch.iinfo(dtype)
        a = torch.randint(info.min, info.max, shape, generator=g, dtype=torch.int64)
        b = torch.randint(info.min, info.max, shape, generator=g, dtype=torch.int64)
        if draw(st.booleans()):
            a, b = (
                a.flatten()[:1].reshape(()) if a.numel() else a,
                b.flatten()[:1].reshape(()) if b.numel() else b,
            )
        return Bounded(torch.minimum(a, b), torch.maximum(a, b), shape=shape, dtype=dtype)
    dtype = draw(st.sampled_from(FLOATS))
    scale = draw(st.sampled_from([1.0, 100.0, 1e4]))
    low = torch.randn(shape, generator=g, dtype=torch.float64) * scale
    high = low + torch.rand(shape, generator=g, dtype=torch.float64) * scale
    kind = draw(st.sampled_from(["finite", "scalar", "open_low", "open_high", "open", "huge"]))
    if kind == "scalar":
        low, high = -scale, scale
    elif kind == "open_low":
        low = torch.where(torch.rand(shape, generator=g) < 0.5, float("-inf"), low)
    elif kind == "open_high":
        high = torch.full(shape, float("inf"))
    elif kind == "open":
        low, high = float("-inf"), float("inf")
    elif kind == "huge":
        big = torch.finfo(dtype).max
        low, high = -big, big
    return Bounded(low, high, shape=shape, dtype=dtype)


@st.composite
def leaf_specs(draw: st.DrawFn) -> TensorSpec:
    kind = draw(
        st.sampled_from(["unbounded", "bounded", "cat", "onehot", "mcat", "mohot", "binary"])
    )
    shape = draw(shapes)
    masked = draw(st.booleans())
    seed = draw(seeds)
    if kind == "unbounded":
        return Unbounded(shape=shape, dtype=draw(st.sampled_from(FLOATS + INTS + [torch.bool])))
    if kind == "bounded":
        return draw(bounded_specs())
    if kind == "cat":
        n = draw(st.integers(1, 6))
        mask = _mask((*shape, n), seed) if masked else None
        return Categorical(n, shape=shape, dtype=draw(st.sampled_from(INTS)), mask=mask)
    if kind == "onehot":
        n = draw(st.integers(1, 6))
        mask = _mask((*shape, n), seed) if masked else None
        dtype = draw(st.sampled_from([torch.bool, torch.int64, torch.float32]))
        return OneHot(n, shape=(*shape, n), dtype=dtype, mask=mask)
    if kind == "binary":
        return Binary(
            shape=(*shape, draw(st.integers(1, 4))),
            dtype=draw(st.sampled_from([torch.int8, torch.bool, torch.float32])),
        )
    nvec = draw(st.lists(st.integers(1, 5), min_size=1, max_size=4))
    mask = _mask_segments(shape, nvec, seed) if masked else None
    if kind == "mcat":
        return MultiCategorical(
            nvec, shape=(*shape, len(nvec)), dtype=draw(st.sampled_from(INTS)), mask=mask
        )
    dtype = draw(st.sampled_from([torch.bool, torch.int64, torch.float32]))
    return MultiOneHot(nvec, shape=(*shape, sum(nvec)), dtype=dtype, mask=mask)


def _mask_segments(shape: tuple[int, ...], nvec: list[int], seed: int) -> torch.Tensor:
    return torch.cat([_mask((*shape, n), seed + i) for i, n in enumerate(nvec)], dim=-1)


@st.composite
def composite_specs(draw: st.DrawFn) -> Composite:
    batch = draw(st.lists(st.integers(1, 3), max_size=2).map(tuple))
    leaves = draw(st.lists(leaf_specs(), min_size=0, max_size=4))
    spec = Composite(shape=batch)
    for i, leaf in enumerate(leaves):
        key = ("nested", f"k{i}") if i % 2 else f"k{i}"
        spec[key] = leaf.expand(*batch, *leaf.shape)
    return spec


def _arbitrary(shape: tuple[int, ...], seed: int, kind: str) -> torch.Tensor:
    """Tensors far out of any range (NaN-free): huge floats, big ints, bools."""
    g = _gen(seed)
    if kind == "float":
        return torch.randn(shape, generator=g, dtype=torch.float64) * 10 ** torch.randint(
            0, 30, shape, generator=g
        )
    if kind == "int":
        return torch.randint(-(2**40), 2**40, shape, generator=g)
    if kind == "small":
        return torch.randn(shape, generator=g)
    return torch.rand(shape, generator=g) < 0.5


# --------------------------------------------------------------------------- #
# leaves
# --------------------------------------------------------------------------- #
@SETTINGS
@given(spec=leaf_specs(), batch=batches)
def test_rand_is_in(spec, batch):
    x = spec.rand(batch)
    assert x.shape == (*batch, *spec.shape)
    assert x.dtype is spec.dtype
    assert spec.is_in(x)
    spec.assert_is_in(x)


@SETTINGS
@given(spec=bounded_specs(), batch=batches)
def test_bounded_rand_is_in(spec, batch):
    assert spec.is_in(spec.rand(batch))


@SETTINGS
@given(
    spec=leaf_specs(),
    batch=batches,
    seed=seeds,
    kind=st.sampled_from(["float", "int", "small", "bool"]),
)
def test_project_is_always_in(spec, batch, seed, kind):
    x = _arbitrary((*batch, *spec.shape), seed, kind)
    out = spec.project(x)
    assert out.shape == x.shape
    assert spec.is_in(out), (spec, x, out)


@SETTINGS
@given(spec=leaf_specs(), batch=batches)
def test_project_keeps_values_in_the_space(spec, batch):
    x = spec.rand(batch)
    assert torch.equal(spec.project(x), x)


@SETTINGS
@given(spec=leaf_specs(), batch=batches)
def test_encode_round_trips(spec, batch):
    x = spec.rand(batch)
    if x.numel():  # an empty nested list has lost its shape
        assert torch.equal(spec.encode(x.tolist()), x)
    if x.dtype is not torch.bfloat16:
        assert torch.equal(spec.encode(x.numpy()), x)
    assert spec.encode(x) is x  # no copy when nothing needs converting


@SETTINGS
@given(spec=leaf_specs(), batch=batches, bump=st.sampled_from([1, -1, 2]))
def test_is_in_and_assert_is_in_agree(spec, batch, bump):
    x = spec.rand(batch)
    if x.numel():  # push one entry by ``bump``: out of the space for most specs
        flat = x.reshape(-1).clone()
        flat[0] = flat[0].logical_not() if x.dtype is torch.bool else flat[0] + bump
        x = flat.reshape(x.shape)
    try:
        spec.assert_is_in(x)
        raised = False
    except SpecError:
        raised = True
    assert spec.is_in(x) is not raised


@SETTINGS
@given(
    n=st.integers(1, 8),
    shape=shapes,
    batch=batches,
    dtype=st.sampled_from([torch.bool, torch.int64, torch.float32]),
)
def test_one_hot_categorical_inverse(n, shape, batch, dtype):
    one_hot = OneHot(n, shape=(*shape, n), dtype=dtype)
    cat = one_hot.to_categorical_spec()
    x = one_hot.rand(batch)
    assert torch.equal(one_hot.to_one_hot(one_hot.to_categorical(x)), x)
    i = cat.rand(batch)
    assert torch.equal(cat.to_categorical(cat.to_one_hot(i)), i)
    assert cat.to_one_hot_spec() == OneHot(n, shape=(*shape, n))
    assert cat.is_in(one_hot.to_categorical(x))


@SETTINGS
@given(nvec=st.lists(st.integers(1, 5), min_size=1, max_size=4), shape=shapes, batch=batches)
def test_multi_one_hot_categorical_inverse(nvec, shape, batch):
    moh = MultiOneHot(nvec, shape=(*shape, sum(nvec)))
    mcat = moh.to_categorical_spec()
    x = moh.rand(batch)
    assert torch.equal(moh.to_one_hot(moh.to_categorical(x)), x)
    i = mcat.rand(batch)
    assert torch.equal(mcat.to_categorical(mcat.to_one_hot(i)), i)
    assert mcat.is_in(moh.to_categorical(x))
    assert moh.is_in(mcat.to_one_hot(i))


@SETTINGS
@given(spec=leaf_specs(), lead=st.lists(st.integers(1, 3), max_size=2).map(tuple))
def test_expand_clone_to_preserve_equality(spec, lead):
    big = spec.expand(*lead, *spec.shape)
    assert big.shape == (*lead, *spec.shape)
    x = big.rand()
    assert big.is_in(x)
    assert spec.is_in(x)
    assert big.expand(*big.shape) == big
    assert spec.clone() == spec
    assert spec.to("cpu") == spec
    assert big.clone() == big
    if lead:
        assert big != spec


# --------------------------------------------------------------------------- #
# composites
# --------------------------------------------------------------------------- #
@SETTINGS
@given(spec=composite_specs(), batch=batches)
def test_composite_rand_is_in(spec, batch):
    td = spec.rand(batch)
    assert td.batch_size == (*batch, *spec.shape)
    assert spec.is_in(td)
    spec.assert_is_in(td)


@SETTINGS
@given(spec=composite_specs(), batch=batches, seed=seeds)
def test_composite_project_is_in(spec, batch, seed):
    td = spec.zero(batch)
    for i, key in enumerate(spec.keys(include_nested=True, leaves_only=True)):
        td[key] = _arbitrary(tuple(td[key].shape), seed + i, "float")
    assert spec.is_in(spec.project(td))


@SETTINGS
@given(spec=composite_specs(), batch=batches)
def test_composite_encode_round_trips(spec, batch):
    td = spec.rand(batch)
    back = spec.encode(td.to_dict())
    for key in spec.keys(include_nested=True, leaves_only=True):
        assert torch.equal(back[key], td[key])


@SETTINGS
@given(spec=composite_specs(), lead=st.lists(st.integers(1, 3), max_size=2).map(tuple))
def test_composite_expand_clone_equality(spec, lead):
    big = spec.expand(*lead, *spec.shape)
    assert big.is_in(big.rand())
    assert spec.clone() == spec
    assert big.clone() == big
    assert spec.to("cpu").to("cpu") == spec.to("cpu")
    assert spec.select(*spec.keys()) == spec
    assert spec.exclude() == spec


def test_numpy_scalars_encode():
    assert Categorical(3).encode(np.int32(2)).item() == 2
    assert Bounded(0.0, 1.0).encode(np.float64(0.25)).item() == 0.25
