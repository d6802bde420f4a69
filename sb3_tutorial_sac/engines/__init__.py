"""The engines that compute TutorialSAC's gradient step, and the registry ``TutorialSAC(engine=...)`` chooses from.

Engines differ only in how each step is computed, never in what (``docs/variant.md``, "One gradient step"):

* ``"reference"`` (:class:`ReferenceEngine`): module calls, autograd and torch's ``Adam.step()``; the readable
  transcription of the tutorial, used for every network, and the oracle the others are proven against;
* ``"fast"`` (:class:`FastEngine`): the written-out step (:func:`~sb3_tutorial_sac.engines.step.step_function`, the
  step written once) run eagerly, for flat Box observations and plain ReLU MLPs; bit for bit the reference engine's
  numbers on the CPU;
* ``"compiled"`` (:class:`~sb3_tutorial_sac.engines.compiled.engine.CompiledEngine`): the same function compiled
  once per configuration by AOTInductor and cached; the same mathematics, rounded by Inductor's kernels.

Modules: :mod:`~sb3_tutorial_sac.engines.step` (the step function and what is static about it),
:mod:`~sb3_tutorial_sac.engines.base` (:class:`UpdateEngine`, :class:`Unavailable`),
:mod:`~sb3_tutorial_sac.engines.reference`, :mod:`~sb3_tutorial_sac.engines.fast`,
:mod:`~sb3_tutorial_sac.engines.probe` (the probe batch and the comparison). The compiled engine lives in a room of its
own, :mod:`~sb3_tutorial_sac.engines.compiled` (its kernel, cache, compile-only rewrites and the one module that names
torch's privates), imported only when a model asks for it: the registry holds :class:`CompiledEngineEntry`, whose
``build`` opens the room (``import sb3_tutorial_sac`` registers no custom operator).

:func:`make_engine` builds the engine a model asked for from :data:`ENGINES`; ``"auto"`` tries :data:`AUTO` in order.
Each engine's ``build`` proves itself on a probe batch, or says why it cannot be used. A new engine subclasses
:class:`UpdateEngine` and is registered with :func:`register_engine`; ``TutorialSAC.train()`` does not change.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

from sb3_tutorial_sac import validation
from sb3_tutorial_sac.user_warnings import user_stacklevel
from sb3_tutorial_sac.engines.base import Unavailable, UpdateEngine
from sb3_tutorial_sac.engines.fast import FastEngine
from sb3_tutorial_sac.engines.reference import ReferenceEngine
from sb3_tutorial_sac.engines.step import Minibatch
from sb3_tutorial_sac.state import TrainingState

__all__ = [
    "AUTO",
    "ENGINES",
    "ENGINE_NAMES",
    "CompiledEngineEntry",
    "FastEngine",
    "Minibatch",
    "ReferenceEngine",
    "Unavailable",
    "UpdateEngine",
    "engine_names",
    "make_engine",
    "register_engine",
]

# The engines by name, in the order they are listed
ENGINES: dict[str, type[UpdateEngine]] = {}
# What engine="auto" tries, in order: the first that can be used for the model is used
AUTO: tuple[str, ...] = ("fast", "reference")


def register_engine(engine_class: type[UpdateEngine]) -> type[UpdateEngine]:
    """Add an engine to the registry under its ``name`` (``TutorialSAC(engine=name)`` then accepts it)."""
    ENGINES[engine_class.name] = engine_class
    return engine_class


class CompiledEngineEntry(UpdateEngine):
    """
    The compiled engine's entry in the registry: building it imports the compiled engine's room
    (:func:`sb3_tutorial_sac.engines.compiled.build`, which checks torch's privates first and builds a
    :class:`~sb3_tutorial_sac.engines.compiled.engine.CompiledEngine`, or says why not and which engine takes over).
    Never instantiated; nothing is imported from the room before a model asks for ``engine="compiled"``.
    """

    name = "compiled"
    description: ClassVar[str] = "the compiled engine (the same update, rounded by Inductor's kernels)"

    @classmethod
    def build(cls, state: TrainingState) -> UpdateEngine | Unavailable:
        from sb3_tutorial_sac.engines.compiled import build

        return build(state)


for _engine_class in (ReferenceEngine, FastEngine, CompiledEngineEntry):
    register_engine(_engine_class)


def __getattr__(name: str) -> Any:
    """``CompiledEngine``, imported from the compiled engine's room when asked for (``isinstance`` checks)."""
    if name == "CompiledEngine":
        from sb3_tutorial_sac.engines.compiled.engine import CompiledEngine

        return CompiledEngine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def engine_names() -> tuple[str, ...]:
    """What ``TutorialSAC(engine=...)`` accepts: ``"auto"`` and every registered engine."""
    return ("auto", *ENGINES)


# The names of the built-in engines (engine_names() also lists those registered later)
ENGINE_NAMES: tuple[str, ...] = engine_names()
# the constructor's and load's check of engine=... reads the registry through this
validation.engine_names = engine_names


def make_engine(state: TrainingState, name: str) -> UpdateEngine:
    """
    The engine ``name`` for ``state`` (``TutorialSAC(engine=...)``; :meth:`TrainingState.read` first).

    ``"auto"`` takes the first engine of :data:`AUTO` that can be used, with a warning that says why one could not
    (none for observations the fast engine is not written for: images, dicts, other features extractors). An engine
    asked for by name that cannot be used raises that reason as a ``ValueError``, unless it names a fallback (the
    compiled engine falls back to the fast one, with a warning).
    """
    names = engine_names()
    if name not in names:
        raise ValueError(f"engine must be one of {names} (default 'auto'), got {name!r}")
    candidates = AUTO if name == "auto" else (name,)
    for i, candidate in enumerate(candidates):
        result = ENGINES[candidate].build(state)
        if isinstance(result, UpdateEngine):
            return result
        message = f"TutorialSAC's {result.engine} engine cannot be used for this model: {result.reason}."
        if result.fallback is not None:
            warnings.warn(f"{message} Training uses {result.fallback.description}.", stacklevel=user_stacklevel())
            return result.fallback
        if name != "auto":
            raise ValueError(f"{message} Use engine='reference' (or 'auto', which falls back to it).")
        if not result.silent and i + 1 < len(candidates):
            warnings.warn(f"{message} Training uses {ENGINES[candidates[i + 1]].description}.", stacklevel=user_stacklevel())
    raise ValueError(f"no engine of {candidates} can train this model")
