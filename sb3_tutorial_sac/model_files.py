"""The file methods of :class:`~sb3_tutorial_sac.TutorialSAC`: SB3's ``save``, ``load``, ``set_parameters`` and the
replay buffer's, writing and reading data only (``docs/files_and_safety.md``).

:class:`DataFiles` is the algorithm's base: SB3's ``OffPolicyAlgorithm`` with these methods overridden, each a call into
the module that does the job (:mod:`~sb3_tutorial_sac.persistence` for model files, :mod:`~sb3_tutorial_sac.buffer_files`
for replay buffers). It knows nothing of the variant: the algorithm lives in :mod:`~sb3_tutorial_sac.tutorial_sac`.
"""

import io
import pathlib
from collections.abc import Iterable
from typing import Any, TypeVar

import torch as th
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.type_aliases import GymEnv, TensorDict

from sb3_tutorial_sac import buffer_files, persistence, user_warnings

SelfDataFiles = TypeVar("SelfDataFiles", bound="DataFiles")


class DataFiles(OffPolicyAlgorithm):
    """SB3's off-policy algorithm whose files hold data only: nothing pickled that loading would have to run, every
    value checked as the constructor checks it, sizes bounded before allocation (``docs/files_and_safety.md``)."""

    def _warn_about_a_files_tensorboard_log(self) -> None:
        """At the start of ``learn()``: a file's ``tensorboard_log`` was not used (``persistence.load_model``); say so."""
        loaded_from = self.__dict__.pop("_file_tensorboard_log", None)
        if loaded_from is not None and self.tensorboard_log is None:
            where, directory = loaded_from
            user_warnings.warn(
                f"this model was loaded from {where}, which names tensorboard_log={directory!r}; a file does not decide "
                "where learn() writes, so learn() does not log to TensorBoard. Set model.tensorboard_log (or pass "
                "load(path, tensorboard_log=...), or trusted=True) to log there."
            )

    def _excluded_save_params(self) -> list[str]:
        """
        Every attribute :meth:`save` leaves out: all but its allow-list (the constructor's arguments, SB3's counters,
        spaces and policy class, see :mod:`sb3_tutorial_sac.persistence`); ``_setup_model`` rebuilds them on load.
        """
        return persistence.excluded_save_params(self)

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        return persistence.torch_save_params(self)

    @classmethod
    def load(  # type: ignore[override]
        cls: type[SelfDataFiles],
        path: str | pathlib.Path | io.BufferedIOBase,
        env: GymEnv | None = None,
        device: th.device | str = "auto",
        custom_objects: dict[str, Any] | None = None,
        print_system_info: bool = False,
        force_reset: bool = True,
        *,
        trusted: bool = False,
        **kwargs: Any,
    ) -> SelfDataFiles:
        """
        Load a TutorialSAC model from a zip file written by :meth:`save` (see
        :meth:`stable_baselines3.common.base_class.BaseAlgorithm.load`).

        Not in SB3 (``docs/files_and_safety.md`` says it all): loading runs no code from the file. Its ``data`` is read
        as JSON, its tensors with ``torch.load(weights_only=True)``; every value goes through the constructor's checks,
        sizes are bounded before anything is allocated, and every tensor must be finite and of this model's dtype and
        shape. A file that needs unpickling (saved with ``include=["env"]``, SB3's own format), or breaks any check,
        raises a ``ValueError`` naming the file and the field. ``custom_objects`` replace the file's entries, as in SB3.
        No env is made from a name in the file, and its ``tensorboard_log`` is not used. The random generators are put
        back as :meth:`save` found them (SB3 re-seeds them); the episode in progress is kept without an ``env`` or with
        ``force_reset=False``, so that ``learn(n, reset_num_timesteps=False)`` goes on from it.

        :param trusted: unpickle what the file holds pickled (run code from it), make an env the file names, use its
            ``tensorboard_log``, and lift the size bounds: only for files you trust
        """
        return persistence.load_model(cls, path, env, device, custom_objects, print_system_info, force_reset, trusted, kwargs)

    def save(
        self,
        path: str | pathlib.Path | io.BufferedIOBase,
        exclude: Iterable[str] | None = None,
        include: Iterable[str] | None = None,
    ) -> None:
        """
        Save the model in a zip file that holds data only (see :meth:`stable_baselines3.common.base_class.BaseAlgorithm.save`).

        Not in SB3 (``docs/files_and_safety.md``): ``data`` is plain JSON of an allow-list (the constructor's arguments,
        SB3's counters, the spaces, the policy class, the episode in progress as arrays, the random generators' states
        under ``_rng_state``); the networks, optimiser states and log-alpha are ``*.pth`` tensors. What is not data is
        pickled only when ``include`` names it (such a file loads only with ``trusted=True``); otherwise a schedule
        is saved as its current value and another value that is not data is pickled, each with a warning. A path is
        written through a temporary file renamed over it once complete, keeping the replaced file's permission bits.
        For an exact resume, also ``include=["env"]`` (a picklable VecEnv) and :meth:`save_replay_buffer`.

        :param path: path to the file where the rl agent should be saved
        :param exclude: name of parameters that should be excluded in addition to the default ones
        :param include: name of parameters that might be excluded but should be included anyway (pickled if they
            are not data)
        """
        persistence.save_model(self, path, exclude, include)

    def save_replay_buffer(self, path: str | pathlib.Path | io.BufferedIOBase) -> None:
        """
        Save the replay buffer as data: an npz of its stored transitions and a JSON ``meta``, under the name given
        (``.pkl`` added when it has none, as in SB3). Not in SB3: no pickle, and an atomic write. SB3's
        ``ReplayBuffer``, ``DictReplayBuffer`` and ``NStepReplayBuffer`` are written; another class raises a
        ``ValueError`` saying how to pickle it.

        :param path: Path to the file where the replay buffer should be saved.
            if path is a str or pathlib.Path, the path is automatically created if necessary.
        """
        buffer_files.save_replay_buffer(self, path)

    def load_replay_buffer(
        self,
        path: str | pathlib.Path | io.BufferedIOBase,
        truncate_last_traj: bool = True,
        trusted: bool = False,
    ) -> None:
        """
        Load a replay buffer written by :meth:`save_replay_buffer` (see SB3's ``load_replay_buffer``). Not in SB3:
        nothing is unpickled; a pickled buffer raises a ``ValueError`` unless ``trusted=True``.

        :param path: Path to the replay buffer file (``.pkl`` is tried when the path has no suffix)
        :param truncate_last_traj: only for SB3's ``HerReplayBuffer`` in a trusted pickled file (see SB3)
        :param trusted: unpickle a pickled buffer (run code from the file): only for files you trust
        """
        buffer_files.load_replay_buffer(self, path, truncate_last_traj, trusted)

    def set_parameters(  # type: ignore[override]
        self,
        load_path_or_dict: str | pathlib.Path | io.BufferedIOBase | dict[str, TensorDict],
        exact_match: bool = True,
        device: th.device | str = "auto",
    ) -> None:
        """
        Load parameters from a given zip-file or a nested dictionary containing parameters for
        different modules (see :meth:`stable_baselines3.common.base_class.BaseAlgorithm.set_parameters`).

        Not in SB3: all or nothing. Names, keys and shapes (of the networks and of the optimisers' states) are
        checked before anything is written, and if loading fails anyway every object is put back as it was.
        A file that is not a readable save, or parameters of another configuration (another ``net_arch``,
        other spaces, another algorithm), raise a ``ValueError`` and leave the model unchanged. A file's tensors are
        read with ``torch.load(weights_only=True)``.

        :param load_path_or_dict: Location of the saved data (path or file-like, see ``save``), or a nested
            dictionary containing nn.Module parameters used by the policy. The dictionary maps
            object names to a state-dictionary returned by ``torch.nn.Module.state_dict()``.
        :param exact_match: If True, the given parameters should include parameters for each
            module and each of their parameters, otherwise raises an Exception. If set to False, this
            can be used to update only specific parameters.
        :param device: Device on which the code should run.
        """
        persistence.set_parameters(self, load_path_or_dict, exact_match, device)
