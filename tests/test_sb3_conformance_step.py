"""Conventions inside the gradient step that the tutorial does not decide, side by side with SB3's SAC: the batch-norm
statistics of the critics reach the target critics at every target update, and tau = 0 never moves the targets."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.preprocessing import get_flattened_obs_dim
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from sb3_tutorial_sac import TutorialSAC


class FlattenBatchNormExtractor(BaseFeaturesExtractor):
    """SB3's tests' features extractor with a batch norm (tests/test_train_eval_mode.py), without the dropout."""

    def __init__(self, observation_space: gym.Space):
        super().__init__(observation_space, get_flattened_obs_dim(observation_space))
        self.flatten = nn.Flatten()
        self.batch_norm = nn.BatchNorm1d(self._features_dim)

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return self.batch_norm(self.flatten(observations))


def _batch_norm(critic: nn.Module) -> nn.BatchNorm1d:
    return critic.features_extractor.batch_norm


def _models(share_features_extractor: bool = False, **kwargs) -> list:
    policy_kwargs = {
        "features_extractor_class": FlattenBatchNormExtractor,
        "net_arch": [16],
        "share_features_extractor": share_features_extractor,
    }
    # (SB3's SAC adds use_sde to the policy_kwargs it is given: each model its own copy)
    sac = SAC("MlpPolicy", "Pendulum-v1", seed=0, learning_starts=100, policy_kwargs=dict(policy_kwargs), **kwargs)
    tutorial = TutorialSAC("MlpPolicy", "Pendulum-v1", seed=0, policy_kwargs=dict(policy_kwargs), **kwargs)
    return [sac, tutorial]


@pytest.mark.parametrize("share_features_extractor", [False, True])
def test_batch_norm_statistics_reach_the_target_critics_as_in_sb3(share_features_extractor):
    for model in _models(share_features_extractor):
        model.learn(400)
        critic, target = _batch_norm(model.critic), _batch_norm(model.critic_target)
        # the critic's statistics moved, and the target holds them (copied at the last target update)
        assert critic.running_mean.abs().max() > 1e-3, type(model).__name__
        assert th.equal(target.running_mean, critic.running_mean), type(model).__name__
        assert th.equal(target.running_var, critic.running_var), type(model).__name__
        assert not target.training  # the targets compute with the copied statistics (eval mode), as SB3's


def test_batch_norm_statistics_are_copied_at_target_updates_only_as_in_sb3():
    """With target_update_interval=2 the copy follows the target updates (the 1st, 3rd, ... gradient step of each
    train() call), as SB3's; the critics' statistics move at every step."""
    for model in _models(target_update_interval=2):
        model.learn(400)
        critic, target = _batch_norm(model.critic), _batch_norm(model.critic_target)
        model.train(gradient_steps=1, batch_size=64)  # a target update after the critic moved
        assert th.equal(target.running_mean, critic.running_mean), type(model).__name__
        model.train(gradient_steps=2, batch_size=64)  # the second step moves the critic, not the target
        assert not th.equal(target.running_mean, critic.running_mean), type(model).__name__


def test_tau_zero_never_moves_the_targets_as_in_sb3():
    """SB3 accepts tau = 0: the target critics keep their initial parameters (their batch-norm statistics still
    follow the critics', as SB3's)."""
    for model in _models():
        model.tau = 0.0
        initial = [p.detach().clone() for p in model.critic_target.parameters()]
        model.learn(400)
        assert all(th.equal(p, q) for p, q in zip(model.critic_target.parameters(), initial)), type(model).__name__
        critic_moved = [not th.equal(p, q) for p, q in zip(model.critic.parameters(), initial)]
        assert any(critic_moved), type(model).__name__
        assert th.equal(_batch_norm(model.critic_target).running_mean, _batch_norm(model.critic).running_mean)


def test_tau_zero_on_the_fast_engine():
    model = TutorialSAC("MlpPolicy", "Pendulum-v1", seed=0)
    model.tau = 0.0
    initial = [p.detach().clone() for p in model.critic_target.parameters()]
    model.learn(400)
    assert model.update_engine.name == "fast"
    assert all(th.equal(p, q) for p, q in zip(model.critic_target.parameters(), initial))
    assert np.isfinite(model.last_train_stats["critic1_loss"]).all()
