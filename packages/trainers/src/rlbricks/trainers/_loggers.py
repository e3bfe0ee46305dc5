"""Loggers: where the trainer writes its scalars (CSV files, TensorBoard event files)."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from rlbricks.trainers._errors import MissingExtraError
from rlbricks.trainers._errors import TrainerError
from rlbricks.trainers._errors import TrainerStateError

__all__ = ["CSVLogger", "Logger", "TensorboardLogger"]


class Logger:
    """The interface of a logger: scalars, hyper-parameters, histograms and videos of a run.

    Every logger writes into its run folder ``log_dir / exp_name`` (:attr:`log_dir`).
    A subclass implements :meth:`log_scalar`; the other methods have defaults
    (hyper-parameters go to ``hparams.json``; histograms and videos raise).

    Args:
        exp_name: the name of the run (a sub-folder of ``log_dir``).
        log_dir: the folder of all runs.

    Example:
        >>> from rlbricks.trainers import Logger
        >>> class PrintLogger(Logger):
        ...     def log_scalar(self, name, value, step=None):
        ...         print(name, value, step)
        >>> PrintLogger("run", "/tmp/rlbricks-doc-runs").log_scalar("reward", 1.0, step=10)
        reward 1.0 10
    """

    def __init__(self, exp_name: str, log_dir: str | os.PathLike[str] = "runs") -> None:
        self.exp_name = exp_name
        self.log_dir = Path(log_dir) / exp_name
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.step = 0

    def log_scalar(self, name: str, value: float, step: int | None = None) -> None:
        """Write one scalar ``value`` of series ``name`` at ``step`` (frames).

        Example:
            >>> from rlbricks.trainers import CSVLogger
            >>> CSVLogger("doc", "/tmp/rlbricks-doc-runs").log_scalar("loss", 0.5, step=1)
        """
        raise NotImplementedError(f"{type(self).__name__} must implement log_scalar")

    def log_hparams(self, hparams: Mapping[str, Any]) -> None:
        """Record the hyper-parameters of the run (default: ``hparams.json`` in :attr:`log_dir`).

        Example:
            >>> from rlbricks.trainers import CSVLogger
            >>> logger = CSVLogger("doc", "/tmp/rlbricks-doc-runs")
            >>> logger.log_hparams({"lr": 0.001})
            >>> (logger.log_dir / "hparams.json").read_text()
            '{\\n  "lr": 0.001\\n}'
        """
        text = json.dumps({k: _jsonable(v) for k, v in hparams.items()}, indent=2)
        (self.log_dir / "hparams.json").write_text(text)

    def log_histogram(self, name: str, values: torch.Tensor, step: int | None = None) -> None:
        """Record the distribution of ``values`` (not every logger supports it).

        Raises:
            TrainerError: this logger cannot store histograms.

        Example:
            >>> import torch
            >>> from rlbricks.trainers import CSVLogger
            >>> CSVLogger("doc", "/tmp/rlbricks-doc-runs").log_histogram("w", torch.ones(3))
            Traceback (most recent call last):
            ...
            rlbricks.trainers._errors.TrainerError: CSVLogger cannot log histograms; use TensorboardLogger
        """
        raise TrainerError(f"{type(self).__name__} cannot log histograms; use TensorboardLogger")

    def log_video(self, name: str, video: torch.Tensor, step: int | None = None) -> None:
        """Record a video ``[N, T, C, H, W]`` (uint8) (not every logger supports it).

        Raises:
            TrainerError: this logger cannot store videos.

        Example:
            >>> import torch
            >>> from rlbricks.trainers import CSVLogger
            >>> logger = CSVLogger("doc", "/tmp/rlbricks-doc-runs")
            >>> logger.log_video("v", torch.zeros(1, 2, 3, 4, 4, dtype=torch.uint8))
            Traceback (most recent call last):
            ...
            rlbricks.trainers._errors.TrainerError: CSVLogger cannot log videos; use TensorboardLogger
        """
        raise TrainerError(f"{type(self).__name__} cannot log videos; use TensorboardLogger")

    def flush(self) -> None:
        """Push buffered records to disk.

        Example:
            >>> from rlbricks.trainers import CSVLogger
            >>> CSVLogger("doc", "/tmp/rlbricks-doc-runs").flush()
        """

    def close(self) -> None:
        """Flush and release the files (the logger cannot be used afterwards).

        Example:
            >>> from rlbricks.trainers import CSVLogger
            >>> CSVLogger("doc", "/tmp/rlbricks-doc-runs").close()
        """
        self.flush()

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint stores to resume logging (the last step).

        Example:
            >>> from rlbricks.trainers import CSVLogger
            >>> CSVLogger("doc", "/tmp/rlbricks-doc-runs").state_dict()["step"]
            0
        """
        return {"step": self.step}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned.

        Example:
            >>> from rlbricks.trainers import CSVLogger
            >>> logger = CSVLogger("doc", "/tmp/rlbricks-doc-runs")
            >>> logger.load_state_dict({"step": 7})
            >>> logger.step
            7
        """
        self.step = int(state["step"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(exp_name={self.exp_name!r}, log_dir={str(self.log_dir)!r})"


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


class CSVLogger(Logger):
    """Scalars as one long-form CSV file ``log_dir/exp_name/scalars.csv`` (``step,name,value``).

    One file for every series keeps the rows in the order they were logged;
    read it with ``csv.DictReader`` or ``pandas.read_csv`` and pivot on
    ``name``. A checkpoint remembers the file's length, so resuming drops the
    rows written after the checkpoint (no duplicated steps).

    Args:
        exp_name: the name of the run.
        log_dir: the folder of all runs.

    Example:
        >>> import csv
        >>> from rlbricks.trainers import CSVLogger
        >>> logger = CSVLogger("csv-doc", "/tmp/rlbricks-doc-runs")
        >>> logger.log_scalar("reward", 1.5, step=100)
        >>> logger.close()
        >>> rows = list(csv.DictReader(open(logger.path)))
        >>> rows[-1]
        {'step': '100', 'name': 'reward', 'value': '1.5'}
    """

    def __init__(self, exp_name: str, log_dir: str | os.PathLike[str] = "runs") -> None:
        super().__init__(exp_name, log_dir)
        self.path = self.log_dir / "scalars.csv"
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._file = open(self.path, "a", newline="")  # noqa: SIM115 - closed by close()
        self._writer = csv.writer(self._file)
        if new:
            self._writer.writerow(["step", "name", "value"])
            self._file.flush()

    def log_scalar(self, name: str, value: float, step: int | None = None) -> None:
        """Append the row ``step,name,value`` (``step`` defaults to the last step).

        Example:
            >>> from rlbricks.trainers import CSVLogger
            >>> CSVLogger("doc", "/tmp/rlbricks-doc-runs").log_scalar("loss", 0.5, step=1)
        """
        if self._file.closed:
            raise TrainerStateError(f"{self!r} is closed; build a new logger to keep logging")
        if step is not None:
            self.step = int(step)
        self._writer.writerow([self.step, name, float(value)])

    def flush(self) -> None:
        """Flush the CSV file to disk.

        Example:
            >>> from rlbricks.trainers import CSVLogger
            >>> CSVLogger("doc", "/tmp/rlbricks-doc-runs").flush()
        """
        if not self._file.closed:
            self._file.flush()

    def close(self) -> None:
        """Flush and close the CSV file.

        Example:
            >>> from rlbricks.trainers import CSVLogger
            >>> CSVLogger("doc", "/tmp/rlbricks-doc-runs").close()
        """
        if not self._file.closed:
            self._file.flush()
            self._file.close()

    def state_dict(self) -> dict[str, Any]:
        """The last step and the file's length in bytes.

        Example:
            >>> from rlbricks.trainers import CSVLogger
            >>> sorted(CSVLogger("doc", "/tmp/rlbricks-doc-runs").state_dict())
            ['size', 'step']
        """
        self.flush()
        return {"step": self.step, "size": self.path.stat().st_size}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the step and cut the file back to its length at the checkpoint.

        Example:
            >>> from rlbricks.trainers import CSVLogger
            >>> logger = CSVLogger("doc-load", "/tmp/rlbricks-doc-runs")
            >>> state = logger.state_dict()
            >>> logger.log_scalar("x", 1.0, step=5)
            >>> logger.load_state_dict(state)
            >>> logger.path.stat().st_size == state["size"]
            True
        """
        super().load_state_dict(state)
        size = int(state.get("size", -1))
        self.flush()
        if 0 <= size <= self.path.stat().st_size:
            self._file.truncate(size)


class TensorboardLogger(Logger):
    """Scalars, histograms, videos and hyper-parameters as TensorBoard event files.

    Needs the ``tensorboard`` package: ``pip install "rlbricks-trainers[tensorboard]"``.

    Args:
        exp_name: the name of the run (``tensorboard --logdir <log_dir>`` shows every run).
        log_dir: the folder of all runs.

    Raises:
        ImportError: tensorboard is not installed (the message names the extra).

    Example:
        >>> from rlbricks.trainers import TensorboardLogger
        >>> logger = TensorboardLogger("tb-doc", "/tmp/rlbricks-doc-runs")
        >>> logger.log_scalar("reward", 1.0, step=10)
        >>> logger.close()
    """

    def __init__(self, exp_name: str, log_dir: str | os.PathLike[str] = "runs") -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise MissingExtraError(
                'TensorboardLogger needs tensorboard: pip install "rlbricks-trainers[tensorboard]"'
            ) from None
        super().__init__(exp_name, log_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir))

    def log_scalar(self, name: str, value: float, step: int | None = None) -> None:
        """Add a scalar event (tag ``name``) at ``step``.

        Example:
            >>> from rlbricks.trainers import TensorboardLogger
            >>> TensorboardLogger("tb-doc", "/tmp/rlbricks-doc-runs").log_scalar("x", 1.0, 1)
        """
        if step is not None:
            self.step = int(step)
        self.writer.add_scalar(name, float(value), global_step=self.step)

    def log_hparams(self, hparams: Mapping[str, Any]) -> None:
        """Write ``hparams.json`` and a ``hparams`` text event (a Markdown table).

        Example:
            >>> from rlbricks.trainers import TensorboardLogger
            >>> TensorboardLogger("tb-doc", "/tmp/rlbricks-doc-runs").log_hparams({"lr": 0.1})
        """
        super().log_hparams(hparams)
        rows = "\n".join(f"| {k} | {_jsonable(v)} |" for k, v in hparams.items())
        self.writer.add_text("hparams", "| name | value |\n|---|---|\n" + rows, self.step)

    def log_histogram(self, name: str, values: torch.Tensor, step: int | None = None) -> None:
        """Add a histogram event of ``values``.

        Example:
            >>> import torch
            >>> from rlbricks.trainers import TensorboardLogger
            >>> TensorboardLogger("tb-doc", "/tmp/rlbricks-doc-runs").log_histogram(
            ...     "w", torch.randn(10), step=1)
        """
        if step is not None:
            self.step = int(step)
        self.writer.add_histogram(name, values.detach().cpu(), global_step=self.step)

    def log_video(
        self, name: str, video: torch.Tensor, step: int | None = None, fps: int = 30
    ) -> None:
        """Add a video event from ``video`` ``[N, T, C, H, W]`` (needs ``moviepy``).

        Example:
            >>> from rlbricks.trainers import TensorboardLogger
            >>> callable(TensorboardLogger.log_video)
            True
        """
        if step is not None:
            self.step = int(step)
        self.writer.add_video(name, video.detach().cpu(), global_step=self.step, fps=fps)

    def flush(self) -> None:
        """Flush the event file.

        Example:
            >>> from rlbricks.trainers import TensorboardLogger
            >>> TensorboardLogger("tb-doc", "/tmp/rlbricks-doc-runs").flush()
        """
        self.writer.flush()

    def close(self) -> None:
        """Flush and close the event file.

        Example:
            >>> from rlbricks.trainers import TensorboardLogger
            >>> TensorboardLogger("tb-doc", "/tmp/rlbricks-doc-runs").close()
        """
        self.writer.close()
