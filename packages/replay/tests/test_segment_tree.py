"""SumSegmentTree / MinSegmentTree against naive references (assignment, cumsum, min).

Values in the property tests are small integers (as floats), so every sum is
exact in float64 and the prefix-sum search can be compared exactly with
``searchsorted`` on the cumulative sum.
"""

from __future__ import annotations

import contextlib
import io
import math
from typing import Any
from unittest import mock

import pytest
import torch
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from rlbricks.replay import MinSegmentTree
from rlbricks.replay import SumSegmentTree

SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def updates(draw: st.DrawFn) -> tuple[int, list[tuple[list[int], list[float]]]]:
    """A capacity and a few batches of (indices with repeats, integer values)."""
    capacity = draw(st.integers(1, 70))
    batches = []
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.lists(st.integers(0, capacity - 1), min_size=1, max_size=2 * capacity))
        values = draw(st.lists(st.integers(0, 5), min_size=len(index), max_size=len(index)))
        batches.append((index, [float(v) for v in values]))
    return capacity, batches


def _apply(
    capacity: int, batches: list[tuple[list[int], list[float]]]
) -> tuple[SumSegmentTree, MinSegmentTree, list[float]]:
    sum_tree, min_tree = SumSegmentTree(capacity), MinSegmentTree(capacity)
    reference = [math.nan] * capacity  # nan: never written
    for index, values in batches:
        sum_tree.update(torch.tensor(index), torch.tensor(values))
        min_tree[torch.tensor(index)] = torch.tensor(values)
        for i, v in zip(index, values):  # a Python loop: the last write wins
            reference[i] = v
    return sum_tree, min_tree, reference


def _prefix_reference(leaves: torch.Tensor, mass: torch.Tensor) -> torch.Tensor:
    """First leaf whose cumulative sum exceeds the mass; the last positive leaf past the total."""
    cumsum = leaves.cumsum(0)
    found = torch.searchsorted(cumsum, mass.clamp_min(0), right=True)
    last_positive = int(leaves.nonzero().max()) if bool((leaves > 0).any()) else 0
    return torch.where(found >= len(leaves), last_positive, found)


@SETTINGS
@given(updates())
def test_matches_reference_after_updates(case: tuple[int, list]) -> None:
    capacity, batches = case
    sum_tree, min_tree, reference = _apply(capacity, batches)
    leaves = torch.tensor([0.0 if math.isnan(v) else v for v in reference], dtype=torch.float64)
    min_leaves = torch.tensor(
        [math.inf if math.isnan(v) else v for v in reference], dtype=torch.float64
    )
    torch.testing.assert_close(sum_tree[torch.arange(capacity)], leaves, rtol=0, atol=0)
    torch.testing.assert_close(min_tree[:], min_leaves, rtol=0, atol=0)
    assert sum_tree.reduce().item() == leaves.sum().item()
    assert min_tree.reduce().item() == min_leaves.min().item()
    for start in range(0, capacity, max(1, capacity // 5)):
        for end in range(start, capacity + 1, max(1, capacity // 4)):
            assert sum_tree.reduce(start, end).item() == leaves[start:end].sum().item()
            expected_min = min_leaves[start:end].min().item() if end > start else math.inf
            assert min_tree.reduce(start, end).item() == expected_min


@SETTINGS
@given(updates(), st.lists(st.integers(-2, 800), min_size=1, max_size=40))
def test_find_prefixsum_idx_matches_searchsorted(case: tuple[int, list], halves: list[int]) -> None:
    capacity, batches = case
    sum_tree, _, reference = _apply(capacity, batches)
    leaves = torch.tensor([0.0 if math.isnan(v) else v for v in reference], dtype=torch.float64)
    # masses on every half-integer: exactly on the boundaries, in between and past the total
    mass = torch.tensor(halves, dtype=torch.float64) / 2
    found = sum_tree.find_prefixsum_idx(mass)
    assert found.dtype == torch.long
    torch.testing.assert_close(found, _prefix_reference(leaves, mass), rtol=0, atol=0)
    if bool((leaves > 0).any()):
        assert bool((leaves[found] > 0).all()), "a zero leaf was returned"


def test_duplicate_indices_last_write_wins() -> None:
    tree = SumSegmentTree(10)
    tree.update(torch.tensor([3, 7, 3, 3, 7]), torch.tensor([1.0, 2.0, 5.0, 4.0, 9.0]))
    assert tree[3].item() == 4.0
    assert tree[7].item() == 9.0
    assert tree.reduce().item() == 13.0
    min_tree = MinSegmentTree(10)
    min_tree[[2, 2]] = torch.tensor([0.5, 8.0])
    assert min_tree.reduce().item() == 8.0


def test_boundaries_with_zero_leaves() -> None:
    tree = SumSegmentTree(8)
    tree[[2, 5]] = torch.tensor([1.0, 3.0])  # zeros before, between and after
    total = tree.reduce().item()
    below_total = math.nextafter(total, 0.0)
    just_below_one = math.nextafter(1.0, 0.0)
    mass = torch.tensor(
        [0.0, -1.0, 1.0, below_total, total, 2 * total, just_below_one], dtype=torch.float64
    )
    assert tree.find_prefixsum_idx(mass).tolist() == [2, 2, 5, 5, 5, 5, 2]
    assert tree.find_prefixsum_idx(0.0).item() == 2  # a scalar mass gives a 0-d result


@pytest.mark.parametrize("capacity", [1, 2, 7, 64, 1000])
def test_zero_leaves_never_found_with_rounding(capacity: int) -> None:
    gen = torch.Generator().manual_seed(capacity)
    values = torch.rand(capacity, generator=gen, dtype=torch.float64) * 10 ** torch.randint(
        -8, 8, (capacity,), generator=gen
    )
    values[torch.rand(capacity, generator=gen) < 0.5] = 0.0
    values[-1] = 0.0 if capacity > 1 else values[-1]
    values[capacity // 2] = 0.3  # at least one positive leaf
    tree = SumSegmentTree(capacity)
    tree[:] = values
    total = tree.reduce().item()
    edge = [0.0, total, math.nextafter(total, 0.0), math.nextafter(total, math.inf)]
    mass = torch.cat(
        [torch.rand(5000, generator=gen, dtype=torch.float64) * total, torch.tensor(edge)]
    )
    found = tree.find_prefixsum_idx(mass)
    assert bool((found >= 0).all())
    assert bool((found < capacity).all())
    assert bool((values[found] > 0).all())


def test_float32_tree_never_returns_zero_leaf() -> None:
    gen = torch.Generator().manual_seed(0)
    tree = SumSegmentTree(300, dtype=torch.float32)
    values = torch.rand(300, generator=gen)
    values[::3] = 0.0
    tree[:] = values
    mass = torch.linspace(0, 1, 20001) * tree.reduce()
    assert bool((values[tree.find_prefixsum_idx(mass)] > 0).all())


def test_all_zero_tree_returns_index_zero() -> None:
    tree = SumSegmentTree(5)
    assert tree.find_prefixsum_idx(torch.tensor([0.0, 1.0])).tolist() == [0, 0]


def test_getitem_keeps_shape_and_accepts_ints_lists_slices() -> None:
    tree = SumSegmentTree(6)
    tree[:] = torch.arange(6.0)
    assert tree[torch.tensor([[1, 2], [3, 4]])].shape == (2, 2)
    assert tree[4].item() == 4.0
    assert tree[[0, 5]].tolist() == [0.0, 5.0]
    assert tree[1:4].tolist() == [1.0, 2.0, 3.0]
    assert len(tree) == 6


def test_scalar_value_broadcasts() -> None:
    tree = MinSegmentTree(4)
    tree[torch.tensor([0, 3])] = 2.0
    assert tree[:].tolist() == [2.0, math.inf, math.inf, 2.0]


@pytest.mark.parametrize("cls", [SumSegmentTree, MinSegmentTree])
def test_invalid_arguments(cls: type) -> None:
    tree = cls(5)
    with pytest.raises(IndexError, match=r"index 5 is out of range.*\[0, 5\)"):
        tree[5] = 1.0
    with pytest.raises(IndexError, match="index -1"):
        tree[torch.tensor([0, -1])]
    with pytest.raises(TypeError, match="integers"):
        tree[torch.tensor([0.0])] = 1.0
    with pytest.raises(
        ValueError, match=r"shape \(3,\) does not broadcast to the index shape \(2,\)"
    ):
        tree[[0, 1]] = torch.ones(3)
    with pytest.raises(IndexError, match="start <= end"):
        tree.reduce(3, 2)
    with pytest.raises(ValueError, match="positive int"):
        cls(0)
    with pytest.raises(TypeError, match="floating point"):
        cls(4, dtype=torch.int64)


@pytest.mark.parametrize("cls", [SumSegmentTree, MinSegmentTree])
def test_state_dict_round_trip(cls: type) -> None:
    tree = cls(37)
    tree[torch.arange(0, 37, 2)] = torch.rand(19, dtype=torch.float64)
    buffer = io.BytesIO()
    torch.save(tree.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    restored = cls(37)
    restored.load_state_dict(state)
    assert torch.equal(restored._tree, tree._tree)  # internal nodes rebuilt bit for bit
    with pytest.raises(ValueError, match="capacity 37"):
        cls(36).load_state_dict(state)


def test_empty_resets_to_neutral() -> None:
    sum_tree, min_tree = SumSegmentTree(9), MinSegmentTree(9)
    sum_tree[:] = 1.0
    min_tree[:] = 1.0
    sum_tree.empty()
    min_tree.empty()
    assert sum_tree.reduce().item() == 0.0
    assert min_tree.reduce().item() == math.inf


def test_batched_update_equals_one_by_one() -> None:
    gen = torch.Generator().manual_seed(1)
    index = torch.randint(1000, (500,), generator=gen)
    values = torch.rand(500, generator=gen, dtype=torch.float64)
    batched, serial = SumSegmentTree(1000), SumSegmentTree(1000)
    batched[index] = values
    for i, v in zip(index.tolist(), values.tolist()):
        serial[i] = v
    assert torch.equal(batched._tree, serial._tree)


def test_repr_and_properties() -> None:
    tree = SumSegmentTree(3, dtype=torch.float32)
    tree[0] = 2.5
    assert repr(tree) == "SumSegmentTree(capacity=3, dtype=torch.float32, device=cpu, reduce=2.5)"
    assert tree.dtype == torch.float32
    assert tree.device == torch.device("cpu")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(("capacity", "branching"), [(100, 16), (5000, 4)])
def test_cuda_tree_matches_cpu(capacity: int, branching: int) -> None:
    index = torch.randint(capacity, (3 * capacity,))
    values = torch.rand(3 * capacity, dtype=torch.float64)
    cpu = SumSegmentTree(capacity, branching=branching)
    cuda = SumSegmentTree(capacity, device="cuda", branching=branching)
    cpu[index] = values
    cuda[index.cuda()] = values.cuda()
    assert torch.equal(cuda[:].cpu(), cpu[:])
    # internal sums and running sums may round differently on the two devices
    torch.testing.assert_close(cuda._tree.cpu(), cpu._tree, rtol=1e-12, atol=0)
    mass = torch.rand(1000, dtype=torch.float64) * cpu.reduce()
    assert torch.equal(cuda.find_prefixsum_idx(mass.cuda()).cpu(), cpu.find_prefixsum_idx(mass))


# -- k-ary layouts ------------------------------------------------------------ #
# The top level may be up to min(k**4, 8192) nodes wide, so the small capacities
# drawn below would mostly be a single top level.  ``top`` patches that bound:
# with 1 the tree is purely k-ary (the root has at most k children) and deep.
TOPS = [1, 5, None]  # None: the default bound


def _trees(
    capacity: int, branching: int, top: int | None, dtype: torch.dtype = torch.float64
) -> tuple[SumSegmentTree, MinSegmentTree]:
    target = "rlbricks.replay._segment_tree._TOP_SIZE"
    with mock.patch(target, top) if top is not None else contextlib.nullcontext():
        return (
            SumSegmentTree(capacity, dtype=dtype, branching=branching),
            MinSegmentTree(capacity, dtype=dtype, branching=branching),
        )


@st.composite
def kary_updates(draw: st.DrawFn) -> tuple[int, int, int | None, list]:
    """A branching factor, a top bound, a capacity and batches of (indices, integer values)."""
    branching = draw(st.sampled_from([2, 4, 16]))
    top = draw(st.sampled_from(TOPS))
    capacity = draw(st.integers(1, 400))
    batches = []
    for _ in range(draw(st.integers(1, 4))):
        size = draw(st.integers(1, 2 * capacity))
        index = draw(st.lists(st.integers(0, capacity - 1), min_size=size, max_size=size))
        values = draw(st.lists(st.integers(0, 5), min_size=size, max_size=size))
        batches.append((index, [float(v) for v in values]))
    return branching, top, capacity, batches


@SETTINGS
@given(kary_updates(), st.data())
def test_kary_trees_match_reference(case: tuple[int, int | None, int, list], data: Any) -> None:
    branching, top, capacity, batches = case
    sum_tree, min_tree = _trees(capacity, branching, top)
    reference = torch.zeros(capacity, dtype=torch.float64)
    written = torch.zeros(capacity, dtype=torch.bool)
    for index, values in batches:
        sum_tree.update(torch.tensor(index), torch.tensor(values))
        min_tree.update(torch.tensor(index), torch.tensor(values))
        for i, v in zip(index, values):  # a Python loop: the last write wins
            reference[i] = v
            written[i] = True
    min_reference = torch.where(written, reference, math.inf)
    assert torch.equal(sum_tree[:], reference)
    assert torch.equal(min_tree[:], min_reference)
    assert sum_tree.reduce().item() == reference.sum().item()
    assert min_tree.reduce().item() == min_reference.min().item()
    ranges = st.tuples(st.integers(0, capacity), st.integers(0, capacity))
    for a, b in data.draw(st.lists(ranges, max_size=12)):
        start, end = min(a, b), max(a, b)
        assert sum_tree.reduce(start, end).item() == reference[start:end].sum().item()
        expected = min_reference[start:end].min().item() if end > start else math.inf
        assert min_tree.reduce(start, end).item() == expected
    # masses on half-integers: exactly on the boundaries, in between and past the total
    total = int(reference.sum().item())
    halves = data.draw(st.lists(st.integers(-2, 2 * total + 4), min_size=1, max_size=40))
    mass = torch.tensor(halves, dtype=torch.float64) / 2
    found = sum_tree.find_prefixsum_idx(mass)
    torch.testing.assert_close(found, _prefix_reference(reference, mass), rtol=0, atol=0)
    # internal nodes rebuilt from the leaves are bit for bit the incremental ones
    for tree in (sum_tree, min_tree):
        rebuilt = _trees(capacity, branching, top)[0 if tree is sum_tree else 1]
        rebuilt.load_state_dict(tree.state_dict())
        assert torch.equal(rebuilt._tree, tree._tree)


@pytest.mark.parametrize("branching", [2, 3, 4, 16])
@pytest.mark.parametrize("top", TOPS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_kary_zero_leaves_never_found_with_rounding(
    branching: int, top: int | None, dtype: torch.dtype
) -> None:
    capacity = 3000
    gen = torch.Generator().manual_seed(branching)
    values = torch.rand(capacity, generator=gen, dtype=torch.float64) * 10.0 ** torch.randint(
        -8, 8, (capacity,), generator=gen
    )
    values[torch.rand(capacity, generator=gen) < 0.6] = 0.0
    values[-200:] = 0.0  # a zero tail: masses past the total must stop before it
    values[: 3 * branching] = 0.0  # and zero heads: masses of 0 must skip them
    values[capacity // 2] = 0.3
    values = values.to(dtype)
    tree, _ = _trees(capacity, branching, top, dtype)
    tree[:] = values
    total = tree.reduce().item()
    edge = [0.0, -1.0, total, math.nextafter(total, 0.0), math.nextafter(total, math.inf)]
    edge += [2 * total, math.inf, math.nan]
    mass = torch.cat([torch.rand(20000, generator=gen, dtype=dtype) * total, torch.tensor(edge)])
    found = tree.find_prefixsum_idx(mass.to(dtype))
    assert bool((values[found] > 0).all())
    # total, 2 * total and inf: the last positive leaf, up to leaves too small to move the
    # running sums (values span 16 orders of magnitude here)
    for leaf in found[-6:-3].tolist():
        skipped = values[leaf + 1 :].double().sum().item()
        assert skipped <= total * torch.finfo(dtype).eps * capacity
    if dtype is torch.float64:
        assert found[-6:-3].tolist() == [int(values.nonzero().max())] * 3
    assert found[-1].item() == int(values.nonzero().min())  # NaN counts as 0


@pytest.mark.parametrize("branching", [2, 16])
def test_kary_all_zero_tree_returns_index_zero(branching: int) -> None:
    tree, _ = _trees(1000, branching, 1)
    assert tree.find_prefixsum_idx(torch.tensor([0.0, 1.0, math.inf])).tolist() == [0, 0, 0]
    tree[[5, 700]] = 1.0
    tree[[5, 700]] = 0.0
    assert tree.find_prefixsum_idx(torch.tensor([0.0, 1.0])).tolist() == [0, 0]


@pytest.mark.parametrize("capacity", [8192, 8193, 20000, 100_000])
def test_default_layout_large_capacities(capacity: int) -> None:
    gen = torch.Generator().manual_seed(capacity)
    values = torch.randint(0, 4, (capacity,), generator=gen).double()
    sum_tree, min_tree = SumSegmentTree(capacity), MinSegmentTree(capacity)
    index = torch.randperm(capacity, generator=gen)[: capacity // 2]
    sum_tree[index] = values[index]
    min_tree[index] = values[index]
    reference = torch.zeros(capacity, dtype=torch.float64)
    reference[index] = values[index]
    assert sum_tree.reduce().item() == reference.sum().item()
    assert sum_tree.reduce(7, capacity - 3).item() == reference[7:-3].sum().item()
    min_reference = torch.full((capacity,), math.inf, dtype=torch.float64)
    min_reference[index] = values[index]
    assert min_tree.reduce(11, capacity // 3).item() == min_reference[11 : capacity // 3].min()
    mass = torch.randint(0, 2 * int(reference.sum()) + 2, (5000,), generator=gen).double() / 2
    found = sum_tree.find_prefixsum_idx(mass)
    torch.testing.assert_close(found, _prefix_reference(reference, mass), rtol=0, atol=0)


def test_last_write_wins_across_stamp_restarts() -> None:
    tree = SumSegmentTree(50, branching=4)
    reference = torch.zeros(50, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    with mock.patch("rlbricks.replay._segment_tree._STAMP_LIMIT", 100):
        for _ in range(30):
            index = torch.randint(50, (40,), generator=gen)
            values = torch.randint(0, 9, (40,), generator=gen).double()
            tree[index] = values
            for i, v in zip(index.tolist(), values.tolist()):
                reference[i] = v
            assert torch.equal(tree[:], reference)
    assert tree.reduce().item() == reference.sum().item()


@pytest.mark.parametrize("branching", [1, 0, -4, 2.0, True, "16"])
def test_invalid_branching(branching: Any) -> None:
    with pytest.raises(ValueError, match="branching must be an int >= 2"):
        SumSegmentTree(10, branching=branching)
    with pytest.raises(ValueError, match="branching must be an int >= 2"):
        MinSegmentTree(10, branching=branching)
