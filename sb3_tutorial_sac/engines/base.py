"""What every engine is: :class:`UpdateEngine`, the seam between ``TutorialSAC.train()`` and how a step is computed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch as th
from stable_baselines3.common.type_aliases import PyTorchObs

from sb3_tutorial_sac.engines.step import Minibatch
from sb3_tutorial_sac.state import StepSettings, TrainingState


@dataclass(frozen=True)
class Unavailable:
    """
    Why an engine cannot train a model (what ``build`` returns instead of an engine).

    :param reason: the sentence :func:`~sb3_tutorial_sac.engines.make_engine` reports
    :param engine: the name of the engine that cannot be used
    :param silent: ``"auto"`` passes over it without a warning (nothing was expected of this engine here)
    :param fallback: the engine that takes over, with a warning, even when this one was asked for by name
    """

    reason: str
    engine: str
    silent: bool = False
    fallback: UpdateEngine | None = None


class UpdateEngine:
    """
    One gradient step of the tutorial on a :class:`~sb3_tutorial_sac.state.TrainingState`, computed one way.

    ``train()`` calls :meth:`observations` once on the minibatches of the call, enters :meth:`loop` (which reads the
    state's settings for this call) and calls :meth:`run_steps` in it with the minibatches of all steps; by default
    that splits them and calls :meth:`steps`, which calls :meth:`step` once per gradient step.

    :param state: the training state it steps
    """

    name: ClassVar[str]
    # the engine's name and what it is, for the messages of make_engine
    description: ClassVar[str]
    # the model's verbosity, set by train() at every call (an engine may say what it does at 1 and above)
    verbose: int = 0
    # the engine that computes the steps from now on when this one gave way during training (the compiled engine that
    # cannot compile: the fast engine); the model's update_engine then reports and uses it
    replacement: UpdateEngine | None = None

    def __init__(self, state: TrainingState):
        self.state = state

    @classmethod
    def build(cls, state: TrainingState) -> UpdateEngine | Unavailable:
        """This engine for ``state``, proven where it needs a proof, or why it cannot be used."""
        return cls(state)

    @property
    def settings(self) -> StepSettings:
        settings = self.state.settings
        assert settings is not None, "TrainingState.read(model) first"
        return settings

    def observations(self, observations: PyTorchObs) -> PyTorchObs:
        """The observations of all minibatches of a ``train()`` call as this engine reads them (once per call)."""
        return observations

    @contextlib.contextmanager
    def loop(self) -> Iterator[None]:
        """The context of one ``train()`` call's loop of :meth:`step`."""
        yield

    def step(self, batch: Minibatch, stats: th.Tensor, soft_update: bool) -> None:
        """
        One gradient step, in the tutorial's order.

        :param batch: the minibatch
        :param stats: this step's row of statistics, written in place: each critic's loss, the actor loss, the
            temperature loss, the mean ``H(s)`` and alpha (:data:`~sb3_tutorial_sac.engines.step.STATISTICS`)
        :param soft_update: whether the target critics are updated after this step (``target_update_interval``)
        """
        raise NotImplementedError

    def run_steps(self, columns: Minibatch, gradient_steps: int, stats: th.Tensor, target_update_interval: int) -> None:
        """
        The gradient steps of one ``train()`` call, from the minibatches of all steps drawn at once: :meth:`steps` on
        each step's minibatch (:func:`split_steps`).

        :param columns: the minibatches of all steps, ``gradient_steps * batch_size`` rows each, in step order
        :param gradient_steps: the number of steps
        :param stats: as in :meth:`steps`
        :param target_update_interval: as in :meth:`steps`
        """
        batches = [Minibatch(*batch) for batch in zip(*(split_steps(column, gradient_steps) for column in columns))]
        self.steps(batches, stats, target_update_interval)

    def steps(self, batches: Sequence[Minibatch], stats: th.Tensor, target_update_interval: int) -> None:
        """
        The gradient steps of one ``train()`` call, in order: :meth:`step` on each minibatch.

        :param batches: the minibatches, one per gradient step
        :param stats: the statistics, one row per step (:meth:`step`), written in place
        :param target_update_interval: the target critics are soft-updated after step ``k`` when ``k`` is a multiple
            of it (SB3's ``gradient_step % target_update_interval == 0``)
        """
        for k, batch in enumerate(batches):
            self.step(batch, stats[k], soft_update=k % target_update_interval == 0)


def split_steps(tensor_or_dict: PyTorchObs, gradient_steps: int) -> list:
    """Split ``[gradient_steps * batch, ...]`` (or a dict of them) into a list of ``gradient_steps`` views ``[batch, ...]``."""
    if isinstance(tensor_or_dict, dict):
        split = {key: split_steps(value, gradient_steps) for key, value in tensor_or_dict.items()}
        return [{key: value[i] for key, value in split.items()} for i in range(gradient_steps)]
    return list(tensor_or_dict.view(gradient_steps, -1, *tensor_or_dict.shape[1:]).unbind(0))
