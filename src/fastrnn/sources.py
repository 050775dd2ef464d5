"""Training text on disk: which files an input names, and reading them in bounded memory.

* :func:`resolve_sources` turns the user's inputs (files, directories, glob
  patterns) into a stable list of absolute file paths.
* :func:`read_chunks` decodes one file piece by piece with an incremental
  decoder, so that memory does not grow with the file, and reports a file that is
  not text with its name and the byte offset of the first bad byte, exactly as
  :func:`fastrnn.text.read_text` does for a whole file.
* :func:`file_identity` and :func:`sampled_hash` are the cheap fingerprints of a
  file that tell a token store whether its sources changed.

Which files of a directory count as text: every regular file, at any depth, whose
name and whose directories' names do not start with ``.`` (hidden files, ``.git``),
and whose first :data:`SNIFF_BYTES` bytes hold no NUL byte and are valid in the
encoding.  The other files are skipped with a :class:`SkippedFileWarning` naming
them.  A file named explicitly is always used; if it is not text, ``prepare``
stops with an error naming it and the byte offset, or skips it with a warning
(its ``on_bad_file``).
"""

import codecs
import glob
import hashlib
import os
import warnings
from pathlib import Path

from .text import TextError

__all__ = ["SkippedFileWarning", "resolve_sources", "read_chunks", "file_identity",
           "sampled_hash", "file_sha256", "SNIFF_BYTES"]

SNIFF_BYTES = 8192
# 16 blocks of 4 KiB spread over the file (first and last included): 64 KiB read
# whatever the file's size, enough to notice an edit that kept size and time.
_SAMPLE_BLOCKS = 16
_SAMPLE_BLOCK_BYTES = 4096
_GLOB_CHARS = frozenset("*?[")
_NUL = b"\0"


class SkippedFileWarning(UserWarning):
    """A file found in a directory or by a pattern was left out (not text)."""


def _is_hidden(relative):
    return any(part.startswith(".") for part in relative.parts)


def _check_encoding(encoding):
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise TextError(f"--encoding: unknown encoding {encoding!r}") from None


def _nul_bytes_are_nul_chars(encoding):
    """In ASCII-compatible encodings (UTF-8, Latin-1, cp125x) a 0 byte can only be
    the NUL character, so a raw byte search finds it; in UTF-16/32 it cannot."""
    return "\0a".encode(encoding) == b"\0a"


def _not_text_reason(path, encoding):
    """Why the start of ``path`` is not text (a message naming the file and the byte
    offset), or None when its first :data:`SNIFF_BYTES` bytes look like text."""
    with open(path, "rb") as stream:
        head = stream.read(SNIFF_BYTES)
    if _nul_bytes_are_nul_chars(encoding) and _NUL in head:
        return f"{path}: a NUL byte at byte offset {head.index(_NUL)}"
    try:
        text = codecs.getincrementaldecoder(encoding)().decode(head, final=len(head) < SNIFF_BYTES)
    except UnicodeDecodeError as err:
        return f"{path}: not valid {encoding} at byte offset {err.start}"
    if "\0" in text:
        return f"{path}: a NUL character at character offset {text.index(chr(0))}"
    return None


def _directory_files(directory, encoding):
    """The text files under ``directory`` (see the module docstring), sorted by path."""
    found, skipped = [], []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(root) / name
            if name.startswith(".") or not path.is_file():
                continue
            reason = _not_text_reason(path, encoding)
            if reason is None:
                found.append(path)
            else:
                skipped.append(reason)
    for reason in skipped:
        warnings.warn(f"skipped, not text: {reason}", SkippedFileWarning, stacklevel=3)
    return sorted(found), skipped


def resolve_sources(inputs, encoding="utf-8"):
    """The files that ``inputs`` name, as absolute paths (list of :class:`pathlib.Path`).

    Each input is a file (used as it is), a directory (its text files, recursively,
    sorted by path; see the module docstring) or a glob pattern (``*``, ``?``,
    ``[...]``, ``**`` for any depth; its matches sorted, directories among them
    expanded as above).  Inputs keep their order; a file reached twice is used
    once, at its first place.  Raises TextError naming the input for a path that
    does not exist, a pattern that matches nothing, or a directory with no text file.
    """
    _check_encoding(encoding)
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    result, seen = [], set()
    for item in inputs:
        name = os.fspath(item)
        path = Path(name)
        if path.is_file():
            files = [path]
        elif path.is_dir():
            files, skipped = _directory_files(path, encoding)
            if not files:
                detail = f" ({len(skipped)} not text: {skipped[0]})" if skipped else ""
                raise TextError(f"{name}: no text file in the directory{detail}")
        elif _GLOB_CHARS & set(name):
            files = []
            for match in sorted(glob.glob(name, recursive=True)):
                match = Path(match)
                if match.is_dir():
                    files.extend(_directory_files(match, encoding)[0])
                elif match.is_file():
                    reason = _not_text_reason(match, encoding)
                    if reason is None:
                        files.append(match)
                    else:
                        warnings.warn(f"skipped, not text: {reason}", SkippedFileWarning,
                                      stacklevel=2)
            if not files:
                raise TextError(f"{name}: no text file matches the pattern")
        elif path.exists():
            raise TextError(f"{name}: not a regular file or directory")
        else:
            raise TextError(f"{name}: no such file or directory")
        for file in files:
            file = file.resolve()
            if file not in seen:
                seen.add(file)
                result.append(file)
    return result


def read_chunks(path, encoding="utf-8", chunk_bytes=1 << 22, on_bytes=None):
    """Yield the text of ``path`` as decoded str pieces of at most ``chunk_bytes`` bytes each.

    Memory is one chunk at a time; a character split across two chunks is decoded
    whole.  An empty file yields nothing.  Raises TextError naming the file and the
    byte offset (from the file's start) of the first byte that is not valid in
    ``encoding``, or of a NUL byte (a binary file), or a file that cannot be read.
    ``on_bytes``, if given, is called with each block of raw bytes read (to hash
    the file or report progress on the way).
    """
    try:
        decoder = codecs.getincrementaldecoder(encoding)()
    except LookupError:
        raise TextError(f"--encoding: unknown encoding {encoding!r}") from None
    raw_nul = _nul_bytes_are_nul_chars(encoding)
    offset = 0  # bytes of the file read before this chunk
    chars = 0  # characters decoded before this chunk (where NUL is not a single 0 byte)
    try:
        stream = open(path, "rb")
    except OSError as err:
        raise TextError(f"{path}: cannot read ({err.strerror})") from err
    with stream:
        while True:
            try:
                raw = stream.read(chunk_bytes)
            except OSError as err:
                raise TextError(f"{path}: cannot read ({err.strerror})") from err
            if on_bytes is not None:
                on_bytes(raw)
            if raw_nul and _NUL in raw:
                raise TextError(f"{path}: not a text file, a NUL byte at byte offset "
                                f"{offset + raw.index(_NUL)}")
            pending = decoder.getstate()[0]
            try:
                text = decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as err:
                data = pending + raw
                raise TextError(
                    f"{path}: not valid {encoding} at byte offset "
                    f"{offset - len(pending) + err.start} (byte {data[err.start:err.end]!r}: "
                    f"{err.reason}); pass --encoding with the file's encoding") from None
            if not raw_nul and "\0" in text:
                raise TextError(f"{path}: not a text file, a NUL character at character "
                                f"offset {chars + text.index(chr(0))}")
            if not raw:
                return
            offset += len(raw)
            chars += len(text)
            if text:
                yield text


def file_identity(path):
    """(size in bytes, modification time in ns) of ``path``: the cheapest change check."""
    stat = os.stat(path)
    return stat.st_size, stat.st_mtime_ns


def sampled_hash(path, size):
    """SHA-256 (hex) of :data:`_SAMPLE_BLOCKS` blocks spread evenly over the first
    ``size`` bytes of ``path`` (the whole file when it is smaller than them)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        if size <= _SAMPLE_BLOCKS * _SAMPLE_BLOCK_BYTES:
            digest.update(stream.read(size))
        else:
            last = size - _SAMPLE_BLOCK_BYTES
            for i in range(_SAMPLE_BLOCKS):
                stream.seek(last * i // (_SAMPLE_BLOCKS - 1))
                digest.update(stream.read(_SAMPLE_BLOCK_BYTES))
    return digest.hexdigest()


def file_sha256(path, block_bytes=1 << 22):
    """SHA-256 (hex) of the whole file ``path``, read ``block_bytes`` at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(block_bytes):
            digest.update(block)
    return digest.hexdigest()
