"""The notebook's text pipeline end to end, on a small built-in text: split into words, index them,
train a word-level LSTM language model with Adam through train_net, and sample from it."""

import re

import numpy as np
import pytest

from fastrnn.rnn import *
from fastrnn.layer_utils import *
from fastrnn.grad_check import *
from fastrnn.optim import *
from fastrnn.train import *

PARAGRAPH = """the quick brown fox jumps over the lazy dog
the lazy dog sleeps in the warm sun and the quick brown fox runs into the green wood
in the green wood the fox finds a small river and drinks the cold water
then the fox runs back over the hill to see the dog again
the dog wakes up and barks at the fox and the fox jumps over the lazy dog once more"""

VARIATIONS = [
    ("quick", "quick"), ("quick", "clever"), ("brown", "red"), ("warm", "bright"),
    ("small", "little"), ("cold", "clear"), ("hill", "old wall"), ("barks", "growls"),
]

TEXT = "\n".join(PARAGRAPH.replace(old, new) for old, new in VARIATIONS)


@pytest.fixture(scope="module")
def corpus():
    """The notebook's cell, with two changes for reproducibility: the word list is sorted
    (list(set(...)) depends on hash randomisation) and one-element index arrays are unpacked."""
    text = re.split(' |\n', TEXT.lower())  # all words are converted into lower case
    outputSize = len(text)
    word_list = sorted(set(text))
    dataSize = len(word_list)
    output = np.zeros(outputSize)
    for i in range(0, outputSize):
        index = np.where(np.asarray(word_list) == text[i])
        output[i] = index[0][0]
    data_labels = output.astype(int)
    gt_labels = data_labels[1:]
    data_labels = data_labels[:-1]
    return text, word_list, dataSize, data_labels, gt_labels


class CountingAdam(Adam):
    steps = 0

    def step(self):
        self.steps += 1
        super().step()


@pytest.fixture(scope="module")
def trained(corpus):
    np.random.seed(599)
    text, word_list, dataSize, data_labels, gt_labels = corpus
    D, H, T, N, max_epoch = 10, 20, 20, 10, 6

    loss_func = temporal_softmax_loss()
    model = LanguageModelRNN(dataSize, D, H, cell_type='lstm')
    optimizer = CountingAdam(model, 1e-2)
    data = {'data_train': data_labels, 'labels_train': gt_labels}

    results = train_net(data, model, loss_func, optimizer, timesteps=T, batch_size=N,
                        max_epochs=max_epoch)
    return model, optimizer, max_epoch, results


def test_corpus_is_what_the_notebook_builds(corpus):
    text, word_list, dataSize, data_labels, gt_labels = corpus
    assert len(text) > 300
    assert dataSize == len(set(text)) < len(text)
    assert [word_list[i] for i in data_labels] == text[:-1]
    assert [word_list[i] for i in gt_labels] == text[1:]


def test_loss_history_has_one_finite_float_per_iteration(trained):
    model, optimizer, max_epoch, (opt_params, loss_hist, train_acc_hist) = trained
    assert len(loss_hist) == optimizer.steps >= max_epoch
    assert all(isinstance(loss, float) and np.isfinite(loss) for loss in loss_hist)


def test_loss_goes_down(trained):
    _, _, _, (_, loss_hist, _) = trained
    tenth = max(len(loss_hist) // 10, 1)
    assert np.mean(loss_hist[-tenth:]) < np.mean(loss_hist[:tenth])


def test_accuracy_history_has_one_value_per_epoch(trained, corpus):
    _, _, max_epoch, (_, _, train_acc_hist) = trained
    _, _, _, _, gt_labels = corpus
    assert len(train_acc_hist) == max_epoch
    assert all(0.0 <= acc <= 1.0 for acc in train_acc_hist)
    # better than always predicting the most frequent word
    assert max(train_acc_hist) > np.bincount(gt_labels).max() / len(gt_labels)


def test_opt_params_are_copies_of_the_best_parameters(trained, corpus):
    model, _, _, (opt_params, _, train_acc_hist) = trained
    _, _, _, data_labels, gt_labels = corpus
    assert set(opt_params) == set(model.params)
    for k in model.params:
        assert opt_params[k] is not model.params[k]
        assert not np.shares_memory(opt_params[k], model.params[k])
        assert opt_params[k].shape == model.params[k].shape

    # the copies are the parameters of the best epoch: loaded back, they give its accuracy
    final = {k: model.params[k] for k in model.params}
    try:
        for k in opt_params:
            model.params[k] = opt_params[k].copy()
        assert compute_acc(model, data_labels, gt_labels) == max(train_acc_hist)
    finally:
        for k in final:
            model.params[k] = final[k]


def test_sample_starts_with_the_given_word_and_is_greedy(trained, corpus):
    model, _, _, _ = trained
    _, word_list, dataSize, _, _ = corpus
    idx = int(np.where(np.asarray(word_list) == 'dog')[0][0])

    words = model.sample(idx, 99)

    assert len(words) == 100
    assert words[0] == idx
    assert all(isinstance(w, (int, np.integer)) and 0 <= w < dataSize for w in words)
    assert model.sample(idx, 99) == words
    # greedy: running the model over the sample from a zero state predicts each next word
    scores = model.forward(np.asarray([words[:-1]]), np.zeros((1, model.hidden_dim)))
    assert np.argmax(scores[0], axis=1).tolist() == words[1:]
    output = [word_list[i] for i in words]
    assert len(' '.join(output)) > 0
