"""Values as data: what a TutorialSAC file holds in place of pickles (:mod:`sb3_tutorial_sac.persistence`).

:func:`to_data` writes a value as JSON (numbers, strings, lists, dicts) or as a tagged description (arrays, tuples,
spaces, classes by name from an allow-list, SB3's and rl-zoo3's schedules, action noise); :func:`from_data` reads
it back without importing or unpickling anything named by the file, unless ``trusted=True``; the size of every array
is checked (``validation.MAX_ELEMENTS``) before it is allocated.
"""

from __future__ import annotations

import base64
import math
import operator
from collections import deque
from collections.abc import Callable
from typing import Any

import cloudpickle
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common import buffers as sb3_buffers
from stable_baselines3.common import torch_layers
from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise, VectorizedActionNoise
from stable_baselines3.common.type_aliases import TrainFreq
from stable_baselines3.common.utils import ConstantSchedule, FloatSchedule, LinearSchedule

from sb3_tutorial_sac import policies, validation
from sb3_tutorial_sac.validation import FileValueError

# Where a class named in a file may come from, and what it must be: nothing is imported from a file's strings
CLASS_SOURCES = {module.__name__: module for module in (th.nn, th.optim, torch_layers, sb3_buffers, policies)}
CLASS_BASES = (th.nn.Module, th.optim.Optimizer, sb3_buffers.ReplayBuffer)
SCHEDULE_FIELDS = {  # SB3's schedules and rl-zoo3's lin_<x> (rl_zoo3.utils.SimpleLinearSchedule): plain fields
    "ConstantSchedule": ("val",),
    "FloatSchedule": ("value_schedule",),
    "LinearSchedule": ("start", "end", "end_fraction"),
    "SimpleLinearSchedule": ("initial_value",),
}
NOISES = {cls.__name__: cls for cls in (NormalActionNoise, OrnsteinUhlenbeckActionNoise, VectorizedActionNoise)}
PICKLED = (":pickled:", ":serialized:")  # ours (save(include=[...])) and SB3's: cloudpickle, base64


class NotDataError(TypeError):
    """A value that can only be pickled."""


def to_data(value: Any) -> Any:
    """
    ``value`` as JSON data: plain values as they are, others as a one-key dict naming what they are (``:array:``,
    ``:tuple:``, ``:class:``, ``:space:``, ``:schedule:``, ``:noise:``). :class:`NotDataError` for anything else.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.ndarray, np.generic, th.Tensor)):
        return _array_data(value)
    if isinstance(value, TrainFreq):
        return {":tuple:": [value.frequency, value.unit.value]}
    if isinstance(value, (list, deque)):
        return [to_data(item) for item in value]
    if isinstance(value, tuple):
        return {":tuple:": [to_data(item) for item in value]}
    if isinstance(value, dict):
        if not all(isinstance(key, str) and not key.startswith(":") for key in value):
            raise NotDataError(f"a dict with keys {list(value)[:5]} (only strings not starting with ':' are written)")
        return {key: to_data(item) for key, item in value.items()}
    return _object_data(value)


def _array_data(value: np.ndarray | np.generic | th.Tensor) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    value = value.detach().cpu().numpy() if isinstance(value, th.Tensor) else value
    if value.dtype.kind not in "biuf":
        raise NotDataError(f"an array of dtype {value.dtype}")
    flat, body = value.reshape(-1), {"dtype": value.dtype.str, "shape": list(value.shape)}
    if flat.size > 0 and np.array_equal(flat, np.full_like(flat, flat[0]), equal_nan=value.dtype.kind == "f"):
        body["fill"] = flat[0].item()  # a constant array (most Box bounds) in a few bytes
    else:
        body["base64"] = base64.b64encode(np.ascontiguousarray(value).tobytes()).decode()
    return {":array:": body}


def _object_data(value: Any) -> Any:
    if isinstance(value, type):
        name = value.__name__
        for source, module in CLASS_SOURCES.items():
            if issubclass(value, CLASS_BASES) and getattr(module, name, None) is value:
                return {":class:": f"{source}.{name}"}
        raise NotDataError(f"the class {value.__module__}.{value.__qualname__}, from none of {sorted(CLASS_SOURCES)}")
    if isinstance(value, spaces.Space):
        return {":space:": _space_data(value)}
    kind = type(value).__name__
    if kind in SCHEDULE_FIELDS and type(value).__module__ in ("stable_baselines3.common.utils", "rl_zoo3.utils"):
        return {":schedule:": {"class": kind, **{field: to_data(getattr(value, field)) for field in SCHEDULE_FIELDS[kind]}}}
    if NOISES.get(kind) is type(value):
        fields = {key.lstrip("_"): item for key, item in vars(value).items()}
        if "dtype" in fields:
            fields["dtype"] = np.dtype(fields["dtype"]).str
        return {":noise:": {"class": kind, **{key: to_data(item) for key, item in fields.items()}}}
    raise NotDataError(f"a {type(value).__module__}.{type(value).__qualname__}")


def _space_data(space: spaces.Space) -> dict[str, Any]:
    if type(space) is spaces.Box:
        return {"class": "Box", "low": to_data(space.low), "high": to_data(space.high), "dtype": space.dtype.str}
    if type(space) is spaces.Discrete:
        return {"class": "Discrete", "n": int(space.n), "start": int(space.start)}
    if type(space) is spaces.MultiDiscrete:
        return {"class": "MultiDiscrete", "nvec": to_data(space.nvec), "start": to_data(space.start), "dtype": space.dtype.str}
    if type(space) is spaces.MultiBinary:
        return {"class": "MultiBinary", "n": to_data(space.n)}
    if type(space) is spaces.Dict:
        return {"class": "Dict", "spaces": {key: to_data(sub) for key, sub in space.spaces.items()}}
    raise NotDataError(f"a {type(space).__name__} space (Box, Discrete, MultiDiscrete, MultiBinary and Dict are data)")


def has_pickle(value: Any) -> bool:
    """Whether ``value`` (JSON data) holds a pickled object anywhere."""
    if isinstance(value, list):
        return any(has_pickle(item) for item in value)
    return isinstance(value, dict) and (any(tag in value for tag in PICKLED) or any(map(has_pickle, value.values())))


def from_data(value: Any, where: str, trusted: bool = False) -> Any:
    """
    The value :func:`to_data` described. Nothing is imported or unpickled: classes come from ``CLASS_SOURCES``, other
    objects are built from their fields; a pickled value is a ``ValueError``, or unpickled if ``trusted``.

    :param where: the field, named in errors
    """
    if isinstance(value, list):
        return [from_data(item, f"{where}[{i}]", trusted) for i, item in enumerate(value)]
    if not isinstance(value, dict):
        return value
    if not any(key.startswith(":") for key in value):
        return {key: from_data(item, f"{where}.{key}", trusted) for key, item in value.items()}
    pickled = [value[tag] for tag in PICKLED if tag in value]
    if pickled:
        if not trusted:
            raise ValueError(f"{where} is a pickled object, read only with trusted=True")
        return cloudpickle.loads(base64.b64decode(pickled[0]))
    (tag, body), *others = value.items()
    if others or tag not in DECODERS:
        raise ValueError(f"{where}: unknown description {sorted(value)[:3]}")
    try:
        return DECODERS[tag](body, where, trusted)
    except FileValueError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, AssertionError, IndexError, OverflowError) as error:
        raise ValueError(f"{where}: not a valid {tag} description ({error!r})"[:600]) from error


def _array(body: dict[str, Any], where: str, trusted: bool) -> np.ndarray:
    if not (isinstance(body.get("dtype"), str) and isinstance(body.get("shape"), list)):
        raise ValueError("an array needs a dtype string and a shape list")
    dtype, shape = np.dtype(body["dtype"]), tuple(operator.index(n) for n in body["shape"])
    if dtype.kind not in "biuf" or dtype.shape:
        raise ValueError(f"dtype {dtype}")
    if not trusted:  # the size a file describes is checked before anything is allocated (a fill of 10**9 elements)
        validation.check_elements(shape, where)
    if "fill" in body:
        if not isinstance(body["fill"], (bool, int, float)):
            raise ValueError(f"fill {body['fill']!r}"[:200])
        return np.full(shape, body["fill"], dtype=dtype)
    if not isinstance(body.get("base64"), str) or len(body["base64"]) != 4 * math.ceil(math.prod(shape) * dtype.itemsize / 3):
        raise ValueError(f"base64 of another length than {math.prod(shape)} elements of {dtype}")
    return np.frombuffer(base64.b64decode(body["base64"], validate=True), dtype=dtype).reshape(shape).copy()


def _class(name: str, where: str, trusted: bool) -> type:
    source, _, attribute = name.rpartition(".")
    found = getattr(CLASS_SOURCES[source], attribute, None) if source in CLASS_SOURCES else None
    if not (isinstance(found, type) and issubclass(found, CLASS_BASES)):
        raise ValueError(f"{name!r} is not a class of {sorted(CLASS_SOURCES)}")
    return found


def _space(body: dict[str, Any], where: str, trusted: bool) -> spaces.Space:
    kind, fields = (
        body["class"],
        {key: from_data(item, f"{where}.{key}", trusted) for key, item in body.items() if key != "class"},
    )
    if kind == "Box":
        return spaces.Box(low=fields["low"], high=fields["high"], dtype=np.dtype(fields["dtype"]))
    if kind == "Discrete":
        return spaces.Discrete(int(fields["n"]), start=int(fields["start"]))
    if kind == "MultiDiscrete":
        return spaces.MultiDiscrete(fields["nvec"], dtype=np.dtype(fields["dtype"]), start=fields["start"])
    if kind == "MultiBinary":
        return spaces.MultiBinary(fields["n"])
    if kind == "Dict" and all(isinstance(sub, spaces.Space) for sub in fields["spaces"].values()):
        return spaces.Dict(fields["spaces"])
    raise ValueError(f"space {kind!r}")


def _schedule(body: dict[str, Any], where: str, trusted: bool) -> Callable[[float], float]:
    kind, fields = body["class"], {key: from_data(item, where, trusted) for key, item in body.items() if key != "class"}
    if not all(isinstance(item, (int, float)) or type(item).__name__ in SCHEDULE_FIELDS for item in fields.values()):
        raise ValueError(f"{kind} of {fields}: numbers or schedules only")
    if kind == "SimpleLinearSchedule":
        try:
            from rl_zoo3.utils import SimpleLinearSchedule

            return SimpleLinearSchedule(fields["initial_value"])
        except ImportError:  # without rl-zoo3, the same line from initial_value to 0
            return LinearSchedule(fields["initial_value"], 0.0, 1.0)
    return {"ConstantSchedule": ConstantSchedule, "FloatSchedule": FloatSchedule, "LinearSchedule": LinearSchedule}[kind](
        **fields
    )


def _noise(body: dict[str, Any], where: str, trusted: bool) -> Any:
    kind, fields = body["class"], {key: from_data(item, where, trusted) for key, item in body.items() if key != "class"}
    if kind == "VectorizedActionNoise":
        if not (isinstance(fields["noises"], list) and len(fields["noises"]) == fields["n_envs"] <= validation.MAX_ENVS):
            raise ValueError(f"n_envs {fields['n_envs']!r} and {len(fields['noises'])} noises")
        vectorized = VectorizedActionNoise(fields["base_noise"], fields["n_envs"])
        if [type(item) for item in fields["noises"]] != [type(vectorized.base_noise)] * vectorized.n_envs:
            raise ValueError(f"noises {fields['noises']} for {vectorized}")
        vectorized._noises = fields["noises"]  # as they are (the setter would reset them)
        return vectorized
    common = dict(mean=fields["mu"], sigma=fields["sigma"], dtype=np.dtype(fields["dtype"]))
    if kind == "NormalActionNoise":
        return NormalActionNoise(**common)
    noise = OrnsteinUhlenbeckActionNoise(
        **common, theta=fields["theta"], dt=fields["dt"], initial_noise=fields["initial_noise"]
    )
    noise.noise_prev = fields["noise_prev"]
    return noise


DECODERS: dict[str, Callable[[Any, str, bool], Any]] = {
    ":array:": _array,
    ":tuple:": lambda body, where, trusted: tuple(from_data(body, where, trusted)),
    ":class:": _class,
    ":space:": _space,
    ":schedule:": _schedule,
    ":noise:": _noise,
}
