"""``MultiSyncDataCollector`` and ``MultiaSyncDataCollector``: one collector per worker process."""

from __future__ import annotations

import math
import multiprocessing as mp
from collections import deque
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any
from typing import TypeVar

import torch
from torch import nn

from rlbricks.collectors._base import CollectorOptions
from rlbricks.collectors._base import DataCollectorBase
from rlbricks.collectors._base import DeviceLike
from rlbricks.collectors._base import PolicyLike
from rlbricks.collectors._errors import CollectorRuntimeError
from rlbricks.collectors._shared import SharedWeights
from rlbricks.collectors._worker import WorkerPool
from rlbricks.envs import CloudpickleWrapper
from rlbricks.envs import EnvBase
from rlbricks.modules import ExplorationType
from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import cat

__all__ = ["MultiSyncDataCollector", "MultiaSyncDataCollector"]

_Self = TypeVar("_Self", bound="_MultiCollector")

# what one worker builds its env from: a factory, or a list of them (a SerialEnv)
WorkerEnvFn = Callable[[], EnvBase] | Sequence[Callable[[], EnvBase]]


def _buffer(payload: tuple[tuple[int, ...], list[tuple[Any, torch.Tensor]]]) -> TensorDict:
    """The shared batch a worker sent (its leaves live in the worker's shared memory)."""
    batch_size, leaves = payload
    td = TensorDict(batch_size=batch_size)
    for key, value in leaves:
        td.set(key, value)
    return td


class _MultiCollector(DataCollectorBase):
    """What both multiprocess collectors share: workers, weights, seeds, state, shutdown."""

    _worker_share: bool  # whether frames_per_batch is split among the workers

    def __init__(
        self,
        create_env_fns: Sequence[WorkerEnvFn],
        policy: PolicyLike | None = None,
        *,
        frames_per_batch: int,
        total_frames: int = -1,
        init_random_frames: int = 0,
        max_frames_per_traj: int | None = None,
        reset_at_each_iter: bool = False,
        split_trajs: bool = False,
        exploration_type: ExplorationType = ExplorationType.RANDOM,
        device: DeviceLike = None,
        env_device: DeviceLike = None,
        policy_device: DeviceLike = None,
        storing_device: DeviceLike = None,
        postproc: Callable[[TensorDict], TensorDict] | None = None,
        replay_buffer: Any = None,
        mp_start_method: str | None = None,
        num_threads: int = 1,
        timeout: float | None = 300.0,
        start_timeout: float | None = 300.0,
        validate_actions: bool | None = None,
    ) -> None:
        name = type(self).__name__
        options = CollectorOptions.pick(locals())  # the arguments named like its fields
        options.check(name)
        fns = self._check_args(create_env_fns, num_threads)
        for arg, value in (("timeout", timeout), ("start_timeout", start_timeout)):
            if value is not None and not value > 0:
                raise CollectorRuntimeError(
                    f"{name}: {arg} must be a positive number of seconds or None, got {value}"
                )
        n = len(fns)
        self.num_workers = n
        self._apply_options(options)
        store = storing_device if storing_device is not None else device
        self.storing_device = None if store is None else torch.device(store)
        self.policy = policy
        self.is_shut_down = False
        self._weights = SharedWeights(policy, name)
        self._weights_version = 0
        worker_frames = math.ceil(frames_per_batch / n) if self._worker_share else frames_per_batch
        kwargs = options.for_worker(n, worker_frames)
        base_seed = int(torch.randint(2**62, ()))  # distinct worker RNGs, reproducible
        ctx = mp.get_context(mp_start_method or "spawn")
        args = [
            (
                *self._sendable(ctx, i, fn, self._weights.worker_policy),
                kwargs,
                base_seed + i,
                num_threads,
            )
            for i, fn in enumerate(fns)
        ]
        self._pool = WorkerPool(name, ctx, args, timeout, start_timeout)
        infos = self._pool.wait(range(n), "create collector")
        self._check_same_layout(infos)
        self.env_batch_size = torch.Size(infos[0]["batch_size"])
        self.worker_frames_per_batch: int = infos[0]["frames_per_batch"]
        self.frames_per_batch = self.worker_frames_per_batch * (n if self._worker_share else 1)
        self._buffers: list[TensorDict | None] = [None] * n
        self._init_queues()

    def _init_queues(self) -> None:
        """Set up the bookkeeping of batches in flight (the asynchronous collector has some)."""

    def __enter__(self: _Self) -> _Self:
        return self

    def _check_args(
        self,
        create_env_fns: Sequence[WorkerEnvFn],
        num_threads: int,
    ) -> list[WorkerEnvFn]:
        name = type(self).__name__
        if isinstance(create_env_fns, (str, EnvBase)) or not isinstance(create_env_fns, Sequence):
            raise CollectorRuntimeError(
                f"{name}: create_env_fns must be a list with one env factory per worker "
                f"(e.g. [make_env] * 4), got {type(create_env_fns).__name__}"
            )
        fns = list(create_env_fns)
        if not fns:
            raise CollectorRuntimeError(
                f"{name}: create_env_fns is empty; give one factory per worker"
            )
        for i, fn in enumerate(fns):
            if isinstance(fn, EnvBase) or not (callable(fn) or isinstance(fn, Sequence)):
                raise CollectorRuntimeError(
                    f"{name}: create_env_fns[{i}] is a {type(fn).__name__}; each worker builds "
                    "its own env, so give a callable that returns one (the env class, a "
                    "function, a functools.partial or a lambda)"
                )
        if num_threads < 1:
            raise CollectorRuntimeError(f"{name}: num_threads must be >= 1, got {num_threads}")
        return fns

    def _sendable(self, ctx: Any, index: int, env_fn: WorkerEnvFn, policy: Any) -> tuple[Any, Any]:
        """Worker ``index``'s env factory and policy, wrapped for cloudpickle unless forked.

        Lambdas, closures and local functions then reach spawned workers; the
        policy's shared-memory tensors stay shared (see ``CloudpickleWrapper``).
        """
        if ctx.get_start_method() == "fork":  # the workers get a copy of this process
            return env_fn, policy
        name = type(self).__name__
        return (
            CloudpickleWrapper(env_fn, f"{name}: create_env_fns[{index}]"),
            CloudpickleWrapper(policy, f"{name}: the policy"),
        )

    def _check_same_layout(self, infos: dict[int, dict[str, Any]]) -> None:
        first = infos[0]
        for i in range(1, self.num_workers):
            if infos[i]["batch_size"] != first["batch_size"]:
                self.shutdown()
                raise CollectorRuntimeError(
                    f"{type(self).__name__}: worker {i}'s env has batch_size "
                    f"{list(infos[i]['batch_size'])}, worker 0's has {list(first['batch_size'])}; "
                    "every worker's env must have the same batch size"
                )

    # ------------------------------------------------------------------ #
    # talking to the workers
    # ------------------------------------------------------------------ #
    @property
    def worker_pids(self) -> list[int | None]:
        """The process ids of the workers (empty once shut down).

        Example:
            >>> from rlbricks.collectors import MultiSyncDataCollector
            >>> from rlbricks.envs.testing import CountingEnv
            >>> with MultiSyncDataCollector([CountingEnv] * 2, frames_per_batch=2,
            ...                             mp_start_method="fork") as collector:
            ...     len(collector.worker_pids)
            2
        """
        return [proc.pid for proc in self._pool.procs]

    def _ensure_open(self) -> None:
        if self.is_shut_down or self._pool.closed:
            raise CollectorRuntimeError(f"{type(self).__name__} is shut down: create a new one")

    def _launch(self, index: int) -> None:
        self._pool.send(index, "collect", self._weights_version)

    def _receive(self, index: int, payload: Any) -> TensorDict:
        """Worker ``index``'s shared batch, after its ``"collect"`` answer ``payload``."""
        if payload is not None:
            self._buffers[index] = _buffer(payload)
        buffer = self._buffers[index]
        if buffer is None:  # a worker always sends its batch with its first answer
            raise CollectorRuntimeError(f"{type(self).__name__}: worker {index} sent no batch")
        return buffer

    def _settle(self, drop: bool) -> None:
        """Wait until no worker is collecting (the asynchronous collector overrides it)."""

    def _command_all(self, command: str, arg: Any = None, drop: bool = True) -> dict[int, Any]:
        self._ensure_open()
        self._settle(drop)
        for i in range(self.num_workers):
            self._pool.send(i, command, arg)
        return self._pool.wait(range(self.num_workers), command)

    def _store(self, batch: TensorDict) -> TensorDict:
        if self.storing_device is not None and batch.device != self.storing_device:
            return batch.to(self.storing_device)
        return batch

    # ------------------------------------------------------------------ #
    # public methods
    # ------------------------------------------------------------------ #
    def update_policy_weights_(self) -> None:
        """Make the workers run the policy's current weights from their next batch on.

        Copies the policy's parameters and buffers into the shared ones the
        workers read (only those that are not already the same tensors), and
        has each worker refresh its copy on ``policy_device``, if any.

        Example:
            >>> import torch
            >>> from torch import nn
            >>> from rlbricks.collectors import MultiSyncDataCollector
            >>> from rlbricks.envs.testing import ContinuousActionEnv
            >>> from rlbricks.modules import Actor
            >>> actor = Actor(nn.Linear(2, 2))
            >>> collector = MultiSyncDataCollector([ContinuousActionEnv], actor,
            ...                                    frames_per_batch=2, mp_start_method="fork")
            >>> actor.module.bias.data = torch.tensor([0.5, -0.5])  # a new tensor, not shared
            >>> _ = nn.init.zeros_(actor.module.weight)  # in place: the worker sees it at once
            >>> collector.update_policy_weights_()
            >>> collector.next()["action"][0].tolist()
            [[0.5, -0.5], [0.5, -0.5]]
            >>> collector.shutdown()
        """
        self._weights.update_from(self.policy)
        self._weights_version += 1

    def set_seed(self, seed: int) -> int:
        """Seed the workers one after the other; return the next seed to use.

        Worker 0 gets ``seed``, worker ``i + 1`` the seed returned by worker
        ``i``: each runs ``torch.manual_seed(s)`` then
        ``SyncDataCollector.set_seed(s)`` (which seeds its env's sub-envs with
        ``s, s + 1, ...`` and returns the seed after them).

        Example:
            >>> from rlbricks.collectors import MultiSyncDataCollector
            >>> from rlbricks.envs.testing import CountingEnv
            >>> with MultiSyncDataCollector([CountingEnv] * 3, frames_per_batch=3,
            ...                             mp_start_method="fork") as collector:
            ...     collector.set_seed(10)  # the workers got 10, 11 and 12
            13
        """
        for i in range(self.num_workers):
            seed = self._command_one(i, "seed", seed)
        return seed

    def _command_one(self, index: int, command: str, arg: Any) -> Any:
        self._ensure_open()
        self._settle(drop=True)
        self._pool.send(index, command, arg)
        return self._pool.wait([index], command)[index]

    def reset(self) -> None:
        """Start new episodes in every worker's env before its next batch.

        Example:
            >>> from rlbricks.collectors import MultiSyncDataCollector
            >>> from rlbricks.envs.testing import CountingEnv
            >>> with MultiSyncDataCollector([CountingEnv], frames_per_batch=2,
            ...                             mp_start_method="fork") as collector:
            ...     _ = collector.next()
            ...     collector.reset()
            ...     collector.next()["observation"].squeeze(-1).tolist()
            [[0.0, 1.0]]
        """
        self._command_all("reset")

    def state_dict(self) -> dict[str, Any]:
        """Parent frame counters and RNG state, each worker's collector state, the policy's.

        Example:
            >>> from rlbricks.collectors import MultiSyncDataCollector
            >>> from rlbricks.envs.testing import CountingEnv
            >>> with MultiSyncDataCollector([CountingEnv] * 2, frames_per_batch=4,
            ...                             mp_start_method="fork") as collector:
            ...     _ = collector.next()
            ...     state = collector.state_dict()
            >>> state["frames"], [worker["frames"] for worker in state["workers"]]
            (4, [2, 2])
        """
        workers = self._command_all("state_dict", drop=False)
        state = self._base_state()
        state["workers"] = [workers[i] for i in range(self.num_workers)]
        if isinstance(self.policy, nn.Module):
            state["policy"] = self.policy.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state saved by :meth:`state_dict` (episodes restart with a reset).

        Raises:
            CollectorRuntimeError: the state has another number of workers.

        Example:
            >>> from rlbricks.collectors import MultiSyncDataCollector
            >>> from rlbricks.envs.testing import CountingEnv
            >>> with MultiSyncDataCollector([CountingEnv] * 2, frames_per_batch=4,
            ...                             mp_start_method="fork") as collector:
            ...     _ = collector.next()
            ...     state = collector.state_dict()
            ...     _ = collector.next()
            ...     collector.load_state_dict(state)
            ...     collector.frames, collector.next()["collector", "traj_ids"].tolist()
            (4, [[2, 2], [3, 3]])
        """
        workers = state["workers"]
        if len(workers) != self.num_workers:
            raise CollectorRuntimeError(
                f"{type(self).__name__}.load_state_dict: the state has {len(workers)} workers, "
                f"this collector {self.num_workers}: build it with as many workers as the saved one"
            )
        self._ensure_open()
        self._settle(drop=True)
        for i, worker_state in enumerate(workers):
            self._pool.send(i, "load_state_dict", worker_state)
        self._pool.wait(range(self.num_workers), "load_state_dict")
        if "policy" in state and isinstance(self.policy, nn.Module):
            self.policy.load_state_dict(state["policy"])
            self.update_policy_weights_()
        self._load_base_state(state)

    def shutdown(self) -> None:
        """Stop every worker process (idempotent); their envs are closed first.

        Example:
            >>> from rlbricks.collectors import MultiSyncDataCollector
            >>> from rlbricks.envs.testing import CountingEnv
            >>> collector = MultiSyncDataCollector([CountingEnv], frames_per_batch=2,
            ...                                    mp_start_method="fork")
            >>> collector.shutdown()
            >>> collector.shutdown()
            >>> collector.worker_pids
            []
        """
        self.is_shut_down = True
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_workers={self.num_workers}, "
            f"frames_per_batch={self.frames_per_batch}, total_frames={self.total_frames})"
        )


class MultiSyncDataCollector(_MultiCollector):
    """Run one :class:`SyncDataCollector` per worker process and yield their batches together.

    Worker ``i`` builds its env with ``create_env_fns[i]()`` and collects
    ``T = ceil(frames_per_batch / (num_workers * num_envs))`` steps of each of
    its ``num_envs`` sub-envs per batch (the smallest whole number of steps
    that reaches ``frames_per_batch`` in total), so every batch holds
    ``num_workers * num_envs * T >= frames_per_batch`` frames
    (``self.frames_per_batch``). Every iteration the parent asks all workers
    for a batch, waits for all of them, and yields their batches concatenated
    along the first dim: ``[num_workers * B0, *B[1:], T]`` for envs of batch
    size ``B`` (an unbatched env counts as ``B = [1]``, giving
    ``[num_workers, T]``); rows of worker ``i`` come before those of ``i + 1``.

    Workers write their batches into shared memory; the pipes carry only short
    commands. ``("collector", "traj_ids")`` is ``local_id * num_workers + i``
    for worker ``i`` (unique across workers and resets) and
    ``("collector", "worker")`` holds ``i``.

    Policy weights: a CPU ``nn.Module`` policy is moved to shared memory in
    place (``policy.share_memory()``) and read by the workers, so in-place
    updates reach them at the next batch; :meth:`update_policy_weights_`
    covers the other cases (a policy on another device, replaced tensors).

    Seeds: :meth:`set_seed` seeds worker 0 with ``seed`` and worker ``i + 1``
    with what worker ``i``'s ``SyncDataCollector.set_seed`` returned, after
    ``torch.manual_seed`` of the same seed in the worker: the data equal those
    of ``SyncDataCollector`` instances seeded that way.

    Faults: an exception in a worker is raised here as :class:`CollectorRuntimeError`
    with the worker's traceback; a worker that dies (killed, segfault) is
    noticed as soon as its process exits; a worker that gives no answer within
    ``timeout`` (``start_timeout`` while it starts) is killed and reported by
    :class:`CollectorTimeoutError` (worker, pid, phase, time waited). Either
    way every worker is shut down. :meth:`shutdown`, leaving a ``with`` block
    and garbage collection stop the workers.

    Args:
        create_env_fns: one env factory per worker (a callable returning an
            env, or a list of them run as a ``SerialEnv``): a class, a
            function, a ``functools.partial``, a lambda or a closure, as in
            TorchRL's ``MultiSyncDataCollector([lambda: GymEnv(...)] * 2, ...)``.
            With ``"spawn"`` and ``"forkserver"`` they are sent to the workers
            with cloudpickle (see :class:`~rlbricks.envs.CloudpickleWrapper`),
            so they must not hold what cannot be copied into another process
            (a lock, an open socket): create such things inside the factory.
        policy: reads the root TensorDict and writes ``"action"``; None for
            random actions. Sent to the workers like the factories (a lambda
            works); its shared-memory weights stay shared.
        frames_per_batch: frames per batch, over all workers (rounded up as above).
        total_frames: stop after this many frames (``-1``: never).
        init_random_frames: random actions until this many frames are collected
            (whole batches).
        max_frames_per_traj: truncate trajectories at this many steps.
        reset_at_each_iter: reset every sub-env at the start of each batch.
        split_trajs: yield ``split_trajectories(batch)``.
        exploration_type: the exploration type the policy runs under.
        device: the default of ``policy_device`` and ``storing_device``.
        env_device: the device of the envs' data (checked in each worker).
        policy_device: where the workers run the policy (default: with the env).
        storing_device: where the yielded batches live (default: the CPU).
        postproc: applied to each batch in this process before it is yielded.
        replay_buffer: extend this buffer with each batch and yield ``None``.
        mp_start_method: ``"spawn"`` (default, as ``ParallelEnv``), ``"fork"``
            or ``"forkserver"``.
        num_threads: ``torch.set_num_threads`` in each worker.
        timeout: seconds a worker may take to collect its share of one batch
            (or to answer another command: seed, reset, state) before it counts
            as hung. The default, 300 s, is far above what a batch usually
            takes but a batch scales with ``frames_per_batch``: raise it when
            a worker's ``frames_per_batch / num_workers`` steps of a slow env
            may take longer. None waits forever (only by explicit choice).
            Dead workers are noticed at once whatever the timeout.
        start_timeout: seconds a worker may take to start (spawn, imports,
            building its env and collector); 300 s by default, None: forever.
        validate_actions: set on every worker's env (see
            :class:`SyncDataCollector`): False skips the check of the actions'
            values; None keeps the envs' setting. A bad action raises
            :class:`WorkerActionError` naming the key, with the worker's traceback.

    Raises:
        CollectorRuntimeError: a bad argument, or a worker failed to build its env or
            collector (the message carries the worker's traceback).
        CollectorTimeoutError: a worker gave no answer within ``start_timeout``
            (raised by the constructor) or ``timeout`` (raised while collecting).

    Example:
        >>> import functools
        >>> from rlbricks.collectors import MultiSyncDataCollector
        >>> from rlbricks.envs.testing import CountingEnv
        >>> make_env = functools.partial(CountingEnv, max_steps=3)
        >>> with MultiSyncDataCollector([make_env, make_env], frames_per_batch=8,
        ...                             total_frames=16, mp_start_method="fork") as collector:
        ...     for batch in collector:
        ...         print(batch.batch_size, batch["collector", "traj_ids"].tolist())
        torch.Size([2, 4]) [[0, 0, 0, 2], [1, 1, 1, 3]]
        torch.Size([2, 4]) [[2, 2, 4, 4], [3, 3, 5, 5]]

        A worker that hangs is killed (``HangingEnv``'s third step sleeps forever):

        >>> from rlbricks.collectors import CollectorTimeoutError
        >>> from rlbricks.envs.testing import HangingEnv
        >>> collector = MultiSyncDataCollector([CountingEnv, HangingEnv], frames_per_batch=6,
        ...                                    timeout=1.0, mp_start_method="fork")
        >>> try:
        ...     collector.next()
        ... except CollectorTimeoutError as err:
        ...     print(err.worker, err.phase, collector.worker_pids)
        1 collect []
    """

    _worker_share = True

    def next(self) -> TensorDict:
        """Collect one batch from every worker, concatenated (before ``split_trajs``/``postproc``).

        Example:
            >>> from rlbricks.collectors import MultiSyncDataCollector
            >>> from rlbricks.envs.testing import CountingEnv
            >>> collector = MultiSyncDataCollector([CountingEnv] * 2, frames_per_batch=6,
            ...                                    mp_start_method="fork")
            >>> collector.next()["next", "observation"].squeeze(-1).tolist()
            [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]
            >>> collector.shutdown()
        """
        self._ensure_open()
        n = self.num_workers
        for i in range(n):
            self._launch(i)
        answers = self._pool.wait(range(n), "collect")
        parts = [self._receive(i, answers[i]) for i in range(n)]
        if not self.env_batch_size:
            parts = [part.unsqueeze(0) for part in parts]
        batch = cat(parts, 0)  # a copy: the workers may overwrite their buffers from now on
        self._frames += self.frames_per_batch
        return self._store(batch)


class MultiaSyncDataCollector(_MultiCollector):
    """Run one :class:`SyncDataCollector` per worker process; yield each batch when it is ready.

    Same construction as :class:`MultiSyncDataCollector`, but every worker
    collects whole batches of ``frames_per_batch`` frames
    (``T = ceil(frames_per_batch / num_envs)`` steps, shape ``[*B, T]``) on its
    own, and the iterator yields whichever batch is ready first (the oldest
    request among several), with ``("collector", "worker")`` telling whose it
    is. A worker starts its next batch as soon as this process has copied the
    previous one out of its shared buffer, so workers keep collecting while
    the learner trains; no more batches are requested than ``total_frames``
    needs. ``init_random_frames`` applies per worker:
    ``ceil(init_random_frames / num_workers)`` random frames each.

    Batches in flight when :meth:`set_seed`, :meth:`reset` or
    :meth:`load_state_dict` is called are dropped (they were collected before
    the change); :meth:`state_dict` waits for them and keeps them.
    Policy weights, trajectory ids, seeds and faults work as in
    :class:`MultiSyncDataCollector`; as workers collect while the policy is
    trained, a batch may mix weights from before and after an optimiser step.

    Args:
        create_env_fns: one env factory per worker (lambdas and closures
            work: sent with cloudpickle, as in :class:`MultiSyncDataCollector`).
        policy: reads the root TensorDict and writes ``"action"``; None for
            random actions.
        frames_per_batch: frames of each yielded batch (one worker's batch).
        total_frames: stop after this many frames (``-1``: never).
        init_random_frames: random actions until this many frames are collected.
        max_frames_per_traj: truncate trajectories at this many steps.
        reset_at_each_iter: reset every sub-env at the start of each batch.
        split_trajs: yield ``split_trajectories(batch)``.
        exploration_type: the exploration type the policy runs under.
        device: the default of ``policy_device`` and ``storing_device``.
        env_device: the device of the envs' data (checked in each worker).
        policy_device: where the workers run the policy (default: with the env).
        storing_device: where the yielded batches live (default: the CPU).
        postproc: applied to each batch in this process before it is yielded.
        replay_buffer: extend this buffer with each batch and yield ``None``.
        mp_start_method: ``"spawn"`` (default), ``"fork"`` or ``"forkserver"``.
        num_threads: ``torch.set_num_threads`` in each worker.
        timeout: seconds a worker may take to collect one batch of
            ``frames_per_batch`` frames, counted from when it was asked (or to
            answer another command); 300 s by default: raise it for large
            batches of a slow env. None waits forever.
        start_timeout: seconds a worker may take to start (300 s; None: forever).
        validate_actions: set on every worker's env (see
            :class:`SyncDataCollector`); None keeps the envs' setting.

    Raises:
        CollectorRuntimeError: a bad argument, or a worker failed to start.
        CollectorTimeoutError: a worker gave no answer in time (it is killed,
            the others shut down).

    Example:
        >>> from rlbricks.collectors import MultiaSyncDataCollector
        >>> from rlbricks.envs.testing import CountingEnv
        >>> with MultiaSyncDataCollector([CountingEnv] * 2, frames_per_batch=3,
        ...                              total_frames=12, mp_start_method="fork") as collector:
        ...     workers = sorted(int(b["collector", "worker"][0]) for b in collector)
        >>> len(workers), set(workers) == {0, 1}
        (4, True)
    """

    _worker_share = False

    _free: deque[int]  # workers not collecting
    _busy: list[int]  # collecting, oldest request first
    _ready: list[int]  # finished, batch not read yet, oldest first

    def _init_queues(self) -> None:
        self._free = deque(range(self.num_workers))
        self._busy = []
        self._ready = []

    def _in_budget(self) -> bool:
        planned = self._frames + (len(self._busy) + len(self._ready)) * self.frames_per_batch
        return self.total_frames < 0 or planned < self.total_frames

    def _request(self) -> None:
        i = self._free.popleft()
        self._launch(i)
        self._busy.append(i)

    def next(self) -> TensorDict:
        """The next batch that a worker finished (before ``split_trajs``/``postproc``).

        Example:
            >>> from rlbricks.collectors import MultiaSyncDataCollector
            >>> from rlbricks.envs.testing import CountingEnv
            >>> collector = MultiaSyncDataCollector([CountingEnv] * 2, frames_per_batch=3,
            ...                                     mp_start_method="fork")
            >>> collector.next()["next", "observation"].squeeze(-1).tolist()
            [1.0, 2.0, 3.0]
            >>> collector.shutdown()
        """
        self._ensure_open()
        if self._ready:
            i = self._ready.pop(0)
            buffer = self._receive(i, None)
        else:
            while self._free and self._in_budget():
                self._request()
            if not self._busy:  # asked beyond total_frames: one more batch all the same
                self._request()
            i, payload = self._pool.wait_first(self._busy, "collect")
            self._busy.remove(i)
            buffer = self._receive(i, payload)
        batch = buffer.clone()  # copied out: the worker may go on
        self._free.append(i)
        self._frames += self.frames_per_batch
        while self._free and self._in_budget():
            self._request()
        return self._store(batch)

    def _settle(self, drop: bool) -> None:
        """Wait for the batches in flight; keep them for :meth:`next` or drop them."""
        if self._busy:
            answers = self._pool.wait(self._busy, "collect")
            for i in self._busy:
                self._receive(i, answers[i])
            self._ready.extend(self._busy)
            self._busy.clear()
        if drop:
            self._free.extend(self._ready)
            self._ready.clear()

    def state_dict(self) -> dict[str, Any]:
        """Parent counters, each worker's collector state and the policy's (in-flight batches kept).

        Example:
            >>> from rlbricks.collectors import MultiaSyncDataCollector
            >>> from rlbricks.envs.testing import CountingEnv
            >>> with MultiaSyncDataCollector([CountingEnv] * 2, frames_per_batch=2,
            ...                              mp_start_method="fork") as collector:
            ...     _ = collector.next()  # then both workers collect one more batch
            ...     state = collector.state_dict()
            >>> state["frames"], sum(w["frames"] for w in state["workers"])
            (2, 6)
        """
        return super().state_dict()
