"""Replay buffer files as data: an npz (numpy zip) of the buffer's stored rows and a JSON ``meta``, read with
``np.load(allow_pickle=False)``; loading one never runs code from it (a pickled buffer, SB3's format, loads only with
``trusted=True``, through SB3's own loader).

Before anything is allocated, a file that is not trusted is checked (:func:`_check_meta`, the bounds in
:mod:`sb3_tutorial_sac.validation`): the buffer class (SB3's ``ReplayBuffer``, ``DictReplayBuffer``,
``NStepReplayBuffer``), its bookkeeping against this model (``n_envs``, ``pos``, ``full``, the spaces), the memory it
would take, and each array's header against what that buffer stores, then the arrays' values. The zip, JSON and write
helpers are those of the model files (:mod:`sb3_tutorial_sac.file_io`).
"""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common import buffers as sb3_buffers
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.preprocessing import get_action_dim, get_obs_shape

from sb3_tutorial_sac import validation
from sb3_tutorial_sac.data import from_data, to_data
from sb3_tutorial_sac.file_io import READ_ERRORS, Path, open_archive, parse_json, read_member, write_to
from sb3_tutorial_sac.validation import FileValueError


BUFFER_FORMAT = "sb3_tutorial_sac.replay_buffer/1"
BUFFERS = {
    cls.__name__: cls for cls in (sb3_buffers.ReplayBuffer, sb3_buffers.DictReplayBuffer, sb3_buffers.NStepReplayBuffer)
}


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


def save_replay_buffer(model: OffPolicyAlgorithm, path: Path) -> None:
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
    if isinstance(buffer, sb3_buffers.NStepReplayBuffer):
        meta.update(n_steps=buffer.n_steps, gamma=buffer.gamma)  # what its samples are computed with
    arrays = {name: array[:rows] for name, (array, rows) in _stored_rows(buffer).items()}
    write_to(path, "pkl", lambda file: np.savez(file, meta=np.array(json.dumps(meta)), **arrays))  # type: ignore[arg-type]


def _stored_rows(buffer: sb3_buffers.ReplayBuffer) -> dict[str, tuple[np.ndarray, int]]:
    """Each array of ``buffer`` with the number of its rows a file holds: those stored."""
    rows = buffer.buffer_size if buffer.full else buffer.pos
    # the memory-efficient buffer holds the last transition's next observation in the next row
    extra = {"observations": int(buffer.optimize_memory_usage)}
    return {name: (array, min(rows + extra.get(name, 0), len(array))) for name, array in _buffer_arrays(buffer).items()}


def _dtypes(space: spaces.Space) -> Any:
    """A space's dtype, or its sub-spaces' by key (a Dict)."""
    if isinstance(space, spaces.Dict):
        return {key: _dtypes(sub) for key, sub in space.spaces.items()}
    return np.dtype(space.dtype) if space.dtype is not None else None


class NotBufferData(ValueError):
    """A file that is not a replay buffer of data (a pickle, SB3's format): only ``trusted=True`` reads it."""


def _buffer_meta(archive: zipfile.ZipFile, path: Any) -> dict[str, Any]:
    """A replay buffer file's ``meta``: a JSON string in a plain npy member, read bounded and without pickle."""
    if "meta.npy" not in archive.namelist():
        raise NotBufferData("it has no meta")
    try:
        content = read_member(archive, "meta.npy", validation.MAX_META_BYTES, path)
        meta = np.load(io.BytesIO(content), allow_pickle=False)
        text = str(meta[()])
    except (ValueError, OSError, EOFError, IndexError, TypeError) as error:  # an object array: a pickle
        raise NotBufferData(f"its meta is not a JSON string ({str(error)[:200]})") from error
    meta = parse_json(text.encode(), f"{path!r}: meta")
    if not isinstance(meta, dict) or meta.get("format") != BUFFER_FORMAT:
        raise NotBufferData(f"its meta is not of {BUFFER_FORMAT}")
    return meta


def _read_array(archive: zipfile.ZipFile, name: str, own: np.ndarray, rows: int, path: Any) -> np.ndarray:
    """The npy member ``name``: its header checked against ``own[:rows]`` before its data is read, then finite."""
    member = f"{name}.npy"
    with archive.open(member) as file:
        try:
            major, _ = np.lib.format.read_magic(file)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(file)  # the header only (numpy bounds its size)
        except (ValueError, OSError, EOFError, SyntaxError) as error:
            raise FileValueError(f"{path!r}: {member} is not an npy array ({str(error)[:200]})") from error
    if dtype.hasobject:
        raise NotBufferData(f"{member} is a pickled object array")
    expected = (rows, *own.shape[1:])
    if dtype != own.dtype or tuple(shape) != expected or fortran:
        raise FileValueError(
            f"{path!r}: {name} is {dtype} {tuple(shape)}, where the buffer its meta describes (pos, full, n_envs, spaces) "
            f"stores {own.dtype} {expected}"
        )
    content = read_member(archive, member, own[:rows].nbytes + 2**16, path)
    try:
        array = np.load(io.BytesIO(content), allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:  # a payload shorter than its header says
        raise FileValueError(f"{path!r}: {member} is not a whole npy array ({str(error)[:200]})") from error
    if array.dtype.kind in "fc" and not np.isfinite(array).all():
        raise FileValueError(f"{path!r}: {name} holds NaN or infinite values")
    if name in ("dones", "timeouts") and not np.isin(array, (0, 1)).all():
        raise FileValueError(f"{path!r}: {name} holds values other than 0 and 1")
    return array


def _check_meta(meta: dict[str, Any], model: OffPolicyAlgorithm, path: Any) -> None:
    """The bookkeeping a replay buffer file's ``meta`` gives: types, ranges, this model's spaces and envs."""
    where = f"{path!r}, meta"
    problems = {
        "class": meta.get("class") in BUFFERS,
        "buffer_size": validation._is_int(meta.get("buffer_size")) and meta["buffer_size"] > 0,
        "n_envs": validation._is_int(meta.get("n_envs")) and 0 < meta["n_envs"] <= validation.MAX_ENVS,
        "full": isinstance(meta.get("full"), bool),
        "optimize_memory_usage": isinstance(meta.get("optimize_memory_usage"), bool),
        "handle_timeout_termination": isinstance(meta.get("handle_timeout_termination"), bool),
    }
    bad = [name for name, ok in problems.items() if not ok]
    if bad:
        values = ", ".join(f"{name}={meta.get(name)!r}" for name in bad)[:600]
        raise FileValueError(f"{where}: {values} (not a valid value)")
    if not (validation._is_int(meta.get("pos")) and 0 <= meta["pos"] < meta["buffer_size"]):
        raise FileValueError(f"{where}: pos={meta.get('pos')!r}, not an integer in [0, buffer_size={meta['buffer_size']})")
    if meta["n_envs"] != model.n_envs:
        raise FileValueError(f"{where}: n_envs={meta['n_envs']}, and this model has {model.n_envs} envs")
    if meta["class"] in ("DictReplayBuffer", "NStepReplayBuffer") and meta["optimize_memory_usage"]:
        raise FileValueError(f"{where}: a {meta['class']} with optimize_memory_usage (SB3 has none)")
    if meta["optimize_memory_usage"] and meta["handle_timeout_termination"]:
        raise FileValueError(
            f"{where}: optimize_memory_usage=True and handle_timeout_termination=True (SB3's ReplayBuffer supports one)"
        )
    if meta["class"] == "NStepReplayBuffer":
        # the values TutorialSAC's constructor accepts for n_steps and gamma (validation.py)
        n_steps: Any = meta.get("n_steps")
        gamma: Any = meta.get("gamma")
        if not (validation._is_int(n_steps) and 0 < n_steps <= 1000):
            raise FileValueError(f"{where}: n_steps={n_steps!r}, not an integer in [1, 1000]")
        if not (validation._is_number(gamma) and 0 <= gamma <= 1):
            raise FileValueError(f"{where}: gamma={gamma!r}, not a number in [0, 1]")
    _check_agreement(meta, model, where)


def _check_agreement(meta: dict[str, Any], model: OffPolicyAlgorithm, where: str) -> None:
    """Say so (a warning) where the file's buffer computes its samples otherwise than the model's: another class (one-step
    or n-step), an n-step buffer's ``n_steps`` and ``gamma`` (``gamma`` against the model's), ``handle_timeout_termination``.
    As in SB3, the loaded buffer replaces the model's with the file's settings; the targets then change with them."""
    own = model.replay_buffer
    if own is None:
        return
    differences = []
    if meta["class"] != type(own).__name__:
        differences.append(f"class={meta['class']!r} (this model's buffer: a {type(own).__name__})")
    for key, one_step in (("n_steps", 1), ("handle_timeout_termination", None)):
        if key in meta and meta[key] != getattr(own, key, one_step):
            differences.append(f"{key}={meta[key]!r} (this model's buffer: {getattr(own, key, one_step)!r})")
    if "gamma" in meta and meta["gamma"] != getattr(own, "gamma", model.gamma):
        differences.append(f"gamma={meta['gamma']!r} (this model's {'buffer' if hasattr(own, 'gamma') else 'gamma'}: "
                           f"{getattr(own, 'gamma', model.gamma)!r})")  # fmt: skip
    if differences:
        warnings.warn(
            f"load_replay_buffer: {where} gives {', '.join(differences)}. As in SB3, the file's buffer replaces the "
            "model's with its own settings, so the targets of the next train() calls are computed with them (n-step "
            "returns, their discount, timeouts); load a buffer saved by a model of the same settings to keep them.",
            stacklevel=5,
        )


def load_replay_buffer(model: OffPolicyAlgorithm, path: Path, truncate_last_traj: bool, trusted: bool) -> None:
    """Read a replay buffer of :func:`save_replay_buffer` into ``model`` (see ``TutorialSAC.load_replay_buffer``)."""
    start = path.tell() if isinstance(path, io.IOBase) else None
    try:
        buffer = _read_replay_buffer(model, path, trusted)
    except NotBufferData as error:
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
    model.replay_buffer = buffer


def _read_replay_buffer(model: OffPolicyAlgorithm, path: Path, trusted: bool) -> sb3_buffers.ReplayBuffer:
    def unreadable(error: Exception) -> Exception:
        return NotBufferData(f"not an npz ({error})")

    with open_archive(path, "pkl", 4 * validation.MAX_MEMBERS, "a replay buffer file", unreadable) as archive:
        try:
            return _buffer_from(archive, model, path, trusted)
        except READ_ERRORS as error:
            why = f"{path!r} is not a readable replay buffer file (truncated or corrupt?): {error}"
            raise FileValueError(why) from error


def _buffer_from(archive: zipfile.ZipFile, model: OffPolicyAlgorithm, path: Any, trusted: bool) -> sb3_buffers.ReplayBuffer:
    meta = _buffer_meta(archive, path)
    _check_meta(meta, model, path)
    try:
        observation_space, action_space = (from_data(meta.get(key), key, trusted) for key in ("observation_space",
                                                                                                "action_space"))  # fmt: skip
    except ValueError as error:
        raise FileValueError(f"{path!r}, meta: {error}") from error
    if (
        not (isinstance(observation_space, spaces.Space) and isinstance(action_space, spaces.Space))
        or get_obs_shape(observation_space) != get_obs_shape(model.observation_space)
        or get_action_dim(action_space) != get_action_dim(model.action_space)
    ):
        raise FileValueError(f"{path!r} holds a replay buffer of other spaces: {observation_space}, {action_space}")
    if _dtypes(observation_space) != _dtypes(model.observation_space) or _dtypes(action_space) != _dtypes(model.action_space):
        # of the same shapes but another dtype, every later observation would be stored cast (int8: truncated)
        raise FileValueError(
            f"{path!r}, meta: a replay buffer of spaces of dtypes {_dtypes(observation_space)}, {_dtypes(action_space)}; "
            f"this model's are {_dtypes(model.observation_space)}, {_dtypes(model.action_space)}"
        )
    size = meta["buffer_size"] * meta["n_envs"]
    if not trusted:
        fix = "Only trusted=True loads it (on a machine with the memory)."
        validation.check_replay_buffer_size(
            size, observation_space, action_space, meta["optimize_memory_usage"], f"{path!r}, meta", fix
        )
    try:
        buffer = BUFFERS[meta["class"]](
            size,
            observation_space,  # type: ignore[arg-type]
            action_space,
            device=model.device,
            n_envs=meta["n_envs"],
            optimize_memory_usage=meta["optimize_memory_usage"],
            handle_timeout_termination=meta["handle_timeout_termination"],
            **({"n_steps": meta["n_steps"], "gamma": float(meta["gamma"])} if meta["class"] == "NStepReplayBuffer" else {}),
        )
    except MemoryError as error:  # (a trusted file: no memory check before)
        raise FileValueError(f"{path!r}, meta: buffer_size={meta['buffer_size']}: no memory for this buffer") from error
    buffer.pos, buffer.full = meta["pos"], meta["full"]
    stored = _stored_rows(buffer)
    names = {name[: -len(".npy")] for name in archive.namelist() if name.endswith(".npy")} - {"meta"}
    if names != set(stored) or len(archive.namelist()) != len(stored) + 1:
        members = sorted(archive.namelist())[:12]
        raise FileValueError(f"{path!r}: members {members} where a {meta['class']} has {sorted(stored)}")
    for name, (own, rows) in stored.items():
        own[:rows] = _read_array(archive, name, own, rows, path)
    return buffer
