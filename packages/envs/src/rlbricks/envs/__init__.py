"""rlbricks.envs: environments as TensorDict in / TensorDict out.

Subclass :class:`EnvBase` (declare specs, implement ``_reset``, ``_step``,
``_set_seed``) or wrap an existing simulator; ``rollout``, ``step_mdp`` and
``check_env_specs`` work on any of them.  Small deterministic fakes for tests
live in ``rlbricks.envs.testing``.

Example:
    >>> from rlbricks.envs import check_env_specs
    >>> from rlbricks.envs.testing import CountingEnv
    >>> env = CountingEnv(max_steps=4, batch_size=[2])
    >>> check_env_specs(env)
    >>> env.rollout(10).batch_size
    torch.Size([2, 4])
"""

from rlbricks.envs._base import EnvBase
from rlbricks.envs._base import done_spec_for
from rlbricks.envs._checks import check_env_specs
from rlbricks.envs._checks import step_spec
from rlbricks.envs._dm_control import DMControlEnv
from rlbricks.envs._dm_control import DMControlWrapper
from rlbricks.envs._errors import ActionError
from rlbricks.envs._errors import EnvError
from rlbricks.envs._errors import EnvImportError
from rlbricks.envs._errors import EnvKeyError
from rlbricks.envs._errors import EnvRuntimeError
from rlbricks.envs._errors import EnvStateWarning
from rlbricks.envs._errors import EnvTimeoutError
from rlbricks.envs._errors import EnvTypeError
from rlbricks.envs._errors import EnvValueError
from rlbricks.envs._gym import GymEnv
from rlbricks.envs._gym import GymWrapper
from rlbricks.envs._gym_spaces import space_to_spec
from rlbricks.envs._parallel import ParallelEnv
from rlbricks.envs._pickling import CloudpickleWrapper
from rlbricks.envs._processes import shutdown_workers
from rlbricks.envs._processes import stop_process
from rlbricks.envs._rollout import rollout
from rlbricks.envs._serial import SerialEnv
from rlbricks.envs._step_mdp import step_mdp

__version__ = "0.1.1"

__all__ = [
    "EnvBase",
    # errors
    "EnvError",
    "EnvRuntimeError",
    "EnvValueError",
    "ActionError",
    "EnvKeyError",
    "EnvTypeError",
    "EnvTimeoutError",
    "EnvImportError",
    "EnvStateWarning",
    # env functions
    "step_mdp",
    "rollout",
    "check_env_specs",
    "step_spec",
    "done_spec_for",
    # batched envs
    "SerialEnv",
    "ParallelEnv",
    # worker processes (ParallelEnv's, and the multiprocess collectors')
    "CloudpickleWrapper",
    "shutdown_workers",
    "stop_process",
    # simulator wrappers (optional extras)
    "GymEnv",
    "GymWrapper",
    "space_to_spec",
    "DMControlEnv",
    "DMControlWrapper",
]
