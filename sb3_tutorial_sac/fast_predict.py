"""The speed-only forward paths of ``predict()``: the same operations and numbers as calling the actor's modules, without
``nn.Module.__call__``'s overhead and SB3's ``obs_to_tensor`` checks, which cost more than the arithmetic of one
observation on a CPU (``predict`` runs at every env step of ``learn()``).

* :func:`call_layers`: ``module(x)`` with ``F.linear``, ``relu`` and ``softplus`` in place of the calls of exact
  ``Linear``, ``ReLU`` and ``Softplus`` layers (the actor's forward pass, :meth:`TutorialActor.get_action_dist_params`);
* :class:`PlainActor`: the actor's layers read once as plain tensors, checked at every call (:func:`plain_actor`);
* :func:`flat_box_actions`: ``predict()``'s short path for a batch of flat Box observations.

They read torch's private names: each module's hook, parameter and submodule dictionaries (:data:`MODULE_DICTS`) and
the dictionaries of hooks registered for every module (:data:`GLOBAL_HOOK_DICTS`, in ``torch.nn.modules.module``).
:func:`problem` checks them by name and type, not by torch's version (written against torch 2.8 to 2.13; a newer torch
keeps the fast paths while the names hold). Where one is missing or not a dictionary, every path here calls the modules
as they are (``module(x)``, SB3's ``predict()``): the same numbers, and ``predict()`` warns once per policy naming it.
Nothing else in the package reads these names.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from itertools import chain
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.torch_layers import FlattenExtractor
from torch import nn
from torch.nn import functional as F
from torch.nn.modules import module as _module

from sb3_tutorial_sac.user_warnings import warn

# torch.nn.modules.module's dictionaries of the hooks registered for every module (register_module_forward_hook, ...)
GLOBAL_HOOK_DICTS: tuple[str, ...] = (
    "_global_forward_hooks",
    "_global_forward_pre_hooks",
    "_global_backward_hooks",
    "_global_backward_pre_hooks",
)
# every nn.Module's own dictionaries read here (an instance attribute, set by nn.Module.__init__)
MODULE_DICTS: tuple[str, ...] = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_parameters",
    "_modules",
)
_MISSING = object()


def _unexpected(where: str, value: Any) -> str | None:
    if value is _MISSING:
        return f"{where}, which torch {th.__version__} does not have"
    if not isinstance(value, dict):
        return f"{where} being a dict, and in torch {th.__version__} it is a {type(value).__name__}"
    return None


@functools.cache
def _modules_problem(names: tuple[str, ...]) -> str | None:
    """What :func:`problem` says of the modules' own dictionaries ``names``, read once on small modules of the kinds read
    here (per tuple of names: torch does not change in a process)."""
    net = nn.Sequential(nn.utils.skip_init(nn.Linear, 1, 1), nn.ReLU(), nn.Softplus())  # no draw from torch's generator
    for module in (net, *net):
        for name in names:
            found = _unexpected(f"nn.Module.{name}", module.__dict__.get(name, _MISSING))
            if found is not None:
                return found
    if "_parameters" in names and list(net[0]._parameters) != ["weight", "bias"]:
        held = list(net[0]._parameters)
        return f"nn.Linear._parameters holding 'weight' and 'bias', and in torch {th.__version__} it holds {held}"
    if "_modules" in names and list(net._modules.values()) != list(net):
        return f"nn.Sequential._modules holding its layers in order, and in torch {th.__version__} it does not"
    return None


def global_hooks() -> list[dict] | None:
    """torch's dictionaries of the hooks registered for every module, read now, or None where :func:`problem` finds a
    private name the fast paths read missing or not what they expect."""
    hooks = []
    for name in GLOBAL_HOOK_DICTS:
        found = getattr(_module, name, None)
        if not isinstance(found, dict):
            return None
        hooks.append(found)
    return hooks if _modules_problem(MODULE_DICTS) is None else None


def problem() -> str | None:
    """Which private torch name the fast paths rely on is missing or not what they expect (None: all are), read now."""
    if global_hooks() is not None:
        return None
    for name in GLOBAL_HOOK_DICTS:
        found = _unexpected(f"torch.nn.modules.module.{name}", getattr(_module, name, _MISSING))
        if found is not None:
            return found
    return _modules_problem(MODULE_DICTS)


def _has_hooks(module: nn.Module) -> bool:
    """Whether calling ``module`` runs hooks of its own (forward, forward-pre or backward) besides ``forward``."""
    return bool(module._forward_hooks or module._forward_pre_hooks or module._backward_hooks or module._backward_pre_hooks)


def _layer_function(layer: nn.Module, detach: bool = False) -> Callable[[th.Tensor], th.Tensor] | None:
    """
    The function call that computes exactly a ``Linear``, ``ReLU`` (not in place) or ``Softplus`` layer on its own
    parameters and settings, read now (hooks aside: the caller checks them), or None for any other module.

    :param detach: the parameters as detached views (the same memory; nothing records a gradient)
    """
    layer_type = type(layer)
    if layer_type is nn.Linear:
        weight: th.Tensor | None = layer._parameters["weight"]
        bias: th.Tensor | None = layer._parameters["bias"]
        if detach:
            weight, bias = weight.detach(), None if bias is None else bias.detach()  # type: ignore[union-attr]
        return functools.partial(F.linear, weight=weight, bias=bias)  # type: ignore[arg-type]
    if layer_type is nn.ReLU and not layer.inplace:  # type: ignore[union-attr]
        return th.relu  # what F.relu calls
    if layer_type is nn.Softplus:
        return functools.partial(F.softplus, beta=layer.beta, threshold=layer.threshold)  # type: ignore[arg-type]
    return None


def _call_layer(layer: nn.Module, x: th.Tensor) -> th.Tensor:
    """``layer(x)`` as :func:`call_layers` computes it, without the check for global hooks."""
    if _has_hooks(layer):
        return layer(x)  # hooks change what the call computes: keep the call
    if type(layer) is nn.Sequential:
        for child in layer._modules.values():
            if child is not None:  # nn.Sequential skips a None entry, as children() does
                x = _call_layer(child, x)
        return x
    function = _layer_function(layer)
    return layer(x) if function is None else function(x)


def call_layers(module: nn.Module, x: th.Tensor) -> th.Tensor:
    """
    ``module(x)``, with ``F.linear``, ``F.relu`` and ``F.softplus`` on the layers' own parameters in place of the calls
    of exactly ``Linear``, ``ReLU`` and ``Softplus`` layers, alone or inside exact ``nn.Sequential`` containers
    (unfolded recursively): the same operations and numbers, without ``nn.Module.__call__``'s overhead, which dominates
    small networks on a CPU. Any other module (a subclass, a layer or container with hooks, every module while global
    module hooks are set or while :func:`problem` finds torch's privates changed) is called as a module, so that its own
    ``forward`` and hooks run. Layers are read at this call.
    """
    hooks = global_hooks()
    if hooks is None or any(hooks):
        return module(x)
    return _call_layer(module, x)


class PlainActor:
    """
    A :class:`~sb3_tutorial_sac.policies.TutorialActor`'s layers read once as plain tensors, for its forward pass on flat
    observations in ``predict`` (:func:`plain_actor`): the same ``F.linear``, ``relu`` and ``softplus`` calls on the
    same numbers, with detached views of the parameters (their memory: every in-place update, training's included,
    is seen), so that nothing records a gradient. On a CPU an operation on an ``nn.Parameter`` and the module calls
    around it cost several times the arithmetic of one observation, and ``predict`` runs at every env step of
    ``learn()``.

    Valid while the actor has the modules, parameters (in the same memory), Softplus settings and (empty) forward hooks
    it was read with: checked at every call (:meth:`valid`); anything else is read anew. Read only where :func:`problem`
    finds nothing.

    :param actor: the actor whose layers are read (``features_extractor``, ``latent_pi``, ``mu`` and ``std``)
    """

    def __init__(self, actor: nn.Module):
        self.plain = True  # False where a layer is not one of the plain ones or a forward hook is set
        # the forward hooks of every module read and the global ones: the hooks that can change a forward pass's
        # outputs (backward hooks change gradients only, and there are none)
        self._hooks: list[dict] = (global_hooks() or [])[:2]  # _global_forward_hooks, _global_forward_pre_hooks
        self._dicts: list[dict] = [actor._modules]  # the module and parameter dictionaries read, and their contents
        self._parameters: list[th.Tensor] = []
        self._softplus: list[nn.Softplus] = []
        self._read(actor)
        modules = actor._modules
        self._read(modules["features_extractor"])  # type: ignore[arg-type]
        self.trunk = self._layers(modules["latent_pi"])  # type: ignore[arg-type]
        self.mu = self._layers(modules["mu"])  # type: ignore[arg-type]
        self.std = self._layers(modules["std"])  # type: ignore[arg-type]
        self._contents = tuple(chain.from_iterable(map(dict.values, self._dicts)))  # kept alive (see _state)
        self._read_state = self._state()
        self.plain = self.plain and not any(self._hooks)
        self.device = self._parameters[0].device if self._parameters else th.device("cpu")
        self.on_cpu = self.device.type == "cpu"

    def _read(self, module: nn.Module) -> None:
        self._hooks += [module._forward_hooks, module._forward_pre_hooks]

    def _layers(self, module: nn.Module) -> list[Callable[[th.Tensor], th.Tensor]]:
        """The calls of ``module`` as :func:`call_layers` makes them (:func:`_layer_function`, ``Sequential`` unfolded),
        on detached parameters; any other module makes the actor not plain."""
        self._read(module)
        if type(module) is nn.Sequential:
            self._dicts.append(module._modules)
            return [call for child in module._modules.values() if child is not None for call in self._layers(child)]
        function = _layer_function(module, detach=True)
        if function is None:
            self.plain = False
            return []
        if type(module) is nn.Linear:
            self._dicts.append(module._parameters)
            self._parameters += [p for p in module._parameters.values() if p is not None]  # weight, bias
        elif type(module) is nn.Softplus:
            self._softplus.append(module)  # type: ignore[arg-type]
        return [function]

    def _state(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], list[tuple[float, float]]]:
        """What :meth:`valid` compares: how many forward hooks each dictionary holds (a reading with none stays valid
        until one is set; one with hooks, which calls the actor as a module, until their number changes), the
        dictionaries' contents (by identity: the objects read are kept alive by this reading, so a new object cannot
        take an old one's id), the parameters' memory, the Softplus settings."""
        return (
            tuple(map(len, self._hooks)),
            tuple(map(id, chain.from_iterable(map(dict.values, self._dicts)))),
            tuple(map(th.Tensor.data_ptr, self._parameters)),
            [(module.beta, module.threshold) for module in self._softplus],
        )

    def valid(self) -> bool:
        """Whether the actor still has what it was read with: the same modules and parameters in the same memory
        (``param.data = ...`` and ``.to(device)`` move it), the same Softplus settings and forward hooks (at every
        ``predict``: one comparison)."""
        return self._state() == self._read_state

    def forward(self, obs: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """The mean and std of the Gaussian for flat observations ``[batch, n]`` (float)."""
        latent_pi = obs
        for call in self.trunk:
            latent_pi = call(latent_pi)
        mean_actions, std = latent_pi, latent_pi
        for call in self.mu:
            mean_actions = call(mean_actions)
        for call in self.std:
            std = call(std)
        return mean_actions, std


def plain_actor(actor: nn.Module) -> PlainActor | None:
    """The actor's layers read as plain tensors (:class:`PlainActor`, kept on the actor and read anew where anything
    changed), or None where a forward hook is set, a layer is not one that :func:`call_layers` writes as a function call,
    or :func:`problem` finds torch's privates changed."""
    if problem() is not None:
        actor.__dict__.pop("_plain", None)
        return None
    return _plain_actor(actor)


def _plain_actor(actor: nn.Module) -> PlainActor | None:
    """:func:`plain_actor` once :func:`problem` has found nothing."""
    plain = actor.__dict__.get("_plain")
    if plain is None or not plain.valid():
        plain = actor.__dict__["_plain"] = PlainActor(actor)
    return plain if plain.plain else None


def flat_box_actions(policy: BasePolicy, observation: Any, deterministic: bool, actor_type: Any) -> np.ndarray | None:
    """
    ``predict()``'s squashed actions in ``[-1, 1]`` (shape ``[n_envs, action_dim]``) for a batch of flat Box
    observations (a NumPy array ``[n_envs, *obs_shape]``, what a VecEnv gives), with the same operations and numbers as
    SB3's ``predict()``; None where anything else is asked (SB3's ``predict()`` then).

    SB3's ``obs_to_tensor`` checks and reshapes for every kind of observation, which costs more than the actor's forward
    pass on one observation; here the array is copied into a tensor as it does, and the actor's layers run on plain
    tensors (:func:`plain_actor`), or the actor is called as a module where a forward hook is set. Where :func:`problem`
    finds torch's privates changed, ``predict()`` is SB3's, after one warning per policy naming the private.

    :param policy: a :class:`~sb3_tutorial_sac.policies.TutorialSACPolicy`
    :param actor_type: the actor's class this path is written for (``TutorialActor``; a subclass takes SB3's path)
    """
    why = problem()
    if why is not None:
        if policy.__dict__.get("_fast_predict_problem") != why:
            policy.__dict__["_fast_predict_problem"] = why
            warn(
                f"predict() calls the actor's modules as SB3's predict() does, without its fast path: that path relies "
                f"on {why}. The actions are the same."
            )
        return None
    space, modules = policy.observation_space, policy._modules
    actor: Any = modules["actor"]
    if not (
        type(observation) is np.ndarray
        and observation.ndim == 2
        and type(space) is spaces.Box
        and observation.shape[1:] == space.shape
        and type(actor) is actor_type
        and type(actor.features_extractor) is FlattenExtractor
    ):
        return None
    if policy.training or actor.training or modules["critic"].training:  # type: ignore[union-attr]
        policy.set_training_mode(False)  # SB3's predict(); once, not at every call
    plain = _plain_actor(actor)
    # SB3's obs_to_tensor for a vectorised Box observation: np.array (a copy), then obs_as_tensor
    if plain is not None and plain.on_cpu:
        obs = th.from_numpy(np.array(observation))  # as_tensor's tensor on the CPU
    else:
        obs = th.as_tensor(np.array(observation), device=policy.device)
    if plain is None:  # a forward hook or another layer: SB3's no_grad and the actor called as a module
        with th.no_grad():
            actions = actor(obs, deterministic).cpu()
    else:
        # the layers on plain tensors (the same operations and numbers; no tensor requires a gradient, so no_grad has
        # nothing to turn off); preprocess_obs's float() where it converts
        mean_actions, std = plain.forward(obs if obs.dtype == th.float32 else obs.float())
        actions = actor._squash(mean_actions, std, deterministic)
        if not plain.on_cpu:
            actions = actions.cpu()
    return actions.numpy()
