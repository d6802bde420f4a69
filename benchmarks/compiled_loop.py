"""The compiled engine's step function called in a loop, alone, for a profiler: ``perf record -p <pid>``.

A TutorialSAC model on Pendulum-v1 with the tutorial's defaults and ``engine="compiled"`` is warmed up with
``learn(500)``; one minibatch of its ``train()`` is kept, and the compiled function is called ``--calls`` times on it
(the parameters move, as in training). The process prints ``start`` before the loop, so a profiler can attach then,
and the mean µs per call at the end.

    python benchmarks/compiled_loop.py --calls 30000 &
    perf record -F 4000 -p $(pgrep -f compiled_loop.py) -o perf.data -- sleep 8   # after "start"
    perf report -i perf.data --no-children --sort dso,symbol
"""

import argparse
import os
import time
import warnings

import torch as th
from stable_baselines3.common.logger import Logger

from sb3_tutorial_sac import TutorialSAC
from sb3_tutorial_sac.engines import CompiledEngine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=3000, help="calls of the compiled step")
    parser.add_argument("--core", type=int, default=0, help="the core to pin to (-1: not pinned)")
    args = parser.parse_args()
    if args.core >= 0:
        os.sched_setaffinity(0, {args.core})
    th.set_num_threads(1)
    warnings.simplefilter("ignore", UserWarning)
    model = TutorialSAC("MlpPolicy", "Pendulum-v1", seed=0, device="cpu", engine="compiled")
    model.set_logger(Logger(folder=None, output_formats=[]))
    model.learn(500)
    engine = model.update_engine
    assert isinstance(engine, CompiledEngine) and engine.unavailable is None, "the compiled engine is not in use"
    kept = {}
    step = engine._step

    def keep(batch, noise, soft_update):  # the engine's per-step call, recorded once
        kept.setdefault("inputs", (batch, noise))
        return step(batch, noise, soft_update)

    engine._step = keep  # type: ignore[method-assign]
    model.train(1, 64)
    del engine._step
    batch, noise = kept["inputs"]
    with engine.loop():
        _, run, as_tensor = engine._main  # type: ignore[misc]
    assert as_tensor, "the compiled function is not in use"
    with th.inference_mode():
        run(engine.inputs(batch, noise, engine._scalars))
        print("start", flush=True)
        start = time.perf_counter()
        for _ in range(args.calls):
            run(engine.inputs(batch, noise, engine._scalars))
        print(f"{(time.perf_counter() - start) / args.calls * 1e6:.1f} µs per call of the compiled step")


if __name__ == "__main__":
    main()
