"""The checks of ``set_parameters`` (and of a model file's tensors) before anything is loaded: every state dict's
names, keys and tensors (dtype, shape, finite), and every optimiser state (its groups, their settings, one state per
parameter of the parameter's shape and dtype, steps that are integers, sums of squares never negative). Each check
returns or raises what keeps the given values from fitting; the caller loads all or nothing."""

from __future__ import annotations

from typing import Any

import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.save_util import recursive_getattr

from sb3_tutorial_sac import validation


def tensor_problem(given: Any, own: th.Tensor, shape: tuple[int, ...] | None = None) -> str | None:
    """What keeps ``given`` from replacing ``own``: not a tensor, another dtype or shape, a NaN or an infinity."""
    shape = tuple(own.shape) if shape is None else shape
    if not isinstance(given, th.Tensor):
        return f"a {type(given).__name__}, not a tensor"
    if given.dtype != own.dtype or tuple(given.shape) != shape:
        return f"{given.dtype} of shape {tuple(given.shape)} given, {own.dtype} of shape {shape} in this model"
    if (given.is_floating_point() or given.is_complex()) and not bool(th.isfinite(given).all()):
        return "not finite (NaN or infinity)"
    return None


def check_parameters(model: BaseAlgorithm, params: dict[str, Any], exact_match: bool) -> None:
    """
    Raise a ``ValueError`` if ``params`` do not fit ``model``'s objects: names, keys, and every tensor (dtype, shape,
    finite), optimiser states included (their parameters, shapes, dtypes and values).
    """
    names = model._get_torch_save_params()[0]  # TutorialSAC's: persistence.torch_save_params
    unknown = sorted(set(params) - set(names))
    missing = sorted(set(names) - set(params)) if exact_match else []
    if unknown or missing:
        raise ValueError(
            f"The parameters do not match this TutorialSAC model's objects {names}: unknown {unknown}, "
            f"missing {missing}. Nothing was loaded."
        )
    problems: list[str] = []
    for name, given in params.items():
        target = recursive_getattr(model, name)
        if not isinstance(given, dict):
            problems.append(f"{name}: a {type(given).__name__}, not a state dict")
        elif isinstance(target, th.optim.Optimizer):
            problems += optimizer_state_problems(name, target, given)
        else:
            own = target.state_dict()
            if exact_match and set(given) != set(own):
                problems.append(
                    f"{name}: missing keys {sorted(set(own) - set(given))[:5]}, "
                    f"unexpected keys {sorted(map(str, set(given) - set(own)))[:5]}"
                )
            for key in sorted(set(given) & set(own)):
                problem = tensor_problem(given[key], own[key])
                if problem and "shape" in problem and isinstance(given[key], th.Tensor) and given[key].dtype == own[key].dtype:
                    problem = f"shape {tuple(given[key].shape)} given, {tuple(own[key].shape)} in this model"
                if problem:
                    problems.append(f"{name}.{key}: {problem}")
    if problems:
        raise ValueError(
            "The parameters do not fit this TutorialSAC model (saved with another net_arch, other spaces or "
            f"another algorithm, or not parameters at all); nothing was loaded: {'; '.join(problems[:5])}"
            + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        )


# Optimiser states that are sums of squares (never negative), by torch's names
SQUARES = ("exp_avg_sq", "max_exp_avg_sq", "square_avg", "sum", "acc_delta")
# The largest step count (and scalar state) a file may give: exact as a float, and an int64 once counted on (3e38 made
# learn() fail with an OverflowError)
MAX_STEP = 2**53


def adam_state_keys(optimizer: th.optim.Optimizer, index: int) -> set[str] | None:
    """The state keys torch's ``Adam`` (``AdamW``) keeps for a parameter of group ``index`` once it has stepped (the
    engines read each of them); ``None`` for other optimisers."""
    if not isinstance(optimizer, (th.optim.Adam, th.optim.AdamW)):
        return None
    amsgrad = bool(optimizer.param_groups[index].get("amsgrad", False))
    return {"step", "exp_avg", "exp_avg_sq", *(("max_exp_avg_sq",) if amsgrad else ())}


def _group_problems(name: str, index: int, group: dict[str, Any], own_group: dict[str, Any]) -> list[str]:
    """A parameter group's settings: the same keys as this model's; flags equal to its own; numbers finite, >= 0."""
    unknown = sorted(map(str, set(group) - set(own_group)))
    if unknown:
        return [f"{name} group {index}: settings {unknown[:5]} that torch's {type(own_group).__name__} has not"]
    problems = []
    for key, value in group.items():
        own = own_group[key]
        if key == "params":
            continue
        if key == "betas":
            if not (isinstance(value, (tuple, list)) and len(value) == 2 and all(
                    validation.is_finite_number(beta) and 0 <= beta < 1 for beta in value)):  # fmt: skip
                problems.append(f"{name} group {index} betas: {str(value)[:80]}, not two numbers in [0, 1)")
        elif isinstance(own, bool) or own is None or isinstance(own, str):
            if value != own:  # fused, foreach, amsgrad, capturable, ...: the model's own implementation
                problems.append(f"{name} group {index} {key}: {value!r} given, {own!r} in this model")
        elif validation._is_number(own):
            if not (validation.is_finite_number(value) and value >= 0):
                problems.append(f"{name} group {index} {key}: {str(value)[:80]}, not a finite number >= 0")
        elif isinstance(own, th.Tensor):
            if not (isinstance(value, th.Tensor) and value.numel() == 1 and bool(th.isfinite(value).all()) and value >= 0):
                problems.append(f"{name} group {index} {key}: {value!r}, not a finite number >= 0")
        elif value != own:
            problems.append(f"{name} group {index} {key}: {value!r} given, {own!r} in this model")
    return problems


def optimizer_state_problems(name: str, optimizer: th.optim.Optimizer, given: dict[str, Any]) -> list[str]:
    """
    What keeps ``given`` (an optimiser ``state_dict()``) from fitting ``optimizer``: group counts and settings,
    parameter counts, states only for the parameters of its groups, each state tensor of its parameter's shape and
    dtype (a step: a number), finite, sums of squares never negative. (``torch``'s ``load_state_dict`` checks only the
    counts; with TutorialSAC's flat buffers, one tensor per group, a state of the wrong size would load and fail at the
    next step, and a NaN would make every prediction NaN.)
    """
    groups = given.get("param_groups")
    states = given.get("state")
    if not isinstance(groups, list) or not isinstance(states, dict) or not all(isinstance(g, dict) for g in groups):
        return [f"{name}: not an optimizer state dict (no param_groups / state)"]
    if len(groups) != len(optimizer.param_groups):
        return [f"{name}: {len(groups)} parameter groups given, {len(optimizer.param_groups)} in this model"]
    problems = []
    parameters: dict[Any, tuple[int, th.Tensor]] = {}
    for index, (group, own_group) in enumerate(zip(groups, optimizer.param_groups)):
        ids = group.get("params", ())
        if not isinstance(ids, list) or len(ids) != len(own_group["params"]):
            given_count, own_count = len(ids) if isinstance(ids, list) else ids, len(own_group["params"])
            problems.append(f"{name} group {index}: {given_count} tensors given, {own_count} in this model")
            continue
        problems += _group_problems(name, index, group, own_group)
        parameters.update((key, (index, param)) for key, param in zip(ids, own_group["params"]))
    strangers = sorted(map(str, set(states) - set(parameters)))
    if strangers:
        problems.append(f"{name}: states for parameters {strangers[:5]}, which none of its groups holds")
    for key, (index, param) in parameters.items():
        state = states.get(key, {})
        if not isinstance(state, dict):
            problems.append(f"{name} group {index} state of parameter {key}: a {type(state).__name__}, not a dict")
            continue
        required = adam_state_keys(optimizer, index)
        if state and required is not None and set(state) != required:
            problems.append(
                f"{name} group {index} state of parameter {key}: {sorted(map(str, state))[:6]}, where "
                f"{type(optimizer).__name__} keeps {sorted(required)} (learn() reads each of them)"
            )
        for state_key, value in state.items():
            where = f"{name} group {index} state {state_key}"
            if state_key == "step" or (isinstance(value, th.Tensor) and value.dim() == 0):
                number = value.item() if isinstance(value, th.Tensor) and value.numel() == 1 else value
                ok = validation.is_finite_number(number) and 0 <= number <= MAX_STEP
                ok = ok and (state_key != "step" or float(number).is_integer())
                if not ok or (isinstance(value, th.Tensor) and not value.is_floating_point()):
                    what = "an integer in [0, 2**53]" if state_key == "step" else "a finite number >= 0"
                    problems.append(f"{where}: {str(value)[:80]}, not {what}")
                continue
            problem = tensor_problem(value, param)
            if problem and "shape" in problem and isinstance(value, th.Tensor) and value.dtype == param.dtype:
                problem = f"shape {tuple(value.shape)} given, {tuple(param.shape)} in this model"
            if problem is None and state_key in SQUARES and bool((value < 0).any()):
                problem = "negative values in a sum of squares"
            if problem:
                problems.append(f"{where}: {problem}")
    return problems
