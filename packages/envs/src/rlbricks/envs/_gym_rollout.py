"""Random-action rollouts of gymnasium envs, written straight into preallocated arrays.

A random-action rollout needs no TensorDict per step: nobody reads the
intermediate steps (there is no policy). :func:`random_rollout` draws every
action at once from the action spec, steps the gymnasium env (single or
vector) with plain numpy values, writes observations, rewards and flags into
arrays of shape ``[T, *batch, ...]`` and builds the stacked TensorDict once
at the end. The result is what the generic rollout loop gives for the same
actions (same keys, shapes, dtypes and values; the tests replay the actions
through the generic loop to check it), at a fraction of the per-step cost.

Used by ``rollout(env, n)`` without a policy (random exploration, warm-up
frames, smoke tests) when the env is a plain :class:`GymWrapper` with a
``Box`` observation on the CPU; anything else takes the generic loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any
from typing import cast

import numpy as np
import torch

from rlbricks.specs import Bounded
from rlbricks.specs import Categorical
from rlbricks.specs import OneHot
from rlbricks.specs import TensorSpec
from rlbricks.specs import Unbounded
from rlbricks.tensordict import TensorDict

if TYPE_CHECKING:
    from rlbricks.envs._gym import GymWrapper

__all__ = ["DONE_FLAGS", "env_supported", "random_rollout"]

DONE_FLAGS = ("done", "terminated", "truncated")
_ROOT_KEYS = frozenset(("observation", *DONE_FLAGS))


def _gym_actions(wrapper: GymWrapper, actions: torch.Tensor) -> Any:
    """What ``env.step`` takes, for every step at once (indexed by step), or None."""
    kind = type(wrapper._act_space).__name__
    spec = wrapper.action_spec
    if kind == "Discrete":
        index = actions.to(torch.uint8).argmax(-1) if isinstance(spec, OneHot) else actions
        index = index.to(torch.int64) + int(wrapper._act_space.start)
        if wrapper._vector:
            return index.numpy()  # rows of int64 indices
        return index.tolist()  # Python ints, as the generic path passes them
    if kind == "Box":
        return actions.numpy().astype(wrapper._act_space.dtype, copy=False)
    return None


def env_supported(wrapper: GymWrapper) -> bool:
    """Whether the array loops may stand in for ``wrapper``'s step-by-step loop."""
    from rlbricks.envs._gym import GymWrapper

    cls = type(wrapper)
    return not (
        cls._step is not GymWrapper._step
        or cls._reset is not GymWrapper._reset
        or cls.step is not GymWrapper.step
        or cls.reset is not GymWrapper.reset
        or cls.step_and_maybe_reset is not GymWrapper.step_and_maybe_reset
        or cls.maybe_reset is not GymWrapper.maybe_reset
        or wrapper._obs_fn is None  # a Box observation only (no pixels, info keys, dicts)
        or not wrapper._cpu
        or (wrapper.frame_skip != 1 and not wrapper._vector)
        or wrapper.is_closed  # the generic loop raises the error
    )


def _supported(wrapper: GymWrapper, root: TensorDict) -> TensorSpec[Any] | None:
    """The action spec when the fast loop applies to ``wrapper`` and ``root``, else None."""
    if not env_supported(wrapper):
        return None
    spec = wrapper.action_spec
    if spec.__class__ in (OneHot, Categorical):
        if spec.mask is not None:
            return None
    elif spec.__class__ not in (Bounded, Unbounded):
        return None
    if root.__class__ is not TensorDict or root.batch_size != wrapper._batch_size:
        return None
    if root.entries.keys() != _ROOT_KEYS:
        return None  # other root keys: the generic loop carries them step to step
    for value in root.entries.values():
        if value.__class__ is not torch.Tensor or not value.is_cpu or value.requires_grad:
            return None
    if root.entries["observation"].shape != wrapper.observation_spec["observation"].shape:
        return None
    return spec


def random_rollout(
    wrapper: GymWrapper, root: TensorDict, max_steps: int, break_when_any_done: bool
) -> TensorDict | None:
    """Roll ``wrapper`` out from ``root`` with random actions; None if not applicable.

    Same contract as the generic :func:`rlbricks.envs.rollout` without a
    policy: ``[*batch, T]`` steps, finished sub-envs reset in place (or a stop
    after the first done with ``break_when_any_done``).
    """
    spec = _supported(wrapper, root)
    if spec is None:
        return None
    actions = spec.rand((max_steps,))  # [T, *batch, ...], i.i.d. as spec.rand() per step
    gym_actions = _gym_actions(wrapper, actions)
    if gym_actions is None:
        return None
    env = wrapper.env
    batch = tuple(wrapper._batch_size)
    obs_dtype = np.dtype(wrapper._obs_space.dtype)
    first = cast(torch.Tensor, root.entries["observation"]).numpy()
    flag_shape = (max_steps, *batch, 1)
    next_obs = np.empty((max_steps, *first.shape), dtype=obs_dtype)
    reward = np.zeros(flag_shape, dtype=np.float32)
    terminated = np.zeros(flag_shape, dtype=bool)
    truncated = np.zeros(flag_shape, dtype=bool)
    # root observations: next_obs shifted by one step, except where a sub-env was reset
    resets: list[tuple[int, Any, Any]] = []  # (step, mask or None, reset observation)
    steps = max_steps
    if wrapper._vector:
        pending = wrapper._pending
        same_step = wrapper._same_step
        if same_step:
            pending.check_step()
        for t in range(max_steps):
            obs, rew, term, trunc, info = env.step(gym_actions[t])
            reward[t, :, 0] = rew
            terminated[t, :, 0] = term
            truncated[t, :, 0] = trunc
            done = term | trunc
            if True not in done.tolist():
                next_obs[t] = obs
                continue
            if same_step:  # gymnasium started the new episodes inside this step
                next_obs[t] = pending.split(obs, done, info)
            else:
                next_obs[t] = obs
            if break_when_any_done:
                steps = t + 1
                break
            if same_step:
                started = pending.observation
                pending.clear()
            else:
                seed, wrapper._seed = wrapper._seed, None
                mask = np.array(done, dtype=bool)
                started = env.reset(seed=seed, options={"reset_mask": mask})[0]
            resets.append((t, done, np.array(started, dtype=obs_dtype)))
    else:
        for t in range(max_steps):
            obs, rew, term, trunc, _ = env.step(gym_actions[t])
            next_obs[t] = obs
            reward[t, 0] = rew
            if term or trunc:
                terminated[t, 0] = term
                truncated[t, 0] = trunc
                if break_when_any_done:
                    steps = t + 1
                    break
                seed, wrapper._seed = wrapper._seed, None
                obs, _ = env.reset(seed=seed)
                resets.append((t, None, obs))
    root_obs = np.empty_like(next_obs[:steps])
    root_obs[0] = first
    root_obs[1:] = next_obs[: steps - 1]
    for t, mask, obs in resets:
        if t + 1 < steps:
            if mask is None:
                root_obs[t + 1] = obs
            else:
                root_obs[t + 1][mask] = obs[mask]
    return _assemble(root, actions, root_obs, next_obs, reward, terminated, truncated, steps)


def _assemble(
    root: TensorDict,
    actions: torch.Tensor,
    root_obs: np.ndarray,
    next_obs: np.ndarray,
    reward: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
    steps: int,
) -> TensorDict:
    """The stacked rollout ``[*batch, T]`` from the step-major arrays ``[T, *batch, ...]``."""
    batch = root.batch_size
    nd = len(batch)

    def time_last(value: torch.Tensor) -> torch.Tensor:
        value = value[:steps]
        return value.movedim(0, nd).contiguous() if nd else value

    flags0 = cast(dict[str, torch.Tensor], root.entries)  # checked by _supported
    root_flags = {}
    for key in ("done", "terminated", "truncated"):
        # every step after the first starts a fresh or ongoing episode: all False
        flag = torch.zeros((steps, *batch, 1), dtype=torch.bool)
        if key in flags0:
            flag[0] = flags0[key]
        root_flags[key] = time_last(flag)
    term = torch.from_numpy(terminated)
    trunc = torch.from_numpy(truncated)
    nxt = TensorDict.from_trusted(
        {
            "observation": time_last(torch.from_numpy(next_obs)),
            "reward": time_last(torch.from_numpy(reward)),
            "terminated": time_last(term),
            "truncated": time_last(trunc),
            "done": time_last(term | trunc),
        },
        torch.Size((*batch, steps)),
        root.device,
    )
    out: dict[str, Any] = {"observation": time_last(torch.from_numpy(root_obs))}
    out.update(root_flags)
    out["action"] = time_last(actions)
    out["next"] = nxt
    return TensorDict.from_trusted(out, torch.Size((*batch, steps)), root.device)
