"""The compiled engine: the tutorial's whole gradient step as one function of tensors, compiled once by AOTInductor.

The fast engine (:class:`~sb3_tutorial_sac.engines.FastEngine`) runs about 200 small operations per gradient step, one
by one, and on a CPU with the tutorial's networks and batch most of a step is the cost of calling them. Here the same
step (:func:`step_function`: target, critic 1 and 2, actor, temperature, soft update, statistics; the fast engine's
written-out backward passes and Adam updates, as one pure function of the model's flat buffers) is exported
(``torch.export``) and compiled by AOTInductor (``torch._inductor.aoti_compile_and_package``) into one native
function: the pointwise operations fused into a few loops, the 12 large matrix products calls into the BLAS, the
small ones (a dimension of 1: heads, a critic's output, one action column) written as fused products and sums
(:class:`Products`), and no Python between operations.

What it costs and when:

* the first ``train()`` call of a model compiles the step for the model's configuration (networks, batch size, loss
  switches, Adam's betas), once per machine and torch version: tens of seconds (the first compilation on a machine
  also builds Inductor's precompiled headers; measured in benchmarks/RESULTS.md), and stores the package in
  Inductor's cache folder (``TORCHINDUCTOR_CACHE_DIR``; by default ``torchinductor_<user>`` in the system's temporary
  folder, which a reboot may empty). Every later model of that configuration loads it in milliseconds;
* the numbers are the tutorial's up to rounding: Inductor's fused kernels round differently from PyTorch's eager
  ones (its own ``tanh``, ``log`` and ``exp``, fused multiply-adds, sums in another order), a few ulps per step. On
  well-conditioned training the parameters stay within 1e-6 of the reference engine after 300 steps
  (``tests/test_compiled.py`` holds them to 1e-5); where training amplifies rounding (Pendulum-v1 over a whole run,
  some configurations within 300 steps) the runs part as they would after a 1-ulp change of one parameter of the
  bit-exact engine: statistically the tutorial's, not bit for bit. The fast engine stays the default
  (``engine="auto"``): bit for bit the tutorial's.

Randomness is the tutorial's: the two noise draws of a step (``[batch, act]`` each, ``s'`` then ``s``) are drawn
from torch's global generator outside the compiled function and passed in; Adam's step-dependent scalars are computed
on the host as torch's Adam computes them.

Proofs, as for the fast engine: when the model is set up, :meth:`CompiledEngine.probe_difference` runs the step
function uncompiled against the fast engine's step on a probe batch (bit for bit); after compiling or loading, the
compiled function is compared with the uncompiled one on a probe batch (within 1e-4 relative). Where compiling is
impossible (no C++ compiler, an unsupported platform or torch version, a compile error) or a proof fails, the
engine warns once and trains with the fast engine's update.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch as th
from torch import nn
from torch.nn import functional as F

from sb3_tutorial_sac import losses, policies
from sb3_tutorial_sac.engines import FastEngine, Minibatch
from sb3_tutorial_sac.flat import _is_plain_adam, init_adam_states
from sb3_tutorial_sac.manual import ManualUpdate

if TYPE_CHECKING:
    from sb3_tutorial_sac.tutorial_sac import TutorialSAC


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
    """Everything static about one model's gradient step: one compiled function per spec."""

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
    target_entropy: float
    tau: float
    actor_adam: AdamSpec
    critic_adam: AdamSpec
    alpha_adam: AdamSpec | None

    def key(self) -> str:
        """A digest of the spec, this module's source (the step function), torch's version and the CPU (the package is
        built for it)."""
        parts = [repr(asdict(self)), _source_digest(), th.__version__, platform.machine(), _cpu_model()]
        parts.append(th.backends.cpu.get_cpu_capability())
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def _source_digest() -> str:
    """A digest of the step function's sources (this module and the formulas it calls from ``losses`` and
    ``policies``): a compiled package is never reused after the step function changed (the package's version where a
    source cannot be read, e.g. from a zip)."""
    digest = hashlib.sha256()
    try:
        for module_file in (__file__, losses.__file__, policies.__file__):
            with open(module_file, "rb") as source:
                digest.update(source.read())
    except (OSError, TypeError):
        from sb3_tutorial_sac import __version__

        return __version__
    return digest.hexdigest()


def _cpu_model() -> str:
    """The CPU's model name and flags (Linux), else the platform's processor string: the package is compiled for the
    machine's CPU (``-march=native``)."""
    lines: dict[str, str] = {}
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            key = line.split(":", 1)[0].strip()
            if key in ("model name", "flags") and key not in lines:
                lines[key] = line.strip()
    return "|".join(lines.values()) or platform.processor()


# ------------------------------------------------------------------------------------------------ the step function
# Input order of the step function; the statistics row is its first output.
INPUTS = (
    "observations", "actions", "next_observations", "rewards", "discounts", "noise_next", "noise", "half_range",
    "center", "actor", "critic", "target", "log_alpha", "actor_exp_avg", "actor_exp_avg_sq", "critic_exp_avg",
    "critic_exp_avg_sq", "alpha_exp_avg", "alpha_exp_avg_sq", "scalars",
)  # fmt: skip
# scalars: per optimiser -step_size and sqrt(bias_correction2) (actor, critic, alpha), then 1.0 for a soft update
N_SCALARS = 7


# Matrix products with a dimension this small are written as fused pointwise products and sums when compiling: as
# calls into the BLAS they cost several microseconds each, most of it the call (a step has 33 of them and 12 large ones)
_SMALL = 8


# The rewrites Products can make: "out1" a linear layer of one output (a critic's last layer, a head of one action) as a
# row-wise sum, "outer" a product of inner dimension 1 as a broadcast product, "row" a product of one row (the weight
# gradient of such a layer) as a column-wise sum, "col1" a product of one column (the gradient with respect to one
# action column) as a row-wise sum, "cols_t" the weight gradient of a layer of at most 8 inputs (the first layers) as
# a sum over the batch. Inductor vectorises all five over the 128 contiguous features. Three more are kept for
# benchmarks/engine_candidates.py, left out because they measured no faster than the BLAS calls they replace: "in" a
# linear layer of at most 8 inputs as a sum of broadcast products (Inductor reads the weight's columns with a stride
# and writes scalar loops), "in_t" the same from the weight's columns stored once, "cols" a product of at most 8
# columns as a sum over the inner dimension (scalar loops).
REWRITES = frozenset({"out1", "outer", "row", "col1", "cols_t"})
ALL_REWRITES = REWRITES | {"in", "in_t", "cols"}


class Products:
    """
    ``F.linear`` and ``mm`` for the step function. With no rewrites: the calls themselves (the fast engine's numbers).
    With rewrites (:data:`REWRITES`, when compiling): a product with a dimension of at most 8 (the observation and
    action columns, a critic's output, the heads) becomes broadcast products and sums that Inductor fuses with the
    operations around them; the same mathematics, rounded otherwise.
    """

    def __init__(self, rewrites: frozenset[str] = frozenset()):
        self.rewrites = rewrites
        self.fused = bool(rewrites)
        # tensors the step function returns besides its statistics, so that Inductor stores them once (see "in_t")
        self.extras: list[th.Tensor] = []

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
        return a.mm(b)


def _mlp_forward(products: Products, layers: Sequence[LinearSpec], flat: th.Tensor, x: th.Tensor) -> list[th.Tensor]:
    outputs = [x]
    for layer in layers:
        x = products.linear(x, *layer.params(flat))
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
    :meth:`~sb3_tutorial_sac.manual.ManualMLP.backward`; parameter gradients go into ``param_grads`` by offset.

    :param input_columns: return the gradient with respect to the input's columns from this one on (None: no input
        gradient)
    """
    for i in range(len(layers) - 1, -1, -1):
        layer = layers[i]
        weight, _ = layer.params(flat)
        if layer.relu:
            grad = th.ops.aten.threshold_backward(grad, outputs[i + 1], 0)
        if param_grads is not None:
            param_grads[layer.weight] = products.mm(grad.t(), outputs[i]).reshape(-1)
            param_grads[layer.bias] = grad.sum(0)
        if i > 0:
            grad = products.mm(grad, weight)
        elif input_columns is not None:
            # the fast engine's product, then the columns; fused, only the columns' product
            return products.mm(grad, weight[:, input_columns:]) if products.fused else grad.mm(weight)[:, input_columns:]
    return None


def _adam(spec: AdamSpec, param: th.Tensor, grad: th.Tensor, exp_avg: th.Tensor, exp_avg_sq: th.Tensor, scalars: th.Tensor):
    """:func:`~sb3_tutorial_sac.flat._adam_update` in place; ``scalars`` = (``-step_size``, ``sqrt(bias_correction2)``)."""
    exp_avg.lerp_(grad, 1 - spec.beta1)
    exp_avg_sq.mul_(spec.beta2).addcmul_(grad, grad, value=1 - spec.beta2)
    denom = exp_avg_sq.sqrt() / scalars[1] + spec.eps
    param.add_(scalars[0] * exp_avg / denom)


def _sample_action_entropy(mu: th.Tensor, std: th.Tensor, eps: th.Tensor, entropy_term: str):
    """:func:`~sb3_tutorial_sac.policies.sample_action_entropy` with the noise ``eps`` given (drawn outside the compiled
    function), and the intermediate values the written-out backward pass reads."""
    saved: dict[str, th.Tensor] = {}
    action, entropy = policies.sample_action_entropy(mu, std, entropy_term, saved, eps)  # type: ignore[arg-type]
    return action, entropy, saved


def step_function(spec: StepSpec, rewrites: frozenset[str] = frozenset()) -> Callable[..., tuple[th.Tensor, ...]]:
    """
    One gradient step of the tutorial (:meth:`~sb3_tutorial_sac.engines.UpdateEngine.step`, the fast engine's
    arithmetic operation for operation) as a function of the tensors :data:`INPUTS`: the flat parameter buffers and
    Adam's moments are updated in place, the statistics row is returned first. Run eagerly it equals the fast engine
    bit for bit (checked when the engine is built); compiled, up to rounding.

    :param spec: the model's step
    :param rewrites: the small matrix products to write as fused pointwise products and sums (:class:`Products`), for
        compiling; none: the fast engine's operations, bit for bit
    """
    products = Products(rewrites)
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
        mu = products.linear(outputs[-1], *spec.mu.params(actor))
        std_pre = products.linear(outputs[-1], *spec.std.params(actor))
        std = F.softplus(std_pre, spec.softplus_beta, spec.softplus_threshold)
        return outputs, mu, std_pre, std

    def q_values(flat: th.Tensor, q_input: th.Tensor) -> list[list[th.Tensor]]:
        return [_mlp_forward(products, layers, flat, q_input) for layers in spec.critics]

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
        next_q = minimum([outputs[-1] for outputs in q_values(target, q_input)])
        target_q = losses.tutorial_target(rewards, discounts, next_q, ent_coef, next_entropy)

        # 2. Each critic on its own MSE, one Adam update over both
        q_input = th.cat([obs, actions], dim=1)
        critic_losses = []
        critic_grads: dict[int, th.Tensor] = {}
        for layers, outputs in zip(spec.critics, q_values(critic, q_input)):
            q = outputs[-1]
            critic_losses.append(F.mse_loss(q, target_q))
            _mlp_backward(products, layers, critic, (q - target_q) * (2.0 / q.numel()), outputs, critic_grads, None)
        critic_grad = th.cat([critic_grads[offset] for offset in critic_offsets])
        _adam(spec.critic_adam, critic, critic_grad, critic_exp_avg, critic_exp_avg_sq, scalars[2:4])

        # 3. Actor on the UPDATED critics, noise draw 2 of 2 for s (ManualUpdate.actor_step_grads)
        trunk_outputs, mu, std_pre, std = actor_forward(actor, obs)
        latent = trunk_outputs[-1]
        action, entropy, saved = _sample_action_entropy(mu, std, noise, spec.entropy_term)
        q_input = th.cat([obs, to_env_units(action, half_range, center)], dim=1)
        critic_outputs = q_values(critic, q_input)
        values = [outputs[-1] for outputs in critic_outputs]
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
        grads_action = [
            _mlp_backward(products, layers, critic, grad_q, outputs, None, spec.obs_dim)
            for layers, grad_q, outputs in zip(spec.critics, grads_q, critic_outputs)
        ]
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
        grad_latent = products.mm(grad_mu, spec.mu.params(actor)[0]) + products.mm(grad_std_pre, spec.std.params(actor)[0])
        _mlp_backward(products, spec.trunk, actor, grad_latent, trunk_outputs, actor_grads, None)
        actor_grad = th.cat([actor_grads[offset] for offset in actor_offsets])
        _adam(spec.actor_adam, actor, actor_grad, actor_exp_avg, actor_exp_avg_sq, scalars[0:2])

        # 4. Temperature on H(s) of step 3 (ManualUpdate.temperature_step_grads)
        if spec.learn_alpha:
            assert spec.alpha_adam is not None
            excess = entropy - spec.target_entropy
            # MulBackward: the mean's gradient times (H - target), summed onto log-alpha's shape; ExpBackward: * alpha
            alpha_grad = (th.full_like(excess, 1.0 / excess.numel()) * excess).sum(0)
            if spec.ent_coef_loss == "tutorial":
                alpha_grad = alpha_grad * ent_coef
            ent_coef_loss = losses.temperature_loss(entropy, log_alpha, spec.target_entropy, spec.ent_coef_loss, ent_coef)
            _adam(spec.alpha_adam, log_alpha, alpha_grad, alpha_exp_avg, alpha_exp_avg_sq, scalars[4:6])
        else:
            ent_coef_loss = th.zeros((), dtype=obs.dtype)

        # 5. Soft update of the target critics (when scalars[6] is 1), rounded as the tutorial rounds it
        updated = target * (1 - spec.tau) + critic * spec.tau
        target.copy_(th.where(scalars[6] > 0, updated, target))
        return (th.stack([*critic_losses, actor_loss, ent_coef_loss, entropy.mean(), ent_coef.reshape(())]), *products.extras)

    return step


# ------------------------------------------------------------------------------------------------ compiling
class _Step(nn.Module):
    """The step function as a module, for ``torch.export``."""

    def __init__(self, function: Callable[..., tuple[th.Tensor, ...]]):
        super().__init__()
        self.function = function

    def forward(self, *inputs: th.Tensor) -> tuple[th.Tensor, ...]:
        return self.function(*inputs)


def cache_folder() -> str:
    """Where compiled packages are kept: ``sb3_tutorial_sac`` in Inductor's cache folder (``TORCHINDUCTOR_CACHE_DIR``)."""
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    return os.path.join(cache_dir(), "sb3_tutorial_sac")


def compile_step(
    spec: StepSpec,
    example_inputs: Sequence[th.Tensor],
    rewrites: frozenset[str] = REWRITES,
    inductor_configs: dict[str, Any] | None = None,
) -> tuple[Callable[[list[th.Tensor]], list], bool]:
    """
    The compiled step for ``spec``: loaded from the cache folder, else exported, compiled and stored there.

    :param rewrites: compile :func:`step_function` with these rewrites of the small products
    :param inductor_configs: Inductor options for the compilation (part of the cache key)
    :return: a function of the input list returning the outputs, and whether it was loaded from the cache
    """
    from torch._inductor import aoti_compile_and_package

    options = repr((sorted(rewrites), sorted((inductor_configs or {}).items())))
    key = hashlib.sha256(f"{spec.key()}|{options}".encode()).hexdigest()[:24]
    folder = cache_folder()
    path = os.path.join(folder, f"step-{key}.pt2")
    if os.path.exists(path):
        try:
            return _load_package(path).boxed_run, True
        except Exception:  # a package this torch cannot load: compiled again below
            with contextlib.suppress(OSError):
                os.remove(path)
    os.makedirs(folder, exist_ok=True)
    with th.inference_mode(False), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inputs = tuple(t.detach().clone() for t in example_inputs)
        exported = th.export.export(_Step(step_function(spec, rewrites)), inputs, strict=False)
        temporary = f"{path}.{os.getpid()}.tmp.pt2"
        try:
            aoti_compile_and_package(exported, package_path=temporary, inductor_configs=inductor_configs)
            os.replace(temporary, path)  # atomic: concurrent compilations of the same spec each write a whole file
        finally:
            with contextlib.suppress(OSError):
                os.remove(temporary)
    return _load_package(path).boxed_run, False


def _load_package(path: str) -> Any:
    """The package's loader (its ``boxed_run`` runs the step). ``aoti_load_package`` would first probe the CPU's vector
    extensions by compiling test programs (about a second per process); the cache key already names the CPU."""
    try:
        return th._C._aoti.AOTIModelPackageLoader(path, "model", True, 1, -1)  # run single-threaded, one runner, CPU
    except (AttributeError, TypeError):
        from torch._inductor import aoti_load_package

        return aoti_load_package(path, run_single_threaded=True).loader


# ------------------------------------------------------------------------------------------------ the engine
def _linear_spec(layer: nn.Linear, offsets: dict[int, int], relu: bool) -> LinearSpec:
    return LinearSpec(offsets[id(layer.weight)], offsets[id(layer.bias)], layer.out_features, layer.in_features, relu)


def _adam_spec(optimizer: th.optim.Optimizer) -> AdamSpec:
    group = optimizer.param_groups[0]
    return AdamSpec(float(group["betas"][0]), float(group["betas"][1]), float(group["eps"]))


def _uncompiled(spec: StepSpec) -> Callable[[list[th.Tensor]], list[th.Tensor]]:
    """:func:`step_function` run eagerly, called as a compiled package is (a list of inputs, a list of outputs)."""
    function = step_function(spec)
    return lambda inputs: list(function(*inputs))


class CompiledEngine(FastEngine):
    """
    The fast engine's update with the whole gradient step compiled once (:func:`step_function`, :func:`compile_step`).

    It is a :class:`~sb3_tutorial_sac.engines.FastEngine` (the same networks, flat buffers and Adam states, proven the
    same way) whose :meth:`step` calls the compiled function; wherever that function cannot be used (not compiled, a
    batch of another size, optimiser states one update cannot serve) it steps as the fast engine does.

    :param model: the algorithm
    :param manual: the written-out backward passes for its networks
    """

    name = "compiled"

    def __init__(self, model: TutorialSAC, manual: ManualUpdate):
        super().__init__(model, manual)
        self._compiled: Callable[[list[th.Tensor]], list] | None = None
        self._compiled_spec: StepSpec | None = None
        self.unavailable: str | None = None  # why the compiled step cannot be used (then the fast engine's is)
        self.compile_seconds: float | None = None  # the one-off cost of compiling (or loading) the step
        self.loaded_from_cache: bool | None = None
        # how the step is compiled (compile_step's options; benchmarks/engine_candidates.py compares others). One
        # thread in the generated loops: the step's tensors are small, and the package then does not depend on
        # torch's thread setting (the BLAS calls still use it)
        self.rewrites: frozenset[str] = REWRITES
        self.inductor_configs: dict[str, Any] | None = {"cpp.threads": 1}
        self._scalars_np = np.zeros(N_SCALARS, dtype=np.float32)
        self._scalars = th.from_numpy(self._scalars_np)
        self._use_compiled = False

    # -------------------------------------------------------------------------------------------- spec and inputs
    def spec(self, batch_size: int) -> StepSpec:
        """The static description of this model's step at ``batch_size``."""
        model, manual = self.model, self.manual
        actor_offsets = {id(p): o for p, o in zip(model._actor_flat.params, model._actor_flat._offsets)}
        critic_offsets = {id(p): o for p, o in zip(model._critic_flat.params, model._critic_flat._offsets)}
        optimizer = model.ent_coef_optimizer
        return StepSpec(
            batch_size=batch_size,
            obs_dim=manual.obs_dim,
            act_dim=manual.mu.out_features,
            trunk=tuple(_linear_spec(layer, actor_offsets, relu) for layer, relu in manual.trunk.layers),
            mu=_linear_spec(manual.mu, actor_offsets, False),
            std=_linear_spec(manual.std_linear, actor_offsets, False),
            softplus_beta=float(manual.softplus.beta),
            softplus_threshold=float(manual.softplus.threshold),
            critics=tuple(
                tuple(_linear_spec(layer, critic_offsets, relu) for layer, relu in critic.layers) for critic in manual.critics
            ),
            actor_size=model._actor_flat.flat.numel(),
            critic_size=model._critic_flat.flat.numel(),
            symmetric=bool(model.policy._symmetric_bounds),
            entropy_term=self.entropy_term,
            ent_coef_loss=self.ent_coef_loss,
            learn_alpha=optimizer is not None,
            target_entropy=self.target_entropy,
            tau=float(self.tau),
            actor_adam=_adam_spec(model.actor.optimizer),
            critic_adam=_adam_spec(model.critic.optimizer),
            alpha_adam=_adam_spec(optimizer) if optimizer is not None else None,
        )

    def __getstate__(self) -> dict[str, Any]:
        """Copies (``copy.deepcopy`` of a model) leave the compiled package behind: they load it at their next loop."""
        state = self.__dict__.copy()
        state["_compiled"] = state["_compiled_spec"] = None
        return state

    def _optimizers(self) -> list[tuple[th.optim.Optimizer, list[th.Tensor]]]:
        """Each optimiser with the tensors whose states it steps (one flat segment per group)."""
        model = self.model
        optimizers = [
            (model.actor.optimizer, model._actor_flat.segments),
            (model.critic.optimizer, model._critic_flat.segments),
        ]
        if model.ent_coef_optimizer is not None:
            assert model.log_ent_coef is not None
            optimizers.append((model.ent_coef_optimizer, [model.log_ent_coef]))
        return optimizers

    def _inputs(self, batch: Minibatch, noise_next: th.Tensor, noise: th.Tensor) -> list[th.Tensor]:
        """The step function's inputs (:data:`INPUTS`) for ``batch``; the persistent ones made in :meth:`loop`."""
        return [batch.observations, batch.actions, batch.next_observations, batch.rewards, batch.discounts,  # type: ignore[list-item]
                noise_next, noise, *self._persistent]  # fmt: skip

    # -------------------------------------------------------------------------------------------- proving
    def probe_difference(self, batch_size: int = 16) -> str | None:
        """
        Run one gradient step of the fast engine and one of :func:`step_function` (uncompiled) from the model's current
        state on a probe batch, with the same torch seed, and compare every parameter, Adam state, log-alpha and
        statistic bit for bit; the model is restored afterwards. This proves the step function's reading of this
        model's networks and flat buffers (offsets, heads, switches); :meth:`_compile` proves the compiled function
        against the step function.

        :return: what differs, or None when everything agrees
        """
        from sb3_tutorial_sac.guard import TrainingGuard

        model = self.model
        if model.device.type != "cpu":
            return f"it compiles for the CPU, the model is on {model.device}"
        generator = th.Generator().manual_seed(0)
        obs_dim, act_dim = self.manual.obs_dim, self.manual.mu.out_features
        batch = Minibatch(
            th.randn(batch_size, obs_dim, generator=generator),
            self.to_env_units(th.rand(batch_size, act_dim, generator=generator) * 2 - 1),
            th.randn(batch_size, obs_dim, generator=generator),
            th.randn(batch_size, 1, generator=generator),
            th.where(th.rand(batch_size, 1, generator=generator) < 0.2, 0.0, model.gamma).float(),
        )
        n_stats = len(model.critic.q_networks) + 4
        guard = TrainingGuard(model)
        snapshot = guard.snapshot()
        saved = self._compiled, self._compiled_spec, self._use_compiled
        results = []
        try:
            with th.random.fork_rng(devices=[]):
                for eager_step_function in (False, True):
                    th.manual_seed(0)
                    stats = th.zeros(n_stats)
                    if eager_step_function:
                        spec = self.spec(batch_size)
                        self._compiled, self._compiled_spec, self._use_compiled = _uncompiled(spec), spec, True
                        with FastEngine.loop(self):
                            self._persistent = self._persistent_inputs()
                            self._read_step_counts()
                            self.step(batch, stats, soft_update=True)
                            self._write_step_counts()
                    else:
                        with FastEngine.loop(self):
                            FastEngine.step(self, batch, stats, soft_update=True)
                    state = {name: tensor.detach().clone() for name, tensor in guard.tensors().items()}
                    state["statistics"] = stats
                    results.append(state)
                    TrainingGuard.restore(snapshot)
        finally:
            self._compiled, self._compiled_spec, self._use_compiled = saved
            TrainingGuard.restore(snapshot)
        expected, mine = results
        problems = [
            name
            if name not in mine or mine[name].shape != value.shape
            else f"{name} (largest difference {(mine[name] - value).abs().max().item():.3g})"
            for name, value in expected.items()
            if name not in mine or mine[name].shape != value.shape or not th.equal(mine[name], value)
        ]
        return f"its step differs from the fast engine's on a probe batch: {'; '.join(problems[:4])}" if problems else None

    # -------------------------------------------------------------------------------------------- compiling
    def _compile(self, spec: StepSpec) -> None:
        """Compile (or load) the step for ``spec`` and check it against the uncompiled step on a probe batch."""
        start = time.perf_counter()
        try:
            inputs = self._probe_inputs(spec)
            compiled, cached = compile_step(spec, inputs, self.rewrites, self.inductor_configs)
            difference = self._probe_compiled(spec, compiled, inputs)
        except Exception as error:  # no compiler, unsupported platform or torch version, compile error
            self.unavailable = f"compiling the gradient step failed ({type(error).__name__}: {str(error).strip()[:300]})"
        else:
            if difference is None:
                self._compiled, self._compiled_spec = compiled, spec
                self.compile_seconds, self.loaded_from_cache = time.perf_counter() - start, cached
                return
            self.unavailable = f"the compiled step does not agree with the uncompiled one on a probe batch: {difference}"
        warnings.warn(
            f"TutorialSAC's compiled engine cannot be used for this model: {self.unavailable}. Training uses the fast "
            "engine (the same update, bit for bit the tutorial's; slower).",
            stacklevel=5,
        )

    def _probe_inputs(self, spec: StepSpec) -> list[th.Tensor]:
        """Random inputs of the step's shapes (a probe batch), made from the model's current tensors."""
        generator = th.Generator().manual_seed(0)
        batch, obs_dim, act_dim = spec.batch_size, spec.obs_dim, spec.act_dim

        def randn(*shape: int) -> th.Tensor:
            return th.randn(*shape, generator=generator)

        observations, next_observations = randn(batch, obs_dim), randn(batch, obs_dim)
        actions = self.to_env_units(th.rand(batch, act_dim, generator=generator) * 2 - 1)
        rewards, discounts = randn(batch, 1), th.full((batch, 1), 0.99)
        persistent = [t.detach().clone() for t in self._persistent_inputs()]
        persistent[-1][6] = 1.0  # a soft update
        scalars = persistent[-1]
        scalars[0:6] = th.tensor([-3e-4, 0.03, -3e-3, 0.03, -3e-4, 0.03])
        return [observations, actions, next_observations, rewards, discounts, randn(batch, act_dim), randn(batch, act_dim),
                *persistent]  # fmt: skip

    @staticmethod
    def _probe_compiled(spec: StepSpec, compiled: Callable[[list[th.Tensor]], list], inputs: list[th.Tensor]) -> str | None:
        """Compare the compiled step with :func:`step_function` run eagerly, from the same probe inputs."""
        eager_inputs = [t.clone() for t in inputs]
        compiled_inputs = [t.clone() for t in inputs]
        with th.inference_mode():
            expected = step_function(spec)(*eager_inputs)[0]
            stats = compiled(list(compiled_inputs))[0]
        problems = []
        for name, mine, theirs in [("statistics", stats, expected), *zip(INPUTS, compiled_inputs, eager_inputs)]:
            if not th.allclose(mine, theirs, rtol=1e-4, atol=1e-6):
                problems.append(f"{name}: largest difference {(mine - theirs).abs().max().item():.3g}")
        return "; ".join(problems) if problems else None

    def _persistent_inputs(self) -> list[th.Tensor]:
        """The inputs that stay the same tensors for a whole ``train()`` call (see :meth:`loop`)."""
        model = self.model
        log_alpha = model.log_ent_coef.detach() if model.log_ent_coef is not None else model.ent_coef_tensor
        if model.ent_coef_optimizer is not None and model.log_ent_coef is not None:
            state = model.ent_coef_optimizer.state[model.log_ent_coef]
            alpha_moments = [state["exp_avg"], state["exp_avg_sq"]]
        else:
            alpha_moments = [th.zeros(1), th.zeros(1)]
        return [model.policy.action_half_range, model.policy.action_center, model._actor_flat.flat, model._critic_flat.flat,
                model._critic_target_flat.flat, log_alpha, self._actor_adam._exp_avg, self._actor_adam._exp_avg_sq,
                self._critic_adam._exp_avg, self._critic_adam._exp_avg_sq, *alpha_moments, self._scalars]  # fmt: skip

    # -------------------------------------------------------------------------------------------- the loop
    def _compiled_step_usable(self) -> bool:
        """Whether this ``train()`` call's optimiser states can be stepped by the compiled function."""
        model = self.model
        if model.device.type != "cpu" or not (self._actor_adam.prepare() and self._critic_adam.prepare()):
            return False
        if model.ent_coef_optimizer is not None:
            if not _is_plain_adam(model.ent_coef_optimizer):
                return False
            init_adam_states(model.ent_coef_optimizer)
        return all(len(optimizer.param_groups) == len(params) for optimizer, params in self._optimizers())

    def _read_step_counts(self) -> None:
        """Adam's hyperparameters and step counts, held on the host during the loop (see :meth:`_write_step_counts`)."""
        self._adam = []
        for optimizer, params in self._optimizers():
            group = optimizer.param_groups[0]
            count = int(optimizer.state[params[0]]["step"].item())
            self._adam.append([group["lr"], group["betas"][0], group["betas"][1], count])

    def _write_step_counts(self) -> None:
        for (optimizer, params), (_, _, _, count) in zip(self._optimizers(), self._adam):
            for param in params:
                optimizer.state[param]["step"].fill_(count)

    @contextlib.contextmanager
    def loop(self) -> Iterator[None]:
        self._use_compiled = self.unavailable is None and self._compiled_step_usable()
        if self._use_compiled:
            spec = self.spec(self.model.batch_size)
            if spec != self._compiled_spec:
                self._compile(spec)
            self._use_compiled = self._compiled is not None
        with super().loop():  # the fast engine's preparation, and inference mode
            if not self._use_compiled:
                yield
                return
            self._persistent = self._persistent_inputs()
            self._read_step_counts()
            try:
                yield
            finally:
                self._write_step_counts()

    def step(self, batch: Minibatch, stats: th.Tensor, soft_update: bool) -> None:
        if not self._use_compiled:
            super().step(batch, stats, soft_update)
            return
        spec = self._compiled_spec
        assert spec is not None and self._compiled is not None
        if batch.actions.shape[0] != spec.batch_size:  # a train() call with another batch size: the fast engine's step
            self._write_step_counts()
            super().step(batch, stats, soft_update)
            self._read_step_counts()
            return
        # Adam's scalars of this step, computed as torch's Adam computes them (flat._adam_update)
        scalars = self._scalars_np
        for i, entry in enumerate(self._adam):
            lr, beta1, beta2, count = entry
            count = entry[3] = count + 1
            scalars[2 * i] = -(lr / (1 - beta1**count))
            scalars[2 * i + 1] = (1 - beta2**count) ** 0.5
        scalars[6] = 1.0 if soft_update else 0.0
        # Tutorial rule: two noise draws of [batch, act] from the global generator, s' then s
        noise_next = th.empty(spec.batch_size, spec.act_dim).normal_()
        noise = th.empty(spec.batch_size, spec.act_dim).normal_()
        stats.copy_(self._compiled(self._inputs(batch, noise_next, noise))[0])
