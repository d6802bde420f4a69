"""The random generators' states that ``learn()`` draws from (Python's, NumPy's, torch's, CUDA's on a CUDA model, the
action space's): read for a model file's ``_rng_state`` and put back on load, all or nothing."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm


def get_rng_state(model: BaseAlgorithm) -> dict[str, Any]:
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


def set_rng_state(model: BaseAlgorithm, state: dict[str, Any]) -> None:
    """
    Put back the random generators' states of :func:`get_rng_state` (also read back from a file): all or nothing, a
    state that a generator refuses leaves every generator as it was.
    """
    before = get_rng_state(model)
    try:
        _set_rng_state(model, state)
    except BaseException:
        _set_rng_state(model, before)
        raise


def _set_rng_state(model: BaseAlgorithm, state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(int(word) for word in internal), gauss))
    np.random.set_state(state["numpy"])
    th.set_rng_state(th.as_tensor(state["torch"], dtype=th.uint8))
    if "cuda" in state and model.device.type == "cuda":
        th.cuda.set_rng_state(th.as_tensor(state["cuda"], dtype=th.uint8), model.device)
    if "action_space" in state and model.action_space is not None:
        model.action_space.np_random.bit_generator.state = state["action_space"]
