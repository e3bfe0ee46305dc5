"""The evaluation hook: deterministic rollouts on a separate env, logged as the mean return."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from typing import Any
from typing import ClassVar

import torch

from rlbricks.envs import EnvBase
from rlbricks.envs import step_mdp
from rlbricks.modules import ExplorationType
from rlbricks.modules import set_exploration_type
from rlbricks.tensordict import TensorDict
from rlbricks.trainers._errors import TrainerValueError
from rlbricks.trainers._hooks import TrainerHookBase

__all__ = ["Recorder"]


class Recorder(TrainerHookBase):
    """Every ``record_interval`` batches, evaluate the policy and log its mean episode return.

    An evaluation plays ``num_episodes`` whole episodes on ``env`` (not the
    collector's) under ``torch.no_grad()``, the policy in ``eval()`` mode and
    ``set_exploration_type(exploration_type)`` (deterministic by default:
    exploration noise off). A batched env plays its sub-envs side by side;
    episode ``k`` is played by sub-env ``k % batch`` so that short episodes are
    not favoured. An episode longer than ``max_steps`` steps is cut there and
    counts with the return reached. With ``seed``, the env is re-seeded before
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
        reward_key: the reward entry of a step's output.
        num_episodes: episodes of each periodic evaluation (None: one per sub-env).

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
        num_episodes: int | None = None,
    ) -> None:
        if max_steps < 1:
            raise TrainerValueError(f"Recorder: max_steps must be >= 1, got {max_steps}")
        if num_episodes is not None and num_episodes < 1:
            raise TrainerValueError(f"Recorder: num_episodes must be >= 1, got {num_episodes}")
        self.env = env
        self.policy = policy
        self.record_interval = int(record_interval)
        self.max_steps = int(max_steps)
        self.name = name
        self.seed = seed
        self.exploration_type = exploration_type
        self.reward_key = reward_key
        self.num_episodes = num_episodes
        self.count = 0

    def evaluate(self) -> float:
        """Run one evaluation now (``num_episodes`` episodes); return the mean episode return.

        Example:
            >>> from rlbricks.envs.testing import CountingEnv
            >>> from rlbricks.trainers import Recorder
            >>> Recorder(CountingEnv(max_steps=4), lambda td: td.set(
            ...     "action", td["observation"].long() * 0)).evaluate()
            0.0
        """
        returns = self.evaluate_episodes(self.num_episodes)
        return sum(returns) / len(returns)

    def evaluate_episodes(self, num_episodes: int | None = None) -> list[float]:
        """Play ``num_episodes`` whole episodes (None: one per sub-env); return each one's return.

        The returns are listed in episode order (episode ``k`` ran on sub-env
        ``k % batch``), so the same seed gives the same list.

        Raises:
            TrainerError: ``num_episodes`` is not positive.

        Example:
            >>> import statistics
            >>> from rlbricks.envs.testing import CountingEnv
            >>> from rlbricks.trainers import Recorder
            >>> def always_one(td):
            ...     td["action"] = td["observation"].long() * 0 + 1
            ...     return td
            >>> returns = Recorder(CountingEnv(max_steps=3, batch_size=[4]), always_one,
            ...                    max_steps=2).evaluate_episodes(6)
            >>> returns, statistics.pstdev(returns)
            ([2.0, 2.0, 2.0, 2.0, 2.0, 2.0], 0.0)
        """
        env = self.env
        width = max(1, env.batch_size.numel())
        n = width if num_episodes is None else int(num_episodes)
        if n < 1:
            raise TrainerValueError(f"Recorder: num_episodes must be >= 1, got {num_episodes}")
        if self.seed is not None:
            env.set_seed(self.seed)
        policy = self.policy
        module = policy if isinstance(policy, torch.nn.Module) else None
        was_training = module is not None and module.training
        if module is not None and was_training:
            module.eval()
        try:
            with torch.no_grad(), set_exploration_type(self.exploration_type):
                return self._play(n, width)
        finally:
            if module is not None and was_training:
                module.train()

    def _play(self, n: int, width: int) -> list[float]:
        env = self.env
        # sub-env i plays the episodes i, i + width, i + 2 width, ... below n
        quota = [len(range(i, n, width)) for i in range(width)]
        played = [0] * width
        results: dict[int, float] = {}
        total = torch.zeros(width, dtype=torch.float64)
        steps = torch.zeros(width, dtype=torch.long)
        td = env.reset()
        while len(results) < n:
            td = env.step(self.policy(td))
            reward = td.get(self.reward_key).detach().to("cpu", torch.float64)
            total += reward.reshape(width, -1).sum(-1)
            steps += 1
            done_flags = td.get(("next", "done"))
            done = done_flags.detach().to("cpu").reshape(width, -1).any(-1) | (
                steps >= self.max_steps
            )
            if not bool(done.any()):
                td = step_mdp(td)
                continue
            for i in done.nonzero().flatten().tolist():
                if played[i] < quota[i]:
                    results[i + width * played[i]] = float(total[i])
                    played[i] += 1
            total[done] = 0.0
            steps[done] = 0
            root = step_mdp(td)
            root.set("done", done.to(done_flags.device).reshape(done_flags.shape))
            td = env.maybe_reset(root)
        return [results[k] for k in range(n)]

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
