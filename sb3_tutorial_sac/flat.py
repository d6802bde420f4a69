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
        self.offsets: list[int] = []  # where each parameter starts in the buffer
        offset = 0
        for param in self.params:
            numel = param.numel()
            self.offsets.append(offset)
            param.data = self.flat[offset : offset + numel].view_as(param)
            param.grad = self.flat_grad[offset : offset + numel].view_as(param)
            offset += numel
        self.segments: list[th.Tensor] = []
        first = 0
        for count in segments:
            start = self.offsets[first] if count else 0
            end = self.offsets[first + count - 1] + self.params[first + count - 1].numel() if count else 0
            segment = self.flat[start:end]
            segment.grad = self.flat_grad[start:end]
            self.segments.append(segment)
            first += count

    def is_intact(self) -> bool:
        """Whether every parameter (and its gradient) still lives in the flat buffers (``.to()`` moves them out)."""
        base, grad_base, size = self.flat.data_ptr(), self.flat_grad.data_ptr(), self.flat.element_size()
        return all(
            p.data_ptr() == base + offset * size and p.grad is not None and p.grad.data_ptr() == grad_base + offset * size
            for p, offset in zip(self.params, self.offsets)
        ) and all(segment.grad is not None for segment in self.segments)

    def repair_grads(self) -> bool:
        """
        Point the gradients back at the flat gradient buffer (after a ``zero_grad(set_to_none=True)``).

        :return: whether the parameters themselves still live in the flat buffer (if not, flatten anew)
        """
        base, size = self.flat.data_ptr(), self.flat.element_size()
        if not all(p.data_ptr() == base + offset * size for p, offset in zip(self.params, self.offsets)):
            return False
        for param, offset in zip(self.params, self.offsets):
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


def adam_update(
    param: th.Tensor,
    grad: th.Tensor,
    exp_avg: th.Tensor,
    exp_avg_sq: th.Tensor,
    neg_step_size: float | th.Tensor,
    bias_correction2_sqrt: float | th.Tensor,
    beta1: float,
    beta2: float,
    eps: float,
    reciprocal: bool = False,
) -> None:
    """
    Adam's update of one tensor, in place: the operations of ``torch.optim.adam._single_tensor_adam`` (non-capturable
    branch) in the same order, so the numbers are torch's. Written once, for :class:`FlatAdam` and the step function
    (:mod:`sb3_tutorial_sac.engines.step`), whose scalars are 0-dim tensors.

    :param neg_step_size: ``-lr / (1 - beta1 ** step)`` after this step's count
    :param bias_correction2_sqrt: ``sqrt(1 - beta2 ** step)``
    :param reciprocal: (tensor scalars only: the compiled step) multiply by ``1 / bias_correction2_sqrt`` instead of
        dividing by it, one division per element instead of two; rounded otherwise than torch's
    """
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    if isinstance(neg_step_size, th.Tensor) or isinstance(bias_correction2_sqrt, th.Tensor):
        # the scalars are tensors (a compiled step's inputs): the same operations, out of place
        if reciprocal:
            denom = exp_avg_sq.sqrt() * (1.0 / bias_correction2_sqrt) + eps
        else:
            denom = exp_avg_sq.sqrt() / bias_correction2_sqrt + eps
        param.add_(neg_step_size * exp_avg / denom)  # torch's addcdiv_ rounds value * t1 / t2 this way
        return
    assert not reciprocal, "the reciprocal is for tensor scalars (the compiled step)"
    denom = exp_avg_sq.sqrt().div_(bias_correction2_sqrt).add_(eps)
    param.addcdiv_(exp_avg, denom, value=neg_step_size)


def adam_scalars(lr: float, beta1: float, beta2: float, step: int) -> tuple[float, float]:
    """``(-step_size, sqrt(bias_correction2))`` of Adam's update number ``step``, computed as torch's Adam computes them."""
    return -(lr / (1 - beta1**step)), (1 - beta2**step) ** 0.5


def is_plain_adam(optimizer: th.optim.Optimizer) -> bool:
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


def init_adam_state(state: dict, param: th.Tensor) -> None:
    """Adam's state for ``param`` before its first step, as ``torch.optim.Adam`` creates it (non-capturable)."""
    state["step"] = th.tensor(0.0, dtype=th.get_default_dtype(), device="cpu")
    state["exp_avg"] = th.zeros_like(param, memory_format=th.preserve_format)
    state["exp_avg_sq"] = th.zeros_like(param, memory_format=th.preserve_format)


def init_adam_states(optimizer: th.optim.Optimizer) -> None:
    """Create the state of every parameter of a plain Adam that has none yet (what its first step would do)."""
    if is_plain_adam(optimizer):
        for group in optimizer.param_groups:
            for param in group["params"]:
                if len(optimizer.state[param]) == 0:
                    init_adam_state(optimizer.state[param], param)


class FlatAdam:
    """
    One Adam update for all parameter groups of ``optimizer`` at once, where the groups are the consecutive
    segments of one :class:`FlatParameters` buffer and share their hyperparameters (the critics: one group per
    critic, the tutorial's two Adams at the same learning rate). Adam is elementwise, so each element gets the
    update its own group would give it; the groups' moments become views of one buffer each (the optimiser's
    ``state_dict()`` is unchanged), and each group keeps its own step counter.

    :param optimizer: the optimiser, one group per segment of ``flat``
    :param flat: the parameters' flat buffers
    """

    def __init__(self, optimizer: th.optim.Optimizer, flat: FlatParameters):
        self.optimizer, self.flat = optimizer, flat
        self._states: list[dict] = []
        self._installed: list[tuple[th.Tensor, th.Tensor]] = []
        self._exp_avg = self._exp_avg_sq = th.empty(0)

    def prepare(self) -> bool:
        """
        Check that one update can serve every group (plain Adam, equal ``lr``, ``betas`` and ``eps``, equal step
        counts, one flat segment per group) and make the moments views of one buffer if they are not.
        Called once per ``train()``: nothing else changes the optimiser during its loop.

        :return: whether :meth:`step` may be used
        """
        optimizer, segments = self.optimizer, self.flat.segments
        groups = optimizer.param_groups
        if not is_plain_adam(optimizer) or len(groups) != len(segments) or not self.flat.is_intact():
            return False
        if any(len(group["params"]) != 1 or group["params"][0] is not segment for group, segment in zip(groups, segments)):
            return False
        if any((g["lr"], g["betas"], g["eps"]) != (groups[0]["lr"], groups[0]["betas"], groups[0]["eps"]) for g in groups):
            return False
        states = [optimizer.state[segment] for segment in segments]
        if all(len(state) == 0 for state in states):
            for state, segment in zip(states, segments):
                init_adam_state(state, segment)
        if any(set(state) != {"step", "exp_avg", "exp_avg_sq"} for state in states):
            return False
        if len({float(state["step"]) for state in states}) != 1:
            return False
        installed = len(self._states) == len(states) and all(a is b for a, b in zip(self._states, states))
        installed = installed and all(
            state["exp_avg"] is exp_avg and state["exp_avg_sq"] is exp_avg_sq
            for state, (exp_avg, exp_avg_sq) in zip(states, self._installed)
        )
        if not installed:
            with th.no_grad():
                self._exp_avg = th.cat([state["exp_avg"].reshape(-1) for state in states])
                self._exp_avg_sq = th.cat([state["exp_avg_sq"].reshape(-1) for state in states])
            self._installed = []
            start = 0
            for state, segment in zip(states, segments):
                end = start + segment.numel()
                state["exp_avg"] = self._exp_avg[start:end].view_as(segment)
                state["exp_avg_sq"] = self._exp_avg_sq[start:end].view_as(segment)
                self._installed.append((state["exp_avg"], state["exp_avg_sq"]))
                start = end
            self._states = states
        return self._exp_avg.numel() == self.flat.flat.numel()

    @property
    def exp_avg(self) -> th.Tensor:
        """The first moments of every group, one flat buffer (after :meth:`prepare`)."""
        return self._exp_avg

    @property
    def exp_avg_sq(self) -> th.Tensor:
        """The second moments of every group, one flat buffer (after :meth:`prepare`)."""
        return self._exp_avg_sq

    def step(self) -> None:
        """``optimizer.step()`` on every group at once (after :meth:`prepare` returned True), the same numbers."""
        group = self.optimizer.param_groups[0]
        beta1, beta2 = group["betas"]
        for state in self._states:
            state["step"] += 1
        neg_step_size, bias_correction2_sqrt = adam_scalars(group["lr"], beta1, beta2, int(self._states[0]["step"].item()))
        with th.no_grad():
            adam_update(self.flat.flat, self.flat.flat_grad, self._exp_avg, self._exp_avg_sq, neg_step_size,
                        bias_correction2_sqrt, beta1, beta2, group["eps"])  # fmt: skip
