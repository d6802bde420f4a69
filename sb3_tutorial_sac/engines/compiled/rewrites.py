"""The compiled engine's rewrites of the step: how the written-out step (:func:`~sb3_tutorial_sac.engines.step.step_function`)
is changed for compiling, and nothing that the eager engines run.

* :class:`FusedProducts`: the step's products with the small ones (a dimension of at most 8) written as fused
  pointwise products and sums, the large ones of both critics as one batched product each (:class:`_Ensemble`), the
  ensemble's products optionally as the AVX-512 kernel of :mod:`~sb3_tutorial_sac.engines.compiled.kernels`; which of
  them is made is a set of names (:data:`REWRITES`);
* :func:`loop_function`: the step inside torch's ``while_loop`` over all steps of a ``train()`` call
  (:data:`LOOP_INPUTS`), the function the compiled engine exports and compiles.

Run eagerly without rewrites, both are the fast engine's step, bit for bit (``tests/test_compiled_engine.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch as th
from torch.nn import functional as F

from sb3_tutorial_sac.engines.compiled import kernels, torch_privates
from sb3_tutorial_sac.engines.step import (
    INPUTS,
    N_SCALARS,
    STATISTICS,
    LinearSpec,
    Products,
    StepSpec,
    step_function,
)

# Input order of the loop function (loop_function): the minibatch columns of all steps stacked ([steps, batch, ...]),
# the noise of all steps ([steps, 2, batch, act]: s' then s), the scalars of all steps ([steps, N_SCALARS]), then the
# step's persistent inputs; of these, the training state (the parameters, log-alpha and Adam's moments) is updated
LOOP_INPUTS = (*INPUTS[:5], "noise", "scalars", *INPUTS[7:19])
CARRIED_STATE = INPUTS[9:19]


# Matrix products with a dimension this small are written as fused pointwise products and sums when compiling: as
# calls into the BLAS most of their cost is the call (a step has 33 of them and 12 large ones)
_SMALL = 8


# The rewrites FusedProducts can make: "out1" a linear layer of one output (a critic's last layer, a head of one action) as a
# row-wise sum, "outer" a product of inner dimension 1 as a broadcast product, "row" a product of one row (the weight
# gradient of such a layer) as a column-wise sum, "col1" a product of one column (the gradient with respect to one
# action column) as a row-wise sum, "cols_t" the weight gradient of a layer of at most 8 inputs (the first layers) as
# a sum over the batch. Inductor vectorises all five over the 128 contiguous features.
#
# Compiled by default too, each measured faster per compiled step (the changelog's benchmark record, issue 22):
# "bias_after", a linear layer's product without its bias (mm, not addmm), the bias added in the fused loop that follows
# (addmm copies the bias into its output and has the BLAS scale it, two more passes over the output); "ensemble", the
# two critics (and the two target critics) as one product per layer (``bmm`` over a strided [2, out, in] view of both
# critics' weights in the flat buffer, as SBX's vmapped critics), so that the pointwise work of both critics runs in the
# same loops; "in_t" and "ensemble_in_t", a first layer (at most 8 inputs: the actor's trunk, the critics') as a sum of
# broadcast products from the weight's columns stored once as rows, vectorised over the contiguous outputs, instead of a
# BLAS call of inner dimension 3 or 4; "adam_reciprocal", Adam's division by sqrt(bias_correction2) as a product with
# its reciprocal (one division per parameter instead of two; rounded otherwise). These three were measured faster
# together (issue 22). "avx512_bmm", the ensemble's large
# products as the AVX-512 kernel of engines.compiled.kernels (torch.bmm in Python; the compiled engine leaves it out where the
# kernel cannot be built, e.g. without AVX-512).
#
# Rewrites measured no faster than what they replace were dropped (the changelog's benchmark record, issue 34): "in" (a
# first layer read by strided columns), "cols" (a product of at most 8 columns as a sum), "ensemble_mm" (one BLAS
# product per critic).
REWRITES = frozenset(
    {"out1", "outer", "row", "col1", "cols_t", "bias_after", "ensemble", "in_t", "ensemble_in_t", "adam_reciprocal",
     "avx512_bmm"}
)  # fmt: skip


class FusedProducts(Products):
    """
    :class:`~sb3_tutorial_sac.engines.step.Products` for compiling: with ``rewrites`` (:data:`REWRITES`), a product
    with a dimension of at most 8 (the observation and action columns, a critic's output, the heads) becomes broadcast
    products and sums that Inductor fuses with the operations around them, and the critics run as one ensemble
    (``"ensemble"``); the same mathematics, rounded otherwise. :func:`products_for` gives the plain class for no
    rewrites.
    """

    fused = True

    def __init__(self, rewrites: frozenset[str]):  # not Products.__init__: linear and mm stay this class's methods
        self.rewrites = rewrites
        self.reciprocal = "adam_reciprocal" in rewrites
        # tensors the step function returns besides its statistics, so that Inductor stores them once (see "in_t")
        self.extras: list[th.Tensor] = []

    def params(self, layer: LinearSpec, flat: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """``layer``'s weight and bias in ``flat`` (:meth:`LinearSpec.params`: views made in the compiled function)."""
        return layer.params(flat)

    def ensemble(self, critics: Sequence[Sequence[LinearSpec]]) -> _Ensemble | None:
        """Both critics as one batched product per layer (``"ensemble"``; the eager step runs them one by one, as
        autograd), where they have the same layers."""
        if "ensemble" in self.rewrites and ensemble_ready(critics):
            return _Ensemble(critics, self.rewrites, self.extras)
        return None

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
        if "col1" in self.rewrites and n == 1:
            return (a.unsqueeze(2) * b.unsqueeze(0)).sum(1)
        if "cols_t" in self.rewrites and n <= _SMALL and a.stride(0) == 1:
            # a weight gradient grad.t() @ input of a layer of few inputs: the sum over the batch vectorised over the
            # contiguous features of grad, transposed at the end
            return (b.unsqueeze(2) * a.t().unsqueeze(1)).sum(0).t()
        if "avx512_bmm" in self.rewrites and min(m, k, n) > _SMALL:
            # the AVX-512 kernel of engines.compiled.kernels as for the critics' ensemble (_Ensemble.mm), on a batch of one
            return kernels.avx512_bmm(a.unsqueeze(0), (b if 1 in b.stride() else b.contiguous()).unsqueeze(0))[0]
        return a.mm(b)


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
    products written as broadcast products and sums as :class:`FusedProducts` writes them."""

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
        if "bias_after" in self.rewrites:
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
        if "avx512_bmm" in self.rewrites:
            # torch.bmm, which the compiled package runs as the AVX-512 kernel of engines.compiled.kernels; it reads b by
            # rows or, a transposed weight, by 16x16 blocks transposed into its panels
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


def products_for(rewrites: frozenset[str]) -> Products:
    """The products of one step function under ``rewrites``: the plain ones (the fast engine's) when there are none."""
    return FusedProducts(rewrites) if rewrites else Products()


def loop_function(spec: StepSpec, rewrites: frozenset[str] = frozenset()) -> Callable[..., tuple[th.Tensor]]:
    """
    All gradient steps of one ``train()`` call as one function of the tensors :data:`LOOP_INPUTS`: :func:`step_function`
    in a ``while_loop`` over the stacked minibatches, noise and scalars, for compiling once (a compiled package then
    runs a whole ``train()`` call in one call: no Python, no argument handling and no allocation of the results
    between steps, as SBX's jitted loop). The training state is updated in place; the statistics ``[steps, n]`` are
    returned. The numbers are :func:`step_function`'s under the same rewrites (run eagerly without rewrites: the fast
    engine's, bit for bit; ``tests/test_compiled_engine.py``).

    :param spec: the model's step
    :param rewrites: the rewrites of :func:`step_function`
    """
    # the operator itself: torch's while_loop() would first trace the loop with TorchDynamo (at every compile); the
    # operator is traced as the rest of the function is (torch.export's non-strict tracing)
    while_loop_op = torch_privates.while_loop_op()

    n_stats = len(spec.critics) + len(STATISTICS)
    extra_shapes = _extra_shapes(spec, rewrites)

    # what the loop carries from step to step: the step counter, the training state, the statistics, the extras
    n_carried = 1 + len(CARRIED_STATE) + 1 + len(extra_shapes)

    def more(*carried_and_given: th.Tensor) -> th.Tensor:
        counter, stacked_observations = carried_and_given[0], carried_and_given[n_carried]
        return counter < stacked_observations.shape[0]

    def one_step(*carried_and_given: th.Tensor) -> tuple[th.Tensor, ...]:
        counter, *carried = carried_and_given[:n_carried]
        obs, actions, next_obs, rewards, discounts, noise, scalars, half_range, center = carried_and_given[n_carried:]
        # the step updates the state in place; a loop's body may not change what it is given: copies, which
        # Inductor turns into the updated buffers the next step reads
        state = [tensor.clone() for tensor in carried[: len(CARRIED_STATE)]]
        index = counter.reshape(1)

        def this_step(stacked: th.Tensor) -> th.Tensor:
            return stacked.index_select(0, index).squeeze(0)

        step_noise = this_step(noise)
        # a step function of its own for each trace: its Products collects the tensors it returns besides the row
        outputs = step_function(spec, products_for(rewrites))(
            this_step(obs), this_step(actions), this_step(next_obs), this_step(rewards), this_step(discounts),
            step_noise[0], step_noise[1], half_range, center, *state, this_step(scalars),
        )  # fmt: skip
        statistics = carried[len(CARRIED_STATE)].index_put((index,), outputs[0].unsqueeze(0))
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
        for tensor, updated in zip(state, final[1 : 1 + len(CARRIED_STATE)]):
            tensor.copy_(updated)  # the state, written back once
        return (final[1 + len(CARRIED_STATE)],)

    return loop


def _extra_shapes(spec: StepSpec, rewrites: frozenset[str]) -> list[tuple[int, ...]]:
    """The shapes of the tensors :func:`step_function` returns after its statistics, from a run on fake tensors (no
    arithmetic)."""
    FakeTensorMode = torch_privates.fake_tensor_mode()

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
        outputs = step_function(spec, products_for(rewrites))(*(th.empty(shapes[name]) for name in INPUTS))
    return [tuple(output.shape) for output in outputs[1:]]
