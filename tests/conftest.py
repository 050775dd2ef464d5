import numpy as np
import pytest


@pytest.fixture(autouse=True)
def seeded_global_rng():
    """The notebook draws from numpy's global RNG; seed it so every test is deterministic."""
    np.random.seed(231)
    yield
