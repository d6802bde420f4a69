"""Files built by an attacker (issues 20 and 33) run nothing and decide nothing: pickles anywhere in a model or replay
buffer file are refused and never unpickled, attributes beyond the allow-list and classes beyond torch's and SB3's are
refused, an env named in a file is never made or imported, a file chooses neither where learn() writes nor an engine
that loads native code; ``trusted=True`` opens each. Each crafted file is built in its test from a tiny model's own
save; code that must not run leaves a sentinel marker if it does."""

import base64
import io
import json
import pathlib
import pickle
import sys
import warnings

import cloudpickle
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.env_util import make_vec_env

from sb3_tutorial_sac import TutorialSAC
from tests.helpers import TINY, Payload
from tests.helpers import tiny_model as _model
from tests.helpers import rewrite_zip as _rewrite
from tests.helpers import with_attributes as _with
from tests.helpers import zip_data as _data


def _replaced(data: dict, name: str, value) -> bytes:
    return json.dumps({**data, "attributes": {**data["attributes"], name: value}}).encode()


@pytest.fixture(scope="module")
def saved(trained) -> pathlib.Path:
    """A trained tiny Pendulum model's file."""
    return trained[1]


# ----------------------------------------------------------------------------------------------- pickles


def test_pickled_data_entries_are_refused_and_never_run(saved, tmp_path):
    data = _data(saved)
    sentinel = tmp_path / "pwned"
    blob = base64.b64encode(cloudpickle.dumps(Payload(sentinel))).decode()
    forms = [{":pickled:": blob}, {":type:": "<class 'Payload'>", ":serialized:": blob}]
    nested = {"policy_kwargs": {"net_arch": forms[0]}, "_rng_state": {"python": [forms[1]]}}
    cases = [(name, form) for name in data["attributes"] for form in forms] + list(nested.items())
    assert len(data["attributes"]) > 30
    for name, value in cases:
        crafted = tmp_path / "crafted.zip"
        _rewrite(saved, crafted, data=_replaced(data, name, value))
        with pytest.raises(ValueError, match=r"trusted=True"):
            TutorialSAC.load(crafted)
        assert not sentinel.exists(), name
    # SB3's own format (a data entry with :serialized:, no format marker): refused too
    sb3_data = {name: value for name, value in data["attributes"].items() if name != "policy_class"}
    sb3_data["policy_class"] = {
        ":type:": "<class 'abc.ABCMeta'>",
        ":serialized:": blob,
        "__module__": "sb3_tutorial_sac.policies",
    }
    _rewrite(saved, crafted, data=json.dumps(sb3_data).encode())
    with pytest.raises(ValueError, match=r"policy_class.*trusted=True"):
        TutorialSAC.load(crafted)
    assert not sentinel.exists()
    # the payload is real: with the opt-in, the file's pickle runs
    _rewrite(saved, crafted, data=_replaced(data, "tensorboard_log", forms[0]))
    TutorialSAC.load(crafted, trusted=True)
    assert sentinel.exists()


@pytest.mark.parametrize(
    "member", ["policy", "actor.optimizer", "critic.optimizer", "ent_coef_optimizer", "pytorch_variables", "extra"]
)
def test_pickled_tensor_members_are_refused_and_never_run(saved, tmp_path, member):
    sentinel = tmp_path / "pwned"
    as_torch = io.BytesIO()
    th.save({"weight": Payload(sentinel)}, as_torch)
    for content in (as_torch.getvalue(), pickle.dumps(Payload(sentinel))):
        crafted = tmp_path / "crafted.zip"
        _rewrite(saved, crafted, **{f"{member}.pth": content})
        with pytest.raises(ValueError, match=rf"{member}.pth is not plain tensors.*weights_only"):
            TutorialSAC.load(crafted)
        with pytest.raises(ValueError, match="weights_only"):
            _model().set_parameters(crafted)
        assert not sentinel.exists()


def test_pickled_replay_buffers_are_refused_and_never_run(tmp_path):
    model = _model()
    sentinel = tmp_path / "pwned"
    (tmp_path / "buffer.pkl").write_bytes(pickle.dumps(Payload(sentinel)))
    with pytest.raises(ValueError, match=r"load_replay_buffer\(path, trusted=True\)"):
        model.load_replay_buffer(tmp_path / "buffer.pkl")
    assert not sentinel.exists()
    # an npz whose arrays are pickled objects (np.savez pickles object arrays)
    model.learn(50)
    model.save_replay_buffer(tmp_path / "good.pkl")
    with np.load(tmp_path / "good.pkl") as npz:
        arrays = dict(npz)
    for name in ("meta", "observations"):
        with open(tmp_path / "crafted.pkl", "wb") as file:
            np.savez(file, **{**arrays, name: np.array([Payload(sentinel)], dtype=object)})
        with pytest.raises(ValueError, match="trusted=True"):
            model.load_replay_buffer(tmp_path / "crafted.pkl")
        assert not sentinel.exists()
    # the payload is real: with the opt-in, SB3's loader unpickles it
    with pytest.raises(AssertionError):  # (SB3 then finds it is not a ReplayBuffer)
        model.load_replay_buffer(tmp_path / "buffer.pkl", trusted=True)
    assert sentinel.exists()


def test_attributes_beyond_the_allow_list_and_classes_beyond_torch_and_sb3_are_refused(saved, tmp_path):
    data = _data(saved)
    for name, value in (("_setup_model", 1), ("__class__", "TutorialSAC"), ("lr_schedule", {":class:": "torch.nn.ReLU"})):
        _rewrite(saved, tmp_path / "crafted.zip", data=_replaced(data, name, value))
        with pytest.raises(ValueError, match=rf"\['{name}'\] beyond those a TutorialSAC file holds.*trusted=True"):
            TutorialSAC.load(tmp_path / "crafted.zip")
    for value in ({":class:": "os.system"}, {":class:": "torch.nn.functional.relu"}, {":class:": "builtins.eval"}):
        _rewrite(saved, tmp_path / "crafted.zip", data=_replaced(data, "replay_buffer_class", value))
        with pytest.raises(ValueError, match="is not a class of"):
            TutorialSAC.load(tmp_path / "crafted.zip")


# ------------------------------------------------------------------- names never imported, folders and engines never chosen


def test_an_env_named_in_a_file_is_never_made_or_imported(trained, tmp_path, monkeypatch):
    model, saved = trained
    sentinel = tmp_path / "pwned"
    (tmp_path / "evilmod.py").write_text(f"open({str(sentinel)!r}, 'w').close()\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # as for a script's folder, Jupyter, python -c, python -m
    data = _data(saved)
    for env in ("evilmod:Pendulum-v1", "this:Pendulum-v1", "Pendulum-v1"):
        crafted = tmp_path / "crafted.zip"
        _rewrite(saved, crafted, data=_with(data, env=env))
        with pytest.raises(ValueError, match=r"crafted.zip'\), field 'env'.*never makes or imports an env.*env=\.\.\."):
            TutorialSAC.load(crafted)
        assert not sentinel.exists() and "evilmod" not in sys.modules
    # the caller's env: the file's name is not used
    loaded = TutorialSAC.load(crafted, env=make_vec_env("Pendulum-v1", n_envs=1))
    assert loaded.num_timesteps == model.num_timesteps and not sentinel.exists()
    # trusted=True: the file may name its env (gym.make imports what it names)
    _rewrite(saved, crafted, data=_with(data, env="evilmod:Pendulum-v1"))
    assert TutorialSAC.load(crafted, trusted=True).get_env() is not None
    assert sentinel.exists()
    sys.modules.pop("evilmod", None)  # (imported now: gone for the tests that follow)


def test_a_file_does_not_decide_where_learn_writes(trained, tmp_path):
    _, saved = trained
    _rewrite(saved, tmp_path / "crafted.zip", data=_with(_data(saved), tensorboard_log="/etc/cron.d"))
    loaded = TutorialSAC.load(tmp_path / "crafted.zip", env=make_vec_env("Pendulum-v1", n_envs=1))
    assert loaded.tensorboard_log is None  # not used, said by learn() (issue 32: a load to predict stays quiet)
    with pytest.warns(UserWarning, match=r"tensorboard_log='/etc/cron.d'.*does not log.*load\(path, tensorboard_log=\.\.\.\)"):
        loaded.learn(1)
    assert loaded.tensorboard_log is None
    assert TutorialSAC.load(tmp_path / "crafted.zip", tensorboard_log=str(tmp_path)).tensorboard_log == str(tmp_path)
    assert TutorialSAC.load(tmp_path / "crafted.zip", trusted=True).tensorboard_log == "/etc/cron.d"


def test_a_file_does_not_choose_the_compiled_engine(tmp_path):
    model = TutorialSAC("MlpPolicy", "Pendulum-v1", policy_kwargs=TINY, engine="compiled", seed=0)
    path = tmp_path / "model.zip"
    model.save(path)
    with pytest.warns(UserWarning, match=r"model.zip'\) names engine='compiled'; a file does not choose an engine that "
                                         r"loads native code, so the model uses engine='auto'"):  # fmt: skip
        loaded = TutorialSAC.load(path)
    assert loaded.engine == "auto" and loaded.update_engine.name == "fast"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert TutorialSAC.load(path, engine="compiled").update_engine.name == "compiled"  # the caller's choice
        assert TutorialSAC.load(path, trusted=True).update_engine.name == "compiled"
        fast = TutorialSAC("MlpPolicy", "Pendulum-v1", policy_kwargs=TINY, engine="reference", seed=0)
        fast.save(path)
        assert TutorialSAC.load(path).engine == "reference"  # engines that load no native code: as the file says
