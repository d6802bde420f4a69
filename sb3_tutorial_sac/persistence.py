"""Save and load TutorialSAC as data: loading a file never runs code from it, unless the caller says it trusts it.

A model file is a zip in SB3's layout. ``data`` is plain JSON written from an allow-list (the constructor's arguments,
SB3's counters, the spaces, the policy class, the random generators' states); the networks, the optimiser states and
log-alpha are ``*.pth`` tensors, read with ``torch.load(weights_only=True)``. ``_setup_model`` rebuilds everything else.
A replay buffer file is an npz (its stored rows and a JSON ``meta``), read with ``np.load(allow_pickle=False)``.
What is not data (a VecEnv, a custom class, a schedule function) is pickled only where ``save(include=[...])`` names
it, and such a file, like SB3's own format, loads only with ``trusted=True``. Also here: atomic writes, the random
generators' states, and the all-or-nothing checks of ``set_parameters``.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import inspect
import io
import json
import os
import pathlib
import random
import uuid
import warnings
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import cloudpickle
import numpy as np
import stable_baselines3 as sb3
import torch as th
from stable_baselines3.common import buffers as sb3_buffers
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.preprocessing import get_action_dim, get_obs_shape
from stable_baselines3.common.save_util import json_to_data, open_path, recursive_getattr
from stable_baselines3.common.utils import check_for_correct_spaces, get_system_info

from sb3_tutorial_sac import policies
from sb3_tutorial_sac.data import NotDataError, from_data, has_pickle, to_data

if TYPE_CHECKING:
    from sb3_tutorial_sac.tutorial_sac import TutorialSAC

SelfTutorialSAC = TypeVar("SelfTutorialSAC", bound="TutorialSAC")

Path = str | pathlib.Path | io.BufferedIOBase

FORMAT, BUFFER_FORMAT = "sb3_tutorial_sac/1", "sb3_tutorial_sac.replay_buffer/1"
# The allow-list: the constructor's arguments (as attributes, but these) and SB3's state that a model needs
NOT_SAVED, RENAMED = ("self", "policy", "env", "device", "_init_setup_model"), {"stats_window_size": "_stats_window_size"}
STATE = (
    *("policy_class", "observation_space", "action_space", "n_envs", "num_timesteps", "_total_timesteps"),
    *("_num_timesteps_at_start", "_n_updates", "_episode_num", "_current_progress_remaining"),
)
STATISTICS = ("ep_info_buffer", "ep_success_buffer")  # left out, with a note, if an env put non-data into them
ENV_STATE = ("env", "_last_obs", "_last_original_obs", "_last_episode_starts")  # with include=["env"]
SCHEDULES = ("learning_rate", "critic_learning_rate", "ent_coef_learning_rate")
BUFFERS = {cls.__name__: cls for cls in (sb3_buffers.ReplayBuffer, sb3_buffers.DictReplayBuffer)}
READ_ERRORS: tuple[type[Exception], ...] = (zipfile.BadZipFile, zlib.error, EOFError, KeyError, RuntimeError, OSError)
READ_ERRORS += (UnicodeDecodeError, json.JSONDecodeError)  # data that is not JSON


# ----------------------------------------------------------------------------------------------- writing files


def atomic_write(path: str | pathlib.Path, suffix: str, write: Callable[[io.BufferedIOBase], None]) -> None:
    """
    Write a file through a temporary file in the same directory, renamed over ``path`` only once complete
    (``os.replace`` is atomic on POSIX and Windows): an interrupted or failed write leaves the old file as it was.

    :param path: destination; as in SB3's ``open_path``, ``.<suffix>`` is added when it has no suffix
    :param suffix: the default suffix (``"zip"``, ``"pkl"``)
    :param write: writes the content to the open binary file it is given (and may close it)
    """
    path = pathlib.Path(path)
    if path.suffix == "" and suffix:
        path = pathlib.Path(f"{path}.{suffix}")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with open(temporary, "xb") as file:
            write(file)  # type: ignore[arg-type]
        # flush to disk before the rename, so that a crash cannot leave a renamed but empty file
        descriptor = os.open(temporary, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def _write(path: Path, suffix: str, write: Callable[[Any], None]) -> None:
    if isinstance(path, (str, pathlib.Path)):
        atomic_write(path, suffix, write)
    else:
        write(path)


# ----------------------------------------------------------------------------------------------- model files


def saved_attributes(cls: type[TutorialSAC]) -> list[str]:
    """The allow-list of a model file's ``data``: the constructor's arguments and SB3's state (``STATE``)."""
    arguments = [RENAMED.get(name, name) for name in inspect.signature(cls.__init__).parameters]
    return [name for name in arguments if name not in NOT_SAVED] + list(STATE) + list(STATISTICS)


def excluded_save_params(model: TutorialSAC) -> list[str]:
    """Every attribute :func:`save_model` leaves out: all but the allow-list (``_setup_model`` rebuilds them)."""
    return sorted(set(vars(model)) - set(saved_attributes(type(model))))


def torch_save_params(model: TutorialSAC) -> tuple[list[str], list[str]]:
    """The state dicts (``<name>.pth``) and the tensors (``pytorch_variables.pth``) of a model file."""
    # Tutorial rule: four optimiser states (actor, critic 1, critic 2, alpha); the two critics' Adams are
    # the two parameter groups of critic.optimizer
    state_dicts = ["policy", "actor.optimizer", "critic.optimizer"]
    if model.ent_coef_optimizer is not None:
        return [*state_dicts, "ent_coef_optimizer"], ["log_ent_coef"]
    return state_dicts, ["ent_coef_tensor"]


def _attribute_data(model: TutorialSAC, name: str, value: Any, include: set[str], notes: list[str]) -> Any:
    """``value`` as data; else pickled if included, the current value of a schedule, no statistics, or pickled with a
    warning (the file then loads only with ``trusted=True``)."""
    try:
        return to_data(value)
    except NotDataError as error:
        if name in include:
            notes.append(f"{name}: pickled (save(include=[{name!r}])); this file loads only with trusted=True")
            return {":pickled:": base64.b64encode(cloudpickle.dumps(value)).decode()}
        if name in STATISTICS:
            notes.append(f"{name}: left out, it holds {error}")
            return None
        if name in SCHEDULES and callable(value):
            progress = model._current_progress_remaining
            current = float(value(progress))
            notes.append(f"{name}: {value!r} is not data; saved as its value {current} at progress remaining {progress}")
            warnings.warn(
                f"TutorialSAC.save: {name} is a schedule function, not data: saved as its current value {current}. "
                f"save(path, include=[{name!r}]) pickles the function instead (the file then loads only with trusted=True)",
                stacklevel=4,
            )
            return current
        # Nothing a user saves is lost (a save at the end of a long zoo run must not fail): pickled, and said so
        notes.append(f"{name}: pickled ({error}); this file loads only with trusted=True or custom_objects")
        warnings.warn(
            f"TutorialSAC.save: {name} cannot be written as data: it is {error}. It was pickled, so this file loads "
            f"only with TutorialSAC.load(path, trusted=True), or with custom_objects={{{name!r}: ...}} (loading a "
            "pickle runs code: trust the file first). save(path, include=[...]) names such fields without this warning.",
            stacklevel=4,
        )
        return {":pickled:": base64.b64encode(cloudpickle.dumps(value)).decode()}


def save_model(model: TutorialSAC, path: Path, exclude: Iterable[str] | None, include: Iterable[str] | None) -> None:
    """Write ``model`` to ``path`` (see ``TutorialSAC.save``)."""
    include, exclude, allowed = set(include or ()), set(exclude or ()), saved_attributes(type(model))
    names = [name for name in allowed if name not in exclude] + sorted(include - set(allowed))
    names += [name for name in ENV_STATE[1:] if "env" in include and name not in names]
    attributes: dict[str, Any] = {}
    notes: list[str] = []
    for name in names:  # an allow-listed attribute is always there (else AttributeError); an included one, if it is
        if name in allowed or hasattr(model, name):
            attributes[name] = _attribute_data(model, name, getattr(model, name), include, notes)
    if "_rng_state" not in exclude:
        attributes["_rng_state"] = to_data(get_rng_state(model))
    data = json.dumps({"format": FORMAT, "notes": notes, "attributes": attributes}, indent=1)
    state_dicts, variables = torch_save_params(model)
    members = {name: getattr(recursive_getattr(model, name), "_orig_mod", recursive_getattr(model, name)).state_dict()
               for name in state_dicts}  # fmt: skip
    members["pytorch_variables"] = {name: recursive_getattr(model, name) for name in variables}

    def write(file: Any) -> None:
        with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("data", data)
            for name, tensors in members.items():
                with archive.open(f"{name}.pth", mode="w", force_zip64=True) as member:
                    th.save(tensors, member)
            archive.writestr("_stable_baselines3_version", sb3.__version__)
            archive.writestr("system_info.txt", get_system_info(print_info=False)[1])

    _write(path, "zip", write)


def _unreadable(path: Any, why: Any) -> ValueError:
    return ValueError(f"{path!r} is not a readable TutorialSAC save (truncated or corrupt file?): {why}")


def read_model_file(path: Path) -> tuple[dict[str, Any] | None, dict[str, Any], str]:
    """
    A model file's ``data`` (JSON, nothing decoded), its ``*.pth`` members (``torch.load(weights_only=True)``, on the
    CPU) and its system info. A ``ValueError`` for anything else than a zip of JSON and tensors.
    """
    file = open_path(path, "r", suffix="zip")
    try:
        with zipfile.ZipFile(file) as archive:
            names = archive.namelist()
            data = json.loads(archive.read("data")) if "data" in names else None
            tensors = {}
            for name in (name for name in names if name.endswith(".pth")):
                content = archive.read(name)
                try:
                    tensors[name[: -len(".pth")]] = th.load(io.BytesIO(content), map_location="cpu", weights_only=True)
                except Exception as error:
                    why = f"{name} is not plain tensors: torch.load(weights_only=True) refused it, nothing from it ran"
                    raise _unreadable(path, f"{why} ({str(error)[:300]})") from error
            info = archive.read("system_info.txt").decode() if "system_info.txt" in names else ""
    except READ_ERRORS as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise _unreadable(path, error) from error
    finally:
        if isinstance(path, (str, pathlib.Path)):
            file.close()
    return data, tensors, info


def _attributes(cls: type, path: Path, data: dict, env: Any, custom: dict, force_reset: bool, trusted: bool) -> dict:
    """The attributes a file's ``data`` describes, for ``cls(...).__dict__``; the caller's ``custom`` ones win."""
    ours = data.get("format") == FORMAT
    raw = data.get("attributes") if ours else data
    if not isinstance(raw, dict):
        raise _unreadable(path, "its data holds no attributes")
    if env is not None:  # the caller's env: the saved one (and with force_reset, its episode) is not used, nor unpickled
        raw = {name: value for name, value in raw.items() if name not in ENV_STATE[: len(ENV_STATE) if force_reset else 1]}
    pickled = sorted(name for name, value in raw.items() if name not in custom and has_pickle(value))
    if not ours:  # SB3's format: the policy class's module is in plain text beside its pickle
        module = raw.get("policy_class", {}).get("__module__") if isinstance(raw.get("policy_class"), dict) else None
        if not (isinstance(module, str) and module.startswith("sb3_tutorial_sac")):
            raise ValueError(
                f"{path!r} was not saved by TutorialSAC: its policy class comes from {module or 'nowhere'}, not a "
                "TutorialSACPolicy. Load it with the algorithm that saved it."
            )
    if pickled and not trusted:
        origin = f"saved with save(include={pickled})" if ours else "SB3's pickled format: an older TutorialSAC save, or SB3's"
        raise ValueError(
            f"{path!r}: {pickled} {'is a pickled object' if len(pickled) == 1 else 'are pickled objects'} ({origin}), "
            "and unpickling runs code from the file, so TutorialSAC.load never reads them by default. If you trust the "
            "file: TutorialSAC.load(path, trusted=True), then save it again for a file of data only; or give them in "
            "custom_objects."
        )
    known = {*saved_attributes(cls), *ENV_STATE, "_rng_state"}
    unknown = sorted(set(raw) - known - set(custom)) if ours else []
    if unknown and not trusted:
        raise ValueError(
            f"{path!r} holds attributes {unknown} beyond those a TutorialSAC file holds (saved with save(include=...)?): "
            "TutorialSAC.load sets them only with trusted=True."
        )
    try:
        if ours:
            attributes = {
                name: custom[name] if name in custom else from_data(value, name, trusted) for name, value in raw.items()
            }
        else:  # trusted: SB3's reader unpickles; only the allow-list is kept (the rest is rebuilt by _setup_model)
            attributes = json_to_data(json.dumps({name: raw[name] for name in known & set(raw)}), custom)
    except ValueError as error:
        raise _unreadable(path, error) from error
    missing = [name for name in ("policy_class", "observation_space", "action_space") if name not in attributes]
    if missing:
        raise _unreadable(path, f"its data holds no {missing}")
    if not (
        isinstance(attributes["policy_class"], type) and issubclass(attributes["policy_class"], policies.TutorialSACPolicy)
    ):
        raise ValueError(f"{path!r} was not saved by TutorialSAC: its policy class is {attributes['policy_class']!r}")
    for name in STATISTICS:
        if isinstance(attributes.get(name), list):
            attributes[name] = deque(attributes[name], maxlen=attributes.get("_stats_window_size", 100))
    attributes.setdefault("policy_kwargs", {}).pop("device", None)
    return attributes


def load_model(
    cls: type[SelfTutorialSAC],
    path: Path,
    env: Any,
    device: th.device | str,
    custom_objects: dict[str, Any] | None,
    print_system_info: bool,
    force_reset: bool,
    trusted: bool,
    kwargs: dict[str, Any],
) -> SelfTutorialSAC:
    """The model ``path`` describes (see ``TutorialSAC.load``)."""
    data, tensors, info = read_model_file(path)
    missing = [name for name, there in (("data", isinstance(data, dict)), ("policy.pth", "policy" in tensors)) if not there]
    if missing or not isinstance(data, dict):
        raise _unreadable(path, f"it holds no {missing}")
    if print_system_info:
        print(f"== SAVED MODEL SYSTEM INFO ==\n{info}")
        get_system_info()
    attributes = _attributes(cls, path, data, env, dict(custom_objects or {}), force_reset, trusted)
    rng_state = attributes.pop("_rng_state", None)
    if "policy_kwargs" in kwargs and kwargs["policy_kwargs"] != attributes["policy_kwargs"]:
        raise ValueError(
            "The specified policy kwargs do not equal the stored policy kwargs. "
            f"Stored kwargs: {attributes['policy_kwargs']}, specified kwargs: {kwargs['policy_kwargs']}"
        )
    # SB3's load from here on: the env, the model without networks, its attributes, _setup_model, the tensors
    if env is not None:
        env = cls._wrap_env(env, attributes.get("verbose", 0))
        check_for_correct_spaces(env, attributes["observation_space"], attributes["action_space"])
        attributes["n_envs"] = env.num_envs
    else:
        env = attributes.pop("env", None)
    model = cls(policy=attributes["policy_class"], env=env, device=device, _init_setup_model=False)  # type: ignore[call-arg]
    model.__dict__.update(attributes)
    model.__dict__.update(kwargs)
    model._setup_model()
    try:
        model.set_parameters({name: value for name, value in tensors.items() if name != "pytorch_variables"}, device=device)
    except ValueError as error:
        raise ValueError(f"{path!r} does not fit a TutorialSAC model: {error}") from error
    for name, value in (tensors.get("pytorch_variables") or {}).items():
        target = recursive_getattr(model, name, None)
        if not (isinstance(target, th.Tensor) and isinstance(value, th.Tensor) and value.shape == target.shape):
            raise ValueError(f"{path!r} does not fit a TutorialSAC model: {name} is {value!r}, this model's {target!r}")
        with th.no_grad():
            target.copy_(value)  # in place: the optimiser and the engine keep their references
    if rng_state is not None:
        set_rng_state(model, rng_state)
    return model


# ----------------------------------------------------------------------------------------------- random generators


def get_rng_state(model: TutorialSAC) -> dict[str, Any]:
    """The states of the random generators that ``learn()`` draws from (see ``TutorialSAC.save``)."""
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "python": (version, np.array(internal, dtype=np.uint32), gauss),
        "numpy": np.random.get_state(),
        "torch": th.get_rng_state(),
    }
    if model.device.type == "cuda":
        state["cuda"] = th.cuda.get_rng_state(model.device)
    if model.action_space is not None and model.action_space._np_random is not None:
        state["action_space"] = model.action_space.np_random.bit_generator.state
    return state


def set_rng_state(model: TutorialSAC, state: dict[str, Any]) -> None:
    """Put back the random generators' states of :func:`get_rng_state` (also read back from a file)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(int(word) for word in internal), gauss))
    np.random.set_state(state["numpy"])
    th.set_rng_state(th.as_tensor(state["torch"], dtype=th.uint8))
    if "cuda" in state and model.device.type == "cuda":
        th.cuda.set_rng_state(th.as_tensor(state["cuda"], dtype=th.uint8), model.device)
    if "action_space" in state and model.action_space is not None:
        model.action_space.np_random.bit_generator.state = state["action_space"]


# ----------------------------------------------------------------------------------------------- parameters


def set_parameters(model: TutorialSAC, load_path_or_dict: Path | dict[str, Any], exact_match: bool, device: Any) -> None:
    """``TutorialSAC.set_parameters``: checked, then all or nothing."""
    if isinstance(load_path_or_dict, dict):
        params = load_path_or_dict
    else:
        _, tensors, _ = read_model_file(load_path_or_dict)
        params = {name: value for name, value in tensors.items() if name != "pytorch_variables"}
        if not params:
            raise ValueError(f"{load_path_or_dict!r} holds no parameters (truncated or corrupt file?)")
    check_parameters(model, params, exact_match)
    backup = {name: copy.deepcopy(recursive_getattr(model, name).state_dict()) for name in torch_save_params(model)[0]}
    try:
        BaseAlgorithm.set_parameters(model, params, exact_match=exact_match, device=device)
    except Exception as error:
        for name, state_dict in backup.items():
            recursive_getattr(model, name).load_state_dict(state_dict)
        raise ValueError(f"set_parameters failed, nothing was loaded: {error}") from error


def check_parameters(model: TutorialSAC, params: dict[str, Any], exact_match: bool) -> None:
    """Raise a ``ValueError`` if ``params`` do not fit ``model``'s objects (names, keys, shapes)."""
    names = torch_save_params(model)[0]
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
                    f"unexpected keys {sorted(set(given) - set(own))[:5]}"
                )
            for key in sorted(set(given) & set(own)):
                shape = tuple(getattr(given[key], "shape", ()))
                if shape != tuple(own[key].shape):
                    problems.append(f"{name}.{key}: shape {shape} given, {tuple(own[key].shape)} in this model")
    if problems:
        raise ValueError(
            "The parameters do not fit this TutorialSAC model (saved with another net_arch, other spaces or "
            f"another algorithm?); nothing was loaded: {'; '.join(problems[:5])}"
            + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        )


def optimizer_state_problems(name: str, optimizer: th.optim.Optimizer, given: dict[str, Any]) -> list[str]:
    """
    What keeps ``given`` (an optimiser ``state_dict()``) from fitting ``optimizer``: group counts, parameter counts,
    per-element state shapes. (``torch``'s ``load_state_dict`` checks only the counts; with TutorialSAC's flat
    buffers, one tensor per group, a state of the wrong size would load and fail at the next step.)
    """
    groups = given.get("param_groups")
    states = given.get("state")
    if not isinstance(groups, list) or not isinstance(states, dict):
        return [f"{name}: not an optimizer state dict (no param_groups / state)"]
    if len(groups) != len(optimizer.param_groups):
        return [f"{name}: {len(groups)} parameter groups given, {len(optimizer.param_groups)} in this model"]
    problems = []
    for index, (group, own_group) in enumerate(zip(groups, optimizer.param_groups)):
        if len(group.get("params", ())) != len(own_group["params"]):
            given_count, own_count = len(group.get("params", ())), len(own_group["params"])
            problems.append(f"{name} group {index}: {given_count} tensors given, {own_count} in this model")
            continue
        for key, param in zip(group["params"], own_group["params"]):
            for state_key, value in states.get(key, {}).items():
                if isinstance(value, th.Tensor) and value.dim() > 0 and value.shape != param.shape:
                    problems.append(
                        f"{name} group {index} state {state_key}: shape {tuple(value.shape)} given, "
                        f"{tuple(param.shape)} in this model"
                    )
    return problems


# ----------------------------------------------------------------------------------------------- replay buffers


def _buffer_arrays(buffer: sb3_buffers.ReplayBuffer) -> dict[str, np.ndarray]:
    """The arrays of ``buffer`` by name in the file (``observations.<i>``: the i-th key of a Dict)."""
    arrays: dict[str, np.ndarray] = {}
    for name in ("observations", "next_observations", "actions", "rewards", "dones", "timeouts"):
        value = getattr(buffer, name, None)
        if isinstance(value, dict):
            arrays.update({f"{name}.{i}": array for i, array in enumerate(value.values())})
        elif value is not None:
            arrays[name] = value
    return arrays


def save_replay_buffer(model: TutorialSAC, path: Path) -> None:
    """Write ``model.replay_buffer`` to ``path``: an npz of its stored rows and a JSON ``meta``."""
    buffer = model.replay_buffer
    assert buffer is not None, "The replay buffer is not defined"
    if BUFFERS.get(type(buffer).__name__) is not type(buffer):
        raise ValueError(
            f"save_replay_buffer writes a {' or '.join(BUFFERS)} as data, not a {type(buffer).__name__}. To pickle it "
            "(SB3's format): stable_baselines3.common.save_util.save_to_pkl(path, model.replay_buffer); such a file "
            "loads only with load_replay_buffer(path, trusted=True)."
        )
    keys = ("buffer_size", "n_envs", "pos", "full", "optimize_memory_usage", "handle_timeout_termination")
    meta = {"format": BUFFER_FORMAT, "class": type(buffer).__name__, **{key: getattr(buffer, key) for key in keys}}
    meta.update(observation_space=to_data(buffer.observation_space), action_space=to_data(buffer.action_space))
    rows = buffer.buffer_size if buffer.full else buffer.pos
    # the memory-efficient buffer holds the last transition's next observation in the next row
    extra = {"observations": int(buffer.optimize_memory_usage)}
    arrays = {name: array[: rows + extra.get(name, 0)] for name, array in _buffer_arrays(buffer).items()}
    _write(path, "pkl", lambda file: np.savez(file, meta=np.array(json.dumps(meta)), **arrays))  # type: ignore[arg-type]


def _read_buffer_file(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The ``meta`` and the arrays of a replay buffer file, read with ``np.load(allow_pickle=False)``."""
    file = open_path(path, "r", suffix="pkl")
    try:
        with np.load(file, allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"][()]))
            if not isinstance(meta, dict) or meta.get("format") != BUFFER_FORMAT:
                raise ValueError(f"its meta is not of {BUFFER_FORMAT}")
            return meta, {name: npz[name] for name in npz.files if name != "meta"}
    finally:
        if isinstance(path, (str, pathlib.Path)):
            file.close()


def load_replay_buffer(model: TutorialSAC, path: Path, truncate_last_traj: bool, trusted: bool) -> None:
    """Read a replay buffer of :func:`save_replay_buffer` into ``model`` (see ``TutorialSAC.load_replay_buffer``)."""
    start = path.tell() if isinstance(path, io.IOBase) else None
    try:
        meta, arrays = _read_buffer_file(path)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, AttributeError, TypeError, KeyError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        if not trusted:
            raise ValueError(
                f"{path!r} is not a replay buffer file of data ({str(error)[:200]}): a pickled buffer (SB3's format, "
                "an older TutorialSAC save) would run code from the file when loaded, so load_replay_buffer never "
                "unpickles by default. If you trust the file: load_replay_buffer(path, trusted=True)."
            ) from error
        if start is not None:
            path.seek(start)  # type: ignore[union-attr]
        OffPolicyAlgorithm.load_replay_buffer(model, path, truncate_last_traj)
        return
    observation_space, action_space = (from_data(meta[key], key) for key in ("observation_space", "action_space"))
    if get_obs_shape(observation_space) != get_obs_shape(model.observation_space) or get_action_dim(
        action_space
    ) != get_action_dim(model.action_space):
        raise ValueError(f"{path!r} holds a replay buffer of other spaces: {observation_space}, {action_space}")
    buffer = BUFFERS[meta["class"]](
        meta["buffer_size"] * meta["n_envs"],
        observation_space,
        action_space,
        device=model.device,
        n_envs=meta["n_envs"],
        optimize_memory_usage=meta["optimize_memory_usage"],
        handle_timeout_termination=meta["handle_timeout_termination"],
    )
    own = _buffer_arrays(buffer)
    if set(own) != set(arrays):
        raise ValueError(f"{path!r}: arrays {sorted(arrays)} where a {meta['class']} has {sorted(own)}")
    for name, array in arrays.items():
        if array.dtype != own[name].dtype or array.shape[1:] != own[name].shape[1:] or len(array) > len(own[name]):
            raise ValueError(f"{path!r}: {name} is {array.dtype} {array.shape}, not {own[name].dtype} {own[name].shape}")
        own[name][: len(array)] = array
    buffer.pos, buffer.full = int(meta["pos"]), bool(meta["full"])
    model.replay_buffer = buffer
