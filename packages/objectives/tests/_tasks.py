"""Tiny deterministic tasks and data generators for the loss tests (shared by every loss test).

Three tasks, each a vectorised "environment" without the env machinery:

* :class:`DiscreteBandit`: one-step episodes; the observation is a one-hot
  context, the reward is 1 for the context's best action
  (``context % n_actions``) and 0 otherwise.
* :class:`Chain`: ``n_states`` states in a row, one-hot observations, action
  0 moves left and 1 moves right; reaching the last state gives reward 1 and
  ends the episode.  Episodes longer than ``max_steps`` are truncated.
* :class:`ContinuousBandit`: one-step episodes; the observation is uniform in
  ``[-1, 1]^obs_dim``, the best action is ``0.5 * observation[:action_dim]``
  and the reward is ``-||action - best||^2``.

Each task has ``observation_spec`` (a ``Composite``), ``action_spec``,
``reset(n)`` (a root TensorDict ``[n]``), ``step(td)`` (writes ``"next"``),
plus the generators :func:`transitions` (a replay-like batch ``[B]`` of
random actions) and :func:`rollout` (a trajectory batch ``[n, T]``, time
last, with auto-reset, for on-policy losses).

The tests run with ``--import-mode=importlib`` (the tests folder is not on
``sys.path``); ``conftest.py`` puts the folder on ``sys.path`` once, so a
test file imports this module by name::

    import _tasks as tasks
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from collections.abc import Iterator

import torch
from torch import Tensor

from rlbricks.specs import Bounded
from rlbricks.specs import Categorical
from rlbricks.specs import Composite
from rlbricks.specs import OneHot
from rlbricks.specs import TensorSpec
from rlbricks.specs import Unbounded
from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import stack

Policy = Callable[[TensorDict], TensorDict]


def _flags(n: int, terminated: Tensor, truncated: Tensor) -> dict[str, Tensor]:
    terminated = terminated.reshape(n, 1)
    truncated = truncated.reshape(n, 1)
    return {"done": terminated | truncated, "terminated": terminated, "truncated": truncated}


def _action_index(action: Tensor, one_hot: bool) -> Tensor:
    if one_hot:
        return action.long().argmax(-1)
    return action.long().reshape(action.shape[0], -1)[:, 0]


class _Task:
    observation_spec: Composite
    action_spec: TensorSpec
    generator: torch.Generator

    def _root(self, observation: Tensor) -> TensorDict:
        n = observation.shape[0]
        zeros = torch.zeros(n, 1, dtype=torch.bool)
        return TensorDict(
            {"observation": observation, **_flags(n, zeros, zeros)},
            batch_size=[n],
        )

    def random_action(self, n: int) -> Tensor:
        return self.action_spec.rand((n,))

    def reset(self, n: int) -> TensorDict:
        raise NotImplementedError

    def step(self, td: TensorDict) -> TensorDict:
        raise NotImplementedError


class DiscreteBandit(_Task):
    """One-step contextual bandit; the best action of context ``c`` is ``c % n_actions``."""

    def __init__(
        self, n_contexts: int = 3, n_actions: int = 3, one_hot: bool = True, seed: int = 0
    ) -> None:
        self.n_contexts = n_contexts
        self.n_actions = n_actions
        self.one_hot = one_hot
        self.generator = torch.Generator().manual_seed(seed)
        self.observation_spec = Composite(observation=Unbounded(shape=(n_contexts,)))
        self.action_spec = OneHot(n_actions) if one_hot else Categorical(n_actions)

    def best_action(self, observation: Tensor) -> Tensor:
        return observation.argmax(-1) % self.n_actions

    def reset(self, n: int) -> TensorDict:
        context = torch.randint(self.n_contexts, (n,), generator=self.generator)
        return self._root(torch.nn.functional.one_hot(context, self.n_contexts).float())

    def step(self, td: TensorDict) -> TensorDict:
        n = td.batch_size[0]
        index = _action_index(td["action"], self.one_hot)
        reward = (index == self.best_action(td["observation"])).float().reshape(n, 1)
        nxt = self.reset(n)
        nxt.update(_flags(n, torch.ones(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool)))
        nxt["reward"] = reward
        td["next"] = nxt
        return td


class Chain(_Task):
    """A corridor of ``n_states``: action 1 moves right, 0 left; the right end pays 1 and ends."""

    def __init__(
        self, n_states: int = 4, max_steps: int = 20, one_hot: bool = True, seed: int = 0
    ) -> None:
        self.n_states = n_states
        self.max_steps = max_steps
        self.one_hot = one_hot
        self.generator = torch.Generator().manual_seed(seed)
        self.observation_spec = Composite(
            observation=Unbounded(shape=(n_states,)), step_count=Unbounded(shape=(1,))
        )
        self.action_spec = OneHot(2) if one_hot else Categorical(2)

    def _obs(self, state: Tensor) -> Tensor:
        return torch.nn.functional.one_hot(state, self.n_states).float()

    def reset(self, n: int, random_start: bool = False) -> TensorDict:
        if random_start:
            state = torch.randint(self.n_states - 1, (n,), generator=self.generator)
        else:
            state = torch.zeros(n, dtype=torch.long)
        td = self._root(self._obs(state))
        td["step_count"] = torch.zeros(n, 1)
        return td

    def step(self, td: TensorDict) -> TensorDict:
        n = td.batch_size[0]
        state = td["observation"].argmax(-1)
        move = _action_index(td["action"], self.one_hot) * 2 - 1
        new_state = (state + move).clamp(0, self.n_states - 1)
        terminated = new_state == self.n_states - 1
        steps = td["step_count"] + 1
        truncated = (steps.reshape(n) >= self.max_steps) & ~terminated
        nxt = self._root(self._obs(new_state))
        nxt.update(_flags(n, terminated, truncated))
        nxt["reward"] = terminated.float().reshape(n, 1)
        nxt["step_count"] = steps
        td["next"] = nxt
        return td


class ContinuousBandit(_Task):
    """One-step bandit with a continuous action: the best action is ``0.5 * obs[:action_dim]``."""

    def __init__(
        self, obs_dim: int = 2, action_dim: int = 1, bounded: bool = True, seed: int = 0
    ) -> None:
        self.obs_dim = obs_dim
        self.action_dim = action_dim
        self.generator = torch.Generator().manual_seed(seed)
        self.observation_spec = Composite(observation=Unbounded(shape=(obs_dim,)))
        self.action_spec = (
            Bounded(-1.0, 1.0, shape=(action_dim,)) if bounded else Unbounded(shape=(action_dim,))
        )

    def best_action(self, observation: Tensor) -> Tensor:
        return 0.5 * observation[..., : self.action_dim]

    def random_action(self, n: int) -> Tensor:
        return torch.rand(n, self.action_dim, generator=self.generator) * 2 - 1

    def reset(self, n: int) -> TensorDict:
        return self._root(torch.rand(n, self.obs_dim, generator=self.generator) * 2 - 1)

    def step(self, td: TensorDict) -> TensorDict:
        n = td.batch_size[0]
        best = self.best_action(td["observation"])
        reward = -(td["action"] - best).pow(2).sum(-1, keepdim=True)
        nxt = self.reset(n)
        nxt.update(_flags(n, torch.ones(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool)))
        nxt["reward"] = reward.detach()
        td["next"] = nxt
        return td


def transitions(task: _Task, batch_size: int, *, random_start: bool = True) -> TensorDict:
    """A replay-like batch ``[batch_size]`` of one step each, with uniformly random actions.

    For :class:`Chain`, ``random_start`` spreads the start states over the
    corridor (every non-terminal state appears).
    """
    if isinstance(task, Chain):
        td = task.reset(batch_size, random_start=random_start)
    else:
        td = task.reset(batch_size)
    td["action"] = task.random_action(batch_size)
    return task.step(td)


def rollout(task: _Task, policy: Policy | None, num_envs: int, steps: int) -> TensorDict:
    """A trajectory batch ``[num_envs, steps]`` (time last) collected with ``policy``.

    Done sub-envs are reset before the next step, as collectors do.  Without a
    policy the actions are uniformly random.  The policy runs under
    ``torch.no_grad()`` and may write extra entries (``"sample_log_prob"``, ...).
    """
    td = task.reset(num_envs)
    out = []
    with torch.no_grad():
        for _ in range(steps):
            if policy is None:
                td["action"] = task.random_action(num_envs)
            else:
                td = policy(td)
            td = task.step(td)
            out.append(td.clone())
            nxt = td["next"].clone()
            done = nxt["done"].reshape(num_envs)
            if bool(done.any()):
                fresh = task.reset(num_envs)
                for key in fresh.keys():
                    value = nxt[key]
                    mask = done.reshape(num_envs, *([1] * (value.ndim - 1)))
                    nxt[key] = torch.where(mask, fresh[key], value)
            td = nxt.exclude("reward")
    return stack(out, dim=1)


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread inside the block (tiny networks gain nothing from more).

    The learning tests use it: on a busy machine, intra-op threads of tiny
    matmuls only spin and compete with other processes.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
