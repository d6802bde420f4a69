import os

import pytest
import torch

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
