"""The Soft Actor-Critic of the Pendulum-v1 notebook tutorial, rule for rule, as a Stable-Baselines3 algorithm."""

from sb3_tutorial_sac.interop import export_tutorial_state, load_tutorial_state
from sb3_tutorial_sac.policies import CnnPolicy, MlpPolicy, MultiInputPolicy, TutorialSACPolicy
from sb3_tutorial_sac.tutorial_sac import NonFiniteError, TutorialSAC

__version__ = "0.1.0"

__all__ = [
    "CnnPolicy",
    "MlpPolicy",
    "MultiInputPolicy",
    "NonFiniteError",
    "TutorialSAC",
    "TutorialSACPolicy",
    "export_tutorial_state",
    "load_tutorial_state",
]
