"""The compiled engine's room: imported only when a model asks for ``engine="compiled"``, never by ``import
sb3_tutorial_sac``.

Its door is :func:`build`, which the registry's entry for ``"compiled"`` (:mod:`sb3_tutorial_sac.engines`) calls: it
checks torch's privates first (:mod:`~sb3_tutorial_sac.engines.compiled.torch_privates`) and, where they are not what
the engine was written against, returns the fast engine with the reason, which ``make_engine`` warns with; otherwise
it imports the engine and builds it. Inside the room:

* :mod:`~sb3_tutorial_sac.engines.compiled.engine`: :class:`~sb3_tutorial_sac.engines.compiled.engine.CompiledEngine`
  and the compiling, caching and loading of its packages;
* :mod:`~sb3_tutorial_sac.engines.compiled.rewrites`: the compile-only rewrites of the step and its ``while_loop``;
* :mod:`~sb3_tutorial_sac.engines.compiled.kernels`: the AVX-512 product (registers
  ``torch.ops.sb3_tutorial_sac.avx512_bmm`` when imported);
* :mod:`~sb3_tutorial_sac.engines.compiled.cache`: the cache folder as a private place;
* :mod:`~sb3_tutorial_sac.engines.compiled.torch_privates`: every private torch name the room uses.

The room imports the core (``engines.base``, ``engines.fast``, ``engines.reference``, ``engines.step``,
``engines.probe``, ``state``, ``flat``, ``losses``, ``policies``); the core imports nothing from it at module level.
"""

from __future__ import annotations

from sb3_tutorial_sac.engines.base import Unavailable, UpdateEngine
from sb3_tutorial_sac.engines.compiled import torch_privates
from sb3_tutorial_sac.engines.fast import FastEngine
from sb3_tutorial_sac.engines.reference import ReferenceEngine
from sb3_tutorial_sac.state import TrainingState


def build(state: TrainingState) -> UpdateEngine | Unavailable:
    """
    The compiled engine for ``state`` (:meth:`CompiledEngine.build
    <sb3_tutorial_sac.engines.compiled.engine.CompiledEngine.build>`), once torch's privates are checked
    (:func:`~sb3_tutorial_sac.engines.compiled.torch_privates.problem`); where they fail the check, why, with the engine
    ``engine="auto"`` would use as the fallback (the fast engine, else the reference engine).
    """
    problem = torch_privates.problem()
    if problem is None:
        from sb3_tutorial_sac.engines.compiled.engine import CompiledEngine

        return CompiledEngine.build(state)
    fallback = FastEngine.build(state)
    if not isinstance(fallback, UpdateEngine):
        fallback = ReferenceEngine.build(state)
    return Unavailable(problem, engine="compiled", fallback=fallback if isinstance(fallback, UpdateEngine) else None)
