import numpy as np
import pytest


@pytest.fixture(autouse=True, scope="session")
def token_store_cache(tmp_path_factory):
    """Token stores of the whole session (and of the commands it runs in subprocesses,
    which inherit the environment) go to a temporary directory, never ~/.cache."""
    with pytest.MonkeyPatch.context() as patch:
        cache = tmp_path_factory.mktemp("token-stores")
        patch.setenv("FASTRNN_CACHE_DIR", str(cache))
        yield cache


@pytest.fixture(autouse=True)
def seeded_global_rng():
    """The notebook draws from numpy's global RNG; seed it so every test is deterministic."""
    np.random.seed(231)
    yield
