"""Token store: preparing a generated text (both levels), and opening a prepared
store and checking its sources cheaply (what a resumed run pays).

Sizes stay small so that one run of each is quick; ``asv_bench/prepare_throughput.py``
measures the targets on 50-500 MB in a fresh process.
"""

import importlib.util
import shutil
import sys
import tempfile
from pathlib import Path

from fastrnn.token_store import TokenStore, prepare, remove_store

from . import WARM_UP_TIMEOUT, warm_up

_SCRIPT = Path(__file__).resolve().parent.parent / "prepare_throughput.py"


def setup_cache():
    """Compile the tokenizing loops every benchmark here calls (see the package docstring)."""
    warm_up(sys.modules[__name__])


setup_cache.timeout = WARM_UP_TIMEOUT


def _generator():
    spec = importlib.util.spec_from_file_location("prepare_throughput", _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_text


class Prepare:
    """prepare() of a generated text of ``size_mb`` MB, from scratch each time."""

    params = (["char", "word"], [1, 16])
    param_names = ["level", "size_mb"]

    def setup(self, level, size_mb):
        self.dir = Path(tempfile.mkdtemp(prefix="asv-token-store-"))
        self.text = _generator()(self.dir / "text.txt", size_mb * 10**6)
        prepare([self.text], level, cache_dir=self.dir / "warm")  # compiled loops loaded

    def teardown(self, level, size_mb):
        shutil.rmtree(self.dir, ignore_errors=True)

    def _prepare(self, level):
        store = prepare([self.text], level, cache_dir=self.dir / "stores")
        remove_store(store.path)  # so that the next repeat prepares again

    def time_prepare(self, level, size_mb):
        self._prepare(level)

    def peakmem_prepare(self, level, size_mb):
        self._prepare(level)


class OpenAndCheck:
    """TokenStore.open + check_sources(): cheap (sizes, times, 16 sampled blocks) or full."""

    params = ([False, True],)
    param_names = ["full"]

    def setup(self, full):
        self.dir = Path(tempfile.mkdtemp(prefix="asv-token-store-"))
        text = _generator()(self.dir / "text.txt", 4 * 10**6)
        self.path = prepare([text], "char", cache_dir=self.dir / "stores").path

    def teardown(self, full):
        shutil.rmtree(self.dir, ignore_errors=True)

    def time_open_and_check(self, full):
        TokenStore.open(self.path).check_sources(full=full)
