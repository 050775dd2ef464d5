"""Quality per minute, side by side: ``fastrnn train``'s defaults against a plain,
fixed PyTorch script, on the same text, held-out tokens and evaluation.

    python asv_bench/train_vs_torch.py                        # built-in corpus, 30/60/180 s
    python asv_bench/train_vs_torch.py --text stdlib          # Python source of the stdlib
    python asv_bench/train_vs_torch.py novel.txt --budgets 60 --repeats 1
    python asv_bench/train_vs_torch.py --set lr_schedule=constant --set hidden=384

For each time budget, a separate run of each side with that budget (a schedule may
depend on it), in separate processes that take turns (fastrnn first in even repeats,
PyTorch first in odd ones), ``--repeats`` times; prints the median best validation
loss and steps/s of both, and writes the runs (JSON), the curves (CSV) and a plot.

fastrnn: the ``fastrnn.lm`` API exactly as ``fastrnn train TEXT --time-budget B`` uses
it (char level, every default of ModelConfig and TrainConfig unless ``--set``, a run
directory, kernels compiled before the clock, its own periodic validation inside its
clock, default threads).  PyTorch: Embedding(V, 64) -> nn.LSTM(64, 256) -> Linear(256, V),
PyTorch's own initialisation, batch 32 x 64, Adam 3e-3, gradient norm clipped at 5,
hidden state carried across windows (reset at each pass over the text), as many
threads as the machine has cores; its clock starts before its first step.

Both train on the same training tokens (fastrnn's split of the text: validation blocks
spread over it) and are scored on the same held-out blocks by the same function
(:func:`evaluate`: PyTorch, windows of 64 carried from zero states): each side copies
its parameters every ``budget / --points`` seconds of its clock and at the end (a copy
takes about a millisecond, inside both clocks); the copies are scored after the runs,
OUTSIDE both clocks.  The best validation loss of a run is the best of its copies.

Texts (built at run time, nothing third-party shipped): ``docstrings`` (fastrnn's
built-in corpus), ``stdlib`` (the standard library's ``.py`` files, in sorted order,
up to ``--max-chars``), ``unicode`` (Unicode character names, one per line, without
the names that only number a character).  They depend on the Python version.
"""

import argparse
import ast
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import unicodedata
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
DEFAULT_OUT = HERE.parent.parent / "docs" / "train_vs_torch"
MAX_CHARS = 1_500_000

# The PyTorch script's fixed sizes and recipe (fastrnn's default model and data shapes).
TORCH = dict(embedding=64, hidden=256, batch_size=32, seq_len=64, lr=3e-3, clip=5.0, seed=0)
EVAL_SEQ_LEN = 64
COLORS = {"fastrnn": "tab:blue", "torch": "tab:orange"}


# --------------------------------------------------------------------------------------------
# Texts
# --------------------------------------------------------------------------------------------

def docstrings_text(max_chars=None):
    """fastrnn's built-in corpus: English prose from the standard library's docstrings."""
    from fastrnn.corpus import stdlib_docstrings
    return stdlib_docstrings(max_chars)


def stdlib_source_text(max_chars=MAX_CHARS):
    """Python source: the standard library's ``.py`` files (tests and site-packages left
    out) in sorted path order, joined by blank lines, cut at ``max_chars``."""
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"}
    pieces, total = [], 0
    for path in sorted(root.rglob("*.py")):
        if skip & set(path.relative_to(root).parts):
            continue
        try:
            source = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        pieces.append(source)
        total += len(source) + 2
        if max_chars is not None and total >= max_chars:
            break
    return "\n\n".join(pieces)[:max_chars]


def unicode_names_text(max_chars=MAX_CHARS):
    """A catalogue, not prose: the names of the Unicode characters, one per line, in code
    point order, without the names made of a number (CJK ideographs, Hangul syllables...)."""
    lines, total = [], 0
    for code in range(sys.maxunicode + 1):
        name = unicodedata.name(chr(code), "")
        if not name or name.endswith(f"{code:04X}") or name.startswith("HANGUL SYLLABLE"):
            continue
        lines.append(name)
        total += len(name) + 1
        if max_chars is not None and total >= max_chars:
            break
    return ("\n".join(lines) + "\n")[:max_chars]


TEXTS = {"docstrings": docstrings_text, "stdlib": stdlib_source_text,
         "unicode": unicode_names_text}


# --------------------------------------------------------------------------------------------
# The PyTorch side and the common evaluation
# --------------------------------------------------------------------------------------------

def torch_model(vocab_size, embedding=TORCH["embedding"], hidden=TORCH["hidden"]):
    """The plain script's network: Embedding -> nn.LSTM -> Linear, PyTorch's initialisation."""
    import torch
    from torch import nn

    class CharLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(vocab_size, embedding)
            self.lstm = nn.LSTM(embedding, hidden, batch_first=True)
            self.output = nn.Linear(hidden, vocab_size)

        def forward(self, x, state=None):
            out, state = self.lstm(self.embedding(x), state)
            return self.output(out), state

    torch.manual_seed(TORCH["seed"])
    return CharLSTM()


def evaluate(net, blocks, seq_len=EVAL_SEQ_LEN):
    """Mean loss (nats per token) of ``net`` predicting tokens 1 to T - 1 of each of the
    blocks (k, T), read together in windows of ``seq_len``, states carried from zeros."""
    import torch
    import torch.nn.functional as F

    data = torch.from_numpy(np.ascontiguousarray(blocks, dtype=np.int64))
    total, count, state = 0.0, 0, None
    with torch.no_grad():
        for start in range(0, data.shape[1] - 1, seq_len):
            stop = min(start + seq_len, data.shape[1] - 1)
            scores, state = net(data[:, start:stop], state)
            targets = data[:, start + 1:stop + 1]
            total += float(F.cross_entropy(scores.reshape(-1, scores.shape[-1]),
                                           targets.reshape(-1), reduction="sum"))
            count += targets.numel()
    return total / count


def load_fastrnn_parameters(net, params):
    """Copy a fastrnn one-layer LSTM language model's parameters (``params``, name ->
    array) into ``net``: torch keeps transposed weights, gates i, f, g, o (fastrnn: i, f,
    o, g) and two biases (fastrnn's one, and zeros)."""
    import torch

    H = params["layer0_wh"].shape[0]
    i, f, o, g = (np.arange(k * H, (k + 1) * H) for k in range(4))
    order = np.concatenate([i, f, g, o])
    values = {"embedding.weight": params["embedding_w"],
              "lstm.weight_ih_l0": params["layer0_wx"][:, order].T,
              "lstm.weight_hh_l0": params["layer0_wh"][:, order].T,
              "lstm.bias_ih_l0": params["layer0_b"][order],
              "lstm.bias_hh_l0": np.zeros(4 * H),
              "output.weight": params["output_w"].T, "output.bias": params["output_b"]}
    net.load_state_dict({k: torch.tensor(np.ascontiguousarray(v), dtype=torch.float32)
                         for k, v in values.items()})


def scoring_net(side, params, vocab_size):
    """A PyTorch network holding the parameters of a copy taken by ``side``."""
    import torch
    if side == "torch":
        net = torch_model(vocab_size)
        net.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
        return net
    if "layer1_wx" in params:
        raise SystemExit("train_vs_torch.py scores one-layer fastrnn models only")
    net = torch_model(vocab_size, params["embedding_w"].shape[1], params["layer0_wh"].shape[0])
    load_fastrnn_parameters(net, params)
    return net


class Copies:
    """Parameter copies every ``every`` seconds of a clock: seconds, steps, arrays."""

    def __init__(self, every):
        self.every, self.next = every, 0.0
        self.seconds, self.steps, self.params = [], [], []

    def take(self, seconds, steps, params, force=False):
        if force or seconds >= self.next:
            self.seconds.append(seconds)
            self.steps.append(steps)
            self.params.append(params())
            self.next = seconds + self.every

    def save(self, path, **figures):
        arrays = {f"{i}/{name}": value for i, params in enumerate(self.params)
                  for name, value in params.items()}
        np.savez(path, seconds=np.array(self.seconds), steps=np.array(self.steps),
                 figures=json.dumps(figures), **arrays)


def torch_script(train_ids, vocab_size, threads):
    """The plain PyTorch script on tokens ``train_ids`` (n,): (net, step), where
    ``step(n)`` trains training step n (its window of the B streams; each pass over
    the text starts from zero states)."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    B, S = TORCH["batch_size"], TORCH["seq_len"]
    length = len(train_ids) // B
    stream = torch.from_numpy(train_ids[:B * length].astype(np.int64).reshape(B, length))
    windows = (length - 1) // S
    net = torch_model(vocab_size)
    optimizer = torch.optim.Adam(net.parameters(), lr=TORCH["lr"])
    carried = [None]

    def step(n):
        window = n % windows
        if window == 0:
            carried[0] = None
        x = stream[:, window * S:(window + 1) * S]
        y = stream[:, window * S + 1:(window + 1) * S + 1]
        scores, state = net(x, carried[0])
        carried[0] = tuple(s.detach() for s in state)
        loss = F.cross_entropy(scores.reshape(-1, vocab_size), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), TORCH["clip"])
        optimizer.step()

    return net, step


def train_torch(data, budget, every, threads):
    """The plain PyTorch script, for ``budget`` seconds from its first step."""
    import torch

    net, step = torch_script(data["train"], int(data["vocab_size"]), threads)
    copies = Copies(every)

    def params():
        return {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}

    steps, step_seconds = 0, 0.0
    start = time.perf_counter()
    while time.perf_counter() - start < budget:
        copies.take(time.perf_counter() - start, steps, params)
        began = time.perf_counter()
        step(steps)
        steps += 1
        step_seconds += time.perf_counter() - began
    seconds = time.perf_counter() - start
    copies.take(seconds, steps, params, force=True)
    return copies, dict(steps=steps, seconds=seconds, step_seconds=step_seconds,
                        threads=threads, version=torch.__version__)


def fastrnn_configs(settings):
    """(ModelConfig, TrainConfig) of fastrnn's defaults with ``settings`` (name -> value)."""
    import dataclasses

    from fastrnn.lm import ModelConfig, TrainConfig
    model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(settings) - model_fields - train_fields
    if unknown:
        raise SystemExit(f"--set: no setting {', '.join(sorted(unknown))} in ModelConfig or "
                         "TrainConfig")
    model = ModelConfig(**{k: v for k, v in settings.items() if k in model_fields})
    train = TrainConfig(**{k: v for k, v in settings.items() if k in train_fields})
    return model.validate(), train.validate()


def fastrnn_model(corpus, settings, **train_changes):
    """fastrnn's default model on ``corpus`` with ``settings`` (name -> value): (model,
    TrainConfig with ``train_changes`` applied), as ``fastrnn train`` builds them."""
    import dataclasses

    from fastrnn.lm import LanguageModel

    model_config, train_config = fastrnn_configs(settings)
    train_config = dataclasses.replace(train_config, **train_changes).validate()
    return (LanguageModel(corpus.vocab, corpus.tokenizer, model_config, train_config.seed),
            train_config)


def split_tokens(corpus, train_config):
    """fastrnn's split of ``corpus``, what both sides see: (held-out blocks (rows, n),
    training tokens (n,) as one array)."""
    split = corpus.split(train_config)
    return split.validation(), np.concatenate([corpus.ids[a:b] for a, b in split.train_ranges])


def train_fastrnn(text, budget, every, settings, run_dir):
    """``fastrnn train`` through its API, with parameter copies taken between steps."""
    import fastrnn
    from fastrnn.lm import Corpus, Trainer

    corpus = Corpus.from_text(text, level="char")
    model, train_config = fastrnn_model(corpus, settings, epochs=None, time_budget=budget)
    copies = Copies(every)
    step_seconds = [0.0]

    class CopyingTrainer(Trainer):
        def _train_window(self, window):
            copies.take(self.state.seconds, self.state.global_step,
                        lambda: {k: v.copy() for k, v in self.model.params.items()})
            began = time.perf_counter()
            loss = super()._train_window(window)
            step_seconds[0] += time.perf_counter() - began
            return loss

    trainer = CopyingTrainer(model, corpus, train_config, run_dir)
    result = trainer.run(progress=False)
    copies.take(trainer.seconds, trainer.global_step,
                lambda: {k: v.copy() for k, v in model.params.items()}, force=True)
    return copies, dict(steps=result.steps, seconds=result.seconds, step_seconds=step_seconds[0],
                        threads=fastrnn.get_num_threads(), version=fastrnn.__version__,
                        own_best_val_loss=result.best_val_loss,
                        schedule_steps=trainer.state.schedule_steps,
                        validations=len(trainer.history))


def worker(args):
    settings = json.loads(args.settings)
    if args.worker == "torch":
        copies, figures = train_torch(np.load(args.data), args.budget, args.every,
                                      args.threads)
    else:
        text = Path(args.text_file).read_text(encoding="utf-8")
        with tempfile.TemporaryDirectory() as run_dir:
            copies, figures = train_fastrnn(text, args.budget, args.every, settings,
                                            os.path.join(run_dir, "run"))
    copies.save(args.result, **figures)
    return 0


# --------------------------------------------------------------------------------------------
# The comparison
# --------------------------------------------------------------------------------------------

def parse_settings(pairs):
    """``--set name=value`` pairs as a dict (values as Python literals, else strings)."""
    settings = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        try:
            settings[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            settings[name] = value
    return settings


def run_side(side, budget, every, paths, settings, threads):
    """Train ``side`` in a process of its own; returns its copies' file and wall seconds."""
    result = paths["dir"] / f"{side}-{budget:g}-{time.monotonic_ns()}.npz"
    command = [sys.executable, str(HERE), "--worker", side, "--budget", str(budget),
               "--every", str(every), "--data", str(paths["data"]),
               "--text-file", str(paths["text"]), "--result", str(result),
               "--settings", json.dumps(settings), "--threads", str(threads)]
    began = time.perf_counter()
    subprocess.run(command, check=True)
    return result, time.perf_counter() - began


def score(side, result, validation, vocab_size):
    """The run's figures and curve, each copy scored by :func:`evaluate`."""
    saved = np.load(result)
    figures = json.loads(str(saved["figures"]))
    curve = []
    for i, (seconds, steps) in enumerate(zip(saved["seconds"], saved["steps"])):
        params = {key.split("/", 1)[1]: saved[key] for key in saved.files
                  if key.startswith(f"{i}/")}
        loss = evaluate(scoring_net(side, params, vocab_size), validation)
        curve.append([round(float(seconds), 3), int(steps), round(loss, 5)])
    os.remove(result)
    return {**figures, "curve": curve, "best_val_loss": min(row[2] for row in curve),
            "steps_per_second": figures["steps"] / figures["seconds"],
            "train_steps_per_second": figures["steps"] / max(figures["step_seconds"], 1e-9)}


def summary(runs, budgets):
    """Median figures of each side at each budget."""
    rows = []
    for budget in budgets:
        row = {"budget": budget}
        for side in ("fastrnn", "torch"):
            mine = [run for run in runs if run["side"] == side and run["budget"] == budget]
            if not mine:
                continue
            for key in ("best_val_loss", "steps_per_second", "train_steps_per_second"):
                row[f"{side}_{key}"] = statistics.median(run[key] for run in mine)
        if "fastrnn_best_val_loss" in row and "torch_best_val_loss" in row:
            row["lead"] = row["torch_best_val_loss"] - row["fastrnn_best_val_loss"]
        rows.append(row)
    return rows


def table(rows):
    lines = ["| budget | fastrnn best val loss | PyTorch best val loss | fastrnn lead (nats) | "
             "fastrnn steps/s (all / steps only) | PyTorch steps/s (all / steps only) |",
             "|---|---|---|---|---|---|"]

    def cell(row, side, key, form):
        value = row.get(f"{side}_{key}")
        return "-" if value is None else format(value, form)

    for row in rows:
        lead = "-" if "lead" not in row else f"{row['lead']:+.3f}"
        lines.append(
            f"| {row['budget']:g} s | {cell(row, 'fastrnn', 'best_val_loss', '.4f')} | "
            f"{cell(row, 'torch', 'best_val_loss', '.4f')} | {lead} | "
            f"{cell(row, 'fastrnn', 'steps_per_second', '.1f')} / "
            f"{cell(row, 'fastrnn', 'train_steps_per_second', '.1f')} | "
            f"{cell(row, 'torch', 'steps_per_second', '.1f')} / "
            f"{cell(row, 'torch', 'train_steps_per_second', '.1f')} |")
    return "\n".join(lines)


def write_outputs(out, name, document):
    from fastrnn.plots import plot_panels

    out.mkdir(parents=True, exist_ok=True)
    json_path, csv_path, png_path = (out / f"{name}.{ext}" for ext in ("json", "csv", "png"))
    json_path.write_text(json.dumps(document, indent=1) + "\n")
    with open(csv_path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["side", "budget", "repeat", "seconds", "step", "val_loss"])
        for run in document["runs"]:
            for seconds, step, loss in run["curve"]:
                writer.writerow([run["side"], run["budget"], run["repeat"], seconds, step, loss])
    # The copies after step 0: the untrained model's loss (about log V) would squeeze the
    # part of the curves that differs into the bottom of the plot.
    panels = [(f"{budget:g} s budget", [(run["side"], [r[0] for r in run["curve"] if r[1] > 0],
                                          [r[2] for r in run["curve"] if r[1] > 0],
                                          COLORS[run["side"]])
                                         for run in document["runs"] if run["budget"] == budget])
              for budget in document["budgets"]]
    plot_panels(panels, png_path, "training time (s)", "validation loss (nats per char)")
    return json_path, csv_path, png_path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", help="a UTF-8 text file (default: --text)")
    parser.add_argument("--text", choices=sorted(TEXTS), default="docstrings",
                        help="a text built at run time [docstrings]")
    parser.add_argument("--max-chars", type=int, default=MAX_CHARS,
                        help=f"cut the text there [{MAX_CHARS}]")
    parser.add_argument("--budgets", type=float, nargs="+", default=[30.0, 60.0, 180.0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--points", type=int, default=12,
                        help="parameter copies scored per run, besides the last [12]")
    parser.add_argument("--sides", nargs="+", choices=("fastrnn", "torch"),
                        default=["fastrnn", "torch"])
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a fastrnn setting other than its default (ModelConfig or "
                             "TrainConfig), to try a recipe")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--name", help="file names of the outputs [the text's name]")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="PyTorch's threads [the machine's cores]")
    for hidden in ("--worker", "--budget", "--every", "--data", "--text-file", "--result"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    parser.add_argument("--settings", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        args.budget, args.every = float(args.budget), float(args.every)
        return worker(args)

    from fastrnn.lm import Corpus
    settings = parse_settings(args.set)
    _, train_config = fastrnn_configs(settings)
    if args.file:
        text, name = Path(args.file).read_text(encoding="utf-8"), Path(args.file).stem
    else:
        text, name = TEXTS[args.text](args.max_chars), args.text
    text = text[:args.max_chars]
    name = args.name or name
    corpus = Corpus.from_text(text, level="char")
    validation, train_ids = split_tokens(corpus, train_config)
    print(f"text {name}: {len(text):,} characters, vocabulary {len(corpus.vocab)}, "
          f"{validation.size:,} held-out tokens; fastrnn settings {settings or 'defaults'}; "
          f"Python {platform.python_version()}, {os.cpu_count()} cores, load "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        paths = {"dir": Path(scratch), "data": Path(scratch) / "data.npz",
                 "text": Path(scratch) / "text.txt"}
        paths["text"].write_text(text, encoding="utf-8")
        np.savez(paths["data"], train=train_ids, vocab_size=len(corpus.vocab))
        for budget in args.budgets:
            every = budget / args.points
            for repeat in range(args.repeats):
                order = args.sides if repeat % 2 == 0 else args.sides[::-1]
                for side in order:
                    load = os.getloadavg()[0]
                    result, wall = run_side(side, budget, every, paths, settings, args.threads)
                    run = {"side": side, "budget": budget, "repeat": repeat, "load": load,
                           "wall_seconds": round(wall, 1),
                           **score(side, result, validation, len(corpus.vocab))}
                    runs.append(run)
                    print(f"{budget:g} s, repeat {repeat}, {side}: best val loss "
                          f"{run['best_val_loss']:.4f}, {run['steps']} steps, "
                          f"{run['steps_per_second']:.1f} steps/s "
                          f"({run['train_steps_per_second']:.1f} counting steps only), "
                          f"load {load:.1f}", flush=True)
    rows = summary(runs, args.budgets)
    print(table(rows))
    document = {"text": name, "chars": len(text), "vocab_size": len(corpus.vocab),
                "held_out_tokens": int(validation.size), "settings": settings,
                "budgets": args.budgets, "repeats": args.repeats, "torch": TORCH,
                "python": platform.python_version(), "cores": os.cpu_count(),
                "summary": rows, "runs": runs}
    for path in write_outputs(args.out, name, document):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
