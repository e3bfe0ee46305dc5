"""The evaluation hook: deterministic rollouts on a separate env, logged as the mean return."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from typing import Any
from typing import ClassVar

import torch

from rlbricks.envs import EnvBase
from rlbricks.modules import ExplorationType
from rlbricks.modules import set_exploration_type
from rlbricks.tensordict import TensorDict
from rlbricks.trainers._hooks import TrainerHookBase

__all__ = ["Recorder"]


class Recorder(TrainerHookBase):
    """Every ``record_interval`` batches, evaluate the policy and log its mean episode return.

    The rollout runs on ``env`` (not the collector's) under ``torch.no_grad()``
    and ``set_exploration_type(exploration_type)`` (deterministic by default:
    exploration noise off), for at most ``max_steps`` steps and stopping when
    any sub-env is done; the return is the sum of ``reward_key`` over time,
    averaged over the env's batch. With ``seed``, the env is re-seeded before
    each evaluation so that every evaluation sees the same starts.

    Stage: ``post_steps_log``; returns ``{name: mean return}`` when it ran.

    Args:
        env: the evaluation env.
        policy: the policy to evaluate.
        record_interval: batches between evaluations.
        max_steps: the longest evaluation episode.
        name: the scalar's name (``"eval_reward"`` feeds ``summary.json``).
        seed: re-seed the env before each evaluation (None: never).
        exploration_type: how the policy picks actions.
        reward_key: the reward entry of the rollout.

    Example:
        >>> from rlbricks.envs.testing import CountingEnv
        >>> from rlbricks.trainers import Recorder
        >>> def always_one(td):
        ...     td["action"] = td["observation"].long() * 0 + 1
        ...     return td
        >>> Recorder(CountingEnv(max_steps=3), always_one, record_interval=1).evaluate()
        3.0
    """

    stage: ClassVar[str | None] = "post_steps_log"
    checkpointed: ClassVar[bool] = True

    def __init__(
        self,
        env: EnvBase,
        policy: Callable[[TensorDict], TensorDict],
        *,
        record_interval: int = 10,
        max_steps: int = 1000,
        name: str = "eval_reward",
        seed: int | None = None,
        exploration_type: ExplorationType = ExplorationType.DETERMINISTIC,
        reward_key: str | tuple[str, ...] = ("next", "reward"),
    ) -> None:
        self.env = env
        self.policy = policy
        self.record_interval = int(record_interval)
        self.max_steps = int(max_steps)
        self.name = name
        self.seed = seed
        self.exploration_type = exploration_type
        self.reward_key = reward_key
        self.count = 0

    def evaluate(self) -> float:
        """Run one evaluation rollout now; return its mean episode return.

        Example:
            >>> from rlbricks.envs.testing import CountingEnv
            >>> from rlbricks.trainers import Recorder
            >>> Recorder(CountingEnv(max_steps=4), lambda td: td.set(
            ...     "action", td["observation"].long() * 0)).evaluate()
            0.0
        """
        if self.seed is not None:
            self.env.set_seed(self.seed)
        policy = self.policy
        module = policy if isinstance(policy, torch.nn.Module) else None
        was_training = module is not None and module.training
        if module is not None and was_training:
            module.eval()
        try:
            with torch.no_grad(), set_exploration_type(self.exploration_type):
                td = self.env.rollout(self.max_steps, policy, break_when_any_done=True)
        finally:
            if module is not None and was_training:
                module.train()
        reward = td.get(self.reward_key).float()
        # sum over time (the last batch dim), mean over the env's batch
        returns = reward.sum(dim=td.batch_dims - 1)
        return float(returns.mean())

    def __call__(self, batch: TensorDict | None = None) -> dict[str, float] | None:
        """Count one batch; evaluate when due and return ``{name: mean return}``."""
        self.count += 1
        if self.count % self.record_interval:
            return None
        return {self.name: self.evaluate()}

    def state_dict(self) -> dict[str, Any]:
        """The number of batches seen.

        Example:
            >>> from rlbricks.envs.testing import CountingEnv
            >>> from rlbricks.trainers import Recorder
            >>> Recorder(CountingEnv(), lambda td: td).state_dict()
            {'count': 0}
        """
        return {"count": self.count}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the number of batches seen.

        Example:
            >>> from rlbricks.envs.testing import CountingEnv
            >>> from rlbricks.trainers import Recorder
            >>> recorder = Recorder(CountingEnv(), lambda td: td)
            >>> recorder.load_state_dict({"count": 4})
            >>> recorder.count
            4
        """
        self.count = int(state["count"])
