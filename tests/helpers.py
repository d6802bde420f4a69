"""Helpers shared by test files (none imports another test file): the compiled engine's test models and compiler
check, the exactness tests' minibatches, crafted files for the file tests, and rl-zoo3 runs for the zoo tests."""

import json
import os
import pathlib
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.type_aliases import ReplayBufferSamples

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


# the file tests' tiny networks
TINY = dict(net_arch=dict(pi=[8], qf=[8, 8]))


def tiny_model(env="Pendulum-v1", **kwargs) -> TutorialSAC:
    """A TutorialSAC with the tiny networks (unless policy_kwargs says otherwise), seed 0."""
    kwargs.setdefault("policy_kwargs", TINY)
    return TutorialSAC("MlpPolicy", env, seed=0, **kwargs)


def small(env, **kwargs) -> TutorialSAC:
    """A TutorialSAC with small networks (16 units), seed 0."""
    kwargs.setdefault("policy_kwargs", dict(net_arch=dict(pi=[16], qf=[16, 16])))
    return TutorialSAC("MlpPolicy", env, seed=0, **kwargs)


# ----------------------------------------------------------------------------------------------- the tutorial's minibatches

BATCH = 64


def make_minibatches(n_steps: int, seed: int = 0, over_rate: float = 0.05) -> list[tuple[torch.Tensor, ...]]:
    """Pendulum-like minibatches: the tutorial's get_sample() output (over as LongTensor)."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(n_steps):
        theta = rng.uniform(-np.pi, np.pi, size=BATCH)
        state = np.stack([np.cos(theta), np.sin(theta), rng.uniform(-8, 8, size=BATCH)], axis=1)
        next_theta = theta + rng.normal(0, 0.2, size=BATCH)
        next_state = np.stack([np.cos(next_theta), np.sin(next_theta), rng.uniform(-8, 8, size=BATCH)], axis=1)
        action = rng.uniform(-2, 2, size=(BATCH, 1))
        reward = -rng.uniform(0, 16.27, size=(BATCH, 1))
        over = (rng.random((BATCH, 1)) < over_rate).astype(np.int64)
        batches.append(
            (
                torch.FloatTensor(state),
                torch.FloatTensor(action),
                torch.FloatTensor(reward),
                torch.FloatTensor(next_state),
                torch.LongTensor(over),
            )
        )
    return batches


def feed(model: TutorialSAC, batches: list[tuple[torch.Tensor, ...]]) -> None:
    """Make the model's next train() calls read ``batches`` instead of its replay buffer."""
    queue = list(batches)

    def sample(gradient_steps: int, batch_size: int) -> ReplayBufferSamples:
        taken = [queue.pop(0) for _ in range(gradient_steps)]
        state, action, reward, next_state, over = (torch.cat(column) for column in zip(*taken))
        return ReplayBufferSamples(state, action, next_state, over.float(), reward)

    model._sample_minibatches = sample  # type: ignore[method-assign]


def run_model(model: TutorialSAC, batches, chunks: list[int], seed: int = 42) -> dict[str, np.ndarray]:
    feed(model, batches)
    torch.manual_seed(seed)
    stats: dict[str, list] = {}
    for chunk in chunks:
        model.train(gradient_steps=chunk, batch_size=BATCH)
        for key, values in model.last_train_stats.items():
            stats.setdefault(key, []).extend(values.tolist())
    return {key: np.array(values) for key, values in stats.items()}


# ----------------------------------------------------------------------------------------------- crafted files


class Payload:
    """Unpickling it runs ``touch <sentinel>``: the sentinel file exists iff a load ran code from the file."""

    def __init__(self, sentinel: pathlib.Path):
        self.sentinel = str(sentinel)

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


def rewrite_zip(
    source: pathlib.Path,
    target: pathlib.Path,
    compression: int = zipfile.ZIP_STORED,
    compresslevel: int | None = 1,
    **members: bytes,
) -> None:
    """Copy the zip ``source`` to ``target`` with some members replaced (or added); ``compresslevel=None``: zlib's
    default level."""
    with (
        zipfile.ZipFile(source) as old,
        zipfile.ZipFile(target, "w", compression=compression, compresslevel=compresslevel) as new,
    ):
        for name in old.namelist():
            new.writestr(name, members.pop(name, None) or old.read(name))
        for name, content in members.items():
            new.writestr(name, content)


def zip_data(path: pathlib.Path) -> dict:
    """The ``data`` member of a saved model, as JSON."""
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("data"))


def with_attributes(data: dict, **attributes) -> bytes:
    """A model file's ``data`` member with some attributes replaced (or added)."""
    return json.dumps({**data, "attributes": {**data["attributes"], **attributes}}).encode()


def bomb(size: int) -> bytes:
    """``size`` bytes that deflate to almost nothing."""
    return b" " * size


# ----------------------------------------------------------------------------------------------- rl-zoo3 runs

ENV = "Pendulum-v1"


def zoo_cli(*args: str, cwd: pathlib.Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m sb3_tutorial_sac.zoo <args>`` in a subprocess (one torch thread, no display), checked."""
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "sb3_tutorial_sac.zoo", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"zoo {args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def train_args(algo: str, log_folder: pathlib.Path, *extra: str) -> list[str]:
    return ["train", "--algo", algo, "--env", ENV, "--seed", "3", "--num-threads", "1", "-f", str(log_folder), *extra]


def zoo_run_folder(root: pathlib.Path, normalize: bool = True, **config: object) -> pathlib.Path:
    """A run folder as rl-zoo3 writes it (a tiny TutorialSAC model, config.yml, args.yml), with ``normalize`` its
    VecNormalize statistics (and a train_freq of one episode)."""
    from collections import OrderedDict

    import yaml
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    from sb3_tutorial_sac import zoo

    run = root / "logs" / "tutorial_sac" / f"{ENV}_1"
    (run / ENV).mkdir(parents=True)
    TutorialSAC("MlpPolicy", ENV, policy_kwargs=TINY, seed=0).save(run / f"{ENV}.zip")
    hyperparams = {"n_timesteps": 400, "normalize": normalize, "policy": "MlpPolicy"}
    if normalize:
        hyperparams["train_freq"] = (1, "episode")
    hyperparams.update(config)
    (run / ENV / "config.yml").write_text(yaml.dump(OrderedDict(sorted(hyperparams.items()))))  # as rl-zoo3 writes it
    (run / ENV / "args.yml").write_text(yaml.dump(OrderedDict([("env", ENV), ("env_kwargs", None), ("seed", 3)])))
    if normalize:
        vec_normalize = VecNormalize(make_vec_env(ENV, n_envs=1))
        vec_normalize.obs_rms.mean = np.array([0.5, -0.5, 1.0])
        zoo.save_vec_normalize(vec_normalize, run / ENV / "vecnormalize.pkl")
    return root / "logs"


def zoo_enjoy(logs: pathlib.Path, *extra: str) -> None:
    """``sb3-tutorial-sac-zoo enjoy`` of the run folder ``logs``, 20 steps, in this process."""
    from sb3_tutorial_sac import zoo

    zoo.main(["enjoy", "--algo", "tutorial_sac", "--env", ENV, "-f", str(logs), "--no-render", "-n", "20", *extra])
