"""The on-disk cache of compiled kernels, keyed on every kernel source.

Numba keys a function's cache entry on its own bytecode and on the file it is
defined in, nothing else.  A kernel's machine code also holds everything it
calls or reads at compile time: helpers from other files (``activations``,
``simd``, ``packed``) and module-level constants (thresholds) are compiled into
it.  After an edit to one of those, Numba served the old machine code.

Design: a cache *locator* of our own, given only to fastrnn's kernels.

* Key.  The key is a SHA-256 of the package version and of the path and content
  of every ``.py`` file under the ``fastrnn/kernels`` directory (found by
  walking it, so a module added later is covered without a list to keep), hashed
  once per process (the files are small: a few milliseconds).  It is the
  locator's source stamp, together with Numba's own stamp of the defining file.
* Where.  Each key has a directory, ``fastrnn-kernels-<key>``, inside the one
  Numba itself would use for the function: its locator is chosen by Numba's own
  rules (``NUMBA_CACHE_DIR`` when the user set it, else the package's
  ``__pycache__``, else the user-wide cache directory when the package is
  installed read-only, or ``NUMBA_CACHE_LOCATOR_CLASSES``), so every user
  setting keeps working.
* No pile-up.  The first time a process writes an entry, it deletes the other
  keys' directories beside its own.  A per-key directory is needed: Numba
  overwrites an index whose stamp differs, but its files are named after the
  function's first line number, so an edit that moves a kernel down leaves the
  old files behind for good.
* Sources edited while a process runs.  A kernel module imported after the
  edit would be compiled from the new text under the key of the old one.  The
  file sizes and modification times seen when the key was hashed are checked
  again when a module's kernels are decorated: after a change, they get no disk
  cache.  (Kernels decorated before compile the text they were imported with,
  which is the text of the key.)

Why not register the locator in Numba's global list
(``CacheImpl._locator_classes``): that would change the caching of every
Numba function in the process, and ``NUMBA_CACHE_LOCATOR_CLASSES`` replaces the
list, which would silently drop our key.  Here each kernel's dispatcher gets
its own cache object (what ``Dispatcher.enable_caching`` does with Numba's).

This uses Numba internals (``FunctionCache``, ``CompileResultCacheImpl`` and
its ``_locator``, the dispatcher's ``_cache``).  When they are not as expected
(another Numba version), :func:`jit` warns once and falls back to Numba's plain
``cache=True``, whose entries can be stale in the way described above.
"""

import hashlib
import os
import shutil
import tempfile
import warnings

from numba import njit
from numba.core import caching
from numba.extending import is_jitted

from .. import __version__

KERNELS_DIR = os.path.dirname(os.path.abspath(__file__))
DIR_PREFIX = "fastrnn-kernels-"
NO_CACHE_VARIABLE = "FASTRNN_NO_CACHE"


class NumbaInternalsChanged(Exception):
    """Numba's caching classes are not shaped as this module expects."""


def caching_disabled():
    """True when ``FASTRNN_NO_CACHE`` is set to anything but ``""`` or ``"0"``."""
    return os.environ.get(NO_CACHE_VARIABLE, "") not in ("", "0")


def _stats(root, prefix=""):
    """(relative path, size, mtime_ns) of every ``.py`` file under ``root``,
    sorted: what adding, removing or editing a source changes."""
    out = []
    with os.scandir(root) as entries:
        for entry in entries:
            if entry.is_dir():
                # __pycache__ holds the cache itself and byte code, not sources.
                if entry.name != "__pycache__":
                    out.extend(_stats(entry.path, prefix + entry.name + "/"))
            elif entry.name.endswith(".py"):
                st = entry.stat()
                out.append((prefix + entry.name, st.st_size, st.st_mtime_ns))
    return tuple(sorted(out))


class SourceTree:
    """The key of the sources under ``root``, as they were when first hashed."""

    def __init__(self, root):
        self.root = root
        # Stat before reading: an edit during the read then shows as a change.
        self.stats = _stats(root)
        digest = hashlib.sha256(__version__.encode())
        for rel, _, _ in self.stats:
            with open(os.path.join(root, rel), "rb") as f:
                content = f.read()
            for part in (rel.encode(), content):
                digest.update(len(part).to_bytes(8, "little"))
                digest.update(part)
        self.key = digest.hexdigest()[:16]
        self._module_checks = {}

    def unchanged(self):
        """True if no source was added, removed or modified since the hash."""
        return _stats(self.root) == self.stats

    def unchanged_at_import(self, module):
        """:meth:`unchanged`, checked at the first call for ``module`` (the
        module being imported: its kernels are decorated within milliseconds of
        each other, and a check for each of the ~90 builds costs ~25 ms of
        import on a busy 2-core host, against ~3 ms for the ~12 modules)."""
        if module not in self._module_checks:
            self._module_checks[module] = self.unchanged()
        return self._module_checks[module]


_tree = None


def kernel_tree():
    """The :class:`SourceTree` of ``fastrnn/kernels``, hashed once per process."""
    global _tree
    if _tree is None:
        _tree = SourceTree(KERNELS_DIR)
    return _tree


_pruned = set()


class KernelTreeLocator:
    """Numba's locator for a function, moved into a directory per source key.

    Numba calls ``get_cache_path``, ``get_source_stamp``, ``get_disambiguator``
    and ``ensure_cache_path``; anything else it reads (``_py_file`` for its
    warnings) comes from the locator it chose.
    """

    def __init__(self, base, tree):
        self._base = base
        self._tree = tree
        self._parent = base.get_cache_path()
        self._path = os.path.join(self._parent, DIR_PREFIX + tree.key)

    def __getattr__(self, name):
        return getattr(self._base, name)

    def get_cache_path(self):
        return self._path

    def get_source_stamp(self):
        return self._tree.key, self._base.get_source_stamp()

    def get_disambiguator(self):
        return self._base.get_disambiguator()

    def ensure_cache_path(self):
        os.makedirs(self._path, exist_ok=True)
        # The directory may exist but not be writable (as Numba checks).
        tempfile.TemporaryFile(dir=self._path).close()
        if self._parent not in _pruned:
            _pruned.add(self._parent)
            self._prune()

    def _prune(self):
        """Delete the other keys' directories beside this one."""
        for name in os.listdir(self._parent):
            path = os.path.join(self._parent, name)
            if (name.startswith(DIR_PREFIX) and path != self._path
                    and os.path.isdir(path)):
                # Another process may be deleting it too.
                shutil.rmtree(path, ignore_errors=True)


def _build_cache_class():
    """:class:`KernelCache` on Numba's classes, or NumbaInternalsChanged."""
    try:
        function_cache = caching.FunctionCache
        numba_impl = caching.CompileResultCacheImpl
    except AttributeError as missing:
        raise NumbaInternalsChanged(missing) from None

    class KernelCacheImpl(numba_impl):
        """Numba's cache implementation, with its locator wrapped."""

        def __init__(self, py_func):
            super().__init__(py_func)
            base = getattr(self, "_locator", None)
            if base is None or not hasattr(base, "get_cache_path"):
                raise NumbaInternalsChanged("CompileResultCacheImpl has no _locator")
            self.tree = kernel_tree()
            self._locator = KernelTreeLocator(base, self.tree)

    class KernelCache(function_cache):
        """A kernel's on-disk cache, keyed on every source of the kernel tree."""

        _impl_class = KernelCacheImpl

        def __init__(self, py_func):
            super().__init__(py_func)
            if not self._impl.tree.unchanged_at_import(py_func.__module__):
                # The function may be the edited text, the key is not.
                self.disable()

        def save_overload(self, sig, data):
            try:
                super().save_overload(sig, data)
            except OSError as error:
                # A process of another key may have pruned the directory
                # meanwhile: the compiled code is fine, it just is not kept.
                warnings.warn(f"fastrnn: compiled code not cached ({error})",
                              RuntimeWarning, stacklevel=2)

    return KernelCache


_cache_class = None


def kernel_cache_class():
    """The cache class given to each kernel (built on first use)."""
    global _cache_class
    if _cache_class is None:
        _cache_class = _build_cache_class()
    return _cache_class


_warned = False


def _warn_fallback(reason):
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(
            f"fastrnn: Numba's caching internals are not as expected ({reason}); "
            "kernels use Numba's plain cache=True, which does not notice edits to "
            "the helpers a kernel calls from other files (set FASTRNN_NO_CACHE=1 "
            "while editing kernels)", RuntimeWarning, stacklevel=3)


def jit(fn, options):
    """``njit(**options)(fn)``, with the kernel cache when ``options["cache"]``."""
    options = dict(options)
    cache = options.pop("cache", False)
    dispatcher = njit(cache=False, **options)(fn)
    # NUMBA_DISABLE_JIT gives the Python function back: nothing to cache.
    if not cache or caching_disabled() or not is_jitted(dispatcher):
        return dispatcher
    try:
        cache_class = kernel_cache_class()
        no_cache = getattr(caching, "NullCache", ())
        if not isinstance(getattr(dispatcher, "_cache", None), no_cache):
            raise NumbaInternalsChanged("the dispatcher has no _cache")
        dispatcher._cache = cache_class(dispatcher.py_func)
    except NumbaInternalsChanged as reason:
        _warn_fallback(reason)
        return njit(cache=True, **options)(fn)
    return dispatcher
