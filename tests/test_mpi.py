"""Data-parallel training (fastrnn.lm.parallel): two processes under ``mpiexec -n 2``
against one process on the same global batch, resuming with another number of
processes, errors; and the communicator's logic without MPI.

The two-process halves run in one MPI job (tests/mpi_worker.py); its runs are
compared with one-process runs of the command made here.
"""

import json
import os
import shutil
import signal
import subprocess
import sys

import numba
import numpy as np
import pytest

from fastrnn import cli
from fastrnn.checkpoint import load_checkpoint
from fastrnn.lm import LATEST, Corpus, LanguageModel, ModelConfig, Trainer, parallel

from texts import rhyme

HERE = os.path.dirname(os.path.abspath(__file__))
# A tiny float64 LSTM of two layers: 4 streams of the text's ~1,600 characters in
# windows of 8 make an epoch of about 40 steps.
SETTINGS = ["--hidden", "12", "--embedding", "8", "--layers", "2", "--dtype", "float64",
            "--seq-len", "8", "--batch-size", "4", "--lr", "0.01", "--epochs", "1",
            "--val-fraction", "0.1", "--eval-every", "10"]


def mpiexec():
    """The mpiexec of the MPI mpi4py uses (the mpich wheel puts it beside python)."""
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.path.exists(beside) else shutil.which("mpiexec")


def run_mpi(*args, timeout=240):
    pytest.importorskip("mpi4py", reason='the MPI tests need pip install ".[test,mpi]"')
    return subprocess.run([mpiexec(), "-n", "2", sys.executable, os.path.join(HERE,
                           "mpi_worker.py"), *args], capture_output=True, text=True,
                          timeout=timeout)


def params(run_dir):
    arrays, meta = load_checkpoint(os.path.join(run_dir, LATEST))
    return {key: value for key, value in arrays.items() if key.startswith("param/")}, meta


def max_difference(a, b):
    assert a.keys() == b.keys()
    return max(float(np.max(np.abs(a[key] - b[key]))) for key in a)


def interrupt_at_step(monkeypatch, step):
    original = Trainer._train_window

    def window(self, w):
        if self.state.global_step == step - 1:
            signal.raise_signal(signal.SIGINT)
        return original(self, w)

    monkeypatch.setattr(Trainer, "_train_window", window)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(work directory, the MPI job's result) after the one-process runs and the job."""
    work = tmp_path_factory.mktemp("mpi")
    text = work / "rhyme.txt"
    text.write_text(rhyme(lines=70, seed=5))
    train = ["train", str(text), *SETTINGS, "--quiet"]
    # Restored afterwards to the session's setting (conftest.token_store_cache), not unset.
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("FASTRNN_CACHE_DIR", str(work / "stores"))
        assert cli.main(train + ["--out", str(work / "k1")]) == 0
        assert cli.main(train + ["--dropout", "0.3", "--out", str(work / "k1_dropout")]) == 0
        with pytest.MonkeyPatch.context() as monkeypatch:
            interrupt_at_step(monkeypatch, 10)
            assert cli.main(train + ["--out", str(work / "from_k1")]) == 130
        job = run_mpi("runs", str(work), str(text), *SETTINGS)
    assert job.returncode == 0, job.stderr
    return work, job


def test_two_processes_train_the_parameters_of_one(runs):
    work, _ = runs
    one, meta = params(work / "k1")
    two, meta_two = params(work / "k2")
    assert meta["global_step"] == meta_two["global_step"] >= 20
    assert max_difference(one, two) <= 1e-12
    # The metrics rows agree too: training sums reduced, validation blocks shared out.
    rows = [[json.loads(line) for line in (work / run / "metrics.jsonl").read_text().splitlines()]
            for run in ("k1", "k2")]
    assert [row["step"] for row in rows[0]] == [row["step"] for row in rows[1]]
    for one_row, two_row in zip(*rows):
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
            assert abs(one_row[key] - two_row[key]) <= 1e-12, key


def test_a_run_continues_with_another_number_of_processes(runs):
    work, _ = runs
    one, _ = params(work / "k1")
    # Stopped at step 10 by one process, continued by two.
    continued, meta = params(work / "from_k1")
    assert meta["global_step"] == params(work / "k1")[1]["global_step"]
    assert max_difference(one, continued) <= 1e-12
    # Stopped at step 10 by two (Ctrl-C on rank 1 only: both stopped there), continued by one.
    arrays, meta = load_checkpoint(os.path.join(work / "k2_interrupted", LATEST))
    assert meta["global_step"] == 10
    assert arrays["state/h"].shape == (2, 4, 12)  # all 4 streams' states, gathered
    assert np.abs(arrays["state/c"]).min(axis=(0, 2)).all()  # every stream carried along
    assert cli.main(["train", "--resume", "--out", str(work / "k2_interrupted"), "--quiet"]) == 0
    assert max_difference(one, params(work / "k2_interrupted")[0]) <= 1e-12


def test_dropout_masks_do_not_depend_on_the_number_of_processes(runs):
    work, _ = runs
    one, two = params(work / "k1_dropout")[0], params(work / "k2_dropout")[0]
    assert max_difference(one, two) <= 1e-10  # the summation order only
    assert max_difference(one, params(work / "k1")[0]) > 1e-3  # dropout was on


def test_an_error_on_one_rank_aborts_the_job_with_its_message(tmp_path):
    text = tmp_path / "rhyme.txt"
    text.write_text(rhyme(lines=70, seed=5))
    job = run_mpi("fail", str(tmp_path), str(text), *SETTINGS, timeout=120)
    assert job.returncode != 0
    assert "rank 1 of 2" in job.stderr and "boom on rank 1" in job.stderr


def test_a_batch_that_does_not_divide_among_the_processes_is_refused(tmp_path):
    pytest.importorskip("mpi4py", reason='the MPI tests need pip install ".[test,mpi]"')
    job = subprocess.run([mpiexec(), "-n", "2", sys.executable, "-m", "fastrnn", "train",
                          "--batch-size", "3", "--out", str(tmp_path / "run")],
                         capture_output=True, text=True, timeout=120)
    assert job.returncode == 1
    assert job.stderr.count("batch_size: expected a multiple of the 2 processes") == 1
    assert "--batch-size 2 or 4" in job.stderr
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- without MPI


class FakeComm:
    """The calls MPIGroup makes at its creation, for rank ``rank`` of ``size``."""

    def __init__(self, size, rank, versions=None):
        self.size, self.rank, self.versions = size, rank, versions

    def Get_size(self):
        return self.size

    def Get_rank(self):
        return self.rank

    def allgather(self, value):
        return self.versions or [value] * self.size

    def Dup(self):
        return self

    def Split_type(self, kind):
        """This node's processes: ``self.node`` (their CPU affinities)."""
        node = FakeComm(len(self.node), 0, self.node)
        node.Free = lambda: None
        return node


def test_shares_of_the_streams_and_of_the_validation_blocks():
    pytest.importorskip("mpi4py", reason='the MPI tests need pip install ".[test,mpi]"')
    shares = [parallel.MPIGroup(FakeComm(4, rank)).share(8) for rank in range(4)]
    assert [list(share) for share in shares] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    blocks = [list(parallel.MPIGroup(FakeComm(4, rank)).blocks(6)) for rank in range(4)]
    assert sum(blocks, []) == list(range(6))
    with pytest.raises(ValueError, match="at least one stream per process, got 2 streams"):
        parallel.MPIGroup(FakeComm(4, 0)).share(2)
    with pytest.raises(ValueError, match="multiple of the 4 processes.*--batch-size 8 or 12"):
        parallel.MPIGroup(FakeComm(4, 0)).share(10)


def test_threads_per_process_share_the_nodes_cores():
    pytest.importorskip("mpi4py", reason='the MPI tests need pip install ".[test,mpi]"')
    cores = sorted(os.sched_getaffinity(0))
    group = parallel.MPIGroup(FakeComm(8, 0))
    group.comm.node = [set(cores)] * 2  # 2 processes on this node, free to use every core
    assert group.threads_per_process() == max(1, len(cores) // 2)
    group.comm.node = [set(cores)] * (2 * len(cores))  # more processes than cores
    assert group.threads_per_process() == 1
    with pytest.raises(SystemExit):
        cli.main(["train", "--threads", "0"])


def test_ranks_of_another_fastrnn_are_refused():
    pytest.importorskip("mpi4py", reason='the MPI tests need pip install ".[test,mpi]"')
    with pytest.raises(parallel.ParallelError, match="rank 1: 0.0.9"):
        parallel.MPIGroup(FakeComm(2, 0, ["0.1.0", "0.0.9"]))


def test_one_process_collectives_change_nothing():
    single = parallel.SINGLE
    assert single.share(6) == range(6) and single.blocks(3) == range(3)
    calls, grads = [], {"w": np.ones(3)}
    scalars = np.array([1.5, 2.0, 0.0, 3.0])
    assert single.sum_step(scalars, lambda: calls.append(1), grads) is scalars
    assert calls == [1] and grads["w"].tolist() == [1.0, 1.0, 1.0]
    states = np.ones((2, 3, 4))
    assert single.gather_rows(states) is states and single.broadcast("x") == "x"
    assert single.threads_per_process() == numba.config.NUMBA_NUM_THREADS


def test_mpiexec_without_mpi4py_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setenv("PMI_RANK", "0")
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py fails
    monkeypatch.setattr(parallel, "_WORLD", None)
    assert cli.main(["train", "--epochs", "1"]) == 1
    assert 'mpi4py is not installed: pip install "fastrnn[mpi]"' in capsys.readouterr().err


def test_a_share_of_the_batch_gets_the_batchs_rows_of_the_loss_gradient():
    """Averaged over the whole batch's rows, a share's d(loss)/d(scores) rows are the
    whole batch's bit for bit, and the shares' loss sums add up to the batch's."""
    corpus = Corpus.from_text(rhyme(seed=5))
    model = LanguageModel(corpus.vocab, corpus.tokenizer,
                          ModelConfig(embedding=8, hidden=12, dtype="float64"), seed=3)
    x, targets = corpus.ids[:40].reshape(4, 10), corpus.ids[1:41].reshape(4, 10)

    def loss_and_gradient(rows, batch):
        h, c = model.zero_state(len(x[rows]))
        total = model.loss(model.forward(x[rows], h, c), targets[rows], batch)[0]
        return total, model.loss_gradient().copy()

    whole, gradient = loss_and_gradient(slice(0, 4), None)
    first, first_gradient = loss_and_gradient(slice(0, 2), 4)
    second, second_gradient = loss_and_gradient(slice(2, 4), 4)
    np.testing.assert_array_equal(np.concatenate([first_gradient, second_gradient]), gradient)
    assert first + second == pytest.approx(whole, rel=1e-14)
    with pytest.raises(ValueError, match="rows: expected an integer >= N = 2, got 1"):
        loss_and_gradient(slice(0, 2), 1)
