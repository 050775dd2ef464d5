"""What a first run of ``fastrnn train`` compiles, and how long each kernel takes.

    python asv_bench/compile_profile.py                  # the default model
    python asv_bench/compile_profile.py --cell rnn --dtype float64 --tree

Points Numba's cache at an empty temporary directory before any kernel is
imported, so that everything compiles as on a fresh install, then runs
``Trainer.compile_kernels`` (a training step, a validation window and a generated
token, at ``fastrnn train``'s defaults on the built-in corpus) while a listener on
Numba's compile events records every compilation.  Prints each top-level kernel's
cold compile time (which includes the callees it compiled first; ``--tree`` lists
them) and the warm-up's wall time.  Run it on a quiet machine: compiling is
single-threaded and a busy host slows it.
"""

import argparse
import os
import sys
import tempfile
import time


def compile_listener():
    """A listener for Numba's ``numba:compile`` events whose ``done`` lists every
    finished compilation as (depth, qualified name, seconds) in the order they end;
    depth 0 is a compilation started from Python, depth d + 1 a callee compiled
    during one at depth d (its seconds are inside its caller's)."""
    from numba.core import event

    class CompileTimes(event.Listener):
        def __init__(self):
            self.started = []  # the compilations under way, innermost last
            self.done = []

        def on_start(self, ev):
            self.started.append(time.perf_counter())

        def on_end(self, ev):
            seconds = time.perf_counter() - self.started.pop()
            name = ev.data["dispatcher"].py_func.__qualname__
            self.done.append((len(self.started), name, seconds))

    return CompileTimes()


def as_tree(done):
    """The top-level compilations of ``done`` (as ``compile_listener`` gives it) as
    (name, seconds, children) nodes, children the same, each list in compile order."""
    waiting = {}  # depth -> finished nodes whose caller has not finished yet
    for depth, name, seconds in done:
        node = (name, seconds, waiting.pop(depth + 1, []))
        waiting.setdefault(depth, []).append(node)
    return waiting.get(0, [])


def tree_lines(nodes, indent=""):
    """Lines '  seconds  name' of ``nodes`` and their children, callees indented."""
    lines = []
    for name, seconds, children in nodes:
        lines.append(f"{seconds:7.1f} s  {indent}{name}")
        lines.extend(tree_lines(children, indent + "  "))
    return lines


def profile(cell, dtype):
    """(top-level compilations as ``as_tree`` gives them, longest first; the warm-up's
    seconds) of a trainer of ``fastrnn train``'s defaults with this cell and dtype."""
    from numba.core import event

    from fastrnn.corpus import stdlib_docstrings
    from fastrnn.lm import Corpus, LanguageModel, ModelConfig, Trainer, TrainConfig

    corpus = Corpus.from_text(stdlib_docstrings(400_000), level="char")
    model_config, train_config = ModelConfig(cell=cell, dtype=dtype), TrainConfig()
    model = LanguageModel(corpus.vocab, corpus.tokenizer, model_config, train_config.seed)
    trainer = Trainer(model, corpus, train_config)
    listener = compile_listener()
    start = time.perf_counter()
    with event.install_listener("numba:compile", listener):
        trainer.compile_kernels()
    wall = time.perf_counter() - start
    return sorted(as_tree(listener.done), key=lambda node: -node[1]), wall


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", choices=("lstm", "rnn"), default="lstm")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--tree", action="store_true",
                        help="also list the callees each kernel compiled")
    args = parser.parse_args(argv)
    if "fastrnn.kernels" in sys.modules:
        parser.error("the kernels are imported already: run this as a script of its own, "
                     "so that Numba's cache can be pointed at an empty directory first")
    with tempfile.TemporaryDirectory(prefix="fastrnn-compile-profile-") as cache:
        os.environ["NUMBA_CACHE_DIR"] = cache
        kernels, wall = profile(args.cell, args.dtype)
    for name, seconds, children in kernels:
        print(f"{seconds:7.1f} s  {name}")
        if args.tree:
            print("\n".join(tree_lines(children, "  ")))
    print(f"{sum(node[1] for node in kernels):7.1f} s  in {len(kernels)} kernels; the warm-up "
          f"took {wall:.1f} s ({args.cell}, {args.dtype})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
