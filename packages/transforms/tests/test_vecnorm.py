"""VecNorm and the running-statistics maths: exact sums, decay, shared buffers."""

from __future__ import annotations

import functools

import pytest
import torch

from rlbricks.envs import ParallelEnv
from rlbricks.envs import SerialEnv
from rlbricks.envs import check_env_specs
from rlbricks.envs.testing import CountingEnv
from rlbricks.tensordict import TensorDict
from rlbricks.transforms import Compose
from rlbricks.transforms import ObservationNorm
from rlbricks.transforms import TransformedEnv
from rlbricks.transforms import TransformError
from rlbricks.transforms import VecNorm
from rlbricks.transforms._fn_running_stats import mean_and_std
from rlbricks.transforms._fn_running_stats import new_stats_buffer
from rlbricks.transforms._fn_running_stats import stats_views
from rlbricks.transforms._fn_running_stats import update_stats_


def naive_decayed_stats(
    batches: list[torch.Tensor], decay: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted mean/std where a sample seen k updates ago weighs decay**k."""
    weights, samples = [], []
    for age, batch in enumerate(reversed(batches)):
        for x in batch:
            weights.append(decay**age)
            samples.append(x.double())
    w = torch.tensor(weights, dtype=torch.float64).unsqueeze(-1)
    x = torch.stack(samples)
    mean = (w * x).sum(0) / w.sum()
    var = (w * (x - mean) ** 2).sum(0) / w.sum()
    return mean, var.sqrt()


def test_exact_stats_equal_torch_mean_and_std() -> None:
    gen = torch.Generator().manual_seed(0)
    data = torch.randn(50, 3, generator=gen) * 3 + 1
    buf = new_stats_buffer((3,), shared=False)
    for chunk in data.split(7):
        update_stats_(buf, chunk, (3,))
    mean, std = mean_and_std(buf, (3,), eps=1e-6)
    torch.testing.assert_close(mean, data.double().mean(0))
    torch.testing.assert_close(std, data.double().std(0, unbiased=False))


def test_exact_stats_do_not_depend_on_batching_or_order() -> None:
    data = torch.arange(24.0).reshape(12, 2)
    one = new_stats_buffer((2,), shared=False)
    update_stats_(one, data, (2,))
    other = new_stats_buffer((2,), shared=False)
    for i in [5, 0, 11, 3, 7, 1, 9, 2, 10, 4, 8, 6]:
        update_stats_(other, data[i], (2,))
    assert torch.equal(one, other)


def test_decayed_stats_match_weighted_reference() -> None:
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randn(4, 2, generator=gen) + i for i in range(6)]
    buf = new_stats_buffer((2,), shared=False)
    for batch in batches:
        update_stats_(buf, batch, (2,), decay=0.8)
    mean, std = mean_and_std(buf, (2,), eps=1e-8)
    ref_mean, ref_std = naive_decayed_stats(batches, 0.8)
    torch.testing.assert_close(mean, ref_mean)
    torch.testing.assert_close(std, ref_std)


def test_buffer_layout_and_empty_stats() -> None:
    buf = new_stats_buffer((2, 2))
    assert buf.is_shared()
    assert buf.shape == (3, 2, 2)
    update_stats_(buf, torch.ones(3, 2, 2), (2, 2))
    count, total, sumsq = stats_views(buf, (2, 2))
    assert torch.equal(count, total)
    assert torch.equal(total, torch.full((2, 2), 3.0, dtype=torch.float64))
    assert torch.equal(sumsq, total)
    mean, std = mean_and_std(new_stats_buffer((2,), shared=False), (2,), eps=0.1)
    assert mean.tolist() == [0.0, 0.0]
    assert std.tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="do not end with"):
        update_stats_(buf, torch.ones(3, 4), (2, 2))
    with pytest.raises(ValueError, match="statistics buffer"):
        stats_views(buf, (3,))


# --------------------------------------------------------------------------- #
# the transform
# --------------------------------------------------------------------------- #
def counting_fns(*max_steps: int) -> list[functools.partial[CountingEnv]]:
    return [functools.partial(CountingEnv, max_steps=m) for m in max_steps]


def seen_by_env(td: TensorDict) -> torch.Tensor:
    """Every raw observation a batched env outputs in a rollout (reset rows and steps)."""
    obs, nxt, done = td["observation"], td["next", "observation"], td["next", "done"]
    steps = td.batch_size[-1]
    seen = [obs[:, 0]]
    for t in range(steps):
        seen.append(nxt[:, t])
        if t + 1 < steps:
            seen.append(obs[:, t + 1][done[:, t, 0]])  # rows reset after step t
        else:  # the rollout resets after its last step too; CountingEnv restarts at 0
            seen.append(torch.zeros_like(nxt[:, t][done[:, t, 0]]))
    return torch.cat(seen)


def test_plain_tensordict_hand_computed() -> None:
    norm = VecNorm(["obs"], decay=None)
    td = TensorDict({"obs": torch.tensor([[0.0], [4.0]])}, batch_size=[2])
    assert norm(td)["obs"].squeeze(-1).tolist() == [-1.0, 1.0]
    td = TensorDict(
        {"obs": torch.tensor([[0.0]]), "next": {"obs": torch.tensor([[8.0]])}}, batch_size=[1]
    )
    out = norm(td)  # stats over 0, 4, 8 (the root is not counted again): mean 4, std sqrt(32/3)
    std = (32.0 / 3.0) ** 0.5
    assert out["next", "obs"].item() == pytest.approx(4.0 / std)
    assert out["obs"].item() == pytest.approx(-4.0 / std)
    assert norm.stats()["count"].item() == 3.0
    ints = VecNorm(["n"], decay=None)(TensorDict({"n": torch.tensor([1, 3])}))
    assert ints["n"].dtype == torch.float32


def test_env_stats_match_every_output_with_partial_resets() -> None:
    norm = VecNorm(decay=None)
    env = TransformedEnv(SerialEnv(3, counting_fns(2, 3, 5)), norm)
    check_env_specs(env)
    raw_env = SerialEnv(3, counting_fns(2, 3, 5))
    norm_env = TransformedEnv(SerialEnv(3, counting_fns(2, 3, 5)), VecNorm(decay=None))
    torch.manual_seed(0)
    raw = raw_env.rollout(9, break_when_any_done=False)
    torch.manual_seed(0)
    out = norm_env.rollout(9, break_when_any_done=False)
    seen = seen_by_env(raw).double()
    stats = norm_env.transform[0].stats()
    assert stats["count"].item() == seen.shape[0]
    torch.testing.assert_close(stats["mean"], seen.mean(0))
    torch.testing.assert_close(stats["std"], seen.std(0, unbiased=False))
    # the last step was normalised with the statistics before the final resets
    before = seen[: seen.shape[0] - int(raw["next", "done"][:, -1].sum())]
    last = (raw["next", "observation"][:, -1].double() - before.mean(0)) / before.std(0, False)
    torch.testing.assert_close(out["next", "observation"][:, -1], last.float())


def test_specs_reward_and_several_keys() -> None:
    norm = VecNorm(["observation", "reward"], decay=0.99)
    env = TransformedEnv(CountingEnv(max_steps=4, batch_size=[2]), norm)
    assert env.observation_spec["observation"].dtype == torch.float32
    check_env_specs(env)
    assert norm.stats("reward")["count"].item() > 0
    with pytest.raises(ValueError, match="several in_keys"):
        norm.stats()
    with pytest.raises(ValueError, match="not an in_key"):
        norm.stats("nope")
    fixed = norm.to_observation_norm()
    assert isinstance(fixed, Compose)
    assert len(fixed) == 2


def test_freeze_and_to_observation_norm_agree() -> None:
    norm = VecNorm(["obs"], decay=None)
    norm(TensorDict({"obs": torch.randn(20, 3)}, batch_size=[20]))
    before = norm.stats()["count"].clone()
    fixed = norm.to_observation_norm()
    assert isinstance(fixed, ObservationNorm)
    data = torch.randn(5, 3)
    frozen = norm.freeze()(TensorDict({"obs": data.clone()}, batch_size=[5]))["obs"]
    assert torch.equal(norm.stats()["count"], before)
    torch.testing.assert_close(fixed(TensorDict({"obs": data}, batch_size=[5]))["obs"], frozen)
    norm.unfreeze()(TensorDict({"obs": data}, batch_size=[5]))
    assert norm.stats()["count"].item() == before.item() + 5


def test_state_dict_round_trip_and_clone() -> None:
    norm = VecNorm(decay=None)
    env = TransformedEnv(CountingEnv(max_steps=3), norm)
    env.rollout(5, break_when_any_done=False)
    state = env.state_dict()
    assert list(state) == ["transforms.0.stats_0"]
    fresh = VecNorm(decay=None)  # no buffers yet: allocated from the checkpoint
    fresh.load_state_dict(norm.state_dict())
    assert torch.equal(fresh.stats()["mean"], norm.stats()["mean"])
    assert fresh.stats_0.is_shared()
    other = TransformedEnv(CountingEnv(max_steps=3), VecNorm(decay=None))
    other.load_state_dict(state)
    assert torch.equal(other.transform[0].stats()["std"], norm.stats()["std"])
    copy = norm.clone()
    assert isinstance(copy, VecNorm)
    copy(TensorDict({"observation": torch.ones(4, 1)}, batch_size=[4]))
    assert copy.stats()["count"].item() == norm.stats()["count"].item() + 4  # not shared
    assert copy.stats_0.is_shared()  # but ready to be shared with workers


def test_errors_and_lazy_allocation_warning() -> None:
    with pytest.raises(ValueError, match="decay"):
        VecNorm(decay=0.0)
    with pytest.raises(ValueError, match="eps"):
        VecNorm(eps=0.0)
    with pytest.raises(ValueError, match="not an in_key"):
        VecNorm(shapes={"other": (1,)})
    with pytest.raises(TransformError, match="no statistics"):
        VecNorm().stats()
    norm = VecNorm(shapes={"observation": (2,)})
    with pytest.raises(TransformError, match="made for shape"):
        TransformedEnv(CountingEnv(), norm)
    lazy = VecNorm()
    lazy._owner_pid = -1  # as if unpickled in a worker process
    with pytest.warns(UserWarning, match="not shared"):
        lazy(TensorDict({"observation": torch.ones(2, 1)}, batch_size=[2]))


def test_parallel_workers_share_the_statistics_of_a_single_process_run() -> None:
    """Acceptance: ParallelEnv(2) workers update one VecNorm; same stats as one process."""
    shared = VecNorm(decay=None, shapes={"observation": (1,)})
    fns = [functools.partial(TransformedEnv, CountingEnv(max_steps=m), shared) for m in (2, 3)]
    with ParallelEnv(2, fns) as env:  # the default start method (spawn)
        env.rollout(8, break_when_any_done=False)
        count = shared.stats()["count"].clone()
        shared.freeze()  # the flag is shared too: the workers stop updating
        env.rollout(3, break_when_any_done=False)
        assert torch.equal(shared.stats()["count"], count)
    # 2 first resets, 2 x 8 steps, 4 + 2 resets after the episodes of length 2 and 3
    assert count.item() == 2.0 + 16.0 + 6.0
    single = TransformedEnv(SerialEnv(2, counting_fns(2, 3)), VecNorm(decay=None))
    single.rollout(8, break_when_any_done=False)
    expected = single.transform[0].stats()
    got = shared.stats()
    for name in ("count", "mean", "std"):
        assert torch.equal(got[name], expected[name])


def test_parallel_workers_with_fork_and_the_batched_parent_agree() -> None:
    shared = VecNorm(decay=None, shapes={"observation": (1,)})
    fns = [lambda m=m: TransformedEnv(CountingEnv(max_steps=m), shared) for m in (3, 4)]
    with ParallelEnv(2, fns, mp_start_method="fork") as env:
        env.rollout(7, break_when_any_done=False)
    outside = TransformedEnv(
        ParallelEnv(2, counting_fns(3, 4), mp_start_method="fork"), VecNorm(decay=None)
    )
    with outside:
        outside.rollout(7, break_when_any_done=False)
    assert torch.equal(shared.stats_0, outside.transform[0].stats_0)
