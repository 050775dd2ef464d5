"""Data-parallel training: the few collective operations the trainer needs, in one
process (:class:`SingleProcess`, no MPI) or across the processes of an MPI job
(:class:`MPIGroup`, through mpi4py).  The trainer talks only to this interface.

Each of K processes (ranks) owns B/K contiguous streams of the global batch of B:
rank r has streams r*B/K to (r+1)*B/K - 1, its carried states are those rows of
(L, B, H), and its dropout masks are the rows the whole batch would get (they are
keyed by the global stream).  Per step:

- the step's scalars (loss sum, correct predictions, a stop request, rank 0's
  clock) travel in a non-blocking reduce of a few float64 started before the
  backward, so its latency hides behind it;
- after the backward, the gradients of all parameters, copied into one flat
  buffer, are summed in **one** Allreduce; each rank's loss is averaged over the
  global batch (``LanguageModel.loss(..., rows=B)``), so the sum is the gradient of
  the global mean loss; clipping and Adam then run identically on every rank.

Everything else (validation sums, states gathered into a checkpoint, the
parameter hash compared at every evaluation, rank 0's decisions) happens at
evaluations and checkpoints only.  See docs/distributed.md.
"""

import hashlib
import os
import sys
import time

import numba
import numpy as np

from .. import __version__

__all__ = ["INSTALL_HINT", "SINGLE", "ParallelError", "RootFailed", "SingleProcess",
           "MPIGroup", "launched_rank", "launched_size", "world"]

INSTALL_HINT = ('pip install "fastrnn[mpi]" (mpi4py and MPICH for a workstation), or, to use a '
                'cluster\'s own MPI: MPICC=mpicc pip install --no-binary mpi4py mpi4py')

# Environment variables by which MPI launchers tell a process the job's size and its
# rank: MPICH and Intel MPI (Hydra, PMI), Open MPI, MVAPICH; PMIx (Open MPI 5, Slurm
# with --mpi=pmix) gives the rank only.
_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
_RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK", "PMIX_RANK")


class ParallelError(RuntimeError):
    """The processes of a job cannot train together (no mpi4py under mpiexec, another
    fastrnn on some rank, parameters that differ between ranks, ...)."""


class RootFailed(ParallelError):
    """Raised on the other ranks when an action rank 0 ran first failed there (rank 0
    raises the error itself; this one says nothing new)."""


def launched_size():
    """How many processes an MPI launcher started, from its environment: 1 without
    one, 0 when a launcher is there but does not say (PMIx)."""
    for name in _SIZE_VARIABLES:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0 if "PMIX_RANK" in os.environ else 1


def launched_rank():
    """This process's rank by its launcher's environment (0 without one): who prints
    when MPI itself could not start."""
    for name in _RANK_VARIABLES:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0


class SingleProcess:
    """One process training alone: every collective is the identity (no copies); see
    :class:`MPIGroup` for what each does across processes."""

    size, rank, is_root = 1, 0, True
    reduce_bytes = reduce_seconds = reduce_calls = 0

    def share(self, count):
        """The streams (or validation blocks) this process owns: ``range(count)``."""
        return range(count)

    def blocks(self, count):
        return range(count)

    def sum_step(self, scalars, backward, grads):
        """Run ``backward()``; return ``scalars`` float64 (n,) as they are."""
        backward()
        return scalars

    def sum(self, values):
        return values

    def gather_rows(self, array):
        return array

    def broadcast(self, value):
        return value

    def allgather(self, value):
        return [value]

    def root_first(self, action):
        return action()

    def check_replicas(self, params):
        """Nothing to compare."""

    def threads_per_process(self):
        """All of Numba's threads (its default: the cores this process may use)."""
        return numba.config.NUMBA_NUM_THREADS


SINGLE = SingleProcess()


class MPIGroup:
    """The processes of an MPI communicator (mpi4py's ``comm``) training one model.

    Creating one checks that every rank runs this fastrnn version (ParallelError
    naming the ranks otherwise).  ``reduce_bytes``, ``reduce_seconds`` and
    ``reduce_calls`` count the gradient Allreduces (for scaling measurements).
    """

    def __init__(self, comm):
        from mpi4py import MPI

        self._mpi = MPI
        self.comm = comm
        self.size, self.rank = comm.Get_size(), comm.Get_rank()
        self.is_root = self.rank == 0
        self._flat = None  # the gradients' flat buffer, allocated at the first step
        # Errors meet on a communicator of their own, made now (Dup is a collective):
        # nothing the training has under way on ``comm`` can match its calls.
        self._errors = comm.Dup()
        self.reduce_bytes = self.reduce_seconds = self.reduce_calls = 0
        versions = comm.allgather(__version__)
        if len(set(versions)) > 1:
            raise ParallelError("the ranks run different fastrnn versions: " + _by_value(
                dict(enumerate(versions))) + "; install the same one everywhere")

    # ------------------------------------------------------------ who owns what

    def share(self, count):
        """The streams of a global batch of ``count`` this rank owns (a range of
        count / K); ValueError when ``count`` does not divide into K equal shares."""
        K = self.size
        if count < K:
            raise ValueError(f"batch_size: expected at least one stream per process, got "
                             f"{count} streams for {K} processes; use --batch-size {K} or a "
                             f"multiple of {K}")
        if count % K:
            low = count - count % K
            raise ValueError(f"batch_size: expected a multiple of the {K} processes (each "
                             f"trains batch_size / {K} streams), got {count}; use "
                             f"--batch-size {low} or {low + K}")
        per = count // K
        return range(self.rank * per, (self.rank + 1) * per)

    def blocks(self, count):
        """This rank's part of ``count`` validation blocks (as equal as can be; empty
        when there are fewer blocks than ranks)."""
        return range(self.rank * count // self.size, (self.rank + 1) * count // self.size)

    # ------------------------------------------------------------ per step

    def sum_step(self, scalars, backward, grads):
        """The step's sums over all ranks.

        scalars float64 (n,): reduced by a non-blocking Allreduce while ``backward()``
        runs; then every array of ``grads`` (a mapping, read after the backward) is
        copied into one flat buffer, summed by one Allreduce and copied back.
        Returns the summed scalars (n,).
        """
        MPI = self._mpi
        totals = np.empty_like(scalars)
        request = self.comm.Iallreduce(scalars, totals, op=MPI.SUM)
        backward()
        arrays = list(grads.values())
        size = sum(array.size for array in arrays)
        if self._flat is None or self._flat.size != size or self._flat.dtype != arrays[0].dtype:
            self._flat = np.empty(size, arrays[0].dtype)
        views, offset = [], 0
        for array in arrays:
            view = self._flat[offset:offset + array.size].reshape(array.shape)
            np.copyto(view, array)
            views.append(view)
            offset += array.size
        start = time.perf_counter()
        self.comm.Allreduce(MPI.IN_PLACE, self._flat, op=MPI.SUM)
        self.reduce_seconds += time.perf_counter() - start
        self.reduce_bytes += self._flat.nbytes
        self.reduce_calls += 1
        for array, view in zip(arrays, views):
            np.copyto(array, view)
        request.Wait()
        return totals

    # ------------------------------------------------------------ evaluations, checkpoints

    def sum(self, values):
        """float64 (n,) summed over the ranks (a new array)."""
        totals = np.empty_like(values)
        self.comm.Allreduce(values, totals, op=self._mpi.SUM)
        return totals

    def gather_rows(self, array):
        """(L, B/K, H) of every rank -> (L, B, H) on rank 0 (rows in rank order);
        None on the others."""
        local = np.ascontiguousarray(array)
        whole = np.empty((self.size,) + local.shape, local.dtype) if self.is_root else None
        self.comm.Gather(local, whole, root=0)
        if not self.is_root:
            return None
        L, rows, H = local.shape
        return np.ascontiguousarray(whole.transpose(1, 0, 2, 3)).reshape(L, self.size * rows, H)

    def broadcast(self, value):
        """Rank 0's ``value`` (any picklable object), on every rank."""
        return self.comm.bcast(value, root=0)

    def allgather(self, value):
        """[value of rank 0, value of rank 1, ...] on every rank."""
        return self.comm.allgather(value)

    def root_first(self, action):
        """``action()`` on rank 0, then, once it succeeded, on the others (e.g. rank 0
        builds a token store that the others then open).  When it fails on rank 0,
        rank 0 raises its error and the others :class:`RootFailed`."""
        failure = None
        if self.is_root:
            try:
                result = action()
            except Exception as err:
                self.broadcast(f"{type(err).__name__}: {err}")
                raise
            self.broadcast(failure)
            return result
        failure = self.broadcast(None)
        if failure is not None:
            raise RootFailed(f"rank 0 failed: {failure}")
        return action()

    def check_replicas(self, params):
        """ParallelError on every rank, naming them, unless every rank holds the same
        parameters (``params``: name -> array), compared by a SHA-256 of their bytes."""
        digest = hashlib.sha256()
        for value in params.values():
            digest.update(np.ascontiguousarray(value).data)
        digests = self.allgather(digest.hexdigest())
        if len(set(digests)) > 1:
            differ = [rank for rank, value in enumerate(digests) if value != digests[0]]
            raise ParallelError(
                f"the parameters of rank{'s' * (len(differ) > 1)} "
                f"{', '.join(map(str, differ))} differ from rank 0's: the ranks no longer "
                "train the same model (an MPI whose Allreduce does not give every rank the "
                "same sum?); the run stops, its last checkpoint is consistent")

    # ------------------------------------------------------------ the process

    def threads_per_process(self):
        """Numba threads for this rank: the cores its node's ranks may run on (the
        union of their CPU affinities) divided by the ranks on the node, at most its
        own affinity, at least 1."""
        node = self.comm.Split_type(self._mpi.COMM_TYPE_SHARED)
        try:
            mine = os.sched_getaffinity(0)
            cores = set().union(*node.allgather(mine))
            return max(1, min(len(mine), len(cores) // node.Get_size()))
        finally:
            node.Free()

    def fail(self, message, wait=5.0):
        """This rank stops on an error (``message``).  When every rank stops within
        ``wait`` seconds (an error every rank met at the same point), rank 0 prints
        the messages once and this returns; otherwise this rank prints its own and
        aborts the whole job (the others may be blocked in a collective)."""
        errors = self._errors
        request = errors.Ibarrier()
        deadline = time.monotonic() + wait
        while not request.Test():
            if time.monotonic() > deadline:
                print(f"fastrnn: error on rank {self.rank} of {self.size}: {message}",
                      file=sys.stderr, flush=True)
                self.comm.Abort(1)
            time.sleep(0.01)
        messages = errors.allgather(message)
        if self.is_root:
            shown = {rank: text for rank, text in enumerate(messages) if text is not None}
            if len(set(shown.values())) == 1:
                print(f"fastrnn: error: {messages[0] or next(iter(shown.values()))}",
                      file=sys.stderr, flush=True)
            else:
                print(f"fastrnn: error: {_by_value(shown)}", file=sys.stderr, flush=True)


def _by_value(by_rank):
    """'ranks 0, 2: a; rank 1: b' from {rank: value}."""
    groups = {}
    for rank, value in by_rank.items():
        groups.setdefault(value, []).append(rank)
    return "; ".join(f"rank{'s' * (len(ranks) > 1)} {', '.join(map(str, ranks))}: {value}"
                     for value, ranks in groups.items())


_WORLD = None


def world():
    """The processes this one trains with: :data:`SINGLE` unless an MPI launcher
    started several, then an :class:`MPIGroup` of all of them (made once).

    ParallelError when a launcher started several processes but mpi4py is missing
    (the message says how to install it), or when MPI sees one process while the
    launcher started several (an mpiexec of another MPI than mpi4py's).
    """
    global _WORLD
    if _WORLD is not None:
        return _WORLD
    launched = launched_size()
    if launched == 1:
        _WORLD = SINGLE
        return _WORLD
    try:
        from mpi4py import MPI
    except ImportError:
        raise ParallelError(f"started by an MPI launcher ({launched or 'several'} processes) "
                            f"but mpi4py is not installed: {INSTALL_HINT}") from None
    size = MPI.COMM_WORLD.Get_size()
    if size == 1 and launched > 1:
        raise ParallelError(f"the launcher started {launched} processes but MPI sees one: "
                            "mpiexec belongs to another MPI than the one mpi4py was built "
                            "with (python -c 'import mpi4py; print(mpi4py.get_config())' "
                            "shows which); use that MPI's mpiexec")
    _WORLD = SINGLE if size == 1 else MPIGroup(MPI.COMM_WORLD)
    return _WORLD
