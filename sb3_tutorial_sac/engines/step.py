"""The tutorial's gradient step, written out once: :func:`step_function`, a pure function of the training state and a
minibatch.

The step (``docs/variant.md``, "One gradient step"), with the forward passes as function calls on views of the flat
parameter buffers, the backward passes written out with autograd's own formulas (PyTorch's ``derivatives.yaml``:
``threshold_backward`` for ReLU, ``grad.t().mm(input)`` and ``grad.sum(0)`` for a linear layer's weight and bias,
``tanh_backward``, ``softplus_backward``, the minimum's gradient split in halves on ties, and where a tensor collects
several gradients the order the autograd engine adds them in), Adam's update as ``torch.optim.Adam`` computes it, and
the soft update as the tutorial rounds it:

1. the target ``y = r' + 0.99 * (1 - over) * (min Q_targ(s', a') + alpha * H(s'))``, ``a'`` and ``H(s')`` drawn
   fresh from the actor (noise draw 1 of 2), with the actor and alpha as they were before this step;
2. critic 1 and critic 2, each on its own MSE against ``y`` and its own Adam (one update over both flat segments);
3. the actor, on the UPDATED critics: ``mean(-alpha * H(s) - min Q(s, a))`` (noise draw 2 of 2);
4. the temperature, on ``H(s)`` of step 3;
5. the soft update of the target critics (when this step's flag says so).

The fast engine (:mod:`sb3_tutorial_sac.engines.fast`) runs it eagerly: bit for bit the reference engine's numbers on
the CPU. The compiled engine (:mod:`sb3_tutorial_sac.engines.compiled`, imported only when asked for) compiles the same
function, with the small matrix products written as fused sums (its own :class:`Products`, passed in). What is static
about a model's step (its networks, batch size, the entropy term and the temperature loss, Adam's betas) is a
:class:`StepSpec`; the numeric settings (tau, the target entropy, Adam's step sizes, whether to soft-update) are the
``scalars`` input, read from the model at every ``train()`` call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import torch as th
from torch import nn
from torch.nn import functional as F

from sb3_tutorial_sac import losses, policies
from sb3_tutorial_sac.flat import adam_update, is_plain_adam
from sb3_tutorial_sac.state import TrainingState


class Minibatch(NamedTuple):
    """One gradient step's data, already in the form the tutorial's update reads it."""

    observations: th.Tensor | dict[str, th.Tensor]
    actions: th.Tensor
    next_observations: th.Tensor | dict[str, th.Tensor]
    # Tutorial rule: normalised at sample time, r' = (r + 8) / 8
    rewards: th.Tensor
    # gamma * (1 - over): 0.99 or exactly 0, so the target rounds exactly as the tutorial's
    discounts: th.Tensor


@dataclass(frozen=True)
class LinearSpec:
    """Where a linear layer lives in a flat parameter buffer: weight ``[out, in]`` at ``weight``, bias at ``bias``."""

    weight: int
    bias: int
    out_features: int
    in_features: int
    relu: bool

    def params(self, flat: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        size = self.out_features * self.in_features
        weight = flat[self.weight : self.weight + size].view(self.out_features, self.in_features)
        return weight, flat[self.bias : self.bias + self.out_features]


@dataclass(frozen=True)
class AdamSpec:
    beta1: float
    beta2: float
    eps: float


@dataclass(frozen=True)
class StepSpec:
    """Everything static about one model's gradient step: one compiled function per spec. The numeric settings (tau,
    the target entropy, the learning rates) are inputs (``scalars``), not part of it."""

    batch_size: int
    obs_dim: int
    act_dim: int
    trunk: tuple[LinearSpec, ...]
    mu: LinearSpec
    std: LinearSpec
    softplus_beta: float
    softplus_threshold: float
    critics: tuple[tuple[LinearSpec, ...], ...]
    actor_size: int
    critic_size: int
    symmetric: bool
    entropy_term: str
    ent_coef_loss: str
    learn_alpha: bool
    actor_adam: AdamSpec
    critic_adam: AdamSpec
    alpha_adam: AdamSpec | None


# Input order of the step function; the statistics row is its first output.
INPUTS = (
    "observations", "actions", "next_observations", "rewards", "discounts", "noise_next", "noise", "half_range",
    "center", "actor", "critic", "target", "log_alpha", "actor_exp_avg", "actor_exp_avg_sq", "critic_exp_avg",
    "critic_exp_avg_sq", "alpha_exp_avg", "alpha_exp_avg_sq", "scalars",
)  # fmt: skip


class StepScalars(NamedTuple):
    """
    The numbers a step reads that change between steps or calls (the ``scalars`` input), by name. Computed on the host
    in double precision, as Python scalars would be: the eager step takes them as Python floats (torch casts a Python
    scalar to float32 inside its kernels), a compiled step as one float32 tensor in this order (the same numbers).
    """

    # Adam of the actor, the critics and log-alpha: -step_size and sqrt(bias_correction2), as torch's Adam computes them
    actor_step: float = 0.0
    actor_denominator: float = 0.0
    critic_step: float = 0.0
    critic_denominator: float = 0.0
    alpha_step: float = 0.0
    alpha_denominator: float = 0.0
    # 1.0 when the target critics are soft-updated after this step (target_update_interval), else 0.0
    soft_update: float = 0.0
    # Tutorial rule: target = (1 - tau) * target + tau * online; keep = 1 - tau
    tau: float = 0.005
    keep: float = 0.995
    # Tutorial rule: -1 on Pendulum, -dim(A) in general (as SB3)
    target_entropy: float = -1.0


N_SCALARS = len(StepScalars._fields)
# The scalars input: a float32 tensor (compiled) or a StepScalars of Python floats (eager)
Scalars = th.Tensor | StepScalars

# Names of the statistics row, in order, after one loss per critic
STATISTICS = ("actor loss", "temperature loss", "mean entropy", "alpha")


class Products:
    """
    ``F.linear`` and ``mm`` for the step function: the calls themselves (the fast engine's numbers, autograd's), with
    each flat buffer's layer views made once. The compiled engine passes a subclass that writes some products otherwise
    (:class:`sb3_tutorial_sac.engines.compiled.rewrites.FusedProducts`); the step function asks only for what this
    class offers.
    """

    # whether the products are rewritten (compiled): the backward pass then asks for the input columns' product alone
    fused: bool = False
    # Adam's division by sqrt(bias_correction2) as a product with its reciprocal (the compiled step's rewrite)
    reciprocal: bool = False

    def __init__(self) -> None:
        # tensors the step function returns besides its statistics (a compiled step's: stored once by Inductor)
        self.extras: list[th.Tensor] = []
        # the views of each flat buffer's layers, made once and read at every step (their numbers follow the buffer's
        # in-place updates); each buffer is held here, so that its id names it while cached
        self._views: dict[int, tuple[th.Tensor, dict[int, tuple[th.Tensor, th.Tensor]]]] = {}
        # the calls themselves, without a method's dispatch (eager: every call counts)
        self.linear = F.linear  # type: ignore[method-assign,assignment]
        self.mm = th.mm  # type: ignore[method-assign,assignment]

    def params(self, layer: LinearSpec, flat: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """``layer``'s weight and bias in ``flat`` (:meth:`LinearSpec.params`), made once per buffer and layer."""
        entry = self._views.get(id(flat))
        if entry is None or entry[0] is not flat:
            entry = self._views[id(flat)] = (flat, {})
        views = entry[1]
        found = views.get(layer.weight)
        if found is None:
            found = views[layer.weight] = layer.params(flat)
        return found

    def linear(self, x: th.Tensor, weight: th.Tensor, bias: th.Tensor) -> th.Tensor:
        return F.linear(x, weight, bias)

    def mm(self, a: th.Tensor, b: th.Tensor) -> th.Tensor:
        """``a @ b`` for ``a`` ``[m, k]``, ``b`` ``[k, n]``."""
        return a.mm(b)

    def ensemble(self, critics: Sequence[Sequence[LinearSpec]]) -> Ensemble | None:
        """Both critics' layers as one batched product each (compiled), or None: each critic on its own (autograd's)."""
        return None


class Ensemble(Protocol):
    """The critics run together (:meth:`Products.ensemble`): their forward and backward passes on one flat buffer."""

    def forward(self, flat: th.Tensor, x: th.Tensor) -> list[th.Tensor]: ...

    def backward(
        self, flat: th.Tensor, grad: th.Tensor, outputs: list[th.Tensor], param_grads: dict[int, th.Tensor] | None,
        input_columns: int | None,
    ) -> th.Tensor | None: ...  # fmt: skip


def _mlp_forward(products: Products, layers: Sequence[LinearSpec], flat: th.Tensor, x: th.Tensor) -> list[th.Tensor]:
    outputs = [x]
    for layer in layers:
        x = products.linear(x, *products.params(layer, flat))
        if layer.relu:
            x = F.relu(x)
        outputs.append(x)
    return outputs


def _mlp_backward(
    products: Products,
    layers: Sequence[LinearSpec],
    flat: th.Tensor,
    grad: th.Tensor,
    outputs: list[th.Tensor],
    param_grads: dict[int, th.Tensor] | None,
    input_columns: int | None,
) -> th.Tensor | None:
    """
    The backward pass of :func:`_mlp_forward`; parameter gradients go into ``param_grads`` by offset.

    :param input_columns: return the gradient with respect to the input's columns from this one on (None: no input
        gradient)
    """
    for i in range(len(layers) - 1, -1, -1):
        layer = layers[i]
        weight, _ = products.params(layer, flat)
        if layer.relu:
            grad = th.ops.aten.threshold_backward(grad, outputs[i + 1], 0)
        if param_grads is not None:
            param_grads[layer.weight] = products.mm(grad.t(), outputs[i]).reshape(-1)
            param_grads[layer.bias] = grad.sum(0)
        if i > 0:
            grad = products.mm(grad, weight)
        elif input_columns is not None:
            # autograd's product (the whole input's gradient), then the columns; fused, only the columns' product
            return products.mm(grad, weight[:, input_columns:]) if products.fused else grad.mm(weight)[:, input_columns:]
    return None


def _adam(spec: AdamSpec, param: th.Tensor, grad: th.Tensor, exp_avg: th.Tensor, exp_avg_sq: th.Tensor,
          step: float | th.Tensor, denominator: float | th.Tensor, reciprocal: bool = False):  # fmt: skip
    """:func:`~sb3_tutorial_sac.flat.adam_update` with ``step`` = ``-step_size`` and ``denominator`` =
    ``sqrt(bias_correction2)`` (:class:`StepScalars`); ``reciprocal``: the ``"adam_reciprocal"`` rewrite (compiled)."""
    adam_update(param, grad, exp_avg, exp_avg_sq, step, denominator, spec.beta1, spec.beta2, spec.eps, reciprocal)


def _soft_update(target: th.Tensor, critic: th.Tensor, scalars: StepScalars, compiled: bool) -> None:
    """
    Tutorial rule: ``target = 0.995 * target + 0.005 * online`` after every gradient step (``scalars.soft_update``),
    rounded as the tutorial rounds it (SB3's ``polyak_update`` fuses the add).
    """
    if compiled:  # one function for both cases
        updated = target * scalars.keep + critic * scalars.tau
        target.copy_(th.where(scalars.soft_update > 0, updated, target))  # type: ignore[call-overload]
    elif scalars.soft_update:  # eager: the same operations, in place
        target.mul_(scalars.keep).add_(critic * scalars.tau)


def _sample_action_entropy(mu: th.Tensor, std: th.Tensor, eps: th.Tensor, entropy_term: str):
    """:func:`~sb3_tutorial_sac.policies.sample_action_entropy` with the noise ``eps`` given (drawn outside the compiled
    function), and the intermediate values the written-out backward pass reads."""
    saved: dict[str, th.Tensor] = {}
    action, entropy = policies.sample_action_entropy(mu, std, entropy_term, saved, eps)  # type: ignore[arg-type]
    return action, entropy, saved


def step_function(spec: StepSpec, products: Products | None = None) -> Callable[..., tuple[th.Tensor, ...]]:
    """
    One gradient step of the tutorial as a function of the tensors :data:`INPUTS`: the flat parameter buffers and Adam's
    moments are updated in place, the statistics row is returned first. Run eagerly (the fast engine) it equals the
    reference engine bit for bit on the CPU (checked on a probe batch when the engine is built); compiled, up to
    rounding.

    :param spec: the model's step
    :param products: how the products are computed: by default :class:`Products` (the operations the reference
        engine's autograd runs, bit for bit); the compiled engine passes one that writes the small products as fused
        pointwise products and sums, and runs the critics as an ensemble, for compiling. One per call (it collects the
        tensors the step returns besides its statistics)
    """
    products = Products() if products is None else products
    reciprocal = products.reciprocal
    # compile-only: both critics as one batched product per layer (the eager step runs them one by one, as autograd)
    ensemble = products.ensemble(spec.critics)
    critic_offsets = sorted(
        {layer.weight for c in spec.critics for layer in c} | {layer.bias for c in spec.critics for layer in c}
    )
    actor_layers = (*spec.trunk, spec.mu, spec.std)
    actor_offsets = sorted({layer.weight for layer in actor_layers} | {layer.bias for layer in actor_layers})

    def to_env_units(action: th.Tensor, half_range: th.Tensor, center: th.Tensor) -> th.Tensor:
        scaled = action * half_range
        return scaled if spec.symmetric else scaled + center

    def actor_forward(actor: th.Tensor, obs: th.Tensor):
        outputs = _mlp_forward(products, spec.trunk, actor, obs)
        mu = products.linear(outputs[-1], *products.params(spec.mu, actor))
        std_pre = products.linear(outputs[-1], *products.params(spec.std, actor))
        std = F.softplus(std_pre, spec.softplus_beta, spec.softplus_threshold)
        return outputs, mu, std_pre, std

    def critics_forward(flat: th.Tensor, q_input: th.Tensor) -> tuple[list[th.Tensor], list]:
        """Each critic's values, and what their backward passes read."""
        if ensemble is not None:
            outputs = ensemble.forward(flat, q_input)
            return [outputs[-1][0], outputs[-1][1]], outputs
        per_critic = [_mlp_forward(products, layers, flat, q_input) for layers in spec.critics]
        return [outputs[-1] for outputs in per_critic], per_critic

    def critics_backward(flat: th.Tensor, grads: list[th.Tensor], saved: list, param_grads: dict[int, th.Tensor] | None,
                         input_columns: int | None) -> list[th.Tensor | None]:  # fmt: skip
        """Each critic's backward pass from the gradients of its values (:func:`_mlp_backward`)."""
        if ensemble is not None:
            both = ensemble.backward(flat, th.stack(grads), saved, param_grads, input_columns)
            return [None, None] if both is None else [both[0], both[1]]
        return [
            _mlp_backward(products, layers, flat, grad, outputs, param_grads, input_columns)
            for layers, grad, outputs in zip(spec.critics, grads, saved)
        ]

    def minimum(values: list[th.Tensor]) -> th.Tensor:
        return th.minimum(values[0], values[1]) if len(values) == 2 else values[0]

    def step(
        obs, actions, next_obs, rewards, discounts, noise_next, noise, half_range, center, actor, critic, target,
        log_alpha, actor_exp_avg, actor_exp_avg_sq, critic_exp_avg, critic_exp_avg_sq, alpha_exp_avg, alpha_exp_avg_sq,
        scalars,
    ):  # fmt: skip
        # the scalars by name: Python floats (eager), or 0-dim views of the float32 tensor (compiled)
        compiled = isinstance(scalars, th.Tensor)
        named = StepScalars(*scalars.unbind()) if compiled else scalars
        # Tutorial rule: alpha as it was before this step (log_alpha is the fixed alpha when it is not learned)
        ent_coef = th.exp(log_alpha) if spec.learn_alpha else log_alpha

        # 1. Target with the target critics, noise draw 1 of 2 for s'
        _, mu, _, std = actor_forward(actor, next_obs)
        next_actions, next_entropy, _ = _sample_action_entropy(mu, std, noise_next, spec.entropy_term)
        q_input = th.cat([next_obs, to_env_units(next_actions, half_range, center)], dim=1)
        next_q = minimum(critics_forward(target, q_input)[0])
        target_q = losses.tutorial_target(rewards, discounts, next_q, ent_coef, next_entropy)

        # 2. Each critic on its own MSE, one Adam update over both
        q_input = th.cat([obs, actions], dim=1)
        critic_grads: dict[int, th.Tensor] = {}
        values, saved_critics = critics_forward(critic, q_input)
        critic_losses = [F.mse_loss(q, target_q) for q in values]
        critics_backward(critic, [(q - target_q) * (2.0 / q.numel()) for q in values], saved_critics, critic_grads, None)
        critic_grad = th.cat([critic_grads[offset] for offset in critic_offsets])
        _adam(spec.critic_adam, critic, critic_grad, critic_exp_avg, critic_exp_avg_sq, named.critic_step,
              named.critic_denominator, reciprocal)  # fmt: skip

        # 3. Actor on the UPDATED critics, noise draw 2 of 2 for s (ManualUpdate.actor_step_grads)
        trunk_outputs, mu, std_pre, std = actor_forward(actor, obs)
        latent = trunk_outputs[-1]
        action, entropy, saved = _sample_action_entropy(mu, std, noise, spec.entropy_term)
        q_input = th.cat([obs, to_env_units(action, half_range, center)], dim=1)
        values, saved_critics = critics_forward(critic, q_input)
        actor_loss = losses.actor_loss(ent_coef, entropy, minimum(values))
        grad_mean = th.full_like(entropy, 1.0 / entropy.numel())
        grad_min_q = -grad_mean
        grad_entropy = grad_mean * (-ent_coef)
        if len(values) == 2:
            shared = th.where(values[0] == values[1], grad_min_q / 2, grad_min_q)
            grads_q = [shared.masked_fill(values[0] > values[1], 0), shared.masked_fill(values[0] < values[1], 0)]
        else:
            grads_q = [grad_min_q]
        # the critics' gradients with respect to the action columns of their input (CatBackward)
        grads_action = critics_backward(critic, grads_q, saved_critics, None, spec.obs_dim)
        grad_action = grads_action[0] if len(grads_action) == 1 else grads_action[0] + grads_action[1]  # type: ignore[operator]
        grad_action = grad_action * half_range
        log_prob, squash, inside = saved["log_prob"], saved["squash"], saved["inside"]
        if grad_entropy.shape != log_prob.shape:
            grad_entropy = grad_entropy.expand(log_prob.shape)
        grad_squash = (grad_entropy / inside) * (squash * -2.0)
        if spec.entropy_term == "tutorial":
            grad_action = grad_action + th.ops.aten.tanh_backward(grad_squash, squash)
        else:
            grad_action = grad_action + grad_squash
        grad_u = th.ops.aten.tanh_backward(grad_action, action)
        grad_var2 = grad_entropy * (saved["ratio"] / saved["var2"])
        grad_diff = (-grad_entropy / saved["var2"]) * (saved["diff"] * -2.0)
        grad_u = grad_u + grad_diff
        grad_mu = grad_u - grad_diff
        grad_std = (grad_entropy / std + (grad_var2 * 2) * (2.0 * std)) + grad_u * noise
        grad_std_pre = th.ops.aten.softplus_backward(grad_std, std_pre, spec.softplus_beta, spec.softplus_threshold)
        actor_grads = {
            spec.mu.weight: products.mm(grad_mu.t(), latent).reshape(-1),
            spec.mu.bias: grad_mu.sum(0),
            spec.std.weight: products.mm(grad_std_pre.t(), latent).reshape(-1),
            spec.std.bias: grad_std_pre.sum(0),
        }
        mu_weight, std_weight = products.params(spec.mu, actor)[0], products.params(spec.std, actor)[0]
        grad_latent = products.mm(grad_mu, mu_weight) + products.mm(grad_std_pre, std_weight)
        _mlp_backward(products, spec.trunk, actor, grad_latent, trunk_outputs, actor_grads, None)
        actor_grad = th.cat([actor_grads[offset] for offset in actor_offsets])
        _adam(spec.actor_adam, actor, actor_grad, actor_exp_avg, actor_exp_avg_sq, named.actor_step,
              named.actor_denominator, reciprocal)  # fmt: skip

        # 4. Temperature on H(s) of step 3 (ManualUpdate.temperature_step_grads)
        if spec.learn_alpha:
            assert spec.alpha_adam is not None
            excess = entropy - named.target_entropy
            # MulBackward: the mean's gradient times (H - target), summed onto log-alpha's shape; ExpBackward: * alpha
            alpha_grad = (th.full_like(excess, 1.0 / excess.numel()) * excess).sum(0)
            if spec.ent_coef_loss == "tutorial":
                alpha_grad = alpha_grad * ent_coef
            ent_coef_loss = losses.temperature_loss(entropy, log_alpha, named.target_entropy, spec.ent_coef_loss, ent_coef)
            _adam(spec.alpha_adam, log_alpha, alpha_grad, alpha_exp_avg, alpha_exp_avg_sq, named.alpha_step,
                  named.alpha_denominator, reciprocal)  # fmt: skip
        else:
            ent_coef_loss = th.zeros((), dtype=obs.dtype)

        # 5. Soft update of the target critics (when scalars.soft_update is 1)
        _soft_update(target, critic, named, compiled)
        return (th.stack([*critic_losses, actor_loss, ent_coef_loss, entropy.mean(), ent_coef.reshape(())]), *products.extras)

    return step


# ------------------------------------------------------------------------------------------------ reading the networks
Layers = tuple[tuple[nn.Linear, bool], ...]


@dataclass(frozen=True)
class Networks:
    """The networks as :func:`step_function` reads them: ReLU MLPs (``(linear, followed by ReLU)``) and the heads."""

    trunk: Layers
    mu: nn.Linear
    std_linear: nn.Linear
    softplus: nn.Softplus
    critics: tuple[Layers, ...]


def _linear_relu_stack(sequential: nn.Module) -> Layers | None:
    """The layers of an ``nn.Sequential`` of ``Linear`` (with bias) and ``ReLU`` modules, or None if it holds else."""
    if type(sequential) is not nn.Sequential:
        return None  # a module with a forward of its own: not a stack of layers
    layers: list[tuple[nn.Linear, bool]] = []
    for module in sequential.children():
        if type(module) is nn.Linear and module.bias is not None:
            layers.append((module, False))
        elif type(module) is nn.ReLU and layers and not layers[-1][1]:
            layers[-1] = (layers[-1][0], True)
        else:
            return None
    return tuple(layers)


def read_networks(state: TrainingState) -> Networks | str:
    """
    :return: the networks of ``state`` as the step function reads them, or why it does not cover them: it writes out
        plain ReLU MLPs (``nn.Sequential`` of ``Linear`` with bias and ``ReLU``) with the tutorial's heads and one or two
        critics
    """
    actor = state.actor
    trunk = _linear_relu_stack(actor.latent_pi)
    critics = [_linear_relu_stack(q_net) for q_net in state.critic.q_networks]
    std = list(actor.std.children()) if type(actor.std) is nn.Sequential else []
    if trunk is None or any(not relu for _, relu in trunk):
        return "the written-out backward passes cover an actor trunk of Linear + ReLU layers (nn.Sequential)"
    if type(actor.mu) is not nn.Linear or actor.mu.bias is None:
        return f"the written-out backward passes cover a Linear mean head, the actor's is {type(actor.mu).__name__}"
    if len(std) != 2 or type(std[0]) is not nn.Linear or std[0].bias is None or type(std[1]) is not nn.Softplus:
        return "the written-out backward passes cover the tutorial's std head nn.Sequential(Linear, Softplus)"
    if not 1 <= len(critics) <= 2:
        return f"the written-out backward passes cover one or two critics, this model has {len(critics)}"
    if any(critic is None or critic[-1][1] for critic in critics):
        return "the written-out backward passes cover critics of Linear + ReLU layers (nn.Sequential), a Linear last"
    return Networks(trunk, actor.mu, std[0], std[1], tuple(critics))  # type: ignore[arg-type]


def _linear_spec(layer: nn.Linear, offsets: dict[int, int], relu: bool) -> LinearSpec:
    return LinearSpec(offsets[id(layer.weight)], offsets[id(layer.bias)], layer.out_features, layer.in_features, relu)


def _adam_spec(optimizer: th.optim.Optimizer) -> AdamSpec:
    group = optimizer.param_groups[0]
    return AdamSpec(float(group["betas"][0]), float(group["betas"][1]), float(group["eps"]))


def make_spec(state: TrainingState, networks: Networks, batch_size: int) -> StepSpec:
    """The static description of ``state``'s step at ``batch_size``, with the structural settings of this call."""
    settings = state.settings
    assert settings is not None, "TrainingState.read(model) first"
    actor_offsets = dict(zip(map(id, state.actor_flat.params), state.actor_flat.offsets))
    critic_offsets = dict(zip(map(id, state.critic_flat.params), state.critic_flat.offsets))
    optimizer = state.ent_coef_optimizer
    return StepSpec(
        batch_size=batch_size,
        # the actor's first layer reads the observation: the trunk's first, or the heads' without a trunk (net_arch=[])
        obs_dim=(networks.trunk[0][0] if networks.trunk else networks.mu).in_features,
        act_dim=networks.mu.out_features,
        trunk=tuple(_linear_spec(layer, actor_offsets, relu) for layer, relu in networks.trunk),
        mu=_linear_spec(networks.mu, actor_offsets, False),
        std=_linear_spec(networks.std_linear, actor_offsets, False),
        softplus_beta=float(networks.softplus.beta),
        softplus_threshold=float(networks.softplus.threshold),
        critics=tuple(
            tuple(_linear_spec(layer, critic_offsets, relu) for layer, relu in critic) for critic in networks.critics
        ),
        actor_size=state.actor_flat.flat.numel(),
        critic_size=state.critic_flat.flat.numel(),
        symmetric=state.policy.symmetric_bounds,
        entropy_term=settings.entropy_term,
        ent_coef_loss=settings.ent_coef_loss,
        learn_alpha=optimizer is not None,
        actor_adam=_adam_spec(state.actor.optimizer),
        critic_adam=_adam_spec(state.critic.optimizer),
        alpha_adam=_adam_spec(optimizer) if optimizer is not None else None,
    )


def adam_servable(optimizer: th.optim.Optimizer) -> bool:
    """Whether the step function's Adam can step ``optimizer``: a plain ``torch.optim.Adam`` whose groups share their
    hyperparameters."""
    groups = optimizer.param_groups
    first = groups[0]
    return is_plain_adam(optimizer) and all(
        (group["lr"], group["betas"], group["eps"]) == (first["lr"], first["betas"], first["eps"]) for group in groups
    )
