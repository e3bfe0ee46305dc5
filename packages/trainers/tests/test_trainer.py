"""The training loop: stage order, optimiser steps, clipping, logging cadence, progress bar."""

from __future__ import annotations

import sys
from typing import Any

import pytest
import torch
from torch import nn

from rlbricks.tensordict import TensorDict
from rlbricks.trainers import STAGES
from rlbricks.trainers import Logger
from rlbricks.trainers import Trainer
from rlbricks.trainers import TrainerError
from rlbricks.trainers._progress import make_progress_bar


class RegressionLoss(nn.Module):
    """loss_mse = mean((w x - y)^2): a loss with a known gradient."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 1, bias=False)
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor([[0.5, -1.0, 2.0]]))

    def forward(self, batch: TensorDict) -> TensorDict:
        err = self.linear(batch.get("x")) - batch.get("y")
        loss = (err**2).mean()
        return TensorDict({"loss_mse": loss, "diagnostic": loss.detach() * 0}, batch_size=[])


def batches(n: int, rows: int = 4, seed: int = 0) -> list[TensorDict]:
    gen = torch.Generator().manual_seed(seed)
    return [
        TensorDict(
            {
                "x": torch.randn(rows, 3, generator=gen),
                "y": torch.randn(rows, 1, generator=gen),
                "next": {"reward": torch.full((rows, 1), float(i))},
            },
            batch_size=[rows],
        )
        for i in range(n)
    ]


class MemoryLogger(Logger):
    def __init__(self, tmp_path: Any) -> None:
        super().__init__("mem", tmp_path)
        self.rows: list[tuple[str, float, int | None]] = []

    def log_scalar(self, name: str, value: float, step: int | None = None) -> None:
        self.rows.append((name, value, step))


def make(data: list[TensorDict], **kwargs: Any) -> Trainer:
    loss = RegressionLoss()
    optim = torch.optim.SGD(loss.parameters(), lr=0.1)
    kwargs.setdefault("progress_bar", False)
    return Trainer(data, sum(b.numel() for b in data), loss, optim, **kwargs)


def test_hooks_run_in_stage_order() -> None:
    calls: list[str] = []
    trainer = make(batches(2), optim_steps_per_batch=2)

    def batch_hook(stage: str) -> Any:
        def hook(batch: TensorDict) -> None:
            assert isinstance(batch, TensorDict)
            calls.append(stage)

        return hook

    def log_hook(stage: str) -> Any:
        def hook(batch: TensorDict) -> dict[str, float]:
            calls.append(stage)
            return {}

        return hook

    def plain_hook(stage: str) -> Any:
        return lambda: calls.append(stage)

    for stage in STAGES:
        if stage in ("batch_process", "process_optim_batch", "post_loss"):
            trainer.register_op(stage, batch_hook(stage))
        elif stage in ("pre_steps_log", "post_steps_log"):
            trainer.register_op(stage, log_hook(stage))
        else:
            trainer.register_op(stage, plain_hook(stage))
    trainer.train()
    per_optim = ["process_optim_batch", "post_loss", "post_optim"]
    one_batch = ["batch_process", "pre_optim_steps", *per_optim, *per_optim,
                 "pre_steps_log", "post_steps_log", "post_steps"]  # fmt: skip
    assert calls == one_batch * 2


def test_batch_hooks_replace_the_batch_and_kwargs_are_passed() -> None:
    seen: list[int] = []
    trainer = make(batches(1, rows=6))
    trainer.register_op("batch_process", lambda b, n: b[:n], n=2)
    trainer.register_op("process_optim_batch", lambda b: seen.append(b.numel()))
    trainer.train()
    assert seen == [2]


def test_unknown_stage_lists_the_stages() -> None:
    trainer = make(batches(1))
    with pytest.raises(TrainerError, match="batch_process, pre_optim_steps"):
        trainer.register_op("after_everything", lambda: None)


@pytest.mark.parametrize("steps", [0, 1, 3])
def test_optim_steps_per_batch(steps: int) -> None:
    trainer = make(batches(4), optim_steps_per_batch=steps)
    trainer.train()
    assert trainer.optim_steps == 4 * steps
    assert trainer.batches == 4
    assert trainer.collected_frames == 16


def naive_sgd(data: list[TensorDict], clip: str | None, threshold: float) -> torch.Tensor:
    """Plain-torch reference of what the trainer does on RegressionLoss."""
    w = torch.tensor([[0.5, -1.0, 2.0]])
    for batch in data:
        x, y = batch.get("x"), batch.get("y")
        grad = 2 * ((x @ w.T - y) * x).mean(0, keepdim=True)  # d mean((xw - y)^2) / dw
        if clip == "norm":
            grad = grad * min(1.0, threshold / (float(grad.norm()) + 1e-6))
        elif clip == "value":
            grad = grad.clamp(-threshold, threshold)
        w = w - 0.1 * grad
    return w


@pytest.mark.parametrize(
    ("clip_grad_norm", "clip_norm", "reference"),
    [(True, None, None), (True, 0.05, "norm"), (False, 0.01, "value")],
)
def test_gradient_clipping(clip_grad_norm: bool, clip_norm: float | None, reference: Any) -> None:
    data = batches(5)
    trainer = make(data, clip_grad_norm=clip_grad_norm, clip_norm=clip_norm)
    trainer.train()
    expected = naive_sgd(data, reference, clip_norm or 0.0)
    torch.testing.assert_close(trainer.loss_module.linear.weight.detach(), expected)
    if reference is not None:  # the clipping really changed the result
        assert not torch.allclose(expected, naive_sgd(data, None, 0.0))


def test_logging_cadence(tmp_path: Any) -> None:
    logger = MemoryLogger(tmp_path)
    trainer = make(batches(5), logger=logger, log_interval=8)  # a batch is 4 frames
    trainer.register_op("pre_steps_log", lambda b: {"reward": float(b.get(("next", "reward"))[0])})
    trainer.train()
    rewards = [(v, s) for n, v, s in logger.rows if n == "reward"]
    # written at frames 4 (first value), then when >= 8 frames passed: 12 (mean of 1, 2), 20
    assert rewards == [(0.0, 4), (1.5, 12), (3.5, 20)]
    losses = [s for n, _, s in logger.rows if n == "loss_mse"]
    assert losses == [4, 12, 20]
    assert "diagnostic" not in {n for n, _, _ in logger.rows}
    assert trainer.latest["reward"] == 4.0


def test_loss_without_loss_entries_is_an_error() -> None:
    trainer = make(batches(1))
    trainer.loss_module.forward = lambda b: TensorDict({"value": torch.zeros(())}, [])  # type: ignore[method-assign]
    with pytest.raises(TrainerError, match="no 'loss_\\*' entry"):
        trainer.train()


def test_collector_yielding_none_is_an_error() -> None:
    trainer = make(batches(1))
    trainer.collector = [None]
    with pytest.raises(TrainerError, match="ReplayBufferTrainer"):
        trainer.train()


def test_total_frames_stops_early() -> None:
    data = batches(6)
    loss = RegressionLoss()
    trainer = Trainer(data, 9, loss, torch.optim.SGD(loss.parameters(), lr=0.1),
                      progress_bar=False)  # fmt: skip
    trainer.train()
    assert trainer.batches == 3
    assert trainer.collected_frames == 12


class FakeStdout:
    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def test_progress_bar_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdout", FakeStdout(False))
    assert make_progress_bar(True, 100) is None
    monkeypatch.setattr(sys, "stdout", FakeStdout(True))
    assert make_progress_bar(False, 100) is None
    bar = make_progress_bar(True, 100, initial=10)
    assert bar is not None
    assert bar.n == 10
    bar.close()


def test_progress_bar_in_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[Any] = []
    import rlbricks.trainers._trainer as trainer_module

    def spy(enabled: bool, total: int, initial: int = 0) -> Any:
        bar = make_progress_bar(enabled, total, initial)
        created.append(bar)
        return bar

    monkeypatch.setattr(trainer_module, "make_progress_bar", spy)
    make(batches(2), progress_bar=True).train()  # pytest's stdout is not a terminal
    assert created == [None]
    monkeypatch.setattr(sys, "stdout", FakeStdout(True))
    monkeypatch.setattr(sys, "stderr", FakeStdout(True))
    make(batches(2), progress_bar=True).train()
    assert created[-1] is not None
    assert created[-1].n == 8
