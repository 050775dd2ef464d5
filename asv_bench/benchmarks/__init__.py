"""fastrnn's asv suites.

Each suite module compiles its kernels in a module-level ``setup_cache`` that calls
:func:`warm_up`, so that no benchmark pays for a cold compile.

Why: the kernels are compiled by Numba the first time a process calls them with
new types, and kept on disk (``cache=True``) for later processes of the same
install.  asv runs every benchmark case in a process of its own with a 60 s
timeout that counts the case's ``setup`` too, and a fresh asv environment
starts with no compiled code: the first case to touch a kernel paid its whole
cold compile (about 55 s for the LSTM on a slow 2-core host, so some cases of
``language_model.TrainStep.peakmem_train_step`` timed out on a first run).

asv runs ``setup_cache`` once per environment and run, in a process of its own,
before the benchmarks that use it, with the timeout set on the function
(:data:`WARM_UP_TIMEOUT` here).  A module-level ``setup_cache`` is used by every
benchmark of its module (asv looks the attribute up on the class, then on the
module), and it is keyed by its module and line, so each module's warm-up runs
once, just before that module's benchmarks.  It returns ``None``, so asv passes
the benchmarks no cache argument and their signatures stay as they are.

The warm-up does not need to know which kernels, forms, dtypes or serial/parallel
builds a suite uses, nor where Numba keeps its cache: it runs every benchmark
class's ``setup`` at every parameter combination (each ``setup`` runs its
benchmark once) and the code of every ``timeraw_`` benchmark, which compiles (or
loads) exactly what the benchmarks then call.
"""

import itertools
import textwrap
import types

# Seconds for one module's warm-up.  It has no result to time, so its timeout
# only stops a hang: generous, because a cold compile of everything a suite uses
# is long on a slow, shared host: 17 minutes for language_model's in a first asv
# run on a 2-core VM running other builds (load average 6-10).  asv's default
# per benchmark, which the compile must not count against, is 60 s.
WARM_UP_TIMEOUT = 3600


def suite_classes(module):
    """The benchmark classes defined in ``module`` (public, with a ``setup``)."""
    return [obj for name, obj in vars(module).items()
            if isinstance(obj, type) and not name.startswith("_")
            and obj.__module__ == module.__name__ and hasattr(obj, "setup")]


def warm_up(module):
    """Run ``module``'s benchmark classes' ``setup`` at every parameter combination,
    and the code of its ``timeraw_`` benchmarks, so every kernel they call is compiled."""
    for cls in suite_classes(module):
        for params in itertools.product(*getattr(cls, "params", ())):
            cls().setup(*params)
    for name, fn in vars(module).items():
        if name.startswith("timeraw_") and isinstance(fn, types.FunctionType):
            code = fn()  # the statement, or (statement, setup)
            statement, setup = code if isinstance(code, tuple) else (code, "")
            namespace = {"__name__": "__warm_up__"}
            exec(textwrap.dedent(setup), namespace)
            exec(textwrap.dedent(statement), namespace)
