"""Crafted input, third round (issue 33): JSON read in linear time, the compiled engine's cache as a private place, zoo
folders' wrapper arguments checked as values, and one validation path for every value a file gives. Each crafted file is
built in its test from a tiny model's own save; code that must not run leaves a sentinel marker if it does, memory
cases run in a subprocess under a capped address space, hangs are bounded in time."""

import hashlib
import io
import json
import os
import pathlib
import shutil
import stat
import subprocess
import sys
import time
import types
import warnings
import zipfile

import numpy as np
import pytest
import torch as th

from sb3_tutorial_sac import TutorialSAC, file_io, validation
from sb3_tutorial_sac.engines.compiled import cache, kernels
from sb3_tutorial_sac.engines.compiled import engine as compiled_module

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


# ------------------------------------------------------------------------------------------- 1. the compiled engine's cache

needs_root = pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="chown to another user needs root")
needs_compiler = pytest.mark.skipif(shutil.which("gcc") is None, reason="builds a planted library with gcc")
OTHER_UID = 65534  # nobody


def _library(folder: pathlib.Path, name: str, marker: pathlib.Path) -> pathlib.Path:
    """A shared library whose constructor creates ``marker`` (the proof that it was loaded and its code ran)."""
    source = folder / f"{name}.c"
    source.write_text(
        "#include <stdio.h>\n"
        f'__attribute__((constructor)) static void ran(void) {{ FILE* f = fopen("{marker}", "w"); if (f) fclose(f); }}\n'
    )
    library = folder / f"{name}.so"
    subprocess.run(["gcc", "-shared", "-fPIC", str(source), "-o", str(library)], check=True, capture_output=True)
    return library


@pytest.fixture
def inductor_folder(tmp_path, monkeypatch) -> pathlib.Path:
    """Inductor's cache folder in this test's folder (not created yet)."""
    folder = tmp_path / "inductor"
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(folder))
    return folder


def test_the_cache_folder_is_created_private(inductor_folder):
    folder = pathlib.Path(cache.private_folder())
    assert folder == inductor_folder.resolve() / "sb3_tutorial_sac"
    for path in (inductor_folder, folder):
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, oct(path.stat().st_mode)
    assert compiled_module.cache_folder() == str(folder)


@needs_root
def test_a_cache_folder_owned_by_another_user_is_refused_and_the_fast_engine_trains(inductor_folder):
    inductor_folder.mkdir(mode=0o755)  # what another user leaves by creating it before the victim's first run
    os.chown(inductor_folder, OTHER_UID, OTHER_UID)
    with pytest.raises(cache.CacheError, match=rf"inductor is owned by uid {OTHER_UID}, not by this user"):
        cache.private_folder()
    (inductor_folder / "sb3_tutorial_sac").mkdir(mode=0o700)  # even with our own folder inside it
    with pytest.raises(cache.CacheError, match=rf"not private: .*inductor is owned by uid {OTHER_UID}"):
        cache.private_folder()
    model = TutorialSAC("MlpPolicy", "Pendulum-v1", policy_kwargs=TINY, engine="compiled", seed=0)
    with pytest.warns(UserWarning, match=r"compiled engine cannot be used for this model: the compiled engine's cache "
                                         r"folder .* is not private.*Training uses the fast engine"):  # fmt: skip
        model.learn(300)
    assert model.update_engine.name == "fast"  # (the compiled engine gave way to the fast one)
    assert list((inductor_folder / "sb3_tutorial_sac").iterdir()) == []  # nothing compiled or loaded there


@pytest.mark.parametrize("which", ["ours", "inductor"])
def test_a_cache_folder_writable_by_others_is_refused(inductor_folder, which):
    folder = pathlib.Path(cache.private_folder())
    (folder if which == "ours" else inductor_folder).chmod(0o777)
    with pytest.raises(cache.CacheError, match=r"is writable by its group and others \(mode 0o777\)"):
        cache.private_folder()
    (folder if which == "ours" else inductor_folder).chmod(0o1777)  # sticky or not: our own folders are private
    with pytest.raises(cache.CacheError, match=r"writable by its group and others"):
        cache.private_folder()


def test_a_folder_above_the_cache_that_others_could_swap_it_in_is_refused(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # without the sticky bit: anyone may rename our folder away and put theirs in its place
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(shared / "inductor"))
    with pytest.raises(cache.CacheError, match=r"shared is writable by its group and others"):
        cache.private_folder()
    shared.chmod(0o1777)  # sticky, as /tmp: others cannot rename what is ours
    assert cache.private_folder() == str((shared / "inductor" / "sb3_tutorial_sac").resolve())


def test_a_link_to_another_folder_is_checked_where_it_leads(tmp_path, monkeypatch):
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o777)
    target.chmod(0o777)
    (tmp_path / "link").symlink_to(target)
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "link"))
    with pytest.raises(cache.CacheError, match=r"elsewhere is writable by its group and others"):
        cache.private_folder()


@needs_compiler
def test_a_planted_kernel_library_is_never_loaded(inductor_folder, tmp_path, monkeypatch):
    folder = cache.private_folder()
    planted_marker, built_marker = tmp_path / "planted_ran", tmp_path / "built_ran"
    planted = _library(tmp_path, "planted", planted_marker)
    built = _library(tmp_path, "built", built_marker)
    library = pathlib.Path(kernels.library_path(folder))
    shutil.copy(planted, library)  # under the expected name, in the user's own private folder (no digest recorded)
    compiles = _fake_compiler(monkeypatch, built)
    kernels.load(folder)
    assert not planted_marker.exists()  # its constructor never ran
    assert built_marker.exists() and compiles == [1]  # built again in its place, and that one loaded
    assert library.read_bytes() == built.read_bytes()
    # the same with a record, but of other content (a file replaced after it was built): never loaded
    monkeypatch.setattr(kernels, "_loaded", {})
    library.unlink()  # (a new file: the loaded one stays as the process mapped it)
    shutil.copy(planted, library)
    kernels.load(folder)
    assert not planted_marker.exists() and compiles == [1, 1] and library.read_bytes() == built.read_bytes()


def _fake_compiler(monkeypatch, built: pathlib.Path) -> list[int]:
    """kernels.load's compiler replaced by a copy of ``built`` (the kernel needs AVX-512 and seconds to build)."""
    compiles: list[int] = []

    def run(command, **kwargs):
        compiles.append(1)
        shutil.copy(built, command[command.index("-o") + 1])

    monkeypatch.setattr(kernels, "unavailable", lambda: None)
    monkeypatch.setattr(kernels, "_failure", None)
    monkeypatch.setattr(kernels, "_loaded", {})
    fake = types.SimpleNamespace(run=run, CalledProcessError=subprocess.CalledProcessError)
    monkeypatch.setattr(kernels, "subprocess", fake)
    return compiles


@needs_compiler
def test_a_link_planted_at_the_kernel_source_is_replaced_not_written_through(inductor_folder, tmp_path, monkeypatch):
    folder = pathlib.Path(cache.private_folder())
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's own file")
    library = pathlib.Path(kernels.library_path(str(folder)))
    source = library.with_suffix(".cpp")
    source.symlink_to(victim)
    library_link = library
    library_link.symlink_to(victim)  # and one at the library's name
    _fake_compiler(monkeypatch, _library(tmp_path, "built", tmp_path / "built_ran"))
    kernels.load(str(folder))
    assert victim.read_text() == "the user's own file"
    assert not source.is_symlink() and source.read_text() == kernels.SOURCE
    assert not library.is_symlink() and (tmp_path / "built_ran").exists()
    assert not list(folder.glob("*.tmp*"))  # no temporary left behind


def test_a_planted_package_is_never_loaded(inductor_folder, tmp_path, monkeypatch):
    folder = pathlib.Path(cache.private_folder())
    loaded: list[str] = []
    monkeypatch.setattr(compiled_module, "_load_package", lambda path: loaded.append(pathlib.Path(path).read_bytes()))
    planted = folder / "step-0123456789abcdef01234567.pt2"
    planted.write_bytes(b"planted")
    with pytest.raises(cache.CacheError, match="no digest recorded when it was built"):
        compiled_module.load_cached_package(str(planted))
    # a record of another content
    (folder / f"{planted.name}.sha256").write_text(hashlib.sha256(b"built").hexdigest())
    with pytest.raises(cache.CacheError, match="is not what was built"):
        compiled_module.load_cached_package(str(planted))
    assert loaded == []
    # what publish put there loads
    temporary = cache.temporary_name(str(planted), ".pt2")
    pathlib.Path(temporary).write_bytes(b"built")
    cache.publish(temporary, str(planted))
    compiled_module.load_cached_package(str(planted))
    assert loaded == [b"built"]
    if hasattr(os, "getuid") and os.getuid() == 0:  # a file of another user's, even with the right digest
        os.chown(planted, OTHER_UID, OTHER_UID)
        with pytest.raises(cache.CacheError, match=rf"owned by uid {OTHER_UID}"):
            compiled_module.load_cached_package(str(planted))
        assert loaded == [b"built"]


def test_a_planted_package_is_compiled_again_not_loaded(inductor_folder, monkeypatch):
    """The compile-or-load path: a package under the expected name without this user's record is removed and the
    step compiled again (the compiler replaced by one that writes a marker package)."""
    import torch._inductor

    folder = pathlib.Path(cache.private_folder())
    loaded: list[bytes] = []
    monkeypatch.setattr(compiled_module, "_load_package", lambda path: loaded.append(pathlib.Path(path).read_bytes()) or
                        type("Loader", (), {"boxed_run": None})())  # fmt: skip
    monkeypatch.setattr(th.export, "export", lambda *args, **kwargs: None)
    compiles: list[str] = []

    def compile_and_package(exported, package_path, inductor_configs):
        compiles.append(package_path)
        pathlib.Path(package_path).write_bytes(b"compiled here")

    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", compile_and_package)
    model = TutorialSAC("MlpPolicy", "Pendulum-v1", policy_kwargs=TINY, engine="compiled", seed=0)
    engine = model.update_engine
    assert engine._servable()  # the optimiser states the probe inputs copy
    spec = engine.spec(model.batch_size)
    rewrites = engine.rewrites - {"avx512_bmm"}
    arguments = (spec, engine._probe_loop_inputs(spec), rewrites, engine.inductor_configs, True)
    assert compiled_module.compile_step(*arguments)[1] is False and len(compiles) == 1
    assert compiled_module.compile_step(*arguments)[1] is True and len(compiles) == 1  # loaded: the one built here
    (package,) = folder.glob("step-*.pt2")
    package.write_bytes(b"planted")  # replaced (its record is of what was compiled)
    assert compiled_module.compile_step(*arguments)[1] is False and len(compiles) == 2
    assert loaded == [b"compiled here"] * 3


# ------------------------------------------------------------------------------------------- 1. a file's engine


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


# ------------------------------------------------------------------------------------------- 3, 4. zoo folders

ENV = "Pendulum-v1"


def _run_folder(root: pathlib.Path, **config: object) -> pathlib.Path:
    """A run folder as rl-zoo3 writes it (a tiny TutorialSAC model, config.yml, args.yml), without normalisation."""
    from collections import OrderedDict

    import yaml

    run = root / "logs" / "tutorial_sac" / f"{ENV}_1"
    (run / ENV).mkdir(parents=True)
    TutorialSAC("MlpPolicy", ENV, policy_kwargs=TINY, seed=0).save(run / f"{ENV}.zip")
    hyperparams = {"n_timesteps": 400, "normalize": False, "policy": "MlpPolicy", **config}
    (run / ENV / "config.yml").write_text(yaml.dump(OrderedDict(sorted(hyperparams.items()))))  # as rl-zoo3 writes it
    (run / ENV / "args.yml").write_text(yaml.dump(OrderedDict([("env", ENV), ("env_kwargs", None), ("seed", 3)])))
    return root / "logs"


def _enjoy(logs: pathlib.Path, *extra: str) -> None:
    from sb3_tutorial_sac import zoo

    zoo.main(["enjoy", "--algo", "tutorial_sac", "--env", ENV, "-f", str(logs), "--no-render", "-n", "20", *extra])


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"env_wrapper": [{"stable_baselines3.common.monitor.Monitor": {"filename": "../../x"}}]},
         r"env_wrapper stable_baselines3.common.monitor.Monitor: filename='../../x' names a file or folder"),
        ({"vec_env_wrapper": [{"stable_baselines3.common.vec_env.VecMonitor": {"filename": "../../x"}}]},
         r"vec_env_wrapper stable_baselines3.common.vec_env.VecMonitor: filename='../../x' names a file"),
        ({"env_wrapper": [{"stable_baselines3.common.monitor.Monitor": {"info_keywords": ["../../x"]}}]},
         r"the string '../../x' is a path"),
        ({"vec_env_wrapper": [{"stable_baselines3.common.vec_env.VecFrameStack": {"n_stack": 10**9}}]},
         r"VecFrameStack: n_stack is 1000000000, not an integer in \[0, 1024\]"),
        ({"env_wrapper": [{"gymnasium.wrappers.FrameStackObservation": {"stack_size": 10**9}}]},
         r"stack_size is 1000000000, not an integer in \[0, 1024\]"),
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


# ------------------------------------------------------------------------------------------- 5-8. one validation path


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


@pytest.mark.parametrize(
    ("attributes", "field"),
    [
        ({"use_sde": True}, "use_sde"),
        ({"sde_sample_freq": "x"}, "sde_sample_freq"),
        ({"use_sde_at_warmup": "yes"}, "use_sde_at_warmup"),
        ({"use_sde_at_warmup": 0}, "use_sde_at_warmup"),
        ({"handle_timeout_termination": True, "replay_buffer_kwargs": {"handle_timeout_termination": False}},
         "handle_timeout_termination"),
        ({"handle_timeout_termination": True, "replay_buffer_kwargs": {"handle_timeout_termination": True},
          "optimize_memory_usage": True}, "optimize_memory_usage"),
        ({"seed": 2**40}, "seed"),
        ({"seed": -1}, "seed"),
    ],
    ids=["use_sde", "sde_sample_freq", "use_sde_at_warmup", "use_sde_at_warmup_int", "timeouts_disagree",
         "memory_and_timeouts", "seed_2_40", "seed_negative"],
)
def test_a_files_values_get_the_constructors_checks(trained, tmp_path, attributes, field):
    _, saved = trained
    crafted = tmp_path / "crafted.zip"
    _rewrite(saved, crafted, data=_with(_data(saved), **attributes))
    with pytest.raises(validation.FileValueError, match=rf"crafted.zip'\), field '{field}'"):
        TutorialSAC.load(crafted)


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


def test_an_n_step_buffer_loaded_into_a_model_that_samples_otherwise_says_so(tmp_path):
    """As in SB3 (tests/test_sb3_conformance_files.py), the file's buffer replaces the model's with its settings; not
    silently: a warning names each setting that changes the targets."""
    n_step = TutorialSAC("MlpPolicy", "Pendulum-v1", policy_kwargs=TINY, n_steps=3, gamma=0.9, seed=0)
    n_step.learn(300)
    path = tmp_path / "n_step.pkl"
    n_step.save_replay_buffer(path)
    cases = [
        (dict(), r"class='NStepReplayBuffer' \(this model's buffer: a ReplayBuffer\), n_steps=3 \(this model's buffer: 1\), "
                 r"gamma=0.9 \(this model's gamma: 0.99\)"),
        (dict(n_steps=5, gamma=0.9), r"n_steps=3 \(this model's buffer: 5\)\. As in SB3"),
        (dict(n_steps=3, gamma=0.5), r"gamma=0.9 \(this model's buffer: 0.5\)"),
        (dict(n_steps=3, gamma=0.9, handle_timeout_termination=True), r"handle_timeout_termination=False \(this model"),
    ]
    for kwargs, message in cases:
        other = TutorialSAC("MlpPolicy", "Pendulum-v1", policy_kwargs=TINY, seed=1, **kwargs)
        with pytest.warns(UserWarning, match=rf"load_replay_buffer: PosixPath\('.*n_step.pkl'\), meta gives {message}"):
            other.load_replay_buffer(path)
        assert (other.replay_buffer.n_steps, other.replay_buffer.gamma) == (3, 0.9)  # the file's, as in SB3
    same = TutorialSAC("MlpPolicy", "Pendulum-v1", policy_kwargs=TINY, n_steps=3, gamma=0.9, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same.load_replay_buffer(path)
    assert same.replay_buffer.pos == n_step.replay_buffer.pos


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


def _optimizer_state(model, change) -> dict:
    import copy

    state = copy.deepcopy(model.critic.optimizer.state_dict())
    change(state)
    return {"critic.optimizer": state}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s["param_groups"][0].update(lr=10**400), r"group 0 lr: 1000.*not a finite number >= 0"),
        (lambda s: s["param_groups"][0].update(betas=(10**400, 0.999)), r"betas: .*not two numbers in \[0, 1\)"),
        (lambda s: [v.update(step=th.tensor(3e38)) for v in s["state"].values()], r"step: .*not an integer in \[0, 2\*\*53\]"),
        (lambda s: [v.update(step=10**400) for v in s["state"].values()], r"step: .*not an integer in \[0, 2\*\*53\]"),
        (lambda s: [v.update(step=th.tensor(2.5)) for v in s["state"].values()], r"step: .*not an integer"),
        (lambda s: [v.pop("exp_avg") for v in s["state"].values()], r"\['exp_avg_sq', 'step'\], where Adam keeps"),
    ],
    ids=["lr_10_400", "betas_10_400", "step_3e38", "step_10_400", "step_fraction", "no_exp_avg"],
)
def test_a_loaded_optimiser_state_has_what_learn_needs(trained, change, message):
    model, _ = trained
    with pytest.raises(ValueError, match=message) as error:
        model.set_parameters(_optimizer_state(model, change), exact_match=False)
    assert not isinstance(error.value.__cause__, OverflowError)
    model.learn(200, reset_num_timesteps=False)  # nothing was loaded: it trains on


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


# ------------------------------------------------------------------------------------------- 4. gradient steps in chunks


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
