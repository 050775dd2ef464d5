"""Small generated texts the language-model tests train on."""

import numpy as np


def rhyme(lines=60, seed=0):
    """A small regular text, different for every seed."""
    rng = np.random.default_rng(seed)
    words = "the cat sat on a mat and a dog ran to the hat".split()
    return "\n".join(" ".join(rng.choice(words, size=rng.integers(3, 8))) + "."
                     for _ in range(lines)) + "\n"
