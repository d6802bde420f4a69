"""Hand-written backward passes for ``TutorialSAC.train()`` (flat Box observations, ReLU MLPs).

With the tutorial's small networks and batch 64, a CPU gradient step is dominated by per-operation overhead,
and autograd adds its own to every operation: a graph node recorded in the forward pass, a scheduled call and
a buffer in the backward pass. Here each backward pass is written out as the kernels autograd would run, with
the derivative formulas of PyTorch's ``derivatives.yaml`` in the same order (``threshold_backward`` for ReLU,
``grad.t().mm(input)`` and ``grad.sum(0)`` for a linear layer's weight and bias, ``grad.mm(weight)`` for its
input, ``tanh_backward``, ``softplus_backward``, and where a tensor collects several gradients, the order the
autograd engine adds them in). The numbers are therefore the autograd path's, bit for bit; the test
``test_fast_path_matches_plain_module_path`` compares both after hundreds of gradient steps.

Only what the update needs is computed: the critics' parameter gradients in the critic step; in the actor
step, the gradient with respect to the action through the (updated) critics, and the actor's parameter
gradients. Any other network (other activations, layers without bias, features extractors with parameters,
more than two critics) is trained by the reference engine (:mod:`sb3_tutorial_sac.engines`). The fast engine calls
these methods in inference mode: nothing here needs autograd.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch as th
import torch.nn.functional as F
from torch import nn

from sb3_tutorial_sac import losses
from sb3_tutorial_sac.policies import TutorialActor, sample_action_entropy

_threshold_backward = th.ops.aten.threshold_backward
_tanh_backward = th.ops.aten.tanh_backward
_softplus_backward = th.ops.aten.softplus_backward


def _write_grads(weight_grad: th.Tensor, bias_grad: th.Tensor, grad: th.Tensor, layer_input: th.Tensor) -> None:
    """
    A linear layer's parameter gradients (AddmmBackward: ``grad.t().mm(input)`` and ``grad.sum(0)``), written
    into the ``.grad`` views of the flat gradient buffer. Autograd computes them into fresh (64-byte aligned)
    tensors; MKL's matrix product written at an unaligned address may sum in another order and change the
    last bit (measured for one- and two-row weights), so an unaligned weight gradient is computed into a
    fresh tensor and copied.
    """
    if weight_grad.data_ptr() % 64 == 0:
        th.mm(grad.t(), layer_input, out=weight_grad)
    else:
        weight_grad.copy_(grad.t().mm(layer_input))
    th.sum(grad, 0, out=bias_grad)


class ManualMLP:
    """
    A stack of ``Linear`` layers, each but possibly the last followed by a ReLU, with its forward pass and
    a written-out backward pass. Gradients are written into the parameters' ``.grad`` tensors (views of a
    flat gradient buffer, :class:`~sb3_tutorial_sac.flat.FlatParameters`), which they overwrite.

    :param layers: ``(linear, followed_by_relu)`` in order
    """

    def __init__(self, layers: Sequence[tuple[nn.Linear, bool]]):
        self.layers = list(layers)

    @staticmethod
    def from_sequential(sequential: nn.Module) -> ManualMLP | None:
        """
        :param sequential: ``nn.Sequential`` of ``Linear`` (with bias) and ``ReLU`` modules
        :return: the stack, or None if it holds anything else (then autograd is used)
        """
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
        return ManualMLP(layers)

    def forward(self, x: th.Tensor) -> list[th.Tensor]:
        """
        :param x: input ``[batch, in]``
        :return: ``[x, output of layer 1, ..., output of the last layer]`` (after ReLU where there is one)
        """
        outputs = [x]
        for linear, relu in self.layers:
            x = F.linear(x, linear.weight, linear.bias)
            if relu:
                x = F.relu(x)
            outputs.append(x)
        return outputs

    def backward(self, grad: th.Tensor, outputs: list[th.Tensor], params: bool, input_grad: bool) -> th.Tensor | None:
        """
        Back-propagate ``grad`` (the gradient of the last output) through the stack.

        :param grad: gradient with respect to ``outputs[-1]``
        :param outputs: what :meth:`forward` returned
        :param params: write the weights' and biases' gradients into their ``.grad``
        :param input_grad: return the gradient with respect to the input
        :return: the gradient with respect to the input, or None
        """
        last = len(self.layers) - 1
        for i in range(last, -1, -1):
            linear, relu = self.layers[i]
            if relu:  # ReluBackward: threshold_backward(grad, result, 0)
                grad = _threshold_backward(grad, outputs[i + 1], 0)
            if params:  # AddmmBackward: weight grad.t().mm(input) (the weight is mat2 transposed), bias grad.sum(0)
                weight_grad, bias_grad = linear.weight.grad, linear.bias.grad
                assert weight_grad is not None and bias_grad is not None
                _write_grads(weight_grad, bias_grad, grad, outputs[i])
            if i > 0 or input_grad:
                grad = grad.mm(linear.weight)
        return grad if input_grad else None


def minimum_backward(
    grad: th.Tensor, first: th.Tensor, second: th.Tensor, half_grad: th.Tensor | None = None
) -> tuple[th.Tensor, th.Tensor]:
    """
    The gradients of ``th.minimum(first, second)``: ties split the gradient in halves, as autograd does.

    :param half_grad: ``grad / 2`` if already at hand
    """
    shared = th.where(first == second, grad / 2 if half_grad is None else half_grad, grad)
    return shared.masked_fill(first > second, 0), shared.masked_fill(first < second, 0)


class ManualUpdate:
    """
    The critic, actor and temperature steps of ``TutorialSAC.train()`` with written-out backward passes. It holds
    the modules themselves (their parameters are read at each call); ``TutorialSAC`` builds it anew when the
    parameters move (``policy.to(device)``), which also replaces ``half_range``.

    :param actor_trunk: the actor's ``latent_pi``
    :param mu: the mean head
    :param std_linear: the linear layer of the std head ``Sequential(Linear, Softplus)``
    :param softplus: its Softplus
    :param critics: the critics' ``q_networks``
    :param obs_dim: width of the (flat) observation
    :param to_env_units: squashed actions to the env's units (``center + half_range * a``)
    :param half_range: the Box's half ranges (the derivative of ``to_env_units``)
    """

    def __init__(
        self,
        actor_trunk: ManualMLP,
        mu: nn.Linear,
        std_linear: nn.Linear,
        softplus: nn.Softplus,
        critics: list[ManualMLP],
        obs_dim: int,
        to_env_units: Callable[[th.Tensor], th.Tensor],
        half_range: th.Tensor,
    ):
        self.trunk = actor_trunk
        self.mu, self.std_linear, self.softplus = mu, std_linear, softplus
        self.critics = critics
        self.obs_dim = obs_dim
        self.to_env_units = to_env_units
        self.half_range = half_range
        self._constants: dict[tuple, tuple[th.Tensor, th.Tensor, th.Tensor]] = {}

    def _mean_grads(self, like: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """MeanBackward's gradient ``1 / N``, its negation and half of that for a batch like ``like``
        (constants, made once per shape, device and dtype; never written to)."""
        key = (like.shape, like.device, like.dtype)
        if key not in self._constants:
            grad_mean = th.full_like(like, 1.0 / like.numel())
            self._constants[key] = (grad_mean, -grad_mean, (-grad_mean) / 2)
        return self._constants[key]

    @staticmethod
    def build(
        actor: TutorialActor,
        q_networks: Sequence[nn.Module],
        obs_dim: int,
        to_env_units: Callable[[th.Tensor], th.Tensor],
        half_range: th.Tensor,
    ) -> ManualUpdate | str:
        """
        :return: the manual update for these networks, or why they are not covered: it writes out plain ReLU MLPs
            (``nn.Sequential`` of ``Linear`` with bias and ``ReLU``) with the tutorial's heads and one or two critics
        """
        trunk = ManualMLP.from_sequential(actor.latent_pi)
        critics = [ManualMLP.from_sequential(q_net) for q_net in q_networks]
        std = list(actor.std.children()) if type(actor.std) is nn.Sequential else []
        if trunk is None or any(not relu for _, relu in trunk.layers):
            return "the written-out backward passes cover an actor trunk of Linear + ReLU layers (nn.Sequential)"
        if type(actor.mu) is not nn.Linear or actor.mu.bias is None:
            return f"the written-out backward passes cover a Linear mean head, the actor's is {type(actor.mu).__name__}"
        if len(std) != 2 or type(std[0]) is not nn.Linear or std[0].bias is None or type(std[1]) is not nn.Softplus:
            return "the written-out backward passes cover the tutorial's std head nn.Sequential(Linear, Softplus)"
        if not 1 <= len(critics) <= 2:
            return f"the written-out backward passes cover one or two critics, this model has {len(critics)}"
        manual_critics = [critic for critic in critics if critic is not None]
        if len(manual_critics) != len(critics) or any(critic.layers[-1][1] for critic in manual_critics):
            return "the written-out backward passes cover critics of Linear + ReLU layers (nn.Sequential), a Linear last"
        return ManualUpdate(trunk, actor.mu, std[0], std[1], manual_critics, obs_dim, to_env_units, half_range)

    def critic_step_grads(self, obs: th.Tensor, actions: th.Tensor, target_q: th.Tensor) -> list[th.Tensor]:
        """
        Forward each critic on ``cat(obs, actions)`` and write the gradient of its MSE against ``target_q``
        into its parameters' ``.grad`` (overwritten).

        :return: the MSE of each critic (0-dim tensors)
        """
        q_input = th.cat([obs, actions], dim=1)
        losses = []
        for critic in self.critics:
            outputs = critic.forward(q_input)
            q = outputs[-1]
            losses.append(F.mse_loss(q, target_q))
            # MseLossBackward (mean): (2 / N) * (q - y) * grad, with grad = 1
            grad = (q - target_q) * (2.0 / q.numel())
            critic.backward(grad, outputs, params=True, input_grad=False)
        return losses

    def actor_step_grads(self, obs: th.Tensor, ent_coef: th.Tensor, entropy_term: str) -> tuple[th.Tensor, th.Tensor]:
        """
        The actor step's forward pass (noise draw, the tutorial's entropy term, the critics on the squashed
        action in env units) and the gradient of ``mean(-alpha * H - min Q)`` written into the actor's ``.grad``.

        :return: the actor loss (0-dim) and ``H`` (``[batch, 1]``)
        """
        trunk_outputs = self.trunk.forward(obs)
        latent = trunk_outputs[-1]
        mu = F.linear(latent, self.mu.weight, self.mu.bias)
        std_pre = F.linear(latent, self.std_linear.weight, self.std_linear.bias)
        std = F.softplus(std_pre, self.softplus.beta, self.softplus.threshold)
        # the forward pass of sample_action_entropy, keeping what the backward pass needs
        saved: dict[str, th.Tensor] = {}
        action, entropy = sample_action_entropy(mu, std, entropy_term, saved)  # type: ignore[arg-type]
        eps, diff, var2, ratio = saved["eps"], saved["diff"], saved["var2"], saved["ratio"]
        log_prob, squash, inside = saved["log_prob"], saved["squash"], saved["inside"]
        q_input = th.cat([obs, self.to_env_units(action)], dim=1)
        critic_outputs = [critic.forward(q_input) for critic in self.critics]
        q_values = [outputs[-1] for outputs in critic_outputs]
        min_q = th.minimum(q_values[0], q_values[1]) if len(q_values) == 2 else q_values[0]
        neg_ent_coef = -ent_coef
        actor_loss = losses.actor_loss(ent_coef, entropy, min_q)

        # Backward, in autograd's formulas. MeanBackward: grad / N; SubBackward: +grad, -grad
        grad_mean, grad_min_q, half_grad_min_q = self._mean_grads(entropy)
        grad_entropy = grad_mean * neg_ent_coef
        grads_q: tuple[th.Tensor, ...]
        if len(q_values) == 2:
            grads_q = minimum_backward(grad_min_q, q_values[0], q_values[1], half_grad_min_q)
        else:
            grads_q = (grad_min_q,)
        # the critics' input gradients add up in cat's input, then the action's columns (CatBackward)
        grads_input = []
        for critic, grad_q, outputs in zip(self.critics, grads_q, critic_outputs):
            grad_q_input = critic.backward(grad_q, outputs, params=False, input_grad=True)
            assert grad_q_input is not None
            grads_input.append(grad_q_input)
        grad_input = grads_input[0] if len(grads_input) == 1 else grads_input[0] + grads_input[1]
        grad_action = grad_input[:, self.obs_dim :] * self.half_range
        # entropy = -(log_prob - log(1 - squash^2 + eps)) [summed over dims]
        if grad_entropy.shape != log_prob.shape:
            grad_entropy = grad_entropy.expand(log_prob.shape)
        # Negation is exact, so -(-g) is g and (-a) * b is a * (-b) bit for bit: autograd's formulas are kept
        # with fewer operations. NegBackward, SubBackward: d log_prob = -dH, d log(inside) = dH
        grad_log_prob = -grad_entropy
        grad_inside = grad_entropy / inside  # LogBackward
        grad_squash = grad_inside * (squash * -2.0)  # RsubBackward (-), PowBackward (2 * squash)
        if entropy_term == "tutorial":
            grad_action = grad_action + _tanh_backward(grad_squash, squash)
        else:
            grad_action = grad_action + grad_squash
        grad_u = _tanh_backward(grad_action, action)
        # log_prob = -(u - mu)^2 / (2 * std^2) - log(std) - log(sqrt(2 pi))
        grad_neg_diff_sq = grad_log_prob / var2
        # DivBackward, other: -grad * ((self / other) / other), where self / other is the forward's ratio
        grad_var2 = grad_entropy * (ratio / var2)
        grad_std_log = grad_entropy / std  # SubBackward (-), LogBackward
        grad_std_var = (grad_var2 * 2) * (2.0 * std)  # MulBackward (2 *), PowBackward (2 * std)
        grad_diff = grad_neg_diff_sq * (diff * -2.0)  # NegBackward, PowBackward (2 * diff)
        grad_u = grad_u + grad_diff
        grad_mu = grad_u - grad_diff  # SubBackward (u - mu): -grad_diff, added to u's gradient
        # std collects three gradients, in the order the autograd engine adds them
        grad_std = (grad_std_log + grad_std_var) + grad_u * eps
        grad_std_pre = _softplus_backward(grad_std, std_pre, self.softplus.beta, self.softplus.threshold)

        for linear, grad in ((self.mu, grad_mu), (self.std_linear, grad_std_pre)):
            weight_grad, bias_grad = linear.weight.grad, linear.bias.grad
            assert weight_grad is not None and bias_grad is not None
            _write_grads(weight_grad, bias_grad, grad, latent)
        grad_latent = grad_mu.mm(self.mu.weight) + grad_std_pre.mm(self.std_linear.weight)
        self.trunk.backward(grad_latent, trunk_outputs, params=True, input_grad=False)
        return actor_loss, entropy

    @staticmethod
    def temperature_step_grads(
        entropy: th.Tensor, log_ent_coef: th.Tensor, target_entropy: float, form: str, alpha: th.Tensor | None = None
    ) -> th.Tensor:
        """
        The temperature loss and the gradient of log-alpha, written into ``log_ent_coef.grad``.

        :param entropy: ``H`` of the actor step, ``[batch, 1]``
        :param log_ent_coef: log-alpha (shape ``[1]``)
        :param target_entropy: the target entropy
        :param form: ``"tutorial"``: ``mean((H - target) * exp(log_alpha))``; ``"sb3"``: ``mean(log_alpha * (H - target))``
        :param alpha: ``exp(log_alpha)`` if already at hand (the same operation on the same value)
        :return: the loss (0-dim)
        """
        excess = entropy - target_entropy
        grad_mean = th.full_like(excess, 1.0 / excess.numel())
        # MulBackward: grad * (H - target), summed over the batch onto log-alpha's shape (broadcast)
        grad = (grad_mean * excess).sum(0)
        if form == "tutorial":
            if alpha is None:
                alpha = log_ent_coef.exp()
            grad = grad * alpha  # ExpBackward: grad * exp(log_alpha)
        loss = losses.temperature_loss(entropy, log_ent_coef, target_entropy, form, alpha)
        if log_ent_coef.grad is not None and log_ent_coef.grad.shape == grad.shape:
            log_ent_coef.grad.copy_(grad)  # keeps the .grad made outside inference mode (train())
        else:
            log_ent_coef.grad = grad
        return loss
