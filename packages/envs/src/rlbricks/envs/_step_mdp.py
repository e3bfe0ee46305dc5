"""``step_mdp``: turn the output of ``env.step`` into the input of the next step."""

from __future__ import annotations

from rlbricks.envs._errors import EnvRuntimeError
from rlbricks.tensordict import TensorDict

__all__ = ["DONE_KEYS", "step_mdp"]

DONE_KEYS = ("done", "terminated", "truncated")


def step_mdp(
    tensordict: TensorDict,
    *,
    keep_other: bool = True,
    exclude_action: bool = True,
    exclude_reward: bool = True,
    exclude_done: bool = False,
) -> TensorDict:
    """The root of the next step: the ``"next"`` entries move to the root.

    Args:
        tensordict: a TensorDict written by ``env.step`` (it holds ``"next"``).
        keep_other: also carry root keys that ``"next"`` does not hold (e.g.
            recurrent states written by the policy).
        exclude_action: drop ``"action"``.
        exclude_reward: drop ``"reward"`` (it belongs to the transition, not the state).
        exclude_done: drop ``"done"``, ``"terminated"`` and ``"truncated"``.

    Returns:
        A new TensorDict sharing the tensors of the input (no copy).

    Raises:
        EnvRuntimeError: the TensorDict has no ``"next"`` entry.

    Example:
        >>> import torch
        >>> from rlbricks.envs import step_mdp
        >>> from rlbricks.tensordict import TensorDict
        >>> td = TensorDict({"observation": torch.zeros(2), "action": torch.ones(1),
        ...                  "next": {"observation": torch.ones(2), "reward": torch.ones(1)}})
        >>> step_mdp(td)["observation"]
        tensor([1., 1.])
        >>> sorted(step_mdp(td).keys())
        ['observation']
    """
    entries = tensordict.entries
    nxt = entries.get("next")
    if nxt.__class__ is not TensorDict:
        if nxt is None:
            raise EnvRuntimeError(
                "step_mdp needs the output of env.step: the TensorDict has no 'next' entry "
                f"(keys: {list(tensordict.keys())})"
            )
        if not isinstance(nxt, TensorDict):
            raise EnvRuntimeError("step_mdp: 'next' holds a tensor, not a TensorDict")
    source = nxt.entries.copy()
    if exclude_reward:
        source.pop("reward", None)
    if exclude_done:
        for key in DONE_KEYS:
            source.pop(key, None)
    if keep_other:
        for key, value in entries.items():
            if key in source or key == "next":
                continue
            if (exclude_action and key == "action") or (exclude_reward and key == "reward"):
                continue
            if exclude_done and key in DONE_KEYS:
                continue
            source[key] = value
    return TensorDict.from_trusted(source, tensordict.batch_size, tensordict.device)
