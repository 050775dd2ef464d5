"""The K-process halves of tests/test_mpi.py's comparisons, run under ``mpiexec -n 2``.

python mpi_worker.py runs WORK TEXT SETTING...: in one MPI job, the command's training
of TEXT (into WORK/k2), its resume of WORK/from_k1 (a one-process run stopped at step
10), a Ctrl-C on rank 1 only during step 10 (WORK/k2_interrupted) and a run with
dropout (WORK/k2_dropout); every call must end as a one-process one would.
python mpi_worker.py fail WORK TEXT SETTING...: rank 1 raises during its third step.
"""

import os
import signal
import sys

from fastrnn import cli
from fastrnn.lm import Trainer, parallel


def on_rank(rank, step, action):
    """Make ``action()`` happen on ``rank`` during training step ``step`` (1-based)."""
    original = Trainer._train_window

    def window(self, w):
        if self.group.rank == rank and self.state.global_step == step - 1:
            action()
        return original(self, w)

    Trainer._train_window = window
    return lambda: setattr(Trainer, "_train_window", original)


def expect(status, argv):
    got = cli.main(argv)
    if got != status:
        raise SystemExit(f"{argv}: exit status {got}, expected {status}")


def main(task, work, text, *settings):
    if parallel.world().size != 2:
        raise SystemExit("run me under mpiexec -n 2")
    train = ["train", text, *settings, "--quiet"]
    if task == "fail":
        def boom():
            raise RuntimeError("boom on rank 1")
        on_rank(1, 3, boom)
        cli.main(train + ["--out", os.path.join(work, "failed")])
        raise SystemExit("rank 1 went on after its error")
    expect(0, train + ["--out", os.path.join(work, "k2")])
    expect(0, ["train", "--resume", "--out", os.path.join(work, "from_k1"), "--epochs", "1",
               "--quiet"])
    undo = on_rank(1, 10, lambda: signal.raise_signal(signal.SIGINT))
    expect(130, train + ["--out", os.path.join(work, "k2_interrupted")])
    undo()
    expect(0, train + ["--dropout", "0.3", "--out", os.path.join(work, "k2_dropout")])


if __name__ == "__main__":
    main(*sys.argv[1:])
