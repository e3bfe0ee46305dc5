"""``check_env_specs``: does what an env outputs match what its specs declare?"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlbricks.envs._errors import EnvRuntimeError
from rlbricks.specs import Composite
from rlbricks.specs import SpecError

if TYPE_CHECKING:
    from rlbricks.envs._base import EnvBase

__all__ = ["check_env_specs", "step_spec"]

# keys written by rlbricks itself, never declared in specs
_BOOKKEEPING = {"_reset"}


def step_spec(env: EnvBase) -> Composite:
    """The spec of one stepped TensorDict: root inputs plus ``"next"`` outputs.

    Example:
        >>> from rlbricks.envs import step_spec
        >>> from rlbricks.envs.testing import CountingEnv
        >>> sorted(step_spec(CountingEnv()).keys())
        ['action', 'done', 'next', 'observation', 'terminated', 'truncated']
    """
    root = Composite(shape=env.batch_size)
    root.update(env.observation_spec)
    root.update(env.state_spec)
    root.update(env.done_spec)
    root["action"] = env.action_spec
    nxt = Composite(shape=env.batch_size)
    nxt.update(env.observation_spec)
    nxt.update(env.done_spec)
    nxt["reward"] = env.reward_spec
    root["next"] = nxt
    return root


def check_env_specs(env: EnvBase, steps: int = 3, seed: int | None = None) -> None:
    """Roll ``env`` out with random actions and check every entry against the specs.

    Every problem is reported at once: keys missing from the output, values
    outside their spec (with the expected range and what was seen), and keys
    the env writes without declaring them.

    Args:
        env: the environment to check.
        steps: the rollout length (finished sub-envs are reset meanwhile).
        seed: seed the env first.

    Raises:
        EnvRuntimeError: the output disagrees with the specs (the message lists every problem).

    Example:
        >>> from rlbricks.envs import check_env_specs
        >>> from rlbricks.envs.testing import CountingEnv
        >>> check_env_specs(CountingEnv())
    """
    if seed is not None:
        env.set_seed(seed)
    td = env.rollout(steps, break_when_any_done=False)
    spec = step_spec(env)
    problems: list[str] = []
    for t in range(td.batch_size[-1]):
        try:
            spec.assert_is_in(td[..., t])
        except SpecError as err:
            message = f"step {t}: {err}"
            if not any(p.split(": ", 1)[1] == str(err) for p in problems):
                problems.append(message)
    declared = set(spec.keys(include_nested=True, leaves_only=True))
    written = set(td.keys(include_nested=True, leaves_only=True))
    extra = sorted(
        (k for k in written - declared if (k if isinstance(k, str) else k[-1]) not in _BOOKKEEPING),
        key=str,
    )
    if extra:
        problems.append(f"keys written but not declared in any spec: {extra}")
    if problems:
        raise EnvRuntimeError(
            f"{type(env).__name__} does not match its specs:\n" + "\n".join(problems)
        )
