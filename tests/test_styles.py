"""Style tokens: a corpus marked PATH=STYLE teaches the model one token per style at the start of each utterance, and
the predictor reads the context in the style asked for."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from autocomplete import checkpoint, data
from autocomplete.checkpoint import LanguageModel
from autocomplete.cli import main
from autocomplete.completion import SamplingSettings
from autocomplete.repl import Session
from autocomplete.settings import SamplingConfig
from autocomplete.errors import ConfigError, CorpusError
from autocomplete.evaluate import evaluate_stream, read_eval_text
from autocomplete.model import LSTMLanguageModel, ModelConfig
from autocomplete.predictor import Predictor
from autocomplete.tokenizer import EOS, Tokenizer
from autocomplete.train import TrainConfig, Trainer
from autocomplete.vocab import EOS_ID, Vocab

STYLES = Path(__file__).parent / "fixtures" / "styles"
PROSE_LINE = "She smiled at us after dinner.\n"


def chunked(tmp_path: Path, name: str, lines_per_file: int = 12) -> Path:
    """The fixture text of one style cut into small files, so that interleaving alternates often."""
    folder = tmp_path / name
    folder.mkdir()
    lines = (STYLES / f"{name}.txt").read_text().splitlines()
    for i in range(0, len(lines), lines_per_file):
        (folder / f"{i // lines_per_file:03d}.txt").write_text("\n".join(lines[i : i + lines_per_file]) + "\n")
    return folder


@pytest.fixture(scope="module")
def styled_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model trained for a few seconds on prose and technical lines, interleaved, each with its style."""
    tmp = tmp_path_factory.mktemp("styled")
    inputs = [f"{chunked(tmp, 'prose')}=prose", f"{chunked(tmp, 'tech')}=tech"]
    sources = data.resolve_sources(inputs, interleave=True)
    tokenizer = Tokenizer()
    vocab = data.build_vocab(sources, tokenizer)
    torch.manual_seed(0)
    model = LSTMLanguageModel(ModelConfig(len(vocab), embedding_dim=24, hidden_dim=48, num_layers=1, dropout=0.0))
    lm = LanguageModel(model, vocab, tokenizer, {"name": "styled"})
    corpus = data.load_corpus(sources, tokenizer, vocab)
    config = TrainConfig(epochs=4, batch_size=4, bptt=20, lr=1e-2, warmup_steps=10, device="cpu")
    Trainer(lm, corpus, config, tmp / "styled.pt", progress=False).run()
    return tmp / "styled.pt"


@pytest.fixture
def styled_lm(styled_model_path: Path) -> LanguageModel:
    return checkpoint.load(styled_model_path)


def mass(predictor: Predictor, text: str, words: list[str]) -> float:
    p = predictor.distribution(text)
    ids = [predictor.vocab.id(w, sentence_start=True) for w in words]
    assert 0 not in ids  # all known words
    return float(p[ids].sum())


def test_the_style_token_moves_the_next_word_toward_its_style(styled_lm):
    prose, tech = Predictor(styled_lm, style="prose"), Predictor(styled_lm, style="tech")
    prose_starts = ["She", "He", "The", "My", "Her"]  # how the prose fixture's lines start
    tech_starts = ["Run"]
    assert mass(tech, PROSE_LINE, tech_starts) > 3 * mass(prose, PROSE_LINE, tech_starts)
    assert mass(prose, PROSE_LINE, prose_starts) > 2 * mass(tech, PROSE_LINE, prose_starts)


def test_switching_the_style_after_a_line_reads_the_next_utterance_in_the_new_style(styled_lm):
    switched = Predictor(styled_lm, style="prose")
    switched.commit(PROSE_LINE)
    switched.set_style("tech")
    vocab = styled_lm.vocab
    line = vocab.encode(Tokenizer().tokenize(PROSE_LINE), style=vocab.style_id("prose"))
    ids = [*vocab.start_ids("prose"), *line[:-1], vocab.style_id("tech")]  # the line in prose, then a tech start
    with torch.no_grad():
        logits, _ = styled_lm.model(torch.tensor([ids]))
    expected = torch.softmax(logits[0, -1].float(), -1)
    assert torch.allclose(switched.distribution(""), expected, atol=1e-5)
    assert switched.utterance_start() == vocab.start_ids("tech")


def test_style_tokens_open_every_utterance_of_a_styled_file_and_are_never_suggested(styled_lm, tmp_path):
    vocab = styled_lm.vocab
    assert vocab.styles == ("prose", "tech") and vocab.itos[2:4] == ["<prose>", "<tech>"]
    text = tmp_path / "t.txt"
    text.write_text("one line\nanother line\n")
    [source] = data.resolve_sources([f"{text}=tech"])
    ids = data.encode_source(source, styled_lm.tokenizer, vocab, "line", data.CorpusStats()).tolist()
    tech = vocab.style_id("tech")
    assert ids[0] == tech and ids[ids.index(EOS_ID) + 1] == tech and ids.count(tech) == 2
    words = {s.word.lower() for s in Predictor(styled_lm, style="tech").suggest("", 50)}
    assert not words & {"<prose>", "<tech>", "prose", "tech"}


def test_generated_text_never_contains_a_style_token(styled_lm):
    predictor = Predictor(styled_lm, style="tech")
    text = predictor.continuation("Run", max_words=60, stop_at="never", seed=3, temperature=1.0, top_k=0)
    assert "<" not in text.text and len(text.tokens) > 10


def test_a_model_without_styles_ignores_the_style_and_predicts_as_before(trained_lm):
    plain = Predictor(trained_lm).distribution("To be or not")
    assert Predictor(trained_lm, style="dialogue").style is None
    assert torch.equal(Predictor(trained_lm, style="dialogue").distribution("To be or not"), plain)


def test_an_unknown_style_names_the_styles_the_model_has(styled_lm):
    with pytest.raises(ConfigError, match="unknown style 'poetry'; this model knows prose, tech"):
        Predictor(styled_lm, style="poetry")


def test_evaluation_gives_the_style_tokens_instead_of_scoring_them(styled_lm):
    vocab = styled_lm.vocab
    ids = torch.tensor(vocab.encode(Tokenizer().tokenize("run git push\ngit push\n")))
    _, _, plain_count = evaluate_stream(styled_lm.model, ids, ks=(1,))
    _, _, styled_count = evaluate_stream(styled_lm.model, ids, ks=(1,), start=vocab.start_ids("tech"))
    assert plain_count == styled_count == ids.numel()


def test_a_corpus_argument_names_its_style_after_an_equals_sign(tmp_path):
    (tmp_path / "a=b.txt").write_text("x\n")
    (tmp_path / "c.txt").write_text("y\n")
    [kept] = data.resolve_sources([tmp_path / "a=b.txt"])
    assert kept.style is None and kept.name.endswith("a=b.txt")
    [styled] = data.resolve_sources([f"{tmp_path / 'c.txt'}=dialogue"])
    assert styled.style == "dialogue"
    with pytest.raises(CorpusError, match="invalid style name 'Bad Style'"):
        data.resolve_sources([f"{tmp_path / 'c.txt'}=Bad Style"])
    for reserved in ("unk", "eos"):  # their tokens would be the vocabulary's own <unk> and <eos>
        with pytest.raises(CorpusError, match=f"invalid style name '{reserved}': <{reserved}> is a token of its own"):
            data.resolve_sources([f"{tmp_path / 'c.txt'}={reserved}"])


def test_interleaving_takes_the_inputs_files_in_turn(tmp_path):
    for folder, n in (("a", 3), ("b", 1)):
        (tmp_path / folder).mkdir()
        for i in range(n):
            (tmp_path / folder / f"{i}.txt").write_text("text\n")
    names = [Path(s.name).relative_to(tmp_path).as_posix()
             for s in data.resolve_sources([tmp_path / "a", tmp_path / "b"], interleave=True)]
    assert names == ["a/0.txt", "b/0.txt", "a/1.txt", "a/2.txt"]


def test_a_vocabulary_with_styles_round_trips_and_one_without_has_none():
    vocab = Vocab.build([["a", "b"]], styles=("prose", "dialogue"))
    again = Vocab.from_dict(vocab.to_dict())
    assert again.styles == ("prose", "dialogue") and again.start_ids("dialogue") == [EOS_ID, 3]
    plain = Vocab.build([["a", "b"]])
    assert "styles" not in plain.to_dict() and plain.start_ids("prose") == [EOS_ID]
    assert plain.encode(["a", EOS, "b"], style=None) == [2, EOS_ID, 3]


def test_the_session_reads_in_its_modes_style_until_one_is_asked_for(styled_lm):
    session = Session(Predictor(styled_lm), "styled", settings=SamplingSettings(SamplingConfig(max_words=5)))
    assert session.predictor.style == "prose"  # type mode; this model has no "dialogue", so chat keeps its first style
    assert session.command(":style tech").message == "style = tech"
    session.command(":mode chat")
    assert session.predictor.style == "tech"  # asked for: the mode does not change it
    assert session.command(":style").message == "style = tech (asked for); this model knows prose, tech"
    assert session.command(":style auto").message == "style = prose (by the mode)"
    assert session.command(":style verse").message == "usage: :style prose|tech|auto"


def test_a_session_on_a_model_without_styles_says_so(trained_lm):
    session = Session(Predictor(trained_lm), "tiny")
    assert session.command(":style prose").message == "tiny was trained without styles"


def test_the_commands_take_a_style_and_refuse_one_the_model_lacks(styled_model_path, trained_model_path, capsys):
    text = PROSE_LINE
    assert main(["predict", text, "--model", str(styled_model_path), "--style", "tech", "--json"]) == 0
    as_tech = capsys.readouterr().out
    assert main(["predict", text, "--model", str(styled_model_path), "--style", "prose", "--json"]) == 0
    assert capsys.readouterr().out != as_tech
    assert main(["predict", "x", "--model", str(styled_model_path), "--style", "verse"]) == 1
    assert "unknown style 'verse'; this model knows prose, tech" in capsys.readouterr().err
    assert main(["predict", "To be", "--model", str(trained_model_path), "--style", "tech"]) == 0
    assert "trained without styles; --style tech is ignored" in capsys.readouterr().err


def test_the_token_cache_keeps_a_styled_corpus_apart_from_the_same_files_unstyled(tmp_path):
    from autocomplete.token_cache import TokenCache

    text = tmp_path / "t.txt"
    text.write_text("one line\nanother line\n")
    cache, tokenizer = TokenCache(tmp_path / "cache"), Tokenizer()
    plain_sources = data.resolve_sources([text])
    styled_sources = data.resolve_sources([f"{text}=tech"])
    plain_vocab = cache.vocab(plain_sources, tokenizer)
    styled_vocab = cache.vocab(styled_sources, tokenizer)
    assert plain_vocab.styles == () and styled_vocab.styles == ("tech",)
    plain = cache.corpus(plain_sources, tokenizer, plain_vocab).train.read().tolist()
    styled = cache.corpus(styled_sources, tokenizer, styled_vocab).train.read().tolist()
    assert styled == data.encode_source(styled_sources[0], tokenizer, styled_vocab, "auto", data.CorpusStats()).tolist()
    assert plain_vocab.decode(plain) == ["one", "line", EOS, "another", "line", EOS]
    assert styled_vocab.decode(styled) == ["<tech>", "one", "line", EOS, "<tech>", "another", "line", EOS]
    cache.release()


def test_the_front_door_reads_a_styled_model_in_prose_unless_told_and_the_shells_in_tech(styled_model_path, monkeypatch):
    import autocomplete
    from autocomplete import python_shell

    plain = autocomplete.load(styled_model_path, learn=False)
    assert plain.style == "prose"  # as the session's type mode: never without a style token, unlike its training
    assert torch.equal(plain.distribution(PROSE_LINE), Predictor.load(styled_model_path, quantize=True, style="prose").distribution(PROSE_LINE))
    assert autocomplete.load(styled_model_path, learn=False, style="tech").style == "tech"
    assert autocomplete.load(styled_model_path, learn=False, mode="code").style == "tech"
    with pytest.raises(ValueError, match="mode must be one of type, chat, code"):
        autocomplete.load(styled_model_path, learn=False, mode="poetry")
    with pytest.raises(ConfigError, match="unknown style 'verse'"):
        autocomplete.load(styled_model_path, learn=False, style="verse")
    monkeypatch.setattr(python_shell, "_loaded", {})
    monkeypatch.setenv("AUTOCOMPLETE_DATA_DIR", str(styled_model_path.parent / "data"))
    assert python_shell.shell_session(styled_model_path).style == "tech"  # comments and docstrings in IPython, ptpython


def test_the_learner_reads_a_styled_line_as_the_predictor_does(styled_lm):
    from autocomplete.personal import LearnConfig, Personal

    cache_only = LearnConfig(lr=0.0, lr_bias=0.0, lr_top=0.0)
    predictor = Predictor(styled_lm, style="prose", personal=Personal(styled_lm, cache_only))
    lines = [PROSE_LINE.strip(), "She said nothing."]
    predictor.commit("\n".join(lines) + "\n")
    predictor.personal.wait()
    vocab, tokenizer = styled_lm.vocab, styled_lm.tokenizer
    read, rows = list(vocab.start_ids("prose")), []  # <eos> <prose> line <eos> <prose> line <eos> <prose>
    for line in lines:
        for i in vocab.encode([*tokenizer.tokenize_line(line), EOS], True):
            rows.append(len(read) - 1)  # the output after the token before predicts this one
            read.append(i)
        read.append(vocab.style_id("prose"))
    with torch.inference_mode():
        features, _ = styled_lm.model.features(torch.tensor([read[:-1]]))
    keys = predictor.personal._cache.keys
    assert keys.shape[0] == len(rows), (predictor.personal._cache.surface, [vocab.itos[i] for i in read])
    assert torch.allclose(keys, features[0, rows].float(), atol=1e-3)  # (stored in float16)


def test_the_shared_words_benchmark_reads_a_styled_model_in_its_prose_style_as_eval_does(styled_lm, tmp_path):
    from benchmarks import shared_words

    vocab = styled_lm.vocab
    text = tmp_path / "t.txt"
    text.write_text("the king is here .\nspeak , my lord .\n")
    ids, _ = read_eval_text(data.resolve_sources([text]), styled_lm.tokenizer, vocab, "auto")
    start = vocab.start_ids("prose")
    loss, _, count = evaluate_stream(styled_lm.model, ids, ks=(1,), start=start)
    nll = shared_words.token_nll(styled_lm.model, ids, start)
    assert nll.numel() == count == ids.numel()  # one score per token of the text; the style tokens are given
    assert math.isclose(float(nll.mean()), loss, rel_tol=1e-4)
    unstyled = float(shared_words.token_nll(styled_lm.model, ids, vocab.start_ids()).mean())
    assert not math.isclose(unstyled, loss, rel_tol=1e-3)  # read without its style, the model scores otherwise


def test_learn_reads_in_the_style_asked_for_and_refuses_one_the_model_lacks_before_touching_the_state(
    styled_model_path, tmp_path, capsys, isolated_user_dirs
):
    notes = tmp_path / "notes.txt"
    notes.write_text("run git push\n")
    assert main(["learn", str(notes), "--model", str(styled_model_path), "--style", "verse"]) == 1
    assert capsys.readouterr().err.strip() == "autocomplete: error: unknown style 'verse'; this model knows prose, tech"
    assert not (isolated_user_dirs / "personal").exists()
    states = []
    for style in ("prose", "tech"):
        assert main(["learn", str(notes), "--model", str(styled_model_path), "--style", style, "--threads", "2"]) == 0
        [saved] = (isolated_user_dirs / "personal").glob("*.pt")  # beside it: when it was last forgotten
        states.append(torch.load(saved, weights_only=True)["cache"]["keys"])
        assert main(["forget", "--model", str(styled_model_path)]) == 0
    assert states[0].shape == states[1].shape and not torch.equal(*states)  # read after another style token
