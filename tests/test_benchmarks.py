"""The benchmark suite keeps working: ``--quick`` runs every section on tiny inputs. Numbers are not asserted."""

from pathlib import Path

from autocomplete import data
from autocomplete.checkpoint import LanguageModel
from autocomplete.model import LSTMLanguageModel, ModelConfig
from autocomplete.tokenizer import Tokenizer, TokenizerConfig
from autocomplete.train import TrainConfig, Trainer
from benchmarks.run import main

from .conftest import SHAKESPEARE


def fake_ptb(folder: Path) -> Path:
    """PTB's layout (lower case, one sentence a line, whitespace tokens) made from the Shakespeare fixture."""
    lines = [" ".join(line.lower().replace(",", " ").replace(".", " ").split()) for line in SHAKESPEARE.read_text().splitlines()]
    lines = [line for line in lines if line]
    folder.mkdir()
    (folder / "train.txt").write_text("\n".join(lines[:1500]) + "\n")
    (folder / "valid.txt").write_text("\n".join(lines[1500:1700]) + "\n")
    (folder / "test.txt").write_text("\n".join(lines[1700:]) + "\n")
    return folder


def ptb_model(folder: Path, out: Path) -> Path:
    tokenizer = Tokenizer(TokenizerConfig(kind="whitespace"))
    sources = data.resolve_sources([folder / "train.txt"])
    vocab = data.build_vocab(sources, tokenizer, "line")
    corpus = data.load_corpus(sources, tokenizer, vocab, "line")
    model = LSTMLanguageModel(ModelConfig(len(vocab), embedding_dim=16, hidden_dim=16))
    Trainer(LanguageModel(model, vocab, tokenizer), corpus, TrainConfig(epochs=1, max_steps=5), out, progress=False).run()
    return out


def test_the_quick_benchmark_runs_every_section_and_writes_markdown(tmp_path, trained_model_path, capsys):
    ptb = fake_ptb(tmp_path / "ptb")
    model = ptb_model(ptb, tmp_path / "ptb.pt")
    out = tmp_path / "BENCH.md"
    code = main(["--quick", "--model", str(trained_model_path), "--ptb", str(ptb), "--ptb-models", str(model),
                 "--markdown", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    sections = ("keystroke latency", "cold start", "generation", "levers", "long session", "memory per session",
                "busy machine",
                "training throughput", "PTB test quality", "learning its user")
    for section in sections:
        assert f"[{section}]" in printed and f"### {section}" in out.read_text()
    assert "stateful_p99_ms" in out.read_text() and "| 10 words typed |" in out.read_text()


def test_shared_words_scores_every_token_like_eval_and_averages_where_all_models_know_the_word(
    tmp_path, trained_model_path, capsys, monkeypatch
):
    import math
    import sys

    from autocomplete import checkpoint
    from autocomplete.evaluate import evaluate_stream, read_eval_text
    from autocomplete.finetune import grow
    from benchmarks import shared_words

    lm = checkpoint.load(trained_model_path)
    text = tmp_path / "t.txt"
    text.write_text("Watson said the noble Romans are not here .\nWatson , speak .\n")
    ids, _ = read_eval_text(data.resolve_sources([text]), lm.tokenizer, lm.vocab, "auto")
    loss, _, _ = evaluate_stream(lm.model, ids)
    assert math.isclose(float(shared_words.token_nll(lm.model, ids, lm.vocab.start_ids()).mean()), loss, rel_tol=1e-4)

    checkpoint.save(grow(lm, [("Watson", 2)]), tmp_path / "grown.pt")
    monkeypatch.setattr(sys, "argv", ["shared_words", str(text), str(trained_model_path), str(tmp_path / "grown.pt")])
    shared_words.main()
    out = capsys.readouterr().out
    assert f"{len(ids):,} tokens, {len(ids) - 2:,} known to every model" in out  # both "Watson"s are left out


def test_the_learning_benchmark_never_reports_on_the_slice_its_defaults_were_tuned_on(tmp_path):
    from benchmarks.learning import TUNING, texts

    novels = texts(1_000_000, tmp_path, "novels")
    [thursday] = [t for t in novels if t.path == TUNING.path]
    assert thursday.start + thursday.words <= TUNING.start  # however many words are asked for
    assert len(novels) == 2 and all(t.style == "prose" for t in novels)


def test_the_brief_learning_benchmark_types_only_the_model_alone_and_everything_on(trained_model_path, capsys):
    from benchmarks.learning import main as learning

    assert learning(["--quick", "--brief", "--no-latency", "--model", str(trained_model_path)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[learning its user")]
    assert [row.split(": ")[1] for row in rows] == ["model alone", "all three (defaults)"]


def test_the_learning_ceiling_prices_only_words_typed_before_and_never_raises_a_cost():
    from benchmarks.learning import ceilings

    off = [("The", 4), ("cat", 4), ("sat", 2), ("the", 4), ("cat", 3)]  # 20 keys in full; "the", "cat" typed before
    on = [("The", 4), ("cat", 4), ("sat", 2), ("the", 2), ("cat", 4)]
    c = ceilings(off, on)
    assert (c["off"], c["on"], c["typed_before"]) == (1 - 17 / 20, 1 - 16 / 20, 8 / 20)
    assert c["cap3"] == 1 - (4 + 4 + 2 + 2 + 3) / 20  # "cat" the second time: 4 keys priced 3; "the" stays 2
    assert c["cap2"] == 1 - (4 + 4 + 2 + 2 + 2) / 20 and c["cap1"] == 1 - (4 + 4 + 2 + 1 + 1) / 20


def test_the_learning_ceiling_runs_from_the_command_line(trained_model_path, capsys):
    from benchmarks.learning import main as learning

    assert learning(["--ceiling", "--quick", "--model", str(trained_model_path)]) == 0
    [row] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[learning its user: ceiling")]
    assert "Shakespeare fixture" in row and "each_typed_before_at_most_3_keys" in row
