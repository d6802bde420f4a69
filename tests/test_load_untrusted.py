"""Crafted files (issue 20): a model, replay buffer or parameters file built by an attacker gets a ValueError naming the
file and the field, quickly and in little memory, and runs nothing. Each crafted file is built in its test from a tiny
model's own save; the memory and size cases run in a subprocess under a capped address space."""

import copy
import io
import json
import os
import pathlib
import stat
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.env_util import make_vec_env

from sb3_tutorial_sac import TutorialSAC, persistence, validation
from tests.helpers import rewrite_zip as _rewrite
from tests.helpers import zip_data as _data

TINY = dict(net_arch=dict(pi=[8], qf=[8, 8]))
REPO = pathlib.Path(__file__).resolve().parent.parent


def _with(data: dict, **attributes) -> bytes:
    return json.dumps({**data, "attributes": {**data["attributes"], **attributes}}).encode()


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


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[TutorialSAC, pathlib.Path]:
    """A trained tiny Pendulum model and its file."""
    model = TutorialSAC("MlpPolicy", "Pendulum-v1", policy_kwargs=TINY, seed=0)
    model.learn(400)
    path = tmp_path_factory.mktemp("trained") / "model.zip"
    model.save(path)
    return model, path


# ----------------------------------------------------------------------------------------------- 1. names never imported


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


# ----------------------------------------------------------------------------------------------- 2. sizes, memory


def _bomb(size: int) -> bytes:
    """``size`` bytes that deflate to almost nothing."""
    return b" " * size


def craft_size_cases(saved: pathlib.Path, folder: pathlib.Path) -> dict[str, tuple[pathlib.Path, dict, str]]:
    """
    Tiny files that describe gigabytes (spaces, arrays, buffers, networks) or inflate far beyond what they may hold
    (zip bombs: 128 MiB here, enough to pass every bound; the refusal reads the size a member declares, which zipfile
    never inflates beyond): name -> (file, load kwargs, the field the error names).
    """
    data = _data(saved)
    observation_space = copy.deepcopy(data["attributes"]["observation_space"])
    observation_space[":space:"]["low"] = {":array:": {"dtype": "<f4", "shape": [10**9], "fill": -1.0}}
    observation_space[":space:"]["high"] = {":array:": {"dtype": "<f4", "shape": [10**9], "fill": 1.0}}
    nested = {"net_arch": 0}
    for _ in range(900):
        nested = {"a": nested}
    cases = {
        "observation_space": (_with(data, observation_space=observation_space), "observation_space"),
        "tau": (_with(data, tau={":array:": {"dtype": "<f8", "shape": [10**9], "fill": 0.5}}), "tau"),
        "buffer_size": (_with(data, buffer_size=10**9), "buffer_size"),
        "n_critics": (_with(data, policy_kwargs={"net_arch": [8], "n_critics": 10**5}), "n_critics"),
        "net_arch": (_with(data, policy_kwargs={"net_arch": [20000, 20000]}), "the policy would hold"),
        "depth": (_with(data, policy_kwargs=nested), "nested more than"),
        "data_bomb": (_bomb(2**27), "member data inflates to"),
    }
    files = {}
    for name, (content, field) in cases.items():
        files[name] = (folder / f"{name}.zip", {}, field)
        _rewrite(saved, files[name][0], compression=zipfile.ZIP_DEFLATED, data=content)
    files["info_bomb"] = (folder / "info_bomb.zip", {"print_system_info": True}, "system_info.txt inflates to")
    _rewrite(saved, files["info_bomb"][0], compression=zipfile.ZIP_DEFLATED, **{"system_info.txt": _bomb(2**25)})
    files["pth_bomb"] = (folder / "pth_bomb.zip", {}, "policy.pth inflates to")
    _rewrite(saved, files["pth_bomb"][0], compression=zipfile.ZIP_DEFLATED, **{"policy.pth": _bomb(2**27)})
    return files


CAPPED = """
import json, resource, sys, time
import pathlib
from sb3_tutorial_sac import TutorialSAC
folder = pathlib.Path(sys.argv[1])
names = sys.argv[2:]
TutorialSAC.load(folder / "model.zip")  # a real load first: imports done, as in a program that loads files
mapped = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (mapped + 2**29, resource.RLIM_INFINITY))  # 512 MiB more than mapped now
results = {}
for name in names:
    kwargs = json.loads((folder / (name + ".json")).read_text())
    start = time.perf_counter()
    outcome, is_value_error = "loaded", False
    try:
        TutorialSAC.load(folder / (name + ".zip"), **kwargs)
    except BaseException as error:
        outcome, is_value_error = type(error).__name__ + ": " + str(error)[:1000], isinstance(error, ValueError)
    results[name] = [outcome, time.perf_counter() - start, is_value_error]
print(json.dumps(results))
"""


@pytest.mark.expensive
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status to cap the address space")
def test_tiny_files_that_describe_gigabytes_fail_fast_in_little_memory(trained, tmp_path):
    _, saved = trained
    (tmp_path / "model.zip").write_bytes(saved.read_bytes())
    cases = craft_size_cases(saved, tmp_path)
    for name, (path, kwargs, _) in cases.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(kwargs))
        assert path.stat().st_size < 4 * 2**20, name  # a few MB at most
    result = subprocess.run(
        [sys.executable, "-c", CAPPED, str(tmp_path), *cases],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(result.stdout.strip().splitlines()[-1])
    for name, (_, _, field) in cases.items():
        outcome, seconds, is_value_error = results[name]
        assert is_value_error and outcome.startswith("FileValueError") and field in outcome, (name, outcome)
        assert seconds < 1.0, (name, seconds)
    assert "buffer_size.zip'), field 'buffer_size'" in results["buffer_size"][0]
    assert "load(path, buffer_size=...)" in results["buffer_size"][0]


def test_size_cases_load_when_trusted_or_overridden(trained, tmp_path):
    """The bounds hold for files that are not trusted; a caller's own value replaces a file's."""
    _, saved = trained
    cases = craft_size_cases(saved, tmp_path)
    # rl-zoo3's enjoy passes buffer_size=1: a file's buffer_size then does not matter
    assert TutorialSAC.load(cases["buffer_size"][0], buffer_size=1).buffer_size == 1
    # a system_info.txt is only read when printed
    assert TutorialSAC.load(cases["info_bomb"][0]).num_timesteps == 400


# ----------------------------------------------------------------------------------------------- 3. values


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


def test_duplicate_keys_are_refused(trained, tmp_path):
    _, saved = trained
    text = _data(saved)
    content = json.dumps(text).replace('"gamma": 0.99', '"gamma": 0.99, "gamma": 0.5').encode()
    assert content.count(b'"gamma"') == 2
    _rewrite(saved, tmp_path / "crafted.zip", data=content)
    with pytest.raises(ValueError, match=r"data gives the key \['gamma'\] twice in one object"):
        TutorialSAC.load(tmp_path / "crafted.zip")


# ----------------------------------------------------------------------------------------------- 4. tensors


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


# ----------------------------------------------------------------------------------------------- 5. replay buffers


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


# ----------------------------------------------------------------------------------------------- 6. permission bits


def test_save_keeps_the_permission_bits_of_the_file_it_replaces(trained, tmp_path):
    model, _ = trained
    for name, save in (("model.zip", model.save), ("buffer.pkl", model.save_replay_buffer)):
        path = tmp_path / name
        save(path)
        os.chmod(path, 0o600)
        save(path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
        os.chmod(path, 0o640)
        save(path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, name
    # a new file gets open()'s mode, as before
    umask = os.umask(0o022)
    try:
        model.save(tmp_path / "new.zip")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "new.zip").stat().st_mode) == 0o644


@pytest.mark.parametrize(
    "policy_kwargs",
    [{}, dict(net_arch=[64, 32], n_critics=3), dict(net_arch=dict(pi=[], qf=[5]), activation_fn=th.nn.Tanh)],
)
def test_the_policy_is_counted_before_it_is_built(policy_kwargs):
    """The size bound counts a policy from its values, on the meta device (one counter, for every policy)."""
    model = TutorialSAC("MlpPolicy", "Pendulum-v1", policy_kwargs=policy_kwargs)
    built = sum(tensor.numel() for tensor in model.policy.state_dict().values())
    counted = persistence.count_parameters(model.policy_class, model.observation_space, model.action_space, policy_kwargs)
    assert counted == built
