"""The one training state: the model's temperature attributes are views of it, train() builds its settings from the
model's attributes, a train() call is a transaction on it, and the per-step numbers of the step are named."""

import numpy as np
import pytest
import torch as th

from sb3_tutorial_sac import NonFiniteError, TutorialSAC
from sb3_tutorial_sac.engines.step import N_SCALARS, StepScalars
from sb3_tutorial_sac.guard import check_training, check_transition
from sb3_tutorial_sac.state import StepSettings, TrainingState


def _model(**kwargs) -> TutorialSAC:
    model = TutorialSAC("MlpPolicy", "Pendulum-v1", seed=0, buffer_size=1000, **kwargs)
    model.learn(200)
    return model


def test_the_temperature_lives_in_the_training_state_only():
    model = _model()
    state = model.training_state
    assert model.log_ent_coef is state.log_ent_coef and model.ent_coef_optimizer is state.ent_coef_optimizer
    assert model.ent_coef_tensor is None and "log_ent_coef" not in vars(model) and "ent_coef_optimizer" not in vars(model)
    # Tutorial rule: log(alpha) from log(0.01), its own Adam over exactly that tensor
    assert model.ent_coef_optimizer.param_groups[0]["params"] == [model.log_ent_coef]
    # setting the model's attribute sets the state's, which the next train() steps
    old, optimizer = state.ent_coef_optimizer, th.optim.Adam([state.log_ent_coef])
    old_steps = old.state[state.log_ent_coef]["step"].item()
    model.ent_coef_optimizer = optimizer
    assert state.ent_coef_optimizer is optimizer
    model.train(gradient_steps=3, batch_size=64)
    assert optimizer.state[state.log_ent_coef]["step"].item() == 3  # the new optimiser stepped log-alpha
    assert old.state[state.log_ent_coef]["step"].item() == old_steps

    fixed = _model(ent_coef=0.2)
    assert fixed.log_ent_coef is None and fixed.ent_coef_optimizer is None
    assert fixed.ent_coef_tensor is fixed.training_state.ent_coef_tensor and float(fixed.ent_coef_tensor) == pytest.approx(0.2)


def test_a_model_without_its_state_refuses_to_set_a_view():
    model = TutorialSAC("MlpPolicy", "Pendulum-v1", _init_setup_model=False)
    assert model.log_ent_coef is None and model.ent_coef_optimizer is None and model.ent_coef_tensor is None
    with pytest.raises(AttributeError, match="log_ent_coef is part of the training state"):
        model.log_ent_coef = th.zeros(1)


def test_train_builds_its_settings_from_the_models_attributes_checked():
    model = _model()
    model.tau, model.target_entropy, model.reward_scale = 0.02, -0.5, 0.25
    model.train(gradient_steps=1, batch_size=64)
    settings = model.training_state.settings
    assert (settings.tau, settings.target_entropy, settings.reward_scale) == (0.02, -0.5, 0.25)
    model.tau = 1.5
    with pytest.raises(ValueError, match="tau"):
        model.train(gradient_steps=1, batch_size=64)
    # "auto" is -dim(A)
    values = dict(tau=0.005, gamma=0.99, target_update_interval=1, target_entropy="auto", reward_shift=8.0,
                  reward_scale=0.125, entropy_term="tutorial", ent_coef_loss="tutorial", batch_size=64)  # fmt: skip
    assert StepSettings.checked(3, **values).target_entropy == -3.0


def test_a_train_call_is_a_transaction_on_the_state():
    """A failure inside the call (here the guard's finiteness check) puts back every tensor the call wrote."""
    model = _model()
    state = model.training_state
    before = {name: tensor.detach().clone() for name, tensor in state.tensors().items()}
    with pytest.raises(RuntimeError, match="mid-call"):
        with state.transaction():
            state.actor_flat.flat.add_(1.0)
            state.log_ent_coef.data.fill_(3.0)
            raise RuntimeError("mid-call")
    assert all(th.equal(state.tensors()[name], value) for name, value in before.items())
    # the guard's check takes the state and the per-step values, never the model
    values = np.zeros((2, 6), np.float32)
    values[1, 2] = np.nan
    names = ["critic1_loss", "critic2_loss", "actor_loss", "ent_coef_loss", "entropy", "ent_coef"]
    with pytest.raises(NonFiniteError, match="actor_loss = nan at gradient step 12"):
        check_training(state, values, names, n_updates=10, num_timesteps=200)
    with pytest.raises(NonFiniteError, match="reward nan from env 0 at env step 7"):
        check_transition(np.zeros((1, 3), np.float32), np.array([np.nan], np.float32), np.zeros(1, bool), [{}], 7)


def test_the_rebuilt_state_keeps_the_temperature_and_optimisers():
    model = _model()
    state = model.training_state
    rebuilt = state.rebuilt()
    assert isinstance(rebuilt, TrainingState) and rebuilt is not state
    assert rebuilt.log_ent_coef is state.log_ent_coef and rebuilt.ent_coef_optimizer is state.ent_coef_optimizer
    assert rebuilt.settings == state.settings


def test_the_step_scalars_are_named_in_the_compiled_tensor_order():
    scalars = StepScalars(-3e-4, 0.03, -3e-3, 0.03, -3e-4, 0.03, soft_update=1.0, tau=0.01, keep=0.99, target_entropy=-2.0)
    assert len(StepScalars._fields) == N_SCALARS == 10
    row = th.tensor(scalars, dtype=th.float32)
    assert StepScalars(*row.unbind()).tau.item() == pytest.approx(0.01)
    assert row[StepScalars._fields.index("target_entropy")].item() == -2.0
    # the fast engine's scalars of consecutive steps: Adam's step counts advance, soft updates every interval
    model = _model(target_update_interval=2)
    engine = model.update_engine
    with engine.loop():
        first, second = engine._next_scalars(True), engine._next_scalars(False)
    assert first.soft_update == 1.0 and second.soft_update == 0.0
    assert first.tau == second.tau == model.tau and first.keep == 1 - model.tau
    assert first.actor_step != second.actor_step  # bias corrections of steps n+1 and n+2
