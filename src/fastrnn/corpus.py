"""A built-in English corpus: the docstrings of the installed Python standard library.

Assembled at run time, offline and deterministically (a fixed list of modules,
members in sorted order), so the project ships no third-party text and downloads
nothing.  The same Python version gives the same text.
"""

import importlib
import inspect
import re

# Modules whose docstrings are mostly prose (not tables or code).
_MODULES = (
    "abc", "argparse", "asyncio", "base64", "bisect", "calendar", "collections", "contextlib",
    "copy", "csv", "dataclasses", "datetime", "decimal", "difflib", "email", "enum",
    "fractions", "ftplib", "functools", "gettext", "glob", "gzip", "heapq", "hmac", "html",
    "http.client", "http.server", "imaplib", "inspect", "io", "ipaddress", "itertools", "json",
    "logging", "mailbox", "mimetypes", "multiprocessing", "numbers", "operator", "optparse",
    "os", "pathlib", "pickle", "pprint", "queue", "random", "re", "sched", "secrets",
    "selectors", "shelve", "shlex", "shutil", "smtplib", "socket", "socketserver", "statistics",
    "string", "struct", "subprocess", "tarfile", "tempfile", "textwrap", "threading", "timeit",
    "tokenize", "traceback", "turtle", "typing", "unittest", "urllib.parse", "urllib.request",
    "uuid", "warnings", "weakref", "xml.dom.minidom", "zipfile",
)

_PROSE_LINE = re.compile(r"^[A-Za-z\"'(].*[a-z]")


def _prose(doc):
    """Keep the prose lines of a docstring: no doctests, no indented code, no tables."""
    kept = []
    for line in inspect.cleandoc(doc).splitlines():
        stripped = line.strip()
        if line.startswith((" ", "\t")) or stripped.startswith((">>>", "...", "--", "==", "*")):
            continue
        if stripped and not _PROSE_LINE.match(stripped):
            continue
        kept.append(stripped)
    text = "\n".join(kept)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _docstrings(module):
    yield module.__doc__
    for name in sorted(vars(module)):
        if name.startswith("_"):
            continue
        member = getattr(module, name)
        if getattr(member, "__module__", None) != module.__name__:
            continue
        if inspect.isclass(member) or inspect.isfunction(member):
            yield member.__doc__
            if inspect.isclass(member):
                for attr in sorted(vars(member)):
                    if not attr.startswith("_") and inspect.isfunction(vars(member)[attr]):
                        yield vars(member)[attr].__doc__


def stdlib_docstrings(max_chars=None):
    """English prose from the standard library's docstrings, paragraphs separated
    by blank lines; at most ``max_chars`` characters (whole text when None)."""
    pieces, seen, total = [], set(), 0
    for module_name in _MODULES:
        try:
            module = importlib.import_module(module_name)
        except Exception:  # a module missing from this build (e.g. no _tkinter)
            continue
        for doc in _docstrings(module):
            if not doc:
                continue
            text = _prose(doc)
            if len(text) < 40 or text in seen:
                continue
            seen.add(text)
            pieces.append(text)
            total += len(text) + 2
            if max_chars is not None and total >= max_chars:
                return "\n\n".join(pieces)[:max_chars]
    return "\n\n".join(pieces)
