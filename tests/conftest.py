import os
import pathlib

import pytest
import torch

from sb3_tutorial_sac import TutorialSAC
from tests.helpers import TINY

# Tests compare floats bit for bit and time nothing: one thread keeps them deterministic and quick on 2 cores
torch.set_num_threads(1)
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")


@pytest.fixture(autouse=True)
def _restore_torch_seed():
    """Each test starts from a known torch RNG state and leaves none behind."""
    state = torch.random.get_rng_state()
    torch.manual_seed(0)
    yield
    torch.random.set_rng_state(state)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[TutorialSAC, pathlib.Path]:
    """A trained tiny Pendulum model (TutorialSAC, 400 steps) and its file, once per test module that asks for it.
    (tests/test_zoo.py has a fixture of its own under this name: two zoo runs.)"""
    model = TutorialSAC("MlpPolicy", "Pendulum-v1", policy_kwargs=TINY, seed=0)
    model.learn(400)
    path = tmp_path_factory.mktemp("trained") / "model.zip"
    model.save(path)
    return model, path
