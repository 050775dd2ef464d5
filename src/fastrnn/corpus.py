"""A built-in English corpus: the docstrings of the installed Python standard library.

Assembled at run time, offline and deterministically (a fixed list of modules,
members in sorted order), so the project ships no third-party text and downloads
nothing.  The same Python version gives the same text.
"""

import importlib
import inspect
import re
import warnings

# Portable modules (no platform-specific or deprecated ones) whose docstrings are
# mostly prose, not tables or code: together about 0.8 MB of text.
_MODULES = (
    "abc", "argparse", "array", "ast", "asyncio", "asyncio.base_events", "asyncio.events",
    "asyncio.locks", "asyncio.protocols", "asyncio.queues", "asyncio.runners",
    "asyncio.selector_events", "asyncio.streams", "asyncio.tasks", "asyncio.timeouts",
    "asyncio.transports", "base64", "bdb", "bisect", "builtins", "bz2", "calendar", "cmath", "cmd",
    "code", "codecs", "codeop", "collections", "collections.abc", "compileall", "configparser",
    "contextlib", "copy", "cProfile", "csv", "ctypes", "dataclasses", "datetime", "dbm", "decimal",
    "difflib", "dis", "doctest", "email", "email.base64mime", "email.charset", "email.errors",
    "email.feedparser", "email.generator", "email.header", "email.headerregistry", "email.message",
    "email.parser", "email.policy", "email.quoprimime", "email.utils", "enum", "fileinput",
    "fractions", "ftplib", "functools", "gc", "getopt", "gettext", "glob", "graphlib", "gzip",
    "hashlib", "heapq", "hmac", "html", "http.client", "http.cookiejar", "http.cookies",
    "http.server", "imaplib", "importlib.abc", "importlib.metadata", "importlib.util", "inspect",
    "io", "ipaddress", "itertools", "json", "json.decoder", "locale", "logging", "logging.config",
    "logging.handlers", "lzma", "mailbox", "marshal", "math", "mimetypes", "multiprocessing",
    "multiprocessing.context", "multiprocessing.managers", "multiprocessing.reduction",
    "multiprocessing.shared_memory", "numbers", "operator", "optparse", "os", "pathlib", "pdb",
    "pickle", "pickletools", "pkgutil", "platform", "plistlib", "poplib", "pprint", "pstats",
    "py_compile", "pyclbr", "queue", "random", "re", "rlcompleter", "runpy", "sched", "secrets",
    "selectors", "shelve", "shlex", "shutil", "smtplib", "socket", "socketserver", "sqlite3",
    "ssl", "statistics", "string", "struct", "subprocess", "symtable", "sys", "tarfile",
    "tempfile", "textwrap", "threading", "time", "timeit", "tokenize", "traceback", "tracemalloc",
    "turtle", "types", "typing", "unicodedata", "unittest", "unittest.case", "unittest.loader",
    "unittest.mock", "unittest.result", "urllib.parse", "urllib.request", "urllib.robotparser",
    "uuid", "warnings", "wave", "weakref", "wsgiref.handlers", "wsgiref.headers", "wsgiref.util",
    "xml.dom.minidom", "xmlrpc.client", "xmlrpc.server", "zipfile", "zipimport", "zlib",
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


def _documented_attribute(value):
    """Methods (Python or C) and properties of a class carry prose docstrings."""
    return inspect.isroutine(value) or isinstance(value, (property, classmethod, staticmethod))


def _docstrings(module):
    yield module.__doc__
    for name in sorted(vars(module)):
        if name.startswith("_"):
            continue
        member = vars(module)[name]
        if getattr(member, "__module__", None) != module.__name__:
            continue
        if inspect.isclass(member) or inspect.isroutine(member):
            yield member.__doc__
            if inspect.isclass(member):
                for attr in sorted(vars(member)):
                    value = vars(member)[attr]
                    if not attr.startswith("_") and _documented_attribute(value):
                        yield getattr(value, "__doc__", None)


def stdlib_docstrings(max_chars=None):
    """English prose from the standard library's docstrings, paragraphs separated
    by blank lines; at most ``max_chars`` characters (whole text when None)."""
    pieces, seen, total = [], set(), 0
    for module_name in _MODULES:
        # Some modules warn on import or on attribute access (deprecated aliases);
        # reading their docstrings should not print anything.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                module = importlib.import_module(module_name)
            except Exception:  # a module missing from this build (e.g. no _tkinter)
                continue
            docs = [doc for doc in _docstrings(module) if isinstance(doc, str)]
        for doc in docs:
            text = _prose(doc)
            if len(text) < 40 or text in seen:
                continue
            seen.add(text)
            pieces.append(text)
            total += len(text) + 2
            if max_chars is not None and total >= max_chars:
                return "\n\n".join(pieces)[:max_chars]
    return "\n\n".join(pieces)
