"""In-place parameter updates of the optimizers, over flat C-contiguous arrays.

Each takes the parameter ``p``, its gradient ``g`` and the optimizer's state
arrays, all 1-D views of the same length and dtype.  Scalars are float64; the
arithmetic is done in float64 and stored back in the parameter's dtype.
"""

import numpy as np

from ._jit import kernel


@kernel
def sgd_update(p, g, lr):
    """p -= lr * g"""
    for i in range(p.shape[0]):
        p[i] -= lr * g[i]


@kernel
def momentum_update(p, g, velocity, lr, momentum):
    """velocity = momentum * velocity - lr * g;  p += velocity"""
    for i in range(p.shape[0]):
        v = momentum * velocity[i] - lr * g[i]
        velocity[i] = v
        p[i] += v


@kernel
def rmsprop_update(p, g, cache, lr, decay, eps):
    """cache = decay * cache + (1 - decay) * g^2;  p -= lr * g / (sqrt(cache) + eps)"""
    for i in range(p.shape[0]):
        s = decay * cache[i] + (1.0 - decay) * g[i] * g[i]
        cache[i] = s
        p[i] -= lr * g[i] / (np.sqrt(s) + eps)


@kernel
def adam_update(p, g, m, v, lr, beta1, beta2, eps, step):
    """Adam with bias correction at step number ``step`` (1, 2, ...).

    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
    p -= lr * (m / (1 - b1^step)) / (sqrt(v / (1 - b2^step)) + eps)
    """
    m_correction = 1.0 / (1.0 - beta1**step)
    v_correction = 1.0 / (1.0 - beta2**step)
    for i in range(p.shape[0]):
        m_i = beta1 * m[i] + (1.0 - beta1) * g[i]
        v_i = beta2 * v[i] + (1.0 - beta2) * g[i] * g[i]
        m[i] = m_i
        v[i] = v_i
        p[i] -= lr * (m_i * m_correction) / (np.sqrt(v_i * v_correction) + eps)
