"""Where a training step of ``fastrnn train``'s default model spends its time.

    python asv_bench/step_profile.py                 # built-in corpus, 200 steps
    python asv_bench/step_profile.py --steps 50 --json

Times each phase of :meth:`fastrnn.lm.Trainer._train_window` (the window's tokens,
recurrent forward and backward with the embedding, the output layer and softmax loss with their
backward, taken in chunks as training does, clipping, Adam) by running the same calls
one by one, and the
whole step as the trainer runs it; then the step's FLOPs (its matrix products) against
the machine's float32 GEMM peak (numpy, a 2048 x 2048 product).  Medians over the
steps.  Run it on a quiet machine: other load slows every phase.
"""

import argparse
import json
import statistics
import sys
import time

import numpy as np

from fastrnn.layer_utils import fc_softmax_loss
from fastrnn.lm import Corpus, LanguageModel, ModelConfig, Trainer, TrainConfig


def gemm_peak_gflops(n=2048, repeats=5):
    """The best float32 GFLOP/s of numpy's n x n matrix product."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def _timed(work):
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def step_flops(B, S, E, H, V):
    """FLOPs of the matrix products of one step: forward and twice as many backward."""
    recurrent = 2 * B * S * (E + H) * 4 * H
    output = 2 * B * S * H * V
    return 3 * (recurrent + output)


def profile(trainer, steps):
    """Median seconds of each phase and of whole steps, over ``steps`` windows."""
    model, state, config = trainer.model, trainer.state, trainer.config
    cell = model.cells[0]
    phases = {}

    def timed(name, work):
        start = time.perf_counter()
        result = work()
        phases.setdefault(name, []).append(time.perf_counter() - start)
        return result

    for window in range(steps):
        window %= trainer.windows_per_epoch
        x, targets = timed("window tokens", lambda: trainer._window(window))
        embedding = model.params[model.embedding.w_name]
        # The first layer takes the ids and the embedding (Model._hidden), which it
        # folds into its input projection at the default sizes (LSTM.forward_ids).
        hidden = timed("recurrent forward", lambda: cell.forward_ids(x, embedding, state.h[0],
                                                                     state.c[0]))
        state.h[0], state.c[0] = hidden[:, -1], cell.final_c
        B, S = targets.shape
        # What the trainer runs (Model.output_loss): output layer, softmax loss and their
        # backward, chunk by chunk, never holding the (B, S, V) scores.
        out = timed("output layer + loss, fwd+bwd", lambda: fc_softmax_loss(
            model.output, hidden, targets, 1.0 / (B * S)))
        model.grads[model.output.w_name], model.grads[model.output.b_name] = out.dw, out.db
        model.grads[model.embedding.w_name] = timed(
            "recurrent backward", lambda: cell.backward_ids(out.dx)[0])
        timed("clip", lambda: model.clip_gradients(config.clip))
        timed("adam", state.optimizer.step)
        # Whole steps alternate with the phase-by-phase ones, so that a change of the
        # machine's speed during the run (a shared host) weighs on both alike.
        timed("whole step (trainer)",
              lambda: trainer._train_window((window + 1) % trainer.windows_per_epoch))
    return {name: statistics.median(times) for name, times in phases.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    from fastrnn.corpus import stdlib_docstrings
    corpus = Corpus.from_text(stdlib_docstrings(400_000), level="char")
    model_config, train_config = ModelConfig(), TrainConfig()
    model = LanguageModel(corpus.vocab, corpus.tokenizer, model_config, train_config.seed)
    trainer = Trainer(model, corpus, train_config)
    trainer.compile_kernels()
    phases = profile(trainer, args.steps)
    whole = phases.pop("whole step (trainer)")
    flops = step_flops(train_config.batch_size, train_config.seq_len, model_config.embedding,
                       model_config.hidden, len(corpus.vocab))
    peak = gemm_peak_gflops()
    figures = {"phases_ms": {k: round(v * 1e3, 3) for k, v in phases.items()},
               "sum_of_phases_ms": round(sum(phases.values()) * 1e3, 3),
               "whole_step_ms": round(whole * 1e3, 3), "step_gflop": flops / 1e9,
               "gemm_peak_gflops": round(peak, 1),
               "fraction_of_peak": round(flops / whole / 1e9 / peak, 3)}
    if args.json:
        print(json.dumps(figures))
        return 0
    for name, seconds in phases.items():
        print(f"{name:26s} {seconds * 1e3:8.3f} ms  {seconds / whole:6.1%}")
    print(f"{'sum of phases':26s} {figures['sum_of_phases_ms']:8.3f} ms\n"
          f"{'whole step (trainer)':26s} {figures['whole_step_ms']:8.3f} ms; "
          f"{flops / 1e9:.3f} GFLOP, {flops / whole / 1e9:.1f} GFLOP/s = "
          f"{figures['fraction_of_peak']:.0%} of the float32 GEMM peak "
          f"({peak:.1f} GFLOP/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
