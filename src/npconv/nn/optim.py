"""Optimizers with PyTorch's update rules: :class:`SGD` and :class:`Adam`.

An optimizer holds parameter groups, as ``torch.optim``: ``params`` is an iterable of
:class:`~npconv.nn.module.Parameter` objects, or of dicts ``{"params": [...], option: value}``
whose options override the constructor's for that group.  :meth:`Optimizer.step` updates each
parameter's ``.data`` in place from its ``.grad`` (parameters whose ``.grad`` is None are
skipped, and get no state); :meth:`Optimizer.zero_grad` sets every ``.grad`` to None.
"""

import math

import numpy as np

from .module import Parameter


class Optimizer:
    """Base class: parameter groups, per-parameter state, ``step()`` and ``zero_grad()``.

    A subclass validates one group's options in :meth:`_check` and updates one parameter in
    :meth:`_update`."""

    def __init__(self, params, defaults):
        name = type(self).__name__
        if isinstance(params, (Parameter, np.ndarray, dict)):
            raise TypeError(f"{name}: params must be an iterable of Parameters or of dicts, "
                            f"got a single {type(params).__name__}")
        self.defaults = dict(defaults)
        self.state = {}          # Parameter -> its state (momentum buffers, step counts)
        self.param_groups = []
        groups = list(params)
        if not groups:
            raise ValueError(f"{name}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, param_group):
        """Add a dict ``{"params": ..., option: value}``; missing options take the defaults."""
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}.add_param_group: param_group must be a dict, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError(f"{name}.add_param_group: param_group has no 'params' entry")
        params = param_group["params"]
        if isinstance(params, set):
            raise TypeError(f"{name}: parameters must be in an ordered collection, not a set "
                            "(a set's order changes between runs)")
        params = [params] if isinstance(params, Parameter) else list(params)
        for p in params:
            if not isinstance(p, Parameter):
                raise TypeError(f"{name}: can only optimize Parameters, but one of the params is "
                                f"{type(p).__name__}")
        seen = {id(p) for group in self.param_groups for p in group["params"]}
        if len({id(p) for p in params}) != len(params) or seen.intersection(id(p) for p in params):
            raise ValueError(f"{name}: some parameters appear more than once in the parameter groups")
        group = {**self.defaults, **param_group, "params": params}
        self._check(group)
        self.param_groups.append(group)

    def zero_grad(self):
        """Set every parameter's ``.grad`` to None (PyTorch's ``set_to_none=True``)."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self):
        """Update every parameter that has a gradient, in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, group, self.state.setdefault(p, {}))

    def _check(self, group):
        raise NotImplementedError

    def _update(self, param, group, state):
        raise NotImplementedError

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines.extend(f"    {key}: {value}" for key, value in sorted(group.items()) if key != "params")
        return "\n".join(lines) + "\n)"


def _nonnegative(optimizer, group, *keys):
    for key in keys:
        if not group[key] >= 0.0:
            raise ValueError(f"{optimizer}: invalid {key} value: must be >= 0, got {group[key]}")


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, as ``torch.optim.SGD``.  Per step, with
    ``g`` the gradient, ``mu`` the momentum and ``tau`` the dampening::

        g = g + weight_decay * p                       (if weight_decay != 0)
        b = g  (first step),  b = mu * b + (1 - tau) * g  (later steps)   (if mu != 0)
        g = g + mu * b  (nesterov)  or  g = b           (if mu != 0)
        p = p - lr * g
    """

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _check(self, group):
        _nonnegative("SGD", group, "lr", "momentum", "weight_decay")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"SGD: Nesterov momentum requires a momentum > 0 and zero dampening, "
                             f"got momentum={group['momentum']}, dampening={group['dampening']}")

    def _update(self, param, group, state):
        grad = param.grad
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * param.data
        momentum = group["momentum"]
        if momentum != 0:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = grad.copy()
            else:
                buffer = state["momentum_buffer"]
                buffer *= momentum
                buffer += (1 - group["dampening"]) * grad
            buffer = state["momentum_buffer"]
            grad = grad + momentum * buffer if group["nesterov"] else buffer
        param.data -= group["lr"] * grad


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015, https://arxiv.org/abs/1412.6980), as ``torch.optim.Adam``.
    Per step ``t`` (from 1), with ``g`` the gradient::

        g = g + weight_decay * p                       (if weight_decay != 0; L2, not AdamW)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        v_max = max(v_max, v)                          (amsgrad; then v_max replaces v below)
        p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad))

    def _check(self, group):
        _nonnegative("Adam", group, "lr", "eps", "weight_decay")
        for i, beta in enumerate(group["betas"]):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Adam: invalid beta parameter at index {i}: must be in [0, 1), got {beta}")

    def _update(self, param, group, state):
        beta1, beta2 = group["betas"]
        grad = param.grad
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * param.data
        if not state:
            state.update(step=0, exp_avg=np.zeros_like(param.data), exp_avg_sq=np.zeros_like(param.data))
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(param.data)
        state["step"] += 1
        step, exp_avg, exp_avg_sq = state["step"], state["exp_avg"], state["exp_avg_sq"]
        exp_avg += (1 - beta1) * (grad - exp_avg)       # PyTorch's lerp towards g
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * grad * grad
        if group["amsgrad"]:
            np.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
            exp_avg_sq = state["max_exp_avg_sq"]
        step_size = group["lr"] / (1 - beta1 ** step)
        denom = np.sqrt(exp_avg_sq) / math.sqrt(1 - beta2 ** step) + group["eps"]
        param.data -= step_size * (exp_avg / denom)
