"""The compiled engine's cache as a private place (issue 33): its folder is created private and refused where another
user could write to it or swap it; a planted kernel library or compiled package is never loaded (rebuilt instead), a
link planted at the kernel's source is replaced, not written through. Code that must not run leaves a marker file if it
does."""

import hashlib
import os
import pathlib
import shutil
import stat
import subprocess
import types

import pytest
import torch as th

from sb3_tutorial_sac import TutorialSAC
from sb3_tutorial_sac.engines.compiled import cache, kernels
from sb3_tutorial_sac.engines.compiled import engine as compiled_module
from sb3_tutorial_sac.engines.compiled import torch_privates
from tests.helpers import TINY


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


# ----------------------------------------------------------------------------------------------- the folder


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


# ----------------------------------------------------------------------------------------------- what it holds


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
    # the loader of torch's packages, named in the one module of torch's privates
    monkeypatch.setattr(torch_privates, "package_loader", lambda path: loaded.append(pathlib.Path(path).read_bytes()))
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
    monkeypatch.setattr(torch_privates, "package_loader", lambda path: loaded.append(pathlib.Path(path).read_bytes()) or
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
    arguments = (spec, engine._probe_loop_inputs(spec), rewrites, engine.inductor_configs)
    assert compiled_module.compile_step(*arguments)[1] is False and len(compiles) == 1
    assert compiled_module.compile_step(*arguments)[1] is True and len(compiles) == 1  # loaded: the one built here
    (package,) = folder.glob("step-*.pt2")
    package.write_bytes(b"planted")  # replaced (its record is of what was compiled)
    assert compiled_module.compile_step(*arguments)[1] is False and len(compiles) == 2
    assert loaded == [b"compiled here"] * 3
