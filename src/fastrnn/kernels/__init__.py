"""Compiled kernels: plain Numba functions of arrays that write into preallocated
outputs.  No Python objects, no validation (callers in :mod:`fastrnn.layer_utils`
check every shape, dtype and index first: compiled code does no bounds checks).

- ``activations``: vectorisable exp / sigmoid / tanh used by the gate passes.
- ``lstm``, ``vanilla``: forward and backward over a whole sequence.
- ``weight_grads``: the after-the-loop GEMMs shared by both cells.
- ``softmax``: masked softmax cross-entropy, loss and gradient in one pass.
- ``embedding``: lookup and scatter-add.
- ``optim``: in-place optimizer updates.
- ``generate``: token-by-token sampling from a language model.
"""
