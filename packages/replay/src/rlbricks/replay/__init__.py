"""Replay buffers for PyTorch: storages, samplers, writers and the buffers built from them.

A buffer owns a *storage* (where rows live), a *sampler* (which rows a batch
takes) and a *writer* (where new rows go); each can be swapped on its own.

Example:
    >>> import torch
    >>> from rlbricks.replay import LazyTensorStorage, ReplayBuffer
    >>> rb = ReplayBuffer(storage=LazyTensorStorage(100), batch_size=8)
    >>> _ = rb.extend({"obs": torch.randn(10, 3)})
    >>> rb.sample()["obs"].shape
    torch.Size([8, 3])
"""

from rlbricks.replay._atomic_folder import check_folder
from rlbricks.replay._atomic_folder import folder_leftovers
from rlbricks.replay._atomic_folder import recover_folder
from rlbricks.replay._atomic_folder import write_folder_atomically
from rlbricks.replay._buffers import ReplayBuffer
from rlbricks.replay._errors import EmptyBufferError
from rlbricks.replay._errors import ReplayArgumentError
from rlbricks.replay._errors import ReplayAttributeError
from rlbricks.replay._errors import ReplayError
from rlbricks.replay._errors import ReplayFileNotFoundError
from rlbricks.replay._errors import ReplayImportError
from rlbricks.replay._errors import ReplayIndexError
from rlbricks.replay._errors import ReplayKeyError
from rlbricks.replay._errors import ReplayOSError
from rlbricks.replay._errors import ReplayRuntimeError
from rlbricks.replay._errors import ReplayTypeError
from rlbricks.replay._errors import StructureError
from rlbricks.replay._interfaces import Sampler
from rlbricks.replay._interfaces import Storage
from rlbricks.replay._interfaces import Writer
from rlbricks.replay._prioritized import PrioritizedSampler
from rlbricks.replay._ray_buffer import RayReplayBuffer
from rlbricks.replay._samplers import RandomSampler
from rlbricks.replay._samplers import SamplerWithoutReplacement
from rlbricks.replay._segment_tree import MinSegmentTree
from rlbricks.replay._segment_tree import SumSegmentTree
from rlbricks.replay._slice import SliceSampler
from rlbricks.replay._storages import LazyMemmapStorage
from rlbricks.replay._storages import LazyTensorStorage
from rlbricks.replay._storages import ListStorage
from rlbricks.replay._storages import TensorStorage
from rlbricks.replay._td_buffers import PrioritizedReplayBuffer
from rlbricks.replay._td_buffers import TensorDictPrioritizedReplayBuffer
from rlbricks.replay._td_buffers import TensorDictReplayBuffer
from rlbricks.replay._writers import RoundRobinWriter
from rlbricks.replay._writers import TensorDictMaxValueWriter

__version__ = "0.1.1"

__all__ = [
    # buffers
    "ReplayBuffer",
    "TensorDictReplayBuffer",
    "PrioritizedReplayBuffer",
    "TensorDictPrioritizedReplayBuffer",
    "RayReplayBuffer",
    # storages
    "ListStorage",
    "TensorStorage",
    "LazyTensorStorage",
    "LazyMemmapStorage",
    # samplers
    "RandomSampler",
    "SamplerWithoutReplacement",
    "PrioritizedSampler",
    "SliceSampler",
    # writers
    "RoundRobinWriter",
    "TensorDictMaxValueWriter",
    # interfaces
    "Storage",
    "Sampler",
    "Writer",
    # segment trees (for custom prioritized samplers)
    "SumSegmentTree",
    "MinSegmentTree",
    # folders written atomically with a sha256 manifest (dumps, trainer checkpoints)
    "write_folder_atomically",
    "check_folder",
    "recover_folder",
    "folder_leftovers",
    # errors
    "ReplayError",
    "ReplayRuntimeError",
    "ReplayArgumentError",
    "StructureError",
    "ReplayTypeError",
    "ReplayKeyError",
    "ReplayIndexError",
    "EmptyBufferError",
    "ReplayAttributeError",
    "ReplayImportError",
    "ReplayFileNotFoundError",
    "ReplayOSError",
]
