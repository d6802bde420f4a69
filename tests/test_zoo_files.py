"""rl-zoo3's files as data: a run's folder (config.yml, args.yml, VecNormalize statistics) is read as data and nothing
from it runs without --trusted; checkpoints and the replay buffer are this package's files; plot_from_file unpickles
arrays only, bounded before it allocates. Tiny budgets; the zoo's scripts run in this process or in subprocesses."""

import json
import pathlib
import pickle
import subprocess
import sys

import numpy as np
import pytest
import yaml

pytest.importorskip("rl_zoo3", reason="rl-zoo3 integration needs the zoo extra: pip install '.[zoo]'")

from sb3_tutorial_sac import TutorialSAC, persistence, zoo
from tests.helpers import ENV, Payload, train_args, zoo_cli
from tests.helpers import zip_data as _data
from tests.helpers import zoo_enjoy as _enjoy
from tests.helpers import zoo_run_folder as _run_folder

REPO = pathlib.Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------------------------- a run's folder


def test_vecnormalize_statistics_round_trip_as_data(tmp_path: pathlib.Path) -> None:
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    saved = VecNormalize(make_vec_env(ENV, n_envs=1), clip_obs=5.0, gamma=0.9)
    saved.obs_rms.mean, saved.obs_rms.var, saved.obs_rms.count = np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0]), 7.0
    saved.ret_rms.var = np.array(2.5)
    zoo.save_vec_normalize(saved, tmp_path / "vecnormalize.pkl")
    assert json.loads((tmp_path / "vecnormalize.json").read_text())["format"] == zoo.VECNORMALIZE_FORMAT
    loaded = zoo.load_vec_normalize(tmp_path / "vecnormalize.pkl", make_vec_env(ENV, n_envs=1))
    for rms in ("obs_rms", "ret_rms"):
        for field in ("mean", "var", "count"):
            assert np.array_equal(getattr(getattr(loaded, rms), field), getattr(getattr(saved, rms), field)), (rms, field)
    assert (loaded.clip_obs, loaded.gamma, loaded.norm_obs, loaded.norm_reward) == (5.0, 0.9, True, True)
    # statistics of another env are refused
    with pytest.raises(zoo.RefusedError, match="not VecNormalize statistics for this env"):
        zoo.load_vec_normalize(tmp_path / "vecnormalize.pkl", make_vec_env("MountainCarContinuous-v0", n_envs=1))


def test_enjoy_reads_a_folder_as_data(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import yaml as yaml_module

    monkeypatch.chdir(tmp_path)
    unsafe_loader = yaml_module.UnsafeLoader
    logs = _run_folder(tmp_path / "good", env_wrapper="gymnasium.wrappers.ClipAction", policy_kwargs="dict(net_arch=[8])")
    _enjoy(logs)  # the project's own folder: no --trusted needed
    assert "Loading running average" in capsys.readouterr().out
    assert yaml_module.UnsafeLoader is unsafe_loader  # everything put back

    sentinel = tmp_path / "pwned"
    monkeypatch.delitem(sys.modules, "evilzoo", raising=False)
    (tmp_path / "evilzoo.py").write_text(f"open({str(sentinel)!r}, 'w').close()\nWrapper = None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    crafted = {
        "yaml_tag": ("config.yml", f"n_timesteps: !!python/object/apply:os.system ['touch {sentinel}']\n", "the tag"),
        "yaml_args": ("args.yml", f"env_kwargs: !!python/object/apply:os.system ['touch {sentinel}']\n", "the tag"),
        "normalize_eval": ("config.yml", f"normalize: \"__import__('os').system('touch {sentinel}')\"\n", "normalize is"),
        "env_wrapper": ("config.yml", "normalize: false\nenv_wrapper: evilzoo.Wrapper\n", "env_wrapper names 'evilzoo"),
        "vecnormalize": ("vecnormalize.pkl", Payload(sentinel), "is a pickle"),
    }
    for case, (name, content, message) in crafted.items():
        logs = _run_folder(tmp_path / case)
        target = logs / "tutorial_sac" / f"{ENV}_1" / ENV / name
        target.write_bytes(pickle.dumps(content)) if isinstance(content, Payload) else target.write_text(content)
        if case == "vecnormalize":  # the pickle alone (the JSON beside it, when there, is read instead)
            target.with_suffix(".json").unlink()
        with pytest.raises(SystemExit, match=rf"sb3-tutorial-sac-zoo enjoy: refused: .*{message}.*--trusted"):
            _enjoy(logs)
        assert not sentinel.exists() and "evilzoo" not in sys.modules, case
        assert yaml_module.UnsafeLoader is unsafe_loader
    # --trusted: rl-zoo3's own readers, which run what the folder holds
    with pytest.raises(Exception):  # noqa: B017 (the payload returns no VecNormalize: rl-zoo3 fails after it ran)
        _enjoy(tmp_path / "vecnormalize" / "logs", "--trusted")
    assert sentinel.exists()


@pytest.mark.expensive
def test_zoo_flows_with_vecnormalize_need_no_trust(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """train (VecNormalize, checkpoints, replay buffer), enjoy (last, best, checkpoint) and train -i on a folder of the
    project's own making, without --trusted: its VecNormalize statistics are data."""
    conf = tmp_path / "normalize.yml"
    conf.write_text(yaml.safe_dump({ENV: {"n_timesteps": 400, "policy": "MlpPolicy", "normalize": True}}))
    logs = tmp_path / "logs"
    extra = ("--conf-file", str(conf), "--eval-freq", "200", "--eval-episodes", "1", "--save-freq", "200")
    zoo_cli(*train_args("tutorial_sac", logs, *extra, "--save-replay-buffer"), cwd=tmp_path)
    run = logs / "tutorial_sac" / f"{ENV}_1"
    stats = json.loads((run / ENV / "vecnormalize.json").read_text())  # data, beside rl-zoo3's pickle
    assert stats["format"] == zoo.VECNORMALIZE_FORMAT and stats["obs_rms"]["count"] > 400
    monkeypatch.chdir(tmp_path)
    for choice in ([], ["--load-best"], ["--load-checkpoint", "200"]):
        _enjoy(logs, *choice)
        assert "Loading running average" in capsys.readouterr().out, choice
    out = zoo_cli(*train_args("tutorial_sac", logs, "--conf-file", str(conf), "-n", "200", "--eval-freq", "-1",
                              "-i", str(run / f"{ENV}.zip")), cwd=tmp_path).stdout  # fmt: skip
    assert "Loading saved VecNormalize stats" in out and "Loading replay buffer" in out
    continued = TutorialSAC.load(logs / "tutorial_sac" / f"{ENV}_2" / f"{ENV}.zip")
    assert continued.num_timesteps == 200 and continued._n_updates == 400 + 200


# ---------------------------------------------------------------------------------------- checkpoints and the replay buffer


@pytest.mark.expensive
def test_zoo_checkpoints_replay_buffer_and_continued_training(tmp_path):
    pytest.importorskip("rl_zoo3")
    logs = tmp_path / "logs"
    extra = ("-n", "400", "--eval-freq", "200", "--eval-episodes", "1", "--save-freq", "200", "--save-replay-buffer")
    zoo_cli(*train_args("tutorial_sac", logs, *extra), cwd=tmp_path)
    run = logs / "tutorial_sac" / "Pendulum-v1_1"
    assert {"rl_model_200_steps.zip", "rl_model_400_steps.zip", "best_model.zip", "replay_buffer.pkl"} <= {
        p.name for p in run.iterdir()
    }
    for model_file in ("Pendulum-v1.zip", "best_model.zip", "rl_model_200_steps.zip"):
        assert _data(run / model_file)["format"] == persistence.FORMAT
    with np.load(run / "replay_buffer.pkl", allow_pickle=False) as npz:  # the zoo's name, an npz of data
        assert npz["rewards"].shape == (400, 1)

    common = ["--algo", "tutorial_sac", "--env", "Pendulum-v1", "-f", str(logs), "--no-render", "-n", "200", "--seed", "0"]
    for choice in (["--load-checkpoint", "200"], ["--load-last-checkpoint"], ["--load-best"]):
        out = zoo_cli("enjoy", *common, *choice, cwd=tmp_path).stdout
        assert "Episode Reward:" in out, choice

    # -i: continue the saved model with its replay buffer
    out = zoo_cli(
        *train_args("tutorial_sac", logs, "-n", "200", "--eval-freq", "-1", "-i", str(run / "Pendulum-v1.zip")), cwd=tmp_path
    )
    assert "Loading replay buffer" in out.stdout
    continued = TutorialSAC.load(logs / "tutorial_sac" / "Pendulum-v1_2" / "Pendulum-v1.zip")
    assert continued._n_updates == 400 + 200 and continued.actor.optimizer.state_dict()["state"][0]["step"].item() == 600


# ----------------------------------------------------------------------------------------------- plot files


def test_plot_from_file_unpickles_arrays_only(tmp_path: pathlib.Path) -> None:
    results = {
        "results_table": {"headers": ["Environments", "tutorial_sac"], "value_matrix": [["Pendulum", "-150 +/- 20"]]},
        "Pendulum-v1": {"tutorial_sac": {"x": np.arange(3), "y": np.ones((2, 3)), "mean": np.float64(-150.0), "n": (1, 2)}},
    }
    with open(tmp_path / "plots.pkl", "wb") as file:
        pickle.dump(results, file)
    with open(tmp_path / "plots.pkl", "rb") as file:
        loaded = zoo._PlotPickle.load(file)
    assert np.array_equal(loaded["Pendulum-v1"]["tutorial_sac"]["y"], np.ones((2, 3)))
    assert loaded["Pendulum-v1"]["tutorial_sac"]["mean"] == -150.0 and loaded["results_table"] == results["results_table"]

    sentinel = tmp_path / "pwned"
    with open(tmp_path / "crafted.pkl", "wb") as file:
        pickle.dump({"results_table": Payload(sentinel)}, file)
    with pytest.raises(SystemExit, match=r"plot_from_file: refused: the pickle names (posix|nt).system.*--trusted"):
        zoo.main(["plot_from_file", "-i", str(tmp_path / "crafted.pkl"), "-o", str(tmp_path / "out.png")])
    assert not sentinel.exists()


PLOT_CAPPED = """
import io, json, pickle, resource, sys, time
import numpy as np
from sb3_tutorial_sac import zoo
multiarray = zoo._multiarray()

class Reduce:
    def __init__(self, *reduced):
        self.reduced = reduced
    def __reduce__(self):
        return self.reduced

cases = {
    "reconstruct": Reduce(multiarray._reconstruct, (np.ndarray, (10**9,), "f8")),
    "ndarray": Reduce(np.ndarray, ((10**9,), "f8")),
    "setstate_objects": Reduce(multiarray._reconstruct, (np.ndarray, (0,), b"b"), (1, (10**9,), np.dtype("O"), False, [1])),
    "setstate_shape": Reduce(multiarray._reconstruct, (np.ndarray, (0,), b"b"), (1, (10**9,), np.dtype("f8"), False, b"")),
    "wide_dtype": Reduce(multiarray._reconstruct, (np.ndarray, (1,), np.dtype(("f8", (10**8,))))),
}
payloads = {name: pickle.dumps({"results_table": None, "x": case}) for name, case in cases.items()}
zoo._PlotUnpickler(io.BytesIO(pickle.dumps({"x": np.arange(3.0)}))).load()  # a real load first: imports done
mapped = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (mapped + 2**29, resource.RLIM_INFINITY))  # 512 MiB more than mapped now
results = {}
for name, payload in payloads.items():
    start = time.perf_counter()
    try:
        zoo._PlotUnpickler(io.BytesIO(payload)).load()
        outcome = "loaded"
    except BaseException as error:
        outcome = type(error).__name__ + ": " + str(error)[:300]
    results[name] = [outcome, time.perf_counter() - start, len(payload)]
print(json.dumps(results))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status to cap the address space")
def test_plot_from_file_bounds_array_sizes_before_allocating():
    result = subprocess.run([sys.executable, "-c", PLOT_CAPPED], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(result.stdout.strip().splitlines()[-1])
    for name, (outcome, seconds, size) in results.items():
        assert outcome.startswith("RefusedError") and "--trusted" in outcome, (name, outcome)
        assert seconds < 1.0 and size < 400, (name, seconds, size)
