"""Actor, critic and policy of the tutorial's SAC variant (see ``docs/variant.md``, "Networks").

The differences from :mod:`stable_baselines3.sac.policies` are all in the actor and in how actions are
scaled:

* the actor's standard deviation comes from a ``Linear + Softplus`` head, with no clamp on the mean,
  the std or the log-std (SB3: a ``log_std`` head clamped to ``[-20, 2]``);
* the per-sample "entropy" is the tutorial's formula, which applies ``tanh`` twice (switchable);
* the critics see actions in the environment's units (``center + half_range * tanh(u)``), as the
  tutorial feeds ``tanh(u) * 2`` on Pendulum (SB3: actions rescaled to ``[-1, 1]``);
* default widths are the tutorial's: actor ``[128]``, critics ``[128, 128]`` (SB3: ``[256, 256]``).

The critic is SB3's own :class:`~stable_baselines3.common.policies.ContinuousCritic`.
"""

import math
from typing import Any, Literal

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy, ContinuousCritic
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.common.torch_layers import (
    BaseFeaturesExtractor,
    CombinedExtractor,
    FlattenExtractor,
    NatureCNN,
    create_mlp,
    get_actor_critic_arch,
)
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn

from sb3_tutorial_sac import fast_predict
from sb3_tutorial_sac.fast_predict import PlainActor, call_layers

EntropyTerm = Literal["tutorial", "correct"]
ENTROPY_TERMS: tuple[str, ...] = ("tutorial", "correct")

# log(sqrt(2 pi)), the constant of torch.distributions.Normal.log_prob, written the way torch writes it
_LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))
# Tutorial rule: eps inside log(1 - tanh(.)^2 + eps) is 1e-7 (SB3: 1e-6)
_SQUASH_EPS = 1e-7


def sample_action_entropy(
    mu: th.Tensor,
    std: th.Tensor,
    entropy_term: EntropyTerm = "tutorial",
    saved: dict[str, th.Tensor] | None = None,
    eps: th.Tensor | None = None,
) -> tuple[th.Tensor, th.Tensor]:
    """
    The tutorial's sampling and "entropy" from the Gaussian's mean and std (see :meth:`TutorialActor.action_entropy`).

    :param mu: Means, shape ``[batch, action_dim]``
    :param std: Standard deviations, same shape
    :param entropy_term: ``"tutorial"`` (tanh applied twice) or ``"correct"``
    :param saved: if given, filled with the intermediate values a written-out backward pass needs
        (:mod:`sb3_tutorial_sac.engines.step`)
    :param eps: the standard normal noise, when drawn elsewhere (the compiled step draws it outside its function);
        by default drawn here
    :return: Squashed actions in ``[-1, 1]`` and ``H`` of shape ``[batch, 1]``
    """
    if eps is None:
        # Same draw as Normal(mu, std).rsample(): empty(shape).normal_() from the global generator, then mu + eps * std
        eps = th.empty_like(mu).normal_()
    u = mu + eps * std
    # Normal.log_prob(u), written out as torch writes it: -((u - mu) ** 2) / (2 * std**2) - log(std) - log(sqrt(2 pi))
    diff = u - mu
    var2 = 2 * std**2
    ratio = -(diff**2) / var2
    log_prob = ratio - std.log() - _LOG_SQRT_2PI
    action = th.tanh(u)
    # Tutorial rule: tanh applied TWICE (action is already tanh(u)); the x2 scale is ignored
    squash = th.tanh(action) if entropy_term == "tutorial" else action
    inside = 1 - squash**2 + _SQUASH_EPS
    entropy = -(log_prob - inside.log())
    if saved is not None:
        saved.update(eps=eps, diff=diff, var2=var2, ratio=ratio, log_prob=log_prob, action=action, squash=squash)
        saved["inside"] = inside
    if entropy.shape[1] > 1:
        # Generalisation for action_dim > 1: the log-density of a diagonal Gaussian is the sum over dims
        entropy = entropy.sum(dim=1, keepdim=True)
    return action, entropy


# SACPolicy's keyword arguments that belong to gSDE (and to its log-std head), which the tutorial's actor does not have
GSDE_POLICY_KWARGS: tuple[str, ...] = ("use_sde", "log_std_init", "use_expln", "clip_mean")


def check_policy_kwargs(policy_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """
    Check ``policy_kwargs`` against what SB3's ``SACPolicy`` accepts: every one of its keyword arguments but gSDE's
    is one of :class:`TutorialSACPolicy`'s. gSDE's (``use_sde=True``, ``log_std_init``, ``use_expln``,
    ``clip_mean``) raise a ``ValueError``; ``use_sde=False``, which SB3's off-policy algorithms put into a SAC
    model's ``policy_kwargs``, is dropped (it changes nothing).

    :param policy_kwargs: the algorithm's ``policy_kwargs``
    :return: a copy without ``use_sde=False``
    :raises ValueError: for gSDE's keyword arguments
    """
    policy_kwargs = dict(policy_kwargs or {})
    if "use_sde" in policy_kwargs and not policy_kwargs["use_sde"]:
        del policy_kwargs["use_sde"]
    gsde = [name for name in GSDE_POLICY_KWARGS if name in policy_kwargs]
    if gsde:
        # Tutorial rule: the std comes from a Linear + Softplus head, no log-std (SB3's gSDE needs a log-std head)
        raise ValueError(
            f"policy_kwargs {gsde}: gSDE (generalised State-Dependent Exploration) and SACPolicy's log-std head are "
            "outside the tutorial's variant, whose actor draws its noise from a Softplus std head "
            "(docs/variant.md); leave them out. For more exploration use ent_coef (a larger or learned alpha) or "
            "action_noise; for gSDE use SB3's SAC"
        )
    return policy_kwargs


class TutorialActor(BasePolicy):
    """
    The tutorial's Gaussian actor: a ``Linear + ReLU`` trunk, a mean head ``Linear`` and a std head
    ``Linear + Softplus``; actions ``tanh(mu + std * eps)``.

    Its outputs are squashed actions in ``[-1, 1]`` (SB3's convention for ``predict``); the policy maps them
    onto the Box bounds.

    :param observation_space: Observation space
    :param action_space: Action space (a Box with finite bounds)
    :param net_arch: Widths of the trunk (tutorial: ``[128]``)
    :param features_extractor: Network to extract features (``nn.Flatten`` for flat Box observations)
    :param features_dim: Number of features
    :param activation_fn: Activation function of the trunk (tutorial: ReLU)
    :param normalize_images: Whether to normalize images or not, dividing by 255.0
    """

    action_space: spaces.Box

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        net_arch: list[int],
        features_extractor: nn.Module,
        features_dim: int,
        activation_fn: type[nn.Module] = nn.ReLU,
        normalize_images: bool = True,
    ):
        super().__init__(
            observation_space,
            action_space,
            features_extractor=features_extractor,
            normalize_images=normalize_images,
            squash_output=True,
        )
        self.net_arch = net_arch
        self.features_dim = features_dim
        self.activation_fn = activation_fn

        action_dim = get_action_dim(self.action_space)
        self.latent_pi = nn.Sequential(*create_mlp(features_dim, -1, net_arch, activation_fn))
        last_layer_dim = net_arch[-1] if len(net_arch) > 0 else features_dim
        self.mu = nn.Linear(last_layer_dim, action_dim)
        # Tutorial rule: std = Softplus(Linear(.)), no clamp (SB3: log_std head clamped to [-20, 2])
        self.std = nn.Sequential(nn.Linear(last_layer_dim, action_dim), nn.Softplus())

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            dict(
                net_arch=self.net_arch,
                features_dim=self.features_dim,
                activation_fn=self.activation_fn,
                features_extractor=self.features_extractor,
            )
        )
        return data

    def get_action_dist_params(self, obs: PyTorchObs) -> tuple[th.Tensor, th.Tensor]:
        """
        :param obs: Observations
        :return: Mean and standard deviation of the Gaussian, before squashing
        """
        if (
            type(self.features_extractor) is FlattenExtractor
            and isinstance(obs, th.Tensor)
            and obs.dim() == 2
            and isinstance(self.observation_space, spaces.Box)
            and len(self.observation_space.shape) == 1
        ):
            # Not in SB3: a flat Box needs only preprocess_obs's obs.float() (Flatten is the identity on
            # [batch, n]); the layers as function calls, the same operations without nn.Module's call overhead,
            # which costs as much as the arithmetic for one observation (every env step calls this)
            latent_pi = call_layers(self.latent_pi, obs.float())
            return call_layers(self.mu, latent_pi), call_layers(self.std, latent_pi)
        features = self.extract_features(obs, self.features_extractor)
        latent_pi = self.latent_pi(features)
        return self.mu(latent_pi), self.std(latent_pi)

    def forward(self, obs: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        return self._squash(*self.get_action_dist_params(obs), deterministic)

    @staticmethod
    def _squash(mean_actions: th.Tensor, std: th.Tensor, deterministic: bool) -> th.Tensor:
        """The action: ``tanh(mu)``, or ``tanh(mu + std * eps)`` with one noise draw."""
        if deterministic:
            return th.tanh(mean_actions)
        # Same draw as torch.distributions.Normal(mu, std).rsample(): empty(shape).normal_(), which randn_like is
        return th.tanh(mean_actions + th.randn_like(mean_actions) * std)

    def __getstate__(self) -> dict[str, Any]:
        """Copies and pickles leave the plain layers behind (views of this actor's parameters): read anew."""
        state = self.__dict__.copy()
        state.pop("_plain", None)
        return state

    def plain_layers(self) -> PlainActor | None:
        """The layers read as plain tensors (:func:`sb3_tutorial_sac.fast_predict.plain_actor`), or None where a
        forward hook is set, a layer is not one that :func:`call_layers` writes as a function call, or torch's hook
        internals are not what that path expects."""
        return fast_predict.plain_actor(self)

    def action_entropy(self, obs: th.Tensor, entropy_term: EntropyTerm = "tutorial") -> tuple[th.Tensor, th.Tensor]:
        """
        Sample a squashed action with the reparameterisation trick and return the tutorial's
        per-sample "entropy" estimate ``H = -log pi(a|s)``.

        The Gaussian noise is one draw of shape ``[batch, action_dim]`` from torch's global generator,
        exactly as ``Normal(mu, std).rsample()`` draws it, and ``log N(u; mu, std)`` is computed with
        ``Normal.log_prob``'s own formula, so that the result matches the tutorial bit for bit.

        :param obs: Observations (already preprocessed, batch first)
        :param entropy_term: ``"tutorial"``: ``log(1 - tanh(tanh(u))^2 + 1e-7)`` (tanh applied twice,
            the tutorial's quirk); ``"correct"``: ``log(1 - tanh(u)^2 + 1e-7)``.
        :return: Squashed actions in ``[-1, 1]`` (shape ``[batch, action_dim]``) and ``H``
            (shape ``[batch, 1]``, summed over action dimensions; for one action dimension this is
            the tutorial's ``[batch, 1]`` tensor itself).
        """
        return sample_action_entropy(*self.get_action_dist_params(obs), entropy_term)

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        return self(observation, deterministic)


class TutorialSACPolicy(BasePolicy):
    """
    Policy class (actor, twin critics and their targets) of the tutorial's SAC variant.

    :param observation_space: Observation space
    :param action_space: Action space (a Box with finite bounds)
    :param lr_schedule: Learning rate schedule of the actor (the algorithm sets each optimiser's own
        rate before every ``train()`` call)
    :param net_arch: The specification of the policy and value networks
        (tutorial: ``dict(pi=[128], qf=[128, 128])``)
    :param activation_fn: Activation function (tutorial: ReLU)
    :param features_extractor_class: Features extractor to use
    :param features_extractor_kwargs: Keyword arguments to pass to the features extractor
    :param normalize_images: Whether to normalize images or not, dividing by 255.0 (True by default)
    :param optimizer_class: The optimizer to use, ``th.optim.Adam`` by default
    :param optimizer_kwargs: Additional keyword arguments, excluding the learning rate, to pass to the
        optimizer
    :param n_critics: Number of critic networks (tutorial: 2)
    :param share_features_extractor: Whether to share the features extractor between actor and critic
    """

    actor: TutorialActor
    critic: ContinuousCritic
    critic_target: ContinuousCritic
    action_space: spaces.Box
    action_center: th.Tensor
    action_half_range: th.Tensor

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        n_critics: int = 2,
        share_features_extractor: bool = False,
    ):
        super().__init__(
            observation_space,
            action_space,
            features_extractor_class,
            features_extractor_kwargs,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            squash_output=True,
            normalize_images=normalize_images,
        )
        if net_arch is None:
            # Tutorial rule: actor Linear(obs, 128) trunk; critics 128 x 128 (SB3: [256, 256])
            net_arch = dict(pi=[128], qf=[128, 128])
        actor_arch, critic_arch = get_actor_critic_arch(net_arch)
        if n_critics < 1:
            raise ValueError(f"n_critics must be a positive integer (the tutorial uses 2), got {n_critics}")

        self.net_arch = net_arch
        self.activation_fn = activation_fn
        self.net_args = {
            "observation_space": self.observation_space,
            "action_space": self.action_space,
            "activation_fn": self.activation_fn,
            "normalize_images": normalize_images,
        }
        self.actor_kwargs = {**self.net_args, "net_arch": actor_arch}
        self.critic_kwargs = {
            **self.net_args,
            "net_arch": critic_arch,
            "n_critics": n_critics,
            "share_features_extractor": share_features_extractor,
        }
        self.share_features_extractor = share_features_extractor

        # Affine map from the squashed action in [-1, 1] to the Box: center + half_range * a.
        # Tutorial rule: the env action and the critic's input are `tanh(u) * 2` on Pendulum; this form
        # gives exactly that for symmetric bounds (center 0), and generalises to asymmetric ones.
        # Computed in float64 and rounded once to float32 (the networks' precision): the same numbers as the
        # float32 formulas wherever those do not overflow, and finite for bounds up to float32's largest value.
        low = self.action_space.low.astype(np.float64)
        high = self.action_space.high.astype(np.float64)
        with np.errstate(over="ignore"):
            self._action_center = ((high + low) / 2).astype(np.float32)
            self._action_half_range = ((high - low) / 2).astype(np.float32)
        if not (np.all(np.isfinite(self._action_center)) and np.all(np.isfinite(self._action_half_range))):
            raise ValueError(
                f"The Box action_space bounds must lie within float32's range (the networks compute in float32); "
                f"got low={self.action_space.low}, high={self.action_space.high}"
            )
        self._symmetric_bounds = bool(np.all(self._action_center == 0))
        # Torch copies are flat ([action_dim]), like the actions the actor outputs (the Box may be multi-dimensional)
        self.register_buffer("action_center", th.as_tensor(self._action_center.reshape(-1)), persistent=False)
        self.register_buffer("action_half_range", th.as_tensor(self._action_half_range.reshape(-1)), persistent=False)

        self._build(lr_schedule)

    def _build(self, lr_schedule: Schedule) -> None:
        self.actor = self.make_actor()
        self.actor.optimizer = self.optimizer_class(
            self.actor.parameters(),
            lr=lr_schedule(1),  # type: ignore[call-arg]
            **self.optimizer_kwargs,
        )

        if self.share_features_extractor:
            self.critic = self.make_critic(features_extractor=self.actor.features_extractor)
        else:
            self.critic = self.make_critic(features_extractor=None)

        # Critic target should not share the features extractor with critic
        self.critic_target = self.make_critic(features_extractor=None)
        self.critic_target.load_state_dict(self.critic.state_dict())

        # Tutorial rule: each critic has its own Adam (lr 3e-3). Adam's update is per parameter, and each
        # critic's loss touches only its own parameters, so one Adam with one parameter group per critic
        # is the same optimiser as the tutorial's two (same states, same steps) at one `step()` call.
        # (SB3: one group over both critics, on the loss 0.5 * (mse_1 + mse_2).)
        critic_groups = [{"params": list(q_net.parameters())} for q_net in self.critic.q_networks]
        if not self.share_features_extractor and len(list(self.critic.features_extractor.parameters())) > 0:
            # A trainable features extractor of the critic's own (e.g. a CNN) learns from both critics' losses
            critic_groups.append({"params": list(self.critic.features_extractor.parameters())})
        self.critic.optimizer = self.optimizer_class(
            critic_groups,
            lr=lr_schedule(1),  # type: ignore[call-arg]
            **self.optimizer_kwargs,
        )

        # Target networks should always be in eval mode
        self.critic_target.set_training_mode(False)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            dict(
                net_arch=self.net_arch,
                activation_fn=self.net_args["activation_fn"],
                n_critics=self.critic_kwargs["n_critics"],
                lr_schedule=self._dummy_schedule,  # dummy lr schedule, not needed for loading policy alone
                optimizer_class=self.optimizer_class,
                optimizer_kwargs=self.optimizer_kwargs,
                features_extractor_class=self.features_extractor_class,
                features_extractor_kwargs=self.features_extractor_kwargs,
                share_features_extractor=self.share_features_extractor,
            )
        )
        return data

    def make_actor(self, features_extractor: BaseFeaturesExtractor | None = None) -> TutorialActor:
        actor_kwargs = self._update_features_extractor(self.actor_kwargs, features_extractor)
        return TutorialActor(**actor_kwargs).to(self.device)

    def make_critic(self, features_extractor: BaseFeaturesExtractor | None = None) -> ContinuousCritic:
        critic_kwargs = self._update_features_extractor(self.critic_kwargs, features_extractor)
        return ContinuousCritic(**critic_kwargs).to(self.device)

    def forward(self, obs: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        return self._predict(obs, deterministic=deterministic)

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        return self.actor(observation, deterministic)

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """
        Get the policy action from an observation, as SB3's :meth:`~stable_baselines3.common.policies.BasePolicy.predict`.

        Not in SB3: a batch of flat Box observations (a NumPy array of shape ``[n_envs, obs_dim]``, what a VecEnv
        gives, every env step of ``learn()``) takes a short path with the same operations and numbers
        (:func:`sb3_tutorial_sac.fast_predict.flat_box_actions`). Anything else goes through SB3's ``predict``.

        :param observation: the input observation
        :param state: The last hidden states (not used: the policy has none)
        :param episode_start: The last masks (not used)
        :param deterministic: Whether or not to return deterministic actions.
        :return: the model's action and the next hidden state (``state``, unchanged)
        """
        actions = fast_predict.flat_box_actions(self, observation, deterministic, TutorialActor)
        if actions is None:
            return super().predict(observation, state, episode_start, deterministic)
        # SB3's predict: actions in the action space's shape, rescaled onto the Box bounds (squash_output)
        return self.unscale_action(actions.reshape((-1, *self.action_space.shape))), state

    @property
    def symmetric_bounds(self) -> bool:
        """Whether the action space's bounds are symmetric around 0 (then ``to_env_units`` is one product)."""
        return self._symmetric_bounds

    def to_env_units(self, squashed_action: th.Tensor) -> th.Tensor:
        """
        Map squashed actions in ``[-1, 1]`` onto the Box: ``center + half_range * a``.

        Tutorial rule: the critics see actions in the environment's units (``tanh(u) * 2`` on Pendulum).

        :param squashed_action: Actions in ``[-1, 1]``
        :return: Actions in ``[low, high]``
        """
        scaled = squashed_action * self.action_half_range
        return scaled if self._symmetric_bounds else scaled + self.action_center

    def unscale_action(self, scaled_action: np.ndarray) -> np.ndarray:
        """
        Rescale the action from ``[-1, 1]`` to ``[low, high]`` as ``center + half_range * a``, clipped to the
        bounds (rounding could otherwise step one ulp outside them).

        Same values as SB3's ``low + 0.5 * (a + 1) * (high - low)`` up to rounding; this form gives the
        tutorial's ``a * 2`` exactly on Pendulum.

        :param scaled_action: Action to un-scale
        """
        action = scaled_action * self._action_half_range
        if not self._symmetric_bounds:
            action = action + self._action_center
        # np.clip's values (NaN passed through) and dtype, without its Python wrappers (every env step calls this)
        return np.minimum(np.maximum(action, self.action_space.low), self.action_space.high)

    @property
    def device(self) -> th.device:
        """
        The device of the policy's parameters. Not in SB3: SB3's property walks every submodule to find the
        first parameter, on every ``predict()`` call; the actor's mean head is that parameter's device.
        """
        actor = getattr(self, "actor", None)
        if isinstance(actor, TutorialActor):
            return actor.mu.weight.device
        return super().device

    def set_training_mode(self, mode: bool) -> None:
        """
        Put the policy in either training or evaluation mode.

        :param mode: if true, set to training mode, else set to evaluation mode
        """
        if self.training == mode and self.actor.training == mode and self.critic.training == mode:
            # Not in SB3: SB3's predict() sets the mode on every call, and walking every submodule costs
            # about as much as the actor's forward pass; nothing changes when the networks are in it already
            return
        self.actor.set_training_mode(mode)
        self.critic.set_training_mode(mode)
        self.training = mode


MlpPolicy = TutorialSACPolicy


class CnnPolicy(TutorialSACPolicy):
    """
    Policy class for TutorialSAC on image observations: SB3's ``NatureCNN`` feeds the tutorial's heads.
    Same parameters as :class:`TutorialSACPolicy`, with ``features_extractor_class=NatureCNN``.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        features_extractor_class: type[BaseFeaturesExtractor] = NatureCNN,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        n_critics: int = 2,
        share_features_extractor: bool = False,
    ):
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch,
            activation_fn,
            features_extractor_class,
            features_extractor_kwargs,
            normalize_images,
            optimizer_class,
            optimizer_kwargs,
            n_critics,
            share_features_extractor,
        )


class MultiInputPolicy(TutorialSACPolicy):
    """
    Policy class for TutorialSAC on Dict observations: SB3's ``CombinedExtractor`` feeds the tutorial's heads.
    Same parameters as :class:`TutorialSACPolicy`, with ``features_extractor_class=CombinedExtractor``.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        features_extractor_class: type[BaseFeaturesExtractor] = CombinedExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        n_critics: int = 2,
        share_features_extractor: bool = False,
    ):
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch,
            activation_fn,
            features_extractor_class,
            features_extractor_kwargs,
            normalize_images,
            optimizer_class,
            optimizer_kwargs,
            n_critics,
            share_features_extractor,
        )
