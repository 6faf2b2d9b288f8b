import math
import signal

import pytest
import torch

from autocomplete import checkpoint, data
from autocomplete.errors import CheckpointError, ConfigError
from autocomplete.predictor import Predictor
from autocomplete.resume import unfinished
from autocomplete.train import TrainConfig, Trainer, fit_to_corpus, resume_path

from .conftest import SHAKESPEARE, make_lm


def test_the_notebook_toy_predicts_you_after_how_are(toy_model_path):
    predictor = Predictor.load(toy_model_path)
    assert predictor.suggest("how are ", k=1)[0].word == "you"
    assert predictor.suggest("hello how ", k=2)[0].word in ("are", "is")


def small_corpus(lm, fraction=0.1):
    return data.load_corpus(data.resolve_sources([SHAKESPEARE]), lm.tokenizer, lm.vocab, valid_fraction=fraction)


def test_training_lowers_the_validation_loss_and_writes_the_best_model(tmp_path):
    lm = make_lm()
    corpus = small_corpus(lm)
    before, _ = __import__("autocomplete.evaluate", fromlist=["x"]).evaluate_loss(lm.model, corpus.valid)
    out = tmp_path / "m.pt"
    result = Trainer(lm, corpus, TrainConfig(epochs=2, batch_size=16, bptt=20, lr=5e-3), out, progress=False).run()
    assert result.best_valid_loss < before - 0.5
    saved = checkpoint.load(out)
    meta = saved.metadata
    assert meta["valid_perplexity"] == pytest.approx(math.exp(result.best_valid_loss))
    assert meta["tokens_seen"] == result.tokens_seen > 0 and meta["wall_time"] >= 0
    assert [h["epoch"] for h in meta["history"]] == [1.0, 2.0]  # the validation curve travels with the model
    assert min(h["valid_loss"] for h in meta["history"]) == pytest.approx(result.best_valid_loss)
    assert resume_path(out).exists()


def params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_resume_after_an_interruption_reaches_the_same_weights(tmp_path, monkeypatch):
    config = TrainConfig(epochs=2, batch_size=8, bptt=16, lr=3e-3, save_every=1e9)
    straight = make_lm(seed=3, dropout=0.3)
    Trainer(straight, small_corpus(straight), config, tmp_path / "a.pt", progress=False).run()

    interrupted = make_lm(seed=3, dropout=0.3)
    trainer = Trainer(interrupted, small_corpus(interrupted), config, tmp_path / "b.pt", progress=False)
    original = Trainer.lr_at

    def interrupt_at_step_37(self, step):
        if step == 37:
            self.stop_signal = signal.SIGINT  # what the Ctrl-C handler does: stop after this step
        return original(self, step)

    monkeypatch.setattr(Trainer, "lr_at", interrupt_at_step_37)
    assert trainer.run().interrupted
    monkeypatch.setattr(Trainer, "lr_at", original)
    assert unfinished(resume_path(tmp_path / "b.pt")) == "epoch 1 of 2, step 38"  # a new run must not replace it
    assert unfinished(resume_path(tmp_path / "a.pt")) is None  # finished: a new run may
    older = checkpoint.read_payload(resume_path(tmp_path / "a.pt"), kind="resume")
    del older["training"]["finished"]  # as versions before that flag wrote it: every epoch run is finished too
    torch.save(older, tmp_path / "older.pt.resume")
    assert unfinished(tmp_path / "older.pt.resume") is None

    resumed = make_lm(seed=99, dropout=0.3)  # different initial weights: all must come from the resume file
    result = Trainer(resumed, small_corpus(resumed), config, tmp_path / "b.pt", progress=False).run(resume=True)
    assert not result.interrupted and result.steps == trainer.batches_per_epoch * 2
    assert torch.allclose(params(resumed.model), params(straight.model), atol=1e-5)


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_a_closed_terminal_stops_training_at_a_step_boundary_with_its_state_saved(tmp_path, monkeypatch):
    import os

    lm = make_lm()
    trainer = Trainer(lm, small_corpus(lm), TrainConfig(epochs=1, batch_size=8, bptt=16, save_every=1e9),
                      tmp_path / "m.pt", progress=False)
    original = Trainer.lr_at

    def hang_up_at_step_5(self, step):
        if step == 5:
            os.kill(os.getpid(), signal.SIGHUP)
        return original(self, step)

    monkeypatch.setattr(Trainer, "lr_at", hang_up_at_step_5)
    previous = signal.signal(signal.SIGHUP, lambda signum, frame: None)  # where training ignores it: not this run's end
    try:
        result = trainer.run()
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert result.interrupted and trainer.stop_signal == signal.SIGHUP
    assert unfinished(resume_path(tmp_path / "m.pt")) == "epoch 1 of 1, step 6"


def test_resume_refuses_a_file_for_another_model(tmp_path):
    lm = make_lm()
    corpus = small_corpus(lm)
    Trainer(lm, corpus, TrainConfig(epochs=1, batch_size=8, bptt=16, max_steps=3), tmp_path / "m.pt", progress=False).run()
    other = make_lm(hidden_dim=48)
    with pytest.raises(CheckpointError, match="different vocabulary or model size"):
        Trainer(other, corpus, TrainConfig(epochs=1, batch_size=8, bptt=16), tmp_path / "m.pt", progress=False).run(
            resume=True
        )


def test_max_steps_and_time_budgets_stop_training_early(tmp_path):
    lm = make_lm()
    result = Trainer(lm, small_corpus(lm), TrainConfig(epochs=5, batch_size=8, max_steps=4), tmp_path / "m.pt", progress=False).run()
    assert result.steps == 4 and result.stopped_early
    assert (tmp_path / "m.pt").exists()


def test_a_corpus_smaller_than_one_batch_trains_with_a_smaller_batch(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text("just a few words here\n")
    lm = make_lm(path)
    corpus = data.load_corpus(data.resolve_sources([path]), lm.tokenizer, lm.vocab)
    messages: list[str] = []
    trainer = Trainer(lm, corpus, TrainConfig(epochs=2, batch_size=64), tmp_path / "m.pt", log=messages.append, progress=False)
    trainer.run()
    assert trainer.batch_size < 64 and any("smaller than one batch" in m for m in messages)
    assert (tmp_path / "m.pt").exists()


def test_the_plateau_schedule_divides_the_rate_when_validation_stalls(tmp_path):
    lm = make_lm()
    trainer = Trainer(lm, small_corpus(lm), TrainConfig(schedule="plateau", lr=20.0, optimizer="sgd"), tmp_path / "m.pt", progress=False)
    trainer.best_loss = 1.0
    trainer._after_validation(2.0)
    assert trainer.lr_at(10) == pytest.approx(5.0)


def test_a_time_budget_anneals_the_cosine_schedule_by_elapsed_time():
    lm = make_lm()
    trainer = Trainer(lm, small_corpus(lm), TrainConfig(lr=1.0, warmup_steps=0, epochs=100, max_time=60), "unused.pt", progress=False)
    trainer.elapsed = 30
    assert trainer.lr_at(1) == pytest.approx(0.1 + 0.9 * 0.5)
    trainer.elapsed = 60
    assert trainer.lr_at(1) == pytest.approx(0.1)


def test_the_cosine_schedule_warms_up_then_decays():
    lm = make_lm()
    trainer = Trainer(lm, small_corpus(lm), TrainConfig(lr=1.0, warmup_steps=10), "unused.pt", progress=False)
    assert trainer.lr_at(0) == pytest.approx(0.1 * 1.0, rel=0.2)
    assert trainer.lr_at(10) > trainer.lr_at(trainer.total_steps - 1)
    assert trainer.lr_at(trainer.total_steps) == pytest.approx(0.1)


@pytest.mark.parametrize(
    "settings, message",
    [({"epochs": 0}, "epochs"), ({"lr": -1.0}, "learning rate"), ({"device": "tpu"}, "unknown device"),
     ({"batch_size": 0}, "batch size")],
)
def test_invalid_training_settings_are_refused(settings, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**settings)


def test_asking_for_cuda_without_a_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        TrainConfig(device="cuda")


def test_training_stops_early_once_validation_stops_improving_and_keeps_the_best(tmp_path, monkeypatch):
    lm = make_lm()
    losses = iter([5.0, 4.0, 3.0, 3.5, 3.2, 2.0, 1.0])  # the start, then epochs 1..6
    monkeypatch.setattr(Trainer, "validate", lambda self: next(losses))
    logged = []
    config = TrainConfig(epochs=6, batch_size=16, bptt=20, lr=5e-3, patience=2, validate_first=True)
    trainer = Trainer(lm, small_corpus(lm), config, tmp_path / "m.pt", log=logged.append, progress=False)
    result = trainer.run()
    assert result.stopped_early and result.best_valid_loss == 3.0
    assert result.steps == 4 * trainer.batches_per_epoch  # epochs 3 and 4 did not beat epoch 2's 3.0
    metadata = checkpoint.load(tmp_path / "m.pt").metadata
    assert (metadata["valid_loss"], metadata["epochs"]) == (3.0, 2)  # the best model was written after epoch 2
    # and its file tells the whole run (sweep j, item 4: `info` drew a curve cut off at the best, still improving)
    assert [h["valid_loss"] for h in metadata["history"]] == [5.0, 4.0, 3.0, 3.5, 3.2] and metadata["run_epochs"] == 4
    assert any("stopping early" in line for line in logged) and any("before training" in line for line in logged)


def test_info_shows_a_run_that_went_on_past_its_best_model_and_got_worse(tmp_path, monkeypatch, capsys):
    from autocomplete.cli import main

    lm = make_lm()
    losses = iter([5.0, 4.0, 3.0, 3.5, 3.9])
    monkeypatch.setattr(Trainer, "validate", lambda self: next(losses))
    config = TrainConfig(epochs=4, batch_size=16, bptt=20, lr=5e-3, patience=9, validate_first=True)
    Trainer(lm, small_corpus(lm), config, tmp_path / "m.pt", progress=False).run()
    capsys.readouterr()
    assert main(["info", "-m", str(tmp_path / "m.pt")]) == 0
    rows = {line.split("  ")[1].strip(): line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")}
    assert rows["epochs"].endswith("2 (its best validation; the run went on to epoch 4)")
    assert rows["validation curve"].endswith("perplexity 148.41 → 49.40 over 5 validations (best 20.09 at epoch 2)")


def test_validating_first_writes_the_starting_model_before_any_step(tmp_path, monkeypatch):
    lm = make_lm()
    monkeypatch.setattr(Trainer, "validate", lambda self: 1.0)  # never improves on the start
    config = TrainConfig(epochs=3, batch_size=16, bptt=20, lr=5e-3, patience=1, validate_first=True)
    before = params(lm.model).clone()
    trainer = Trainer(lm, small_corpus(lm), config, tmp_path / "m.pt", progress=False)
    result = trainer.run()
    assert result.stopped_early and result.steps == trainer.batches_per_epoch
    assert torch.equal(params(checkpoint.load(tmp_path / "m.pt").model), before)  # the best is still the start


def test_the_start_up_line_counts_one_step_in_the_singular():
    described = fit_to_corpus(2, epochs=1).describe()
    assert "(1 step)" in described and "warm-up 0 steps" in described


def test_a_tiny_text_gets_a_small_model_every_word_and_no_validation_on_defaults():
    fit = fit_to_corpus(8, epochs=300)
    assert fit.min_count == 1 and fit.valid_fraction == 0.0 and fit.batch_size == 1
    assert fit.embedding_dim <= 32 and fit.hidden_dim <= 32 and fit.num_layers == 1
    assert fit.warmup_steps <= fit.steps // 10  # the warm-up never eats the run
    assert "no validation" in fit.describe() and "min-count 1" in fit.describe()


def test_a_small_text_gets_enough_steps_per_epoch_and_a_held_out_tail():
    fit = fit_to_corpus(2_225, epochs=3)
    assert fit.steps >= 3 * 100 and fit.warmup_steps <= fit.steps // 10
    assert 0.02 <= fit.valid_fraction <= 0.1 and fit.valid_fraction * 2_225 >= 200
    assert fit.min_count == 2


def test_a_large_corpus_gets_the_shipped_recipe():
    fit = fit_to_corpus(20_000_000, epochs=10)
    assert (fit.embedding_dim, fit.hidden_dim, fit.num_layers, fit.batch_size, fit.bptt) == (256, 512, 2, 32, 35)
    assert (fit.warmup_steps, fit.lr, fit.min_count, fit.valid_fraction, fit.threads) == (100, 2e-3, 2, 0.02, None)


def test_settings_the_user_gave_are_kept_and_not_reported_as_derived():
    fit = fit_to_corpus(8, epochs=300, min_count=2, hidden_dim=20, batch_size=4, lr=0.5, warmup_steps=7,
                        valid_fraction=0.5)
    assert (fit.min_count, fit.hidden_dim, fit.batch_size, fit.lr, fit.warmup_steps) == (2, 20, 4, 0.5, 7)
    assert fit.valid_fraction == 0.5
    assert not fit.derived & {"min_count", "hidden_dim", "batch_size", "lr", "warmup_steps", "valid_fraction"}
    assert "lr" not in fit.describe() and "hidden 20" in fit.describe()  # the model line names its derived part


def test_with_tied_weights_a_derived_model_size_fits_the_one_given():
    assert (fit_to_corpus(15_000, epochs=1, embedding_dim=200).hidden_dim, fit_to_corpus(15_000, epochs=1).hidden_dim) == (200, 128)
    assert fit_to_corpus(15_000, epochs=1, hidden_dim=20).embedding_dim == 20
    untied = fit_to_corpus(15_000, epochs=1, embedding_dim=200, tied=False)
    assert (untied.embedding_dim, untied.hidden_dim) == (200, 128)


def test_a_gpu_index_beyond_the_gpus_present_is_refused_by_name(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ConfigError, match=r"^device 'cuda:2' asked for, but 2 CUDA GPU\(s\) are visible \(cuda:0 to cuda:1\)$"):
        TrainConfig(device="cuda:2")
    with pytest.raises(ConfigError, match="unknown device 'cuda:x'"):
        TrainConfig(device="cuda:x")  # not a crash inside torch.device


def test_separate_validation_files_hold_nothing_out_of_the_training_text():
    assert fit_to_corpus(100_000, epochs=1, valid_text=True).valid_fraction == 0.0


def test_a_log_gets_about_ten_epoch_lines_and_a_terminal_none_unless_verbose(tmp_path):
    config = TrainConfig(epochs=30, batch_size=16, bptt=20, lr=5e-3, save_every=1e9)
    for mode, verbose, expected in (("lines", False, range(9, 12)), ("off", False, [0]), ("off", True, [30])):
        lm = make_lm()
        lines: list[str] = []
        corpus = data.load_corpus(data.resolve_sources([SHAKESPEARE]), lm.tokenizer, lm.vocab)
        # 60 steps in 30 epochs: cut the text to two steps an epoch
        corpus.train = corpus.train[: 16 * 41]
        Trainer(lm, corpus, config, tmp_path / f"{mode}{verbose}.pt", log=lines.append, progress=mode,
                verbose=verbose).run()
        epoch_lines = [line for line in lines if line.startswith("epoch ")]
        assert len(epoch_lines) in expected, (mode, verbose, lines)
        assert not any("\r" in line for line in lines)
