"""What a saved model costs: zip and ``data`` member sizes, and load time, TutorialSAC against SB3's SAC.

Pendulum-v1, each algorithm's defaults (TutorialSAC: the tutorial's networks; SAC: SB3's ``[256, 256]``), saved fresh
and after ``learn(400)``; load times are medians of ``--repeats`` loads of the trained file.

    python benchmarks/file_size.py
    python benchmarks/file_size.py --core 0 --repeats 3     # pinned to core 0 (``common.pin_from_argv``)
"""

import argparse
import statistics
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

from common import add_core_argument, one_thread, pin_from_argv

# pinned (with --core) before torch is imported, so that every thread it starts is held to the core
CORE = pin_from_argv(None) if __name__ == "__main__" else None

from stable_baselines3 import SAC  # noqa: E402

from sb3_tutorial_sac import TutorialSAC  # noqa: E402


def sizes(path: Path) -> tuple[int, int]:
    """The zip's size and its ``data`` member's (uncompressed), in bytes."""
    with zipfile.ZipFile(path) as archive:
        return path.stat().st_size, archive.getinfo("data").file_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="loads timed per file (median printed)")
    add_core_argument(parser, None)
    args = parser.parse_args()
    one_thread()
    print(f"{'':<14} {'zip fresh KB':>13} {'data fresh KB':>14} {'zip trained KB':>15} {'data trained KB':>16} {'load s':>8}")
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for name, algorithm in (("TutorialSAC", TutorialSAC), ("SB3 SAC", SAC)):
            model = algorithm("MlpPolicy", "Pendulum-v1", seed=0, device="cpu")
            fresh, trained = Path(folder) / f"{name}_fresh.zip", Path(folder) / f"{name}_trained.zip"
            model.save(fresh)
            model.learn(400)
            model.save(trained)
            loads = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                algorithm.load(trained, device="cpu")
                loads.append(time.perf_counter() - start)
            (zip_fresh, data_fresh), (zip_trained, data_trained) = sizes(fresh), sizes(trained)
            print(
                f"{name:<14} {zip_fresh / 1e3:>13.0f} {data_fresh / 1e3:>14.1f} {zip_trained / 1e3:>15.0f} "
                f"{data_trained / 1e3:>16.1f} {statistics.median(loads):>8.3f}"
            )


if __name__ == "__main__":
    main()
