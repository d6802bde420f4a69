"""A zoo run folder's wrapper arguments are values (issue 33): config.yml's env and VecEnv wrapper arguments that name
files or folders, or stack beyond bounds, are refused before anything is written; plain arguments still work. The
folders are written as rl-zoo3 writes them, without normalisation; enjoy runs in this process."""

import functools
import time

import pytest

pytest.importorskip("rl_zoo3", reason="rl-zoo3 integration needs the zoo extra: pip install '.[zoo]'")

from tests.helpers import zoo_enjoy as _enjoy
from tests.helpers import zoo_run_folder

# a run folder without normalisation (no VecNormalize statistics)
_run_folder = functools.partial(zoo_run_folder, normalize=False)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"env_wrapper": [{"stable_baselines3.common.monitor.Monitor": {"filename": "../../x"}}]},
            r"env_wrapper stable_baselines3.common.monitor.Monitor: filename='../../x' names a file or folder",
        ),
        (
            {"vec_env_wrapper": [{"stable_baselines3.common.vec_env.VecMonitor": {"filename": "../../x"}}]},
            r"vec_env_wrapper stable_baselines3.common.vec_env.VecMonitor: filename='../../x' names a file",
        ),
        (
            {"env_wrapper": [{"stable_baselines3.common.monitor.Monitor": {"info_keywords": ["../../x"]}}]},
            r"the string '../../x' is a path",
        ),
        (
            {"vec_env_wrapper": [{"stable_baselines3.common.vec_env.VecFrameStack": {"n_stack": 10**9}}]},
            r"VecFrameStack: n_stack is 1000000000, not an integer in \[0, 1024\]",
        ),
        (
            {"env_wrapper": [{"gymnasium.wrappers.FrameStackObservation": {"stack_size": 10**9}}]},
            r"stack_size is 1000000000, not an integer in \[0, 1024\]",
        ),
        ({"frame_stack": 10**9}, r"config.yml: frame_stack is 1000000000, not an integer in \[0, 1024\]"),
    ],
    ids=["monitor_filename", "vecmonitor_filename", "path_in_a_list", "vecframestack", "framestack", "frame_stack"],
)
def test_zoo_folder_wrapper_arguments_are_checked_as_values(tmp_path, monkeypatch, config, message):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    logs = _run_folder(tmp_path / "run", **config)
    start = time.perf_counter()
    with pytest.raises(SystemExit, match=rf"sb3-tutorial-sac-zoo enjoy: refused: .*{message}.*--trusted"):
        _enjoy(logs)
    assert time.perf_counter() - start < 30
    assert not list(tmp_path.glob("x*")) and not list(tmp_path.rglob("*.monitor.csv"))  # nothing written anywhere


def test_zoo_folder_plain_wrapper_arguments_still_work(tmp_path, monkeypatch):
    from sb3_tutorial_sac import zoo

    monkeypatch.chdir(tmp_path)
    wrapper = {"stable_baselines3.common.monitor.Monitor": {"filename": None, "info_keywords": ["is_success"][:0]}}
    _enjoy(_run_folder(tmp_path / "run", env_wrapper=[wrapper, "gymnasium.wrappers.ClipAction"], frame_stack=0))
    zoo.check_wrapper_kwargs({"max_episode_steps": 1000, "n_stack": 4, "clip": 5.0, "keys": ["a", "b"]}, "w")
    with pytest.raises(zoo.RefusedError, match="beyond"):
        zoo.check_wrapper_kwargs({"max_episode_steps": 10**12}, "w")
    with pytest.raises(zoo.RefusedError, match="not a plain value"):
        zoo.check_wrapper_kwargs({"x": object()}, "w")
    for key in ("filename", "log_dir", "video_folder", "save_path"):  # keywords by their words: file, dir, folder, path
        with pytest.raises(zoo.RefusedError, match="names a file or folder"):
            zoo.check_wrapper_kwargs({key: "x"}, "w")
    zoo.check_wrapper_kwargs({"direction": "x", "profile": "y"}, "w")  # (words that only contain one)
