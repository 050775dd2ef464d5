"""The notebook's training loop: random windows of a word stream, forward,
backward, optimizer step; accuracy after each epoch; best parameters kept."""

import numpy as np

__all__ = ["DataLoader", "compute_acc", "train_net"]


class DataLoader:
    """Random windows of length ``timesteps`` from a 1-D stream.

    data, labels: 1-D integer arrays of equal length (labels = data shifted by one).
    ``get_batch()`` returns (data (N, T), labels (N, T)) with N = batch_size.  Window
    starts are taken in order on the first pass and reshuffled (np.random) after
    each pass, as in the classic code.
    """

    def __init__(self, data, labels, batch_size, timesteps):
        self.data = np.asarray(data)
        self.labels = np.asarray(labels)
        self.batch_size = int(batch_size)
        self.timesteps = int(timesteps)
        if self.data.ndim != 1 or self.labels.shape != self.data.shape:
            raise ValueError(f"data, labels: expected two 1-D arrays of equal length, got shapes "
                             f"{self.data.shape} and {self.labels.shape}")
        n_windows = self.data.shape[0] - self.timesteps
        if self.batch_size < 1 or self.timesteps < 1 or n_windows < self.batch_size:
            raise ValueError(
                f"data: expected at least timesteps + batch_size = "
                f"{self.timesteps + self.batch_size} tokens (timesteps >= 1, batch_size >= 1), "
                f"got {self.data.shape[0]} tokens")
        self._offsets = np.arange(self.timesteps)
        self._reset()

    def _reset(self):
        self.indices = np.arange(self.data.shape[0] - self.timesteps)

    def _shuffle(self):
        np.random.shuffle(self.indices)

    def get_batch(self):
        """Next (data (N, T), labels (N, T)) windows."""
        if len(self.indices) < self.batch_size:
            self._reset()
            self._shuffle()
        starts = self.indices[: self.batch_size]
        self.indices = self.indices[self.batch_size:]
        rows = starts[:, None] + self._offsets
        return self.data[rows], self.labels[rows]


def compute_acc(model, data, labels, num_samples=None, batch_size=100):
    """Next-word accuracy of ``model`` on a stream.

    The whole stream is run as one sequence from a zero state, as the classic
    code does (its ``num_samples`` and ``batch_size`` never take effect for a
    single stream; they are accepted for compatibility).
    Returns the fraction of positions whose argmax score is the label.
    """
    data = np.asarray(data)
    labels = np.asarray(labels)
    scores = model.forward(data.reshape(1, -1), np.zeros((1, model.hidden_dim)))
    return float(np.mean(np.argmax(scores, axis=-1).reshape(-1) == labels.reshape(-1)))


def train_net(data, model, loss_func, optimizer, timesteps, batch_size, max_epochs,
              lr_decay=1.0, lr_decay_every=1000, show_every=100, verbose=False):
    """Train ``model`` on ``data = {'data_train': ints, 'labels_train': ints}``.

    Each iteration takes a batch of random windows (N = batch_size, T = timesteps),
    runs forward, the loss, backward and ``optimizer.step()``.  After every epoch the
    training accuracy is measured; the parameters at the best accuracy are kept.
    Returns (opt_params: dict of copies, loss_hist: one float per iteration,
    train_acc_hist: one float per epoch).
    """
    data_train, labels_train = np.asarray(data["data_train"]), np.asarray(data["labels_train"])
    dataloader = DataLoader(data_train, labels_train, batch_size, timesteps)
    opt_train_acc = 0.0
    opt_params = None
    loss_hist = []
    train_acc_hist = []
    iters_per_epoch = max(data_train.shape[0] // batch_size, 1)
    max_iters = iters_per_epoch * max_epochs
    mask = np.ones((batch_size, timesteps))
    h0 = np.zeros((batch_size, model.hidden_dim))

    for epoch in range(max_epochs):
        if epoch % lr_decay_every == 0 and epoch > 0:
            optimizer.lr = optimizer.lr * lr_decay
            if verbose:
                print(f"Decaying learning rate of the optimizer to {optimizer.lr}")

        for it in range(epoch * iters_per_epoch, (epoch + 1) * iters_per_epoch):
            data_batch, labels_batch = dataloader.get_batch()
            scores = model.forward(data_batch, h0)
            loss = loss_func.forward(scores, labels_batch, mask)
            model.backward(loss_func.backward())
            optimizer.step()
            loss_hist.append(float(loss))
            if verbose and it % show_every == 0:
                print(f"(Iteration {it + 1} / {max_iters}) loss: {loss_hist[-1]}")

        train_acc = compute_acc(model, data_train, labels_train, num_samples=10000)
        train_acc_hist.append(train_acc)
        if train_acc > opt_train_acc:
            if verbose:
                print(f"best performance {train_acc * 100}%")
            opt_train_acc = train_acc
            opt_params = {k: v.copy() for k, v in model.params.items()}
        if verbose:
            print(f"(Epoch {epoch + 1} / {max_epochs}) Training Accuracy: {train_acc}")

    return opt_params, loss_hist, train_acc_hist
