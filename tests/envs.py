"""Small deterministic test environments with configurable spaces."""

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class BoxTargetEnv(gym.Env):
    """Reach a target with a bounded action: reward = -|action mapped to [0, 1] - target|.

    :param obs_shape: shape of the Box observation (or None for a Dict observation of two Boxes)
    :param low: action lower bounds
    :param high: action upper bounds
    :param episode_length: steps before truncation
    """

    def __init__(
        self,
        obs_shape: tuple[int, ...] | None = (4,),
        low: Any = (-1.0,),
        high: Any = (1.0,),
        episode_length: int = 50,
        obs_dtype: type = np.float32,
        action_dtype: type = np.float32,
    ):
        super().__init__()
        self.action_space = spaces.Box(
            np.asarray(low, dtype=action_dtype), np.asarray(high, dtype=action_dtype), dtype=action_dtype
        )
        if obs_shape is None:
            self.observation_space: spaces.Space = spaces.Dict(
                {"position": spaces.Box(-1, 1, (3,), np.float32), "velocity": spaces.Box(-5, 5, (2,), np.float32)}
            )
        else:
            self.observation_space = spaces.Box(-1, 1, obs_shape, obs_dtype)
        self.episode_length = episode_length
        self._t = 0

    def _obs(self):
        return self.observation_space.sample()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:  # seed(None) would draw fresh entropy: later episodes would not repeat
            self.observation_space.seed(seed)
        self._t = 0
        return self._obs(), {}

    def step(self, action):
        action = np.asarray(action)
        assert self.action_space.contains(action.astype(self.action_space.dtype)), (
            f"action {action} out of {self.action_space}"
        )
        self._t += 1
        unit = (action - self.action_space.low) / (self.action_space.high - self.action_space.low)
        reward = -float(np.abs(unit - 0.7).mean())
        return self._obs(), reward, False, self._t >= self.episode_length, {}
