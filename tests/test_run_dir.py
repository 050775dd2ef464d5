"""The trainer's resumable state as one object, the run directory's format version, the
warm-up that compiles the kernels before the clock starts, and the README's Python API."""

import json
import os
import re
import shutil
import string

import numpy as np
import pytest

from fastrnn.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from fastrnn.lm import (FORMAT_VERSION, LATEST, Corpus, LanguageModel, ModelConfig, RunError,
                        Trainer, TrainConfig, TrainerState, load_run, resume, resume_trainer,
                        streams, train)

from texts import rhyme

SMALL = dict(embedding=8, hidden=12, dtype="float64")
FAST = dict(seq_len=8, batch_size=4, lr=1e-2)
README = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")



@pytest.fixture(scope="module")
def corpus():
    return Corpus.from_text(rhyme(seed=4))


def model_for(corpus, **options):
    return LanguageModel(corpus.vocab, corpus.tokenizer, ModelConfig(**{**SMALL, **options}),
                         seed=3)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, corpus):
    """A run of one epoch (two layers, dropout), not to be changed: tests change copies."""
    path = str(tmp_path_factory.mktemp("format") / "run")
    train(model_for(corpus, layers=2, dropout=0.2), corpus, TrainConfig(epochs=1, **FAST), path)
    return path


# What runs of format versions 1-2 did: the tail held out, validation at epoch ends only,
# a constant learning rate.
OLD_SCHEDULE = dict(val_tokens=None, eval_every="epoch", checkpoint_every=None,
                    lr_schedule="constant", warmup=0)
# The settings and state fields each version added.
NEW_SETTINGS = {3: ("val_tokens", "eval_every", "checkpoint_every", "max_nonfinite"),
                4: ("lr_schedule", "warmup", "lr_floor", "lr_decay_share")}
NEW_STATE = {3: ("skipped_steps", "skipped_in_a_row"), 4: ("schedule_steps",)}


@pytest.fixture(scope="module")
def old_style_run(tmp_path_factory, corpus):
    """A run of one epoch with the settings of format versions 1-2 (in the current format)."""
    path = str(tmp_path_factory.mktemp("old") / "run")
    train(model_for(corpus, layers=2, dropout=0.2), corpus,
          TrainConfig(epochs=1, **OLD_SCHEDULE, **FAST), path)
    return path


def as_version(directory, version):
    """Rewrite the run in ``directory`` as run format ``version`` (1 to 3) wrote it."""
    def newer(fields):
        return [name for since, names in fields.items() if since > version for name in names]

    def convert(document):
        for name in newer(NEW_SETTINGS):
            del document["training"][name]
        if version == 1:
            del document["format_version"]
            document["format"] = "fastrnn-run-1"
        else:
            document["format_version"] = version
    edit_config(directory, convert)
    for name in os.listdir(directory):
        if name.endswith(".npz"):
            arrays, meta = load_checkpoint(directory / name)
            for field in newer(NEW_STATE):
                del meta[field]
            del meta["format"]
            if version == 1:
                del meta["format_version"]
            else:
                meta["format_version"] = version
            save_checkpoint(directory / name, arrays, meta)


def copy_run(run_dir, tmp_path, name="copy"):
    target = tmp_path / name
    shutil.copytree(run_dir, target)
    return target


# --------------------------------------------------------------------------------------------
# TrainerState
# --------------------------------------------------------------------------------------------

MEASURED = ("seconds", "tokens_per_second")


def without_times(meta):
    """The metadata without the measured times (which differ from run to run)."""
    return {**{key: value for key, value in meta.items() if key != "seconds"},
            "history": [{k: v for k, v in row.items() if k not in MEASURED}
                        for row in meta["history"]]}


def states_equal(a, b):
    arrays_a, meta_a = a.to_checkpoint()
    arrays_b, meta_b = b.to_checkpoint()
    assert without_times(meta_a) == without_times(meta_b)
    assert arrays_a.keys() == arrays_b.keys()
    for key in arrays_a:
        np.testing.assert_array_equal(arrays_a[key], arrays_b[key], err_msg=key)


def test_the_state_is_saved_and_restored_as_a_whole(corpus):
    trainer = Trainer(model_for(corpus, layers=2, dropout=0.2), corpus,
                      TrainConfig(epochs=1, **FAST))
    for window in range(3):
        trainer._train_window(window)
    trainer.state.step_in_epoch, trainer.state.global_step = 3, 3
    trainer.state.history.append({"epoch": 0.5, "val_loss": 2.0})
    arrays, meta = trainer.state.to_checkpoint()
    # Every field is in the checkpoint: the restored state is the saved one, not a fresh one.
    meta = json.loads(json.dumps(meta))  # as read back from the checkpoint's JSON
    restored = TrainerState.fresh(trainer.model, trainer.config).from_checkpoint(
        arrays, meta, FORMAT_VERSION)
    states_equal(restored, trainer.state)
    assert restored.optimizer.t == 3 and restored.step_in_epoch == 3
    # The restored state is a copy: training on changes neither.
    assert restored.h is not trainer.state.h


def test_a_checkpoint_missing_part_of_the_state_is_refused_before_anything_changes(run_dir,
                                                                                   corpus):
    arrays, meta = load_checkpoint(os.path.join(run_dir, LATEST))
    trainer = Trainer(model_for(corpus, layers=2, dropout=0.2), corpus, TrainConfig(epochs=2,
                                                                                     **FAST))
    before = trainer.state
    del meta["epoch_tokens"]
    with pytest.raises(CheckpointError, match="'epoch_tokens' is missing"):
        trainer.restore(arrays, meta, "ckpt")
    arrays, meta = load_checkpoint(os.path.join(run_dir, LATEST))
    arrays["state/h"] = arrays["state/h"][:, :2]
    with pytest.raises(CheckpointError, match=r"state/h is float64 \(2, 2, 12\), training needs "
                                              r"float64 \(2, 4, 12\)"):
        trainer.restore(arrays, meta, "ckpt")
    assert trainer.state is before


def test_the_kernel_warm_up_changes_no_parameter_or_state(corpus, monkeypatch):
    def trained(warm_up):
        trainer = Trainer(model_for(corpus, layers=2, dropout=0.3), corpus,
                          TrainConfig(epochs=1, **FAST))
        if not warm_up:
            monkeypatch.setattr(trainer, "compile_kernels", lambda: None)
        trainer.run(progress=False)
        return trainer

    with_warm_up, without = trained(True), trained(False)
    for name, value in without.model.params.items():
        np.testing.assert_array_equal(with_warm_up.model.params[name], value, err_msg=name)
    states_equal(with_warm_up.state, without.state)


# --------------------------------------------------------------------------------------------
# The run format version
# --------------------------------------------------------------------------------------------

def test_a_run_records_its_format_version(run_dir):
    with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as stream:
        document = json.load(stream)
    assert (document["format"], document["format_version"]) == ("fastrnn-run", FORMAT_VERSION)
    _, meta = load_checkpoint(os.path.join(run_dir, LATEST))
    assert meta["format_version"] == FORMAT_VERSION


def edit_config(directory, change):
    path = directory / "config.json"
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def test_a_run_of_a_newer_format_is_refused_with_a_clear_error(run_dir, tmp_path, corpus):
    newer = copy_run(run_dir, tmp_path)
    edit_config(newer, lambda document: document.update(format_version=FORMAT_VERSION + 1))
    message = rf"run format version {FORMAT_VERSION + 1}, this fastrnn reads versions 1 to " \
              rf"{FORMAT_VERSION}: upgrade fastrnn"
    with pytest.raises(RunError, match=message):
        load_run(str(newer))
    with pytest.raises(RunError, match=message):
        resume(str(newer), epochs=3, corpus=corpus)
    edit_config(newer, lambda document: document.update(format_version="2"))
    with pytest.raises(RunError, match="format_version: expected an integer >= 1, got '2'"):
        load_run(str(newer))


def test_a_checkpoint_of_a_newer_format_is_refused(run_dir, tmp_path, corpus):
    newer = copy_run(run_dir, tmp_path)
    arrays, meta = load_checkpoint(newer / LATEST)
    save_checkpoint(newer / LATEST, arrays, {**meta, "format_version": FORMAT_VERSION + 1})
    with pytest.raises(CheckpointError, match="upgrade fastrnn"):
        resume_trainer(str(newer), corpus)


@pytest.mark.parametrize("version", [1, 2])
def test_an_old_run_resumes_exactly_with_its_own_split_and_schedule(old_style_run, tmp_path,
                                                                     corpus, version):
    """Version 1 wrote ``"format": "fastrnn-run-1"`` and no version in its checkpoints;
    neither 1 nor 2 recorded the settings and state of version 3."""
    old = copy_run(old_style_run, tmp_path)
    as_version(old, version)
    with pytest.warns(UserWarning, match="dropout masks came from another generator"):
        trainer = resume_trainer(str(old), corpus)
    assert {name: getattr(trainer.config, name) for name in OLD_SCHEDULE} == OLD_SCHEDULE
    n_val = int(len(corpus) * trainer.config.val_fraction)
    assert trainer.split.train_ranges == [(0, len(corpus) - n_val)]  # the tail held out
    # ... and evaluated as versions 1-2 did: cut into at most batch_size streams.
    rows = min(FAST["batch_size"], n_val // (FAST["seq_len"] + 1))
    np.testing.assert_array_equal(trainer.validation, streams(corpus.ids[-n_val:], rows))
    current = copy_run(old_style_run, tmp_path, "current")
    with pytest.warns(UserWarning, match="dropout masks"):
        resume(str(old), epochs=3, corpus=corpus, progress=False)
        resume(str(current), epochs=3, corpus=corpus, progress=False)
    resumed, current = load_run(str(old), "latest"), load_run(str(current), "latest")
    for name, value in current.model.params.items():
        np.testing.assert_array_equal(resumed.model.params[name], value, err_msg=name)
    # Validated at epoch ends only, as the old version did, though the default is timed.
    assert [row["epoch"] for row in resumed.meta["history"]] == [1.0, 2.0, 3.0]
    # The resumed run is rewritten in the current format with the old settings spelled out.
    assert resumed.config["format_version"] == FORMAT_VERSION
    assert {name: resumed.config["training"][name] for name in OLD_SCHEDULE} == OLD_SCHEDULE


def test_a_version_3_run_resumes_at_a_constant_rate(run_dir, tmp_path, corpus):
    """Version 3 had no learning-rate schedule: its runs continue at their constant ``lr``."""
    old = copy_run(run_dir, tmp_path)
    as_version(old, 3)
    # The fixture's run has dropout, whose masks version 3 drew from another generator.
    with pytest.warns(UserWarning, match="dropout masks came from another generator"):
        trainer = resume_trainer(str(old), corpus)
    assert (trainer.config.lr_schedule, trainer.config.warmup) == ("constant", 0)
    steps_before = trainer.global_step
    trainer.run(progress=False, epochs=2)
    assert trainer.state.schedule_steps is None
    rows = [row for row in trainer.history if row["step"] > steps_before]
    assert rows and all(row["lr"] == FAST["lr"] for row in rows)


def test_a_setting_missing_from_the_run_is_an_error_not_a_default(run_dir, tmp_path):
    partial = copy_run(run_dir, tmp_path)
    edit_config(partial, lambda document: document["training"].pop("clip"))
    with pytest.raises(RunError, match=r"the setting training\.clip is missing"):
        load_run(str(partial))


# --------------------------------------------------------------------------------------------
# The README's Python API
# --------------------------------------------------------------------------------------------

def test_the_readmes_python_api_example_runs(tmp_path, monkeypatch):
    with open(README, encoding="utf-8") as stream:
        blocks = re.findall(r"```python\n(.*?)```", stream.read(), flags=re.S)
    examples = [block for block in blocks if "from fastrnn.lm import" in block]
    assert examples, "README.md: no Python example of fastrnn.lm"
    monkeypatch.chdir(tmp_path)
    for example in examples:
        for name in set(re.findall(r"[\w./-]+\.txt", example)):
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            # Every letter, so that any start text of the example is in the vocabulary.
            letters = string.ascii_letters + string.digits + string.punctuation + " \n"
            (tmp_path / name).write_text(rhyme(lines=400) + letters * 5, encoding="utf-8")
        exec(compile(example, "README.md", "exec"), {})
