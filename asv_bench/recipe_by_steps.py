"""Rank training recipes by steps, which the load of a shared machine does not change.

    python asv_bench/recipe_by_steps.py --text docstrings --steps 3640 --copies 573,1110
    python asv_bench/recipe_by_steps.py --text unicode --steps 3640 \\
        --set lr_schedule=constant                       # another recipe, same steps
    python asv_bench/recipe_by_steps.py --text stdlib --side torch --steps 3100

One trial: ``--steps`` training steps of fastrnn's defaults (with ``--set`` settings; a
learning-rate schedule is planned over exactly those steps) or of the plain PyTorch script
of ``train_vs_torch.py``, on one thread, on that script's texts and split; the parameters
after each step of ``--copies`` and after the last are scored by its ``evaluate`` on the
same held-out blocks.  Prints (and with ``--out`` writes) a JSON line: the losses by step.
To stand for a time budget, take the step counts of quiet ``train_vs_torch.py`` runs
(docs/quality_per_minute.md).
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_vs_torch as side_by_side  # noqa: E402


def train_torch_steps(train_ids, vocab_size, steps, score_at):
    """The PyTorch script of ``train_vs_torch.py`` for ``steps`` steps on one thread;
    calls ``score_at(step, net)`` after each step."""
    net, step = side_by_side.torch_script(train_ids, vocab_size, threads=1)
    for n in range(steps):
        step(n)
        score_at(n + 1, net)


def train_fastrnn_steps(corpus, settings, steps, score_at):
    """fastrnn's Trainer for ``steps`` steps, its schedule planned over them; calls
    ``score_at(step, params)`` after each step."""
    import fastrnn
    from fastrnn.lm import Trainer

    fastrnn.set_num_threads(1)
    # Epochs and time do not end the trial: a validation at its last step does.
    model, train_config = side_by_side.fastrnn_model(corpus, settings, epochs=10**6,
                                                     time_budget=None, eval_every=steps,
                                                     checkpoint_every=None)

    class StepTrainer(Trainer):
        def _train_window(self, window):
            loss = super()._train_window(window)
            score_at(self.state.global_step + 1, self.model.params)
            return loss

    with tempfile.TemporaryDirectory() as scratch:
        trainer = StepTrainer(model, corpus, train_config, os.path.join(scratch, "run"))
        trainer.state.schedule_steps = steps
        trainer.run(progress=False, callback=lambda t, row: t.state.global_step >= steps)
    return trainer.state.global_step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text", choices=sorted(side_by_side.TEXTS), default="docstrings")
    parser.add_argument("--max-chars", type=int, default=side_by_side.MAX_CHARS)
    parser.add_argument("--side", choices=("fastrnn", "torch"), default="fastrnn")
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--copies", default="", help="more steps to score, e.g. 573,1110")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    from fastrnn.lm import Corpus

    score_steps = {int(s) for s in args.copies.split(",") if s} | {args.steps}
    settings = side_by_side.parse_settings(args.set)
    text = side_by_side.TEXTS[args.text](args.max_chars)[:args.max_chars]
    corpus = Corpus.from_text(text, level="char")
    validation, train_ids = side_by_side.split_tokens(
        corpus, side_by_side.fastrnn_configs(settings)[1])
    vocab_size = len(corpus.vocab)
    losses = {}
    began = time.perf_counter()
    if args.side == "torch":

        def score_torch(step, net):
            if step in score_steps:
                losses[step] = side_by_side.evaluate(net, validation)

        train_torch_steps(train_ids, vocab_size, args.steps, score_torch)
    else:
        def score_fastrnn(step, params):
            if step in score_steps:
                net = side_by_side.scoring_net("fastrnn", dict(params), vocab_size)
                losses[step] = side_by_side.evaluate(net, validation)

        train_fastrnn_steps(corpus, settings, args.steps, score_fastrnn)
    result = {"text": args.text, "side": args.side, "steps": args.steps, "settings": settings,
              "val_loss_by_step": {str(k): round(v, 5) for k, v in sorted(losses.items())},
              "seconds": round(time.perf_counter() - began, 1)}
    print(json.dumps(result))
    if args.out:
        args.out.write_text(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
