"""Token store preparation: throughput (MB of text per second) and peak anonymous memory.

    PYTHONPATH=src python asv_bench/prepare_throughput.py --size-mb 50 --level char
    PYTHONPATH=src python asv_bench/prepare_throughput.py --size-mb 50 --level word
    PYTHONPATH=src python asv_bench/prepare_throughput.py --size-mb 500 --train 5
    PYTHONPATH=src python asv_bench/prepare_throughput.py --size-mb 50 --level word \
        --random-words --max-vocab 50000

Generates a text (words drawn, seeded, from the standard library's docstrings at their
natural frequencies, ASCII only, lines of 6-18 words; ``--unicode`` adds curly quotes
and accented words so that every chunk takes the non-ASCII path; ``--random-words`` writes
random words of 4 to 12 letters instead, nearly all distinct: the case where only
``--max-vocab``'s bounded counter keeps the word level's memory flat), then runs ``prepare``
on it in a fresh process into a fresh cache directory, and prints the throughput and memory.

Memory: a thread in that process reads ``RssAnon`` from ``/proc/self/status`` every
5 ms and keeps the peak: anonymous memory only (the heap, numpy arrays), not the page
cache of the files read and written nor file-backed mappings, which is what the
target is about (``VmHWM`` counts both, so it is printed too, for comparison).
Targets: char >= 50 MB/s, word >= 15 MB/s, peak anonymous memory <= 300 MB.

``--train SECONDS`` then runs ``fastrnn train TEXT --time-budget SECONDS`` (a small
model; a validation tail of 0.01% of the text, since its evaluation at the end is
not what is measured) in a fresh process, which reuses the store, and prints its wall
time and its peak anonymous memory, sampled the same way from outside: training memory-maps the
store, so it should not grow with the text (compare ``--size-mb 50`` and ``500``).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TARGET_MB_S = {"char": 50.0, "word": 15.0}
TARGET_ANON_MB = 300.0
_BLOCK_BYTES = 1 << 20
_DISTINCT_BLOCKS = 32  # the text cycles through this many generated 1 MiB blocks

MEASURE = """
import json, sys, threading, time
from fastrnn.token_store import prepare

def status_kb(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field))

peak, running = [status_kb("RssAnon:")], True
baseline = peak[0]

def sample():
    while running:
        peak[0] = max(peak[0], status_kb("RssAnon:"))
        time.sleep(0.005)

sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
start, cpu_start = time.perf_counter(), time.process_time()
max_vocab = None if sys.argv[-2] == "none" else int(sys.argv[-2])
store = prepare(sys.argv[1:-4], sys.argv[-4], sys.argv[-3], min_count=1 if max_vocab else 2,
                max_vocab=max_vocab, cache_dir=sys.argv[-1])
seconds = time.perf_counter() - start
cpu_seconds = time.process_time() - cpu_start
running = False
sampler.join()
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "n_tokens": len(store), "vocab": len(store.vocab),
                  "store_bytes": store.nbytes, "path": str(store.path),
                  "baseline_anon_mb": baseline / 1024, "peak_anon_mb": peak[0] / 1024,
                  "vm_hwm_mb": status_kb("VmHWM:") / 1024}))
"""


def _word_pool():
    """Words and punctuation of the standard library's docstrings, in text order
    (drawing positions uniformly gives their natural frequencies)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    from fastrnn.corpus import stdlib_docstrings
    from fastrnn.text import get_tokenizer
    return [t for t in get_tokenizer("word").split(stdlib_docstrings()) if t != "\n"]


def _random_words(rng, size_bytes):
    """About ``size_bytes`` of random words of 4 to 12 letters, 12 to a line (bytes)."""
    cuts = np.cumsum(rng.integers(5, 14, size_bytes // 8))
    cuts = cuts[cuts < size_bytes]
    text = rng.integers(ord("a"), ord("z") + 1, cuts[-1] + 1, np.uint8)
    text[cuts] = ord(" ")
    text[cuts[11::12]] = ord("\n")
    return text.tobytes()


def generate_text(path, size_bytes, seed=0, unicode=False, random_words=False):
    """Write ``size_bytes`` (about, whole lines) of generated text to ``path``."""
    rng = np.random.default_rng(seed)
    if random_words:  # fresh blocks throughout: the words do not repeat
        with open(path, "wb") as stream:
            for start in range(0, size_bytes, _BLOCK_BYTES):
                stream.write(_random_words(rng, min(_BLOCK_BYTES, size_bytes - start)))
        return path
    pool = [t for t in _word_pool() if t.isascii()]
    if unicode:
        pool += ["\u201cquoted\u201d", "caf\u00e9", "na\u00efve", "\u00fcber", "\u2014"] * 50
    pool = np.array(pool, dtype=object)
    blocks = []
    for _ in range(min(_DISTINCT_BLOCKS, size_bytes // _BLOCK_BYTES + 1)):
        lines, size = [], 0
        while size < _BLOCK_BYTES:
            line = " ".join(pool[rng.integers(0, len(pool), rng.integers(6, 19))]) + "\n"
            lines.append(line)
            size += len(line)
        blocks.append("".join(lines).encode("utf-8"))
    written = 0
    with open(path, "wb") as stream:
        while written < size_bytes:
            block = blocks[rng.integers(len(blocks))][:size_bytes - written]
            stream.write(block)
            written += len(block)
    return path


def measure(paths, level, tokenizer="words", cache_dir=None, max_vocab=None):
    """Run ``prepare`` in a fresh process; returns the measurements (a dict)."""
    src = str(Path(__file__).resolve().parent.parent / "src")
    env = dict(os.environ, PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-c", MEASURE, *map(str, paths), level, tokenizer,
                             str(max_vocab or "none"), str(cache_dir)], capture_output=True,
                            text=True, env=env)
    if result.returncode:
        raise RuntimeError(f"prepare failed:\n{result.stderr}")
    figures = json.loads(result.stdout)
    figures["text_bytes"] = sum(os.path.getsize(p) for p in paths)
    figures["mb_per_s"] = figures["text_bytes"] / 1e6 / figures["seconds"]
    figures["mb_per_cpu_s"] = figures["text_bytes"] / 1e6 / figures["cpu_seconds"]
    return figures


def measure_training(text, seconds, cache_dir, run_dir):
    """Run ``fastrnn train`` on ``text`` for ``seconds`` of training in a fresh process;
    returns its wall time and peak RssAnon (sampled every 5 ms), a dict."""
    src = str(Path(__file__).resolve().parent.parent / "src")
    env = dict(os.environ, FASTRNN_CACHE_DIR=str(cache_dir),
               PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))
    argv = [sys.executable, "-m", "fastrnn", "train", str(text), "--time-budget", str(seconds),
            "--out", str(run_dir), "--hidden", "64", "--embedding", "16", "--seq-len", "32",
            "--batch-size", "16", "--val-fraction", "0.0001", "--quiet"]
    start = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = 0
    while process.poll() is None:
        try:
            with open(f"/proc/{process.pid}/status") as status:
                peak = max([peak] + [int(line.split()[1]) for line in status
                                     if line.startswith("RssAnon:")])
        except OSError:
            break
        time.sleep(0.005)
    out, err = process.communicate()
    if process.returncode:
        raise RuntimeError(f"fastrnn train failed:\n{err.decode()}")
    return {"wall_seconds": time.perf_counter() - start, "peak_anon_mb": peak / 1024}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=float, default=50.0)
    parser.add_argument("--level", choices=("char", "word"), default="char")
    parser.add_argument("--tokenizer", choices=("words", "notebook"), default="words")
    parser.add_argument("--unicode", action="store_true",
                        help="curly quotes and accents in every chunk (the non-ASCII path)")
    parser.add_argument("--random-words", action="store_true",
                        help="random words of 4 to 12 letters, nearly all distinct")
    parser.add_argument("--max-vocab", type=int, metavar="N",
                        help="word level: prepare with max_vocab=N (and min_count=1)")
    parser.add_argument("--dir", help="where to write the text and the store (default: a "
                                      "temporary directory, removed afterwards)")
    parser.add_argument("--train", type=float, metavar="SECONDS",
                        help="then train a small model on the store for SECONDS and print the "
                             "training process's wall time and peak anonymous memory")
    args = parser.parse_args(argv)
    work = Path(args.dir or tempfile.mkdtemp(prefix="prepare-throughput-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        kind = "-unicode" * args.unicode + "-random" * args.random_words
        text = work / f"generated-{args.size_mb:g}mb{kind}.txt"
        if not text.exists():
            started = time.perf_counter()
            generate_text(text, int(args.size_mb * 1e6), unicode=args.unicode,
                          random_words=args.random_words)
            print(f"generated {text} in {time.perf_counter() - started:.1f} s")
        cache = work / "stores"
        shutil.rmtree(cache, ignore_errors=True)
        f = measure([text], args.level, args.tokenizer, cache, args.max_vocab)
        target = TARGET_MB_S[args.level]
        print(f"{args.level} level ({args.tokenizer if args.level == 'word' else 'char'}), "
              f"{f['text_bytes'] / 1e6:.1f} MB of text -> {f['n_tokens']} tokens, vocabulary "
              f"{f['vocab']}, store {f['store_bytes'] / 1e6:.1f} MB"
              + (f", max_vocab {args.max_vocab}" if args.max_vocab else ""))
        print(f"throughput: {f['mb_per_s']:.1f} MB/s ({f['seconds']:.2f} s; target >= "
              f"{target:g}: {'met' if f['mb_per_s'] >= target else 'NOT met'}); "
              f"{f['mb_per_cpu_s']:.1f} MB per CPU second of prepare")
        print(f"anonymous memory: peak {f['peak_anon_mb']:.0f} MB (at start "
              f"{f['baseline_anon_mb']:.0f} MB; target <= {TARGET_ANON_MB:g}: "
              f"{'met' if f['peak_anon_mb'] <= TARGET_ANON_MB else 'NOT met'}); "
              f"VmHWM {f['vm_hwm_mb']:.0f} MB")
        if args.train:
            shutil.rmtree(work / "run", ignore_errors=True)
            t = measure_training(text, args.train, cache, work / "run")
            f.update(train_wall_seconds=t["wall_seconds"], train_peak_anon_mb=t["peak_anon_mb"])
            print(f"training, {args.train:g} s budget: {t['wall_seconds']:.1f} s of wall time "
                  f"(store reused), peak anonymous memory {t['peak_anon_mb']:.0f} MB")
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        return f
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
