"""Why a grid run diverged: re-run it exactly as its record says, keep the state at the ``train()`` call that TutorialSAC's
guard stops, and replay that call on each engine.

A grid run whose training the guard (:class:`~sb3_tutorial_sac.NonFiniteError`) stopped is recorded as ``diverged``
(``compare_run.json``, ``diverged_at``). This script answers two questions about it:

- **Engine or variant?** The state before the failing call (parameters, log-alpha, optimisers, random generators,
  replay buffer) is saved and the call replayed on each ``--engines``: an engine bug fails on one engine and not on
  the others; a NaN that every engine reaches at the same gradient step is the row's own arithmetic.
- **What the policy looks like there.** The actor's mean and standard deviation on the replay buffer's observations,
  and the entropy coefficient (a policy far outside the tanh's range points at the entropy term).

    python benchmarks/divergence.py --log-folder benchmarks/runs/Hopper-v5-100k --row tutorial_entropy --seed 0
    python benchmarks/divergence.py ... --engines compiled reference --core 0

The run is re-trained in a scratch folder (the record is only read), to the step where it diverged: minutes for a
MuJoCo run.
"""

import argparse
import dataclasses
import json
import pathlib
import sys
import tempfile
from typing import Any

from common import add_core_argument, one_thread, pin_from_argv

# pinned (with --core) before torch is imported, so that every thread it starts is held to the core
CORE = pin_from_argv(None) if __name__ == "__main__" else None

import torch as th  # noqa: E402
from stable_baselines3.common.logger import configure  # noqa: E402

from sb3_tutorial_sac import NonFiniteError, TutorialSAC  # noqa: E402
from sb3_tutorial_sac.compare.records import discover  # noqa: E402
from sb3_tutorial_sac.compare.runs import train_one  # noqa: E402
from sb3_tutorial_sac.compare.specs import RUN_FILE, make_specs  # noqa: E402
from sb3_tutorial_sac.rng_state import get_rng_state, set_rng_state  # noqa: E402


def rerun_to_failure(spec: Any, scratch: pathlib.Path) -> dict[str, Any]:
    """Train ``spec`` as the grid did (``train_one``); at the ``train()`` call the guard stops, save the model with
    the random generators' states from before that call, and its replay buffer, under ``scratch``.

    :return: the call's arguments and env step, and the re-run's record
    """
    original = TutorialSAC.train
    failure: dict[str, Any] = {}

    def train(self: TutorialSAC, gradient_steps: int, batch_size: int = 64) -> None:
        before = get_rng_state(self)
        try:
            original(self, gradient_steps, batch_size)
        except NonFiniteError:
            # The guard has put the parameters, log-alpha and optimisers back to their values before this call; the
            # generators are put back here, so the saved model replays the call from its start
            set_rng_state(self, before)
            self.save(scratch / "failing_call.zip")
            self.save_replay_buffer(scratch / "failing_call_buffer")
            failure.update(gradient_steps=gradient_steps, batch_size=batch_size, env_step=self.num_timesteps)
            raise

    TutorialSAC.train = train  # type: ignore[method-assign]
    try:
        record = train_one(spec)
    finally:
        TutorialSAC.train = original  # type: ignore[method-assign]
    return {**failure, "record": record}


def policy_figures(model: TutorialSAC) -> dict[str, float]:
    """The actor's mean and standard deviation (before the tanh) on the replay buffer's observations, and the entropy
    coefficient."""
    buffer = model.replay_buffer
    assert buffer is not None
    stored = buffer.observations[: buffer.buffer_size if buffer.full else buffer.pos]
    observations = th.as_tensor(stored.reshape(-1, *buffer.obs_shape), dtype=th.float32, device=model.device)
    with th.no_grad():
        # TutorialSACPolicy's actor gives the Gaussian's mean and standard deviation (the tutorial's std head; SB3's
        # actor gives a log std)
        mean, std = model.actor.get_action_dist_params(observations)[:2]
    return {
        "observations": len(observations),
        "abs_mean_max": float(mean.abs().max()),
        "abs_mean_median": float(mean.abs().median()),
        "std_min": float(std.min()),
        "std_max": float(std.max()),
        "std_median": float(std.median()),
        "log_ent_coef": float(model.log_ent_coef.detach()),
    }


def replay(scratch: pathlib.Path, failure: dict[str, Any], engine: str) -> str:
    """Replay the saved ``train()`` call on ``engine``; what the guard said, or that it trained through."""
    model = TutorialSAC.load(scratch / "failing_call.zip", engine=engine, device="cpu")
    model.load_replay_buffer(scratch / "failing_call_buffer.pkl")
    model.set_logger(configure(None, [""]))
    try:
        model.train(failure["gradient_steps"], failure["batch_size"])
    except NonFiniteError as error:
        return str(error).split(". ", 1)[0]
    return "trained through the call without a non-finite value"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--log-folder", type=pathlib.Path, required=True, help="the grid's log folder (its records)")
    parser.add_argument("--row", required=True, help="the row (label) of the diverged run")
    parser.add_argument("--seed", type=int, required=True, help="the diverged run's seed")
    parser.add_argument("--env", default=None, help="its environment (default: the folder's only one)")
    parser.add_argument("--engines", nargs="+", default=["compiled", "fast", "reference"], help="engines to replay on")
    add_core_argument(parser, None)
    args = parser.parse_args()
    one_thread()
    grid = discover(args.log_folder, ablation=True)
    variants = {variant.label: variant for variant in grid.variants}
    if args.row not in variants:
        sys.exit(f"--row: {args.row!r} has no finished run in {args.log_folder}; its rows are {sorted(variants)}")
    if args.env is None and len(grid.envs) != 1:
        sys.exit(f"--env: {args.log_folder} holds {grid.envs}; name one")
    env = args.env or grid.envs[0]
    spec = make_specs(
        [variants[args.row]], [env], [args.seed], grid.budget, grid.eval_freq, grid.eval_episodes, args.log_folder,
        schedule=grid.schedule, engine=grid.engine,
    )[0]  # fmt: skip
    committed = json.loads((spec.run_dir() / RUN_FILE).read_text())
    if committed.get("status") != "diverged":
        sys.exit(f"{spec.run_dir()}: the record's status is {committed.get('status')!r}, not 'diverged'")
    print(f"record: {spec.run_dir()}: diverged at env step {committed['diverged_at']:,}: {committed['error'].split('. ')[0]}")
    print(f"recorded on: {committed['provenance'].get('cpu')}, commit {committed['provenance'].get('commit')}")
    with tempfile.TemporaryDirectory(prefix="sb3_tutorial_sac_divergence_") as folder:
        scratch = pathlib.Path(folder)
        failure = rerun_to_failure(dataclasses.replace(spec, log_folder=str(scratch / "runs")), scratch)
        record = failure["record"]
        print(f"re-run: {record['status']} at env step {record.get('diverged_at', record.get('env_steps'))}: ", end="")
        print(str(record.get("error", "")).split(". ")[0])
        if "gradient_steps" not in failure:
            sys.exit("the re-run did not diverge here (another CPU model or code version? the record names its own)")
        call = f"train({failure['gradient_steps']}, batch_size={failure['batch_size']})"
        print(f"failing call: {call} at env step {failure['env_step']:,}")
        model = TutorialSAC.load(scratch / "failing_call.zip", engine="reference", device="cpu")
        model.load_replay_buffer(scratch / "failing_call_buffer.pkl")
        figures = policy_figures(model)
        print(
            f"actor before the call, on the buffer's {figures['observations']:,} observations: |mean| max "
            f"{figures['abs_mean_max']:,.1f} (median {figures['abs_mean_median']:,.2f}), std {figures['std_min']:,.3g} to "
            f"{figures['std_max']:,.4g} (median {figures['std_median']:,.3g}); log alpha {figures['log_ent_coef']:.2f}"
        )
        for engine in args.engines:
            print(f"replayed on the {engine} engine: {replay(scratch, failure, engine)}")


if __name__ == "__main__":
    main()
