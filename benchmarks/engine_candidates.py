"""The candidates for compiling TutorialSAC's gradient step, measured side by side in one process.

Each candidate is the compiled engine (``sb3_tutorial_sac.engines.compiled``: the whole step as one function of
tensors, ``step_function``) with another way of compiling or running it, or the fast engine. For each, one TutorialSAC model on
Pendulum-v1 with the tutorial's defaults is warmed up with ``learn(400)`` (the compile happens there and is timed), then
``train(--train-steps)`` calls are timed, alternating the candidates in each repeat so that machine drift cancels;
medians are printed, with the ratio to the fast engine and the parameters' largest difference from the fast engine
after the same 300 gradient steps from the same state (0 means bit for bit); last, each candidate's speed against the
first one named, paired by repeat (the ratio of their CPU times per step in the same repeat: the median and its
distribution-free 95% interval, ``common.describe_median``), the figure that resolves a few percent on a noisy machine.
``--core N`` pins the process to core N before torch is imported (``common.pin_from_argv``).

    python benchmarks/engine_candidates.py                      # every candidate
    python benchmarks/engine_candidates.py --core 0 --repeats 60 --train-steps 100 \
        --candidates aoti_fused aoti_fused_before_first_layers   # the default against the one before
    python benchmarks/engine_candidates.py --candidates fast aoti_fused --cold   # compile into an empty cache

Candidates:

- ``fast``: the fast engine (the step function run eagerly: eager PyTorch, one op at a time);
- ``aoti``: AOTInductor (``torch.export`` then ``aoti_compile_and_package``), small products as BLAS calls;
- ``aoti_fused``: AOTInductor with the small products written as fused pointwise products and sums, the critics as
  one ensemble product per layer and the biases added after the products (``REWRITES``), all steps of a ``train()``
  call in one compiled loop (the engine's default);
- ``aoti_fused_before_22``: the same without the ensemble and the biases after (the default before issue 22);
- ``aoti_fused_autotune``: the same with ``max_autotune`` and Inductor's C++ GEMM template as a candidate for the
  large products;
- ``aoti_fused_before_first_layers``: the default without the first layers as broadcast sums (``in_t``,
  ``ensemble_in_t``) and Adam's reciprocal (``adam_reciprocal``), the default before they were measured faster;
- ``aoti_fused_memory_planning``, ``aoti_fused_stack``, ``aoti_fused_pointwise_cat``, ``aoti_fused_aggressive``: the
  default with one Inductor option (one allocation for the step's buffers; buffers on the stack; the critics'
  gradient concatenation read in place by Adam's loop; Inductor's aggressive fusion);
- ``aoti_fused_no_<rewrite>`` and ``aoti_fused_and_<rewrite>``: the default without one of its rewrites, or with one
  of the others.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from typing import Any

from common import add_core_argument, alternate, describe_median, one_thread, paired_ratios, pin_from_argv

# pinned (with --core) before torch is imported, so that every thread it starts is held to the core
CORE = pin_from_argv(None) if __name__ == "__main__" else None

import torch as th  # noqa: E402
from stable_baselines3.common.logger import Logger  # noqa: E402
from stable_baselines3.common.utils import set_random_seed  # noqa: E402

from sb3_tutorial_sac import TutorialSAC  # noqa: E402
from sb3_tutorial_sac.engines import CompiledEngine, register_engine  # noqa: E402
from sb3_tutorial_sac.engines.compiled.rewrites import ALL_REWRITES, REWRITES  # noqa: E402


def _aoti(rewrites: frozenset[str], inductor_configs: dict[str, Any] | None = None) -> type[CompiledEngine]:
    """The compiled engine with other rewrites or Inductor options (added to the engine's own)."""

    class _AOTIEngine(CompiledEngine):
        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.rewrites = rewrites
            self.inductor_configs = {**(self.inductor_configs or {}), **(inductor_configs or {})}

    return _AOTIEngine


CANDIDATES: dict[str, type[CompiledEngine] | None] = {
    "fast": None,
    "aoti": _aoti(frozenset()),
    "aoti_fused": _aoti(REWRITES),
    "aoti_fused_autotune": _aoti(REWRITES, {"cpp.threads": 1, "max_autotune": True, "max_autotune_gemm_backends": "CPP,ATEN"}),
    "aoti_fused_memory_planning": _aoti(REWRITES, {"cpp.threads": 1, "memory_planning": True}),
    "aoti_fused_stack": _aoti(REWRITES, {"cpp.threads": 1, "aot_inductor.allow_stack_allocation": True}),
    "aoti_fused_pointwise_cat": _aoti(
        REWRITES, {"cpp.threads": 1, "max_pointwise_cat_inputs": 16, "max_complex_pointwise_cat_inputs": 16}
    ),
    "aoti_fused_aggressive": _aoti(REWRITES, {"cpp.threads": 1, "aggressive_fusion": True}),
    "aoti_fused_all": _aoti(ALL_REWRITES),
    # the engine's default before this session's first-layer and Adam rewrites (issue 22, 2026-12-01)
    "aoti_fused_before_first_layers": _aoti(REWRITES - {"in_t", "ensemble_in_t", "adam_reciprocal"}),
    # the engine's default before issue 22: the critics one by one, addmm with the bias
    "aoti_fused_before_22": _aoti(REWRITES - {"bias_after", "ensemble"}),
    **{f"aoti_fused_no_{rewrite}": _aoti(REWRITES - {rewrite}) for rewrite in sorted(REWRITES)},
    **{f"aoti_fused_and_{rewrite}": _aoti(REWRITES | {rewrite}) for rewrite in sorted(ALL_REWRITES - REWRITES)},
}


# each candidate is registered as an engine of its own name (engines.register_engine), so TutorialSAC(engine=name) builds it
for _name, _engine_class in CANDIDATES.items():
    if _engine_class is not None:
        register_engine(type(f"Candidate_{_name}", (_engine_class,), {"name": _name}))


def make(candidate: str, seed: int = 0) -> TutorialSAC:
    model = TutorialSAC("MlpPolicy", "Pendulum-v1", seed=seed, device="cpu", engine=candidate)
    model.set_logger(Logger(folder=None, output_formats=[]))
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    parser.add_argument("--repeats", type=int, default=7, help="timed train() calls per candidate (median)")
    parser.add_argument("--train-steps", type=int, default=200, help="gradient steps per timed train() call")
    parser.add_argument("--cold", action="store_true", help="compile into an empty Inductor cache (TORCHINDUCTOR_CACHE_DIR)")
    add_core_argument(parser, None)
    args = parser.parse_args()
    if args.cold:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-cold-")
    one_thread()
    print(f"torch {th.__version__}, 1 thread, {'empty' if args.cold else 'existing'} Inductor cache")

    models: dict[str, TutorialSAC] = {}
    for name in args.candidates:
        start = time.perf_counter()
        model = make(name)
        set_random_seed(0)
        model.learn(400)
        models[name] = model
        engine = model.update_engine
        compile_seconds = getattr(engine, "compile_seconds", None)
        cached = getattr(engine, "loaded_from_cache", None)
        unavailable = getattr(engine, "unavailable", None)
        print(f"{name:28s} set up and learn(400) {time.perf_counter() - start:6.1f} s; compile {compile_seconds} s "
              f"(from cache: {cached}){'; UNAVAILABLE: ' + unavailable if unavailable else ''}", flush=True)  # fmt: skip

    # the same 300 gradient steps from the same state (every model made the same way, learn(400) from seed 0)
    deviation: dict[str, float] = {}
    for name in args.candidates:
        set_random_seed(1)
        models[name].train(300, 64)
    reference = models.get("fast")
    for name, model in models.items():
        if reference is not None:
            mine, theirs = model.policy.state_dict(), reference.policy.state_dict()
            deviation[name] = max((mine[k] - theirs[k]).abs().max().item() for k in mine)

    timings: dict[str, list[float]] = {name: [] for name in args.candidates}
    cpu_times: dict[str, list[float]] = {name: [] for name in args.candidates}
    for repeat in range(args.repeats):
        for name in alternate(args.candidates, repeat):
            start, cpu = time.perf_counter(), time.process_time()
            models[name].train(args.train_steps, 64)
            timings[name].append(args.train_steps / (time.perf_counter() - start))
            cpu_times[name].append((time.process_time() - cpu) / args.train_steps * 1e6)

    base = statistics.median(timings["fast"]) if "fast" in timings else None
    print(
        f"\n{'candidate':28s} {'grad steps/s':>13} {'x fast':>7} {'CPU us/step min, median':>24} "
        f"{'max |param - fast| after 300 steps':>36}"
    )
    for name, values in timings.items():
        median = statistics.median(values)
        ratio = f"{median / base:7.2f}" if base else ""
        cpu_us = f"{min(cpu_times[name]):.0f}, {statistics.median(cpu_times[name]):.0f}"
        print(f"{name:28s} {median:13.0f} {ratio} {cpu_us:>24} {deviation.get(name, float('nan')):36.3g}")
    # paired by repeat: each candidate's CPU time per step against the first candidate's in the same repeat
    first = args.candidates[0]
    print(
        f"\nspeed against {first}, paired by repeat (its CPU time per step over the candidate's): "
        "median [distribution-free 95% interval]"
    )
    for name in args.candidates[1:]:
        print(f"{name:28s} {describe_median(paired_ratios(cpu_times[first], cpu_times[name]))}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
