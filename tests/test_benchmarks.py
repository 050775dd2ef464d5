"""The benchmarks are code too: every asv benchmark runs once at its smallest
parameters, and the side-by-side comparison's pieces run on a tiny problem, so
neither can rot unnoticed."""

import importlib.util
import inspect
import json
import math
import os
import pathlib
import subprocess
import sys
import types

import numpy as np
import pytest

BENCH_DIR = pathlib.Path(__file__).resolve().parent.parent / "asv_bench"
BENCH_MODULES = sorted(p for p in (BENCH_DIR / "benchmarks").glob("*.py") if p.name != "__init__.py")


def load(path):
    spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_suite(path):
    """A module of the asv suites as asv imports it: ``benchmarks.<name>``, with
    asv_bench on the path (the suites import their warm-up from the package)."""
    if str(BENCH_DIR) not in sys.path:
        sys.path.insert(0, str(BENCH_DIR))
    return importlib.import_module(f"benchmarks.{path.stem}")


def benchmark_classes(module):
    return [obj for name, obj in vars(module).items()
            if inspect.isclass(obj) and not name.startswith("_") and obj.__module__ == module.__name__]


def test_there_are_benchmarks_of_every_kind():
    names = set()
    for path in BENCH_MODULES:
        module = load_suite(path)
        names |= {n for n in vars(module) if n.startswith("timeraw_")}
        for cls in benchmark_classes(module):
            names |= {n for n in dir(cls) if n.startswith(("time_", "peakmem_"))}
    kinds = {n.split("_")[0] for n in names}
    assert {"time", "peakmem", "timeraw"} <= kinds


@pytest.mark.parametrize("path", BENCH_MODULES, ids=lambda p: p.stem)
def test_every_benchmark_runs_at_its_smallest_parameters(path):
    module = load_suite(path)
    ran = 0
    for cls in benchmark_classes(module):
        params = [values[0] for values in cls.params] if hasattr(cls, "params") else []
        assert len(params) == len(getattr(cls, "param_names", params))
        bench = cls()
        bench.setup(*params)
        for name in dir(cls):
            if name.startswith(("time_", "peakmem_")):
                getattr(bench, name)(*params)
                ran += 1
    for name, fn in vars(module).items():
        if name.startswith("timeraw_"):
            result = subprocess.run([sys.executable, "-c", fn()], capture_output=True, text=True)
            assert result.returncode == 0, result.stderr
            ran += 1
    assert ran > 0


def test_asv_compiles_before_any_benchmark_under_a_timeout_of_its_own():
    """A first asv run in a fresh environment compiles every kernel: each suite
    module's ``setup_cache`` does it (asv runs that once, before the module's
    benchmarks, with its own timeout), so that no benchmark's 60 s timeout
    counts a cold compile.  Checked with asv's own discovery."""
    from asv_runner import discovery  # a test dependency (pyproject's "test" extra)
    package = load_suite(BENCH_MODULES[0]).__package__
    warm_up_timeout = sys.modules[package].WARM_UP_TIMEOUT
    assert warm_up_timeout >= 600
    found = list(discovery.disc_benchmarks(str(BENCH_DIR / "benchmarks")))
    assert {b.name.split(".")[0] for b in found} == {p.stem for p in BENCH_MODULES}
    for bench in found:
        module = bench.name.split(".")[0]
        assert bench.setup_cache_key is not None, bench.name
        assert bench.setup_cache_key.startswith(f"{module}:"), (bench.name, bench.setup_cache_key)
        assert bench.setup_cache_timeout == warm_up_timeout, bench.name
        assert bench.timeout is None, bench.name  # asv's default, which the compile must not count against


def test_warm_up_runs_every_setup_at_every_parameter_and_every_timeraw_code():
    package = sys.modules[load_suite(BENCH_MODULES[0]).__package__]
    module = types.ModuleType("fake_suite")
    calls = []

    class Grid:
        params = ([1, 2], ["a", "b", "c"])

        def setup(self, n, s):
            calls.append((n, s))

    class Plain:
        def setup(self):
            calls.append("plain")

    class _Base:
        params = ([0],)

        def setup(self, n):
            raise AssertionError("a private base class is not a benchmark")

    for cls in (Grid, Plain, _Base):
        cls.__module__ = module.__name__
        setattr(module, cls.__name__, cls)
    record = f"import {__name__} as t; t.TIMERAW_RAN.append(__name__)"
    module.timeraw_statement = lambda: record
    module.timeraw_with_setup = lambda: ("x = 1", record)  # (statement, setup)
    TIMERAW_RAN.clear()
    package.warm_up(module)
    assert calls == [(1, "a"), (1, "b"), (1, "c"), (2, "a"), (2, "b"), (2, "c"), "plain"]
    assert TIMERAW_RAN == ["__warm_up__", "__warm_up__"]


TIMERAW_RAN = []


def test_comparison_pieces_on_a_tiny_problem():
    compare = load(BENCH_DIR / "compare.py")
    size = (2, 3, 4, 5)
    for cell in compare.CELLS:
        for dtype in compare.DTYPES:
            times = compare.time_layer(cell, dtype, size, budget_s=0.0)
            for peer in ("fastrnn", "numpy"):
                assert times[peer] > 0 and math.isfinite(times[peer])
    fast, slow = compare.time_language_model(50, np.float64, budget_s=0.0)
    assert fast > 0 and slow > 0
    assert compare.layer_flops("lstm", *size) == 4 * compare.layer_flops("rnn", *size)
    peak, formula = compare.lstm_memory(size)
    assert peak > 0 and formula > 0


def test_peers_are_timed_in_alternating_rounds():
    """fastrnn and its peer take turns, so that a burst of outside load falls on
    both sides of a ratio."""
    compare = load(BENCH_DIR / "compare.py")
    calls = []
    times = compare.interleaved_median_ms({"a": lambda: calls.append("a"),
                                           "b": lambda: calls.append("b")}, budget_s=0.0)
    assert compare.ROUNDS >= 2
    assert calls == ["a", "b"] * (1 + compare.ROUNDS)  # one warm-up each, then the rounds
    assert set(times) == {"a", "b"} and all(ms >= 0 for ms in times.values())


def test_the_comparison_program_end_to_end(tmp_path, monkeypatch):
    """``compare.py --quick`` writes its tables and figures (no pauses here: this
    checks the program, not the timings)."""
    compare = load(BENCH_DIR / "compare.py")
    monkeypatch.setattr(compare, "SETTLE_S", 0.0)
    markdown, figures = tmp_path / "table.md", tmp_path / "figures.json"
    compare.main(["--quick", "--markdown", str(markdown), "--json", str(figures)])
    text = markdown.read_text()
    assert "GEMM peak" in text
    rows = [line for line in text.splitlines() if line.startswith(("| lstm |", "| rnn |"))]
    assert len(rows) == len(compare.CELLS) * len(compare.DTYPES)
    data = json.loads(figures.read_text())
    for dtype in ("float64", "float32"):
        assert data["gemm_gflops"][dtype] == max(data["gemm_gflops_before"][dtype],
                                                 data["gemm_gflops_after"][dtype]) > 0
    assert len(data["layers"]) == len(rows) and len(data["language_model"]) == 2
    for row, layer in zip(rows, data["layers"]):  # the host's state around each row
        assert row.count("|") == 12 and "us / " in row
        for when in ("host_before", "host_after"):
            assert layer[when]["region_us"] > 0


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity: Linux only")
def test_host_state_times_every_cpu_and_gives_the_thread_back():
    """``host_state`` pins the calling thread to each CPU it may use in turn, and
    restores its affinity afterwards (else everything timed next would run pinned)."""
    host_state = load(BENCH_DIR / "host_state.py")
    allowed = os.sched_getaffinity(0)
    host = host_state.state()
    assert os.sched_getaffinity(0) == allowed
    assert set(host["vcpu_loop_us"]) == allowed
    assert all(us > 0 for us in host["vcpu_loop_us"].values())
    assert host["vcpu_slowdown"] == (max(host["vcpu_loop_us"].values())
                                     / min(host["vcpu_loop_us"].values())) >= 1.0
    assert host["region_us"] > 0
    assert f"{host['region_us']:.1f} us" in host_state.describe(host)


def test_host_state_without_cpu_affinity(monkeypatch):
    """Where CPU affinity cannot be set, the per-vCPU loop is left out, not faked."""
    host_state = load(BENCH_DIR / "host_state.py")
    monkeypatch.delattr(host_state.os, "sched_setaffinity")
    host = host_state.state()
    assert host["vcpu_loop_us"] == {} and host["vcpu_slowdown"] is None
    assert "no CPU affinity" in host_state.describe(host)
    assert host_state.short(host).startswith("- ")


def test_pytorch_is_timed_in_a_process_of_its_own():
    """PyTorch runs in a worker process, in the same alternating rounds as fastrnn
    and numpy; the worker ends with the peer."""
    compare = load(BENCH_DIR / "compare.py")
    if not compare.HAVE_TORCH:
        pytest.skip("PyTorch is optional and not installed here")
    import os

    with compare.TorchPeer() as peer:
        assert peer.version.startswith("torch ")
        assert peer.process.pid != os.getpid() and peer.process.poll() is None
        for cell in compare.CELLS:
            for dtype in compare.DTYPES:
                times = compare.time_layer(cell, dtype, (2, 3, 4, 5), 0.0, torch_peer=peer)
                assert set(times) == {"fastrnn", "numpy", "torch"}
                assert all(ms > 0 and math.isfinite(ms) for ms in times.values())
    assert peer.process.returncode == 0


@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_numpy_baseline_agrees_with_fastrnn(cell):
    """The baseline must compute the same thing, or its timings mean nothing."""
    compare = load(BENCH_DIR / "compare.py")
    layer_class, _, np_forward, np_backward = compare.CELLS[cell]
    rng = np.random.default_rng(0)
    layer = layer_class(4, 5, init_scale=0.5)
    x, h0, dh = rng.standard_normal((3, 6, 4)), rng.standard_normal((3, 5)), rng.standard_normal((3, 6, 5))
    wx, wh, b = (layer.params[k] for k in (layer.wx_name, layer.wh_name, layer.b_name))
    h_ref, caches = np_forward(x, h0, wx, wh, b)
    dx_ref, dh0_ref, dwx_ref, dwh_ref, db_ref = np_backward(dh, caches, wx, wh)
    np.testing.assert_allclose(layer.forward(x, h0), h_ref, rtol=1e-10, atol=1e-12)
    dx, dh0 = layer.backward(dh)
    for got, want in [(dx, dx_ref), (dh0, dh0_ref), (layer.grads[layer.wx_name], dwx_ref),
                      (layer.grads[layer.wh_name], dwh_ref), (layer.grads[layer.b_name], db_ref)]:
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_ranges_over_runs_take_each_runs_own_ratios_and_peak():
    """``ranges.py`` forms every ratio and GEMM fraction within its run, then the
    range over runs (a ratio of ranges would pair one run's peer with another's)."""
    ranges = load(BENCH_DIR / "ranges.py")
    size = [64, 100, 256, 256]
    flops = ranges.layer_flops("lstm", *size)

    def run(fast_ms, numpy_ms, torch_ms, peak, lm_fast):
        return {"gemm_gflops": {"float32": peak},
                "layers": [dict(cell="lstm", dtype="float32", size=size,
                                fastrnn=fast_ms, numpy=numpy_ms, torch=torch_ms)],
                "language_model": [dict(vocab=200, fastrnn_ms=lm_fast, numpy_ms=4.0)],
                "generation": {"char": 1000.0 * lm_fast}}

    # Run A: faster fastrnn but a slower numpy; run B the other way round.
    fast_a, fast_b = 100.0, 125.0
    runs = [run(fast_a, 300.0, 110.0, flops / (fast_a * 1e6) / 0.8, 0.5),
            run(fast_b, 250.0, 150.0, flops / (fast_b * 1e6) / 0.9, 0.4)]
    lines = ranges.ranges(runs)
    row = next(line for line in lines if line.startswith("| lstm | float32 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == "64, 100, 256, 256"
    assert cells[3] == "100.000 - 125.000"
    assert cells[4] == "2.00x - 3.00x"      # 250/125 and 300/100
    assert cells[5] == "1.10x - 1.20x"      # 110/100 and 150/125
    assert cells[6] == "80% - 90%"
    assert "- Language model iteration, vocabulary 200: fastrnn 0.400 - 0.500 ms, " \
           "numpy/fastrnn 8.00x - 10.00x" in lines
    assert "- Generation char: 400 - 500 tokens/s" in lines


def test_ranges_per_run_line_names_each_missed_target():
    """The per-run table says 'none' for a run that meets every target and names
    each one a run misses, with the figure it reached."""
    ranges = load(BENCH_DIR / "ranges.py")
    peaks = {"float64": 100.0, "float32": 200.0}

    def layer(cell, dtype, size, numpy_ratio=20.0, torch_ratio=40.0, peak_fraction=0.9):
        if tuple(size) in ranges.GEMM_BOUND:
            fast = ranges.layer_flops(cell, *size) / (peak_fraction * peaks[dtype] * 1e6)
        else:
            fast = 1.0
        host = {"vcpu_slowdown": 1.0, "region_us": 1.5}
        return dict(cell=cell, dtype=dtype, size=list(size), fastrnn=fast,
                    numpy=numpy_ratio * fast, torch=torch_ratio * fast,
                    host_before=host, host_after=host)

    def run(changes=None):
        layers = [layer(cell, dtype, size)
                  for cell in ("lstm", "rnn") for dtype in ("float64", "float32")
                  for size in (ranges.NOTEBOOK, ranges.MID_SIZE, *ranges.GEMM_BOUND)]
        for (cell, dtype, size), kwargs in (changes or {}).items():
            index = next(i for i, row in enumerate(layers)
                         if (row["cell"], row["dtype"], tuple(row["size"])) == (cell, dtype, size))
            layers[index] = layer(cell, dtype, size, **kwargs)
        return {"gemm_gflops": peaks, "layers": layers,
                "language_model": [dict(vocab=200, fastrnn_ms=0.5, numpy_ms=4.5),
                                   dict(vocab=2000, fastrnn_ms=3.0, numpy_ms=9.0)],
                "generation": {"char (V=65)": 60_000.0, "word (V=5000)": 20_000.0},
                "jit_warm_s": 0.6, "memory_peak": 115.0, "memory_formula": 100.0}

    good = run()
    assert ranges.missed_targets(good) == []
    bad = run({("rnn", "float64", ranges.NOTEBOOK): dict(numpy_ratio=14.5),
               ("lstm", "float32", ranges.NOTEBOOK): dict(torch_ratio=4.9),
               ("lstm", "float32", ranges.MID_SIZE): dict(torch_ratio=0.98),
               ("rnn", "float32", ranges.GEMM_BOUND[0]): dict(peak_fraction=0.74)})
    bad["language_model"][1]["numpy_ms"] = 7.2   # 2.4x at 2,000 words
    bad["generation"]["char (V=65)"] = 49_000.0
    assert ranges.missed_targets(bad) == [
        "lstm float32 (10, 50, 10, 20) 4.90x PyTorch",
        "lstm float32 (32, 100, 64, 128) 0.98x PyTorch",
        "rnn float64 (10, 50, 10, 20) 14.5x numpy",
        "rnn float32 (64, 100, 256, 256) 74% of peak",
        "language model 2000 words 2.40x",
        "generation char 49,000 tokens/s",
    ]
    table = ranges.per_run([good, bad], ["A", "B"])
    assert table[2].startswith("| A | 20.0x (1000 us) |") and table[2].endswith("| none |")
    assert table[3].startswith("| B | 14.5x (1000 us) |")
    assert "| 1.00x 1.5 / 1.00x 1.5 |" in table[3]
    assert table[3].endswith("generation char 49,000 tokens/s |")


def test_prepare_throughput_script_on_a_small_text(tmp_path, capsys):
    """``prepare_throughput.py`` generates its text, prepares it in a fresh process and
    reports throughput and anonymous memory (figures from the run, not checked here)."""
    script = load(BENCH_DIR / "prepare_throughput.py")
    figures = script.main(["--size-mb", "0.3", "--level", "word", "--dir", str(tmp_path)])
    text = (tmp_path / "generated-0.3mb.txt").read_text(encoding="ascii")
    assert len(text) == 300_000 and text.count("\n") > 1000
    assert figures["text_bytes"] == 300_000 and figures["n_tokens"] > 50_000
    assert figures["mb_per_s"] > 0 and figures["peak_anon_mb"] >= figures["baseline_anon_mb"] > 0
    out = capsys.readouterr().out
    assert "throughput:" in out and "anonymous memory: peak" in out


def test_layer_overhead_script_reports_both_cells(capsys):
    script = load(BENCH_DIR / "layer_overhead.py")
    script.main(["--repeats", "2", "--calls", "20"])
    figures = json.loads(capsys.readouterr().out)
    assert set(figures) == {"lstm", "rnn"}
    assert all(0 < us < 1e5 for us in figures.values())


def test_prepare_throughput_script_trains_on_the_store(tmp_path, capsys):
    """``--train``: a training process reuses the store; its wall time and peak anonymous
    memory are reported (figures from the run, not checked here)."""
    script = load(BENCH_DIR / "prepare_throughput.py")
    figures = script.main(["--size-mb", "0.3", "--level", "char", "--dir", str(tmp_path),
                           "--train", "0.5"])
    assert figures["train_wall_seconds"] > 0.5 and figures["train_peak_anon_mb"] > 0
    assert (tmp_path / "run" / "checkpoint_latest.npz").is_file()
    assert "training, 0.5 s budget:" in capsys.readouterr().out


def test_long_window_script_at_small_sizes():
    """asv_bench/long_window.py --quick: the time ratio, the memory and the long
    run (at T / 100), each a JSON line with finite outputs and a schedule."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    result = subprocess.run([sys.executable, str(BENCH_DIR / "long_window.py"), "--quick"],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    ratio, memory, long_run, _ = lines
    assert ratio["T"] == 100 and ratio["ratio"] > 0
    for run in (memory, long_run):
        assert run["finite"] and run["strides"] and run["beyond_inputs_outputs_MiB"] < 64


def test_mpi_scaling_script_on_a_tiny_model(tmp_path, capsys):
    """asv_bench/mpi_scaling.py: one process and two (mpiexec), a table row each, the
    Allreduce's bytes of the tiny model's gradients (figures from the run, not checked)."""
    pytest.importorskip("mpi4py", reason='the MPI benchmark needs pip install ".[test,mpi]"')
    text = tmp_path / "text.txt"
    text.write_text("the cat sat on the mat.\n" * 200)
    script = load(BENCH_DIR / "mpi_scaling.py")
    best = script.main(["--rounds", "1", "--steps", "2", "--warm-up", "1", "--hidden", "8",
                        "--batch-size", "4", "--seq-len", "8", "--dtype", "float64",
                        "--text", str(text)])
    assert [best[k]["processes"] for k in (1, 2)] == [1, 2]
    parameters = best[2]["parameters"]
    assert best[2]["allreduce_mb"] == pytest.approx(8 * parameters / 1e6)
    assert "| 2 x " in capsys.readouterr().out


def test_seq_len_ablation_script_prints_its_table(capsys):
    ablation = load(BENCH_DIR / "seq_len_ablation.py")
    assert ablation.main(["--seconds", "0.5", "--seq-lens", "8,32", "--tokens-per-step", "64",
                          "--max-chars", "20000", "--val-tokens", "2000",
                          "--eval-rows", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "18,000 training and 2,000 held-out characters" in lines[0]
    header = lines.index("| seq_len | batch | steps | tokens/s | val loss (nats/char) | "
                         "peak memory | recompute |")
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[header + 2:]]
    assert [(row[0], row[1]) for row in rows] == [("8", "8"), ("32", "2")]
    for _, _, steps, speed, loss, peak, recompute in rows:
        assert int(steps.replace(",", "")) >= 1 and float(speed.replace(",", "")) > 0
        assert 0 < float(loss) < 10 and recompute == "off"
        assert peak == "-" if sys.platform != "linux" else peak.endswith(" MiB")


def test_seq_len_ablation_holds_out_the_same_tokens_for_every_window():
    ablation = load(BENCH_DIR / "seq_len_ablation.py")
    corpus = ablation.Corpus.from_text("the cat sat on the mat. " * 20)
    training, held_out = ablation.held_out_split(corpus, 100)
    assert training.vocab is corpus.vocab and len(held_out) == 100
    np.testing.assert_array_equal(np.concatenate([training.ids, held_out]), corpus.ids)


def test_train_vs_torch_scores_both_sides_with_one_function():
    """The side-by-side training benchmark scores fastrnn's parameters with PyTorch's
    network: after the conversion, its evaluation gives fastrnn's own validation loss."""
    pytest.importorskip("torch")
    script = load(BENCH_DIR / "train_vs_torch.py")
    from fastrnn.lm import Corpus, LanguageModel, ModelConfig
    from fastrnn.lm.evaluation import evaluate_streams
    from texts import rhyme

    corpus = Corpus.from_text(rhyme(seed=7))
    model = LanguageModel(corpus.vocab, corpus.tokenizer, ModelConfig(embedding=8, hidden=12),
                          seed=1)
    blocks = corpus.ids[:6 * 41].reshape(6, 41)
    ours = evaluate_streams(model, blocks, 8)["loss"]
    net = script.scoring_net("fastrnn", model.params, len(corpus.vocab))
    assert script.evaluate(net, blocks, 8) == pytest.approx(ours, rel=1e-5)


def test_train_vs_torch_texts_are_built_in_a_stable_order():
    script = load(BENCH_DIR / "train_vs_torch.py")
    for name in ("stdlib", "unicode"):
        text = script.TEXTS[name](50_000)
        assert len(text) == 50_000 and text == script.TEXTS[name](50_000)
    assert "def " in script.TEXTS["stdlib"](50_000)
    assert "LATIN CAPITAL LETTER A\n" in script.TEXTS["unicode"](50_000)


def test_train_vs_torch_end_to_end(tmp_path, capsys):
    """Tiny budgets and model: every run of both sides is scored, summarised and written."""
    pytest.importorskip("torch")
    script = load(BENCH_DIR / "train_vs_torch.py")
    from texts import rhyme

    text = tmp_path / "rhyme.txt"
    text.write_text(rhyme(lines=400, seed=8), encoding="utf-8")
    script.main([str(text), "--budgets", "1", "--repeats", "1", "--points", "2",
                 "--set", "hidden=16", "--set", "embedding=8", "--set", "lr_schedule=cosine",
                 "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert "| 1 s |" in out
    document = json.loads((tmp_path / "out" / "rhyme.json").read_text())
    assert document["settings"] == {"hidden": 16, "embedding": 8, "lr_schedule": "cosine"}
    assert sorted(run["side"] for run in document["runs"]) == ["fastrnn", "torch"]
    for run in document["runs"]:
        losses = [loss for _, _, loss in run["curve"]]
        assert run["best_val_loss"] == min(losses) and all(math.isfinite(x) for x in losses)
        assert run["curve"][0][:2] == [0.0, 0] and run["curve"][-1][1] == run["steps"] >= 1
    fast = [run for run in document["runs"] if run["side"] == "fastrnn"]
    assert all(run["schedule_steps"] >= 1 for run in fast)
    [row] = document["summary"]
    assert row["budget"] == 1.0 and row["lead"] == pytest.approx(
        row["torch_best_val_loss"] - row["fastrnn_best_val_loss"])
    rows = (tmp_path / "out" / "rhyme.csv").read_text().splitlines()
    assert rows[0] == "side,budget,repeat,seconds,step,val_loss"
    assert len(rows) == 1 + sum(len(run["curve"]) for run in document["runs"])
    assert (tmp_path / "out" / "rhyme.png").stat().st_size > 0


def test_step_profile_times_every_phase_of_a_step():
    """``step_profile.py`` runs a training step's calls one by one: the phases it times
    are the step's, and their FLOP count is that of the step's matrix products."""
    script = load(BENCH_DIR / "step_profile.py")
    from fastrnn.lm import Corpus, LanguageModel, ModelConfig, Trainer, TrainConfig
    from texts import rhyme

    corpus = Corpus.from_text(rhyme(seed=9))
    model = LanguageModel(corpus.vocab, corpus.tokenizer, ModelConfig(embedding=8, hidden=12))
    trainer = Trainer(model, corpus, TrainConfig(seq_len=8, batch_size=4, epochs=1))
    phases = script.profile(trainer, 3)
    assert {"recurrent forward", "recurrent backward", "output layer + loss, fwd+bwd", "adam",
            "clip", "whole step (trainer)"} <= set(phases)
    assert all(seconds > 0 for seconds in phases.values())
    assert trainer.state.optimizer.t == 6  # 3 steps phase by phase, 3 whole
    B, S, E, H, V = 2, 3, 4, 5, 6
    assert script.step_flops(B, S, E, H, V) == 3 * (2 * B * S * (E + H) * 4 * H + 2 * B * S * H * V)
    assert script.gemm_peak_gflops(n=64, repeats=1) > 0


def test_recipe_by_steps_trains_exactly_the_steps_asked_and_scores_each():
    """``recipe_by_steps.py`` stands for a time budget by a number of steps: fastrnn trains
    exactly that many (its validations at epoch ends take none), each scored as it ends."""
    script = load(BENCH_DIR / "recipe_by_steps.py")
    from fastrnn.lm import Corpus
    from texts import rhyme

    corpus = Corpus.from_text(rhyme(seed=9))
    settings = {"embedding": 8, "hidden": 12, "seq_len": 8, "batch_size": 4,
                "lr_schedule": "linear", "lr_decay_share": 0.5, "lr": 0.01}
    seen, biases = [], []

    def score_at(step, params):
        seen.append(step)
        biases.append(float(np.abs(params["output_b"]).sum()))

    assert script.train_fastrnn_steps(corpus, settings, 6, score_at) == 6
    assert seen == [1, 2, 3, 4, 5, 6]
    assert len(set(biases)) == 6  # every step changed the parameters


def test_recipe_by_steps_runs_the_torch_script_for_its_steps():
    pytest.importorskip("torch")
    script = load(BENCH_DIR / "recipe_by_steps.py")
    ids = np.random.default_rng(0).integers(0, 7, 32 * 3 * 64 + 1)
    seen = []
    script.train_torch_steps(ids, 7, 4, lambda step, net: seen.append(
        (step, float(net.output.bias.detach().abs().sum()))))
    assert [step for step, _ in seen] == [1, 2, 3, 4]
    assert len({value for _, value in seen}) == 4


def test_compile_profile_nests_each_callee_under_the_kernel_that_compiled_it():
    """Two fresh functions, one calling the other: the listener sees the callee compile
    inside its caller, and the tree puts it under the caller with less time."""
    import numba
    from numba.core import event

    script = load(BENCH_DIR / "compile_profile.py")

    @numba.njit
    def callee(x):
        return x * 2.0

    @numba.njit
    def caller(x):
        return callee(x) + 1.0

    listener = script.compile_listener()
    with event.install_listener("numba:compile", listener):
        assert caller(1.5) == 4.0
    (name, seconds, children), = script.as_tree(listener.done)
    assert name.endswith("caller") and [child[0].split(".")[-1] for child in children] == ["callee"]
    assert 0 < children[0][1] < seconds
    lines = script.tree_lines([(name, seconds, children)])
    assert lines[0].endswith(name) and lines[1].endswith("  " + children[0][0])


def test_compile_profile_refuses_to_run_beside_imported_kernels():
    """Its fresh cache would not reach kernels imported before it: it says so."""
    import fastrnn.kernels  # noqa: F401

    script = load(BENCH_DIR / "compile_profile.py")
    with pytest.raises(SystemExit):
        script.main([])
