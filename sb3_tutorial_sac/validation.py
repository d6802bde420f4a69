"""One validation path for values: the constructor's checks, also applied to every value a file gives ``load``.

:func:`check_arguments` holds the checks of ``TutorialSAC.__init__`` (same messages); :func:`check_file_values` adds
the types of SB3's state that a model file carries (counters, spaces, flags), which only a file can get wrong. Both
name the file and the field when they check a file. The size bounds of a file that is not trusted (``MAX_*``) live
here too, with :func:`check_file_sizes`, so that nothing a file describes is allocated before it is checked.
"""

from __future__ import annotations

import math
import os
import resource
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.type_aliases import TrainFreq

from sb3_tutorial_sac.policies import ENTROPY_TERMS

ENT_COEF_LOSSES: tuple[str, ...] = ("tutorial", "sb3")

# ----------------------------------------------------------------------------------------------- size bounds
# What a file that is not trusted may describe, checked before anything is allocated (trusted=True lifts them).
# Generous for any real model: the tutorial's Pendulum model is 3 observation elements, 128-wide layers, two critics,
# about 70,000 numbers in its policy and a 16 KB data member.
MAX_ELEMENTS = 2**24  # elements of one space or one array written in ``data`` (a fill included): 16.8 million
MAX_PARAMETERS = 10**8  # numbers in the policy (actor, critics, target critics), counted before it is built
MAX_CRITICS = 100  # n_critics
MAX_LAYERS = 100  # layers of one net_arch list
MAX_ENVS = 2**16  # n_envs
MAX_JSON_DEPTH = 32  # nesting of ``data`` (a file with Dict spaces and vectorised action noise: 10)
MAX_INT_DIGITS = 64  # digits of one integer in JSON (the largest a TutorialSAC file writes: a PCG64 state, 39 digits)
MAX_DATA_BYTES = 64 * 2**20  # the ``data`` member, decompressed; a replay buffer's ``meta``: 1 MiB
MAX_META_BYTES = 2**20
MAX_INFO_BYTES = 2**20  # system_info.txt
MAX_MEMBERS = 64  # members of a model zip (TutorialSAC writes 8); of a replay buffer npz, 16
MAX_TENSOR_SLACK = 2**20  # a ``*.pth`` member may be this much larger than the tensors it must hold (names, pickling)
MAX_MINIBATCH_BYTES = 2**30  # train() draws the minibatches of at most this many bytes at once (the tutorial's: 0.5 MB)
TENSOR_OVERHEAD = 256  # and this much per tensor and its key (its storage's zip entry and pickle record: about 120 bytes)


class FileValueError(ValueError):
    """A value in a file that TutorialSAC refuses: the message names the file and the field."""


# ----------------------------------------------------------------------------------------------- the constructor's


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))


def _is_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def is_finite_number(value: Any) -> bool:
    """A number (not a bool) that is finite; an integer too large for a float (10**400) is not."""
    try:
        return _is_number(value) and math.isfinite(value)
    except OverflowError:
        return False


#: Where a learning-rate schedule is checked: over the whole progress range, 1.0 (start) to 0.0 (end)
PROGRESS_POINTS = tuple(k / 20 for k in range(20, -1, -1))


def _schedule_problem(schedule: Any) -> str | None:
    """Why the schedule ``schedule`` is no learning rate over the whole progress range (None: it is one): each value a
    finite number >= 0, and > 0 at the start; SB3's ``LinearSchedule`` also with ``end_fraction > 0``."""
    end_fraction = getattr(schedule, "end_fraction", None) if type(schedule).__name__ == "LinearSchedule" else None
    if end_fraction is not None and not (is_finite_number(end_fraction) and end_fraction > 0):
        return f"its end_fraction is {end_fraction!r}, not a finite number > 0 (it divides by it)"
    for progress in PROGRESS_POINTS:
        try:
            rate = schedule(progress)
        except Exception as error:  # (a schedule of a file's values: ZeroDivisionError, OverflowError, TypeError)
            return f"at progress remaining {progress} it raises {type(error).__name__}: {str(error)[:100]}"
        if not (is_finite_number(rate) and (rate > 0 if progress == 1.0 else rate >= 0)):
            return f"at progress remaining {progress} it gives {rate!r}"
    return None


def check_positive_lr(name: str, value: Any) -> None:
    """A positive finite learning rate, or a schedule of them: checked over the whole progress range (from 1.0, where
    it must be > 0, to 0.0, where SB3's and rl-zoo3's linear schedules reach 0), never negative nor infinite."""
    if callable(value):
        problem = _schedule_problem(value)
        if problem is not None:
            raise ValueError(f"{name} must be a positive finite float or a schedule returning one, got {value!r}: {problem}")
        return
    rate = value
    if not is_finite_number(rate) or not rate > 0:
        raise ValueError(f"{name} must be a positive finite float or a schedule returning one, got {value!r}")


def check_positive_int(name: str, value: Any) -> None:
    if not _is_int(value) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def parse_ent_coef(ent_coef: str | float) -> tuple[bool, float]:
    """
    Read SB3's ``ent_coef`` convention: ``"auto"`` (learned, from 1.0), ``"auto_<x>"`` (learned, from x > 0)
    or a number >= 0 (fixed).

    :return: (learned, initial or fixed value)
    """
    if isinstance(ent_coef, str):
        if ent_coef == "auto":
            return True, 1.0
        if ent_coef.startswith("auto_"):
            try:
                value = float(ent_coef[len("auto_") :])
            except ValueError:
                value = float("nan")
            if value > 0 and math.isfinite(value):
                return True, value
        else:
            try:
                value = float(ent_coef)
            except ValueError:
                value = float("nan")
            if value >= 0 and math.isfinite(value):
                return False, value
    elif _is_number(ent_coef):
        if ent_coef >= 0 and math.isfinite(ent_coef):
            return False, float(ent_coef)
    raise ValueError(
        f"ent_coef must be 'auto' (learned from 1.0), 'auto_<x>' with x > 0 (learned from x; the tutorial: "
        f"'auto_0.01'), or a fixed number >= 0; got {ent_coef!r}"
    )


def _gradient_steps(name: str, value: Any) -> None:
    if not _is_int(value) or value < -1:
        raise ValueError(f"gradient_steps must be -1 (as many as env steps collected) or >= 0, got {value!r}")


def _reward_scale(name: str, value: Any) -> None:
    if not (_is_number(value) and math.isfinite(value) and value != 0):
        raise ValueError(f"reward_scale must be a finite non-zero number (tutorial: 1/8; 1 turns it off), got {value!r}")


def _reward_shift(name: str, value: Any) -> None:
    if not (_is_number(value) and math.isfinite(value)):
        raise ValueError(f"reward_shift must be a finite number (tutorial: 8.0; 0 turns it off), got {value!r}")


def _one_of(choices: tuple[str, ...], default: str) -> Callable[[str, Any], None]:
    def check(name: str, value: Any) -> None:
        if not (isinstance(value, str) and value in choices):
            raise ValueError(f"{name} must be one of {choices} ({default}), got {value!r}")

    return check


# What TutorialSAC(engine=...) accepts, as the engines' registry says now: sb3_tutorial_sac.engines sets it when it is
# imported (it imports this module, so this module does not import it)
def engine_names() -> tuple[str, ...]:
    return ("auto",)


def _engine(name: str, value: Any) -> None:
    _one_of(engine_names(), "default 'auto'")(name, value)


def _target_entropy(name: str, value: Any) -> None:
    if not (value == "auto" if isinstance(value, str) else _is_number(value) and math.isfinite(value)):
        raise ValueError(f"target_entropy must be 'auto' (-dim(A)) or a finite number, got {value!r}")


def _in_unit_interval(name: str, value: Any) -> None:
    # gamma and tau: [0, 1], as SB3 accepts them (tau=0: the targets are never moved)
    if not (_is_number(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")


def check_sde(use_sde: Any, sde_sample_freq: Any, use_sde_at_warmup: Any) -> None:
    """Refuse SB3's gSDE arguments unless at SAC's defaults (``False``, ``-1``, ``False``): gSDE is outside the variant."""
    given = {
        name: value
        for name, value, default in (
            ("use_sde", use_sde, False),
            ("sde_sample_freq", sde_sample_freq, -1),
            ("use_sde_at_warmup", use_sde_at_warmup, False),
        )
        if value != default
    }
    if given:
        # Tutorial rule: the actor's std is a Linear + Softplus head, no log-std (gSDE draws its noise from a log-std)
        raise ValueError(
            f"{given}: gSDE (generalised State-Dependent Exploration) is outside the tutorial's variant, whose actor "
            "draws its noise from a Softplus std head, not SB3's log-std (docs/variant.md); leave use_sde=False, "
            "sde_sample_freq=-1, use_sde_at_warmup=False. For more exploration use ent_coef (a larger or learned "
            "alpha) or action_noise; for gSDE use SB3's SAC"
        )


def resolve_handle_timeout_termination(argument: bool | None, replay_buffer_kwargs: dict[str, Any]) -> bool:
    """
    One value from the constructor's ``handle_timeout_termination`` and ``replay_buffer_kwargs``'s (SB3's spelling):
    the argument if given, else the kwarg if given, else ``False`` (tutorial); both given and different: an error.
    """
    in_kwargs = replay_buffer_kwargs.get("handle_timeout_termination")
    if argument is not None and in_kwargs is not None and bool(argument) != bool(in_kwargs):
        raise ValueError(
            f"handle_timeout_termination={argument!r} and replay_buffer_kwargs['handle_timeout_termination']={in_kwargs!r} "
            "disagree: give one of them (or the same value in both)"
        )
    # Tutorial rule: the time limit is a terminal by default (SB3: handle_timeout_termination=True)
    return bool(argument if argument is not None else in_kwargs if in_kwargs is not None else False)


#: The constructor's checks, in the order it runs them (the first bad argument is the one named)
ARGUMENT_CHECKS: dict[str, Callable[[str, Any], None]] = {
    "learning_rate": check_positive_lr,
    "critic_learning_rate": check_positive_lr,
    "ent_coef_learning_rate": check_positive_lr,
    "batch_size": check_positive_int,
    "buffer_size": check_positive_int,
    "target_update_interval": check_positive_int,
    "gradient_steps": _gradient_steps,
    "reward_scale": _reward_scale,
    "reward_shift": _reward_shift,
    "entropy_term": _one_of(ENTROPY_TERMS, "tutorial: 'tutorial'"),
    "engine": _engine,
    "ent_coef_loss": _one_of(ENT_COEF_LOSSES, "tutorial: 'tutorial'"),
    "ent_coef": lambda name, value: parse_ent_coef(value) and None,
    "target_entropy": _target_entropy,
    "gamma": _in_unit_interval,
    "tau": _in_unit_interval,
}


def _run(checks: Mapping[str, Callable[[str, Any], None]], values: Mapping[str, Any], where: str | None) -> None:
    for name, check in checks.items():
        if name not in values:
            continue
        try:
            check(name, values[name])
        except (ValueError, TypeError) as error:  # TypeError: a schedule that fails on a file's value
            if where is None:
                raise
            raise FileValueError(f"{where}, field {name!r}: {error}") from None


def check_arguments(values: Mapping[str, Any], where: str | None = None) -> None:
    """
    The checks of ``TutorialSAC.__init__`` on those of ``values`` it knows (the others are left alone).

    :param values: argument (or attribute) names and values
    :param where: the file the values come from: then a :class:`FileValueError` names it and the field
    """
    _run(ARGUMENT_CHECKS, values, where)


# ----------------------------------------------------------------------------------------------- a file's state


def _kind(test: Callable[[Any], bool], what: str) -> Callable[[str, Any], None]:
    def check(name: str, value: Any) -> None:
        if not test(value):
            raise ValueError(f"{name} must be {what}, got {value!r}"[:500])

    return check


def _train_freq(value: Any) -> bool:
    if isinstance(value, TrainFreq):
        return _is_int(value.frequency) and value.frequency > 0 and value.unit.value in ("step", "episode")
    if isinstance(value, tuple) and len(value) == 2:
        return _is_int(value[0]) and value[0] > 0 and value[1] in ("step", "episode")
    return _is_int(value) and value > 0


def _counter(value: Any) -> bool:
    return _is_int(value) and 0 <= value < 2**62


def _observation(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(key, str) and isinstance(item, np.ndarray) for key, item in value.items())
    return value is None or isinstance(value, np.ndarray)


_bool = _kind(lambda value: isinstance(value, (bool, np.bool_)), "True or False")
#: What ``replay_buffer_kwargs`` may hold in a file: SB3's timeout switch and its n-step buffer's arguments
BUFFER_KWARGS: dict[str, Callable[[Any], bool]] = {
    "handle_timeout_termination": lambda value: isinstance(value, bool),
    "n_steps": lambda value: _is_int(value) and 0 < value <= 1000,
    "gamma": lambda value: _is_number(value) and 0 <= value <= 1,
}
#: What SB3's state in a file must be (the constructor's arguments not checked by ``__init__`` included)
FILE_CHECKS: dict[str, Callable[[str, Any], None]] = {
    "verbose": _kind(lambda value: _is_int(value) and 0 <= value <= 2, "0, 1 or 2"),
    # (what numpy's legacy seeding, which SB3's set_random_seed calls, accepts)
    "seed": _kind(lambda value: value is None or (_is_int(value) and 0 <= value < 2**32), "None or an integer in [0, 2**32)"),
    "learning_starts": _kind(_counter, "an integer >= 0"),
    "train_freq": _kind(_train_freq, "a positive integer or (n > 0, 'step' or 'episode')"),
    "optimize_memory_usage": _bool,
    "handle_timeout_termination": _bool,
    "sample_with_replacement": _bool,
    "check_finite": _bool,
    "_stats_window_size": _kind(lambda value: _is_int(value) and 0 < value <= 10**6, "an integer in [1, 10**6]"),
    "tensorboard_log": _kind(lambda value: value is None or isinstance(value, str), "None or a path"),
    "policy_kwargs": _kind(lambda value: isinstance(value, dict) and all(isinstance(k, str) for k in value), "a dict"),
    "replay_buffer_kwargs": _kind(
        lambda value: (
            value is None
            or (
                isinstance(value, dict)
                and all(key in BUFFER_KWARGS and BUFFER_KWARGS[key](item) for key, item in value.items())
            )
        ),
        f"None or a dict of {sorted(BUFFER_KWARGS)} (other buffer arguments load only with trusted=True)",
    ),
    "n_steps": _kind(lambda value: _is_int(value) and 0 < value <= 1000, "an integer in [1, 1000]"),
    "action_noise": _kind(lambda value: value is None or isinstance(value, ActionNoise), "None or an action noise"),
    "observation_space": _kind(lambda value: isinstance(value, spaces.Space), "a space"),
    "action_space": _kind(lambda value: isinstance(value, spaces.Box), "a Box"),
    "n_envs": _kind(lambda value: _is_int(value) and 0 < value <= MAX_ENVS, f"an integer in [1, {MAX_ENVS}]"),
    "num_timesteps": _kind(_counter, "an integer >= 0"),
    "_total_timesteps": _kind(_counter, "an integer >= 0"),
    "_num_timesteps_at_start": _kind(_counter, "an integer >= 0"),
    "_n_updates": _kind(_counter, "an integer >= 0"),
    "_episode_num": _kind(_counter, "an integer >= 0"),
    "_current_progress_remaining": _kind(lambda value: _is_number(value) and math.isfinite(value), "a finite number"),
    "ep_info_buffer": _kind(
        lambda value: value is None or (isinstance(value, (list, deque)) and all(isinstance(i, dict) for i in value)),
        "None or a list of dicts",
    ),
    "ep_success_buffer": _kind(lambda value: value is None or isinstance(value, (list, deque)), "None or a list"),
    "_last_obs": _kind(_observation, "None, an array or a dict of arrays"),
    "_last_original_obs": _kind(_observation, "None, an array or a dict of arrays"),
    "_last_episode_starts": _kind(lambda value: value is None or isinstance(value, np.ndarray), "None or an array"),
}


#: SB3's gSDE arguments, which only their defaults pass (:func:`check_sde`), of the defaults' types in a file
SDE_DEFAULTS: dict[str, Any] = {"use_sde": False, "sde_sample_freq": -1, "use_sde_at_warmup": False}


def _sde(name: str, value: Any) -> None:
    if value != SDE_DEFAULTS[name]:
        check_sde(**{**SDE_DEFAULTS, name: value})
    if type(value) is not type(SDE_DEFAULTS[name]):
        raise ValueError(f"{name} must be {SDE_DEFAULTS[name]!r} (gSDE is outside the tutorial's variant), got {value!r}")


def check_agreement(values: Mapping[str, Any], where: str | None = None) -> None:
    """
    Values that must agree with each other, as the constructor and SB3's buffer check them: ``handle_timeout_termination``
    as an attribute and in ``replay_buffer_kwargs``; not both it and ``optimize_memory_usage`` (SB3's ``ReplayBuffer``
    refuses them together, with a ``ValueError`` that names no file).
    """
    kwargs = values.get("replay_buffer_kwargs")
    if not isinstance(kwargs, dict):
        kwargs = {}
    field = "handle_timeout_termination"
    try:
        timeouts = resolve_handle_timeout_termination(values.get("handle_timeout_termination"), kwargs)
        field = "optimize_memory_usage"
        if values.get("optimize_memory_usage") is True and timeouts:
            raise ValueError("optimize_memory_usage=True and handle_timeout_termination=True: SB3's ReplayBuffer supports one")
    except ValueError as error:
        if where is None:
            raise
        raise FileValueError(f"{where}, field {field!r}: {error}") from None


def check_file_values(values: Mapping[str, Any], where: str) -> None:
    """
    The constructor's checks (:func:`check_arguments`, :func:`check_sde`, :func:`check_agreement`) and the types of
    SB3's state, on the attributes a file gives.

    :param values: the attributes, as ``load`` will set them
    :param where: the file, named in the :class:`FileValueError`
    """
    check_arguments(values, where)
    _run(FILE_CHECKS, values, where)
    _run(dict.fromkeys(SDE_DEFAULTS, _sde), values, where)
    check_agreement(values, where)


# ----------------------------------------------------------------------------------------------- sizes


def check_elements(shape: tuple[int, ...], where: str) -> None:
    """A ``ValueError`` if ``shape`` has a negative size or more than ``MAX_ELEMENTS`` elements (before allocating)."""
    if any(n < 0 for n in shape) or math.prod(shape) > MAX_ELEMENTS:
        raise FileValueError(
            f"{where}: an array of shape {shape[:8]}, more than the {MAX_ELEMENTS} elements a file that is not trusted may "
            "describe (trusted=True lifts the bound)"
        )


def memory_limit() -> int:
    """The bytes this process could still allocate: the physical memory, or what is left of the address-space limit
    (the limit less what the process has mapped now) if lower."""
    try:
        limit = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not on this platform
        limit = 2**62
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return min(limit, max(soft - mapped_bytes(), 0)) if soft != resource.RLIM_INFINITY else limit


def mapped_bytes() -> int:
    """The address space this process has mapped now (``VmSize``; 0 where ``/proc`` does not say)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def replay_buffer_bytes(buffer_size: int, observation_space: spaces.Space, action_space: spaces.Space, optimize: bool) -> int:
    """What SB3's replay buffer of ``buffer_size`` transitions allocates (observations twice unless ``optimize``)."""
    observations = observation_space.spaces.values() if isinstance(observation_space, spaces.Dict) else [observation_space]
    per_row = sum(math.prod(space.shape or (1,)) * np.dtype(space.dtype or np.float32).itemsize for space in observations)
    per_row = per_row * (1 if optimize else 2) + math.prod(action_space.shape or (1,)) * 4 + 3 * 4
    return buffer_size * per_row


def check_replay_buffer_size(
    buffer_size: int, observation_space: spaces.Space, action_space: spaces.Space, optimize: bool, where: str, fix: str
) -> None:
    """A ``ValueError`` if a replay buffer of ``buffer_size`` transitions needs more memory than this process can have."""
    needed, limit = replay_buffer_bytes(buffer_size, observation_space, action_space, optimize), memory_limit()
    if needed > limit:
        raise FileValueError(
            f"{where}: a replay buffer of buffer_size={buffer_size} needs {needed / 2**30:.1f} GiB, more than this process "
            f"can allocate ({limit / 2**30:.1f} GiB: the physical memory, or what is left of the address-space limit). {fix}"
        )


def check_file_sizes(values: Mapping[str, Any], where: str) -> None:
    """
    The size bounds a file that is not trusted must keep, on the attributes it gives (before anything is built):
    ``n_critics``, the length of each ``net_arch`` list, the spaces' elements and the replay buffer's memory.
    """
    kwargs = values.get("policy_kwargs") or {}
    n_critics = kwargs.get("n_critics", 2)
    if not (_is_int(n_critics) and 0 < n_critics <= MAX_CRITICS):
        raise FileValueError(
            f"{where}, field 'policy_kwargs': n_critics must be an integer in [1, {MAX_CRITICS}], got {n_critics!r}"
        )
    net_arch = kwargs.get("net_arch")
    lists = list(net_arch.values()) if isinstance(net_arch, dict) else [net_arch] if net_arch is not None else []
    for layers in lists:
        if not (isinstance(layers, list) and len(layers) <= MAX_LAYERS and all(_is_int(n) and n > 0 for n in layers)):
            raise FileValueError(
                f"{where}, field 'policy_kwargs': net_arch must hold lists of at most {MAX_LAYERS} positive layer widths, "
                f"got {net_arch!r}"[:500]
            )
    for name in ("observation_space", "action_space"):
        space = values[name]
        for sub in space.spaces.values() if isinstance(space, spaces.Dict) else [space]:
            check_elements(tuple(sub.shape or ()), f"{where}, field {name!r}")
    gradient_steps = values.get("gradient_steps", -1)
    if _is_int(gradient_steps) and gradient_steps > 0:
        # train() keeps a row of statistics per gradient step of a call (the minibatches: in bounded chunks)
        needed, limit = int(gradient_steps) * (n_critics + 8) * 4 * 3, memory_limit()
        if needed > limit:
            raise FileValueError(
                f"{where}, field 'gradient_steps': {gradient_steps} gradient steps per train() call need "
                f"{needed / 2**30:.1f} GiB for their statistics, more than this process can allocate "
                f"({limit / 2**30:.1f} GiB). Pass load(path, gradient_steps=...), or trusted=True."
            )
    fix = "Pass a smaller buffer_size to load (load(path, buffer_size=...)), or trusted=True."
    check_replay_buffer_size(
        int(values.get("buffer_size", 1)),
        values["observation_space"],
        values["action_space"],
        bool(values.get("optimize_memory_usage", False)),
        f"{where}, field 'buffer_size'",
        fix,
    )


def check_action_space(action_space: spaces.Space) -> None:
    """TutorialSAC's action spaces: a Box with finite bounds, high > low, within float32's range (checked before SB3's
    assertions, with a clearer error)."""
    if not isinstance(action_space, spaces.Box):
        raise ValueError(
            f"TutorialSAC supports only continuous Box action spaces with finite bounds; the action_space "
            f"is {action_space} ({type(action_space).__name__}). Discrete, MultiDiscrete and MultiBinary "
            "action spaces are not supported."
        )
    if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
        raise ValueError(
            f"TutorialSAC needs finite bounds on the Box action_space (actions are tanh-squashed onto "
            f"[low, high]); got low={action_space.low}, high={action_space.high}"
        )
    if not np.all(action_space.high > action_space.low):
        raise ValueError(f"The Box action_space needs high > low in every dimension; got {action_space}")
    float32_max = float(np.finfo(np.float32).max)
    if np.any(np.abs(action_space.low) > float32_max) or np.any(np.abs(action_space.high) > float32_max):
        raise ValueError(
            f"The Box action_space bounds must lie within float32's range (+-{float32_max:.4g}): the networks "
            f"compute in float32; got low={action_space.low}, high={action_space.high}"
        )


def check_n_steps(
    n_steps: Any, optimize_memory_usage: bool, replay_buffer_class: type | None, observation_space: spaces.Space | None = None
) -> None:
    """SB3's n-step returns (``n_steps > 1``, SB3's ``NStepReplayBuffer`` when ``replay_buffer_class`` is None): a
    positive int, not with ``optimize_memory_usage``, not for Dict observations (SB3 would assert)."""
    check_positive_int("n_steps", n_steps)
    if n_steps > 1 and optimize_memory_usage and replay_buffer_class is None:
        raise ValueError(f"n_steps={n_steps} (SB3's NStepReplayBuffer) does not support optimize_memory_usage=True: drop one")
    if n_steps > 1 and replay_buffer_class is None and isinstance(observation_space, spaces.Dict):
        # SB3 asserts (no n-step buffer for Dict observations in SB3 2.9)
        raise ValueError(f"n_steps={n_steps}: SB3's n-step returns do not support Dict observation spaces yet")
