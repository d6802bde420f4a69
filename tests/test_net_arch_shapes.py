"""Networks without hidden layers and the policy's default widths, next to SB3's SAC (issue 32).

``net_arch=[]`` (an actor of heads only), ``dict(pi=[], qf=[...])`` and ``net_arch=None`` (the policy's default) train,
save, load and predict as they do with SB3's ``SAC``, on every engine that ``engine="auto"`` can pick.
"""

import warnings

import numpy as np
import pytest
import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.env_util import make_vec_env

from sb3_tutorial_sac import TutorialSAC
from sb3_tutorial_sac.engines import AUTO
from tests.envs import BoxTargetEnv

pytestmark = pytest.mark.filterwarnings("ignore:The replay buffer holds")

SHAPES = {
    "no_hidden_layers": [],
    "actor_without_hidden_layers": dict(pi=[], qf=[8]),
    "default_widths": None,
}


def vec_env():
    return make_vec_env(lambda: BoxTargetEnv(episode_length=10), n_envs=1, seed=0)


def learn_save_load_predict(cls, tmp_path, net_arch, **kwargs):
    """``cls`` (SAC or TutorialSAC) learns 40 steps with ``net_arch``, saves, loads; the loaded model predicts."""
    model = cls("MlpPolicy", vec_env(), policy_kwargs=dict(net_arch=net_arch), batch_size=8, seed=0, **kwargs)
    model.learn(40)
    path = tmp_path / cls.__name__
    model.save(path)
    loaded = cls.load(path, env=vec_env())
    obs = loaded.get_env().reset()
    action, _ = loaded.predict(obs, deterministic=True)
    expected, _ = model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(action, expected)
    loaded.learn(20)  # and trains on after loading
    return model, loaded


@pytest.mark.parametrize("engine", AUTO)
@pytest.mark.parametrize("name", SHAPES)
def test_learns_saves_loads_predicts_as_sac_does(tmp_path, name, engine):
    net_arch = SHAPES[name]
    learn_save_load_predict(SAC, tmp_path, net_arch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the engine asked for is used: no fallback warning
        warnings.filterwarnings("ignore", message="TutorialSAC normalises sampled rewards")  # (not Pendulum-v1)
        model, loaded = learn_save_load_predict(TutorialSAC, tmp_path, net_arch, engine=engine)
    assert model.update_engine.name == engine
    assert loaded.update_engine.name == engine
    assert loaded.policy_kwargs == model.policy_kwargs


@pytest.mark.parametrize("name", SHAPES)
def test_auto_picks_the_fast_engine(name):
    model = TutorialSAC("MlpPolicy", vec_env(), policy_kwargs=dict(net_arch=SHAPES[name]), batch_size=8)
    assert model.update_engine.name == AUTO[0] == "fast"


def test_heads_only_actor_has_no_trunk():
    model = TutorialSAC("MlpPolicy", vec_env(), policy_kwargs=dict(net_arch=dict(pi=[], qf=[8])), batch_size=8)
    assert len(model.actor.latent_pi) == 0
    assert model.actor.mu.in_features == 4  # the heads read the observation


@pytest.mark.parametrize("name", ["no_hidden_layers", "actor_without_hidden_layers"])
def test_fast_engine_equals_reference_without_a_trunk(name):
    """The written-out step without a trunk: the reference engine's numbers, bit for bit."""
    params = []
    for engine in ("reference", "fast"):
        th.manual_seed(0)
        model = TutorialSAC(
            "MlpPolicy", vec_env(), policy_kwargs=dict(net_arch=SHAPES[name]), batch_size=8, seed=0, engine=engine
        )
        model.learn(40)
        params.append([p.detach().clone() for p in model.policy.parameters()])
    for reference, fast in zip(*params):
        assert th.equal(reference, fast)
