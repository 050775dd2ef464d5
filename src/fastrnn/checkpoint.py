"""Atomic files and checkpoints.

Every file of a run directory is written the same way: into a temporary file in
the same directory, flushed and fsync'ed, then renamed over the target with
``os.replace`` (atomic on POSIX and Windows).  A crash or Ctrl-C at any moment
leaves either the old file or the new one, never a mix.

A checkpoint is an ``.npz`` archive (no pickles) of named arrays plus one JSON
document of plain values, stored as the bytes of a uint8 array under ``META_KEY``.
The zip format checks a CRC-32 of every member, so a corrupted or truncated
file is detected when it is read, and reported as a CheckpointError.
"""

import contextlib
import json
import os
import tempfile
import zipfile

import numpy as np

__all__ = ["CheckpointError", "atomic_write", "write_text", "save_checkpoint", "load_checkpoint"]

FORMAT = "fastrnn-checkpoint-1"
META_KEY = "__meta__"

# mkstemp creates files readable by their owner only; a run's files get the
# permissions any new file would (0o666 minus the umask).  The umask can only be
# read by setting it, so it is read once, here.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the model."""


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Context manager giving a file object; on success the file replaces ``path``.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp_path = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                                    dir=directory)
    try:
        os.chmod(tmp_path, 0o666 & ~_UMASK)
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_path)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory):
    """Make the rename itself durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text(path, text):
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_write(path, "w") as stream:
        stream.write(text)


def save_checkpoint(path, arrays, meta):
    """Write ``arrays`` (name -> ndarray) and ``meta`` (JSON-serialisable dict) atomically."""
    if META_KEY in arrays:
        raise ValueError(f"arrays: the name {META_KEY!r} is reserved")
    document = json.dumps({"format": FORMAT, **meta}).encode("utf-8")
    payload = dict(arrays)
    payload[META_KEY] = np.frombuffer(document, dtype=np.uint8)
    with atomic_write(path, "wb") as stream:
        np.savez(stream, **payload)


def load_checkpoint(path):
    """Read a checkpoint written by :func:`save_checkpoint`: returns (arrays, meta).

    Every member is read (so every CRC is checked).  Raises CheckpointError saying
    what is wrong when the file is missing, truncated, corrupted or not a fastrnn
    checkpoint.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except FileNotFoundError as err:
        raise CheckpointError(f"{path}: no such checkpoint") from err
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile) as err:
        raise CheckpointError(f"{path}: not a readable checkpoint, the file is truncated or "
                              f"corrupted ({type(err).__name__}: {err})") from err
    if META_KEY not in arrays:
        raise CheckpointError(f"{path}: not a fastrnn checkpoint (no {META_KEY!r} member)")
    try:
        meta = json.loads(arrays.pop(META_KEY).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: corrupted checkpoint metadata ({err})") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a {FORMAT} file")
    return arrays, meta
