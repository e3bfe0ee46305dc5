"""PrioritizedSampler: sampling distribution, importance weights, priority updates and state."""

from __future__ import annotations

import io
import math
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from rlbricks.replay import EmptyBufferError
from rlbricks.replay import PrioritizedSampler
from rlbricks.replay import ReplayError
from rlbricks.replay import Sampler
from rlbricks.replay import Storage


class Rows(Storage):
    """A storage that only knows how many rows it holds: all the sampler reads."""

    def __init__(self, n: int, max_size: int | None = None) -> None:
        super().__init__(max_size or max(n, 1))
        self.n = n

    def __len__(self) -> int:
        return self.n

    def set(self, index: int | torch.Tensor, data: Any) -> None:
        raise NotImplementedError

    def get(self, index: int | torch.Tensor) -> Any:
        raise NotImplementedError

    def empty(self) -> None:
        self.n = 0

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        pass


def _filled(
    priority: torch.Tensor, capacity: int | None = None, **kwargs: Any
) -> PrioritizedSampler:
    n = len(priority)
    kwargs = {"alpha": 0.7, "beta": 0.5, **kwargs}
    sampler = PrioritizedSampler(capacity or n, **kwargs)
    sampler.extend(torch.arange(n))
    sampler.update_priority(torch.arange(n), priority)
    return sampler


def test_is_a_sampler() -> None:
    assert isinstance(PrioritizedSampler(4, alpha=0.6, beta=0.4), Sampler)


def test_frequencies_match_analytic_distribution() -> None:
    priority = torch.tensor([0.5, 1.0, 2.0, 0.1, 3.0, 0.0, 1.5, 4.0, 0.7, 2.2], dtype=torch.float64)
    alpha, eps, n_draws = 0.7, 1e-8, 100_000
    sampler = _filled(priority, alpha=alpha, eps=eps)
    torch.manual_seed(0)
    index, info = sampler.sample(Rows(10), n_draws)
    assert index.shape == (n_draws,)
    assert index.dtype == torch.long
    assert info["_weight"].shape == (n_draws,)
    assert info["_weight"].dtype == torch.float32
    q = (priority + eps) ** alpha
    expected = q / q.sum()
    freq = torch.bincount(index, minlength=10).double() / n_draws
    # each frequency has standard deviation sqrt(p(1-p)/n) <= 0.0016; five of them
    # bound one cell with probability 1 - 6e-7 (ten cells: still < 1e-5 to fail by chance)
    bound = 5 * (expected * (1 - expected) / n_draws).sqrt() + 1e-12
    assert bool(((freq - expected).abs() <= bound).all()), (freq, expected)
    # row 5 has priority 0 but eps > 0: it is possible, just very rare
    assert expected[5] < 1e-5


def test_chi_square_goodness_of_fit() -> None:
    gen = torch.Generator().manual_seed(3)
    priority = torch.rand(50, generator=gen, dtype=torch.float64) * 5 + 0.05
    sampler = _filled(priority, alpha=0.9, generator=torch.Generator().manual_seed(7))
    index, _ = sampler.sample(Rows(50), 100_000)
    q = (priority + 1e-8) ** 0.9
    expected_counts = q / q.sum() * 100_000
    chi2 = ((torch.bincount(index, minlength=50) - expected_counts) ** 2 / expected_counts).sum()
    # 49 degrees of freedom: the 0.999 quantile of chi2(49) is 85.4
    assert chi2.item() < 85.4


def test_importance_weights_match_reference_formula() -> None:
    priority = torch.tensor([1.0, 3.0, 0.5, 2.0, 8.0], dtype=torch.float64)
    alpha, beta, eps = 0.6, 0.4, 1e-6
    sampler = _filled(priority, alpha=alpha, beta=beta, eps=eps)
    torch.manual_seed(1)
    index, info = sampler.sample(Rows(5), 64)
    # the textbook form: w_i = (N * P(i)) ** -beta / max_j (N * P(j)) ** -beta
    q = (priority + eps) ** alpha
    prob = q / q.sum()
    w_all = (5 * prob) ** -beta
    expected = (w_all / w_all.max())[index].float()
    torch.testing.assert_close(info["_weight"], expected, rtol=1e-6, atol=0)
    assert info["_weight"].max().item() <= 1.0


def test_weights_follow_annealed_beta() -> None:
    sampler = _filled(torch.tensor([1.0, 4.0]), alpha=1.0, beta=0.0, eps=0.0)
    torch.manual_seed(0)
    index, info = sampler.sample(Rows(2), 20)
    assert bool((info["_weight"] == 1).all())
    sampler.beta = 0.5
    torch.manual_seed(0)
    index, info = sampler.sample(Rows(2), 20)
    expected = torch.where(index == 0, 1.0, 0.5)  # (4 / 1) ** -0.5
    torch.testing.assert_close(info["_weight"], expected)


def test_only_valid_rows_are_sampled() -> None:
    sampler = PrioritizedSampler(10, alpha=1.0, beta=1.0, eps=0.0)
    sampler.extend(torch.arange(10))
    sampler.update_priority(torch.arange(10), torch.tensor([1.0, 2.0, 1.0, 0.5] + [100.0] * 6))
    torch.manual_seed(0)
    index, info = sampler.sample(Rows(4, max_size=10), 2000)
    assert int(index.max()) <= 3
    # q_min is taken over the valid rows only: row 3 (0.5) has weight 1
    torch.testing.assert_close(info["_weight"][index == 3], torch.ones(int((index == 3).sum())))


def test_alpha_zero_is_uniform() -> None:
    gen = torch.Generator().manual_seed(0)
    sampler = _filled(torch.rand(8, generator=gen) * 10, alpha=0.0, beta=1.0)
    assert bool((sampler.priority(torch.arange(8)) == 1).all())
    torch.manual_seed(2)
    index, info = sampler.sample(Rows(8), 80_000)
    freq = torch.bincount(index, minlength=8).double() / 80_000
    assert (freq - 1 / 8).abs().max().item() < 5 * math.sqrt(1 / 8 * 7 / 8 / 80_000)
    assert bool((info["_weight"] == 1).all())


def test_zero_priority_rows_are_never_drawn_and_do_not_set_the_weights() -> None:
    sampler = _filled(torch.tensor([0.0, 2.0, 0.0, 1.0]), alpha=1.0, beta=1.0, eps=0.0)
    torch.manual_seed(0)
    index, info = sampler.sample(Rows(4), 5000)
    assert set(index.tolist()) == {1, 3}
    torch.testing.assert_close(info["_weight"], torch.where(index == 3, 1.0, 0.5))


def test_new_rows_get_the_max_priority() -> None:
    sampler = PrioritizedSampler(6, alpha=0.5, beta=0.5, eps=0.0, max_priority_init=4.0)
    sampler.extend(torch.tensor([0, 1]))
    assert sampler.priority([0, 1]).tolist() == [2.0, 2.0]  # 4 ** 0.5
    sampler.update_priority(torch.tensor([0, 1]), torch.tensor([9.0, 1.0]))
    assert sampler.max_priority == 9.0
    sampler.add(2)
    assert sampler.priority(2).item() == 3.0
    sampler.update_priority(0, 0.25)  # the running maximum never decreases
    sampler.extend(torch.tensor([3]))
    assert sampler.priority(3).item() == 3.0
    sampler.extend(torch.tensor([4, 5]), priority=torch.tensor([16.0, 0.0]))
    assert sampler.priority([4, 5]).tolist() == [4.0, 0.0]
    assert sampler.max_priority == 16.0


def test_first_update_replaces_max_priority_init() -> None:
    sampler = PrioritizedSampler(3, alpha=1.0, beta=0.5, eps=0.0)
    sampler.update_priority([0, 1], [0.1, 0.2])
    sampler.add(2)
    assert sampler.priority(2).item() == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("reduction", "expected"),
    [("max", [3.0, 5.0]), ("min", [1.0, 0.0]), ("mean", [2.0, 2.0]), ("median", [2.0, 1.0])],
)
def test_reductions_over_trailing_dims(reduction: str, expected: list[float]) -> None:
    sampler = PrioritizedSampler(4, alpha=1.0, beta=0.5, eps=0.0, reduction=reduction)
    priority = torch.tensor([[1.0, 3.0, 2.0], [5.0, 0.0, 1.0]])
    sampler.update_priority(torch.tensor([1, 3]), priority)
    assert sampler.priority([1, 3]).tolist() == expected
    sampler.update_priority(2, torch.tensor([[1.0, 3.0, 2.0]]).T)  # int index, [T, 1] priority
    assert sampler.priority(2).item() == expected[0]


def test_priority_shapes() -> None:
    sampler = PrioritizedSampler(8, alpha=1.0, beta=0.5, eps=0.0)
    sampler.update_priority(torch.tensor([0, 1]), torch.tensor([[2.0], [3.0]]))  # [B, 1]
    sampler.update_priority([2, 3], 7.0)  # a scalar for every index
    sampler.update_priority(torch.tensor([[4, 5], [6, 7]]), torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert sampler.priority(torch.arange(8)).tolist() == [2, 3, 7, 7, 1, 2, 3, 4]
    sampler.update_priority(torch.tensor([], dtype=torch.long), torch.tensor([]))  # no-op
    with pytest.raises(
        ValueError, match=r"priority of shape \(3,\) does not match index of shape \(2,\)"
    ):
        sampler.update_priority(torch.tensor([0, 1]), torch.ones(3))


def test_repeated_index_keeps_last_priority() -> None:
    sampler = PrioritizedSampler(4, alpha=1.0, beta=0.5, eps=0.0)
    sampler.update_priority(torch.tensor([1, 2, 1, 1]), torch.tensor([5.0, 2.0, 3.0, 0.5]))
    assert sampler.priority([1, 2]).tolist() == [0.5, 2.0]
    assert sampler._min.reduce().item() == 0.5


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0])
def test_invalid_priorities_raise(bad: float) -> None:
    sampler = PrioritizedSampler(10, alpha=0.6, beta=0.4)
    priority = torch.ones(6)
    priority[[2, 4]] = bad
    with pytest.raises(
        ValueError, match=r"2 of 6 priorities are NaN, infinite or negative \(e\.g\. index 7"
    ):
        sampler.update_priority(torch.arange(5, 11) % 10, priority)
    with pytest.raises(ValueError, match="1 of 2 priorities"):  # a bad step inside a [B, T] row
        sampler.update_priority(torch.tensor([0, 1]), torch.tensor([[1.0, 1.0], [bad, 1.0]]))
    assert sampler.priority(torch.arange(10)).sum().item() == 0  # nothing was written


def test_invalid_indices_raise() -> None:
    sampler = PrioritizedSampler(10, alpha=0.6, beta=0.4)
    with pytest.raises(IndexError, match=r"index 10 is out of range, rows are 0 \.\. 9"):
        sampler.update_priority(torch.tensor([3, 10]), 1.0)
    with pytest.raises(IndexError, match="index -1"):
        sampler.update_priority(-1, 1.0)
    with pytest.raises(IndexError):
        sampler.extend(torch.tensor([12]))
    with pytest.raises(TypeError, match="integers"):
        sampler.update_priority(torch.tensor([1.0]), 1.0)


def test_constructor_and_exponent_validation() -> None:
    with pytest.raises(ValueError, match="alpha must be finite and >= 0"):
        PrioritizedSampler(4, alpha=-0.1, beta=0.4)
    sampler = PrioritizedSampler(4, alpha=0.6, beta=0.4)
    with pytest.raises(ValueError, match="beta must be finite and >= 0"):
        sampler.beta = -1.0
    with pytest.raises(TypeError, match="alpha must be a number"):
        sampler.alpha = "0.5"  # type: ignore[assignment]
    sampler.alpha, sampler.beta = 0.8, 1.0
    assert (sampler.alpha, sampler.beta) == (0.8, 1.0)
    with pytest.raises(ValueError, match="reduction must be one of"):
        PrioritizedSampler(4, alpha=0.6, beta=0.4, reduction="sum")
    with pytest.raises(ValueError, match="max_capacity must be a positive int"):
        PrioritizedSampler(0, alpha=0.6, beta=0.4)
    with pytest.raises(ValueError, match="eps"):
        PrioritizedSampler(4, alpha=0.6, beta=0.4, eps=math.nan)


def test_sampling_errors() -> None:
    sampler = PrioritizedSampler(4, alpha=0.6, beta=0.4, eps=0.0)
    with pytest.raises(EmptyBufferError, match="empty buffer"):
        sampler.sample(Rows(0), 2)
    sampler.extend(torch.arange(2))
    sampler.update_priority(torch.arange(2), 0.0)
    with pytest.raises(ReplayError, match="the 2 valid rows all have priority 0"):
        sampler.sample(Rows(2), 2)
    with pytest.raises(ReplayError, match=r"max_capacity=storage\.max_size"):
        sampler.sample(Rows(5), 2)


def test_state_dict_round_trip_reproduces_samples() -> None:
    gen = torch.Generator().manual_seed(0)
    sampler = _filled(torch.rand(100, generator=gen) * 3, capacity=128, alpha=0.8, beta=0.3)
    sampler.beta = 0.45
    buffer = io.BytesIO()
    torch.save(sampler.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    restored = PrioritizedSampler(128, alpha=0.1, beta=0.1, reduction="mean")
    restored.load_state_dict(state)
    assert (restored.alpha, restored.beta, restored.reduction) == (0.8, 0.45, "max")
    assert restored.max_priority == sampler.max_priority
    assert repr(restored) == repr(sampler)
    torch.manual_seed(5)
    index, info = sampler.sample(Rows(100, 128), 512)
    torch.manual_seed(5)
    index2, info2 = restored.sample(Rows(100, 128), 512)
    assert torch.equal(index, index2)
    assert torch.equal(info["_weight"], info2["_weight"])
    assert torch.equal(restored._min._tree, sampler._min._tree)
    restored.add(100)  # the running maximum came back too
    sampler.add(100)
    assert restored.priority(100).item() == sampler.priority(100).item()
    with pytest.raises(ValueError, match="max_capacity 128"):
        PrioritizedSampler(64, alpha=0.1, beta=0.1).load_state_dict(state)


def test_empty_forgets_priorities() -> None:
    sampler = _filled(
        torch.tensor([1.0, 5.0]), capacity=4, max_priority_init=2.0, eps=0.0, alpha=1.0
    )
    sampler.empty()
    assert sampler.priority(torch.arange(4)).sum().item() == 0
    assert sampler.max_priority == 2.0
    sampler.add(0)
    assert sampler.priority(0).item() == 2.0


def test_repr() -> None:
    sampler = _filled(torch.tensor([1.0, 3.0]), alpha=1.0, beta=0.5, eps=0.0)
    assert repr(sampler) == (
        "PrioritizedSampler(max_capacity=2, alpha=1, beta=0.5, eps=0, reduction='max', "
        "max_priority=3, total=4)"
    )


def test_rows_past_the_storage_do_not_change_draws_or_weights() -> None:
    # with nothing written at or past len(storage) the trees' roots are the totals over
    # the valid rows; a priority set past it switches to range queries, same results
    priority = torch.tensor([3.0, 0.0, 1.0, 5.0, 2.0, 4.0, 0.0, 1.0])
    plain = _filled(priority, capacity=32, alpha=1.0, beta=0.6, eps=0.0)
    past = _filled(priority, capacity=32, alpha=1.0, beta=0.6, eps=0.0)
    past.update_priority(torch.tensor([20, 9]), torch.tensor([1000.0, 0.5]))
    for n in (3, 8):
        torch.manual_seed(n)
        index, info = plain.sample(Rows(n, 32), 3000)
        torch.manual_seed(n)
        index2, info2 = past.sample(Rows(n, 32), 3000)
        assert torch.equal(index, index2)
        assert torch.equal(info["_weight"], info2["_weight"])
        assert int(index.max()) < n
        assert bool((priority[index] > 0).all())


def test_filling_large_buffer() -> None:
    # 20_000 rows: a tree with a level below its top; rows arrive in chunks
    gen = torch.Generator().manual_seed(0)
    sampler = PrioritizedSampler(20_000, alpha=0.7, beta=0.5, eps=0.0)
    priority = torch.rand(20_000, generator=gen, dtype=torch.float64) * 4
    priority[torch.rand(20_000, generator=gen) < 0.3] = 0.0
    start = 0
    for end in (1_000, 7_000, 20_000):
        rows = torch.arange(start, end)
        start = end
        sampler.extend(rows)
        sampler.update_priority(rows, priority[rows])
        torch.manual_seed(end)
        index, info = sampler.sample(Rows(end, 20_000), 4096)
        assert int(index.max()) < end
        assert bool((priority[index] > 0).all())
        q = priority[:end] ** 0.7
        q_min = q[q > 0].min()
        expected = (q[index] / q_min) ** -0.5
        torch.testing.assert_close(info["_weight"], expected.float())


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 40),
    # ratios up to 1e5 keep (q / q_min) ** -beta representable in float32
    st.lists(st.just(0.0) | st.floats(1e-3, 100), min_size=1, max_size=60),
    st.floats(0, 2),
    st.floats(0, 2),
    st.integers(0, 2**31 - 1),
)
def test_samples_are_valid_rows_with_bounded_weights(
    n: int, priority: list[float], alpha: float, beta: float, seed: int
) -> None:
    sampler = PrioritizedSampler(64, alpha=alpha, beta=beta, eps=0.0)
    sampler.extend(torch.arange(n))
    index = torch.arange(len(priority)) % 64
    sampler.update_priority(index, torch.tensor(priority, dtype=torch.float64))
    q = sampler.priority(torch.arange(n))
    if not bool((q > 0).any()):
        with pytest.raises(ReplayError):
            sampler.sample(Rows(n, 64), 16)
        return
    torch.manual_seed(seed)
    drawn, info = sampler.sample(Rows(n, 64), 256)
    assert bool((drawn >= 0).all())
    assert bool((drawn < n).all())
    assert bool((q[drawn] > 0).all())
    weight = info["_weight"]
    assert bool((weight > 0).all())
    assert bool((weight <= 1).all())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_sampler() -> None:
    sampler = PrioritizedSampler(16, alpha=0.6, beta=0.4, device="cuda")
    sampler.extend(torch.arange(8))
    sampler.update_priority(torch.arange(8), torch.arange(8.0))
    index, info = sampler.sample(Rows(8, 16), 32)
    assert index.device.type == "cuda"
    assert info["_weight"].device.type == "cuda"
