"""Warnings for the user's line, and the settings TutorialSAC warns about (combinations that would pass silently).

:func:`warn` points a warning at the first frame outside this package and Stable-Baselines3 (the user's
``TutorialSAC(...)`` or ``model.learn(...)`` line, or rl-zoo3's, which calls them), whatever the depth of the call
inside: a fixed ``stacklevel`` points into SB3's ``off_policy_algorithm.py`` when SB3 is the caller.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import warnings
from typing import Any

import stable_baselines3
import torch

# Frames in these folders (this package, SB3, torch) and files (the standard library's helpers that call back into
# them: context managers, wrappers) are not the user's line
_INTERNAL = tuple(
    os.path.dirname(os.path.abspath(module.__file__)) + os.sep  # type: ignore[arg-type,type-var,operator]
    for module in (sys.modules[__name__.rpartition(".")[0]], stable_baselines3, torch)
)
_INTERNAL_FILES = frozenset(os.path.abspath(module.__file__) for module in (contextlib, functools))  # type: ignore[type-var]


def _internal(filename: str) -> bool:
    path = os.path.abspath(filename)
    return path.startswith(_INTERNAL) or path in _INTERNAL_FILES


class TutorialDefault(float):
    """A default of TutorialSAC's signature that is the tutorial's value (a float, equal to it) and says, by identity,
    that the user did not pass it: ``reward_shift is REWARD_SHIFT`` only when the argument was left out."""

    __slots__ = ()


# The tutorial's values (docs/variant.md), as TutorialSAC's defaults
REWARD_SHIFT = TutorialDefault(8.0)
REWARD_SCALE = TutorialDefault(1 / 8)
ENT_COEF_LEARNING_RATE = TutorialDefault(3e-4)
# The one task the reward normalisation (r + 8) / 8 is made for (rewards in [-16.3, 0])
TUTORIAL_ENV = "Pendulum-v1"


def user_stacklevel() -> int:
    """The ``stacklevel`` for a ``warnings.warn`` made by the caller of this function that names the user's line: the
    first frame, from the caller outwards, outside this package, SB3 and torch."""
    level, frame = 1, sys._getframe(1)  # stacklevel 1: the function that calls warnings.warn
    while frame is not None and _internal(frame.f_code.co_filename):
        frame, level = frame.f_back, level + 1  # type: ignore[assignment]
    return level


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message)`` attributed to the user's line (:func:`user_stacklevel`)."""
    warnings.warn(message, category, stacklevel=user_stacklevel())


def env_id(env: Any) -> str | None:
    """The registered id of a VecEnv's first env (``gymnasium.make``'s spec), or ``None`` (no spec, or unknown)."""
    try:
        spec = env.get_attr("spec", indices=0)[0]
    except Exception:  # any VecEnv that cannot say: treated as an env without an id
        return None
    return getattr(spec, "id", None)


def warn_about_settings(
    env: Any, reward_shift: float, reward_scale: float, ent_coef: str | float, ent_coef_loss: str, ent_coef_learning_rate: Any
) -> None:
    """
    Warn (at the user's line) about TutorialSAC's settings that would otherwise act silently:

    - the tutorial's reward normalisation ``(r + 8) / 8`` (Pendulum-v1's) on any other env, when neither
      ``reward_shift`` nor ``reward_scale`` was passed;
    - ``ent_coef="auto"`` (alpha from 1.0) with the tutorial's alpha-scaled temperature loss;
    - a fixed ``ent_coef`` with ``ent_coef_loss="sb3"`` or an ``ent_coef_learning_rate`` (both unused then).

    :param env: the model's VecEnv (``None``: the reward check is skipped)
    """
    if env is not None and reward_shift is REWARD_SHIFT and reward_scale is REWARD_SCALE:
        name = env_id(env)
        if name != TUTORIAL_ENV:
            warn(
                f"TutorialSAC normalises sampled rewards as (r + 8) / 8 by default, the tutorial's rule for {TUTORIAL_ENV} "
                f"(rewards in [-16.3, 0]); this env is {name or 'not a registered one'}. Set reward_shift and "
                "reward_scale for its rewards (reward_shift=0.0, reward_scale=1.0 turns the normalisation off; a shift "
                "rewards or punishes every step alive where episodes end early). Passing either one silences this warning."
            )
    learned = isinstance(ent_coef, str) and ent_coef.startswith("auto")
    if ent_coef == "auto" and ent_coef_loss == "tutorial":
        warn(
            "ent_coef='auto' starts alpha at 1.0 (SB3's default) with the tutorial's temperature loss, whose gradient is "
            "scaled by alpha: alpha cannot come down fast enough (in the project's ablation, 0 of 10 seeds reached -200 on "
            "Pendulum-v1 in 20,000 steps). The tutorial starts at 0.01 (ent_coef='auto_0.01', the default); pair "
            "ent_coef='auto' with ent_coef_loss='sb3' (SB3's loss)."
        )
    if not learned:
        ignored = [name for name, unused in (
            ("ent_coef_loss='sb3'", ent_coef_loss == "sb3"),
            (f"ent_coef_learning_rate={ent_coef_learning_rate!r}", ent_coef_learning_rate is not ENT_COEF_LEARNING_RATE),
        ) if unused]  # fmt: skip
        if ignored:
            warn(
                f"ent_coef={ent_coef!r} fixes alpha, so {' and '.join(ignored)} (the temperature's loss and optimiser) "
                "are not used. Pass ent_coef='auto_<x>' to learn alpha from x."
            )
