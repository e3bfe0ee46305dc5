"""``SyncDataCollector``: a policy run in one (possibly batched) env, in this process."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from rlbricks.collectors._base import CollectorOptions
from rlbricks.collectors._base import DataCollectorBase
from rlbricks.collectors._base import DeviceLike
from rlbricks.collectors._base import EnvFactory
from rlbricks.collectors._base import PolicyLike
from rlbricks.collectors._base import frames_layout
from rlbricks.collectors._base import make_env
from rlbricks.collectors._errors import CollectorRuntimeError
from rlbricks.collectors._trajectories import TRAJ_IDS
from rlbricks.collectors._trajectories import TrajectoryCounter
from rlbricks.envs import EnvBase
from rlbricks.envs import step_mdp
from rlbricks.modules import ExplorationType
from rlbricks.modules import set_exploration_type
from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import stack

__all__ = ["SyncDataCollector"]


def _device(value: DeviceLike) -> torch.device | None:
    return None if value is None else torch.device(value)


def _param_device(policy: Any) -> torch.device | None:
    if isinstance(policy, nn.Module):
        for tensor in (*policy.parameters(), *policy.buffers()):
            return tensor.device
    return None


class SyncDataCollector(DataCollectorBase):
    """Run ``policy`` in an env and yield batches of experience ``[*env.batch_size, T]``.

    Each batch holds ``T = ceil(frames_per_batch / num_envs)`` steps of every
    sub-env (so ``num_envs * T`` frames, time last), collected with
    ``env.step_and_maybe_reset``: finished sub-envs are reset on the fly and the
    next batch continues where this one stopped. ``("collector", "traj_ids")``
    numbers the trajectories: an id is never reused, and a trajectory cut by
    the end of a batch keeps its id in the next one.

    The policy runs under ``torch.no_grad()`` and ``set_exploration_type(
    exploration_type)``. ``policy=None`` (or the first ``init_random_frames``
    frames) draws random actions from the env's action spec.

    Batches are stacked from the steps in one op per key (``stack``); with
    ``return_same_td=True`` they are written into one preallocated batch that
    every iteration overwrites (no allocation; clone it to keep it).

    Args:
        create_env_fn: an env, a callable returning one, or a list of callables
            (run as a ``SerialEnv``).
        policy: reads the root TensorDict and writes ``"action"``; None for
            random actions.
        frames_per_batch: frames per batch (rounded up to whole steps of every sub-env).
        total_frames: stop after this many frames (``-1``: never).
        init_random_frames: random actions until this many frames are collected
            (whole batches).
        max_frames_per_traj: truncate trajectories at this many steps (the step
            gets ``truncated`` and ``done``, and the sub-env is reset).
        reset_at_each_iter: reset every sub-env at the start of each batch.
        split_trajs: yield ``split_trajectories(batch)`` (``[num_traj, max_len]``).
        exploration_type: the exploration type the policy runs under.
        device: the default of ``policy_device`` and ``storing_device``.
        env_device: the device of the env's data (checked against ``env.device``).
        policy_device: run the policy there (a copy of it when its parameters
            are elsewhere; :meth:`update_policy_weights_` refreshes the copy).
        storing_device: where the yielded batches live.
        postproc: applied to each batch before it is yielded (e.g. ``MultiStepTransform``).
        replay_buffer: extend this buffer with each batch and yield ``None``.
        return_same_td: write every batch into the same preallocated TensorDict.
        validate_actions: set ``env.validate_actions`` (on the env given, or
            built): False skips the check of the actions' values (bounds,
            categories) at every step; their shape and dtype are always
            checked. None (default) keeps the env's setting (True unless
            changed), so a policy writing a bad action raises
            :class:`~rlbricks.envs.ActionError` from :meth:`next`.

    Raises:
        CollectorRuntimeError: a bad argument (the message says which and why).
        ActionError: (from :meth:`next`) the policy wrote an action that does
            not fit the env's action spec.

    Example:
        >>> import torch
        >>> from rlbricks.collectors import SyncDataCollector
        >>> from rlbricks.envs.testing import CountingEnv
        >>> collector = SyncDataCollector(lambda: CountingEnv(max_steps=3, batch_size=[2]),
        ...                               frames_per_batch=8, total_frames=16)
        >>> for batch in collector:
        ...     print(batch.batch_size, batch["collector", "traj_ids"][0].tolist())
        torch.Size([2, 4]) [0, 0, 0, 2]
        torch.Size([2, 4]) [2, 2, 4, 4]
        >>> collector.shutdown()
    """

    def __init__(
        self,
        create_env_fn: EnvFactory | list[Callable[[], EnvBase]],
        policy: PolicyLike | None = None,
        *,
        frames_per_batch: int,
        total_frames: int = -1,
        init_random_frames: int = 0,
        max_frames_per_traj: int | None = None,
        reset_at_each_iter: bool = False,
        split_trajs: bool = False,
        exploration_type: ExplorationType = ExplorationType.RANDOM,
        device: DeviceLike = None,
        env_device: DeviceLike = None,
        policy_device: DeviceLike = None,
        storing_device: DeviceLike = None,
        postproc: Callable[[TensorDict], TensorDict] | None = None,
        replay_buffer: Any = None,
        return_same_td: bool = False,
        validate_actions: bool | None = None,
    ) -> None:
        name = type(self).__name__
        options = CollectorOptions.pick(locals())  # the arguments named like its fields
        options.check(name)
        self.env, self._owns_env = make_env(create_env_fn, name)
        env = self.env
        if validate_actions is not None:
            env.validate_actions = validate_actions
        if env_device is not None and _device(env_device) != env.device:
            self._close_env()
            raise CollectorRuntimeError(
                f"{name}: env_device={env_device} but the env's data lives on {env.device}: "
                "build the env with device=..."
            )
        self.num_envs = max(1, env.batch_size.numel())
        self.steps_per_batch = frames_layout(frames_per_batch, self.num_envs, name)
        self.frames_per_batch = self.steps_per_batch * self.num_envs
        self._apply_options(options)
        self.return_same_td = return_same_td
        self.env_device = env.device
        self.storing_device = _device(storing_device if storing_device is not None else device)
        self.policy = policy
        self._policy_device = _device(policy_device if policy_device is not None else device)
        self._policy = self._place_policy(policy)
        self._traj = TrajectoryCounter(self.num_envs)
        self._steps_in_traj = torch.zeros(env.batch_size, dtype=torch.int64)
        self._root: TensorDict | None = None
        self._out: TensorDict | None = None
        self.is_shut_down = False

    # ------------------------------------------------------------------ #
    # policy and devices
    # ------------------------------------------------------------------ #
    def _place_policy(self, policy: PolicyLike | None) -> PolicyLike | None:
        """The policy to run: itself, or a copy on ``policy_device``."""
        target = self._policy_device
        if policy is None or target is None:
            return policy
        current = _param_device(policy)
        if current is None or current == target:
            return policy
        return copy.deepcopy(policy).to(target)  # type: ignore[attr-defined]

    def _policy_step(self) -> PolicyLike:
        """The callable of one policy step: the policy, or the policy between device moves."""
        policy = self._policy
        target = self._policy_device
        if policy is None:
            return self.env.rand_action
        if target is None or target == self.env_device:
            return policy
        env_device = self.env_device

        def moved(td: TensorDict) -> TensorDict:
            return policy(td.to(target)).to(env_device)

        return moved

    def update_policy_weights_(self) -> None:
        """Copy the policy's current weights into the copy that runs on ``policy_device``.

        A no-op when the collector runs the policy itself (it sees every update).

        Example:
            >>> from torch import nn
            >>> from rlbricks.collectors import SyncDataCollector
            >>> from rlbricks.envs.testing import ContinuousActionEnv
            >>> from rlbricks.modules import Actor
            >>> actor = Actor(nn.Linear(2, 2))
            >>> collector = SyncDataCollector(ContinuousActionEnv, actor, frames_per_batch=4)
            >>> collector.update_policy_weights_()
        """
        if self._policy is self.policy or self._policy is None:
            return
        source = self.policy
        if isinstance(source, nn.Module) and isinstance(self._policy, nn.Module):
            self._policy.load_state_dict(source.state_dict())

    # ------------------------------------------------------------------ #
    # collection
    # ------------------------------------------------------------------ #
    def set_seed(self, seed: int) -> int:
        """Seed the env (its sub-envs get consecutive seeds); return the next seed to use.

        Example:
            >>> from rlbricks.collectors import SyncDataCollector
            >>> from rlbricks.envs.testing import CountingEnv
            >>> SyncDataCollector(CountingEnv(batch_size=[3]), frames_per_batch=3).set_seed(10)
            13
        """
        self._root = None  # the next batch starts from a reset that uses the seed
        return self.env.set_seed(seed)

    def reset(self) -> None:
        """Start new episodes in every sub-env before the next batch (counters are kept).

        Example:
            >>> from rlbricks.collectors import SyncDataCollector
            >>> from rlbricks.envs.testing import CountingEnv
            >>> collector = SyncDataCollector(CountingEnv(), frames_per_batch=2)
            >>> collector.next()["observation"].squeeze(-1).tolist()
            [0.0, 1.0]
            >>> collector.reset()
            >>> collector.next()["observation"].squeeze(-1).tolist()
            [0.0, 1.0]
        """
        self._root = None

    def _start(self) -> TensorDict:
        """A fresh root: every sub-env reset; trajectories cut here end."""
        root = self.env.reset()
        if self._root is not None or self._frames:
            n = self.num_envs
            self._traj.current = torch.arange(self._traj.next_id, self._traj.next_id + n)
            self._traj.next_id += n
        self._steps_in_traj.zero_()
        return root

    def next(self) -> TensorDict:
        """Collect one batch ``[*env.batch_size, T]`` (before ``split_trajs``/``postproc``).

        Example:
            >>> from rlbricks.collectors import SyncDataCollector
            >>> from rlbricks.envs.testing import CountingEnv
            >>> collector = SyncDataCollector(CountingEnv(max_steps=10), frames_per_batch=3)
            >>> collector.next()["next", "observation"].squeeze(-1).tolist()
            [1.0, 2.0, 3.0]
        """
        if self.is_shut_down:
            raise CollectorRuntimeError(f"{type(self).__name__} is shut down: create a new one")
        env = self.env
        td = self._root
        if td is None or self.reset_at_each_iter:
            td = self._start()
        random = self._policy is None or self._frames < self.init_random_frames
        policy = env.rand_action if random else self._policy_step()
        steps = []
        with torch.no_grad(), set_exploration_type(self.exploration_type):
            fast = None
            if self.max_frames_per_traj is None and not self.return_same_td:
                # envs that can run the whole batch without a TensorDict per env step
                fast = env.policy_rollout(td, policy, self.steps_per_batch, False)
            if fast is not None:
                self._root = fast[1]
                self._frames += self.frames_per_batch
                return self._with_ids(fast[0])
            if self.max_frames_per_traj is None:
                step_and_maybe_reset = env.step_and_maybe_reset
                for _ in range(self.steps_per_batch):
                    td, root = step_and_maybe_reset(policy(td))
                    steps.append(td)
                    td = root
            else:
                for _ in range(self.steps_per_batch):
                    td = env.step(policy(td))
                    self._truncate(td)
                    steps.append(td)
                    td = env.maybe_reset(step_mdp(td))
        self._root = td
        batch = self._stack(steps)
        self._frames += self.frames_per_batch
        return batch

    def _truncate(self, td: TensorDict) -> None:
        """Mark the steps that reach ``max_frames_per_traj`` as truncated (and done)."""
        nxt = td.get("next")
        count = self._steps_in_traj
        count += 1
        over = (count >= self.max_frames_per_traj).unsqueeze(-1)  # type: ignore[operator]
        if bool(over.any()):
            nxt.set("truncated", nxt.get("truncated") | over)
            nxt.set("done", nxt.get("done") | over)
        done = nxt.get("done").reshape(count.shape)
        count.masked_fill_(done, 0)

    def _stack(self, steps: list[TensorDict]) -> TensorDict:
        """The batch: the steps stacked on a last batch dim, with trajectory ids."""
        dim = len(self.env.batch_size)
        out = self._out
        if out is not None:
            target = out.exclude("collector")  # shares out's tensors: stacked into in place
            if set(target.keys(include_nested=True)) == set(steps[0].keys(include_nested=True)):
                stack(steps, dim, out=target)
            else:  # the policy's outputs changed (e.g. after the random frames)
                out = None
        batch = out if out is not None else stack(steps, dim)
        return self._with_ids(batch)

    def _with_ids(self, batch: TensorDict) -> TensorDict:
        """``batch`` with its trajectory ids, on the storing device."""
        done = batch.get(("next", "done")).reshape(self.num_envs, self.steps_per_batch)
        batch.set(TRAJ_IDS, self._traj.ids(done).reshape(batch.batch_size))
        if self.return_same_td:
            self._out = batch
        if self.storing_device is not None and batch.device != self.storing_device:
            batch = batch.to(self.storing_device)
        return batch

    # ------------------------------------------------------------------ #
    # state and teardown
    # ------------------------------------------------------------------ #
    def state_dict(self) -> dict[str, Any]:
        """Frame counters, trajectory ids, the torch RNG state, the env's and policy's state.

        With an env whose state is complete (``"exact"`` in its state), also
        the root of the next step (``"root"``).

        Example:
            >>> from rlbricks.collectors import SyncDataCollector
            >>> from rlbricks.envs.testing import CountingEnv
            >>> sorted(SyncDataCollector(CountingEnv(), frames_per_batch=2).state_dict())
            ['frames', 'iter', 'rng', 'steps_in_traj', 'traj']
        """
        state = self._base_state()
        state["traj"] = self._traj.state_dict()
        state["steps_in_traj"] = self._steps_in_traj.clone()
        env_state = getattr(self.env, "state_dict", None)
        if callable(env_state):
            state["env"] = env_state()
            if state["env"].get("exact") is True and self._root is not None:
                # the env can continue its episodes: keep the step they are at
                state["root"] = {"data": self._root.to_dict(),
                                 "batch_size": list(self._root.batch_size)}  # fmt: skip
        if isinstance(self.policy, nn.Module):
            state["policy"] = self.policy.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state saved by :meth:`state_dict`.

        When the env saved its complete state (its ``state_dict()`` says
        ``"exact": True``, e.g. a gymnasium ``SyncVectorEnv`` of classic-control
        envs), the collector continues the saved episodes from the saved step,
        so that a resumed run collects exactly what the uninterrupted one
        would; otherwise the episodes restart with a reset.

        Example:
            >>> from rlbricks.collectors import SyncDataCollector
            >>> from rlbricks.envs.testing import CountingEnv
            >>> a = SyncDataCollector(CountingEnv(), frames_per_batch=2)
            >>> _ = a.next()
            >>> b = SyncDataCollector(CountingEnv(), frames_per_batch=2)
            >>> b.load_state_dict(a.state_dict())
            >>> b.frames
            2
        """
        self._load_base_state(state)
        self._traj.load_state_dict(state["traj"])
        self._steps_in_traj.copy_(state["steps_in_traj"])
        if "env" in state:
            self.env.load_state_dict(state["env"])  # type: ignore[attr-defined]
        if "policy" in state and isinstance(self.policy, nn.Module):
            self.policy.load_state_dict(state["policy"])
            self.update_policy_weights_()
        root = state.get("root")
        self._root = None
        if root is not None:  # the env's state is complete: continue the saved episodes
            self._root = TensorDict.from_dict(
                root["data"], batch_size=root["batch_size"], device=self.env_device
            )

    def _close_env(self) -> None:
        if self._owns_env:
            self.env.close()

    def shutdown(self) -> None:
        """Close the env if the collector built it (idempotent).

        Example:
            >>> from rlbricks.collectors import SyncDataCollector
            >>> from rlbricks.envs.testing import CountingEnv
            >>> collector = SyncDataCollector(CountingEnv, frames_per_batch=2)
            >>> collector.shutdown()
            >>> collector.env.is_closed
            True
        """
        if not self.is_shut_down:
            self.is_shut_down = True
            self._close_env()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(env={self.env!r}, frames_per_batch={self.frames_per_batch}, "
            f"total_frames={self.total_frames})"
        )
