"""The on-disk cache of compiled kernels (fastrnn.kernels._cache) cannot serve
code compiled from other sources.

Each test copies the package to a temporary directory, adds a small kernel that
calls a helper from another kernels module and reads a constant from a third
(like the dispatch thresholds), and runs it in fresh processes: the decorator,
the key (every ``.py`` under the copy's ``kernels``) and the cache directories
are exactly those of the real kernels.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from numba.core import caching

import fastrnn
from fastrnn.kernels import _cache, activations, lstm
from fastrnn.kernels._jit import kernel

PACKAGE = Path(fastrnn.__file__).parent

HELPER = '''from ._jit import kernel
{padding}

@kernel
def offset(x):
    return x + {value}.0
'''

# A module of constants only, read by the kernel at compile time.
LIMITS = "LIMIT = {value}\n"

KERNEL = '''from ._jit import kernel
from ._probe_helper import offset
from ._probe_limits import LIMIT


@kernel
def probe(x):
    return offset(x) + LIMIT
'''

RUN = '''import json
from fastrnn.kernels._probe_kernel import probe
value = probe(0.0)
print(json.dumps({"value": value, "hits": sum(probe.stats.cache_hits.values())}))
'''


def write_helper(kernels, value):
    # Blank lines move the kernel down: Numba names its cache files after the
    # line a function starts on, so every edit here gives new file names.
    (kernels / "_probe_helper.py").write_text(
        HELPER.format(value=value, padding="\n" * value))


def write_limits(kernels, value):
    (kernels / "_probe_limits.py").write_text(LIMITS.format(value=value))


@pytest.fixture
def tree(tmp_path):
    """A copy of the package with the probe kernel: (root for PYTHONPATH, kernels)."""
    root = tmp_path / "src"
    shutil.copytree(PACKAGE, root / "fastrnn",
                    ignore=shutil.ignore_patterns("__pycache__"))
    kernels = root / "fastrnn" / "kernels"
    write_helper(kernels, 1)
    write_limits(kernels, 100)
    (kernels / "_probe_kernel.py").write_text(KERNEL)
    return root, kernels


def run(root, script=RUN, **env):
    """Run ``script`` in a new process on the package at ``root``; its JSON line."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("NUMBA_", "FASTRNN_"))}
    base.update(
        PYTHONPATH=str(root),
        # Python's own .pyc files are keyed on whole-second mtimes: two edits
        # within a second would run stale byte code, whatever our cache does.
        PYTHONDONTWRITEBYTECODE="1",
        # Numba's user-wide fallback directory, kept inside the test's tree.
        XDG_CACHE_HOME=str(root.parent / "user-cache"),
        **env)
    done = subprocess.run([sys.executable, "-c", script], env=base,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def cache_files(folder):
    return sorted(p.relative_to(folder) for p in Path(folder).rglob("*")
                  if p.suffix in (".nbi", ".nbc"))


def key_dirs(folder):
    return sorted(p.name for p in Path(folder).rglob(_cache.DIR_PREFIX + "*"))


def test_an_edited_helper_is_not_served_from_an_old_entry(tree):
    root, kernels = tree
    assert run(root) == {"value": 101.0, "hits": 0}
    first = cache_files(kernels)

    write_helper(kernels, 2)
    assert run(root) == {"value": 102.0, "hits": 0}
    write_helper(kernels, 3)
    assert run(root) == {"value": 103.0, "hits": 0}
    write_limits(kernels, 200)
    assert run(root) == {"value": 203.0, "hits": 0}
    # Unchanged sources: the entry is loaded (the cache is in use).
    assert run(root) == {"value": 203.0, "hits": 1}
    # Entries of the current key only: as many files as after the first run.
    assert first and len(cache_files(kernels)) == len(first)
    assert len(key_dirs(kernels)) == 1


def test_a_module_imported_after_an_edit_is_not_cached_under_the_old_key(tree):
    root, kernels = tree
    # The key is hashed when the helper is decorated; the limits change before
    # the kernel's module is imported, so it compiles LIMIT = 200.
    script = ('import fastrnn.kernels._probe_helper, pathlib\n'
              f'pathlib.Path({str(kernels)!r}, "_probe_limits.py")'
              '.write_text("LIMIT = 200\\n")\n' + RUN)
    assert run(root, script) == {"value": 201.0, "hits": 0}
    # Back to the sources of that key: their value, not the one compiled above.
    write_limits(kernels, 100)
    assert run(root) == {"value": 101.0, "hits": 0}


def test_files_go_to_the_users_numba_cache_dir(tree, tmp_path):
    root, kernels = tree
    user_dir = tmp_path / "numba-cache"
    assert run(root, NUMBA_CACHE_DIR=str(user_dir))["hits"] == 0
    assert run(root, NUMBA_CACHE_DIR=str(user_dir))["hits"] == 1
    assert cache_files(user_dir) and len(key_dirs(user_dir)) == 1
    assert not cache_files(kernels)


def test_fastrnn_no_cache_writes_no_files(tree, tmp_path):
    root, kernels = tree
    user_dir = tmp_path / "numba-cache"
    assert run(root, FASTRNN_NO_CACHE="1", NUMBA_CACHE_DIR=str(user_dir)) == {
        "value": 101.0, "hits": 0}
    assert not cache_files(tmp_path)


def test_an_unwritable_package_caches_in_the_user_wide_directory(tree, tmp_path):
    root, kernels = tree
    # A file where __pycache__ would be: the in-tree directory cannot be made,
    # as in a read-only site-packages (chmod would not stop root).
    (kernels / "__pycache__").write_text("")
    assert run(root) == {"value": 101.0, "hits": 0}
    user_wide = tmp_path / "user-cache" / "numba"
    assert cache_files(user_wide) and len(key_dirs(user_wide)) == 1


def test_the_real_kernels_use_the_kernel_cache():
    key_dir = _cache.DIR_PREFIX + _cache.kernel_tree().key
    builds = [activations._sigmoid_f64, lstm.lstm_forward.serial, lstm.lstm_forward.parallel]
    for build in builds:
        assert type(build._cache).__name__ == "KernelCache"
        assert Path(build._cache.cache_path).name == key_dir


@pytest.mark.parametrize("change", ["class renamed", "attribute renamed"])
def test_other_numba_internals_fall_back_to_plain_caching(monkeypatch, change):
    if change == "class renamed":
        monkeypatch.delattr(caching, "CompileResultCacheImpl")
    else:
        # Numba keeps working with its locator in another attribute; ours
        # cannot wrap it.
        original = caching.CompileResultCacheImpl.__init__

        def init(self, py_func):
            original(self, py_func)
            self._renamed = self.__dict__.pop("_locator")
        monkeypatch.setattr(caching.CompileResultCacheImpl, "__init__", init)
        monkeypatch.setattr(caching.CacheImpl, "locator", property(
            lambda self: self.__dict__.get("_renamed", self.__dict__.get("_locator"))))
    monkeypatch.setattr(_cache, "_cache_class", None)
    monkeypatch.setattr(_cache, "_warned", False)

    def double(x):
        return 2 * x

    def triple(x):
        return 3 * x

    with pytest.warns(RuntimeWarning, match="plain cache=True") as caught:
        builds = [kernel(double), kernel(triple)]
    assert len(caught) == 1
    for build in builds:
        assert type(build._cache) is caching.FunctionCache
