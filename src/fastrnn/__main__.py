"""``python -m fastrnn``: the notebook's last part on the built-in corpus.

Splits the text as the notebook does (lowercase, split on spaces and newlines),
trains ``LanguageModelRNN(V, 10, 20, cell_type='lstm')`` with ``Adam`` through
``train_net``, and prints the loss, the accuracy and a greedy sample.
"""

import argparse
import re
import time

import numpy as np

from .corpus import stdlib_docstrings
from .layer_utils import temporal_softmax_loss
from .optim import Adam
from .rnn import LanguageModelRNN
from .train import train_net


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastrnn", description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=6000, help="words of the built-in text to use")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    np.random.seed(args.seed)
    text = re.split(" |\n", stdlib_docstrings().lower())[: args.words]
    word_list = sorted(set(text))
    index = {word: i for i, word in enumerate(word_list)}
    stream = np.array([index[word] for word in text], dtype=np.int64)
    print(f"Input text size: {len(text)}\nInput word number: {len(word_list)}")

    model = LanguageModelRNN(len(word_list), 10, 20, cell_type="lstm")
    data = {"data_train": stream[:-1], "labels_train": stream[1:]}
    start = time.perf_counter()
    _, loss_hist, acc_hist = train_net(data, model, temporal_softmax_loss(), Adam(model, args.lr),
                                       timesteps=50, batch_size=10, max_epochs=args.epochs)
    seconds = time.perf_counter() - start
    first, last = np.mean(loss_hist[:50]), np.mean(loss_hist[-50:])
    print(f"{len(loss_hist)} iterations in {seconds:.1f} s: loss {first:.2f} -> {last:.2f}, "
          f"training accuracy {acc_hist[0]:.3f} -> {acc_hist[-1]:.3f}")
    words = model.sample(index["the"], 30)
    print("sample:", " ".join(word_list[i] for i in words))


if __name__ == "__main__":
    main()
