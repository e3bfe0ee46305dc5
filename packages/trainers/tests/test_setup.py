"""The example set-up helpers: seeds, envs, optimisers, run folders, schedules, advantages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rlbricks.envs.testing import CountingEnv
from rlbricks.objectives import GAE
from rlbricks.tensordict import TensorDict
from rlbricks.trainers import AdvantageHook
from rlbricks.trainers import ConfigError
from rlbricks.trainers import CSVLogger
from rlbricks.trainers import EnvConfig
from rlbricks.trainers import LinearSchedule
from rlbricks.trainers import Trainer
from rlbricks.trainers import TrainerError
from rlbricks.trainers import make_env
from rlbricks.trainers import make_optimizer
from rlbricks.trainers import make_parser
from rlbricks.trainers import make_recorder
from rlbricks.trainers import make_run
from rlbricks.trainers import make_trainer
from rlbricks.trainers import run_report
from rlbricks.trainers import seed_everything
from rlbricks.trainers import train_and_evaluate

gym = pytest.importorskip("gymnasium")


def parse(*argv: str):
    return make_parser("env", "collector", "optim", "logger").parse_args(list(argv))


def test_seed_everything_replays_every_generator() -> None:
    import random

    import numpy as np

    seed_everything(5)
    first = (random.random(), np.random.rand(), torch.rand(1).item())  # noqa: NPY002
    seed_everything(5)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first  # noqa: NPY002


def test_plain_gym_env_stays_untransformed_and_seeded() -> None:
    env = make_env(parse("--num_envs=3", "--seed=7"))
    assert type(env).__name__ == "GymEnv"
    assert env.batch_size == (3,)
    again = make_env(parse("--num_envs=3", "--seed=7"))
    assert torch.equal(env.reset()["observation"], again.reset()["observation"])
    env.close()
    again.close()


def test_transforms_only_where_asked_and_not_for_eval() -> None:
    args = parse("--env_name=Pendulum-v1", "--max_frames_per_traj=5", "--reward_scaling=0.5")
    train, evaluation = make_env(args), make_env(args, eval=True)
    names = [type(t).__name__ for t in train.transform]
    assert names == ["StepCounter", "RewardScaling"]
    assert [type(t).__name__ for t in evaluation.transform] == ["StepCounter"]
    rollout = train.rollout(10, break_when_any_done=False)
    assert rollout["next", "truncated"][4].item()
    assert not rollout["next", "truncated"][3].item()
    # the eval env gets its own seed: its first observation differs from the training env's
    assert not torch.equal(train.reset()["observation"], evaluation.reset()["observation"])
    train.close()
    evaluation.close()


def test_float64_observations_become_float32() -> None:
    pytest.importorskip("mujoco")
    env = make_env(parse("--env_name=InvertedPendulum-v5"))
    assert env.observation_spec["observation"].dtype == torch.float32
    assert env.rollout(2)["next", "observation"].dtype == torch.float32
    env.close()


def test_eval_env_width() -> None:
    env = make_env(parse("--num_envs=4", "--eval_envs=2"), eval=True)
    assert env.batch_size == (2,)
    env.close()


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--env_workers=2", "--num_envs=2"], "one unbatched env"),
        (["--env_library=dm_control", "--env_name=cheetah"], "--env_task"),
        (
            ["--env_library=dm_control", "--env_name=cheetah", "--env_task=run", "--num_envs=2"],
            "--env_workers",
        ),
    ],
)
def test_bad_env_configs_name_the_fix(argv: list[str], match: str) -> None:
    if "dm_control" in " ".join(argv):
        pytest.importorskip("dm_control")
    with pytest.raises(ConfigError, match=match):
        make_env(parse(*argv))


def test_make_optimizer_kinds() -> None:
    net = torch.nn.Linear(2, 1)
    for kind, cls in [
        ("adam", torch.optim.Adam),
        ("sgd", torch.optim.SGD),
        ("rmsprop", torch.optim.RMSprop),
        ("adamw", torch.optim.AdamW),
    ]:
        optimizer = make_optimizer(parse(f"--optimizer={kind}", "--lr=0.25"), net.parameters())
        assert type(optimizer) is cls
        assert optimizer.param_groups[0]["lr"] == 0.25


@pytest.mark.parametrize("kind", ["adam", "adamw", "sgd"])
def test_fused_optimizer_takes_the_same_steps(kind: str) -> None:
    # the fused kernel and the default loop agree up to rounding over 20 steps
    nets = []
    for flags in ([], ["--fused_optimizer"]):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
        optimizer = make_optimizer(parse(f"--optimizer={kind}", "--lr=0.01", *flags),
                                   net.parameters())  # fmt: skip
        assert optimizer.defaults.get("fused") is (True if flags else None)
        x = torch.randn(32, 3, generator=torch.Generator().manual_seed(1))
        for _ in range(20):
            optimizer.zero_grad()
            net(x).square().mean().backward()
            optimizer.step()
        nets.append(net)
    for loop, fused in zip(nets[0].parameters(), nets[1].parameters()):
        torch.testing.assert_close(fused, loop, rtol=1e-5, atol=1e-6)


def test_fused_optimizer_refuses_rmsprop() -> None:
    with pytest.raises(ConfigError, match="no fused 'rmsprop'; use one of adam, adamw, sgd"):
        make_optimizer(parse("--optimizer=rmsprop", "--fused_optimizer"),
                       torch.nn.Linear(2, 1).parameters())  # fmt: skip


@pytest.mark.parametrize(("flag", "rule"), [("--lr=-1", "> 0"), ("--weight_decay=-1", ">= 0")])
def test_make_optimizer_refuses_invalid_numbers(flag: str, rule: str) -> None:
    # parse() skips parse_args's checks, as a hand-made Namespace would
    with pytest.raises(ConfigError, match=rf"{flag}\.0 .*must be {rule}"):
        make_optimizer(parse(flag), torch.nn.Linear(2, 1).parameters())


def test_make_run_default_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    logger, run_dir = make_run(parse("--logger=csv", "--exp_name=x"), "ppo")
    assert run_dir == Path("ppo_logging") / "x"
    assert isinstance(logger, CSVLogger)
    assert Path(logger.log_dir).resolve() == (tmp_path / "ppo_logging" / "x").resolve()
    # --log_dir is an alias of --logdir
    _, run_dir = make_run(parse("--logger=none", "--log_dir=elsewhere", "--exp_name=y"), "ppo")
    assert run_dir == Path("elsewhere") / "y"


def test_run_report_mentions_tensorboard_only_for_tensorboard(tmp_path: Path) -> None:
    summary = {
        "eval_reward_mean": 1.5,
        "eval_reward_std": None,
        "eval_episodes": None,
        "frames": 10,
        "wall_time_s": 1.0,
    }
    text = run_report(summary, tmp_path / "run", CSVLogger("run", tmp_path))
    assert "eval return: 1.5 (10 frames" in text
    assert "TensorBoard" not in text


def test_linear_schedule_on_optimizer_and_attribute() -> None:
    net = torch.nn.Linear(1, 1)
    optimizer = torch.optim.Adam([{"params": [net.weight]}, {"params": [net.bias]}], lr=1.0)

    class Loss:
        clip_epsilon = 0.2

    loss = Loss()
    trainer = Trainer([], 100, net, optimizer)
    LinearSchedule(optimizer, "lr", 0.0, frames=80).register(trainer)
    LinearSchedule(loss, "clip_epsilon", 0.0, frames=80).register(trainer)
    for frames, lr in [(0, 1.0), (20, 0.75), (80, 0.0), (200, 0.0)]:
        trainer.collected_frames = frames
        for hook in trainer.hooks("post_steps"):
            hook()
        assert [g["lr"] for g in optimizer.param_groups] == [lr, lr]
        assert loss.clip_epsilon == pytest.approx(0.2 * lr)


def test_linear_schedule_errors() -> None:
    optimizer = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=1.0)
    with pytest.raises(TrainerError, match="frames"):
        LinearSchedule(optimizer, "lr", 0.0, frames=0)
    with pytest.raises(TrainerError, match="no 'momentum_x'"):
        LinearSchedule(optimizer, "momentum_x", 0.0, frames=10)
    with pytest.raises(TrainerError, match="register"):
        LinearSchedule(optimizer, "lr", 0.0, frames=10)()


def test_advantage_hook_runs_on_the_whole_batch_without_gradients() -> None:
    env = CountingEnv(max_steps=3, batch_size=[2])
    critic = torch.nn.Linear(1, 1)

    def value(td: TensorDict) -> TensorDict:
        td["state_value"] = critic(td["observation"])
        return td

    def ones(td: TensorDict) -> TensorDict:
        td["action"] = torch.ones_like(td["observation"], dtype=torch.long)
        return td

    batch = env.rollout(5, ones, break_when_any_done=False)
    out = AdvantageHook(GAE(gamma=0.9, lmbda=0.8, value_network=value))(batch)
    assert out["advantage"].shape == (2, 5, 1)
    assert not out["advantage"].requires_grad
    assert not out["value_target"].requires_grad
    with pytest.raises(TrainerError, match="callable"):
        AdvantageHook("gae")  # type: ignore[arg-type]


def test_make_trainer_reads_the_groups_and_logs_the_hparams(tmp_path: Path) -> None:
    args = make_parser("collector", "optim", "logger", "trainer").parse_args(
        [
            "--total_frames=96",
            "--clip_norm=2.0",
            "--clip_grad_value",
            "--optim_steps_per_batch=3",
            "--log_interval=7",
            "--no_progress_bar",
            f"--save_trainer_file={tmp_path / 'ckpt'}",
        ]
    )
    net = torch.nn.Linear(1, 1)
    logger = CSVLogger("run", tmp_path)
    trainer = make_trainer(
        args,
        [],
        net,
        torch.optim.SGD(net.parameters(), lr=0.1),
        logger,
        tmp_path / "run",
        log_interval=11,
    )
    assert (trainer.total_frames, trainer.clip_norm, trainer.clip_grad_norm) == (96, 2.0, False)
    assert (trainer.optim_steps_per_batch, trainer.progress_bar) == (3, False)
    assert trainer.log_interval == 11  # keyword arguments win over the args
    assert trainer.save_trainer_file == tmp_path / "ckpt"
    assert trainer.run_dir == tmp_path / "run"
    hparams = json.loads((tmp_path / "run" / "hparams.json").read_text())
    assert hparams["total_frames"] == 96
    assert "config" not in hparams


def test_make_recorder_and_train_and_evaluate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = make_parser("env", "logger").parse_args(
        ["--record_interval=2", "--record_frames=3", "--eval_envs=2", "--seed=4"]
    )

    def ones(td: TensorDict) -> TensorDict:
        td["action"] = torch.ones_like(td["observation"], dtype=torch.long)
        return td

    recorder = make_recorder(args, CountingEnv(max_steps=10, batch_size=[2]), ones)
    assert (recorder.record_interval, recorder.max_steps) == (2, 3)
    assert (recorder.num_episodes, recorder.seed) == (2, 1004)
    net = torch.nn.Linear(1, 1)

    def loss(td: TensorDict) -> TensorDict:
        return TensorDict({"loss_w": net.weight.sum() ** 2}, [])

    batches = [TensorDict({"x": torch.zeros(4)}, [4])] * 2
    trainer = Trainer(batches, 8, loss, torch.optim.SGD(net.parameters(), lr=0.1), run_dir=tmp_path)
    recorder.register(trainer)
    summary = train_and_evaluate(trainer, recorder, 3)
    # every episode is cut at record_frames = 3 steps of reward 1
    assert (summary["eval_reward_mean"], summary["eval_episodes"]) == (3.0, 3)
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert f"run folder:  {tmp_path}" in capsys.readouterr().out


def test_categorical_action_encoding() -> None:
    one_hot = make_env(parse())
    index = make_env(parse("--categorical_action_encoding"))
    assert type(one_hot.action_spec).__name__ == "OneHot"
    assert type(index.action_spec).__name__ == "Categorical"
    assert index.rand_action()["action"].dtype == torch.long
    one_hot.close()
    index.close()


def test_make_env_from_settings_equals_make_env_from_args() -> None:
    args = make_parser("env", "logger").parse_args(["--num_envs=3", "--seed=7", "--eval_envs=2"])
    config = EnvConfig(num_envs=3, seed=7, eval_envs=2)
    for eval_env in (False, True):
        a, b = make_env(args, eval=eval_env), make_env(config, eval=eval_env)
        assert a.batch_size == b.batch_size == torch.Size([2 if eval_env else 3])
        assert torch.equal(a.reset()["observation"], b.reset()["observation"])
        a.close()
        b.close()
    with pytest.raises(ConfigError, match=r"EnvConfig\.num_envs"):
        EnvConfig(num_envs=0)
    with pytest.raises(ConfigError, match="env_library"):
        EnvConfig(env_library="atari")
