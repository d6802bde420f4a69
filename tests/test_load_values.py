"""A file's values get the constructor's checks (issues 20 and 33): every value, tensor and replay-buffer field a
crafted file gives is checked on one validation path, and refused with a ValueError naming the file and the field; a
refused set_parameters or load_replay_buffer leaves the model as it was. Each crafted file is built in its test from a
tiny model's own save."""

import copy
import functools
import io
import json
import pathlib
import zipfile

import numpy as np
import pytest
import torch as th

from sb3_tutorial_sac import TutorialSAC, persistence, validation
from tests.helpers import TINY, rewrite_zip
from tests.helpers import bomb as _bomb
from tests.helpers import with_attributes as _with
from tests.helpers import zip_data as _data

# crafted files are written compressed, at zlib's default level
_rewrite = functools.partial(rewrite_zip, compression=zipfile.ZIP_DEFLATED, compresslevel=None)


# ----------------------------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("gamma", 100, r"gamma must be in \[0, 1\], got 100"),
        ("gamma", float("nan"), r"gamma must be in \[0, 1\], got nan"),
        ("tau", -1, r"tau must be in \[0, 1\], got -1"),
        ("batch_size", "64", "batch_size must be a positive integer, got '64'"),
        ("entropy_term", "bogus", r"entropy_term must be one of \('tutorial', 'correct'\)"),
        ("reward_scale", 0, "reward_scale must be a finite non-zero number"),
        ("ent_coef", "auto_-1", "ent_coef must be 'auto'"),
        ("verbose", "loud", "verbose must be 0, 1 or 2, got 'loud'"),
        ("train_freq", {":tuple:": [0, "episode"]}, "train_freq must be a positive integer"),
        ("learning_starts", -5, "learning_starts must be an integer >= 0"),
        ("replay_buffer_kwargs", {"device": "cuda"}, "replay_buffer_kwargs must be None or a dict"),
        ("_last_obs", {":array:": {"dtype": "<f4", "shape": [1, 7], "fill": 0.0}}, r"float32 \(1, 7\), not float32 \(1, 3\)"),
    ],
)
def test_values_the_constructor_refuses_are_refused_on_load(trained, tmp_path, field, value, message):
    _, saved = trained
    _rewrite(saved, tmp_path / "crafted.zip", data=_with(_data(saved), **{field: value}))
    with pytest.raises(ValueError, match=rf"crafted.zip'\), field '{field}': {message}"):
        TutorialSAC.load(tmp_path / "crafted.zip")
    if field in validation.ARGUMENT_CHECKS:  # the constructor's own message, word for word
        with pytest.raises(ValueError, match=message):
            TutorialSAC("MlpPolicy", "Pendulum-v1", **{field: value})


@pytest.mark.parametrize(
    ("attributes", "field"),
    [
        ({"use_sde": True}, "use_sde"),
        ({"sde_sample_freq": "x"}, "sde_sample_freq"),
        ({"use_sde_at_warmup": "yes"}, "use_sde_at_warmup"),
        ({"use_sde_at_warmup": 0}, "use_sde_at_warmup"),
        (
            {"handle_timeout_termination": True, "replay_buffer_kwargs": {"handle_timeout_termination": False}},
            "handle_timeout_termination",
        ),
        (
            {
                "handle_timeout_termination": True,
                "replay_buffer_kwargs": {"handle_timeout_termination": True},
                "optimize_memory_usage": True,
            },
            "optimize_memory_usage",
        ),
        ({"seed": 2**40}, "seed"),
        ({"seed": -1}, "seed"),
    ],
    ids=[
        "use_sde",
        "sde_sample_freq",
        "use_sde_at_warmup",
        "use_sde_at_warmup_int",
        "timeouts_disagree",
        "memory_and_timeouts",
        "seed_2_40",
        "seed_negative",
    ],
)
def test_a_files_values_get_the_constructors_checks(trained, tmp_path, attributes, field):
    _, saved = trained
    crafted = tmp_path / "crafted.zip"
    _rewrite(saved, crafted, data=_with(_data(saved), **attributes))
    with pytest.raises(validation.FileValueError, match=rf"crafted.zip'\), field '{field}'"):
        TutorialSAC.load(crafted)


def _schedule(start, end, end_fraction) -> dict:
    return {":schedule:": {"class": "LinearSchedule", "start": start, "end": end, "end_fraction": end_fraction}}


def test_schedules_are_checked_over_the_whole_progress_range(trained, tmp_path):
    from stable_baselines3.common.utils import LinearSchedule

    _, saved = trained
    with pytest.raises(ValueError, match=r"learning_rate must be .* at progress remaining 0.\d+ it gives -"):
        TutorialSAC("MlpPolicy", "Pendulum-v1", learning_rate=LinearSchedule(3e-4, -3e-3, 1.0))
    with pytest.raises(ValueError, match=r"critic_learning_rate must be .*end_fraction is 0"):  # not ZeroDivisionError
        TutorialSAC("MlpPolicy", "Pendulum-v1", critic_learning_rate=LinearSchedule(3e-4, 1e-4, 0.0))
    # schedules that end at 0 (rl-zoo3's lin_3e-4, SB3's linear schedules) are learning rates
    TutorialSAC("MlpPolicy", "Pendulum-v1", policy_kwargs=TINY, learning_rate=LinearSchedule(3e-4, 0.0, 0.5))
    crafted = tmp_path / "crafted.zip"
    for schedule, message in ((_schedule(3e-4, -3e-3, 1.0), "it gives -"), (_schedule(3e-4, 1e-4, 0), "end_fraction is 0")):
        _rewrite(saved, crafted, data=_with(_data(saved), learning_rate=schedule))
        with pytest.raises(validation.FileValueError, match=rf"crafted.zip'\), field 'learning_rate': .*{message}"):
            TutorialSAC.load(crafted)


def test_duplicate_keys_are_refused(trained, tmp_path):
    _, saved = trained
    text = _data(saved)
    content = json.dumps(text).replace('"gamma": 0.99', '"gamma": 0.99, "gamma": 0.5').encode()
    assert content.count(b'"gamma"') == 2
    _rewrite(saved, tmp_path / "crafted.zip", data=content)
    with pytest.raises(ValueError, match=r"data gives the key \['gamma'\] twice in one object"):
        TutorialSAC.load(tmp_path / "crafted.zip")


def test_a_nan_episode_in_progress_is_refused_whatever_check_finite_says(trained, tmp_path):
    model, saved = trained
    data = _data(saved)
    obs = np.full((1, 3), np.nan, dtype=np.float32)
    crafted = tmp_path / "crafted.zip"
    last_obs = {":array:": {"dtype": "<f4", "shape": [1, 3], "fill": float("nan")}}
    _rewrite(saved, crafted, data=_with(data, check_finite=False, _last_obs=last_obs))
    assert obs.shape == (1, 3)
    with pytest.raises(validation.FileValueError, match=r"field '_last_obs': NaN or infinite values"):
        TutorialSAC.load(crafted)
    loaded = TutorialSAC.load(crafted, env=model.get_env(), force_reset=True)  # the caller's env and a reset: fine
    assert loaded.check_finite is False


# ----------------------------------------------------------------------------------------------- tensors


def _tensors(model: TutorialSAC, member: str, change) -> bytes:
    """The ``member.pth`` of ``model`` after ``change(state)``, as torch saves it."""
    _, variables = persistence.torch_save_params(model)
    if member == "pytorch_variables":
        state = {name: persistence.recursive_getattr(model, name).detach().clone() for name in variables}
    else:
        state = copy.deepcopy(persistence.recursive_getattr(model, member).state_dict())
    change(state)
    buffer = io.BytesIO()
    th.save(state, buffer)
    return buffer.getvalue()


def _nan_weight(state):
    state["actor.mu.weight"][0, 0] = float("nan")


def _complex(state):
    state["actor.mu.weight"] = state["actor.mu.weight"].to(th.complex64)


def _negative_square(state):
    state["state"][0]["exp_avg_sq"][0] = -1.0


def _stranger(state):
    state["state"][999] = copy.deepcopy(state["state"][0])


def _fused(state):
    state["param_groups"][0]["fused"] = True


def _nan_alpha(state):
    state["log_ent_coef"][0] = float("nan")


def _other_variable(state):
    state["policy.action_half_range"] = th.zeros(1)


@pytest.mark.parametrize(
    ("member", "change", "message"),
    [
        ("policy", _nan_weight, r"policy.actor.mu.weight: not finite"),
        ("policy", _complex, r"policy.actor.mu.weight: torch.complex64 of shape \(1, 8\) given, torch.float32"),
        ("actor.optimizer", _negative_square, "actor.optimizer group 0 state exp_avg_sq: negative values"),
        ("critic.optimizer", _stranger, r"critic.optimizer: states for parameters \['999'\]"),
        ("actor.optimizer", _fused, "actor.optimizer group 0 fused: True given, None in this model"),
        ("pytorch_variables", _nan_alpha, "pytorch_variables log_ent_coef: not finite"),
        ("pytorch_variables", _other_variable, r"pytorch_variables holds \['policy.action_half_range'\]"),
    ],
)
def test_inconsistent_tensors_are_refused(trained, tmp_path, member, change, message):
    model, saved = trained
    _rewrite(saved, tmp_path / "crafted.zip", **{f"{member}.pth": _tensors(model, member, change)})
    with pytest.raises(ValueError, match=message):
        TutorialSAC.load(tmp_path / "crafted.zip")
    if member != "pytorch_variables":  # set_parameters: refused, the model unchanged
        target = TutorialSAC.load(saved)
        before = copy.deepcopy(target.get_parameters())
        with pytest.raises(ValueError, match=message):
            target.set_parameters(tmp_path / "crafted.zip")
        params = copy.deepcopy(target.get_parameters())
        change(params[member])
        with pytest.raises(ValueError, match=message.split(":")[0].replace("policy.", "")):
            target.set_parameters(params)
        after = target.get_parameters()
        assert all(th.equal(a, b) for a, b in zip(before["policy"].values(), after["policy"].values()))
        action, _ = target.predict(np.zeros(3, dtype=np.float32), deterministic=True)
        assert np.isfinite(action).all()


# ----------------------------------------------------------------------------------------------- replay buffers


def _buffer_file(path: pathlib.Path, arrays: dict, meta: dict) -> None:
    with open(path, "wb") as file:
        np.savez(file, meta=np.array(json.dumps(meta)), **arrays)


@pytest.fixture(scope="module")
def buffer_file(trained, tmp_path_factory) -> tuple[dict, dict]:
    model, _ = trained
    path = tmp_path_factory.mktemp("buffer") / "buffer.pkl"
    model.save_replay_buffer(path)
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    meta = json.loads(str(arrays.pop("meta")[()]))
    assert meta["pos"] == 400 and not meta["full"] and arrays["rewards"].shape == (400, 1)
    return arrays, meta


def _float64(arrays):
    return {**arrays, "rewards": arrays["rewards"].astype(np.float64)}


def _nan_reward(arrays):
    rewards = arrays["rewards"].copy()
    rewards[3] = np.nan
    return {**arrays, "rewards": rewards}


@pytest.mark.parametrize(
    ("meta_change", "arrays_change", "message"),
    [
        (dict(full=True), None, r"observations is float32 \(400, 1, 3\), where the buffer .* stores float32 \(100000, 1, 3\)"),
        (dict(pos=500), None, r"observations is float32 \(400, 1, 3\), where .* stores float32 \(500, 1, 3\)"),
        (dict(pos=10**6), None, r"pos=1000000, not an integer in \[0, buffer_size=100000\)"),
        (dict(n_envs=2), None, "n_envs=2, and this model has 1 envs"),
        (dict(n_envs=0), None, "n_envs=0"),
        (dict(buffer_size="100000"), None, "buffer_size='100000'"),
        (dict(buffer_size=10**12), None, r"a replay buffer of buffer_size=1000000000000 needs"),
        (dict(**{"class": None}), None, "class=None"),
        (dict(pos=None), None, "pos=None"),
        ({}, _nan_reward, "rewards holds NaN or infinite values"),
        ({}, _float64, r"rewards is float64 \(400, 1\), where the buffer .* stores float32 \(400, 1\)"),
    ],
)
def test_replay_buffer_bookkeeping_is_checked(buffer_file, tmp_path, meta_change, arrays_change, message):
    arrays, meta = buffer_file
    meta = {key: value for key, value in meta.items() if key not in meta_change or meta_change[key] is not None}
    meta.update({key: value for key, value in meta_change.items() if value is not None})
    _buffer_file(tmp_path / "crafted.pkl", arrays_change(arrays) if arrays_change else arrays, meta)
    target = TutorialSAC("MlpPolicy", "Pendulum-v1", policy_kwargs=TINY, seed=0)
    before = target.replay_buffer
    with pytest.raises(ValueError, match=rf"crafted.pkl'\).*{message}"):
        target.load_replay_buffer(tmp_path / "crafted.pkl")
    assert target.replay_buffer is before


def test_a_replay_buffer_member_that_inflates_beyond_its_rows_is_refused(trained, buffer_file, tmp_path):
    arrays, meta = buffer_file
    _buffer_file(tmp_path / "good.pkl", arrays, meta)
    target = TutorialSAC("MlpPolicy", "Pendulum-v1", policy_kwargs=TINY, seed=0)
    target.load_replay_buffer(tmp_path / "good.pkl")
    assert target.replay_buffer.pos == 400 and np.array_equal(target.replay_buffer.rewards[:400], arrays["rewards"])
    # a header that claims a billion rows
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10**9, 1)})
    _rewrite(tmp_path / "good.pkl", tmp_path / "crafted.pkl", **{"rewards.npy": header.getvalue() + _bomb(2**20)})
    with pytest.raises(ValueError, match=r"rewards is float32 \(1000000000, 1\), where .* stores float32 \(400, 1\)"):
        target.load_replay_buffer(tmp_path / "crafted.pkl")


def test_a_replay_buffer_of_another_dtype_is_refused(trained, tmp_path):
    model, _ = trained
    path = tmp_path / "buffer.pkl"
    model.save_replay_buffer(path)
    with zipfile.ZipFile(path) as archive:
        meta = json.loads(str(np.load(io.BytesIO(archive.read("meta.npy")))[()]))
    space = meta["observation_space"][":space:"]
    space["dtype"] = "|i1"
    for bound in ("low", "high"):
        space[bound][":array:"]["dtype"] = "|i1"
        body = space[bound][":array:"]
        if "base64" in body:  # the int8 bounds of the same values
            import base64

            values = np.frombuffer(base64.b64decode(body["base64"]), dtype="<f4").astype(np.int8)
            body["base64"] = base64.b64encode(values.tobytes()).decode()
    content = io.BytesIO()
    np.save(content, np.array(json.dumps(meta)))
    crafted = tmp_path / "crafted.pkl"
    _rewrite(path, crafted, **{"meta.npy": content.getvalue()})
    with pytest.raises(validation.FileValueError, match=r"crafted.pkl'.*spaces of dtypes int8"):
        model.load_replay_buffer(crafted)


def test_a_short_npy_payload_is_refused_naming_the_member(trained, tmp_path):
    model, _ = trained
    path = tmp_path / "buffer.pkl"
    model.save_replay_buffer(path)
    with zipfile.ZipFile(path) as archive:
        rewards = archive.read("rewards.npy")
    crafted = tmp_path / "crafted.pkl"
    _rewrite(path, crafted, **{"rewards.npy": rewards[: len(rewards) - 8]})
    with pytest.raises(validation.FileValueError, match=r"crafted.pkl'\): rewards.npy is not a whole npy array"):
        model.load_replay_buffer(crafted)
