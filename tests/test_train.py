"""TutorialSAC's training loop inside SB3's machinery: the tutorial's schedule (two episodes, then gradient steps),
minibatches read from the replay buffer, timeouts, learning-rate schedules, callbacks and SB3's logger keys."""

import numpy as np
import pandas as pd
import pytest
from stable_baselines3.common.callbacks import CheckpointCallback, EvalCallback, StopTrainingOnRewardThreshold
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import configure

from sb3_tutorial_sac import TutorialSAC
from tests.helpers import small


# ----------------------------------------------------------------------------------------------- schedule


def test_schedule_two_episodes_then_gradient_steps():
    """learn(400) on Pendulum: two 200-step episodes with the policy, 400 gradient steps, the first after episode 1."""
    model = TutorialSAC("MlpPolicy", "Pendulum-v1", seed=0)
    calls = []
    original_train = model.train

    def spy(gradient_steps, batch_size):
        calls.append((model.num_timesteps, model.replay_buffer.size(), gradient_steps, batch_size))
        original_train(gradient_steps, batch_size)

    model.train = spy  # type: ignore[method-assign]

    def no_uniform_warmup():
        raise AssertionError("no uniform warm-up: actions come from the policy")

    model.action_space.sample = no_uniform_warmup  # type: ignore[method-assign]
    model.learn(400)
    assert calls == [(200, 200, 200, 64), (400, 400, 200, 64)]
    assert model._n_updates == 400 and model._episode_num == 2
    # The time limit is stored as a terminal: exactly the last step of each episode has done = 1
    dones = model.replay_buffer.dones[:400, 0]
    assert np.flatnonzero(dones).tolist() == [199, 399]
    # The buffer stores raw rewards and actions in the env's units (Pendulum: [-2, 2]), as the tutorial does
    assert model.replay_buffer.rewards[:400].min() < -1.0
    assert np.abs(model.replay_buffer.actions[:400]).max() > 1.0
    assert np.abs(model.replay_buffer.actions[:400]).max() <= 2.0


def test_handle_timeout_termination_switch():
    model = small("Pendulum-v1", handle_timeout_termination=True)
    model.learn(200)
    assert model.replay_buffer.handle_timeout_termination is True
    assert model.replay_buffer.timeouts[199, 0] == 1
    # sampled "dones" exclude timeouts: every sampled transition bootstraps
    assert float(model._sample_minibatches(10, 64).dones.max()) == 0.0
    default = small("Pendulum-v1")
    default.learn(200)
    assert float(default._sample_minibatches(50, 64).dones.max()) == 1.0


def test_sample_minibatches_reads_the_buffer():
    model = small("Pendulum-v1")
    model.learn(200)
    data = model._sample_minibatches(3, 64)
    assert data.observations.shape == (192, 3) and data.actions.shape == (192, 1) and data.rewards.shape == (192, 1)
    buffer = model.replay_buffer
    for obs, action, reward in zip(data.observations.numpy(), data.actions.numpy(), data.rewards.numpy()):
        matches = np.flatnonzero(np.all(buffer.observations[:200, 0] == obs, axis=1))
        assert len(matches) >= 1
        assert buffer.actions[matches[0], 0] == action and buffer.rewards[matches[0], 0] == reward[0]


def test_learning_rate_schedules():
    model = small(
        "Pendulum-v1",
        learning_rate=lambda p: 1e-3 * p,
        critic_learning_rate=lambda p: 2e-3 * p,
        ent_coef_learning_rate=lambda p: 4e-3 * p,
    )
    model.learn(400)
    # the last train() call ran at progress remaining 0 (num_timesteps = total)
    assert model.actor.optimizer.param_groups[0]["lr"] == pytest.approx(0.0)
    model.learn(400, reset_num_timesteps=True)
    model._current_progress_remaining = 0.5
    model._update_learning_rate()
    assert model.actor.optimizer.param_groups[0]["lr"] == pytest.approx(5e-4)
    assert [g["lr"] for g in model.critic.optimizer.param_groups] == pytest.approx([1e-3, 1e-3])
    assert model.ent_coef_optimizer.param_groups[0]["lr"] == pytest.approx(2e-3)


# ----------------------------------------------------------------------------------------------- callbacks, logging


def test_callbacks_logging_progress_bar_tensorboard(tmp_path):
    eval_env = make_vec_env("Pendulum-v1", n_envs=1, seed=5)
    stop = StopTrainingOnRewardThreshold(reward_threshold=-1e9, verbose=0)
    evaluation = EvalCallback(eval_env, callback_on_new_best=stop, eval_freq=400, n_eval_episodes=1, log_path=str(tmp_path))
    checkpoint = CheckpointCallback(save_freq=200, save_path=str(tmp_path / "ckpt"), name_prefix="tsac")
    model = small("Pendulum-v1", tensorboard_log=str(tmp_path / "tb"))
    model.learn(1000, callback=[checkpoint, evaluation], progress_bar=True, log_interval=1)
    # the first evaluation beats the threshold, so training stops there
    assert model.num_timesteps == 400
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["tsac_200_steps.zip", "tsac_400_steps.zip"]
    assert isinstance(TutorialSAC.load(tmp_path / "ckpt" / "tsac_200_steps.zip"), TutorialSAC)
    assert np.load(tmp_path / "evaluations.npz")["timesteps"].tolist() == [400]
    assert list((tmp_path / "tb").rglob("events.out.tfevents.*"))


def test_logs_sac_keys(tmp_path):
    model = small("Pendulum-v1")
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(400, log_interval=1)
    model.train(5, 64)
    model.logger.dump(model.num_timesteps)
    model.logger.close()  # (its csv file, left open, would warn in whatever test the garbage collector runs next)
    columns = set(pd.read_csv(tmp_path / "progress.csv").columns)
    for key in (
        "train/actor_loss",
        "train/critic_loss",
        "train/ent_coef",
        "train/ent_coef_loss",
        "train/n_updates",
        "train/entropy",
        "train/learning_rate",
        "train/critic_learning_rate",
        "rollout/ep_rew_mean",
    ):
        assert key in columns, key
    last = pd.read_csv(tmp_path / "progress.csv").iloc[-1]
    assert last["train/n_updates"] == 405
    stats = model.last_train_stats
    assert last["train/critic_loss"] == pytest.approx(np.mean(0.5 * (stats["critic1_loss"] + stats["critic2_loss"])), rel=1e-5)
    assert last["train/ent_coef"] == pytest.approx(np.mean(stats["ent_coef"]), rel=1e-5)
