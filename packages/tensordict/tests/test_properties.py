"""Property tests (hypothesis): random batch shapes and random nested structures, each
TensorDict op checked against the same op applied to every plain tensor."""

from __future__ import annotations

import itertools

import torch
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from torch.utils import _pytree as pytree

from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import cat
from rlbricks.tensordict import stack

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DTYPES = [torch.float32, torch.float64, torch.int64, torch.int32, torch.uint8, torch.bool]

batch_shapes = st.lists(st.integers(0, 5), min_size=0, max_size=3).map(tuple)


def _rand(shape, dtype: torch.dtype, g: torch.Generator) -> torch.Tensor:
    if dtype is torch.bool:
        return torch.randint(0, 2, shape, generator=g).bool()
    if dtype.is_floating_point:
        return torch.randn(shape, generator=g, dtype=dtype)
    return torch.randint(0, 100, shape, generator=g).to(dtype)


def _source(draw, bs, g, depth) -> dict:
    source = {}
    for i in range(draw(st.integers(1 if depth == 0 else 0, 3))):
        kind = draw(st.sampled_from(["leaf", "leaf", "nested"] if depth < 2 else ["leaf"]))
        if kind == "leaf":
            feat = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
            source[f"k{i}"] = _rand(bs + feat, draw(st.sampled_from(DTYPES)), g)
        else:
            extra = tuple(draw(st.lists(st.integers(1, 3), max_size=1)))
            sub = _source(draw, bs + extra, g, depth + 1)
            source[f"n{i}"] = TensorDict(sub, batch_size=bs + extra)
    return source


@st.composite
def tensordicts(draw, shapes=batch_shapes):
    bs = draw(shapes)
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    return TensorDict(_source(draw, bs, g, 0), batch_size=bs)


def randomised(td: TensorDict, seed: int) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    return td.apply(lambda x: _rand(x.shape, x.dtype, g))


def leaves(td: TensorDict) -> dict:
    return dict(td.items(include_nested=True, leaves_only=True))


def assert_same(a: TensorDict, b: TensorDict) -> None:
    assert a.batch_size == b.batch_size
    assert list(a.keys(True)) == list(b.keys(True))
    for key in a.keys(True):
        va, vb = a[key], b[key]
        if isinstance(va, TensorDict):
            assert va.batch_size == vb.batch_size, key
        else:
            assert va.dtype == vb.dtype, key
            assert va.shape == vb.shape, key
            assert torch.equal(va, vb), key


# --------------------------------------------------------------------------- #
# indices
# --------------------------------------------------------------------------- #
@st.composite
def indices(draw, bs, unique=False):
    """A random index over ``bs``: ints, slices, one index tensor or mask, None, Ellipsis."""
    nd = len(bs)
    items: list = []
    d = 0
    advanced = ellipsis = False
    while True:
        kinds = ["stop", "none", "slice"]
        if d < nd:
            kinds += ["slice", "slice", "int"] if bs[d] else ["slice", "slice"]
            if not advanced:
                kinds += ["tensor", "mask", "list"] if bs[d] else ["mask"]
            if not ellipsis:
                kinds.append("ellipsis")
        kind = draw(st.sampled_from(kinds)) if d < nd else draw(st.sampled_from(["stop", "none"]))
        if kind == "stop":
            break
        size = bs[d] if d < nd else 0
        if kind == "none":
            items.append(None)
            if len(items) > 5:
                break
            continue
        if kind == "int":
            items.append(draw(st.integers(-size, size - 1)))
        elif kind == "slice":
            bound = st.none() | st.integers(-size - 1, size + 1)
            items.append(slice(draw(bound), draw(bound), draw(st.sampled_from([None, 1, 2, 3]))))
        elif kind in ("tensor", "list"):
            ints = st.integers(-size, size - 1)
            values = draw(
                st.lists(
                    ints,
                    min_size=1 if kind == "list" else 0,
                    max_size=4,
                    unique_by=(lambda i: i % size) if unique else None,
                )
            )
            items.append(values if kind == "list" else torch.tensor(values, dtype=torch.long))
            advanced = True
        elif kind == "mask":
            k = draw(st.integers(1, nd - d))
            items.append(_mask(draw, bs[d : d + k]))
            advanced = True
            d += k
            continue
        elif kind == "ellipsis":
            k = draw(st.integers(0, nd - d))
            items.append(Ellipsis)
            ellipsis = True
            d += k
            continue
        d += 1
    if ellipsis:  # the ellipsis must cover exactly the dims it skipped
        items += [slice(None)] * (nd - d)
    if len(items) == 1 and draw(st.booleans()):
        return items[0]
    return tuple(items)


def _mask(draw, shape) -> torch.Tensor:
    n = torch.Size(shape).numel()
    return torch.tensor(
        draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=torch.bool
    ).reshape(shape)


def _consumed(item) -> int:
    if item is None or item is Ellipsis:
        return 0
    if isinstance(item, torch.Tensor) and item.dtype is torch.bool:
        return item.ndim
    return 1


def expand_ellipsis(idx, nd: int) -> tuple:
    items = idx if isinstance(idx, tuple) else (idx,)
    if not any(i is Ellipsis for i in items):
        return items
    pos = next(p for p, i in enumerate(items) if i is Ellipsis)
    used = sum(_consumed(i) for i in items)
    return items[:pos] + (slice(None),) * (nd - used) + items[pos + 1 :]


@st.composite
def td_and_index(draw, unique=False):
    td = draw(tensordicts())
    return td, draw(indices(td.batch_size, unique=unique))


# --------------------------------------------------------------------------- #
# properties
# --------------------------------------------------------------------------- #
@SETTINGS
@given(td_and_index())
def test_getitem_matches_plain_tensors(case):
    td, idx = case
    ref = expand_ellipsis(idx, td.batch_dims)
    expected_bs = torch.zeros(td.batch_size)[ref].shape
    out = td[idx]
    assert out.batch_size == expected_bs
    assert list(out.keys(True)) == list(td.keys(True))
    for key in td.keys(True):
        value = td[key]
        if isinstance(value, TensorDict):
            assert out[key].batch_size == expected_bs + value.batch_size[td.batch_dims :], key
        else:
            assert torch.equal(out[key], value[ref]), key


@SETTINGS
@given(td_and_index(unique=True), st.integers(0, 2**16))
def test_setitem_then_getitem(case, seed):
    td, idx = case
    ref = expand_ellipsis(idx, td.batch_dims)
    value = randomised(td[idx], seed)
    expected = {k: v.clone() for k, v in leaves(td).items()}
    td[idx] = value
    for key, leaf in expected.items():
        leaf[ref] = value[key]
        assert torch.equal(td[key], leaf), key
    assert_same(td[idx], value)


@SETTINGS
@given(tensordicts(), st.integers(1, 3), st.data())
def test_stack_then_unbind_returns_originals(td, n, data):
    tds = [randomised(td, i) for i in range(n)]
    dim = data.draw(st.integers(-td.batch_dims - 1, td.batch_dims))
    fn = data.draw(st.sampled_from([stack, torch.stack]))
    out = fn(tds, dim)
    d = dim % (td.batch_dims + 1)
    assert out.batch_size == td.batch_size[:d] + (n,) + td.batch_size[d:]
    for key, leaf in leaves(td).items():
        assert torch.equal(out[key], torch.stack([t[key] for t in tds], d)), key
    for back, orig in zip(out.unbind(dim), tds, strict=True):
        assert_same(back, orig)


@SETTINGS
@given(tensordicts(batch_shapes.filter(len)), st.data())
def test_cat_then_split_returns_originals(td, data):
    d = data.draw(st.integers(0, td.batch_dims - 1))
    size = td.batch_size[d]
    cuts = sorted(data.draw(st.lists(st.integers(0, size), max_size=3)))
    bounds = [0, *cuts, size]
    sizes = [b - a for a, b in itertools.pairwise(bounds)]
    pieces = [td[(slice(None),) * d + (slice(a, b),)] for a, b in itertools.pairwise(bounds)]
    fn = data.draw(st.sampled_from([cat, torch.cat]))
    dim = data.draw(st.sampled_from([d, d - td.batch_dims]))
    whole = fn(pieces, dim)
    assert_same(whole, td)
    for back, orig in zip(whole.split(sizes, dim), pieces, strict=True):
        assert_same(back, orig)


@SETTINGS
@given(tensordicts(), st.data())
def test_reshape_then_reshape_back(td, data):
    bs = td.batch_size
    nd = td.batch_dims
    target = list(data.draw(st.permutations(list(bs))))
    for _ in range(data.draw(st.integers(0, 2))):
        target.insert(data.draw(st.integers(0, len(target))), 1)
    if target and bs.numel() and data.draw(st.booleans()):
        target[data.draw(st.integers(0, len(target) - 1))] = -1
    out = td.reshape(*target)
    expected_bs = torch.zeros(bs).reshape(target).shape
    assert out.batch_size == expected_bs
    for key, leaf in leaves(td).items():
        assert torch.equal(out[key], leaf.reshape(expected_bs + leaf.shape[nd:])), key
    assert_same(out.reshape(bs), td)
    assert_same(td.reshape(-1).view(bs), td)


@SETTINGS
@given(tensordicts(), st.data())
def test_permute_then_inverse(td, data):
    nd = td.batch_dims
    perm = data.draw(st.permutations(range(nd)))
    inverse = sorted(range(nd), key=lambda i: perm[i])
    out = td.permute(*perm)
    assert out.batch_size == torch.Size(td.batch_size[p] for p in perm)
    for key, leaf in leaves(td).items():
        assert torch.equal(out[key], leaf.permute((*perm, *range(nd, leaf.ndim)))), key
    assert_same(out.permute(inverse), td)


@SETTINGS
@given(tensordicts())
def test_unsqueeze_squeeze_and_flatten_unflatten(td):
    nd = td.batch_dims
    for dim in range(-nd - 1, nd + 1):
        assert_same(td.unsqueeze(dim).squeeze(dim), td)
    if nd:
        flat = td.flatten()
        assert flat.batch_size == torch.Size([td.batch_size.numel()])
        assert_same(flat.unflatten(0, td.batch_size), td)


@SETTINGS
@given(tensordicts())
def test_conversions_round_trip(td):
    # to_dict keeps no batch sizes: nested TensorDicts come back with the parent's
    assert_same(TensorDict(td.to_dict(), batch_size=td.batch_size), _with_root_batch(td))
    assert_same(TensorDict().load_state_dict(td.state_dict()), td)
    assert_same(td.flatten_keys("/").unflatten_keys("/"), _drop_empty(td))
    flat, spec = pytree.tree_flatten(td)
    assert_same(pytree.tree_unflatten(flat, spec), td)
    assert_same(td.clone(), td)
    assert (td == td.clone()).all() is True


def _with_root_batch(td: TensorDict, bs=None) -> TensorDict:
    """``td`` with every nested TensorDict carrying the root batch size (what
    ``to_dict`` then ``TensorDict(d, batch_size)`` returns)."""
    bs = td.batch_size if bs is None else bs
    out = TensorDict(batch_size=bs)
    for key, value in td.items():
        out[key] = _with_root_batch(value, bs) if isinstance(value, TensorDict) else value
    return out


def _drop_empty(td: TensorDict) -> TensorDict:
    """The leaves of ``td`` under nested TensorDicts with the root batch size (what a
    conversion that keeps no nested batch sizes or empty nested TensorDicts returns)."""
    out = td.empty()
    for key, leaf in leaves(td).items():
        out[key] = leaf
    return out


@SETTINGS
@given(tensordicts())
def test_from_dict_infers_common_prefix(td):
    out = TensorDict.from_dict(td.to_dict())
    shapes = [leaf.shape for leaf in leaves(td).values()]
    common = []
    for dims in zip(*shapes):
        if len(set(dims)) != 1:
            break
        common.append(dims[0])
    assert out.batch_size == torch.Size(common)
    if shapes:
        assert out.batch_size[: td.batch_dims] == td.batch_size
