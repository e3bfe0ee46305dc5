"""Writers: RoundRobinWriter (a ring) and TensorDictMaxValueWriter (keep the best rows)."""

from __future__ import annotations

import pytest
import torch

from rlbricks.replay import LazyTensorStorage
from rlbricks.replay import ListStorage
from rlbricks.replay import ReplayBuffer
from rlbricks.replay import RoundRobinWriter
from rlbricks.replay import TensorDictMaxValueWriter
from rlbricks.tensordict import TensorDict


def ring(storage_size: int = 4) -> tuple[RoundRobinWriter, LazyTensorStorage]:
    storage = LazyTensorStorage(storage_size)
    writer = RoundRobinWriter()
    writer.register_storage(storage)
    return writer, storage


def scored(scores: list[float], key="score") -> TensorDict:
    n = len(scores)
    return TensorDict({key: torch.tensor(scores), "id": torch.arange(n)}, batch_size=[n])


def best(scores: list[float], k: int = 3) -> tuple[TensorDictMaxValueWriter, LazyTensorStorage]:
    storage = LazyTensorStorage(k)
    writer = TensorDictMaxValueWriter("score")
    writer.register_storage(storage)
    if scores:
        writer.extend(scored(scores))
    return writer, storage


def kept_scores(storage) -> list[float]:
    return sorted(storage.get(torch.arange(len(storage)))["score"].tolist())


# --------------------------------------------------------------------------- #
# RoundRobinWriter
# --------------------------------------------------------------------------- #
def test_writer_needs_a_storage():
    with pytest.raises(RuntimeError, match="register_storage"):
        RoundRobinWriter().extend(torch.zeros(2))


def test_round_robin_golden_indices():
    writer, storage = ring(4)
    assert writer.extend(torch.arange(3)).tolist() == [0, 1, 2]
    assert writer.cursor == 3
    assert writer.extend(torch.arange(10, 13)).tolist() == [3, 0, 1]
    assert writer.cursor == 2
    assert writer.add(torch.tensor(20)) == 2
    assert writer.add(torch.tensor(21)) == 3
    assert writer.cursor == 0
    assert storage.data.tolist() == [11, 12, 20, 21]
    assert len(storage) == 4


def test_round_robin_batch_larger_than_storage_keeps_the_last_rows():
    writer, storage = ring(4)
    writer.extend(torch.arange(1))  # cursor 1
    index = writer.extend(torch.arange(100, 110))  # 10 rows into 4
    # a sequential ring would put row 100+k at (1 + k) % 4: only 106..109 survive
    assert index.tolist() == [3, 0, 1, 2]
    assert storage.data.tolist() == [107, 108, 109, 106]
    assert writer.cursor == (1 + 10) % 4


def test_round_robin_exactly_full_batch():
    writer, _storage = ring(3)
    assert writer.extend(torch.arange(3)).tolist() == [0, 1, 2]
    assert writer.cursor == 0


def test_round_robin_state_and_empty():
    writer, _ = ring(5)
    writer.extend(torch.arange(3))
    state = writer.state_dict()
    assert state == {"cursor": 3}
    other, _ = ring(5)
    other.load_state_dict(state)
    assert other.cursor == 3
    writer.empty()
    assert writer.cursor == 0
    assert "cursor=0" in repr(writer)


def test_round_robin_list_storage():
    storage = ListStorage(3)
    writer = RoundRobinWriter()
    writer.register_storage(storage)
    assert writer.extend(["a", "b"]).tolist() == [0, 1]
    assert writer.extend(["c", "d"]).tolist() == [2, 0]
    assert storage.get(torch.arange(3)) == ["d", "b", "c"]


def test_round_robin_list_storage_batch_larger_than_capacity():
    """Bug: with n > max_size the ring starts past the end of the (short) list."""
    storage = ListStorage(4)
    writer = RoundRobinWriter()
    writer.register_storage(storage)
    writer.extend(list(range(6)))
    assert len(storage) == 4
    assert sorted(storage.get(torch.arange(4))) == [2, 3, 4, 5]


# --------------------------------------------------------------------------- #
# TensorDictMaxValueWriter
# --------------------------------------------------------------------------- #
def test_max_value_fills_free_rows_then_replaces_the_worst():
    writer, storage = best([1.0, 5.0], k=3)
    assert kept_scores(storage) == [1.0, 5.0]
    row_of_1 = int((storage.data["score"][:2] == 1.0).nonzero())
    index = writer.extend(scored([3.0, 0.5, 7.0]))
    # 7 fills the free row 2; 3 replaces the row holding 1; 0.5 is dropped
    assert sorted(index.tolist()) == sorted([row_of_1, 2])
    assert storage.data["score"][row_of_1].item() == 3.0
    assert kept_scores(storage) == [3.0, 5.0, 7.0]
    assert sorted(writer.last_kept.tolist()) == [0, 2]


def test_max_value_golden_single_batch():
    _, storage = best([1.0, 5.0, 3.0, 0.0, 4.0, 2.0], k=3)
    rows = storage.get(torch.arange(3))
    assert sorted(rows["score"].tolist()) == [3.0, 4.0, 5.0]
    # the rows are moved with their score
    assert sorted(rows["id"].tolist()) == [1, 2, 4]


@pytest.mark.parametrize("first", [[], [1.0, 2.0]], ids=["empty", "full"])
def test_max_value_batch_larger_than_the_storage(first):
    """Bug: more leftover rows than stored rows to pair them with -> shape error in _place."""
    writer, storage = best(first, k=2)
    writer.extend(scored([0.0, 9.0, 3.0, 8.0, 0.5]))
    assert kept_scores(storage) == [8.0, 9.0]


def test_max_value_nothing_better_writes_nothing():
    writer, storage = best([5.0, 6.0, 7.0], k=3)
    before = storage.get(torch.arange(3)).clone()
    index = writer.extend(scored([1.0, 2.0]))
    assert index.tolist() == []
    assert writer.last_kept.tolist() == []
    assert torch.equal(storage.get(torch.arange(3))["score"], before["score"])


def test_max_value_ties_do_not_replace():
    writer, _storage = best([2.0, 2.0], k=2)
    assert writer.extend(scored([2.0])).tolist() == []


def test_max_value_add_returns_index_or_none():
    writer, storage = best([], k=2)
    row = lambda v: TensorDict({"score": torch.tensor(v), "id": torch.tensor(0)})  # noqa: E731
    assert [writer.add(row(v)) for v in [1.0, 3.0, 0.0, 2.0, 5.0]] == [0, 1, None, 0, 0]
    assert kept_scores(storage) == [3.0, 5.0]


@pytest.mark.parametrize(
    ("reduction", "kept"),
    [("sum", [0, 2]), ("mean", [0, 2]), ("max", [1, 2]), ("min", [0, 2])],
)
def test_max_value_reductions(reduction, kept):
    # per-row values:  sum   mean  max   min
    # id0 [3, 3]       6     3     3     3
    # id1 [-9, 5]     -4    -2     5    -9
    # id2 [4, 4]       8     4     4     4
    values = torch.tensor([[3.0, 3.0], [-9.0, 5.0], [4.0, 4.0]])
    data = TensorDict({"v": values, "id": torch.arange(3)}, batch_size=[3])
    storage = LazyTensorStorage(2)
    writer = TensorDictMaxValueWriter("v", reduction=reduction)
    writer.register_storage(storage)
    writer.extend(data)
    assert sorted(storage.get(torch.arange(2))["id"].tolist()) == kept


def test_max_value_default_key_is_next_reward():
    rb = ReplayBuffer(storage=LazyTensorStorage(2), writer=TensorDictMaxValueWriter())
    rb.extend({"next": {"reward": torch.tensor([[1.0], [4.0], [2.0]])}})
    assert sorted(rb.storage.data["next", "reward"].view(-1).tolist()) == [2.0, 4.0]


def test_max_value_argument_errors():
    with pytest.raises(ValueError, match="reduction"):
        TensorDictMaxValueWriter("v", reduction="median")
    writer, _ = best([], k=2)
    with pytest.raises(TypeError, match="TensorDict"):
        writer.extend(torch.zeros(3))


def test_max_value_state_round_trip_and_empty():
    writer, storage = best([1.0, 5.0, 3.0], k=3)
    other = TensorDictMaxValueWriter("score")
    other.register_storage(storage)
    other.load_state_dict(writer.state_dict())
    # the restored ranks decide the next replacement exactly as the original would
    assert sorted(other.extend(scored([2.0])).tolist()) == sorted(
        writer.state_dict()["ranks"].argmin(0, keepdim=True).tolist()
    )
    writer.empty()
    storage.empty()
    assert writer.extend(scored([0.0])).tolist() == [0]


def test_max_value_with_list_storage():
    storage = ListStorage(3)
    writer = TensorDictMaxValueWriter("score")
    writer.register_storage(storage)
    writer.extend(scored([1.0, 5.0, 3.0, 0.0, 7.0]))
    assert sorted(x["score"].item() for x in storage.get(torch.arange(3))) == [3.0, 5.0, 7.0]
