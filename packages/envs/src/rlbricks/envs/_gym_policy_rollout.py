"""Policy rollouts of gymnasium envs with the env's outputs written into preallocated arrays.

The policy needs a root TensorDict at every step; the env's outputs do not:
nobody reads them before the rollout ends. :func:`policy_rollout` therefore
builds each step's root (observation, done flags and the entries the
generic loop would carry over), calls the policy, steps gymnasium with plain
numpy values and writes the next observation, reward and flags into arrays
of shape ``[T + 1, *batch, ...]``. The next step's root observation is a view
of the same array. At the end the policy's outputs are stacked and the arrays
become the ``"next"`` entries, without a per-step ``"next"`` TensorDict,
``step_mdp`` or merge.

The result is the generic loop's (``step_and_maybe_reset`` step after step,
then a stack): the same entries, values and episode boundaries, and the same
action checks (:class:`~rlbricks.envs.ActionError` before gymnasium sees a
bad action); the tests compare the two on the same actions. Used by
``rollout(env, n, policy)`` and by collectors, for a plain
:class:`GymWrapper` with a ``Box`` observation on the CPU; anything else
takes the generic loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING
from typing import Any
from typing import cast

import numpy as np
import torch

from rlbricks.envs._errors import EnvRuntimeError
from rlbricks.envs._gym_rollout import DONE_FLAGS
from rlbricks.envs._gym_rollout import env_supported
from rlbricks.envs._gym_spaces import tensor_to_space_value
from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import stack

if TYPE_CHECKING:
    from rlbricks.envs._gym import GymWrapper

__all__ = ["policy_rollout"]

_ENV_KEYS = frozenset(("observation", "reward", *DONE_FLAGS))
_NOT_CARRIED = frozenset(("observation", "reward", "action", "next", *DONE_FLAGS))


def _root_supported(wrapper: GymWrapper, root: TensorDict) -> bool:
    if root.__class__ is not TensorDict or root.batch_size != wrapper._batch_size:
        return False
    source = root.entries
    if "next" in source or "observation" not in source:
        return False
    for key in ("observation", *DONE_FLAGS):
        value = source.get(key)
        if value.__class__ is not torch.Tensor or not value.is_cpu or value.requires_grad:
            return False
    expected = wrapper.observation_spec["observation"].shape
    return bool(source["observation"].shape == expected)


def _action_converter(wrapper: GymWrapper) -> Callable[[Any], Any] | None:
    if wrapper._action_fn is not None:
        return wrapper._action_fn
    if type(wrapper._act_space).__name__ != "Box":
        return None
    space, spec = wrapper._act_space, wrapper.action_spec
    return lambda action: tensor_to_space_value(action, space, spec)


def policy_rollout(
    wrapper: GymWrapper,
    root: TensorDict,
    policy: Callable[[TensorDict], TensorDict],
    max_steps: int,
    break_when_any_done: bool,
) -> tuple[TensorDict, TensorDict] | None:
    """Roll ``wrapper`` out with ``policy`` from ``root``; None if not applicable.

    Returns:
        ``(steps, next_root)``: the steps stacked on a last batch dim, as the
        generic loop gives them, and the root of the step after the last one
        (finished sub-envs reset), from which a next rollout can continue.
    """
    if not env_supported(wrapper) or not _root_supported(wrapper, root):
        return None
    convert = _action_converter(wrapper)
    if convert is None:
        return None
    check = wrapper._action_checker()  # the checks of ``step``, on every action
    run_check = None if check is None else check.run
    validate = wrapper.validate_actions
    env = wrapper.env
    batch = wrapper._batch_size
    vector = wrapper._vector
    device = root.device
    first = cast(torch.Tensor, root.entries["observation"]).numpy()
    obs_dtype = np.dtype(wrapper._obs_space.dtype)
    root_obs = np.empty((max_steps + 1, *first.shape), dtype=obs_dtype)
    root_obs[0] = first
    next_obs = np.empty((max_steps, *first.shape), dtype=obs_dtype)
    flag_shape = (max_steps, *batch, 1)
    reward = np.zeros(flag_shape, dtype=np.float32)
    terminated = np.zeros(flag_shape, dtype=bool)
    truncated = np.zeros(flag_shape, dtype=bool)
    zero_flags = np.zeros((max_steps + 1, 3, *batch, 1), dtype=bool)  # roots after the first
    pending = wrapper._pending
    same_step = wrapper._same_step
    if same_step:
        pending.check_step()
    outputs: list[TensorDict] = []
    source: dict[str, Any] = dict(root.entries)
    steps = max_steps
    from_numpy = torch.from_numpy
    for t in range(max_steps):
        td = policy(TensorDict.from_trusted(source, batch, device))
        action = td.entries.get("action")
        if action is None:
            raise EnvRuntimeError(
                "the policy did not write 'action' into the TensorDict it was given: make it "
                "write its action under the 'action' key"
            )
        if run_check is not None:
            run_check(action, validate, wrapper)
        obs, rew, term, trunc, info = env.step(convert(action))
        outputs.append(td)
        if vector:
            reward[t, :, 0] = rew
            terminated[t, :, 0] = term
            truncated[t, :, 0] = trunc
            done = term | trunc
            finished = True in done.tolist()
            if finished and same_step:
                obs = pending.split(obs, done, info)
        else:
            reward[t, 0] = rew
            terminated[t, 0] = term
            truncated[t, 0] = trunc
            finished = bool(term or trunc)
        next_obs[t] = obs
        if finished and break_when_any_done:
            steps = t + 1
            break
        root_obs[t + 1] = obs
        if finished:
            seed, wrapper._seed = wrapper._seed, None
            if not vector:
                root_obs[t + 1] = env.reset(seed=seed)[0]
            elif same_step:
                rows = done.reshape(done.shape + (1,) * (first.ndim - 1))
                root_obs[t + 1] = np.where(rows, pending.observation, obs)
                pending.clear()
            else:
                fresh = env.reset(seed=seed, options={"reset_mask": np.array(done, dtype=bool)})[0]
                rows = done.reshape(done.shape + (1,) * (first.ndim - 1))
                root_obs[t + 1] = np.where(rows, fresh, obs)
        source = _carried(td)
        flags = zero_flags[t + 1]
        source["observation"] = from_numpy(root_obs[t + 1])
        source["done"] = from_numpy(flags[0])
        source["terminated"] = from_numpy(flags[1])
        source["truncated"] = from_numpy(flags[2])
    result = _assemble(
        root, outputs, root_obs, next_obs, reward, terminated, truncated, zero_flags, steps
    )
    return result, TensorDict.from_trusted(source, batch, device)


def _carried(td: TensorDict) -> dict[str, Any]:
    """The entries ``step_mdp`` carries to the next root, besides the env's outputs."""
    source = td.entries
    out = {k: v for k, v in source.items() if k not in _NOT_CARRIED}
    written = _written_next(td)  # next entries the policy wrote (e.g. recurrent states)
    if written is not None:
        out.update((k, v) for k, v in written.entries.items() if k not in _ENV_KEYS)
    return out


def _written_next(td: TensorDict) -> TensorDict | None:
    """The ``"next"`` entries the policy wrote into ``td`` (None if it wrote none)."""
    written = td.entries.get("next")
    if written is None or isinstance(written, TensorDict):
        return written
    raise EnvRuntimeError(
        f"the policy wrote a {type(written).__name__} under 'next', not a TensorDict: "
        "env.step writes its outputs there"
    )


def _assemble(
    root: TensorDict,
    outputs: list[TensorDict],
    root_obs: np.ndarray,
    next_obs: np.ndarray,
    reward: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
    zero_flags: np.ndarray,
    steps: int,
) -> TensorDict:
    """The stacked steps ``[*batch, T]``: the policy's entries stacked, the env's from arrays."""
    batch = root.batch_size
    nd = len(batch)
    size = torch.Size((*batch, steps))

    def time_last(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array[:steps]).movedim(0, nd).contiguous()

    root_flags = zero_flags[:steps, :]
    for i, key in enumerate(("done", "terminated", "truncated")):
        root_flags[0, i] = cast(torch.Tensor, root.entries[key]).numpy()
    source: dict[str, Any] = {"observation": time_last(root_obs)}
    for i, key in enumerate(("done", "terminated", "truncated")):
        source[key] = time_last(root_flags[:, i])
    policy_side = [
        TensorDict.from_trusted(
            {k: v for k, v in td.entries.items() if k not in _ENV_KEYS and k != "next"},
            batch,
            root.device,
        )
        for td in outputs
    ]
    stacked = stack(policy_side, nd)
    source.update(stacked.entries)
    term = terminated[:steps]
    trunc = truncated[:steps]
    nxt: dict[str, Any] = {
        "observation": time_last(next_obs),
        "reward": time_last(reward),
        "terminated": time_last(term),
        "truncated": time_last(trunc),
        "done": time_last(term | trunc),
    }
    maybe_written = [_written_next(td) for td in outputs]
    if any(w is not None for w in maybe_written):
        written = [w for w in maybe_written if w is not None]
        if len(written) != len(maybe_written):
            raise EnvRuntimeError(
                "the policy wrote 'next' entries at some steps and not at others: a policy "
                "should leave 'next' alone (env.step writes there)"
            )
        extra = [
            TensorDict.from_trusted(
                {k: v for k, v in w.entries.items() if k not in _ENV_KEYS},
                batch,
                root.device,
            )
            for w in written
        ]
        nxt.update(stack(extra, nd).entries)
    source["next"] = TensorDict.from_trusted(nxt, size, root.device)
    return TensorDict.from_trusted(source, size, root.device)
