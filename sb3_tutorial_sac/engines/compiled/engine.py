"""The compiled engine: the written-out step (:func:`~sb3_tutorial_sac.engines.step.step_function`) compiled once by
AOTInductor, inside a loop over the gradient steps of a ``train()`` call.

The fast engine runs about 200 small operations per gradient step, one by one, and on a CPU with the tutorial's
networks and batch most of a step is the cost of calling them. Here the same function, in a ``while_loop`` over the
minibatches, noise and scalars of all steps of a call (:func:`~sb3_tutorial_sac.engines.compiled.rewrites.loop_function`), is
exported (``torch.export``) and compiled by AOTInductor (``torch._inductor.aoti_compile_and_package``) into one native
function that runs a whole ``train()`` call, any number of steps (SBX's jitted loop does the same): the pointwise
operations fused into a few loops, the large matrix products calls into the BLAS (the two critics' layers as one
batched product each, the biases added in the fused loops after them; on x86-64 CPUs with AVX-512 an AVX-512 kernel
of our own, :mod:`~sb3_tutorial_sac.engines.compiled.kernels`, which the package calls directly), the small ones (a
dimension of 1: heads, a critic's output, one action column) written as fused products and sums
(:class:`~sb3_tutorial_sac.engines.compiled.rewrites.FusedProducts`,
:data:`~sb3_tutorial_sac.engines.compiled.rewrites.REWRITES`), and no Python between operations.

What it costs and when:

* a model's first ``train()`` call compiles the step for its :class:`~sb3_tutorial_sac.engines.step.StepSpec`
  (networks, batch size, entropy term and temperature loss, Adam's betas), once per machine and torch version (its cost:
  benchmarks/RESULTS.md), and stores the package in Inductor's cache folder
  (``TORCHINDUCTOR_CACHE_DIR``; by default ``torchinductor_<user>`` in the system's temporary folder, which a reboot
  may empty). Every later model of that spec loads it from there. The numeric settings (tau, the target entropy,
  the learning rates) are inputs of the compiled function: changing them on the model never recompiles; changing the
  entropy term or the temperature loss compiles (or loads) another spec;
* the numbers are the tutorial's up to rounding: Inductor's fused kernels round differently from PyTorch's eager ones
  (its own ``tanh``, ``log`` and ``exp``, fused multiply-adds, sums in another order), a few ulps per step
  (``tests/test_compiled_engine.py`` holds the parameters within 1e-5 of the reference engine after 300 steps). Where training
  amplifies rounding, runs part as they would after a 1-ulp change of one parameter of the bit-exact engine:
  statistically the tutorial's, not bit for bit. The fast engine stays the default (``engine="auto"``).

Proofs: when the model is set up, the step function under this engine's spec is run eagerly against the fast engine
on a probe batch (bit for bit); after compiling or loading, the compiled loop is compared with the eager step, step by
step, on two steps of a probe batch (within 1e-4 relative). Where compiling is impossible (no C++ compiler, an
unsupported platform or torch version, a compile error) or a proof fails, the engine warns once and trains with the
fast engine's step.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import platform
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from typing import Any, ClassVar

import torch as th
from torch import nn

from sb3_tutorial_sac import flat, losses, policies
import sb3_tutorial_sac.engines.compiled.rewrites as rewrites_module
import sb3_tutorial_sac.engines.step as step_module
from sb3_tutorial_sac.engines.base import Unavailable, UpdateEngine
from sb3_tutorial_sac.engines.compiled import cache, kernels, torch_privates
from sb3_tutorial_sac.engines.compiled.rewrites import LOOP_INPUTS, REWRITES, loop_function
from sb3_tutorial_sac.engines.fast import FastEngine, Runner
from sb3_tutorial_sac.engines.probe import differences, engine_difference, probe_batch
from sb3_tutorial_sac.engines.reference import ReferenceEngine
from sb3_tutorial_sac.engines.step import (
    StepScalars,
    Minibatch,
    Networks,
    StepSpec,
    step_function,
)
from sb3_tutorial_sac.state import TrainingState
from sb3_tutorial_sac.user_warnings import user_stacklevel


def spec_key(spec: StepSpec) -> str:
    """A digest of the spec, the step function's sources, torch's version and the CPU (the package is built for it)."""
    parts = [repr(asdict(spec)), _source_digest(), th.__version__, platform.machine(), _cpu_model()]
    parts.append(th.backends.cpu.get_cpu_capability())
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def _source_digest() -> str:
    """A digest of the step function's sources (the step, Adam's update, the loss and sampling formulas it calls): a
    compiled package is never reused after the step function changed (the package's version where a source cannot be
    read, e.g. from a zip)."""
    digest = hashlib.sha256()
    try:
        sources = (step_module.__file__, rewrites_module.__file__, flat.__file__, losses.__file__, policies.__file__)
        for module_file in (*sources, kernels.__file__):
            with open(module_file, "rb") as source:
                digest.update(source.read())
    except (OSError, TypeError):
        return importlib.metadata.version("sb3-tutorial-sac")
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------------ compiling
def _cpu_model() -> str:
    """The CPU's model name and flags (Linux), else the platform's processor string: the package is compiled for the
    machine's CPU (``-march=native``)."""
    return "|".join(kernels.cpu_info().values()) or platform.processor()


class _Step(nn.Module):
    """The step function as a module, for ``torch.export``."""

    def __init__(self, function: Callable[..., tuple[th.Tensor, ...]]):
        super().__init__()
        self.function = function

    def forward(self, *inputs: th.Tensor) -> tuple[th.Tensor, ...]:
        return self.function(*inputs)


def cache_folder() -> str:
    """Where compiled packages are kept: ``sb3_tutorial_sac`` in Inductor's cache folder (``TORCHINDUCTOR_CACHE_DIR``),
    created 0700 and checked private (:func:`~sb3_tutorial_sac.engines.compiled.cache.private_folder`: a
    :class:`~sb3_tutorial_sac.engines.compiled.cache.CacheError` where another user could put files there)."""
    return cache.private_folder()


def compile_step(
    spec: StepSpec,
    example_inputs: Sequence[th.Tensor],
    rewrites: frozenset[str] = REWRITES,
    inductor_configs: dict[str, Any] | None = None,
) -> tuple[Callable[[list[th.Tensor]], list], bool]:
    """
    The compiled loop of steps for ``spec`` (:func:`~sb3_tutorial_sac.engines.compiled.rewrites.loop_function`: all
    steps of a ``train()`` call, any number): loaded from the cache folder, else exported, compiled and stored there.

    :param example_inputs: :data:`~sb3_tutorial_sac.engines.compiled.rewrites.LOOP_INPUTS` of at least 2 steps
    :param rewrites: compile :func:`step_function` with these rewrites of the small products
    :param inductor_configs: Inductor options for the compilation (part of the cache key)
    :return: a function of the input list returning the outputs, and whether it was loaded from the cache
    """
    folder = cache_folder()
    kernel: Future | None = None
    if "avx512_bmm" in rewrites:
        # the ensemble's products as the AVX-512 kernel, which the package calls: built (once per machine)
        # while the step is exported and compiled, loaded before the package; where the machine cannot run it, or it
        # fails to build, the products stay torch's bmm (the same numbers up to rounding)
        if kernels.unavailable() is not None:
            rewrites = rewrites - {"avx512_bmm"}
        else:
            kernel = _KERNEL_BUILDS.submit(kernels.load, folder)
    try:
        return _compile_or_load(spec, example_inputs, rewrites, inductor_configs, folder, kernel)
    except kernels.BuildError:
        return compile_step(spec, example_inputs, rewrites - {"avx512_bmm"}, inductor_configs)


# builds the kernel's library beside the export and compile of the step (the compiler runs as another process)
_KERNEL_BUILDS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sb3_tutorial_sac_kernel")
# compiles the package's wrapper beside its kernels (_wrapper_compiled_beside_kernels)
_WRAPPER_BUILDS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sb3_tutorial_sac_wrapper")


@contextlib.contextmanager
def _wrapper_compiled_beside_kernels():
    """
    AOTInductor compiles a package's two C++ files one after the other (``codecache.AotCodeCompiler.compile``: the
    wrapper, then the kernels), each a compiler process on one core. Here, in the calling thread, the wrapper's
    compile is started in another thread and awaited after the next compile (the kernels'), and before any link: the
    kernels' compile off every cold compile on two cores (RESULTS.md has the figures), the same files. Builds
    in other threads, and compiles while another thread's is under way here, are left as Inductor makes them; where
    torch's internals differ (no ``codecache.CppBuilder``), nothing changes.
    """
    codecache = torch_privates.codecache()

    with _BUILDER_SWAP:
        base = getattr(codecache, "CppBuilder", None)
        overlapping: tuple[type, Callable[[], None]] | None = None
        if (
            base is not None
            and not getattr(base, "_sb3_tutorial_sac_overlap", False)  # else another thread's compile is under way
            and hasattr(base, "build")
            and hasattr(base, "get_target_file_path")
        ):
            overlapping = _overlapping_builder(base, threading.get_ident())
            codecache.CppBuilder = overlapping[0]
    if overlapping is None:
        yield
        return
    try:
        yield
    finally:
        with _BUILDER_SWAP:
            codecache.CppBuilder = base
        with contextlib.suppress(Exception):  # a wrapper never awaited (the compile failed before): its error unused
            overlapping[1]()


# held while the builder class is swapped in or out (_wrapper_compiled_beside_kernels)
_BUILDER_SWAP = threading.Lock()


def _overlapping_builder(base: type, owner: int) -> tuple[type, Callable[[], None]]:
    """``base`` (Inductor's ``CppBuilder``) whose ``build`` of a package's wrapper object, in thread ``owner``, runs in
    another thread, awaited after the next compile and before any link; and the function that awaits it."""
    pending: list[Future] = []

    def await_pending() -> None:
        while pending:
            pending.pop().result()

    class Builder(base):  # type: ignore[misc,valid-type]
        _sb3_tutorial_sac_overlap = True

        def build(self) -> None:
            if threading.get_ident() != owner:
                return super().build()
            compile_only = bool(getattr(self, "_compile_only", False))
            if compile_only and not pending and self.get_target_file_path().endswith(".wrapper.o"):
                pending.append(_WRAPPER_BUILDS.submit(super().build))
                return None
            if not compile_only:  # a link reads the objects: the wrapper's first
                await_pending()
            try:
                return super().build()
            finally:
                await_pending()

    return Builder, await_pending


def _compile_or_load(
    spec: StepSpec,
    example_inputs: Sequence[th.Tensor],
    rewrites: frozenset[str],
    inductor_configs: dict[str, Any] | None,
    folder: str,
    kernel: Future | None,
) -> tuple[Callable[[list[th.Tensor]], list], bool]:
    """:func:`compile_step` once the rewrites are settled; ``kernel``: the kernel's build, awaited before loading a
    package that calls it (its :class:`~sb3_tutorial_sac.engines.compiled.kernels.BuildError` raised)."""
    aoti_compile_and_package = torch_privates.aoti_compile_and_package()

    def runner(path: str) -> Callable[[list[th.Tensor]], list]:
        if kernel is not None:
            kernel.result()
        return load_cached_package(path).boxed_run

    options = repr((sorted(rewrites), sorted((inductor_configs or {}).items()), "loop"))  # (the key of earlier trees)
    key = hashlib.sha256(f"{spec_key(spec)}|{options}".encode()).hexdigest()[:24]
    path = os.path.join(folder, f"step-{key}.pt2")
    if os.path.exists(path):
        try:
            return runner(path), True
        except kernels.BuildError:
            raise
        except Exception:  # a package this torch cannot load, or not the one built here (planted): compiled again below
            cache.discard(path)
    os.makedirs(folder, exist_ok=True)
    with th.inference_mode(False), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inputs = tuple(t.detach().clone() for t in example_inputs)
        # the number of steps is the first dimension of the stacked inputs, any number from 1
        steps = th.export.Dim("steps", min=1)
        dynamic = tuple({0: steps} if k < LOOP_INPUTS.index("scalars") + 1 else None for k in range(len(LOOP_INPUTS)))
        exported = th.export.export(_Step(loop_function(spec, rewrites)), inputs, dynamic_shapes=(dynamic,), strict=False)
        temporary = cache.temporary_name(path, ".pt2")  # unpredictable: nothing can be planted at it beforehand
        try:
            configs = {**(inductor_configs or {}), **(kernels.inductor_configs() if "avx512_bmm" in rewrites else {})}
            with _wrapper_compiled_beside_kernels():
                aoti_compile_and_package(exported, package_path=temporary, inductor_configs=configs)
            cache.publish(temporary, path)  # digest recorded, then renamed (atomic: concurrent compilations of the
            # same spec each write a whole file)
        finally:
            with contextlib.suppress(OSError):
                os.remove(temporary)
    return runner(path), False


def load_cached_package(path: str) -> Any:
    """The loader of the package at ``path`` in the cache, once checked as the one built here
    (:func:`~sb3_tutorial_sac.engines.compiled.cache.verified`): a file planted under its name is never loaded."""
    return _load_package(cache.verified(path))


def _load_package(path: str) -> Any:
    """The package's loader (its ``boxed_run`` runs the step). ``aoti_load_package`` would first probe the CPU's vector
    extensions by compiling test programs (about a second per process); the cache key already names the CPU."""
    try:
        return torch_privates.package_loader(path)  # run single-threaded, one runner, CPU
    except (AttributeError, TypeError):
        return torch_privates.aoti_load_package()(path, run_single_threaded=True).loader


# ------------------------------------------------------------------------------------------------ the engine
class CompiledEngine(FastEngine):
    """
    The fast engine with the step of this call's batch size compiled once (:func:`compile_step`); wherever the compiled
    function cannot be used (not compiled, a batch of another size, optimiser states one update cannot serve) it steps
    as the fast engine does.

    :param state: the training state it steps
    :param networks: its networks as the step function reads them
    """

    name = "compiled"
    description: ClassVar[str] = "the compiled engine (the same update, rounded by Inductor's kernels)"

    def __init__(self, state: TrainingState, networks: Networks):
        super().__init__(state, networks)
        self._compiled: Runner | None = None
        self._compiled_spec: StepSpec | None = None
        self.unavailable: str | None = None  # why the compiled step cannot be used (then the fast engine's is)
        self.compile_seconds: float | None = None  # the one-off cost of compiling (or loading) the step
        self.loaded_from_cache: bool | None = None
        # how the step is compiled (compile_step's options). One
        # thread in the generated loops: the step's tensors are small, and the package then does not depend on
        # torch's thread setting (the BLAS calls still use it). The vector extensions as the CPU names them
        # (/proc/cpuinfo): Inductor's own check would first compile and run a test program for each (at every
        # compile into an empty cache); a compiler that cannot build them fails the compile, and the engine trains
        # with the fast engine's step after its warning, as after any failed compile
        self.rewrites: frozenset[str] = REWRITES
        self.inductor_configs: dict[str, Any] | None = {"cpp.threads": 1, "cpp.vec_isa_ok": True}
        self._loop: Runner | None = None  # the compiled loop for this train() call's batch size, inside loop()
        self._eager_only = False

    @classmethod
    def build(cls, state: TrainingState) -> UpdateEngine | Unavailable:
        fast = FastEngine.build(state)
        if not isinstance(fast, FastEngine):
            # the step it would compile is the fast engine's: the model trains as engine="auto" would train it
            reference = ReferenceEngine.build(state)
            return Unavailable(
                f"it compiles the fast engine's step, which does not cover this model ({getattr(fast, 'reason', '')})",
                engine=cls.name,
                fallback=reference if isinstance(reference, UpdateEngine) else None,
            )
        if fast.state.actor_flat.flat.device.type != "cpu":
            return Unavailable(f"it compiles for the CPU, the model is on {fast._device}", engine=cls.name, fallback=fast)
        compiled = cls(state, fast.networks)
        compiled._fast = fast  # type: ignore[attr-defined]  # the model's engine from the first train() on, if compiling fails (replacement)
        # the step function under this engine's spec, run eagerly, against the fast engine: bit for bit
        compiled._eager_only = True
        try:
            difference = engine_difference(compiled, fast)
        finally:
            compiled._eager_only = False
        if difference is not None:
            reason = f"its step differs from the fast engine's on a probe batch: {difference}"
            return Unavailable(reason, engine=cls.name, fallback=fast)
        return compiled

    def __getstate__(self) -> dict[str, Any]:
        """Copies (``copy.deepcopy`` of a model) leave the compiled package behind: they load it at their next loop."""
        state = self.__dict__.copy()
        state["_compiled"] = state["_compiled_spec"] = state["_main"] = state["_loop"] = None
        return state

    def prepare(self, spec: StepSpec) -> None:
        """Compile (or load) the loop of all steps of a ``train()`` call for ``spec`` (the model's batch size), once."""
        self._loop = None
        if self._eager_only or self.unavailable is not None:
            return
        if spec != self._compiled_spec:
            self._compile(spec)
        if self._compiled is not None and spec == self._compiled_spec:
            self._loop = self._compiled  # run_steps runs every step of the call in it

    # -------------------------------------------------------------------------------------------- the loop
    def _loop_serves(self, batch_size: int) -> bool:
        """Whether this call's steps of ``batch_size`` run in the compiled loop (compiled for the model's batch size)."""
        return self._serving and self._loop is not None and self._main is not None and batch_size == self._main[0]

    def run_steps(self, columns: Minibatch, gradient_steps: int, stats: th.Tensor, target_update_interval: int) -> None:
        """All steps in one call of the compiled loop (:func:`~sb3_tutorial_sac.engines.compiled.rewrites.loop_function`)
        where it serves this call, else step by step."""
        batch_size = columns.actions.shape[0] // gradient_steps
        if not self._loop_serves(batch_size):
            super().run_steps(columns, gradient_steps, stats, target_update_interval)
            return
        # flat Box observations: tensors (FastEngine.observations)
        stacked = [column.reshape(gradient_steps, batch_size, *column.shape[1:]) for column in columns]  # type: ignore[union-attr]
        self._run_loop(stacked, gradient_steps, stats, target_update_interval)

    def _run_loop(self, stacked: list[th.Tensor], steps: int, stats: th.Tensor, target_update_interval: int) -> None:
        """The compiled loop on the stacked minibatch columns ``[steps, batch, ...]``, with the noise and scalars of
        every step drawn and computed as the fast engine draws and computes them step by step."""
        assert self._loop is not None
        noise = self._noise_block(steps, stacked[1].shape[1:])  # a step's draws have the shape of its actions
        scalars = self._scalars_of_steps(steps, target_update_interval)  # Adam's counts advance by one per step
        stats.copy_(self._loop([*stacked, noise, scalars, *self._persistent])[0])

    # -------------------------------------------------------------------------------------------- compiling
    def _compile(self, spec: StepSpec) -> None:
        """Compile (or load) the step for ``spec`` and check it against the eager step on a probe batch."""
        start = time.perf_counter()
        if self.verbose >= 1:
            print(
                "TutorialSAC's compiled engine: compiling the gradient step for this model's configuration (once on this "
                "machine and torch version; later models of it load the step from the cache)"
            )
        try:
            inputs = self._probe_loop_inputs(spec)
            compiled, cached = compile_step(spec, inputs, self.rewrites, self.inductor_configs)
            difference = self._probe_compiled_loop(spec, compiled, inputs)
        except cache.CacheError as error:  # a cache folder another user could write to: nothing loaded from it
            self.unavailable = str(error)
        except Exception as error:  # no compiler, unsupported platform or torch version, compile error
            self.unavailable = f"compiling the gradient step failed ({type(error).__name__}: {str(error).strip()[:300]})"
        else:
            if difference is None:
                self._compiled, self._compiled_spec = compiled, spec
                self.compile_seconds, self.loaded_from_cache = time.perf_counter() - start, cached
                if self.verbose >= 1:
                    how = "loaded from the cache" if cached else "compiled"
                    print(f"TutorialSAC's compiled engine: {how} in {self.compile_seconds:.1f} s")
                return
            self.unavailable = f"the compiled step does not agree with the uncompiled one on a probe batch: {difference}"
        # from the next train() call on, the model's engine is the fast one (model.update_engine reports it)
        self.replacement = getattr(self, "_fast", None)
        warnings.warn(
            f"TutorialSAC's compiled engine cannot be used for this model: {self.unavailable}. Training uses the fast "
            "engine (the same update, bit for bit the tutorial's; slower).",
            stacklevel=user_stacklevel(),
        )

    def _probe_inputs(self, spec: StepSpec) -> list[th.Tensor]:
        """The step's inputs for the probe batch (:func:`~sb3_tutorial_sac.engines.probe.probe_batch`), with copies of
        the model's tensors and typical scalars."""
        batch = probe_batch(self.state, spec.batch_size)
        generator = th.Generator().manual_seed(1)
        noise = [th.randn(spec.batch_size, spec.act_dim, generator=generator) for _ in range(2)]
        persistent = [t.detach().clone() for t in self._persistent_inputs()]
        typical = StepScalars(-3e-4, 0.03, -3e-3, 0.03, -3e-4, 0.03, soft_update=1.0, target_entropy=-float(spec.act_dim))
        scalars = th.tensor(typical, dtype=th.float32)
        return [*list(batch), *noise, *persistent, scalars]  # type: ignore[list-item]

    def _probe_loop_inputs(self, spec: StepSpec) -> list[th.Tensor]:
        """The loop's inputs (:data:`~sb3_tutorial_sac.engines.compiled.rewrites.LOOP_INPUTS`) for two steps on the probe
        batch: the noise of the second step is another draw, and only the first step soft-updates."""
        first = self._probe_inputs(spec)
        generator = th.Generator().manual_seed(2)
        noise = [first[5:7], [th.randn(spec.batch_size, spec.act_dim, generator=generator) for _ in range(2)]]
        scalars = th.stack([first[-1], first[-1]])
        scalars[1, StepScalars._fields.index("soft_update")] = 0.0
        columns = [th.stack([column, column]) for column in first[:5]]
        return [*columns, th.stack([th.stack(pair) for pair in noise]), scalars, *first[7:-1]]

    @staticmethod
    def _probe_compiled_loop(spec: StepSpec, compiled: Runner, inputs: list[th.Tensor]) -> str | None:
        """Compare the compiled loop with :func:`step_function` run eagerly step by step, from the same probe inputs."""
        eager_inputs = [t.clone() for t in inputs]
        compiled_inputs = [t.clone() for t in inputs]
        named = dict(zip(LOOP_INPUTS, eager_inputs))
        persistent = eager_inputs[LOOP_INPUTS.index("half_range") :]
        rows = []
        with th.inference_mode():
            function = step_function(spec)
            for k in range(inputs[0].shape[0]):
                batch = [named[name][k] for name in LOOP_INPUTS[:5]]
                noise = named["noise"][k]
                rows.append(function(*batch, noise[0], noise[1], *persistent, named["scalars"][k])[0])
            expected = {"statistics": th.stack(rows), **named}
            mine = {"statistics": compiled(list(compiled_inputs))[0], **dict(zip(LOOP_INPUTS, compiled_inputs))}
        problems = differences(expected, mine, rtol=1e-4, atol=1e-6)
        return "; ".join(problems) if problems else None
