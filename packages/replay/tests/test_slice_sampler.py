"""SliceSampler: slices lie inside one trajectory, never cross the write cursor,
are uniform over the valid slices, and carry slice-end markers."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from torch import Tensor

from rlbricks.replay import EmptyBufferError
from rlbricks.replay import ReplayError
from rlbricks.replay import SliceSampler
from rlbricks.replay import Storage
from rlbricks.tensordict import TensorDict

DONE = ("next", "done")
TRUNC = ("next", "truncated")
IDS = ("collector", "traj_ids")


class TDStorage(Storage):
    """The smallest Storage with ``column``: a TensorDict whose rows are all valid."""

    def __init__(self, td: TensorDict) -> None:
        super().__init__(max(int(td.batch_size[0]), 1))
        self.td = td

    def set(self, index: int | Tensor, data: Any) -> None:
        self.td[index] = data

    def get(self, index: int | Tensor) -> Any:
        return self.td[index]

    def __len__(self) -> int:
        return int(self.td.batch_size[0])

    def empty(self) -> None:
        self.td = self.td[:0]

    def column(self, key: Any) -> Tensor:
        return self.td[key]

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        pass


def lazy_storage(td: TensorDict) -> Storage:
    from rlbricks.replay import LazyTensorStorage

    storage = LazyTensorStorage(max(int(td.batch_size[0]), 1))
    if td.batch_size[0]:
        storage.set(torch.arange(int(td.batch_size[0])), td)
    return storage


STORAGES = [pytest.param(TDStorage, id="td"), pytest.param(lazy_storage, id="lazy")]


def circular(lengths: list[int], max_size: int) -> tuple[TensorDict, int]:
    """Episodes of ``lengths`` steps written in time order into ``max_size`` rows.

    Returns the rows (keys: done, truncated, traj ids and ``"step"``, the time
    of each row) and the last written row.
    """
    traj = torch.cat([torch.full((n,), i) for i, n in enumerate(lengths)])
    done = torch.cat([torch.arange(n) == n - 1 for n in lengths])
    total = len(traj)
    steps = torch.arange(total)[-max_size:]  # the rows that survive
    rows = steps % max_size
    order = torch.argsort(rows)
    steps = steps[order]
    td = TensorDict(
        {
            "step": steps,
            "collector": {"traj_ids": traj[steps]},
            "next": {"done": done[steps].unsqueeze(-1), "truncated": done[steps].unsqueeze(-1)},
        },
        batch_size=[len(steps)],
    )
    return td, (total - 1) % max_size


def segments(td: TensorDict) -> list[tuple[int, int]]:
    """The (start, length) of each trajectory, found row by row from the time of each row."""
    step, traj = td["step"].tolist(), td[IDS].tolist()
    out, start = [], 0
    for row in range(1, len(step) + 1):
        if row == len(step) or step[row] != step[row - 1] + 1 or traj[row] != traj[row - 1]:
            out.append((start, row - start))
            start = row
    return out


def reference_slices(td: TensorDict, slice_len: int, strict: bool) -> set[tuple[int, int]]:
    """Every valid (start, length) of a slice."""
    valid = set()
    for start, length in segments(td):
        if length >= slice_len:
            valid |= {(s, slice_len) for s in range(start, start + length - slice_len + 1)}
        elif not strict:
            valid.add((start, length))
    return valid


def split(index: Tensor, info: dict[Any, Any]) -> list[tuple[int, int]]:
    """The (start, length) of each slice, checking each is a run of consecutive rows."""
    out = []
    for piece in index.split(info["slice_lengths"].tolist()):
        assert torch.equal(piece, torch.arange(int(piece[0]), int(piece[0]) + len(piece)))
        out.append((int(piece[0]), len(piece)))
    return out


def sampler_for(mode: str, **kwargs: Any) -> SliceSampler:
    keys: dict[str, Any] = {"end": {"end_key": DONE}, "traj": {"traj_key": IDS}, "default": {}}[
        mode
    ]
    return SliceSampler(**keys, **kwargs)


# --------------------------------------------------------------------------- #
# golden cases: one possible slice
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("make_storage", STORAGES)
@pytest.mark.parametrize("mode", ["end", "traj", "default"])
def test_single_possible_slice(make_storage: Any, mode: str) -> None:
    td, last = circular([2, 4, 1], max_size=7)  # rows 0-1 | 2-5 | 6
    sampler = sampler_for(mode, num_slices=3, generator=torch.Generator().manual_seed(0))
    sampler.extend(torch.tensor([last]))
    index, info = sampler.sample(make_storage(td), batch_size=12)
    assert index.dtype == torch.long
    assert index.tolist() == [2, 3, 4, 5] * 3
    assert info[TRUNC].shape == (12, 1)
    assert info[TRUNC].view(-1).tolist() == [False, False, False, True] * 3
    assert info["slice_id"].tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert info["slice_lengths"].tolist() == [4, 4, 4]


@pytest.mark.parametrize("make_storage", STORAGES)
@pytest.mark.parametrize("mode", ["end", "traj"])
def test_cursor_in_the_middle_of_an_episode(make_storage: Any, mode: str) -> None:
    # Episode A has 8 steps (t0-t7), episode B 3 unfinished steps (t8-t10), 6 rows:
    # rows hold A6 A7 | B0 B1 B2 (last written) | A5.  Without the cursor, the done
    # flags alone would join B2 and A5 into one trajectory.
    td, last = circular([8, 3], max_size=6)
    td[DONE][4] = False  # ... and B is unfinished: only A7 is done
    assert last == 4
    assert td["step"].tolist() == [6, 7, 8, 9, 10, 5]
    sampler = sampler_for(mode, slice_len=3, generator=torch.Generator().manual_seed(0))
    sampler.extend(torch.tensor([3, 4]))  # the buffer reports the rows of each write
    index, _ = sampler.sample(make_storage(td), batch_size=6)
    assert index.tolist() == [2, 3, 4, 2, 3, 4]


def test_no_wrap_from_last_row_to_row_0() -> None:
    # A trajectory filling rows 4, 5 then 0, 1 in time: the sampler splits it at the end.
    ids = torch.tensor([7, 7, 1, 1, 7, 7])
    td = TensorDict({"collector": {"traj_ids": ids}}, batch_size=[6])
    sampler = SliceSampler(slice_len=2, traj_key=IDS)
    index, _ = sampler.sample(TDStorage(td), batch_size=200)
    starts = set(index.view(-1, 2)[:, 0].tolist())
    assert starts == {0, 2, 4}
    with pytest.raises(ReplayError, match="longest stored trajectory has 2 steps"):
        SliceSampler(slice_len=3, traj_key=IDS).sample(TDStorage(td), 3)


def test_non_strict_short_slices() -> None:
    td, last = circular([1, 4, 2], max_size=7)  # rows 0 | 1-4 | 5-6
    sampler = SliceSampler(num_slices=400, strict_length=False)
    sampler.extend(torch.tensor([last]))
    index, info = sampler.sample(TDStorage(td), batch_size=1200)
    slices = split(index, info)
    assert set(slices) == {(0, 1), (1, 3), (2, 3), (5, 2)}
    assert len(index) == int(info["slice_lengths"].sum()) < 1200
    ends = torch.tensor([s + n - 1 for s, n in slices])
    assert torch.equal(index[info[TRUNC].view(-1)], ends)
    assert torch.equal(info["slice_id"].bincount(), info["slice_lengths"])


# --------------------------------------------------------------------------- #
# property tests
# --------------------------------------------------------------------------- #
@settings(max_examples=150, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 7), min_size=1, max_size=8),
    max_size=st.integers(1, 30),
    slice_len=st.integers(1, 6),
    num_slices=st.integers(1, 5),
    mode=st.sampled_from(["end", "traj", "default"]),
    strict=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_slices_lie_inside_one_trajectory(
    lengths: list[int],
    max_size: int,
    slice_len: int,
    num_slices: int,
    mode: str,
    strict: bool,
    seed: int,
) -> None:
    td, last = circular(lengths, max_size)
    storage = TDStorage(td)
    sampler = sampler_for(
        mode,
        slice_len=slice_len,
        strict_length=strict,
        generator=torch.Generator().manual_seed(seed),
    )
    sampler.extend(torch.tensor([last]))
    valid = reference_slices(td, slice_len, strict)
    if not valid:
        longest = max(n for _, n in segments(td))
        with pytest.raises(ReplayError, match=f"longest stored trajectory has {longest} steps"):
            sampler.sample(storage, num_slices * slice_len)
        return
    index, info = sampler.sample(storage, num_slices * slice_len)
    slices = split(index, info)
    assert len(slices) == num_slices
    assert set(slices) <= valid
    if strict:
        assert len(index) == num_slices * slice_len
    # one trajectory, consecutive times, no done before the last step
    step, traj, done = td["step"][index], td[IDS][index], td[DONE][index].view(-1)
    last_step = info[TRUNC].view(-1)
    assert info[TRUNC].shape == (len(index), 1)
    assert info[TRUNC].dtype == torch.bool
    assert not done[~last_step].any()
    same = info["slice_id"][1:] == info["slice_id"][:-1]
    assert torch.equal(same, ~last_step[:-1])
    assert (step[1:][same] == step[:-1][same] + 1).all()
    assert (traj[1:][same] == traj[:-1][same]).all()
    # the row written last is never followed inside a slice
    assert not (index[:-1][same] == last).any()


@pytest.mark.parametrize("chunk", [1, 3, 7, 20])
def test_through_a_circular_buffer(chunk: int) -> None:
    from rlbricks.replay import LazyTensorStorage
    from rlbricks.replay import TensorDictReplayBuffer

    lengths = [5, 9, 3, 12, 6, 8]
    stream, _ = circular(lengths, max_size=sum(lengths))  # time order, not wrapped
    rb = TensorDictReplayBuffer(
        storage=LazyTensorStorage(20),
        sampler=SliceSampler(num_slices=6, generator=torch.Generator().manual_seed(chunk)),
    )
    stream[TRUNC] = torch.zeros_like(stream[TRUNC])
    for begin in range(0, len(stream), chunk):
        rb.extend(stream[begin : begin + chunk])
        if len(rb) < 8:
            continue
        batch = rb.sample(24)
        step, traj = batch["step"].view(6, 4), batch[IDS].view(6, 4)
        assert (step[:, 1:] == step[:, :-1] + 1).all()  # consecutive in time ...
        assert (traj == traj[:, :1]).all()  # ... in one trajectory
        expected = torch.zeros(6, 4, dtype=torch.bool)
        expected[:, -1] = True
        assert torch.equal(batch[TRUNC].view(6, 4), expected)
        assert torch.equal(batch[DONE].view(6, 4), expected)
        assert set(batch.keys()) >= {"index", "step"}
        assert "slice_id" not in batch.keys()


# --------------------------------------------------------------------------- #
# uniformity over valid slices
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    ("lengths", "slice_len", "strict", "expected"),
    [
        ([2, 5, 3], 2, True, [0, 2, 3, 4, 5, 7, 8]),
        ([1, 4, 2], 3, False, [0, 1, 2, 5]),
    ],
)
def test_uniform_over_valid_slices(
    lengths: list[int], slice_len: int, strict: bool, expected: list[int]
) -> None:
    td, last = circular(lengths, max_size=sum(lengths))
    draws = 7000
    sampler = SliceSampler(
        num_slices=draws, strict_length=strict, generator=torch.Generator().manual_seed(1)
    )
    sampler.extend(torch.tensor([last]))
    index, info = sampler.sample(TDStorage(td), batch_size=draws * slice_len)
    starts = [s for s, _ in split(index, info)]
    counts = torch.bincount(torch.tensor(starts), minlength=sum(lengths))
    assert counts.nonzero().view(-1).tolist() == expected
    mean = draws / len(expected)
    # 5 standard deviations of a binomial count: fails by chance with p < 1e-5
    assert (counts[expected] - mean).abs().max() < 5 * (mean * (1 - 1 / len(expected))) ** 0.5


# --------------------------------------------------------------------------- #
# errors
# --------------------------------------------------------------------------- #
def test_no_boundary_column_names_the_keys() -> None:
    storage = TDStorage(TensorDict({"obs": torch.zeros(4, 2)}, batch_size=[4]))
    with pytest.raises(KeyError) as err:
        SliceSampler(slice_len=2).sample(storage, 4)
    message = str(err.value)
    assert str(DONE) in message
    assert str(IDS) in message
    assert "obs" in message
    with pytest.raises(KeyError, match="episode"):
        SliceSampler(slice_len=2, traj_key="episode").sample(storage, 4)


def test_none_long_enough() -> None:
    td, _ = circular([2, 3, 1], max_size=6)
    with pytest.raises(ReplayError, match="longest stored trajectory has 3 steps"):
        SliceSampler(slice_len=4).sample(TDStorage(td), 8)


@pytest.mark.parametrize(
    ("kwargs", "batch_size", "words"),
    [
        ({"num_slices": 3}, 10, ["10", "num_slices 3"]),
        ({"slice_len": 4}, 6, ["6", "slice_len 4"]),
        ({"slice_len": 4}, 0, ["0", "slice_len 4"]),
    ],
)
def test_indivisible_batch_size(kwargs: dict[str, int], batch_size: int, words: list[str]) -> None:
    td, _ = circular([5, 5], max_size=10)
    with pytest.raises(ValueError) as err:
        SliceSampler(**kwargs).sample(TDStorage(td), batch_size)  # type: ignore[arg-type]
    assert all(word in str(err.value) for word in words)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"num_slices": 2, "slice_len": 3},
        {"num_slices": 0},
        {"slice_len": -1},
        {"slice_len": 2.0},
        {"slice_len": 2, "end_key": DONE, "traj_key": IDS},
    ],
)
def test_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SliceSampler(**kwargs)


def test_column_with_several_values_per_row() -> None:
    td = TensorDict({"next": {"done": torch.zeros(4, 2, dtype=torch.bool)}}, batch_size=[4])
    with pytest.raises(ValueError, match=r"shape \(4, 2\)"):
        SliceSampler(slice_len=2).sample(TDStorage(td), 4)


def test_empty_storage() -> None:
    td = TensorDict({"next": {"done": torch.zeros(0, 1, dtype=torch.bool)}}, batch_size=[0])
    with pytest.raises(EmptyBufferError):
        SliceSampler(slice_len=2).sample(TDStorage(td), 4)


# --------------------------------------------------------------------------- #
# cache, state, repr
# --------------------------------------------------------------------------- #
def test_boundaries_cached_until_extend_or_empty() -> None:
    td, _ = circular([4, 4], max_size=8)
    storage = TDStorage(td)
    sampler = SliceSampler(slice_len=4, generator=torch.Generator().manual_seed(0))
    sampler.sample(storage, 8)
    calls = []
    column = storage.column

    def spy(key: Any) -> Tensor:
        calls.append(key)
        return column(key)

    storage.column = spy  # type: ignore[method-assign]
    sampler.sample(storage, 8)
    assert calls == []  # cached
    sampler.extend(torch.tensor([1]))  # row 1 written last: rows 0-1 | 2-3 | 4-7
    index, _ = sampler.sample(storage, 400)
    assert calls == [DONE]
    assert set(index.view(-1, 4)[:, 0].tolist()) == {4}
    sampler.empty()
    assert sampler.state_dict() == {"last_written": -1}
    assert set(sampler.sample(storage, 400)[0].view(-1, 4)[:, 0].tolist()) == {0, 4}


def test_state_dict_round_trip() -> None:
    td, last = circular([8, 3], max_size=6)
    sampler = SliceSampler(slice_len=3, traj_key=IDS, generator=torch.Generator().manual_seed(0))
    sampler.add(last)
    state = sampler.state_dict()
    assert state == {"last_written": 4}
    restored = SliceSampler(slice_len=3, traj_key=IDS, generator=torch.Generator().manual_seed(0))
    restored.load_state_dict(state)
    storage = TDStorage(td)
    assert torch.equal(sampler.sample(storage, 30)[0], restored.sample(storage, 30)[0])


def test_same_seed_same_batch() -> None:
    td, _ = circular([5, 7, 6], max_size=18)
    storage = TDStorage(td)
    a, b = (
        SliceSampler(num_slices=4, generator=torch.Generator().manual_seed(3)) for _ in range(2)
    )
    assert torch.equal(a.sample(storage, 12)[0], b.sample(storage, 12)[0])


def test_truncated_key_none() -> None:
    td, _ = circular([4], max_size=4)
    _, info = SliceSampler(slice_len=2, truncated_key=None).sample(TDStorage(td), 4)
    assert set(info) == {"slice_id", "slice_lengths"}


def test_repr() -> None:
    assert repr(SliceSampler(slice_len=4)) == "SliceSampler(slice_len=4, strict_length=True)"
    assert repr(SliceSampler(num_slices=2, traj_key=IDS, strict_length=False)) == (
        "SliceSampler(num_slices=2, traj_key=('collector', 'traj_ids'), strict_length=False)"
    )
