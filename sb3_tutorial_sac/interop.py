"""Move networks between a :class:`~sb3_tutorial_sac.TutorialSAC` model and the tutorial's notebook modules.

The tutorial names its five networks ``model_action`` (actor), ``model_value1`` / ``model_value2``
(critics) and ``model_value_next1`` / ``model_value_next2`` (target critics), and its temperature ``alpha``
(a 0-dim tensor holding ``log(alpha)``). The parameter names inside each are those of its modules::

    model_action: fc_state.0.weight, fc_state.0.bias, fc_mu.weight, fc_mu.bias, fc_std.0.weight, fc_std.0.bias
    model_value*: sequential.0.weight, sequential.0.bias, sequential.2.*, sequential.4.*

With deeper ``net_arch`` the same pattern continues (``fc_state.2.weight``, ``sequential.6.weight``, ...).
"""

from typing import Any

import torch as th
from torch import nn

from sb3_tutorial_sac.state import HasTrainingState


ACTOR_KEY = "model_action"
CRITIC_KEYS = ("model_value1", "model_value2")
TARGET_KEYS = ("model_value_next1", "model_value_next2")
ALPHA_KEY = "alpha"
STATE_KEYS = (ACTOR_KEY, *CRITIC_KEYS, *TARGET_KEYS, ALPHA_KEY)


def _actor_modules(model: HasTrainingState) -> dict[str, nn.Module]:
    actor = model.policy.actor
    return {"fc_state": actor.latent_pi, "fc_mu": actor.mu, "fc_std": actor.std}


def _critic_modules(model: HasTrainingState) -> dict[str, dict[str, nn.Module]]:
    critic, target = model.policy.critic, model.policy.critic_target
    if critic.n_critics != 2:
        raise ValueError(f"The tutorial has two critics; this model has n_critics={critic.n_critics}")
    modules = {}
    for key, q_net in zip(CRITIC_KEYS, critic.q_networks):
        modules[key] = {"sequential": q_net}
    for key, q_net in zip(TARGET_KEYS, target.q_networks):
        modules[key] = {"sequential": q_net}
    return modules


def _network_modules(model: HasTrainingState) -> dict[str, dict[str, nn.Module]]:
    if len(list(model.policy.actor.features_extractor.parameters())) > 0:
        raise ValueError(
            "The tutorial's networks read the observation directly; this model's features extractor "
            f"({type(model.policy.actor.features_extractor).__name__}) has parameters of its own"
        )
    return {ACTOR_KEY: _actor_modules(model), **_critic_modules(model)}


def _state_dict_of(parts: dict[str, nn.Module]) -> dict[str, th.Tensor]:
    state = {}
    for prefix, module in parts.items():
        for name, tensor in module.state_dict().items():
            state[f"{prefix}.{name}"] = tensor.detach().clone().cpu()
    return state


def export_tutorial_state(model: HasTrainingState) -> dict[str, Any]:
    """
    Export the model's networks and temperature under the tutorial's names.

    :param model: A TutorialSAC model with the tutorial's layout (two critics, no trainable features
        extractor)
    :return: ``{"model_action": state_dict, "model_value1": ..., "model_value2": ...,
        "model_value_next1": ..., "model_value_next2": ..., "alpha": log_alpha}``, CPU tensors that
        ``load_state_dict`` of the tutorial's modules accepts as they are; ``alpha`` is a 0-dim tensor as in
        the tutorial (for a fixed ``ent_coef``, its log).
    """
    state: dict[str, Any] = {key: _state_dict_of(parts) for key, parts in _network_modules(model).items()}
    training = model.training_state
    if training.log_ent_coef is not None:
        log_alpha = training.log_ent_coef.detach()
    else:
        assert training.ent_coef_tensor is not None
        log_alpha = th.log(training.ent_coef_tensor.detach())
    state[ALPHA_KEY] = log_alpha.reshape(()).clone().cpu()
    return state


def load_tutorial_state(model: HasTrainingState, state: dict[str, Any]) -> None:
    """
    Load networks and temperature saved under the tutorial's names (see :func:`export_tutorial_state`)
    into a TutorialSAC model, in place.

    Everything is checked (keys, shapes) before anything is written, so a bad ``state`` raises a
    ``ValueError`` and leaves the model as it was. Optimiser states are left as they are.

    :param model: The TutorialSAC model to write into
    :param state: The tutorial's five state dicts and ``alpha`` (``log(alpha)``, any shape with one element)
    """
    if not isinstance(state, dict):
        raise ValueError(f"state must be a dict with the keys {STATE_KEYS}, got {type(state).__name__}")
    missing = [key for key in STATE_KEYS if key not in state]
    unexpected = [key for key in state if key not in STATE_KEYS]
    if missing or unexpected:
        raise ValueError(f"state must have exactly the keys {STATE_KEYS}; missing {missing}, unexpected {unexpected}")

    writes: list[tuple[th.Tensor, th.Tensor]] = []
    for key, parts in _network_modules(model).items():
        expected = {
            f"{prefix}.{name}": tensor for prefix, module in parts.items() for name, tensor in module.state_dict().items()
        }
        given = state[key]
        if not isinstance(given, dict) or set(given) != set(expected):
            given_keys = sorted(given) if isinstance(given, dict) else type(given).__name__
            raise ValueError(f"state[{key!r}] must have the keys {sorted(expected)}, got {given_keys}")
        for name, tensor in expected.items():
            value = th.as_tensor(given[name])
            if value.shape != tensor.shape:
                raise ValueError(
                    f"state[{key!r}][{name!r}] has shape {tuple(value.shape)}, the model needs {tuple(tensor.shape)} "
                    "(check net_arch and the observation and action spaces)"
                )
            writes.append((tensor, value))

    log_alpha = th.as_tensor(state[ALPHA_KEY], dtype=th.float32)
    if log_alpha.numel() != 1 or not th.isfinite(log_alpha).all():
        raise ValueError(f"state['alpha'] must be one finite number (log of the temperature), got {state[ALPHA_KEY]!r}")

    with th.no_grad():
        for tensor, value in writes:
            tensor.copy_(value)
        training = model.training_state
        if training.log_ent_coef is not None:
            training.log_ent_coef.copy_(log_alpha.reshape(training.log_ent_coef.shape))
        else:
            assert training.ent_coef_tensor is not None
            training.ent_coef_tensor.copy_(log_alpha.exp().reshape(training.ent_coef_tensor.shape))
