"""Optimizers: ``step()`` updates every ``model.params[k]`` in place from
``model.grads[k]`` with a compiled kernel.  ``lr`` may be changed between steps.

State (velocities, moments) is kept per parameter name; ``state_dict()`` and
``load_state_dict()`` save and restore it for checkpoints.
"""

import numpy as np

from .kernels.optim import adam_update, momentum_update, rmsprop_update, sgd_update

__all__ = ["Optimizer", "SGD", "SGDM", "RMSProp", "Adam"]


class Optimizer:
    """Base class: walks the model's parameters and applies ``_update``."""

    state_names = ()

    def __init__(self, model, lr=1e-4):
        self.net = model
        self.lr = lr
        self.state = {}

    def step(self):
        """Update every parameter of the model from its gradient, in place.

        All gradients are checked before any parameter changes.
        """
        pairs = []
        for key in self.net.params:
            param, grad = self.net.params[key], self.net.grads[key]
            if grad is None:
                raise RuntimeError(f"{key}: no gradient; call the model's backward before step()")
            if grad.shape != param.shape:
                raise ValueError(f"{key}: expected a gradient of shape {param.shape}, "
                                 f"got {grad.shape}")
            pairs.append((key, param, grad))
        self._count_step()
        for key, param, grad in pairs:
            slots = self.state.get(key)
            if slots is None:
                slots = [np.zeros(param.size, dtype=param.dtype) for _ in self.state_names]
                self.state[key] = slots
            flat_grad = np.ascontiguousarray(grad, dtype=param.dtype).reshape(-1)
            if param.flags.c_contiguous:
                self._update(param.reshape(-1), flat_grad, *slots)
            else:
                # Update a contiguous copy, then write it back: the caller's array
                # (maybe a strided view) is changed in place all the same.
                flat = np.ascontiguousarray(param).reshape(-1)
                self._update(flat, flat_grad, *slots)
                param[...] = flat.reshape(param.shape)

    def _count_step(self):
        """Hook for optimizers that count steps (Adam's bias correction)."""

    def state_dict(self):
        """Hyper-parameters and per-parameter state, as plain values and arrays."""
        return {"lr": self.lr,
                "state": {k: [s.copy() for s in slots] for k, slots in self.state.items()}}

    def load_state_dict(self, saved):
        self.lr = saved["lr"]
        self.state = {k: [np.array(s, copy=True) for s in slots]
                      for k, slots in saved["state"].items()}


class SGD(Optimizer):
    """p -= lr * g"""

    def _update(self, p, g):
        sgd_update(p, g, float(self.lr))


class SGDM(Optimizer):
    """SGD with momentum: v = momentum * v - lr * g;  p += v"""

    state_names = ("velocity",)

    def __init__(self, model, lr=1e-4, momentum=0.0):
        super().__init__(model, lr)
        self.momentum = momentum

    def _update(self, p, g, velocity):
        momentum_update(p, g, velocity, float(self.lr), float(self.momentum))


class RMSProp(Optimizer):
    """cache = decay * cache + (1 - decay) * g^2;  p -= lr * g / (sqrt(cache) + eps)"""

    state_names = ("cache",)

    def __init__(self, model, lr=1e-2, decay=0.99, eps=1e-8):
        super().__init__(model, lr)
        self.decay = decay
        self.eps = eps

    def _update(self, p, g, cache):
        rmsprop_update(p, g, cache, float(self.lr), float(self.decay), float(self.eps))


class Adam(Optimizer):
    """Adam with bias correction; ``t`` counts the steps taken."""

    state_names = ("m", "v")

    def __init__(self, model, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(model, lr)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.t = 0

    def _count_step(self):
        self.t += 1

    def _update(self, p, g, m, v):
        adam_update(p, g, m, v, float(self.lr), float(self.beta1), float(self.beta2),
                    float(self.eps), float(self.t))

    def state_dict(self):
        saved = super().state_dict()
        saved["t"] = self.t
        return saved

    def load_state_dict(self, saved):
        super().load_state_dict(saved)
        self.t = int(saved["t"])
