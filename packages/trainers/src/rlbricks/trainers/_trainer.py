"""The base training loop: collect, count, log, evaluate, checkpoint; the generic stage-driven steps."""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Callable
from collections.abc import Generator
from collections.abc import Iterable
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rlbricks.tensordict import TensorDict
from rlbricks.trainers._checkpoint import read_checkpoint
from rlbricks.trainers._checkpoint import resumable
from rlbricks.trainers._checkpoint import write_checkpoint
from rlbricks.trainers._errors import CheckpointError
from rlbricks.trainers._errors import TrainerStateError
from rlbricks.trainers._errors import TrainerTypeError
from rlbricks.trainers._errors import TrainerValueError
from rlbricks.trainers._loggers import Logger
from rlbricks.trainers._progress import make_progress_bar
from rlbricks.trainers._summary import write_summary

__all__ = ["STAGES", "Trainer"]

#: The stages a hook can be registered at, in the order they run for one batch.
STAGES = (
    "batch_process",
    "pre_optim_steps",
    "process_optim_batch",
    "post_loss",
    "post_optim",
    "pre_steps_log",
    "post_steps_log",
    "post_steps",
)
"""The hook stages of :meth:`Trainer.register_op`, in the order they run for each batch."""
_BATCH_STAGES = ("batch_process", "process_optim_batch")
_LOG_STAGES = ("pre_steps_log", "post_steps_log")
_PathLike = str | os.PathLike[str]


class Trainer:
    """Collect batches, optimise the loss on them, log, evaluate and checkpoint.

    For each batch of the collector (until ``total_frames`` frames)::

        batch_process(batch) -> batch          e.g. extend the replay buffer
        pre_optim_steps()
        repeat optim_steps_per_batch times:
            process_optim_batch(batch) -> sub  e.g. sample the replay buffer
            losses = loss_module(sub)
            post_loss(sub)                     e.g. write priorities back
            sum of losses["loss_*"] -> backward, clip gradients, optimizer step, zero_grad
            post_optim()                       e.g. target-network update
        pre_steps_log(batch) -> {name: float}  scalars for the logger and progress bar
        post_steps_log(batch) -> {name: float} same, after the progress bar (e.g. evaluation)
        post_steps()                           e.g. weight sync, exploration annealing
        checkpoint every save_trainer_interval frames

    Hooks of the two batch stages return the new batch (or None: unchanged);
    log hooks return a dict of scalars (or None). A scalar is written to the
    logger when at least ``log_interval`` frames passed since that scalar's
    last write; the value written is the mean of the values since then.

    Args:
        collector: an iterable of batches with ``frames`` (e.g. ``SyncDataCollector``).
        total_frames: stop after this many frames.
        loss_module: returns a TensorDict whose ``loss_*`` entries are summed.
        optimizer: steps the parameters (its param groups are clipped).
        logger: where scalars go (None: nowhere).
        optim_steps_per_batch: optimiser steps for each collected batch.
        clip_grad_norm: clip the gradients' global norm (True) or each value (False).
        clip_norm: the clipping threshold (None: no clipping).
        progress_bar: show a tqdm bar (only when stdout is a terminal).
        save_trainer_interval: frames between checkpoints (with ``save_trainer_file``).
        save_trainer_file: the checkpoint folder (None: no checkpoints).
        log_interval: frames between two writes of a scalar.
        run_dir: where ``summary.json`` and ``learning_curve.png`` go at the end of
            :meth:`train` (default: the logger's folder; None without logger).
        resume: a checkpoint folder to continue from: :meth:`train` loads it
            (:meth:`load_state`) before its first batch, once the hooks are
            registered. A path where nothing was ever saved means a first run,
            so a script can pass the same path as ``save_trainer_file`` and
            ``resume`` and run again after being killed. Leftovers of
            interrupted saves with no loadable checkpoint raise
            :class:`CheckpointError`.

    Example:
        >>> import torch
        >>> from rlbricks.collectors import SyncDataCollector
        >>> from rlbricks.envs.testing import CountingEnv
        >>> from rlbricks.modules.recipes import dqn_model
        >>> from rlbricks.objectives import DQNLoss
        >>> from rlbricks.trainers import Trainer
        >>> env = CountingEnv()
        >>> actor = dqn_model(env, num_cells=(8,))
        >>> loss = DQNLoss(actor)
        >>> _ = loss.make_value_estimator(gamma=0.9)
        >>> collector = SyncDataCollector(env, actor, frames_per_batch=8, total_frames=32)
        >>> trainer = Trainer(collector, 32, loss, torch.optim.Adam(loss.parameters()),
        ...                   progress_bar=False)
        >>> trainer.train()
        >>> trainer.collected_frames, trainer.optim_steps
        (32, 4)
    """

    def __init__(
        self,
        collector: Iterable[TensorDict | None],
        total_frames: int,
        loss_module: nn.Module,
        optimizer: torch.optim.Optimizer,
        logger: Logger | None = None,
        *,
        optim_steps_per_batch: int = 1,
        clip_grad_norm: bool = True,
        clip_norm: float | None = None,
        progress_bar: bool = True,
        save_trainer_interval: int = 10_000,
        save_trainer_file: _PathLike | None = None,
        log_interval: int = 1_000,
        run_dir: _PathLike | None = None,
        resume: _PathLike | None = None,
    ) -> None:
        if optim_steps_per_batch < 0:
            raise TrainerValueError(
                f"optim_steps_per_batch must be >= 0, got {optim_steps_per_batch}"
            )
        if total_frames <= 0:
            raise TrainerValueError(f"total_frames must be positive, got {total_frames}")
        self.collector = collector
        self.total_frames = int(total_frames)
        self.loss_module = loss_module
        self.optimizer = optimizer
        self.logger = logger
        self.optim_steps_per_batch = int(optim_steps_per_batch)
        self.clip_grad_norm = clip_grad_norm
        self.clip_norm = clip_norm
        self.progress_bar = progress_bar
        self.save_trainer_interval = int(save_trainer_interval)
        self.save_trainer_file = None if save_trainer_file is None else Path(save_trainer_file)
        self.log_interval = int(log_interval)
        if run_dir is None and logger is not None:
            run_dir = logger.log_dir
        self.run_dir = None if run_dir is None else Path(run_dir)
        self._resume = None if resume is None else Path(resume)
        self._ops: dict[str, list[tuple[Callable[..., Any], dict[str, Any]]]] = {
            stage: [] for stage in STAGES
        }
        self._modules: dict[str, Any] = {}
        self.collected_frames = 0
        self.frames_last_batch = 0
        self.optim_steps = 0
        self.batches = 0
        self.wall_time = 0.0
        self.cpu_time = 0.0  # process CPU time inside train(), every thread of the process
        self.latest: dict[str, float] = {}
        self.history: dict[str, list[tuple[int, float]]] = {}
        self._pending: dict[str, list[float]] = {}
        self._last_write: dict[str, int] = {}
        self._last_save = 0
        self._collector_frames = 0
        self._plotted: list[tuple[int, float]] | None = None  # the curve of learning_curve.png
        self._step_scalars: dict[str, list[float]] = {}  # update scalars of the current batch

    # ------------------------------------------------------------------ #
    # registration
    # ------------------------------------------------------------------ #
    def register_op(self, stage: str, hook: Callable[..., Any], **kwargs: Any) -> None:
        """Run ``hook(*stage_args, **kwargs)`` at ``stage`` (after the hooks registered before).

        Raises:
            TrainerError: an unknown stage (the message lists the stages).

        Example:
            >>> import torch
            >>> from rlbricks.trainers import Trainer
            >>> trainer = Trainer([], 10, torch.nn.Linear(1, 1), None)
            >>> trainer.register_op("post_steps", lambda: print("one batch done"))
            >>> len(trainer.hooks("post_steps"))
            1
        """
        if stage not in self._ops:
            raise TrainerValueError(f"unknown stage {stage!r}; the stages are {', '.join(STAGES)}")
        if not callable(hook):
            raise TrainerTypeError(f"the hook registered at {stage!r} is not callable: {hook!r}")
        self._ops[stage].append((hook, kwargs))

    def register_module(self, name: str, module: Any) -> None:
        """Checkpoint ``module`` under ``name``: its ``state_dict()`` (and ``dump(folder)``).

        ``module`` needs ``state_dict()``/``load_state_dict(state)``; objects with
        big state (replay buffers) may also define ``dump(folder)``/``load(folder)``.

        Raises:
            TrainerError: the name is taken.

        Example:
            >>> import torch
            >>> from rlbricks.trainers import Trainer, UpdateWeights
            >>> trainer = Trainer([], 10, torch.nn.Linear(1, 1), None)
            >>> trainer.register_module("sync", UpdateWeights(None))
        """
        if name in self._modules or name in ("trainer", "loss", "optimizer", "collector"):
            raise TrainerValueError(
                f"a module named {name!r} is already registered; pick another name"
            )
        self._modules[name] = module

    def hooks(self, stage: str) -> list[Callable[..., Any]]:
        """The hooks registered at ``stage``, in the order they run.

        Example:
            >>> from rlbricks.trainers import STAGES
            >>> STAGES[0]
            'batch_process'
        """
        if stage not in self._ops:
            raise TrainerValueError(f"unknown stage {stage!r}; the stages are {', '.join(STAGES)}")
        return [hook for hook, _ in self._ops[stage]]

    # ------------------------------------------------------------------ #
    # the loop
    # ------------------------------------------------------------------ #
    def _process(self, stage: str, batch: TensorDict) -> TensorDict:
        for hook, kwargs in self._ops[stage]:
            out = hook(batch, **kwargs)
            if out is not None:
                batch = out
        return batch

    def _call(self, stage: str, *args: Any) -> None:
        for hook, kwargs in self._ops[stage]:
            hook(*args, **kwargs)

    def _scalars(self, stage: str, batch: TensorDict) -> dict[str, float]:
        out: dict[str, float] = {}
        for hook, kwargs in self._ops[stage]:
            values = hook(batch, **kwargs)
            if values:
                out.update({k: float(v) for k, v in values.items()})
        return out

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def _clip(self) -> float | None:
        if self.clip_norm is None:
            return None
        params = [p for p in self._params() if p.grad is not None]
        if self.clip_grad_norm:
            return float(torch.nn.utils.clip_grad_norm_(params, self.clip_norm))
        torch.nn.utils.clip_grad_value_(params, self.clip_norm)
        return None

    def optimizer_step(self, losses: TensorDict) -> dict[str, float]:
        """Minimise the sum of the ``loss_*`` entries of ``losses``: backward, clip, step, zero.

        The values (detached, and ``grad_norm`` when clipping the norm) are
        averaged over the batch's steps into the logged scalars.

        Returns:
            The ``loss_*`` values (and ``grad_norm``) as floats.

        Raises:
            TrainerError: ``losses`` has no ``loss_*`` entry.

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> from rlbricks.trainers import Trainer
            >>> w = torch.nn.Parameter(torch.tensor(2.0))
            >>> trainer = Trainer([], 10, torch.nn.Module(), torch.optim.SGD([w], lr=0.25))
            >>> trainer.optimizer_step(TensorDict({"loss_w": w * w}, []))
            {'loss_w': 4.0}
            >>> w.item(), trainer.optim_steps
            (1.0, 1)
        """
        names = losses.keys()
        keys = [k for k in names if isinstance(k, str) and k.startswith("loss_")]
        if not keys:
            raise TrainerValueError(
                f"the loss module returned no 'loss_*' entry (keys: {sorted(losses.keys())}); "
                "the trainer minimises the sum of the loss_* entries"
            )
        total = sum(losses.get(k) for k in keys)
        total.backward()
        grad_norm = self._clip()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.optim_steps += 1
        out = {k: float(losses.get(k).detach()) for k in keys}
        if grad_norm is not None:
            out["grad_norm"] = grad_norm
        for name, value in out.items():
            self._step_scalars.setdefault(name, []).append(value)
        return out

    def optim_step(self, batch: TensorDict) -> dict[str, float]:
        """One optimiser step of the generic loop: process, loss, post_loss, step, post_optim.

        Runs the ``process_optim_batch`` hooks on ``batch``, the loss module,
        the ``post_loss`` hooks, :meth:`optimizer_step` and the ``post_optim`` hooks.

        Returns:
            The detached ``loss_*`` values (and ``grad_norm`` when clipping the norm).

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> from rlbricks.trainers import Trainer
            >>> loss = torch.nn.Module()
            >>> loss.w = torch.nn.Parameter(torch.tensor(2.0))
            >>> loss.forward = lambda td: TensorDict({"loss_w": loss.w * loss.w}, [])
            >>> trainer = Trainer([], 10, loss, torch.optim.SGD(loss.parameters(), lr=0.25))
            >>> trainer.optim_step(TensorDict({}, []))
            {'loss_w': 4.0}
            >>> loss.w.item()  # 2 - 0.25 * d(w^2)/dw
            1.0
        """
        sub = self._process("process_optim_batch", batch)
        losses = self.loss_module(sub)
        self._call("post_loss", sub)
        out = self.optimizer_step(losses)
        self._call("post_optim")
        return out

    def train_on_batch(self, batch: TensorDict) -> None:
        """The algorithm's work on one collected batch; subclasses override it.

        The generic loop of this class: the ``batch_process`` hooks, the
        ``pre_optim_steps`` hooks, then ``optim_steps_per_batch`` times
        :meth:`optim_step`. :class:`OnPolicyTrainer` and :class:`OffPolicyTrainer`
        replace it by their algorithm's named steps.

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> from rlbricks.trainers import Trainer
            >>> loss = torch.nn.Module()
            >>> loss.w = torch.nn.Parameter(torch.tensor(2.0))
            >>> loss.forward = lambda td: TensorDict({"loss_w": loss.w * loss.w}, [])
            >>> trainer = Trainer([], 10, loss, torch.optim.SGD(loss.parameters(), lr=0.25),
            ...                   optim_steps_per_batch=2)
            >>> trainer.train_on_batch(TensorDict({}, []))
            >>> trainer.optim_steps, loss.w.item()
            (2, 0.5)
        """
        batch = self._process("batch_process", batch)
        self._call("pre_optim_steps")
        for _ in range(self.optim_steps_per_batch):
            self.optim_step(batch)

    def _log(self, scalars: dict[str, float]) -> None:
        frames = self.collected_frames
        self.latest.update(scalars)
        for name, value in scalars.items():
            self.history.setdefault(name, []).append((frames, value))
            self._pending.setdefault(name, []).append(value)
            last = self._last_write.get(name)
            if last is not None and frames - last < self.log_interval:
                continue
            values = self._pending.pop(name)
            self._last_write[name] = frames
            if self.logger is not None:
                self.logger.log_scalar(name, sum(values) / len(values), step=frames)

    def _frames_of(self, batch: TensorDict) -> int:
        frames = getattr(self.collector, "frames", None)
        if isinstance(frames, int):
            delta = frames - self._collector_frames
            self._collector_frames = frames
            if delta > 0:
                return delta
        return batch.numel()

    def collect(self) -> Generator[TensorDict, None, None]:
        """Yield the collector's batches; count, log, evaluate and checkpoint around each.

        The loop of :meth:`train`, for scripts that write the algorithm's steps
        themselves: the caller works on each yielded batch (the optimiser steps
        it takes through :meth:`optimizer_step` are counted and their losses
        logged); once the caller asks for the next batch, the log hooks run,
        then the ``post_steps`` hooks and a periodic checkpoint. It stops after
        ``total_frames`` frames, then saves a last checkpoint (with
        ``save_trainer_file``) and writes the summary (with a run folder).
        A ``resume`` checkpoint is loaded before the first batch.

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> from rlbricks.trainers import Trainer
            >>> batches = [TensorDict({"x": torch.ones(4)}, [4])] * 3
            >>> trainer = Trainer(batches, 8, torch.nn.Module(), None, progress_bar=False)
            >>> [trainer.collected_frames for batch in trainer.collect()]
            [4, 8]
        """
        resume, self._resume = self._resume, None
        if resume is not None and resumable(resume):  # raises on leftovers without a checkpoint
            self.load_state(resume)
        if self.collected_frames >= self.total_frames:
            return
        bar = make_progress_bar(self.progress_bar, self.total_frames, self.collected_frames)
        self._collector_frames = getattr(self.collector, "frames", 0)
        start = time.perf_counter()
        cpu_start = time.process_time()
        wall0, cpu0 = self.wall_time, self.cpu_time
        try:
            for batch in self.collector:
                if batch is None:
                    raise TrainerStateError(
                        "the collector yielded None (it writes into a replay_buffer); build it "
                        "without replay_buffer= and give the buffer to an OffPolicyTrainer (or, on the "
                        "generic Trainer, register a ReplayBufferTrainer)"
                    )
                frames = self._frames_of(batch)
                self.frames_last_batch = frames
                self.collected_frames += frames
                self._step_scalars = {}
                yield batch
                scalars = {k: sum(v) / len(v) for k, v in self._step_scalars.items()}
                scalars.update(self._scalars("pre_steps_log", batch))
                self.wall_time = wall0 + time.perf_counter() - start
                self.cpu_time = cpu0 + time.process_time() - cpu_start  # saved by _maybe_save
                if bar is not None:
                    bar.update(frames)
                    fps = (self.collected_frames) / max(self.wall_time, 1e-9)
                    bar.set_postfix(_postfix({**self.latest, **scalars}, fps), refresh=False)
                scalars.update(self._scalars("post_steps_log", batch))
                self._log(scalars)
                self._call("post_steps")
                self.batches += 1
                self._maybe_save()
                if self.collected_frames >= self.total_frames:
                    break
        finally:
            self.wall_time = wall0 + time.perf_counter() - start
            self.cpu_time = cpu0 + time.process_time() - cpu_start
            if bar is not None:
                bar.close()
            if self.logger is not None:
                self.logger.flush()
        if self.save_trainer_file is not None and self._last_save < self.collected_frames:
            self.save(self.save_trainer_file)
        if self.run_dir is not None:
            self.write_summary()

    def train(self) -> None:
        """Run the loop until ``total_frames`` frames are collected (resumes after :meth:`load_state`).

        ``for batch in self.collect(): self.train_on_batch(batch)``. At the
        end, writes ``summary.json`` (and ``learning_curve.png`` with
        matplotlib) into :attr:`run_dir` and a last checkpoint when
        ``save_trainer_file`` is set.

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> from rlbricks.trainers import Trainer
            >>> loss = torch.nn.Module()
            >>> loss.w = torch.nn.Parameter(torch.tensor(2.0))
            >>> loss.forward = lambda td: TensorDict({"loss_w": loss.w * loss.w}, [])
            >>> batches = [TensorDict({"x": torch.ones(4)}, [4])] * 3
            >>> trainer = Trainer(batches, 12, loss, torch.optim.SGD(loss.parameters(), lr=0.1),
            ...                   optim_steps_per_batch=2, progress_bar=False)
            >>> trainer.train()
            >>> trainer.collected_frames, trainer.optim_steps
            (12, 6)
        """
        with contextlib.closing(self.collect()) as batches:
            for batch in batches:
                self.train_on_batch(batch)

    def write_summary(self, eval_returns: Sequence[float] | None = None) -> dict[str, Any]:
        """Write ``summary.json`` (and ``learning_curve.png``) into :attr:`run_dir`; return it.

        :meth:`train` calls it at its end; call it again after a final
        evaluation to record that evaluation's episode returns.  Keys:
        ``frames``, ``optim_steps``, ``wall_time_s`` (time inside :meth:`train`),
        ``cpu_time_s`` (the process's CPU time inside :meth:`train`),
        ``eval_reward_mean`` and ``eval_reward_std`` (of ``eval_returns``; without
        them the last periodic ``"eval_reward"`` and None), ``eval_episodes``,
        ``best_eval_reward`` (over the periodic evaluations and this one),
        ``final_reward`` (the last logged ``"reward"``), ``eval_returns`` (each
        episode's return of ``eval_returns``, or None) and ``eval_curve``
        (``[frames, mean return]`` of every periodic evaluation, then of the
        final one at the last frame: the learning curve).

        Raises:
            TrainerError: the trainer has no run folder (no logger, no ``run_dir``).

        Example:
            >>> import tempfile, torch
            >>> from rlbricks.trainers import Trainer
            >>> trainer = Trainer([], 10, torch.nn.Linear(1, 1), None, run_dir=tempfile.mkdtemp())
            >>> summary = trainer.write_summary([470.0, 500.0])
            >>> summary["eval_reward_mean"], summary["eval_reward_std"], summary["eval_episodes"]
            (485.0, 15.0, 2)
        """
        if self.run_dir is None:
            raise TrainerStateError(
                "the trainer has no run folder to write summary.json into; pass run_dir= or a logger"
            )
        return write_summary(self, self.run_dir, eval_returns)

    def _maybe_save(self) -> None:
        if self.save_trainer_file is None:
            return
        if self.collected_frames - self._last_save >= self.save_trainer_interval:
            self.save(self.save_trainer_file)

    # ------------------------------------------------------------------ #
    # checkpoints
    # ------------------------------------------------------------------ #
    def state_dict(self) -> dict[str, Any]:
        """Everything small the run needs to resume (the replay buffers are dumped apart).

        Keys: ``trainer`` (counters, log bookkeeping), ``loss`` (every network,
        target networks and learned coefficients), ``optimizer``, ``collector``,
        ``logger``, ``rng`` (torch, numpy and python) and one entry per
        registered module.

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> from rlbricks.trainers import Trainer
            >>> loss = torch.nn.Module()
            >>> loss.w = torch.nn.Parameter(torch.tensor(2.0))
            >>> loss.forward = lambda td: TensorDict({"loss_w": loss.w * loss.w}, [])
            >>> trainer = Trainer([], 10, loss, torch.optim.SGD(loss.parameters(), lr=0.1))
            >>> sorted(trainer.state_dict())
            ['loss', 'modules', 'optimizer', 'rng', 'trainer']
        """
        state: dict[str, Any] = {
            "trainer": {
                "collected_frames": self.collected_frames,
                "optim_steps": self.optim_steps,
                "batches": self.batches,
                "wall_time": self.wall_time,
                "cpu_time": self.cpu_time,
                "latest": dict(self.latest),
                "history": {k: [list(p) for p in v] for k, v in self.history.items()},
                "pending": dict(self._pending),
                "last_write": dict(self._last_write),
            },
            "loss": self.loss_module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }
        collector_state = getattr(self.collector, "state_dict", None)
        if callable(collector_state):
            state["collector"] = collector_state()
        if self.logger is not None:
            state["logger"] = self.logger.state_dict()
        state["modules"] = {name: m.state_dict() for name, m in self._modules.items()}
        state["rng"] = {
            "torch": torch.get_rng_state(),
            "numpy": np.random.get_state(),  # noqa: NPY002 - the global state is saved
            "python": random.getstate(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["rng"]["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def save(self, path: _PathLike) -> Path:
        """Checkpoint the whole training state into the folder ``path`` (atomically).

        Tensors go to a weights-only torch file, the rest to JSON, replay
        buffers to their ``dumps`` folders; the previous checkpoint at ``path``
        is replaced only once the new one is complete.

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> from rlbricks.trainers import Trainer
            >>> loss = torch.nn.Module()
            >>> loss.w = torch.nn.Parameter(torch.tensor(2.0))
            >>> loss.forward = lambda td: TensorDict({"loss_w": loss.w * loss.w}, [])
            >>> import tempfile
            >>> trainer = Trainer([], 10, loss, torch.optim.SGD(loss.parameters(), lr=0.1))
            >>> path = trainer.save(tempfile.mkdtemp() + "/ckpt")
            >>> sorted(p.name for p in path.iterdir())
            ['manifest.json', 'state.json', 'tensors.pt']
        """
        state = self.state_dict()
        dumps = {
            name: m.dump for name, m in self._modules.items() if callable(getattr(m, "dump", None))
        }
        out = write_checkpoint(path, state, dumps)
        self._last_save = self.collected_frames
        return out

    def load_state(self, path: _PathLike) -> None:
        """Restore a checkpoint written by :meth:`save` into this (identically built) trainer.

        Raises:
            CheckpointError: a missing, truncated or corrupted file, or a
                checkpoint of another setup (the message names what differs).

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> from rlbricks.trainers import Trainer
            >>> loss = torch.nn.Module()
            >>> loss.w = torch.nn.Parameter(torch.tensor(2.0))
            >>> loss.forward = lambda td: TensorDict({"loss_w": loss.w * loss.w}, [])
            >>> import tempfile
            >>> trainer = Trainer([], 10, loss, torch.optim.SGD(loss.parameters(), lr=0.1))
            >>> trainer.collected_frames = 5
            >>> path = trainer.save(tempfile.mkdtemp() + "/ckpt")
            >>> fresh = Trainer([], 10, loss, torch.optim.SGD(loss.parameters(), lr=0.1))
            >>> fresh.load_state(path)
            >>> fresh.collected_frames
            5
        """
        path = Path(path)
        state = read_checkpoint(path)
        missing = sorted(set(self._modules) - set(state.get("modules", {})))
        if missing:
            raise CheckpointError(
                f"{path} holds no state for the registered modules {missing}; register the same "
                "hooks (with the same names) as the run that saved it"
            )
        try:
            self.loss_module.load_state_dict(state["loss"])
            self.optimizer.load_state_dict(state["optimizer"])
            if "collector" in state:
                self.collector.load_state_dict(state["collector"])  # type: ignore[attr-defined]
            if self.logger is not None and "logger" in state:
                self.logger.load_state_dict(state["logger"])
            for name, module in self._modules.items():
                module.load_state_dict(state["modules"][name])
                if callable(getattr(module, "load", None)):
                    module.load(path / "dumps" / name)
        except (RuntimeError, KeyError, ValueError) as err:
            if isinstance(err, CheckpointError):
                raise
            raise CheckpointError(
                f"{path} does not fit this trainer ({type(err).__name__}: {err}); build the "
                "same models, optimiser, collector and hooks as the run that saved it"
            ) from err
        t = state["trainer"]
        self.collected_frames = int(t["collected_frames"])
        self.optim_steps = int(t["optim_steps"])
        self.batches = int(t["batches"])
        self.wall_time = float(t["wall_time"])
        self.cpu_time = float(t.get("cpu_time", 0.0))  # absent from checkpoints before 0.1.1
        self.latest = dict(t["latest"])
        self.history = {k: [(int(f), float(v)) for f, v in p] for k, p in t["history"].items()}
        self._pending = {k: list(v) for k, v in t["pending"].items()}
        self._last_write = {k: int(v) for k, v in t["last_write"].items()}
        self._last_save = self.collected_frames
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        np.random.set_state(rng["numpy"])  # noqa: NPY002
        version, internal, gauss = rng["python"]
        random.setstate((version, tuple(internal), gauss))
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])

    def __repr__(self) -> str:
        hooks = {stage: len(ops) for stage, ops in self._ops.items() if ops}
        return (
            f"Trainer(frames={self.collected_frames}/{self.total_frames}, "
            f"optim_steps={self.optim_steps}, hooks={hooks})"
        )


def _postfix(values: dict[str, float], fps: float) -> dict[str, str]:
    out = {"fps": f"{fps:.0f}"}
    for key in ("reward", "eval_reward"):
        if key in values:
            out[key] = f"{values[key]:.3g}"
    loss = sum(v for k, v in values.items() if k.startswith("loss_"))
    if any(k.startswith("loss_") for k in values):
        out["loss"] = f"{loss:.3g}"
    return out
