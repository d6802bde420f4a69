"""Bounds on what a file may describe (issues 20 and 33): tiny files that describe gigabytes (spaces, arrays, buffers,
networks, gradient steps) or inflate far beyond what they may hold fail fast in little memory, naming the file and the
field; JSON is read in linear time; the largest files within the bounds load. Each crafted file is built in its test
from a tiny model's own save; the memory cases run in a subprocess under a capped address space, hangs are bounded in
time."""

import copy
import functools
import io
import json
import os
import pathlib
import subprocess
import sys
import time
import warnings
import zipfile

import numpy as np
import pytest
import torch as th

from sb3_tutorial_sac import TutorialSAC, file_io, persistence, validation
from tests.helpers import TINY, rewrite_zip
from tests.helpers import bomb as _bomb
from tests.helpers import with_attributes as _with
from tests.helpers import zip_data as _data

REPO = pathlib.Path(__file__).resolve().parent.parent
# An unterminated string of escaped quotes: quadratic for the one-pass string pattern parse_json used before
UNTERMINATED = b'{"a":"' + b'\\"' * 2**18
# crafted files are written compressed, at zlib's default level (UNTERMINATED's 512 KiB in about 1 KB)
_rewrite = functools.partial(rewrite_zip, compression=zipfile.ZIP_DEFLATED, compresslevel=None)


def _timed(call, *args, **kwargs) -> tuple[BaseException | None, float]:
    start = time.perf_counter()
    try:
        call(*args, **kwargs)
    except BaseException as error:
        return error, time.perf_counter() - start
    return None, time.perf_counter() - start


# ----------------------------------------------------------------------------------------------- sizes, memory


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
        _rewrite(saved, files[name][0], compresslevel=1, data=content)
    files["info_bomb"] = (folder / "info_bomb.zip", {"print_system_info": True}, "system_info.txt inflates to")
    _rewrite(saved, files["info_bomb"][0], compresslevel=1, **{"system_info.txt": _bomb(2**25)})
    files["pth_bomb"] = (folder / "pth_bomb.zip", {}, "policy.pth inflates to")
    _rewrite(saved, files["pth_bomb"][0], compresslevel=1, **{"policy.pth": _bomb(2**27)})
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


def test_a_policy_of_many_tensors_within_every_bound_loads(tmp_path):
    """100 critics of 100 layers: about 40,000 tensors in policy.pth, whose pickling overhead passed the 1 MiB slack."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (the reference engine: the fast one writes out one or two critics)
        model = TutorialSAC("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=dict(pi=[8], qf=[2] * 100),
                            n_critics=100), seed=0)  # fmt: skip
        model.save(tmp_path / "model.zip")
        loaded = TutorialSAC.load(tmp_path / "model.zip")
    assert loaded.critic.n_critics == 100 and len(loaded.policy.state_dict()) > 40_000


@pytest.mark.expensive
def test_the_largest_critic_ensemble_within_the_bounds_loads(tmp_path):
    """100 critics x 100 layers of width 70: about 9.9e7 numbers, under the 1e8 a file may describe."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = TutorialSAC("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=dict(pi=[8], qf=[70] * 100),
                            n_critics=100), buffer_size=1000, seed=0)  # fmt: skip
        model.save(tmp_path / "model.zip")
        del model
        loaded = TutorialSAC.load(tmp_path / "model.zip")
    assert loaded.critic.n_critics == 100


BUFFER_CAPPED = """
import io, json, resource, sys, zipfile
import numpy as np
from sb3_tutorial_sac import TutorialSAC, validation
empty, crafted = sys.argv[1:3]
model = TutorialSAC("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=dict(pi=[8], qf=[8, 8])), buffer_size=10)
model.load_replay_buffer(empty)  # a real load first: imports done
mapped = validation.mapped_bytes()
# about the process's mapped size: under the whole limit (mapped + 1 GiB), far over the 1 GiB left
per_row = validation.replay_buffer_bytes(1, model.observation_space, model.action_space, False)
with zipfile.ZipFile(empty) as archive:
    meta = json.loads(str(np.load(io.BytesIO(archive.read("meta.npy")))[()]))
    members = {name: archive.read(name) for name in archive.namelist()}
meta["buffer_size"] = (mapped + 2**29) // per_row
content = io.BytesIO()
np.save(content, np.array(json.dumps(meta)))
members["meta.npy"] = content.getvalue()
with zipfile.ZipFile(crafted, "w") as archive:
    for name, data in members.items():
        archive.writestr(name, data)
resource.setrlimit(resource.RLIMIT_AS, (mapped + 2**30, resource.RLIM_INFINITY))  # 1 GiB more than mapped now
outcome = "loaded"
try:
    model.load_replay_buffer(crafted)
except BaseException as error:
    outcome = type(error).__name__ + ": " + str(error)[:500]
print(json.dumps([outcome, meta["buffer_size"] * per_row < mapped + 2**30]))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status to cap the address space")
def test_a_replay_buffer_under_the_limit_but_over_what_is_left_is_refused(tmp_path):
    model = TutorialSAC("MlpPolicy", "Pendulum-v1", policy_kwargs=TINY, buffer_size=10)
    empty = tmp_path / "empty.pkl"
    model.save_replay_buffer(empty)
    result = subprocess.run([sys.executable, "-c", BUFFER_CAPPED, str(empty), str(tmp_path / "crafted.pkl")], cwd=REPO,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    outcome, under_the_whole_limit = json.loads(result.stdout.strip().splitlines()[-1])
    assert under_the_whole_limit
    assert outcome.startswith("FileValueError") and "what is left of the address-space limit" in outcome, outcome


# ----------------------------------------------------------------------------------------------- JSON in linear time


def test_json_with_an_unterminated_run_of_escaped_quotes_is_refused_in_linear_time(trained, tmp_path):
    _, saved = trained
    crafted = tmp_path / "crafted.zip"
    _rewrite(saved, crafted, data=UNTERMINATED)
    with zipfile.ZipFile(crafted) as archive:
        assert archive.getinfo("data").compress_size < 2**11  # about 1 KB compressed
    error, seconds = _timed(TutorialSAC.load, crafted)
    assert isinstance(error, validation.FileValueError) and "crafted.zip" in str(error) and "not JSON" in str(error)
    assert seconds < 2.0, seconds  # (about 20 minutes before)
    # 64 MiB of it, the most a data member may hold: still linear
    error, seconds = _timed(file_io.parse_json, b'{"a":"' + b'\\"' * (validation.MAX_DATA_BYTES // 2 - 8), "big")
    assert isinstance(error, validation.FileValueError) and seconds < 10.0, seconds


def test_a_replay_buffer_meta_with_an_unterminated_string_is_refused_in_linear_time(trained, tmp_path):
    model, _ = trained
    path = tmp_path / "buffer.pkl"
    model.save_replay_buffer(path)
    meta = io.BytesIO()
    np.save(meta, np.array(UNTERMINATED[: 6 + 2 * 2**16].decode()))  # (a unicode array: 4 bytes a character)
    crafted = tmp_path / "crafted.pkl"
    _rewrite(path, crafted, **{"meta.npy": meta.getvalue()})
    error, seconds = _timed(model.load_replay_buffer, crafted)
    assert isinstance(error, ValueError) and "crafted.pkl" in str(error) and "not JSON" in str(error), error
    assert seconds < 2.0, seconds


def test_vecnormalize_statistics_with_an_unterminated_string_are_refused_in_linear_time(tmp_path):
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_tutorial_sac import zoo

    path = tmp_path / "vecnormalize.pkl"
    path.write_bytes(UNTERMINATED)
    error, seconds = _timed(zoo.load_vec_normalize, path, make_vec_env("Pendulum-v1", n_envs=1))
    assert isinstance(error, ValueError) and "vecnormalize.pkl" in str(error), error
    assert seconds < 2.0, seconds


def test_json_bounds_are_applied_as_it_is_read():
    # nesting, however the brackets hide in strings and escapes
    assert file_io.json_depth(b'{"a": "[[[[\\"]]", "b": "\\\\", "c": [[1]]}') == 3
    with pytest.raises(validation.FileValueError, match="nested more than 32 deep"):
        file_io.parse_json(b"[" * 33 + b"]" * 33, "f")
    assert file_io.parse_json(b"[" * 32 + b"]" * 32, "f") is not None
    # an integer too long for the bounds' arithmetic (10**400: an OverflowError before), or for Python's int (5000 digits)
    for digits in (401, 5000):
        with pytest.raises(validation.FileValueError, match=rf"'where' holds an integer of {digits} digits"):
            file_io.parse_json(b'{"buffer_size": 1' + b"0" * (digits - 1) + b"}", "'where'")
    assert file_io.parse_json(str({"state": 2**128 - 1}).replace("'", '"').encode(), "f") == {"state": 2**128 - 1}
    # a duplicate among many keys: found in linear time
    many = b"{" + b",".join(b'"k%d": 0' % i for i in range(200_000)) + b', "k7": 1}'
    error, seconds = _timed(file_io.parse_json, many, "f")
    assert isinstance(error, validation.FileValueError) and "['k7'] twice" in str(error) and seconds < 2.0


def test_a_model_file_with_a_huge_integer_is_refused_naming_the_file(trained, tmp_path):
    _, saved = trained
    crafted = tmp_path / "crafted.zip"
    data = _with(_data(saved), buffer_size=1).replace(b'"buffer_size": 1', b'"buffer_size": 1' + b"0" * 400)
    _rewrite(saved, crafted, data=data)
    with pytest.raises(validation.FileValueError, match=r"crafted.zip'\): data holds an integer of 401 digits"):
        TutorialSAC.load(crafted)


# ----------------------------------------------------------------------------------------------- gradient steps in chunks


def test_a_file_with_two_billion_gradient_steps_is_refused_before_anything_is_allocated(trained, tmp_path):
    _, saved = trained
    crafted = tmp_path / "crafted.zip"
    _rewrite(saved, crafted, data=_with(_data(saved), gradient_steps=2 * 10**9))
    with pytest.raises(validation.FileValueError, match=r"crafted.zip'\), field 'gradient_steps': 2000000000 gradient"):
        TutorialSAC.load(crafted)
    assert TutorialSAC.load(crafted, gradient_steps=-1).gradient_steps == -1  # the caller's value replaces it


@pytest.mark.parametrize("target_update_interval", [1, 3])
def test_minibatches_are_drawn_in_bounded_chunks_with_the_same_numbers(monkeypatch, target_update_interval):
    """With SB3's draw (with replacement, one env), drawing in chunks consumes the same random numbers: a call drawn
    in chunks gives bit for bit the parameters of the same call drawn at once."""

    def model():
        return TutorialSAC("MlpPolicy", "Pendulum-v1", policy_kwargs=TINY, seed=0, learning_starts=100,
                           train_freq=(200, "step"), gradient_steps=50, sample_with_replacement=True,
                           target_update_interval=target_update_interval)  # fmt: skip

    whole = model()
    whole.learn(400)
    chunked = model()
    drawn: list[int] = []
    sample = chunked._sample_minibatches
    monkeypatch.setattr(chunked, "_sample_minibatches", lambda steps, batch: drawn.append(steps) or sample(steps, batch))
    row = validation.replay_buffer_bytes(1, chunked.observation_space, chunked.action_space, False)
    monkeypatch.setattr(validation, "MAX_MINIBATCH_BYTES", 7 * row * chunked.batch_size)  # 7 steps' minibatches
    chunked.learn(400)
    chunk = 7 - 7 % target_update_interval
    assert drawn == ([chunk] * (50 // chunk) + ([50 % chunk] if 50 % chunk else [])) * 2  # two train() calls
    assert len(chunked.last_train_stats["actor_loss"]) == 50
    for name, tensor in whole.policy.state_dict().items():
        assert th.equal(tensor, chunked.policy.state_dict()[name]), name
    assert whole._n_updates == chunked._n_updates == 100
