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
the CPU. The compiled engine (:mod:`sb3_tutorial_sac.engines.compiled`) compiles the same function, with the small
matrix products written as fused sums (:class:`Products`). What is static about a model's step (its networks, batch
size, the entropy term and the temperature loss, Adam's betas) is a :class:`StepSpec`; the numeric settings (tau, the
target entropy, Adam's step sizes, whether to soft-update) are the ``scalars`` input, read from the model at every
``train()`` call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch as th
from torch import nn
from torch.nn import functional as F

from sb3_tutorial_sac import losses, policies
from sb3_tutorial_sac.engines import kernels
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
# scalars: per optimiser -step_size and sqrt(bias_correction2) (actor, critic, alpha), then 1.0 for a soft update, tau,
# 1 - tau (computed on the host in double precision, as a Python scalar would be) and the target entropy
N_SCALARS = 10
SOFT_UPDATE, TAU, KEEP, TARGET_ENTROPY = 6, 7, 8, 9
# The scalars input: a float32 tensor (compiled), or the same numbers as Python floats (eager: torch casts a Python scalar
# to float32 inside its kernels, so the numbers are the same, and the eager step spends no operation on reading them)
Scalars = th.Tensor | Sequence[float]

# Names of the statistics row, in order, after one loss per critic
STATISTICS = ("actor loss", "temperature loss", "mean entropy", "alpha")

# Input order of the loop function (loop_function): the minibatch columns of all steps stacked ([steps, batch, ...]),
# the noise of all steps ([steps, 2, batch, act]: s' then s), the scalars of all steps ([steps, N_SCALARS]), then the
# step's persistent inputs; of these, the training state (the parameters, log-alpha and Adam's moments) is updated
LOOP_INPUTS = (*INPUTS[:5], "noise", "scalars", *INPUTS[7:19])
STATE = INPUTS[9:19]


# Matrix products with a dimension this small are written as fused pointwise products and sums when compiling: as
# calls into the BLAS they cost several microseconds each, most of it the call (a step has 33 of them and 12 large ones)
_SMALL = 8


# The rewrites Products can make: "out1" a linear layer of one output (a critic's last layer, a head of one action) as a
# row-wise sum, "outer" a product of inner dimension 1 as a broadcast product, "row" a product of one row (the weight
# gradient of such a layer) as a column-wise sum, "col1" a product of one column (the gradient with respect to one
# action column) as a row-wise sum, "cols_t" the weight gradient of a layer of at most 8 inputs (the first layers) as
# a sum over the batch. Inductor vectorises all five over the 128 contiguous features.
#
# Compiled by default too, each measured faster per compiled step (benchmarks/engine_candidates.py, RESULTS.md):
# "bias_after", a linear layer's product without its bias (mm, not addmm), the bias added in the fused loop that follows
# (addmm copies the bias into its output and has the BLAS scale it, two more passes over the output); "ensemble", the
# two critics (and the two target critics) as one product per layer (``bmm`` over a strided [2, out, in] view of both
# critics' weights in the flat buffer, as SBX's vmapped critics), so that the pointwise work of both critics runs in the
# same loops; "in_t" and "ensemble_in_t", a first layer (at most 8 inputs: the actor's trunk, the critics') as a sum of
# broadcast products from the weight's columns stored once as rows, vectorised over the contiguous outputs, instead of a
# BLAS call of inner dimension 3 or 4; "adam_reciprocal", Adam's division by sqrt(bias_correction2) as a product with
# its reciprocal (one division per parameter instead of two; rounded otherwise). These three together: about 5% less
# CPU per step (issue 22, engine_candidates.py's aoti_fused_before_first_layers). "avx512_bmm", the ensemble's large
# products as the AVX-512 kernel of engines.kernels (torch.bmm in Python; the compiled engine leaves it out where the
# kernel cannot be built, e.g. without AVX-512).
#
# Kept for benchmarks/engine_candidates.py, left out because they measured no faster than what they replace: "in" a
# first layer's sum of broadcast products reading the weight's columns with a stride (Inductor writes scalar loops),
# "cols" a product of at most 8 columns as a sum over the inner dimension (scalar loops), "ensemble_mm" the ensemble's
# large products as one BLAS product per critic (with the weights' strided views ATen's bmm is the faster here).
REWRITES = frozenset(
    {"out1", "outer", "row", "col1", "cols_t", "bias_after", "ensemble", "in_t", "ensemble_in_t", "adam_reciprocal",
     "avx512_bmm"}
)  # fmt: skip
ALL_REWRITES = REWRITES | {"in", "cols", "ensemble_mm"}


class Products:
    """
    ``F.linear`` and ``mm`` for the step function. With no rewrites: the calls themselves (the fast engine's numbers,
    autograd's).
    With rewrites (:data:`REWRITES`, when compiling): a product with a dimension of at most 8 (the observation and
    action columns, a critic's output, the heads) becomes broadcast products and sums that Inductor fuses with the
    operations around them; the same mathematics, rounded otherwise.
    """

    def __init__(self, rewrites: frozenset[str] = frozenset()):
        self.rewrites = rewrites
        self.fused = bool(rewrites)
        # tensors the step function returns besides its statistics, so that Inductor stores them once (see "in_t")
        self.extras: list[th.Tensor] = []
        # eager (no rewrites): the views of each flat buffer's layers, made once and read at every step (their numbers
        # follow the buffer's in-place updates); each buffer is held here, so that its id names it while cached
        self._views: dict[int, tuple[th.Tensor, dict[int, tuple[th.Tensor, th.Tensor]]]] | None = None
        if not rewrites:  # the calls themselves, without this class's dispatch (eager: every call counts)
            self.linear = F.linear  # type: ignore[method-assign,assignment]
            self.mm = th.mm  # type: ignore[method-assign,assignment]
            self._views = {}

    def params(self, layer: LinearSpec, flat: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """``layer``'s weight and bias in ``flat`` (:meth:`LinearSpec.params`; compiled: views made in the function)."""
        if self._views is None:
            return layer.params(flat)
        entry = self._views.get(id(flat))
        if entry is None or entry[0] is not flat:
            entry = self._views[id(flat)] = (flat, {})
        views = entry[1]
        found = views.get(layer.weight)
        if found is None:
            found = views[layer.weight] = layer.params(flat)
        return found

    def linear(self, x: th.Tensor, weight: th.Tensor, bias: th.Tensor) -> th.Tensor:
        out_features, in_features = weight.shape
        if "in_t" in self.rewrites and in_features <= _SMALL:
            # the weight's columns as rows, stored once (an output of the step, so not recomputed where it is read),
            # then the broadcast products vectorise over the contiguous features
            columns = weight.t().contiguous()
            self.extras.append(columns)
            y = bias + x[:, 0:1] * columns[0]
            for k in range(1, in_features):
                y = y + x[:, k : k + 1] * columns[k]
            return y
        if "in" in self.rewrites and in_features <= _SMALL:
            y = bias + x[:, 0:1] * weight[:, 0]
            for k in range(1, in_features):
                y = y + x[:, k : k + 1] * weight[:, k]
            return y
        if "out1" in self.rewrites and out_features == 1:
            return (x * weight[0]).sum(1, keepdim=True) + bias
        if "bias_after" in self.rewrites:
            # the product alone, the bias added in the fused loop that follows (with the ReLU): addmm would copy the
            # bias into its output and have the BLAS scale it by beta, two passes over the output
            return self.mm(x, weight.t()) + bias
        return F.linear(x, weight, bias)

    def mm(self, a: th.Tensor, b: th.Tensor) -> th.Tensor:
        """``a @ b`` for ``a`` ``[m, k]``, ``b`` ``[k, n]``."""
        m, k = a.shape
        n = b.shape[1]
        if "outer" in self.rewrites and k == 1:
            return a * b
        if "row" in self.rewrites and m == 1:
            return (a.t() * b).sum(0, keepdim=True)
        if ("col1" in self.rewrites and n == 1) or ("cols" in self.rewrites and n <= _SMALL):
            return (a.unsqueeze(2) * b.unsqueeze(0)).sum(1)
        if "cols_t" in self.rewrites and n <= _SMALL and a.stride(0) == 1:
            # a weight gradient grad.t() @ input of a layer of few inputs: the sum over the batch vectorised over the
            # contiguous features of grad, transposed at the end
            return (b.unsqueeze(2) * a.t().unsqueeze(1)).sum(0).t()
        if "avx512_bmm" in self.rewrites and min(m, k, n) > _SMALL:
            # the AVX-512 kernel of engines.kernels as for the critics' ensemble (_Ensemble.mm), on a batch of one
            return kernels.avx512_bmm(a.unsqueeze(0), (b if 1 in b.stride() else b.contiguous()).unsqueeze(0))[0]
        return a.mm(b)


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


def ensemble_ready(critics: Sequence[Sequence[LinearSpec]]) -> bool:
    """Whether the critics can run as one ensemble: two of them, with the same layers (sizes and ReLUs)."""
    shapes = [[(layer.out_features, layer.in_features, layer.relu) for layer in critic] for critic in critics]
    return len(shapes) == 2 and shapes[0] == shapes[1]


def _ensemble_params(flat: th.Tensor, first: LinearSpec, second: LinearSpec) -> tuple[th.Tensor, th.Tensor]:
    """The weights ``[2, out, in]`` and biases ``[2, 1, out]`` of one layer of both critics, as strided views of the
    flat buffer (the two critics' segments lie at a fixed distance from each other: no copy)."""
    out_features, in_features = first.out_features, first.in_features
    weight = flat.as_strided((2, out_features, in_features), (second.weight - first.weight, in_features, 1), first.weight)
    bias = flat.as_strided((2, 1, out_features), (second.bias - first.bias, out_features, 1), first.bias)
    return weight, bias


class _Ensemble:
    """The critics' layers as batched products over the ensemble dimension (the ``"ensemble"`` rewrite), with the small
    products written as broadcast products and sums as :class:`Products` writes them."""

    def __init__(self, critics: Sequence[Sequence[LinearSpec]], rewrites: frozenset[str], extras: list[th.Tensor]):
        self.layers = list(zip(critics[0], critics[1]))
        self.rewrites = rewrites
        self.extras = extras  # Products.extras: tensors the step returns so that Inductor stores them once

    def linear(self, x: th.Tensor, weight: th.Tensor, bias: th.Tensor) -> th.Tensor:
        """``x`` ``[2, batch, in]`` (or ``[batch, in]``, shared) through ``weight`` ``[2, out, in]``."""
        if weight.shape[1] == 1:
            x = x if x.dim() == 3 else x.unsqueeze(0)
            return (x * weight).sum(2, keepdim=True) + bias
        if "ensemble_in_t" in self.rewrites and weight.shape[2] <= _SMALL:
            # a first layer (few inputs) as a sum of broadcast products over the weights' columns stored as rows
            # [2, in, out] (an output of the step, so stored once), vectorised over the contiguous outputs
            columns = weight.transpose(1, 2).contiguous()
            self.extras.append(columns)
            x = x if x.dim() == 3 else x.unsqueeze(0)
            y = bias + x[:, :, 0:1] * columns[:, 0:1]
            for k in range(1, weight.shape[2]):
                y = y + x[:, :, k : k + 1] * columns[:, k : k + 1]
            return y
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(2, *x.shape)
        if "bias_after" in self.rewrites or "ensemble_mm" in self.rewrites:
            return self.mm(x, weight.transpose(1, 2)) + bias
        return th.baddbmm(bias, x, weight.transpose(1, 2))

    def mm(self, a: th.Tensor, b: th.Tensor) -> th.Tensor:
        """``a @ b`` for ``a`` ``[2, m, k]``, ``b`` ``[2, k, n]``."""
        m, k, n = a.shape[1], a.shape[2], b.shape[2]
        if k == 1:
            return a * b
        if m == 1:
            return (a.transpose(1, 2) * b).sum(1, keepdim=True)
        if n == 1:
            return (a * b.transpose(1, 2)).sum(2, keepdim=True)
        if n <= _SMALL:
            # a weight gradient of a layer of few inputs: the sum over the batch vectorised over the features of a
            return (b.unsqueeze(3) * a.transpose(1, 2).unsqueeze(2)).sum(1).transpose(1, 2)
        if "ensemble_mm" in self.rewrites:
            # one BLAS product per critic into the halves of one output (ATen's bmm runs these sizes slower per product)
            return th.stack([a[0].mm(b[0]), a[1].mm(b[1])])
        if "avx512_bmm" in self.rewrites:
            # torch.bmm, which the compiled package runs as the AVX-512 kernel of engines.kernels; it reads b by rows or,
            # a transposed weight, by 16x16 blocks transposed into its panels
            return kernels.avx512_bmm(a, b if 1 in (b.stride(1), b.stride(2)) else b.contiguous())
        return th.bmm(a, b)

    def forward(self, flat: th.Tensor, x: th.Tensor) -> list[th.Tensor]:
        outputs = [x]
        for first, second in self.layers:
            x = self.linear(x, *_ensemble_params(flat, first, second))
            if first.relu:
                x = F.relu(x)
            outputs.append(x)
        return outputs

    def backward(
        self,
        flat: th.Tensor,
        grad: th.Tensor,
        outputs: list[th.Tensor],
        param_grads: dict[int, th.Tensor] | None,
        input_columns: int | None,
    ) -> th.Tensor | None:
        """:func:`_mlp_backward` of both critics at once: ``grad`` ``[2, batch, 1]``; parameter gradients by offset."""
        for i in range(len(self.layers) - 1, -1, -1):
            first, second = self.layers[i]
            weight, _ = _ensemble_params(flat, first, second)
            if first.relu:
                grad = th.ops.aten.threshold_backward(grad, outputs[i + 1], 0)
            if param_grads is not None:
                layer_input = outputs[i] if outputs[i].dim() == 3 else outputs[i].unsqueeze(0).expand(2, *outputs[i].shape)
                weight_grad = self.mm(grad.transpose(1, 2), layer_input)
                bias_grad = grad.sum(1)
                for k, layer in enumerate((first, second)):
                    param_grads[layer.weight] = weight_grad[k].reshape(-1)
                    param_grads[layer.bias] = bias_grad[k]
            if i > 0:
                grad = self.mm(grad, weight)
            elif input_columns is not None:
                return self.mm(grad, weight[:, :, input_columns:])
        return None


def _adam(spec: AdamSpec, param: th.Tensor, grad: th.Tensor, exp_avg: th.Tensor, exp_avg_sq: th.Tensor, scalars: Scalars,
          reciprocal: bool = False):  # fmt: skip
    """:func:`~sb3_tutorial_sac.flat.adam_update` with ``scalars`` = (``-step_size``, ``sqrt(bias_correction2)``);
    ``reciprocal``: the ``"adam_reciprocal"`` rewrite (compiled)."""
    adam_update(param, grad, exp_avg, exp_avg_sq, scalars[0], scalars[1], spec.beta1, spec.beta2, spec.eps, reciprocal)


def _soft_update(target: th.Tensor, critic: th.Tensor, scalars: Scalars) -> None:
    """
    Tutorial rule: ``target = 0.995 * target + 0.005 * online`` after every gradient step (``scalars[SOFT_UPDATE]``),
    rounded as the tutorial rounds it (SB3's ``polyak_update`` fuses the add).
    """
    if isinstance(scalars, th.Tensor):  # compiled: one function for both cases
        updated = target * scalars[KEEP] + critic * scalars[TAU]
        target.copy_(th.where(scalars[SOFT_UPDATE] > 0, updated, target))
    elif scalars[SOFT_UPDATE]:  # eager: the same operations, in place
        target.mul_(scalars[KEEP]).add_(critic * scalars[TAU])


def _sample_action_entropy(mu: th.Tensor, std: th.Tensor, eps: th.Tensor, entropy_term: str):
    """:func:`~sb3_tutorial_sac.policies.sample_action_entropy` with the noise ``eps`` given (drawn outside the compiled
    function), and the intermediate values the written-out backward pass reads."""
    saved: dict[str, th.Tensor] = {}
    action, entropy = policies.sample_action_entropy(mu, std, entropy_term, saved, eps)  # type: ignore[arg-type]
    return action, entropy, saved


def step_function(spec: StepSpec, rewrites: frozenset[str] = frozenset()) -> Callable[..., tuple[th.Tensor, ...]]:
    """
    One gradient step of the tutorial as a function of the tensors :data:`INPUTS`: the flat parameter buffers and Adam's
    moments are updated in place, the statistics row is returned first. Run eagerly (the fast engine) it equals the
    reference engine bit for bit on the CPU (checked on a probe batch when the engine is built); compiled, up to
    rounding.

    :param spec: the model's step
    :param rewrites: the small matrix products to write as fused pointwise products and sums (:class:`Products`), for
        compiling; none: the operations the reference engine's autograd runs, bit for bit
    """
    products = Products(rewrites)
    reciprocal = "adam_reciprocal" in rewrites
    # compile-only: both critics as one batched product per layer (the eager step runs them one by one, as autograd)
    ensemble = None
    if "ensemble" in rewrites and ensemble_ready(spec.critics):
        ensemble = _Ensemble(spec.critics, rewrites, products.extras)
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
        _adam(spec.critic_adam, critic, critic_grad, critic_exp_avg, critic_exp_avg_sq, (scalars[2], scalars[3]), reciprocal)

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
        _adam(spec.actor_adam, actor, actor_grad, actor_exp_avg, actor_exp_avg_sq, (scalars[0], scalars[1]), reciprocal)

        # 4. Temperature on H(s) of step 3 (ManualUpdate.temperature_step_grads)
        if spec.learn_alpha:
            assert spec.alpha_adam is not None
            excess = entropy - scalars[TARGET_ENTROPY]
            # MulBackward: the mean's gradient times (H - target), summed onto log-alpha's shape; ExpBackward: * alpha
            alpha_grad = (th.full_like(excess, 1.0 / excess.numel()) * excess).sum(0)
            if spec.ent_coef_loss == "tutorial":
                alpha_grad = alpha_grad * ent_coef
            ent_coef_loss = losses.temperature_loss(entropy, log_alpha, scalars[TARGET_ENTROPY], spec.ent_coef_loss, ent_coef)
            alpha_scalars = (scalars[4], scalars[5])
            _adam(spec.alpha_adam, log_alpha, alpha_grad, alpha_exp_avg, alpha_exp_avg_sq, alpha_scalars, reciprocal)
        else:
            ent_coef_loss = th.zeros((), dtype=obs.dtype)

        # 5. Soft update of the target critics (when scalars[SOFT_UPDATE] is 1)
        _soft_update(target, critic, scalars)
        return (th.stack([*critic_losses, actor_loss, ent_coef_loss, entropy.mean(), ent_coef.reshape(())]), *products.extras)

    return step


def loop_function(spec: StepSpec, rewrites: frozenset[str] = frozenset()) -> Callable[..., tuple[th.Tensor]]:
    """
    All gradient steps of one ``train()`` call as one function of the tensors :data:`LOOP_INPUTS`: :func:`step_function`
    in a ``while_loop`` over the stacked minibatches, noise and scalars, for compiling once (a compiled package then
    runs a whole ``train()`` call in one call: no Python, no argument handling and no allocation of the results
    between steps, as SBX's jitted loop). The training state is updated in place; the statistics ``[steps, n]`` are
    returned. The numbers are :func:`step_function`'s under the same rewrites (run eagerly without rewrites: the fast
    engine's, bit for bit; ``tests/test_compiled.py``).

    :param spec: the model's step
    :param rewrites: the rewrites of :func:`step_function`
    """
    # the operator itself: torch's while_loop() would first trace the loop with TorchDynamo (several seconds at every
    # compile); the operator is traced as the rest of the function is (torch.export's non-strict tracing)
    from torch._higher_order_ops.while_loop import while_loop_op

    n_stats = len(spec.critics) + len(STATISTICS)
    extra_shapes = _extra_shapes(spec, rewrites)

    # what the loop carries from step to step: the step counter, the training state, the statistics, the extras
    n_carried = 1 + len(STATE) + 1 + len(extra_shapes)

    def more(*carried_and_given: th.Tensor) -> th.Tensor:
        counter, stacked_observations = carried_and_given[0], carried_and_given[n_carried]
        return counter < stacked_observations.shape[0]

    def one_step(*carried_and_given: th.Tensor) -> tuple[th.Tensor, ...]:
        counter, *carried = carried_and_given[:n_carried]
        obs, actions, next_obs, rewards, discounts, noise, scalars, half_range, center = carried_and_given[n_carried:]
        # the step updates the state in place; a loop's body may not change what it is given: copies, which
        # Inductor turns into the updated buffers the next step reads
        state = [tensor.clone() for tensor in carried[: len(STATE)]]
        index = counter.reshape(1)

        def this_step(stacked: th.Tensor) -> th.Tensor:
            return stacked.index_select(0, index).squeeze(0)

        step_noise = this_step(noise)
        # a step function of its own for each trace: its Products collects the tensors it returns besides the row
        outputs = step_function(spec, rewrites)(
            this_step(obs), this_step(actions), this_step(next_obs), this_step(rewards), this_step(discounts),
            step_noise[0], step_noise[1], half_range, center, *state, this_step(scalars),
        )  # fmt: skip
        statistics = carried[len(STATE)].index_put((index,), outputs[0].unsqueeze(0))
        # the step's other outputs (Products.extras) carried, so that Inductor stores them once, as the step's own;
        # contiguous copies, as the loop requires of what it carries (one may be a view of the state: a weight whose
        # transpose is contiguous already, with the strides of the weight)
        extras = (extra.clone(memory_format=th.contiguous_format) for extra in outputs[1:])
        return (counter + 1, *state, statistics, *extras)

    def loop(obs, actions, next_obs, rewards, discounts, noise, scalars, half_range, center, *state):  # fmt: skip
        given = (obs, actions, next_obs, rewards, discounts, noise, scalars, half_range, center)
        counter = th.zeros((), dtype=th.int64, device=obs.device)
        statistics = th.zeros(obs.shape[0], n_stats, dtype=obs.dtype, device=obs.device)
        extras = [th.zeros(shape, dtype=obs.dtype, device=obs.device) for shape in extra_shapes]
        final = while_loop_op(more, one_step, (counter, *state, statistics, *extras), given)
        for tensor, updated in zip(state, final[1 : 1 + len(STATE)]):
            tensor.copy_(updated)  # the state, written back once
        return (final[1 + len(STATE)],)

    return loop


def _extra_shapes(spec: StepSpec, rewrites: frozenset[str]) -> list[tuple[int, ...]]:
    """The shapes of the tensors :func:`step_function` returns after its statistics, from a run on fake tensors (no
    arithmetic)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    sizes = {"actor": spec.actor_size, "critic": spec.critic_size, "target": spec.critic_size}
    columns = {"observations": spec.obs_dim, "next_observations": spec.obs_dim, "actions": spec.act_dim,
               "noise_next": spec.act_dim, "noise": spec.act_dim, "rewards": 1, "discounts": 1}  # fmt: skip
    shapes: dict[str, tuple[int, ...]] = {name: (spec.batch_size, width) for name, width in columns.items()}
    shapes.update({"half_range": (spec.act_dim,), "center": (spec.act_dim,), "scalars": (N_SCALARS,)})
    shapes.update({"log_alpha": (1,), "alpha_exp_avg": (1,), "alpha_exp_avg_sq": (1,)})
    for name in ("actor", "critic"):
        shapes.update({name: (sizes[name],), f"{name}_exp_avg": (sizes[name],), f"{name}_exp_avg_sq": (sizes[name],)})
    shapes["target"] = (sizes["target"],)
    with th.inference_mode(), FakeTensorMode():
        outputs = step_function(spec, rewrites)(*(th.empty(shapes[name]) for name in INPUTS))
    return [tuple(output.shape) for output in outputs[1:]]


def eager(spec: StepSpec) -> Callable[[list[th.Tensor]], list[th.Tensor]]:
    """:func:`step_function` run eagerly, called as a compiled package is (a list of inputs, a list of outputs)."""
    function = step_function(spec)
    return lambda inputs: list(function(*inputs))


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
