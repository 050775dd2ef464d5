"""Compiled kernels: plain Numba functions of arrays that write into preallocated
outputs.  No Python objects, no validation (callers in :mod:`fastrnn.layer_utils`
check every shape, dtype and index first: compiled code does no bounds checks).

- ``_jit``: the compile options, and the serial + parallel builds of chunked kernels.
- ``activations``: vectorisable exp / sigmoid / tanh used by the gate passes.
- ``lstm``, ``vanilla``: a whole forward (input projection + time loop) in one call,
  and the backward time loop; ``lstm`` also the forward that stores only states and
  the recomputing backward of checkpointing in time (``fastrnn.recompute``).
- ``blocked``: GEMMs in row blocks: the weight gradients after a backward loop and
  the linear layer.
- ``packed``: the per-step recurrent GEMM on weights packed once per sequence, a
  microkernel written with ``simd`` (SIMD vectors as Numba values).
- ``dispatch``: the step forms of the recurrent kernels (``StepForm``), the
  thresholds that choose one (``choose_form``), and ``force_form`` to force one.
- ``softmax``: masked softmax cross-entropy, loss and gradient in one pass.
- ``embedding``: lookup and scatter-add.
- ``optim``: in-place optimizer updates.
- ``generate``: token-by-token sampling from a language model.
- ``tokens``: the token store's counting, id lookup and ``words`` tokenizer (a hash
  table of the distinct words), which read text as code points.
"""
