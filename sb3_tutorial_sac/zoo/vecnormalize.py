"""VecNormalize statistics as data: written beside SB3's pickle (``vecnormalize.json``) and read back without trust."""

from __future__ import annotations

import json
import math
import pathlib
import pickle
from typing import Any

import numpy as np

from sb3_tutorial_sac.zoo.checks import TRUSTED_HINT, RefusedError

VECNORMALIZE_FORMAT = "sb3_tutorial_sac.vecnormalize/1"

#: SB3's own ``VecNormalize.load``, kept by :func:`sb3_tutorial_sac.zoo.as_data.folder_files_as_data` before it is patched
_ORIGINALS: dict[str, Any] = {}


def vec_normalize_data_path(path: str | pathlib.Path) -> pathlib.Path:
    """Where :func:`save_vec_normalize` writes the statistics as data, beside SB3's pickle ``path``:
    ``vecnormalize.pkl`` -> ``vecnormalize.json`` (``<name>.json`` for a name without ``.pkl``)."""
    path = pathlib.Path(path)
    return path.with_suffix(".json") if path.suffix == ".pkl" else path.with_name(f"{path.name}.json")


def save_vec_normalize(vec_normalize: Any, save_path: str | pathlib.Path) -> None:
    """
    Write a ``VecNormalize`` twice: SB3's pickle under the name given (rl-zoo3's ``vecnormalize.pkl``, which
    ``VecNormalize.load``, ``python -m rl_zoo3.enjoy`` and ``train -i`` read), and its statistics and settings as JSON
    data beside it (:func:`vec_normalize_data_path`: ``vecnormalize.json``), which this package reads without trust.
    """
    from sb3_tutorial_sac.data import to_data
    from sb3_tutorial_sac.file_io import atomic_write

    def statistics(rms: Any) -> dict[str, Any]:
        return {"mean": to_data(np.asarray(rms.mean)), "var": to_data(np.asarray(rms.var)), "count": float(rms.count)}

    obs_rms = vec_normalize.obs_rms if vec_normalize.norm_obs else None
    data = {
        "format": VECNORMALIZE_FORMAT,
        **{key: getattr(vec_normalize, key) for key in ("training", "norm_obs", "norm_reward", "clip_obs", "clip_reward")},
        **{key: getattr(vec_normalize, key) for key in ("gamma", "epsilon", "norm_obs_keys")},
        "obs_rms": None
        if obs_rms is None
        else ({key: statistics(rms) for key, rms in obs_rms.items()} if isinstance(obs_rms, dict) else statistics(obs_rms)),
        "ret_rms": statistics(vec_normalize.ret_rms),
    }
    text = json.dumps(data).encode()
    # SB3's VecNormalize.save: pickle.dump(self) (its __getstate__ leaves the wrapped env out)
    atomic_write(save_path, "", lambda file: pickle.dump(vec_normalize, file))
    atomic_write(vec_normalize_data_path(save_path), "", lambda file: file.write(text))


def load_vec_normalize(load_path: str | pathlib.Path, venv: Any, trusted: bool = False) -> Any:
    """
    A ``VecNormalize`` around ``venv`` with the statistics :func:`save_vec_normalize` wrote: read from the JSON data
    beside ``load_path`` (``vecnormalize.json``), or from ``load_path`` itself where it is JSON (folders written before
    the pickle was added). The pickle ``load_path`` (SB3's format) is read only if ``trusted`` and there is no JSON
    (SB3's own ``VecNormalize.load``); untrusted, a folder with the pickle alone raises a :class:`RefusedError`.
    """
    from stable_baselines3.common.vec_env import VecNormalize

    from sb3_tutorial_sac import validation
    from sb3_tutorial_sac.data import from_data
    from sb3_tutorial_sac.file_io import parse_json

    path = pathlib.Path(load_path)
    sidecar = vec_normalize_data_path(path)
    if sidecar.is_file() and not trusted:  # trusted: rl-zoo3's own reader, the pickle
        path = sidecar
    with open(path, "rb") as file:
        head = file.read(validation.MAX_META_BYTES * 64 + 1)
    if not head.lstrip().startswith(b"{"):
        if trusted:
            return _ORIGINALS["VecNormalize.load"](str(path), venv)
        raise RefusedError(
            f"{path} is a pickle (SB3's VecNormalize.save) and {sidecar.name} (the statistics as data) is not beside it: "
            f"unpickling it would run code; {TRUSTED_HINT}"
        )
    if len(head) > validation.MAX_META_BYTES * 64:
        raise RefusedError(f"{path} is larger than VecNormalize statistics can be")
    data = parse_json(head, str(path))
    if not (isinstance(data, dict) and data.get("format") == VECNORMALIZE_FORMAT):
        raise RefusedError(f"{path} is JSON, but not VecNormalize statistics of {VECNORMALIZE_FORMAT}")
    try:
        flags = {key: data[key] for key in ("training", "norm_obs", "norm_reward")}
        numbers = {key: float(data[key]) for key in ("clip_obs", "clip_reward", "gamma", "epsilon")}
        if not all(isinstance(flag, bool) for flag in flags.values()) or not all(map(math.isfinite, numbers.values())):
            raise ValueError(f"flags {flags}, numbers {numbers}")
        vec_normalize = VecNormalize(venv, **flags, **numbers, norm_obs_keys=data.get("norm_obs_keys"))  # type: ignore[arg-type]

        def put(rms: Any, saved: dict[str, Any], where: str) -> None:
            mean, var = (np.asarray(from_data(saved[key], where), dtype=np.float64) for key in ("mean", "var"))
            count = float(saved["count"])
            if (
                mean.shape != rms.mean.shape
                or var.shape != rms.var.shape
                or not (
                    np.isfinite(mean).all()
                    and np.isfinite(var).all()
                    and (var >= 0).all()
                    and math.isfinite(count)
                    and count > 0
                )
            ):
                raise ValueError(f"{where}: statistics of shape {mean.shape} for {rms.mean.shape}, or not finite")
            rms.mean, rms.var, rms.count = mean, var, count

        put(vec_normalize.ret_rms, data["ret_rms"], "ret_rms")
        if vec_normalize.norm_obs:
            if isinstance(vec_normalize.obs_rms, dict):
                if set(data["obs_rms"]) != set(vec_normalize.obs_rms):
                    raise ValueError(f"obs_rms keys {sorted(data['obs_rms'])}")
                for key, rms in vec_normalize.obs_rms.items():
                    put(rms, data["obs_rms"][key], f"obs_rms.{key}")
            else:
                put(vec_normalize.obs_rms, data["obs_rms"], "obs_rms")
    except (KeyError, TypeError, ValueError, AttributeError, AssertionError) as error:
        raise RefusedError(f"{path}: not VecNormalize statistics for this env ({str(error)[:300]})") from error
    return vec_normalize
