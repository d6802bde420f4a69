"""Settings read live, as SB3's SAC.train() reads them: a value set on the model after construction gives the same
update as the same value passed to the constructor, on every engine, and takes effect from the next train() call."""

import functools

import numpy as np
import pytest
import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.utils import ConstantSchedule

from sb3_tutorial_sac import TutorialSAC
from tests.helpers import needs_compiler

# (setting, value other than the default): every setting the gradient step reads
SETTINGS = [
    ("tau", 0.02),
    ("gamma", 0.95),
    ("target_update_interval", 3),
    ("target_entropy", -0.3),
    ("reward_shift", 4.0),
    ("reward_scale", 0.5),
    ("entropy_term", "correct"),
    ("ent_coef_loss", "sb3"),
]


def _model(engine: str = "auto", seed: int = 0, **kwargs) -> TutorialSAC:
    model = TutorialSAC("MlpPolicy", "Pendulum-v1", seed=seed, device="cpu", engine=engine, **kwargs)
    model.set_logger(Logger(folder=None, output_formats=[]))
    return model


def _tensors(model: TutorialSAC) -> dict[str, th.Tensor]:
    return {**model.policy.state_dict(), "log_ent_coef": model.log_ent_coef.detach().clone()}


def _flat(network: th.nn.Module) -> th.Tensor:
    return th.cat([p.detach().reshape(-1).clone() for p in network.parameters()])


def _max_difference(first: dict[str, th.Tensor], second: dict[str, th.Tensor]) -> float:
    return max((first[key] - second[key]).abs().max().item() for key in first)


def _set_versus_passed(engine: str, settings: dict) -> tuple[dict, dict, dict]:
    """Parameters after learn(600) of a model whose settings were set as attributes after construction, of a model that
    was given them in its constructor, and of a model with the defaults. Each model is built, then trained, in turn
    (SB3 seeds the global generators at construction)."""
    attribute = _model(engine)
    for name, value in settings.items():
        setattr(attribute, name, value)
    attribute.learn(600)
    passed = _model(engine, **settings)
    passed.learn(600)
    return _tensors(attribute), _tensors(passed), _default(engine)


@functools.cache
def _default(engine: str) -> dict[str, th.Tensor]:
    default = _model(engine)
    default.learn(600)
    return _tensors(default)


@pytest.mark.parametrize(("name", "value"), SETTINGS)
def test_a_setting_set_on_the_model_is_the_setting_passed_to_the_constructor(name, value):
    attribute, passed, default = _set_versus_passed("auto", {name: value})
    for key, tensor in passed.items():
        assert th.equal(attribute[key], tensor), (name, key)  # bit for bit (the fast engine)
    assert _max_difference(attribute, default) > 1e-4  # and the setting changed the update


@needs_compiler
def test_compiled_engine_reads_the_numeric_settings_at_every_call():
    numeric = {name: value for name, value in SETTINGS if name not in ("entropy_term", "ent_coef_loss")}
    attribute, passed, default = _set_versus_passed("compiled", numeric)
    assert _max_difference(attribute, passed) == 0  # the same compiled function, the same inputs
    assert _max_difference(attribute, default) > 1e-4


@needs_compiler
def test_compiled_engine_compiles_the_step_of_a_changed_loss():
    structural = {"entropy_term": "correct", "ent_coef_loss": "sb3"}
    attribute, passed, default = _set_versus_passed("compiled", structural)
    assert _max_difference(attribute, passed) == 0
    assert _max_difference(attribute, default) > 1e-4


@pytest.mark.parametrize("engine", ["auto", "reference"])
def test_a_setting_changed_between_two_learn_calls_takes_effect_at_the_next_train(engine):
    """tau = 0 set between two learn() calls: from the next train() on, the target critics no longer move (SB3's own
    test_features_extractor_target_net does this), while the critics do."""
    model = _model(engine)
    model.learn(400)
    target, critic = (_flat(net) for net in (model.critic_target, model.critic))
    model.tau = 0.0
    model.learn(400, reset_num_timesteps=False)
    assert model._n_updates == 800
    assert th.equal(_flat(model.critic_target), target)
    assert not th.equal(_flat(model.critic), critic)
    model.tau = 0.005
    model.learn(200, reset_num_timesteps=False)
    assert not th.equal(_flat(model.critic_target), target)


def test_the_fast_and_reference_engines_follow_the_same_changes_bit_for_bit():
    models = []
    for engine in ("auto", "reference"):
        model = _model(engine)
        model.learn(400)
        model.target_entropy, model.tau, model.gamma = -2.0, 0.05, 0.9
        model.learn(400, reset_num_timesteps=False)
        models.append(_tensors(model))
    assert _max_difference(*models) == 0


def test_a_bad_setting_fails_the_next_train_with_a_clear_error_and_changes_nothing():
    model = _model()
    model.learn(200)
    for name, value, message in [
        ("tau", 1.5, r"tau must be in \[0, 1\]"),
        ("gamma", float("nan"), r"gamma must be in \[0, 1\]"),
        ("target_update_interval", 0, "target_update_interval must be a positive integer"),
        ("target_entropy", "bogus", "target_entropy must be 'auto'"),
        ("reward_scale", 0.0, "reward_scale must be a finite non-zero number"),
        ("entropy_term", "bogus", "entropy_term must be one of"),
        ("ent_coef_loss", "bogus", "ent_coef_loss must be one of"),
    ]:
        before, good = _tensors(model), getattr(model, name)
        setattr(model, name, value)
        with pytest.raises(ValueError, match=message):
            model.train(gradient_steps=5, batch_size=64)
        assert _max_difference(before, _tensors(model)) == 0, name
        setattr(model, name, good)
    model.train(gradient_steps=5, batch_size=64)
    assert _max_difference(before, _tensors(model)) > 0


def test_learning_rate_schedules_are_read_as_sb3_reads_them():
    """As in SB3: train() reads the schedules built at setup; replacing a schedule attribute takes effect, setting
    learning_rate after setup does not. SB3's SAC side by side."""
    sac = SAC("MlpPolicy", "Pendulum-v1", seed=0, learning_starts=50, policy_kwargs={"net_arch": [8]})
    tutorial = _model()
    for model in (sac, tutorial):
        model.learning_rate = 0.5  # not read after setup
        model.lr_schedule = ConstantSchedule(1e-2)
    tutorial.critic_lr_schedule = ConstantSchedule(2e-2)
    tutorial.ent_coef_lr_schedule = ConstantSchedule(3e-2)
    sac.learn(100)
    tutorial.learn(400)
    assert sac.actor.optimizer.param_groups[0]["lr"] == 1e-2 == tutorial.actor.optimizer.param_groups[0]["lr"]
    assert [group["lr"] for group in tutorial.critic.optimizer.param_groups] == [2e-2, 2e-2]
    assert tutorial.ent_coef_optimizer.param_groups[0]["lr"] == 3e-2
    assert np.isfinite(tutorial.last_train_stats["actor_loss"]).all()
