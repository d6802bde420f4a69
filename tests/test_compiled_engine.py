"""The compiled engine (sb3_tutorial_sac.engines.compiled): against the reference engine, its proofs, its cache and its
fallbacks; the compiled step's AVX-512 product (sb3_tutorial_sac.engines.compiled.kernels): its numbers, and the engine
without it. The cache as a private place: tests/test_compiled_engine_cache.py.

Each configuration compiles once per machine and torch version (about 15 to 30 s on one core; later runs load the
package from Inductor's cache folder in milliseconds); the tests below compile three.

The compiled step rounds differently from PyTorch's eager kernels (a few ulps per step), so the comparisons allow
1e-5. That bound holds where training is well-conditioned, as on the configurations below: there a 1-ulp change of
one parameter of the bit-exact fast engine moves the parameters after 300 steps by about 1e-7 to 1e-6, and the
compiled engine stays within 1e-6 (the RESULTS section on the compiled engine). On
some configurations a rounding difference flips a discrete event of training and the runs part by 1e-4 to 0.07
within 300 steps; the same 1-ulp change of the fast engine does the same there (measured: SUPPORTED configurations 2
and 5 of tests/test_engines.py, 0.0052 and 0.072 for both), so no engine that is not bit for bit can follow them.
"""

import ctypes
import itertools
import warnings
from typing import ClassVar

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.logger import Logger

import torch._inductor

import sb3_tutorial_sac.engines.compiled.engine as compiled_module
from sb3_tutorial_sac import TutorialSAC
from sb3_tutorial_sac.engines.compiled import kernels
from sb3_tutorial_sac.engines.compiled.engine import CompiledEngine, cache_folder, compile_step
from sb3_tutorial_sac.engines.compiled.rewrites import REWRITES, ensemble_ready, loop_function
from sb3_tutorial_sac.engines.step import LinearSpec, StepScalars
from sb3_tutorial_sac.engines import ENGINE_NAMES, FastEngine, ReferenceEngine
from tests.helpers import CONFIGURATIONS, needs_compiler
from tests.helpers import compiled_test_model as _model
from tests.helpers import make_minibatches, run_model

TOLERANCE = 1e-5


def _max_difference(model: TutorialSAC, other: TutorialSAC) -> float:
    mine, theirs = model.policy.state_dict(), other.policy.state_dict()
    differences = [(mine[key] - theirs[key]).abs().max().item() for key in mine]
    if model.log_ent_coef is not None:
        differences.append((model.log_ent_coef - other.log_ent_coef).abs().max().item())
    return max(differences)


@needs_compiler
@pytest.mark.parametrize("configuration", list(CONFIGURATIONS))
def test_compiled_engine_stays_within_1e_5_of_the_reference_engine_after_300_steps(configuration):
    # each model built (which seeds the random generators) then trained, in turn
    compiled = _model("compiled", configuration)
    assert isinstance(compiled.update_engine, CompiledEngine)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*compiled engine")  # no fallback: the compiled step is used
        compiled.learn(300)
    reference = _model("reference", configuration)
    reference.learn(300)
    engine = compiled.update_engine
    assert engine.unavailable is None and engine.compile_seconds is not None, engine.unavailable
    assert compiled._n_updates == reference._n_updates == 300
    assert _max_difference(compiled, reference) <= TOLERANCE
    for name in ("actor.optimizer", "critic.optimizer"):
        mine, theirs = (m.training_state.optimizers[name].state_dict()["state"] for m in (compiled, reference))
        for key in mine:
            assert th.equal(mine[key]["step"], theirs[key]["step"]), (name, key)
            assert th.allclose(mine[key]["exp_avg"], theirs[key]["exp_avg"], rtol=1e-3, atol=1e-6), (name, key)
    for name, values in reference.last_train_stats.items():
        np.testing.assert_allclose(compiled.last_train_stats[name], values, rtol=1e-3, atol=1e-5, err_msg=name)
    start = _model("reference", configuration)
    assert _max_difference(compiled, start) > 1e-3  # it trained


@needs_compiler
def test_compiled_engine_follows_the_reference_engine_on_the_tutorials_minibatches():
    """tests/test_exactness.py's setting: Pendulum-v1, the tutorial's networks, 300 gradient steps on the same
    Pendulum-like minibatches and seed; the reference engine equals the tutorial's transcription bit for bit there."""
    batches = make_minibatches(300)
    models = {}
    for engine in ("compiled", "reference"):
        model = TutorialSAC("MlpPolicy", "Pendulum-v1", seed=0, device="cpu", engine=engine)
        model.set_logger(Logger(folder=None, output_formats=[]))
        models[engine] = (model, run_model(model, batches, [200, 1, 99]))
    (compiled, compiled_stats), (reference, reference_stats) = models["compiled"], models["reference"]
    assert compiled.update_engine.unavailable is None and compiled.update_engine.compile_seconds is not None
    assert _max_difference(compiled, reference) <= TOLERANCE
    for name, values in reference_stats.items():
        np.testing.assert_allclose(compiled_stats[name], values, rtol=0, atol=TOLERANCE, err_msg=name)


def _eager_compile_step(monkeypatch: pytest.MonkeyPatch, rewrites: frozenset[str] = frozenset(), calls=None, specs=None):
    """Stand the compiled engine's compile_step (its seam to AOTInductor) in with the loop it would compile, run
    eagerly under ``rewrites``; the engine still checks it on its probe (two stacked steps) before using it. Each call
    of the loop appends its inputs' first shape to ``calls``; each compile its spec to ``specs``."""

    def eager(spec, example_inputs, *args, **kwargs):
        function = loop_function(spec, rewrites)
        if specs is not None:
            specs.append(spec)

        def run(inputs):
            if calls is not None:
                calls.append(tuple(inputs[0].shape))
            return list(function(*inputs))

        return run, False

    monkeypatch.setattr(compiled_module, "compile_step", eager)


def test_step_function_uncompiled_is_the_fast_engines_step_bit_for_bit(monkeypatch):
    """The proof make_engine runs (CompiledEngine.build), and the same over a whole learn(): the loop of steps the
    compiled engine compiles, run eagerly in place of the compiled one, gives the fast engine's numbers exactly."""
    model = _model("compiled", "asymmetric")
    engine = model.update_engine
    assert isinstance(CompiledEngine.build(model.training_state), CompiledEngine)  # the proof make_engine runs
    calls: list[tuple[int, ...]] = []
    _eager_compile_step(monkeypatch, calls=calls)
    model.learn(300)
    assert engine.unavailable is None and engine.compile_seconds is not None
    # the probe's two stacked steps, then one call per train() call, its minibatches stacked
    assert calls[0][0] == 2 and all(len(shape) == 3 for shape in calls)
    assert sum(shape[0] for shape in calls[1:]) == model._n_updates
    fast = _model("fast", "asymmetric")
    fast.learn(300)
    for (name, value), expected in zip(model.policy.state_dict().items(), fast.policy.state_dict().values()):
        assert th.equal(value, expected), name
    assert th.equal(model.log_ent_coef, fast.log_ent_coef)
    for name, values in fast.last_train_stats.items():
        np.testing.assert_array_equal(model.last_train_stats[name], values, err_msg=name)


def test_a_train_call_of_another_batch_size_steps_as_the_fast_engine(monkeypatch):
    """The compiled loop is built for the model's batch size; a train() call of another runs the fast engine's steps
    (here the loop runs eagerly, so both paths give the fast engine's numbers bit for bit)."""
    model = _model("compiled")
    calls: list[tuple[int, ...]] = []
    _eager_compile_step(monkeypatch, calls=calls)

    def train(trained: TutorialSAC) -> TutorialSAC:
        trained.learn(300)
        trained.train(5, 32)
        trained.train(3, 64)
        return trained

    train(model)
    fast = train(_model("fast"))  # each model built (which seeds the random generators) then trained, in turn
    assert calls and all(shape[1] == 64 for shape in calls) and calls[-1] == (3, 64, 3)
    assert _max_difference(model, fast) == 0
    for name, values in fast.last_train_stats.items():
        np.testing.assert_array_equal(model.last_train_stats[name], values, err_msg=name)


@pytest.mark.parametrize("model_kwargs", [{}, {"ent_coef": 0.1, "target_update_interval": 3, "tau": 0.01}])
def test_a_loops_table_of_scalars_is_the_per_step_scalars_bit_for_bit(model_kwargs):
    """The scalars of every step of a compiled loop, computed as one table (FastEngine._scalars_of_steps), are what
    the per-step path computes step by step (_next_scalars), bit for bit, and Adam's step counts advance as far; with
    a learned and with a fixed temperature (no third optimiser), and target updates every third step."""
    model = TutorialSAC("MlpPolicy", "Pendulum-v1", seed=3, device="cpu", engine="fast", **model_kwargs)
    model.set_logger(Logger(folder=None, output_formats=[]))
    model.learn(260)
    engine = model.update_engine
    interval = model.target_update_interval
    with engine.loop():
        counts = [entry[3] for entry in engine._adam]
        assert len(counts) == (3 if not model_kwargs else 2) and counts[0] > 0
        table = engine._scalars_of_steps(7, interval)
        after = [entry[3] for entry in engine._adam]
        for entry, count in zip(engine._adam, counts):
            entry[3] = count
        rows = [list(engine._next_scalars(k % interval == 0)) for k in range(7)]
        assert after == [entry[3] for entry in engine._adam] == [count + 7 for count in counts]
    assert table.dtype == th.float32 and th.equal(table, th.tensor(rows, dtype=th.float32))
    soft_update = StepScalars._fields.index("soft_update")
    assert table[:, soft_update].tolist() == [float(k % interval == 0) for k in range(7)]


@pytest.mark.parametrize("configuration", list(CONFIGURATIONS))
def test_compile_only_rewrites_run_eagerly_stay_within_1e_5_of_the_reference_engine(configuration, monkeypatch):
    """The rewrites the compiled engine may compile with (the small products as sums, the two critics as one batched
    ensemble product), run eagerly over a whole learn(300): the same mathematics as the reference engine's step, rounded
    otherwise. Without a compiler, so that the rewrites themselves are tested wherever the tests run."""
    model = _model("compiled", configuration)
    engine = model.update_engine
    specs: list = []
    _eager_compile_step(monkeypatch, REWRITES, specs=specs)
    model.learn(300)
    assert engine.unavailable is None  # the rewritten loop passed the engine's probe
    used = [ensemble_ready(spec.critics) for spec in specs]
    reference = _model("reference", configuration)
    reference.learn(300)
    assert used == [CONFIGURATIONS[configuration][1].get("n_critics", 2) == 2]  # the ensemble where there are two critics
    assert _max_difference(model, reference) <= TOLERANCE
    assert _max_difference(model, _model("reference", configuration)) > 1e-3  # it trained
    for name, values in reference.last_train_stats.items():
        np.testing.assert_allclose(model.last_train_stats[name], values, rtol=1e-3, atol=1e-5, err_msg=name)


def test_ensemble_needs_two_critics_of_the_same_layers():
    def critic(*sizes, start=0):
        return tuple(LinearSpec(start + 10 * i, start + 10 * i + 5, n_out, n_in, i < len(sizes) - 2)
                     for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)))  # fmt: skip

    assert ensemble_ready((critic(4, 8, 1), critic(4, 8, 1, start=100)))
    assert not ensemble_ready((critic(4, 8, 1),))
    assert not ensemble_ready((critic(4, 8, 1), critic(4, 9, 1, start=100)))
    assert not ensemble_ready((critic(4, 8, 1), critic(4, 8, 1, start=100), critic(4, 8, 1, start=200)))


@needs_compiler
def test_compiles_once_per_configuration_and_never_again(monkeypatch):
    calls = []
    real_compile_step = compiled_module.compile_step

    def counting_compile_step(*args, **kwargs):
        result = real_compile_step(*args, **kwargs)
        calls.append(result[1])  # loaded from the cache?
        return result

    monkeypatch.setattr(compiled_module, "compile_step", counting_compile_step)
    model = _model("compiled")
    model.learn(300)
    model.train(gradient_steps=37, batch_size=64)
    model.learn(100, reset_num_timesteps=False)
    assert len(calls) == 1
    # another model of the same configuration loads the package the first one stored
    other = _model("compiled", seed=5)
    other.learn(100)
    assert len(calls) == 2 and calls[1] is True
    assert other.update_engine.compile_seconds < 5


@needs_compiler
def test_same_seed_same_numbers():
    first = _model("compiled")
    first.learn(200)
    second = _model("compiled")
    second.learn(200)
    assert _max_difference(first, second) == 0


def test_without_a_compiler_the_fast_engine_trains_after_one_warning(monkeypatch, tmp_path):
    """A machine without a C++ compiler: Inductor finds none, the engine says so once and trains as the fast engine."""
    import torch._inductor.config as inductor_config

    # Inductor's own patch (monkeypatch's undo leaves Inductor's config without cpp.cxx: every later compilation in
    # the process then failed, which the cache hid wherever the packages were already compiled)
    no_compiler = inductor_config.patch({"cpp.cxx": ("no-such-compiler++",)})
    monkeypatch.setattr(compiled_module, "cache_folder", lambda: str(tmp_path))  # nothing cached to load
    model = _model("compiled")
    expected = "compiled engine cannot be used.*compiling the gradient step failed"
    with no_compiler, pytest.warns(UserWarning, match=expected) as record:
        model.learn(300)
        model.learn(100, reset_num_timesteps=False)
    assert len([w for w in record if "compiled engine" in str(w.message)]) == 1
    fast = _model("fast")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast.learn(300)
        fast.learn(100, reset_num_timesteps=False)
    assert _max_difference(model, fast) == 0


def test_a_failed_compilation_falls_back_to_the_fast_engine_with_one_warning(monkeypatch):
    def failing_compile_step(*args, **kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(compiled_module, "compile_step", failing_compile_step)
    model = _model("compiled")
    with pytest.warns(UserWarning, match="compiled engine cannot be used.*no C\\+\\+ compiler.*fast engine") as record:
        model.learn(300)
    assert len([w for w in record if "compiled engine" in str(w.message)]) == 1
    assert type(model.update_engine) is FastEngine  # the engine used from then on (issue 32)
    fast = _model("fast")
    fast.learn(300)
    assert _max_difference(model, fast) == 0  # the fast engine's update, bit for bit


def _missing(module: str, name: str):
    def remove(monkeypatch):
        import importlib

        monkeypatch.delattr(importlib.import_module(module), name)

    return remove


# torch's privates broken on purpose, and what the warning must say (engines/compiled/torch_privates.py)
BROKEN_PRIVATES = {
    "while_loop_op missing": (
        _missing("torch._higher_order_ops.while_loop", "while_loop_op"),
        r"relies on torch\._higher_order_ops\.while_loop\.while_loop_op, which torch 2\.\d+\S* does not have",
    ),
    "package loader missing": (
        _missing("torch._C._aoti", "AOTIModelPackageLoader"),
        r"relies on torch\._C\._aoti\.AOTIModelPackageLoader, which torch .* does not have",
    ),
    "CppBuilder missing": (
        _missing("torch._inductor.codecache", "CppBuilder"),
        r"relies on torch\._inductor\.codecache\.CppBuilder, which torch .* does not have",
    ),
    "torch too new": (
        lambda monkeypatch: monkeypatch.setattr(th, "__version__", "2.14.0"),
        r"relies on torch internals written against torch 2\.8 to 2\.13, and this is torch 2\.14\.0",
    ),
}


@pytest.mark.parametrize("broken", list(BROKEN_PRIVATES))
def test_broken_torch_privates_fall_back_to_the_fast_engine_with_a_warning_that_says_why(monkeypatch, broken):
    """Where a private torch name the compiled engine relies on is missing, or torch's version is outside the range it
    was written against, engine="compiled" trains with the fast engine (bit for bit) after one warning naming it;
    nothing is compiled."""
    from sb3_tutorial_sac.engines.compiled import torch_privates

    assert torch_privates.problem() is None  # this torch passes the check
    breaking, reason = BROKEN_PRIVATES[broken]
    breaking(monkeypatch)
    assert torch_privates.problem() is not None

    def no_compile_step(*args, **kwargs):
        raise AssertionError("compiled although torch's privates failed the check")

    monkeypatch.setattr(compiled_module, "compile_step", no_compile_step)
    expected = f"compiled engine cannot be used for this model: it {reason}\\. Training uses the fast engine"
    with pytest.warns(UserWarning, match=expected) as record:
        model = _model("compiled")
    assert len([w for w in record if "compiled engine" in str(w.message)]) == 1
    assert type(model.update_engine) is FastEngine
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*compiled engine")  # one warning, at construction
        model.learn(300)
    fast = _model("fast")
    fast.learn(300)
    assert _max_difference(model, fast) == 0  # the fast engine's update, bit for bit


@needs_compiler
def test_a_compiled_step_that_disagrees_on_the_probe_is_not_used(monkeypatch):
    real_compile_step = compiled_module.compile_step

    def wrong_compile_step(*args, **kwargs):
        run, cached = real_compile_step(*args, **kwargs)
        return (lambda inputs: [2 * run(inputs)[0]]), cached  # e.g. a stale package: other statistics

    monkeypatch.setattr(compiled_module, "compile_step", wrong_compile_step)
    model = _model("compiled")
    with pytest.warns(UserWarning, match="does not agree with the uncompiled one on a probe batch: statistics"):
        model.learn(100)
    assert type(model.update_engine) is FastEngine


def test_probe_catches_a_misread_network_and_make_engine_falls_back(monkeypatch):
    real_spec = CompiledEngine.spec

    def swapped_heads(self, batch_size):  # mu and std read from each other's place in the flat buffer
        spec = real_spec(self, batch_size)
        return type(spec)(**{**spec.__dict__, "mu": spec.std, "std": spec.mu})

    monkeypatch.setattr(CompiledEngine, "spec", swapped_heads)
    with pytest.warns(UserWarning, match="compiled engine cannot be used.*differs from the fast engine's"):
        model = _model("compiled")
    assert type(model.update_engine) is FastEngine


def test_engine_names_and_defaults():
    assert "compiled" in ENGINE_NAMES
    assert type(_model("auto").update_engine) is FastEngine  # the default stays the bit-exact fast engine
    assert isinstance(_model("reference").update_engine, ReferenceEngine)


class _FakeBuilder:
    """A stand-in for Inductor's ``CppBuilder``: each build records when it ran, in which thread, and sleeps."""

    log: ClassVar[list] = []
    fail: ClassVar[str | None] = None

    def __init__(self, target: str, compile_only: bool = True):
        self.target, self._compile_only = target, compile_only

    def get_target_file_path(self) -> str:
        return self.target

    def build(self) -> None:
        import threading
        import time

        start = time.perf_counter()
        time.sleep(0.2)
        if self.fail == self.target:
            raise RuntimeError(f"{self.target} failed to compile")
        _FakeBuilder.log.append((self.target, threading.get_ident(), start, time.perf_counter()))


def test_the_packages_wrapper_compiles_beside_its_kernels_and_before_the_link(monkeypatch):
    """AOTInductor's sequence (the wrapper, the kernels, the constants, the link) with the wrapper's compile in another
    thread: it overlaps the kernels' compile, and the link starts only after both (and every other object) are done."""
    import threading

    from torch._inductor import codecache

    monkeypatch.setattr(codecache, "CppBuilder", _FakeBuilder)
    monkeypatch.setattr(_FakeBuilder, "log", [])
    with compiled_module._wrapper_compiled_beside_kernels():
        codecache.CppBuilder("m.wrapper.o").build()
        codecache.CppBuilder("m.kernel.o").build()
        codecache.CppBuilder("m.weights.o").build()
        codecache.CppBuilder("m.wrapper.so", compile_only=False).build()
    assert codecache.CppBuilder is _FakeBuilder  # restored
    runs = {target: (thread, start, end) for target, thread, start, end in _FakeBuilder.log}
    assert set(runs) == {"m.wrapper.o", "m.kernel.o", "m.weights.o", "m.wrapper.so"}
    assert runs["m.wrapper.o"][0] != threading.get_ident() and runs["m.kernel.o"][0] == threading.get_ident()
    assert runs["m.wrapper.o"][1] < runs["m.kernel.o"][2] and runs["m.kernel.o"][1] < runs["m.wrapper.o"][2]  # overlap
    assert runs["m.wrapper.so"][1] >= max(end for _, _, end in runs.values() if end != runs["m.wrapper.so"][2])


def test_a_wrapper_that_fails_to_compile_fails_the_packages_compile(monkeypatch):
    from torch._inductor import codecache

    monkeypatch.setattr(codecache, "CppBuilder", _FakeBuilder)
    monkeypatch.setattr(_FakeBuilder, "log", [])
    monkeypatch.setattr(_FakeBuilder, "fail", "m.wrapper.o")
    with pytest.raises(RuntimeError, match=r"m\.wrapper\.o failed to compile"):
        with compiled_module._wrapper_compiled_beside_kernels():
            codecache.CppBuilder("m.wrapper.o").build()
            codecache.CppBuilder("m.kernel.o").build()
            codecache.CppBuilder("m.wrapper.so", compile_only=False).build()
    assert [entry[0] for entry in _FakeBuilder.log] == ["m.kernel.o"]  # never linked
    assert codecache.CppBuilder is _FakeBuilder


def test_a_compile_under_way_in_another_thread_keeps_inductors_builder(monkeypatch):
    """Two compiles at once (models compiled in two threads): the second leaves the builder as the first set it, and
    the first restores Inductor's own when it ends."""
    import threading

    from torch._inductor import codecache

    monkeypatch.setattr(codecache, "CppBuilder", _FakeBuilder)
    seen = {}
    with compiled_module._wrapper_compiled_beside_kernels():
        first = codecache.CppBuilder
        assert first is not _FakeBuilder

        def other() -> None:
            with compiled_module._wrapper_compiled_beside_kernels():
                seen["inside"] = codecache.CppBuilder
            seen["after"] = codecache.CppBuilder

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert seen == {"inside": first, "after": first} and codecache.CppBuilder is _FakeBuilder


# ----------------------------------------------------------------------------------------------- the AVX-512 kernel


# the kernel's own numbers need a CPU that runs it; what the engine does without one is tested on every machine below
needs_avx512 = pytest.mark.skipif(kernels.unavailable() is not None, reason=f"{kernels.unavailable()}")


def _gemm() -> ctypes._CFuncPtr:
    function = kernels.load(cache_folder()).sb3_tutorial_sac_gemm
    function.argtypes = [ctypes.c_long] * 3 + [ctypes.c_void_p, ctypes.c_long, ctypes.c_long, ctypes.c_void_p,
                                               ctypes.c_long, ctypes.c_long, ctypes.c_void_p]  # fmt: skip
    return function


def _product(a: th.Tensor, b: th.Tensor) -> th.Tensor:
    """``a @ b`` by the kernel, with the operands' own strides."""
    out = th.full((a.shape[0], b.shape[1]), float("nan"))
    _gemm()(a.shape[0], b.shape[1], a.shape[1], a.data_ptr(), *a.stride(), b.data_ptr(), *b.stride(), out.data_ptr())
    return out


@needs_avx512
@pytest.mark.parametrize(
    "m, k, n, transpose_a, transpose_b",
    [
        (64, 128, 128, False, False),  # the input gradient dZ @ W
        (64, 128, 128, False, True),  # the forward H @ W.T (B's panels copied by 16x16 transposed blocks)
        (128, 64, 128, True, False),  # the weight gradient dZ.T @ H (A read through its strides)
        (256, 256, 256, False, False),  # SB3's sizes
        (13, 5, 70, False, False),  # edge rows (13 = 8 + 5) and edge columns (70 = 32 + 32 + 6)
        (1, 1, 16, True, True),
        (130, 50, 70, False, False),  # from 128 rows on, B copied panel by panel: full panels and an edge of 6
        (136, 19, 40, True, True),  # the same with a transposed B (an edge of 8)
        (9, 33, 47, True, True),
    ],
)
def test_the_kernel_is_the_product_to_float32_rounding(m, k, n, transpose_a, transpose_b):
    """Every output is the sum over the inner dimension, rounded once per term: within a few float32 ulps of the exact
    product (computed in float64), at every shape, edge rows and columns and strides included; nothing left unwritten."""
    generator = th.Generator().manual_seed(m * 1000 + n)
    a = th.randn(k, m, generator=generator).t() if transpose_a else th.randn(m, k, generator=generator)
    b = th.randn(n, k, generator=generator).t() if transpose_b else th.randn(k, n, generator=generator)
    result = _product(a, b)
    exact = a.double() @ b.double()
    scale = a.double().abs() @ b.double().abs()  # the error bound of a float32 sum of k terms
    assert result.shape == (m, n) and not result.isnan().any()
    assert ((result.double() - exact).abs() <= k * 2**-23 * scale + 1e-30).all()
    th.testing.assert_close(result, a @ b, rtol=1e-5, atol=1e-5)


@needs_avx512
def test_the_kernel_reads_a_b_of_any_strides():
    """A ``B`` with neither stride 1 (not from the step: copied element by element) gives the same product, bit for
    bit, as its contiguous copy, full panels and edges included."""
    generator = th.Generator().manual_seed(7)
    a, b = th.randn(130, 40, generator=generator), th.randn(80, 140, generator=generator)[::2, ::3]
    assert 1 not in b.stride() and b.shape == (40, 47)
    assert th.equal(_product(a, b), _product(a, b.contiguous()))
    assert th.equal(_product(a[:20], b), _product(a[:20], b.contiguous()))  # under 128 rows


def test_the_operator_is_torch_bmm_in_python_and_exports_as_itself():
    """torch.ops.sb3_tutorial_sac.avx512_bmm runs torch.bmm wherever it runs in Python (the eager step), and export
    records it as itself with torch.bmm's output (its fake implementation), a transposed operand included."""

    class Product(th.nn.Module):
        def forward(self, a: th.Tensor, b: th.Tensor) -> th.Tensor:
            return kernels.avx512_bmm(a, b.transpose(1, 2))

    a, b = th.randn(2, 64, 128), th.randn(2, 96, 128)
    assert th.equal(Product()(a, b), th.bmm(a, b.transpose(1, 2)))
    exported = th.export.export(Product(), (a, b), strict=False)
    (node,) = [node for node in exported.graph.nodes if node.op == "call_function" and "avx512_bmm" in str(node.target)]
    assert node.target is th.ops.sb3_tutorial_sac.avx512_bmm.default
    assert tuple(node.meta["val"].shape) == (2, 64, 96) and node.meta["val"].dtype == th.float32
    assert th.equal(exported.module()(a, b), th.bmm(a, b.transpose(1, 2)))


@pytest.mark.parametrize("case", ["loads", "unavailable", "fails to build"])
def test_compile_step_uses_the_kernel_only_where_it_loads(monkeypatch, tmp_path, case):
    """Where the kernel builds and loads, the package is compiled with the operator's C function (the kernel built
    beside the compile, awaited before the package is loaded); where the machine cannot run it, or it fails to build,
    the step's products stay torch's bmm and the package is another one (its own cache key), compiled again."""
    model = _model("compiled")
    engine = model.update_engine
    calls = []

    def load(folder):
        if case == "fails to build":
            kernels._fail("building the AVX-512 product failed: no", OSError("no"))
        return None

    class Stop(Exception):
        pass

    def compile_and_package(exported, package_path, inductor_configs):
        operators = set()
        for module in exported.graph_module.modules():
            operators |= {str(node.target) for node in module.graph.nodes if node.op == "call_function"}
        calls.append((inductor_configs, any("avx512_bmm" in name for name in operators)))
        if case == "fails to build" and len(calls) == 1:
            open(package_path, "w").close()  # "compiled"; loading it waits for the kernel's build, which fails
            return
        raise Stop

    monkeypatch.setattr(kernels, "load", load)
    monkeypatch.setattr(kernels, "_failure", None)  # this test's failure stays in this test
    if case != "unavailable":  # a machine that can run the kernel (its build is replaced above), whatever this one is
        monkeypatch.setattr(kernels, "cpu_info", lambda: {"flags": "flags : avx512f"})
    if case == "unavailable":
        monkeypatch.setattr(kernels, "unavailable", lambda: "the CPU has no AVX-512F")
    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", compile_and_package)
    monkeypatch.setattr(compiled_module, "cache_folder", lambda: str(tmp_path))  # an empty cache
    assert engine._servable()  # the optimiser states the probe inputs copy
    spec = engine.spec(64)
    with pytest.raises(Stop):
        compile_step(spec, engine._probe_loop_inputs(spec), REWRITES, engine.inductor_configs)
    shim = {th.ops.sb3_tutorial_sac.avx512_bmm.default: [kernels.SHIM_DECLARATION]}
    expected = {"loads": [True], "unavailable": [False], "fails to build": [True, False]}[case]
    if case == "fails to build":  # remembered: the next compile does not build (nor compile for) the kernel again
        assert kernels.unavailable() == "building the AVX-512 product failed: no"
    assert [uses for _, uses in calls] == expected
    assert [configs.get("aot_inductor.custom_ops_to_c_shims") == shim for configs, _ in calls] == expected
    assert all(configs["cpp.threads"] == 1 for configs, _ in calls)  # the engine's own options kept


def test_without_avx512_the_kernel_is_not_built_and_says_why(monkeypatch, tmp_path):
    monkeypatch.setattr(kernels, "unavailable", lambda: "the CPU has no AVX-512F")
    with pytest.raises(RuntimeError, match="the CPU has no AVX-512F"):
        kernels.load(str(tmp_path))
    assert list(tmp_path.iterdir()) == []  # nothing compiled
