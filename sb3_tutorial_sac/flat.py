"""Flat parameter buffers: one optimiser update and one soft update per network instead of one per tensor.

With the tutorial's small networks and batch 64, a CPU gradient step is dominated by per-operation overhead,
and a ``torch.optim.Adam`` step over a dozen small tensors costs a dozen times a handful of operations. Here
the parameters of a network become views of one contiguous buffer (and their gradients views of a second),
so that the optimiser sees one tensor per parameter group. Adam's update is elementwise, so this changes no
number: the update of each element is the one it would get as part of its own tensor.
"""

from collections.abc import Sequence

import torch as th
from torch import nn


class FlatParameters:
    """
    Re-home ``params`` into one flat buffer: each parameter's ``.data`` and ``.grad`` become views of
    ``self.flat`` and ``self.flat_grad``. ``segments`` cut the buffer into consecutive parts (one per
    optimiser parameter group, e.g. one per critic), each a leaf tensor whose ``.grad`` is the matching slice
    of ``self.flat_grad``.

    :param params: parameters to re-home, in order
    :param segments: number of parameters in each segment, in order (default: one segment)
    """

    def __init__(self, params: Sequence[nn.Parameter], segments: Sequence[int] | None = None):
        self.params = list(params)
        if segments is None:
            segments = [len(self.params)]
        if sum(segments) != len(self.params):
            raise ValueError(f"segments {list(segments)} do not add up to {len(self.params)} parameters")
        with th.no_grad():
            self.flat = th.cat([p.detach().reshape(-1) for p in self.params])
        self.flat_grad = th.zeros_like(self.flat)
        self._offsets: list[int] = []
        offset = 0
        for param in self.params:
            numel = param.numel()
            self._offsets.append(offset)
            param.data = self.flat[offset : offset + numel].view_as(param)
            param.grad = self.flat_grad[offset : offset + numel].view_as(param)
            offset += numel
        self.segments: list[th.Tensor] = []
        first = 0
        for count in segments:
            start = self._offsets[first] if count else 0
            end = self._offsets[first + count - 1] + self.params[first + count - 1].numel() if count else 0
            segment = self.flat[start:end]
            segment.grad = self.flat_grad[start:end]
            self.segments.append(segment)
            first += count

    def is_intact(self) -> bool:
        """Whether every parameter (and its gradient) still lives in the flat buffers (``.to()`` moves them out)."""
        base, grad_base, size = self.flat.data_ptr(), self.flat_grad.data_ptr(), self.flat.element_size()
        return all(
            p.data_ptr() == base + offset * size and p.grad is not None and p.grad.data_ptr() == grad_base + offset * size
            for p, offset in zip(self.params, self._offsets)
        ) and all(segment.grad is not None for segment in self.segments)

    def repair_grads(self) -> bool:
        """
        Point the gradients back at the flat gradient buffer (after a ``zero_grad(set_to_none=True)``).

        :return: whether the parameters themselves still live in the flat buffer (if not, flatten anew)
        """
        base, size = self.flat.data_ptr(), self.flat.element_size()
        if not all(p.data_ptr() == base + offset * size for p, offset in zip(self.params, self._offsets)):
            return False
        for param, offset in zip(self.params, self._offsets):
            param.grad = self.flat_grad[offset : offset + param.numel()].view_as(param)
        for segment in self.segments:
            start = (segment.data_ptr() - base) // size
            segment.grad = self.flat_grad[start : start + segment.numel()]
        return True

    def zero_grad(self) -> None:
        """Zero every gradient at once (they stay views of the flat gradient; never set them to None)."""
        self.flat_grad.zero_()


def rehome_optimizer(optimizer: th.optim.Optimizer, old: Sequence[Sequence[th.Tensor]], new: Sequence[th.Tensor]) -> None:
    """
    Point each parameter group of ``optimizer`` at its new flat segment, concatenating the state the group
    had for its old tensors (Adam's moments; scalar states such as ``step`` are taken from the first one).

    :param optimizer: optimiser whose parameter group ``i`` holds the tensors ``old[i]``
    :param old: the tensors of each group before
    :param new: one flat tensor per group after, in the same element order
    """
    if len(optimizer.param_groups) != len(new):
        raise ValueError(f"the optimizer has {len(optimizer.param_groups)} parameter groups, {len(new)} segments given")
    for group, old_tensors, segment in zip(optimizer.param_groups, old, new):
        states = [optimizer.state.pop(t, {}) for t in old_tensors]
        if states and all(states):
            merged = {}
            for key, value in states[0].items():
                if isinstance(value, th.Tensor) and value.dim() > 0 and value.shape == old_tensors[0].shape:
                    # per-element state (Adam's moments): concatenated in the segment's element order
                    merged[key] = th.cat([s[key].reshape(-1) for s in states]).to(segment.device)
                else:
                    # per-tensor state (Adam's step count): the same for every tensor of the group
                    merged[key] = value
            optimizer.state[segment] = merged
        group["params"] = [segment]


def _is_plain_adam(optimizer: th.optim.Optimizer) -> bool:
    """Whether ``optimizer`` is a ``torch.optim.Adam`` with the options whose update :func:`adam_step` writes out."""
    if type(optimizer) is not th.optim.Adam:
        return False
    return all(
        not group.get("amsgrad", False)
        and not group.get("maximize", False)
        and group.get("weight_decay", 0) == 0
        and not group.get("fused", False)
        and not group.get("capturable", False)
        and not group.get("differentiable", False)
        and not group.get("decoupled_weight_decay", False)
        and not isinstance(group["lr"], th.Tensor)
        for group in optimizer.param_groups
    )


def adam_step(optimizer: th.optim.Optimizer) -> None:
    """
    ``optimizer.step()`` for a plain ``torch.optim.Adam``, without its per-call bookkeeping.

    The operations are those of ``torch.optim.adam._single_tensor_adam`` (non-capturable branch) in the same
    order, on the same state tensors, so the numbers are identical and ``optimizer.state_dict()`` stays a
    regular Adam state. Any other optimiser, or Adam with options this does not write out (amsgrad,
    weight decay, fused, ...), goes through its own ``step()``.

    :param optimizer: the optimiser to step
    """
    if not _is_plain_adam(optimizer):
        optimizer.step()
        return
    state = optimizer.state
    with th.no_grad():
        for group in optimizer.param_groups:
            beta1, beta2 = group["betas"]
            lr, eps = group["lr"], group["eps"]
            for param in group["params"]:
                grad = param.grad
                if grad is None:
                    continue
                param_state = state[param]
                if len(param_state) == 0:
                    param_state["step"] = th.tensor(0.0, dtype=th.get_default_dtype(), device="cpu")
                    param_state["exp_avg"] = th.zeros_like(param, memory_format=th.preserve_format)
                    param_state["exp_avg_sq"] = th.zeros_like(param, memory_format=th.preserve_format)
                step_t, exp_avg, exp_avg_sq = param_state["step"], param_state["exp_avg"], param_state["exp_avg_sq"]
                step_t += 1
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                step = step_t.item()
                bias_correction1 = 1 - beta1**step
                bias_correction2 = 1 - beta2**step
                step_size = lr / bias_correction1
                bias_correction2_sqrt = bias_correction2**0.5
                denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
                param.addcdiv_(exp_avg, denom, value=-step_size)
