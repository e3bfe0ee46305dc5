"""Uniform samplers: RandomSampler and SamplerWithoutReplacement."""

from __future__ import annotations

import pytest
import torch

from rlbricks.replay import EmptyBufferError
from rlbricks.replay import LazyTensorStorage
from rlbricks.replay import RandomSampler
from rlbricks.replay import ReplayBuffer
from rlbricks.replay import SamplerWithoutReplacement


def filled(n: int, capacity: int = 16) -> LazyTensorStorage:
    storage = LazyTensorStorage(capacity)
    if n:
        storage.set(torch.arange(n), torch.arange(n))
    return storage


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- #
# RandomSampler
# --------------------------------------------------------------------------- #
def test_random_matches_reference_draw():
    index, info = RandomSampler(generator=gen(3)).sample(filled(7), 20)
    assert info == {}
    assert index.dtype == torch.long
    assert index.shape == (20,)
    assert torch.equal(index, torch.randint(7, (20,), generator=gen(3)))


def test_random_draws_only_valid_rows():
    index, _ = RandomSampler(generator=gen()).sample(filled(5, capacity=100), 2000)
    assert int(index.min()) == 0
    assert int(index.max()) == 4


def test_random_is_roughly_uniform():
    index, _ = RandomSampler(generator=gen(1)).sample(filled(4), 40_000)
    counts = torch.bincount(index, minlength=4).double()
    # 4 sigma of a binomial(40000, 1/4) is ~350
    assert torch.all((counts - 10_000).abs() < 350), counts


def test_random_with_global_seed_is_reproducible():
    storage = filled(9)
    torch.manual_seed(11)
    a, _ = RandomSampler().sample(storage, 8)
    torch.manual_seed(11)
    b, _ = RandomSampler().sample(storage, 8)
    assert torch.equal(a, b)


def test_random_empty_storage():
    with pytest.raises(EmptyBufferError, match="empty"):
        RandomSampler().sample(filled(0), 3)


def test_random_is_stateless_and_never_runs_out():
    sampler = RandomSampler()
    assert sampler.state_dict() == {}
    assert not sampler.ran_out
    with pytest.raises(TypeError, match="PrioritizedSampler"):
        sampler.update_priority(torch.tensor([0]), torch.tensor([1.0]))
    assert repr(sampler) == "RandomSampler()"


# --------------------------------------------------------------------------- #
# SamplerWithoutReplacement
# --------------------------------------------------------------------------- #
def test_without_replacement_storage_order():
    sampler = SamplerWithoutReplacement(shuffle=False)
    storage = filled(10)
    batches = [sampler.sample(storage, 4)[0].tolist() for _ in range(3)]
    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert sampler.ran_out
    assert sampler.sample(storage, 4)[0].tolist() == [0, 1, 2, 3]  # next epoch
    assert not sampler.ran_out


def test_without_replacement_drop_last_storage_order():
    sampler = SamplerWithoutReplacement(shuffle=False, drop_last=True)
    storage = filled(10)
    first = [sampler.sample(storage, 4)[0].tolist() for _ in range(2)]
    assert first == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert sampler.ran_out
    assert sampler.sample(storage, 4)[0].tolist() == [0, 1, 2, 3]


def test_without_replacement_shuffled_epoch_is_a_permutation():
    sampler = SamplerWithoutReplacement(generator=gen(5))
    storage = filled(11)
    epoch = torch.cat([sampler.sample(storage, 3)[0] for _ in range(4)])
    assert sorted(epoch.tolist()) == list(range(11))
    # golden: the epoch order is randperm with the same generator
    assert torch.equal(epoch, torch.randperm(11, generator=gen(5)))


def test_without_replacement_epochs_differ():
    sampler = SamplerWithoutReplacement(generator=gen(0))
    storage = filled(12)
    one = torch.cat([sampler.sample(storage, 6)[0] for _ in range(2)])
    two = torch.cat([sampler.sample(storage, 6)[0] for _ in range(2)])
    assert sorted(one.tolist()) == sorted(two.tolist()) == list(range(12))
    assert not torch.equal(one, two)


def test_without_replacement_rows_written_mid_epoch_join_the_next():
    sampler = SamplerWithoutReplacement(shuffle=False)
    storage = filled(4)
    assert sampler.sample(storage, 2)[0].tolist() == [0, 1]
    storage.set(torch.arange(4, 6), torch.arange(4, 6))
    assert sampler.sample(storage, 2)[0].tolist() == [2, 3]
    assert sampler.ran_out
    assert sampler.sample(storage, 6)[0].tolist() == [0, 1, 2, 3, 4, 5]


def test_without_replacement_batch_larger_than_storage():
    sampler = SamplerWithoutReplacement(shuffle=False)
    index, _ = sampler.sample(filled(3), 5)
    assert index.tolist() == [0, 1, 2]
    assert sampler.ran_out
    with pytest.raises(ValueError, match="drop_last"):
        SamplerWithoutReplacement(drop_last=True).sample(filled(3), 5)


def test_without_replacement_empty_storage():
    with pytest.raises(EmptyBufferError):
        SamplerWithoutReplacement().sample(filled(0), 2)


def test_without_replacement_state_round_trip_mid_epoch():
    sampler = SamplerWithoutReplacement(generator=gen(2))
    storage = filled(9)
    sampler.sample(storage, 4)
    other = SamplerWithoutReplacement()
    other.load_state_dict(sampler.state_dict())
    assert torch.equal(other.sample(storage, 4)[0], sampler.sample(storage, 4)[0])
    assert not other.ran_out
    assert not sampler.ran_out
    assert torch.equal(other.sample(storage, 4)[0], sampler.sample(storage, 4)[0])
    assert other.ran_out
    assert sampler.ran_out


def test_without_replacement_empty_restarts_the_epoch():
    sampler = SamplerWithoutReplacement(shuffle=False)
    storage = filled(6)
    sampler.sample(storage, 4)
    sampler.empty()
    assert not sampler.ran_out
    assert sampler.sample(storage, 4)[0].tolist() == [0, 1, 2, 3]
    assert "drop_last=False" in repr(sampler)


@pytest.mark.parametrize(("drop_last", "expected"), [(False, 4), (True, 3)])
def test_buffer_iterates_one_epoch(drop_last, expected):
    rb = ReplayBuffer(
        storage=LazyTensorStorage(20),
        sampler=SamplerWithoutReplacement(drop_last=drop_last, generator=gen()),
        batch_size=3,
    )
    rb.extend(torch.arange(10))
    batches = list(rb)
    assert len(batches) == expected
    seen = torch.cat(batches).tolist()
    assert len(seen) == len(set(seen))
    assert len(seen) == (9 if drop_last else 10)
    assert len(list(rb)) == expected  # the next iteration is a new epoch
