"""Language models on your own text: the Python API under the ``fastrnn`` command.

::

    from fastrnn.lm import Corpus, LanguageModel, ModelConfig, TrainConfig, train, load_run

    corpus = Corpus.from_files(["novel.txt"], level="char")       # or Corpus.builtin()
    model = LanguageModel(corpus.vocab, corpus.tokenizer, ModelConfig(hidden=256))
    result = train(model, corpus, TrainConfig(epochs=5), run_dir="runs/novel",
                   callback=lambda trainer, row: print(row["epoch"], row["val_loss"]))
    print(model.generate_text("The ", length=200, temperature=0.8, seed=1))
    model = load_run("runs/novel").model                             # later, elsewhere

Training follows char-rnn: the token stream is cut into ``batch_size``
contiguous streams (one per batch row) and read in windows of ``seq_len``
tokens; the hidden and cell states at the end of a window are the initial states
of the next one (truncated backpropagation through time: no gradient flows
back across windows), and they are reset to zero at the start of every epoch.
A share of the text, capped at ``val_tokens`` and taken in blocks spread over the
whole text, is held out (:mod:`~fastrnn.lm.split`) and evaluated at every epoch end
and every ``eval_every`` steps or minutes; the latest checkpoint is also written
every ``checkpoint_every`` minutes.  Everything that decides the next step
(parameters, Adam's moments, the carried states, the position in the epoch;
dropout masks are a function of the seed and the step) is in the checkpoint, so a run resumed from any checkpoint,
mid-epoch too, ends with exactly the parameters of an uninterrupted one.  A step
whose loss or gradient is not finite is skipped; several in a row stop the run.
Long windows (``seq_len`` of 10,000 and more) train in bounded memory: the recurrent
layers recompute their activations in backward (``recompute``) and the output layer
and the loss run over chunks of time steps, never holding the (B, S, V) scores
(:meth:`LanguageModel.loss_and_gradients`; docs/long_windows.md).

Text files (``Corpus.from_files``: files, directories, glob patterns) are read once
into a token store (:mod:`fastrnn.token_store`) that training memory-maps: its
memory does not grow with the text, and a resumed run checks the store's sources
(sizes, times, sampled blocks) instead of reading them again.

The modules, by job: :mod:`~fastrnn.lm.config` (the three configurations and
their validators), :mod:`~fastrnn.lm.data` (the corpus and its streams),
:mod:`~fastrnn.lm.split` (training and validation ranges of the text),
:mod:`~fastrnn.lm.model` (the network), :mod:`~fastrnn.lm.evaluation`,
:mod:`~fastrnn.lm.generation` (text from the model), :mod:`~fastrnn.lm.trainer`
(the loop), :mod:`~fastrnn.lm.state` (the trainer's resumable state),
:mod:`~fastrnn.lm.run_dir` (the run's files and their format version),
:mod:`~fastrnn.lm.progress` (what a run shows while it works) and
:mod:`~fastrnn.lm.parallel` (training on several processes under ``mpiexec``).

Shapes: B batch rows (streams), S window length (``seq_len``), L layers,
E embedding size, H hidden size, V vocabulary size.
"""

from .config import ModelConfig, TextConfig, TrainConfig
from .data import Corpus, Windows, minimum_tokens, streams
from .errors import NonFiniteError, RunError
from .model import LanguageModel
from .run_dir import (BEST, CONFIG_FILE, CURVES_FILE, FORMAT, FORMAT_VERSION, LATEST,
                      METRICS_FILE, SAMPLES_FILE, VOCAB_FILE, Run, load_run)
from .state import TrainerState
from .trainer import Trainer, TrainResult, resume, resume_trainer, train

__all__ = [
    "TextConfig", "ModelConfig", "TrainConfig", "Corpus", "LanguageModel", "Trainer",
    "TrainerState", "TrainResult", "Run", "train", "resume", "resume_trainer", "load_run",
    "RunError", "NonFiniteError", "minimum_tokens", "streams", "Windows", "FORMAT",
    "FORMAT_VERSION", "CONFIG_FILE", "VOCAB_FILE", "LATEST", "BEST", "METRICS_FILE",
    "CURVES_FILE", "SAMPLES_FILE",
]
