"""Crafted input, third round (issue 33): JSON read in linear time, the compiled engine's cache as a private place, zoo
folders' wrapper arguments checked as values, and one validation path for every value a file gives. Each crafted file is
built in its test from a tiny model's own save; code that must not run leaves a sentinel marker if it does, memory
cases run in a subprocess under a capped address space, hangs are bounded in time."""

import io
import json
import pathlib
import time
import zipfile

import numpy as np
import pytest

from sb3_tutorial_sac import TutorialSAC, persistence, validation

TINY = dict(net_arch=dict(pi=[8], qf=[8, 8]))
REPO = pathlib.Path(__file__).resolve().parent.parent
# An unterminated string of escaped quotes: quadratic for the one-pass string pattern parse_json used before
UNTERMINATED = b'{"a":"' + b'\\"' * 2**18


def _rewrite(source: pathlib.Path, target: pathlib.Path, **members: bytes) -> None:
    """Copy the zip ``source`` to ``target`` with some members replaced (or added), compressed."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as new:
        for name in old.namelist():
            new.writestr(name, members.pop(name, None) or old.read(name))
        for name, content in members.items():
            new.writestr(name, content)


def _data(path: pathlib.Path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("data"))


def _with(data: dict, **attributes) -> bytes:
    return json.dumps({**data, "attributes": {**data["attributes"], **attributes}}).encode()


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[TutorialSAC, pathlib.Path]:
    """A trained tiny Pendulum model and its file."""
    model = TutorialSAC("MlpPolicy", "Pendulum-v1", policy_kwargs=TINY, seed=0)
    model.learn(400)
    path = tmp_path_factory.mktemp("trained") / "model.zip"
    model.save(path)
    return model, path


def _timed(call, *args, **kwargs) -> tuple[BaseException | None, float]:
    start = time.perf_counter()
    try:
        call(*args, **kwargs)
    except BaseException as error:
        return error, time.perf_counter() - start
    return None, time.perf_counter() - start


# ----------------------------------------------------------------------------------------------- 2. JSON in linear time


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
    error, seconds = _timed(persistence.parse_json, b'{"a":"' + b'\\"' * (validation.MAX_DATA_BYTES // 2 - 8), "big")
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
    assert persistence.json_depth(b'{"a": "[[[[\\"]]", "b": "\\\\", "c": [[1]]}') == 3
    with pytest.raises(validation.FileValueError, match="nested more than 32 deep"):
        persistence.parse_json(b"[" * 33 + b"]" * 33, "f")
    assert persistence.parse_json(b"[" * 32 + b"]" * 32, "f") is not None
    # an integer too long for the bounds' arithmetic (10**400: an OverflowError before), or for Python's int (5000 digits)
    for digits in (401, 5000):
        with pytest.raises(validation.FileValueError, match=rf"'where' holds an integer of {digits} digits"):
            persistence.parse_json(b'{"buffer_size": 1' + b"0" * (digits - 1) + b"}", "'where'")
    assert persistence.parse_json(str({"state": 2**128 - 1}).replace("'", '"').encode(), "f") == {"state": 2**128 - 1}
    # a duplicate among many keys: found in linear time
    many = b"{" + b",".join(b'"k%d": 0' % i for i in range(200_000)) + b', "k7": 1}'
    error, seconds = _timed(persistence.parse_json, many, "f")
    assert isinstance(error, validation.FileValueError) and "['k7'] twice" in str(error) and seconds < 2.0


def test_a_model_file_with_a_huge_integer_is_refused_naming_the_file(trained, tmp_path):
    _, saved = trained
    crafted = tmp_path / "crafted.zip"
    data = _with(_data(saved), buffer_size=1).replace(b'"buffer_size": 1', b'"buffer_size": 1' + b"0" * 400)
    _rewrite(saved, crafted, data=data)
    with pytest.raises(validation.FileValueError, match=r"crafted.zip'\): data holds an integer of 401 digits"):
        TutorialSAC.load(crafted)
