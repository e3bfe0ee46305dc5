"""Gymnasium's same-step autoreset, kept from gluing episodes together.

With ``AutoresetMode.SAME_STEP`` a gymnasium vector env resets a finished
sub-env inside the ``step`` that finished it: ``step`` returns the first
observation of the new episode and puts the last one of the old episode in
``info["final_obs"]``. That saves the separate ``reset`` call (and its pass
over every sub-env) that ``AutoresetMode.DISABLED`` needs, but the two
observations must be told apart. :class:`PendingResets` does it:

* :meth:`PendingResets.split` turns a step's observation into the true next
  observation (the final one for finished sub-envs) and keeps the new
  episodes' first observations aside;
* :meth:`PendingResets.take` hands those first observations to the reset
  that follows (``maybe_reset`` or ``reset`` with a ``"_reset"`` mask)
  without calling gymnasium again; sub-envs in the mask that gymnasium did not
  reset are reset for real.

A step taken while reset observations are still pending would continue the
new episodes from a root holding the old ones: it raises instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlbricks.envs._errors import EnvRuntimeError

__all__ = ["PendingResets"]


class PendingResets:
    """The first observations of episodes that gymnasium started inside the last step.

    Args:
        owner: the name used in error messages.

    Example:
        >>> import numpy as np
        >>> from rlbricks.envs._gym_autoreset import PendingResets
        >>> pending = PendingResets("env")
        >>> obs = np.array([[1.0], [9.0]])  # sub-env 1 finished: 9 starts its new episode
        >>> info = {"final_obs": np.array([None, np.array([5.0])], dtype=object)}
        >>> pending.split(obs, np.array([False, True]), info).tolist()
        [[1.0], [5.0]]
        >>> pending.take(np.array([False, True]), lambda mask: None).tolist()
        [[1.0], [9.0]]
    """

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.mask: np.ndarray | None = None
        self.observation: np.ndarray | None = None

    def check_step(self) -> None:
        """Raise if finished sub-envs have not been reset since the last step."""
        if self.mask is not None:
            index = np.flatnonzero(self.mask).tolist()
            raise EnvRuntimeError(
                f"{self.owner}: sub-envs {index} finished at the previous step and were not "
                "reset; call env.maybe_reset(root), env.step_and_maybe_reset(td) or env.reset "
                "with a '_reset' mask before stepping again"
            )

    def split(self, obs: Any, done: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """The next observations of a step (final ones for finished sub-envs); keep the rest.

        ``obs`` is what gymnasium's ``step`` returned, ``done`` the finished
        sub-envs. The returned array is fresh (gymnasium may reuse ``obs``).
        """
        first = np.array(obs)  # copies: the vector env may reuse its buffer
        nxt = first.copy()
        final = info["final_obs"]
        for i in np.flatnonzero(done).tolist():
            nxt[i] = final[i]
        self.mask = np.array(done, dtype=bool)
        self.observation = first
        return nxt

    def clear(self) -> None:
        """Forget the pending observations (after a full reset)."""
        self.mask = None
        self.observation = None

    def take(self, mask: np.ndarray, reset: Any) -> np.ndarray | None:
        """Observations of the sub-envs in ``mask`` at the start of their new episode.

        Pending sub-envs take their kept observation; ``reset(mask)`` resets
        the others for real and returns gymnasium's observation array (called
        only when needed). Rows outside ``mask`` are not meaningful. None when
        nothing is pending and ``reset`` returned None.

        Raises:
            EnvRuntimeError: a sub-env gymnasium already reset is not in ``mask``.
        """
        pending, kept = self.mask, self.observation
        if pending is None or kept is None:
            return reset(mask)
        missing = pending & ~mask
        if missing.any():
            raise EnvRuntimeError(
                f"{self.owner}: sub-envs {np.flatnonzero(missing).tolist()} were reset by "
                "gymnasium's autoreset when they finished; include them in the '_reset' mask"
            )
        self.clear()
        rest = mask & ~pending
        if not rest.any():
            return kept
        fresh = reset(rest)
        rows = rest.reshape(rest.shape + (1,) * (kept.ndim - 1))
        return np.where(rows, np.asarray(fresh, dtype=kept.dtype), kept)
