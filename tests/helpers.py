"""Helpers shared by test files (none imports another test file): the compiled engine's test models and compiler
check, and zip rewriting for the file tests."""

import json
import os
import pathlib
import zipfile

import pytest
from stable_baselines3.common.logger import Logger

from sb3_tutorial_sac import TutorialSAC
from tests.envs import BoxTargetEnv


def _has_compiler() -> bool:
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        get_cpp_compiler()
    except Exception:
        return False
    return True


# the compiled engine falls back to the fast engine without a C++ compiler (tested below); what it computes compiled
# can only be tested with one. CI's machines have one, so there these tests always run (and fail if it is missing).
needs_compiler = pytest.mark.skipif(
    not _has_compiler() and not os.environ.get("CI"), reason="no C++ compiler for Inductor (outside CI)"
)

# (env kwargs, policy_kwargs, model kwargs): between them, every switch of the step function
CONFIGURATIONS = {
    # the tutorial's networks on Pendulum's shapes (3 observations, one action in [-2, 2]: Pendulum-v1's compiled
    # step), a shared (parameterless) features extractor
    "tutorial": ({"obs_shape": (3,), "low": (-2.0,), "high": (2.0,)}, {"share_features_extractor": True}, {}),
    # three asymmetric action dimensions, the correct tanh term, one deeper critic, SB3's temperature loss from alpha 1,
    # a soft update every 2nd step, bootstrapped timeouts
    "asymmetric": (
        {"low": (-1.0, 0.0, -5.0), "high": (3.0, 0.5, 5.0)},
        {"net_arch": {"pi": [32, 16], "qf": [32, 16, 8]}, "n_critics": 1},
        {
            "entropy_term": "correct",
            "ent_coef_loss": "sb3",
            "ent_coef": "auto",
            "target_update_interval": 2,
            "handle_timeout_termination": True,
        },
    ),
    # a fixed alpha (no temperature step), two asymmetric action dimensions, rewards unshifted
    "fixed_alpha": (
        {"low": (-1.0, 0.0), "high": (3.0, 0.5)},
        {"net_arch": [24]},
        {"ent_coef": 0.1, "reward_shift": 0.0, "target_update_interval": 2, "handle_timeout_termination": True},
    ),
}


def compiled_test_model(engine: str, configuration: str = "tutorial", seed: int = 4) -> TutorialSAC:
    env_kwargs, policy_kwargs, kwargs = CONFIGURATIONS[configuration]
    env = BoxTargetEnv(**{"obs_shape": (5,), **env_kwargs})
    model = TutorialSAC("MlpPolicy", env, seed=seed, device="cpu", policy_kwargs=policy_kwargs, engine=engine, **kwargs)
    model.set_logger(Logger(folder=None, output_formats=[]))
    return model


def rewrite_zip(source: pathlib.Path, target: pathlib.Path, compression: int = zipfile.ZIP_STORED, **members: bytes) -> None:
    """Copy the zip ``source`` to ``target`` with some members replaced (or added)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", compression=compression, compresslevel=1) as new:
        for name in old.namelist():
            new.writestr(name, members.pop(name, None) or old.read(name))
        for name, content in members.items():
            new.writestr(name, content)


def zip_data(path: pathlib.Path) -> dict:
    """The ``data`` member of a saved model, as JSON."""
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("data"))
