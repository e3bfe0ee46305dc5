"""``RayCollector``: one ``SyncDataCollector`` per Ray actor, on one machine or a cluster."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import NoReturn

import torch
from torch import nn

from rlbricks.collectors._base import DataCollectorBase
from rlbricks.collectors._base import PolicyLike
from rlbricks.collectors._errors import CollectorRuntimeError
from rlbricks.collectors._errors import CollectorTimeoutError
from rlbricks.collectors._ray_worker import CollectorWorker
from rlbricks.collectors._ray_worker import import_ray
from rlbricks.envs import EnvBase
from rlbricks.modules import ExplorationType
from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import cat

__all__ = ["RayCollector"]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# set by RayCollector itself: passing them in collector_kwargs would be ambiguous
_RESERVED = {
    "create_env_fn": "create_env_fns",
    "policy": "policy",
    "frames_per_batch": "frames_per_batch",
    "total_frames": "total_frames",
    "replay_buffer": "replay_buffer",
    "postproc": "postproc",
    "split_trajs": "split_trajs",
}


def _env_fns(create_env_fns: Any, num_collectors: int | None) -> list[Any]:
    """One env factory per actor."""
    if isinstance(create_env_fns, EnvBase) or callable(create_env_fns):
        fns = [create_env_fns]
    elif isinstance(create_env_fns, Sequence) and not isinstance(create_env_fns, str):
        fns = list(create_env_fns)
    else:
        raise CollectorRuntimeError(
            "RayCollector: create_env_fns must be a callable returning an env, or a list of "
            f"them (one per actor), got {type(create_env_fns).__name__}"
        )
    if not fns:
        raise CollectorRuntimeError(
            "RayCollector: create_env_fns is empty; give one env factory (replicated), or one "
            "per actor"
        )
    if num_collectors is None:
        return fns
    if num_collectors < 1:
        raise CollectorRuntimeError(
            f"RayCollector: num_collectors must be >= 1, got {num_collectors}"
        )
    if len(fns) == 1:
        return fns * num_collectors
    if len(fns) != num_collectors:
        raise CollectorRuntimeError(
            f"RayCollector: {len(fns)} create_env_fns for num_collectors={num_collectors}: give "
            "one env factory per actor, or a single one to replicate"
        )
    return fns


class RayCollector(DataCollectorBase):
    """Collect with one ``SyncDataCollector`` per Ray actor, on one machine or a Ray cluster.

    Each actor builds its env from its ``create_env_fn`` and runs its own copy
    of ``policy`` (both are pickled to the actors, so the rlbricks packages must
    be installed on every node). Ray is started with
    ``ray.init(**ray_init_config)`` unless it is running already;
    ``ray_init_config={"address": "auto"}`` joins the cluster of this node.

    * ``sync=True``: every iteration asks each actor for a batch of
      ``ceil(frames_per_batch / num_collectors)`` frames and yields them
      concatenated along the first dim, actor 0 first:
      ``[num_collectors * B0, *B[1:], T]`` for envs of batch size ``B`` (the
      same for every actor; an unbatched env counts as ``B = [1]``).
    * ``sync=False``: every actor collects batches of ``frames_per_batch``
      frames without waiting for the others; the iterator yields each one as
      it arrives (``ray.wait``), ``[*env.batch_size, T]``. As soon as a batch
      arrives its actor starts the next one, so a batch may have been collected
      with the weights that preceded the last :meth:`update_policy_weights_`.

    ``("collector", "traj_ids")`` are unique across actors: local id ``i`` of
    actor ``k`` becomes ``i * num_collectors + k``; ``("collector", "worker")``
    holds ``k``. Each actor seeds torch with a number drawn from this
    process's generator (:meth:`set_seed` reseeds them). Iteration stops once
    ``total_frames`` frames arrived (the last batch may overshoot); ``len()``
    is the number of batches.

    Policy weights travel through the object store: :meth:`update_policy_weights_`
    puts the policy's ``state_dict`` there once, and each actor loads it before
    its next batch (``update_after_each_batch=True`` does it before every
    batch). With a ``RayReplayBuffer`` (any buffer with a Ray ``actor``
    attribute) as ``replay_buffer``, the actors extend it themselves (after
    ``postproc``) and the iterator yields ``None``; another buffer is extended
    by this process.

    An exception in an actor raises :class:`CollectorRuntimeError` with the remote
    traceback (and shuts the collector down), unless ``max_restarts > 0``:
    then the actor is restarted (Ray ``max_restarts``/``max_task_retries``;
    the env is rebuilt, the latest weights are loaded and trajectory ids go
    on) and the batch is collected again, up to ``max_restarts`` times per actor.
    An actor that does not deliver its batch within ``timeout`` seconds of
    the request counts as hung: it is killed (``ray.kill``) and then either
    restarted the same way, while restarts are left, or the collector shuts
    down and raises :class:`CollectorTimeoutError` (actor, phase, time waited).

    Args:
        create_env_fns: an env factory, or a list of them (one per actor).
        policy: reads the root TensorDict and writes ``"action"``; None for random actions.
        frames_per_batch: frames per yielded batch (``sync=True``: over all
            actors; ``sync=False``: of one actor), rounded up to whole env steps.
        total_frames: stop after this many frames (``-1``: never).
        sync: gather one batch from every actor per iteration, or yield batches as they come.
        ray_init_config: ``ray.init`` keyword arguments, used if Ray is not running.
        remote_config: Ray actor options of each actor (``num_cpus``, ``num_gpus``,
            ``resources``, ...); default ``{"num_cpus": 1}``.
        num_collectors: the number of actors (default: ``len(create_env_fns)``);
            a single factory is used by every actor.
        collector_kwargs: other ``SyncDataCollector`` arguments for every actor
            (``init_random_frames``, ``max_frames_per_traj``, ``exploration_type``,
            ``device``, ``validate_actions``...; ``init_random_frames`` counts each
            actor's frames).
        max_restarts: how many times each actor may be restarted after a failure.
        replay_buffer: extend this buffer with every batch and yield ``None``.
        update_after_each_batch: send the policy weights before every batch.
        postproc: applied to every batch (in the actors when they write into
            a ``RayReplayBuffer``, so it must be picklable).
        split_trajs: yield ``split_trajectories(batch)`` (not with a ``replay_buffer``).
        timeout: seconds an actor may take to deliver one batch, counted from
            the request (and to answer ``set_seed``, ``state_dict``,
            ``load_state_dict``). The default, 300 s, is far above what a batch
            usually takes, but a batch scales with ``frames_per_batch``: raise
            it for large batches of a slow env. None waits forever (only by
            explicit choice).
        start_timeout: seconds the actors may take to start, and a restarted
            actor to come back: Ray must find a node with the resources of
            ``remote_config`` (``ray status`` shows pending requests), import
            the modules and build the env. 300 s by default; None: forever.

    Raises:
        CollectorImportError: ray is not installed.
        CollectorRuntimeError: a bad argument, or an actor failed to build its collector.
        CollectorTimeoutError: an actor gave no answer within ``start_timeout``
            (raised by the constructor) or ``timeout`` (with no restart left).

    Example:
        >>> import ray
        >>> from rlbricks.collectors import RayCollector
        >>> from rlbricks.envs.testing import CountingEnv
        >>> _ = ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
        >>> env_fns = [lambda: CountingEnv(max_steps=3)] * 2  # 2 actors, one env each
        >>> with RayCollector(env_fns, None, frames_per_batch=8, total_frames=16,
        ...                   remote_config={"num_cpus": 0.5}) as collector:
        ...     for batch in collector:
        ...         print(batch.batch_size, batch["collector", "traj_ids"].tolist())
        torch.Size([2, 4]) [[0, 0, 0, 2], [1, 1, 1, 3]]
        torch.Size([2, 4]) [[2, 2, 4, 4], [3, 3, 5, 5]]
    """

    def __init__(
        self,
        create_env_fns: Any,
        policy: PolicyLike | None = None,
        *,
        frames_per_batch: int,
        total_frames: int = -1,
        sync: bool = True,
        ray_init_config: dict[str, Any] | None = None,
        remote_config: dict[str, Any] | None = None,
        num_collectors: int | None = None,
        collector_kwargs: dict[str, Any] | None = None,
        max_restarts: int = 0,
        replay_buffer: Any = None,
        update_after_each_batch: bool = False,
        postproc: Callable[[TensorDict], TensorDict] | None = None,
        split_trajs: bool = False,
        timeout: float | None = 300.0,
        start_timeout: float | None = 300.0,
    ) -> None:
        ray = import_ray()
        fns = _env_fns(create_env_fns, num_collectors)
        kwargs = dict(collector_kwargs or {})
        for key, arg in _RESERVED.items():
            if key in kwargs:
                raise CollectorRuntimeError(
                    f"RayCollector: {key!r} cannot go in collector_kwargs: pass "
                    f"RayCollector({arg}=...)"
                )
        if frames_per_batch < 1:
            raise CollectorRuntimeError(
                f"RayCollector: frames_per_batch must be >= 1, got {frames_per_batch}"
            )
        if max_restarts < 0:
            raise CollectorRuntimeError(
                f"RayCollector: max_restarts must be >= 0, got {max_restarts}"
            )
        for arg, value in (("timeout", timeout), ("start_timeout", start_timeout)):
            if value is not None and not value > 0:
                raise CollectorRuntimeError(
                    f"RayCollector: {arg} must be a positive number of seconds or None, got {value}"
                )
        if replay_buffer is not None and split_trajs:
            raise CollectorRuntimeError(
                "RayCollector: split_trajs=True cannot be used with a replay_buffer; leave "
                "split_trajs False and cut trajectories when sampling (e.g. with a SliceSampler)"
            )
        self.num_collectors = n = len(fns)
        self.sync = sync
        self.total_frames = total_frames
        self.max_restarts = max_restarts
        self.timeout = timeout
        self.start_timeout = start_timeout
        self.update_after_each_batch = update_after_each_batch
        self.postproc = postproc
        self.split_trajs = split_trajs
        self.replay_buffer = replay_buffer
        self.exploration_type = kwargs.get("exploration_type", ExplorationType.RANDOM)
        self.policy = policy
        remote_buffer = getattr(replay_buffer, "actor", None) is not None
        self._remote_buffer = remote_buffer
        self._owns_ray = False
        if not ray.is_initialized():
            ray.init(**(ray_init_config or {}))
            self._owns_ray = True
        options = dict(remote_config if remote_config is not None else {"num_cpus": 1})
        options.setdefault("max_restarts", max_restarts)
        options.setdefault("max_task_retries", max_restarts)
        worker_cls = ray.remote(CollectorWorker).options(**options)
        per_actor = math.ceil(frames_per_batch / n) if sync else frames_per_batch
        # distinct torch seeds, drawn from this process's generator: reproducible
        seeds = torch.randint(2**62, (n,)).tolist()
        self._actors: list[Any] = [
            worker_cls.remote(
                k,
                n,
                fn,
                policy,
                per_actor,
                kwargs,
                replay_buffer if remote_buffer else None,
                postproc if remote_buffer else None,
                seeds[k],
            )
            for k, fn in enumerate(fns)
        ]
        self.is_shut_down = False
        self._restarts = [0] * n
        self._next_ids = [0] * n  # the next local trajectory id of each actor
        self._version = 0
        self._weights: list[Any] = [None]
        self._pending: dict[Any, int] = {}  # async: in-flight batch -> actor
        self._clocks: dict[Any, tuple[float, float | None]] = {}  # in-flight: (sent, deadline)
        self._hung: set[int] = set()  # actors killed for a timeout, their batch asked again
        self._launched = 0  # async: frames asked for so far
        try:
            refs = [actor.layout.remote() for actor in self._actors]
            layouts = self._get(refs, range(n), "create collector", start_timeout)
        except ray.exceptions.RayError as err:
            self.shutdown()
            raise CollectorRuntimeError(
                f"RayCollector: an actor could not build its collector: {_clean(err)}"
            ) from None
        self._actor_frames = [frames for frames, _, _, _ in layouts]
        # each actor's instance (None: unknown since Ray restarted it after a timeout)
        self._tokens: list[str | None] = [token for _, _, _, token in layouts]
        env_sizes = [list(size) for _, size, _, _ in layouts]
        if sync and any(size != env_sizes[0] for size in env_sizes):
            self.shutdown()
            raise CollectorRuntimeError(
                f"RayCollector(sync=True): the actors' envs have batch sizes {env_sizes}; every "
                "actor's env must have the same batch size (or use sync=False)"
            )
        self.frames_per_batch = sum(self._actor_frames) if sync else max(self._actor_frames)

    # ------------------------------------------------------------------ #
    # weights
    # ------------------------------------------------------------------ #
    def update_policy_weights_(
        self, policy_weights: Mapping[str, torch.Tensor] | None = None
    ) -> None:
        """Put the policy's weights in the object store; each actor loads them before its next batch.

        The weights are stored once (``ray.put``) whatever the number of actors,
        as CPU tensors.

        Args:
            policy_weights: a ``state_dict`` to send instead of ``policy.state_dict()``.

        Example:
            >>> import ray
            >>> from torch import nn
            >>> from rlbricks.collectors import RayCollector
            >>> from rlbricks.envs.testing import NestedSpecEnv
            >>> from rlbricks.modules import TensorDictModule
            >>> _ = ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
            >>> linear = nn.Linear(1, 1)
            >>> policy = TensorDictModule(linear, in_keys=[("data", "step")], out_keys=["action"])
            >>> _ = nn.init.zeros_(linear.weight), nn.init.zeros_(linear.bias)
            >>> with RayCollector(NestedSpecEnv, policy, frames_per_batch=4,
            ...                   remote_config={"num_cpus": 0.5}) as collector:
            ...     before = collector.next()["next", "reward"].flatten().tolist()
            ...     _ = nn.init.constant_(linear.bias, 0.5)
            ...     collector.update_policy_weights_()
            ...     after = collector.next()["next", "reward"].flatten().tolist()
            >>> before, after  # NestedSpecEnv's reward is its (real-valued) action
            ([0.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.5, 0.5])
        """
        if not isinstance(self.policy, nn.Module):
            if policy_weights is not None:
                raise CollectorRuntimeError(
                    "RayCollector.update_policy_weights_: the policy is a "
                    f"{type(self.policy).__name__}, not an nn.Module: it has no weights to load"
                )
            return  # random actions or a plain function: nothing to send
        if policy_weights is None:
            policy_weights = self.policy.state_dict()
        state = {key: value.detach().to("cpu") for key, value in policy_weights.items()}
        self._weights = [import_ray().put(state)]
        self._version += 1

    # ------------------------------------------------------------------ #
    # collection
    # ------------------------------------------------------------------ #
    def _submit(self, k: int) -> Any:
        ref = self._actors[k].collect.remote(self._version, self._weights, self._next_ids[k])
        self._pending[ref] = k
        now = time.monotonic()
        self._clocks[ref] = (now, None if self.timeout is None else now + self.timeout)
        return ref

    def _launch(self, k: int) -> None:
        """Async: start actor ``k``'s next batch, unless enough frames are on their way."""
        if self.total_frames < 0 or self._launched < self.total_frames:
            self._launched += self._actor_frames[k]
            self._submit(k)

    def _wait(self) -> tuple[int, TensorDict | None, dict[str, int]]:
        """The next finished batch: ``(actor, batch or None, info)``; restarts failed actors."""
        ray = import_ray()
        while True:
            remaining = self._check_deadlines()
            ready, _ = ray.wait(list(self._pending), num_returns=1, timeout=remaining)
            if not ready:
                continue  # a deadline passed: the check above handles it
            [ref] = ready
            k = self._pending.pop(ref)
            self._clocks.pop(ref, None)
            try:
                batch, info = ray.get(ref)
            except ray.exceptions.RayError as err:
                self._recover(k, err)
                continue
            self._hung.discard(k)
            self._next_ids[k] = info["next_id"]
            return k, batch, info

    def _check_deadlines(self) -> float | None:
        """Handle an actor past its deadline with no batch; else the seconds to the next deadline."""
        ray = import_ray()
        now = time.monotonic()
        for ref, (sent, deadline) in sorted(self._clocks.items(), key=lambda item: item[1][0]):
            if deadline is not None and deadline <= now:
                done, _ = ray.wait([ref], num_returns=1, timeout=0)
                if not done:
                    self._time_out(self._pending[ref], ref, now - sent)
        deadlines = [deadline for _, deadline in self._clocks.values() if deadline is not None]
        return None if not deadlines else max(0.0, min(deadlines) - time.monotonic())

    def _time_out(self, k: int, ref: Any, elapsed: float) -> None:
        """Actor ``k`` did not deliver ``ref`` in time: kill it, and restart it or raise.

        A restarted actor (Ray's ``max_restarts``) runs the batch again by
        itself (``max_task_retries``), so ``ref`` stays pending, with a new
        deadline that leaves it ``start_timeout`` to come back.
        """
        ray = import_ray()
        if self.max_restarts and self._restarts[k] < self.max_restarts:
            self._restarts[k] += 1
            self._hung.add(k)
            self._tokens[k] = None  # the next instance's token is not known yet
            ray.kill(self._actors[k], no_restart=False)
            now = time.monotonic()
            if self.timeout is None or self.start_timeout is None:
                self._clocks[ref] = (now, None)
            else:
                self._clocks[ref] = (now, now + self.start_timeout + self.timeout)
            return
        hint = f" (after {self._restarts[k]} restarts)" if self.max_restarts else ""
        self._raise_timeout(k, "collect", elapsed, self.timeout, hint)

    def _raise_timeout(
        self, k: int, phase: str, elapsed: float, limit: float | None, hint: str = ""
    ) -> NoReturn:
        """Kill actor ``k`` and every other, raise :class:`CollectorTimeoutError`."""
        ray = import_ray()
        if ray.is_initialized():
            ray.kill(self._actors[k], no_restart=True)
        self.shutdown()
        if phase in ("create collector", "restart"):
            name = "start_timeout"
            work = (
                "starting an actor (Ray waiting for a node with the resources of remote_config, "
                "see `ray status`; imports; building the env)"
            )
        else:
            name = "timeout"
            work = "one batch (a large frames_per_batch, a slow env or policy)"
            if phase != "collect":
                work = f"a {phase!r}"
        restarts = (
            "" if self.max_restarts else "; RayCollector(max_restarts=...) replaces hung actors"
        )
        raise CollectorTimeoutError(
            f"RayCollector: actor {k} timed out during {phase!r}{hint}: no answer within "
            f"{name}={limit} s (waited {elapsed:.1f} s). It was killed and the collector shut "
            f"down. If {work} legitimately takes this long, raise RayCollector({name}=...); "
            f"{name}=None waits forever{restarts}.",
            worker=k,
            phase=phase,
            elapsed=elapsed,
        )

    def _get(self, refs: list[Any], actors: Sequence[int], phase: str, limit: float | None) -> Any:
        """``ray.get(refs)`` (the answers of ``actors``), or a timeout error after ``limit`` s."""
        ray = import_ray()
        start = time.monotonic()
        _, late = ray.wait(refs, num_returns=len(refs), timeout=limit)
        if late:
            k = actors[refs.index(late[0])]
            self._raise_timeout(k, phase, time.monotonic() - start, limit)
        return ray.get(refs)

    def _recover(self, k: int, err: Exception) -> None:
        """Restart actor ``k`` and ask for its batch again, or shut down and raise.

        A process that died was restarted by Ray already (``max_restarts``) and
        its batch asked for again (``max_task_retries``): an error that reaches
        us means Ray gave up. An exception raised by the env or the policy
        leaves the actor alive: kill it so that Ray restarts it, wait for the
        new instance (tasks sent meanwhile could still reach the old one), and
        ask it for the batch again. An actor killed for a timeout whose batch
        Ray did not run again (``max_task_retries=0``) is awaited and asked again.
        """
        ray = import_ray()
        hung = k in self._hung
        self._hung.discard(k)
        if hung and not isinstance(err, ray.exceptions.RayTaskError):
            # killed for a timeout, and Ray did not run the batch again (max_task_retries=0)
            self._tokens[k] = self._await_restart(k)
            self._submit(k)
            return
        if not self.max_restarts:
            self._fail(k, err, "; RayCollector(max_restarts=...) restarts failed actors")
        if not isinstance(err, ray.exceptions.RayTaskError):
            self._fail(k, err, f" and Ray could not restart it (max_restarts={self.max_restarts})")
        if self._restarts[k] >= self.max_restarts:
            self._fail(k, err, f" (after {self._restarts[k]} restarts)")
        self._restarts[k] += 1
        if self._tokens[k] is None:  # restarted after a timeout: learn which instance dies now
            self._tokens[k] = self._get(
                [self._actors[k].incarnation.remote()], [k], "restart", self.start_timeout
            )[0]
        ray.kill(self._actors[k], no_restart=False)
        self._tokens[k] = self._await_restart(k)
        self._submit(k)

    def _await_restart(self, k: int) -> str:
        """The token of actor ``k``'s new instance, once it answers (within ``start_timeout``)."""
        ray = import_ray()
        old = self._tokens[k]
        start = time.monotonic()
        limit = self.start_timeout
        while limit is None or time.monotonic() - start < limit:
            left = None if limit is None else max(0.0, limit - (time.monotonic() - start))
            try:
                token: str | None = ray.get(self._actors[k].incarnation.remote(), timeout=left)
            except ray.exceptions.ActorDiedError as err:
                self._fail(k, err, " and Ray could not restart it")
            except ray.exceptions.RayError:
                token = old  # the old instance is going away, or the new one is not up yet
            if token is not None and token != old:
                return token
            time.sleep(0.05)
        self._raise_timeout(k, "restart", time.monotonic() - start, limit)

    def _fail(self, k: int, err: BaseException, hint: str) -> NoReturn:
        """Shut down and raise the error of actor ``k``."""
        self.shutdown()
        raise CollectorRuntimeError(
            f"RayCollector: actor {k} failed{hint}:\n{_clean(err)}"
        ) from None

    def _collect(self) -> TensorDict | None:
        """One batch, or None when the actors wrote it into the replay buffer."""
        if self.is_shut_down:
            raise CollectorRuntimeError("RayCollector is shut down: create a new one")
        if self.update_after_each_batch:
            self.update_policy_weights_()
        if not self.sync:
            if not self._pending:
                for k in range(self.num_collectors):
                    self._launch(k)
            if not self._pending:
                raise CollectorRuntimeError(
                    f"RayCollector: the {self.total_frames} total_frames were collected already; "
                    "create a new collector to collect more"
                )
            k, batch, info = self._wait()
            self._frames += info["frames"]
            self._launch(k)
            return batch
        for k in range(self.num_collectors):
            self._submit(k)
        batches: list[TensorDict | None] = [None] * self.num_collectors
        while self._pending:
            k, batch, info = self._wait()
            batches[k] = batch
            self._frames += info["frames"]
        if self._remote_buffer:
            return None
        parts = [b if b.batch_dims > 1 else b.unsqueeze(0) for b in batches if b is not None]
        return cat(parts, 0)

    def next(self) -> TensorDict:
        """Collect one batch (before ``split_trajs``/``postproc``); see the class for its shape.

        Example:
            >>> import ray
            >>> from rlbricks.collectors import RayCollector
            >>> from rlbricks.envs.testing import CountingEnv
            >>> _ = ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
            >>> with RayCollector(lambda: CountingEnv(batch_size=[3]), frames_per_batch=6,
            ...                   remote_config={"num_cpus": 0.5}) as collector:
            ...     batch = collector.next()
            >>> batch.batch_size, collector.frames
            (torch.Size([3, 2]), 6)
        """
        if self._remote_buffer:
            raise CollectorRuntimeError(
                "RayCollector.next(): the actors write their batches into the replay buffer; "
                "iterate over the collector instead"
            )
        batch = self._collect()
        assert batch is not None  # only a remote buffer makes it None
        return batch

    def __iter__(self) -> Iterator[TensorDict | None]:
        """Batches until ``total_frames`` frames are collected (``None`` with a replay buffer)."""
        while self.total_frames < 0 or self._frames < self.total_frames:
            batch = self._collect()
            self._iter += 1
            yield None if batch is None else self._finish(batch)

    # ------------------------------------------------------------------ #
    # seeds, state, teardown
    # ------------------------------------------------------------------ #
    def set_seed(self, seed: int) -> int:
        """Seed the actors one after the other; return the next seed.

        Actor 0 gets ``seed`` (``torch.manual_seed`` and ``env.set_seed``), actor
        ``k + 1`` the seed that actor ``k``'s ``SyncDataCollector.set_seed``
        returned, so every sub-env has its own seed.

        Example:
            >>> import ray
            >>> from rlbricks.collectors import RayCollector
            >>> from rlbricks.envs.testing import CountingEnv
            >>> _ = ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
            >>> with RayCollector(lambda: CountingEnv(batch_size=[2]), frames_per_batch=2,
            ...                   num_collectors=2, remote_config={"num_cpus": 0.5}) as collector:
            ...     next_seed = collector.set_seed(10)
            >>> next_seed  # 2 actors of 2 sub-envs each: seeds 10, 11, 12, 13
            14
        """
        for k, actor in enumerate(self._actors):
            seed = self._get([actor.set_seed.remote(seed)], [k], "set_seed", self.timeout)[0]
        return seed

    def state_dict(self) -> dict[str, Any]:
        """The frame counters and every actor's collector state (call it between batches).

        Example:
            >>> import ray
            >>> from rlbricks.collectors import RayCollector
            >>> from rlbricks.envs.testing import CountingEnv
            >>> _ = ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
            >>> with RayCollector(CountingEnv, frames_per_batch=2,
            ...                   remote_config={"num_cpus": 0.5}) as collector:
            ...     _ = collector.next()
            ...     state = collector.state_dict()
            >>> state["frames"], [s["frames"] for s in state["collectors"]]
            (2, [2])
        """
        state = self._base_state()
        refs = [actor.state_dict.remote() for actor in self._actors]
        state["collectors"] = self._get(
            refs, range(self.num_collectors), "state_dict", self.timeout
        )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state saved by :meth:`state_dict` (same number of actors).

        Example:
            >>> import ray
            >>> from rlbricks.collectors import RayCollector
            >>> from rlbricks.envs.testing import CountingEnv
            >>> _ = ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
            >>> with RayCollector(CountingEnv, frames_per_batch=2,
            ...                   remote_config={"num_cpus": 0.5}) as collector:
            ...     _ = collector.next()
            ...     state = collector.state_dict()
            ...     _ = collector.next()
            ...     collector.load_state_dict(state)
            ...     frames, batch = collector.frames, collector.next()
            >>> frames, batch["collector", "traj_ids"].tolist()  # a reset starts trajectory 1
            (2, [[1, 1]])
        """
        states = state["collectors"]
        if len(states) != self.num_collectors:
            raise CollectorRuntimeError(
                f"RayCollector.load_state_dict: the state holds {len(states)} collectors, this "
                f"RayCollector has {self.num_collectors} actors: build it with as many actors as "
                "the saved one"
            )
        refs = [a.load_state_dict.remote(s) for a, s in zip(self._actors, states)]
        self._get(refs, range(self.num_collectors), "load_state_dict", self.timeout)
        self._next_ids = [int(s["traj"]["next_id"]) for s in states]
        self._load_base_state(state)
        self._launched = self._frames + sum(self._actor_frames[k] for k in self._pending.values())

    def shutdown(self) -> None:
        """Kill the actors, and stop Ray if this collector started it (idempotent).

        Example:
            >>> import ray
            >>> from rlbricks.collectors import RayCollector
            >>> from rlbricks.envs.testing import CountingEnv
            >>> _ = ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
            >>> collector = RayCollector(CountingEnv, frames_per_batch=2,
            ...                          remote_config={"num_cpus": 0.5})
            >>> collector.shutdown()
            >>> collector.is_shut_down, ray.is_initialized()  # Ray was running before
            (True, True)
        """
        if getattr(self, "is_shut_down", True):
            return
        self.is_shut_down = True
        self._pending.clear()
        self._clocks.clear()
        ray = import_ray()
        if not ray.is_initialized():
            return
        for actor in self._actors:
            ray.kill(actor, no_restart=True)
        if self._owns_ray:
            ray.shutdown()

    def __repr__(self) -> str:
        mode = "sync" if self.sync else "async"
        return (
            f"{type(self).__name__}(num_collectors={self.num_collectors}, {mode}, "
            f"frames_per_batch={self.frames_per_batch}, total_frames={self.total_frames})"
        )


def _clean(err: BaseException) -> str:
    """A Ray error's text (with the remote traceback), without terminal colours."""
    return _ANSI.sub("", str(err)).strip()
