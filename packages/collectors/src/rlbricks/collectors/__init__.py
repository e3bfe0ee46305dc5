"""rlbricks.collectors: run a policy in environments, hand the learner batches of experience.

:class:`SyncDataCollector` runs in this process; the multiprocess collectors
run one collector per worker process; ``RayCollector`` spreads them over a
Ray cluster. Every batch is a TensorDict ``[*env.batch_size, T]`` (time last)
with ``("collector", "traj_ids")``.

Example:
    >>> from rlbricks.collectors import SyncDataCollector
    >>> from rlbricks.envs.testing import CountingEnv
    >>> collector = SyncDataCollector(CountingEnv(batch_size=[4]), frames_per_batch=32,
    ...                               total_frames=64)
    >>> [batch.batch_size for batch in collector]
    [torch.Size([4, 8]), torch.Size([4, 8])]
"""

from rlbricks.collectors._errors import CollectorError
from rlbricks.collectors._errors import CollectorImportError
from rlbricks.collectors._errors import CollectorRuntimeError
from rlbricks.collectors._errors import CollectorTimeoutError
from rlbricks.collectors._errors import WorkerActionError
from rlbricks.collectors._multi import MultiaSyncDataCollector
from rlbricks.collectors._multi import MultiSyncDataCollector
from rlbricks.collectors._ray import RayCollector
from rlbricks.collectors._sync import SyncDataCollector
from rlbricks.collectors._trajectories import split_trajectories

__version__ = "0.1.1"

__all__ = [
    "CollectorError",
    "CollectorRuntimeError",
    "CollectorTimeoutError",
    "CollectorImportError",
    "MultiSyncDataCollector",
    "MultiaSyncDataCollector",
    "RayCollector",
    "SyncDataCollector",
    "WorkerActionError",
    "split_trajectories",
]
