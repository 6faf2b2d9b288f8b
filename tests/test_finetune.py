import hashlib
import random

import pytest
import torch

from autocomplete import checkpoint, data
from autocomplete.cli import main
from autocomplete.errors import ConfigError
from autocomplete.evaluate import evaluate_loss
from autocomplete.finetune import check_settings, grow, new_words, template_ids
from autocomplete.predictor import Predictor
from autocomplete.tokenizer import SPECIALS
from autocomplete.train import TrainConfig, Trainer, resume_path
from autocomplete.vocab import Vocab

from .conftest import SHAKESPEARE, make_lm

# The user's own text: Shakespeare's words in a new, repetitive style, plus names and words the base never saw.
SUBJECTS = ["the people", "my lord", "the consul", "good sir", "the general"]
VERBS = ["shall speak with", "will go to", "must stay with", "did send for"]
OBJECTS = ["the people", "the city", "the consul", "her son", "the general"]


def user_text(seed: int, lines: int, names: bool) -> str:
    rng = random.Random(seed)
    out = []
    for _ in range(lines):
        line = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} at home ."
        if names and rng.random() < 0.5:
            line = f"my dear Watson , {line} Ask Kubernetes ."
        out.append(line)
    return "\n".join(out) + "\n"


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def finetune_cli(capsys, base, text, out, *extra):
    return run(capsys, "train", text, "--from", base, "-o", out, "--no-cache", "-q", "--breaks", "line",
               "--batch-size", 8, "--bptt", 12, "--save-every", 1e9, *extra)


@pytest.fixture
def user_files(tmp_path):
    train = tmp_path / "mine.txt"
    train.write_text(user_text(1, 400, names=True))
    held_out = tmp_path / "held_out.txt"
    held_out.write_text(user_text(2, 100, names=False))  # only words the base model knows
    return train, held_out


def held_out_loss(lm, path):
    ids = data.encode_source(data.resolve_sources([path])[0], lm.tokenizer, lm.vocab, "line", data.CorpusStats())
    assert (ids == 0).sum() == 0  # no unknown word: both models score the same tokens
    return evaluate_loss(lm.model, ids)[0]


def test_fine_tuning_adds_the_texts_new_words_and_learns_to_predict_them(capsys, tmp_path, user_files,
                                                                         trained_model_path):
    base = checkpoint.load(trained_model_path)
    train, held_out = user_files
    code, _, err = finetune_cli(capsys, trained_model_path, train, tmp_path / "mine.pt", "--epochs", 4)
    assert code == 0, err
    tuned = checkpoint.load(tmp_path / "mine.pt")
    assert tuned.vocab.itos[: len(base.vocab)] == base.vocab.itos  # the base's ids keep their meaning
    added = tuned.vocab.itos[len(base.vocab):]
    assert {"Watson", "Kubernetes"} <= set(added) and "Watson" not in base.vocab
    assert tuned.model.config.vocab_size == len(tuned.vocab) == len(base.vocab) + len(added)
    predictor = Predictor.load(tmp_path / "mine.pt")
    assert predictor.suggest("my dear ", k=3)[0].word == "Watson"
    assert "Kubernetes" in [s.word for s in predictor.suggest("at home . Ask ", k=3)]
    assert held_out_loss(tuned, held_out) < held_out_loss(base, held_out) - 0.5


def test_a_fine_tuned_file_says_what_it_was_fine_tuned_from_and_on_what(capsys, tmp_path, user_files,
                                                                       trained_model_path):
    train, _ = user_files
    code, _, err = finetune_cli(capsys, trained_model_path, train, tmp_path / "mine.pt", "--max-steps", 5)
    assert code == 0, err
    meta = checkpoint.load(tmp_path / "mine.pt").metadata
    origin = meta["fine_tuned_from"]
    assert origin["sha256"] == hashlib.sha256(trained_model_path.read_bytes()).hexdigest()
    assert origin["name"] == "tiny" and origin["file"] == str(trained_model_path)
    assert meta["corpus"]["files"] == [str(train)]
    assert "Watson" in meta["added_words"]["first"] and meta["added_words"]["count"] >= 2
    assert meta["history"][0]["step"] == 0  # the base model's score on the held-out tail is the first point
    assert "fine-tuning tiny" in err and "Watson" in err and "(the model before fine-tuning: " in err
    code, out, _ = run(capsys, "info", tmp_path / "mine.pt")
    assert code == 0 and f"fine-tuned from   tiny ({trained_model_path}, sha256 {origin['sha256'][:12]}" in out


def test_a_model_stored_in_float16_is_fine_tuned_into_a_float16_file(capsys, tmp_path, user_files, trained_lm):
    checkpoint.save(trained_lm, tmp_path / "half.pt", dtype=torch.float16)
    train, _ = user_files
    assert finetune_cli(capsys, tmp_path / "half.pt", train, tmp_path / "mine.pt", "--max-steps", 2)[0] == 0
    weights = checkpoint.read_payload(tmp_path / "mine.pt")["weights"]
    assert {t.dtype for t in weights.values() if t.is_floating_point()} == {torch.float16}


def test_a_fine_tuning_run_can_be_resumed(capsys, tmp_path, user_files, trained_model_path):
    train, _ = user_files
    out = tmp_path / "mine.pt"
    code, _, err = finetune_cli(capsys, trained_model_path, train, out, "--max-steps", 3, "--patience", 0)
    assert code == 0 and resume_path(out).exists(), err
    first = checkpoint.load(out)
    code, _, err = finetune_cli(capsys, trained_model_path, train, out, "--resume", "--epochs", 2, "--patience", 0)
    assert code == 0, err
    assert "resuming at epoch 1, step 3" in err
    resumed = checkpoint.load(out)
    assert resumed.vocab.itos == first.vocab.itos
    assert resumed.metadata["fine_tuned_from"] == first.metadata["fine_tuned_from"]
    assert resumed.metadata["resumed"] and resumed.metadata["steps"] > 3
    assert resumed.metadata["train_config"]["lr"] == first.metadata["train_config"]["lr"]  # fine-tuning defaults


def test_resuming_a_fine_tuning_from_another_model_is_refused(capsys, tmp_path, user_files, trained_model_path,
                                                              toy_model_path):
    train, _ = user_files
    out = tmp_path / "mine.pt"
    assert finetune_cli(capsys, trained_model_path, train, out, "--max-steps", 2)[0] == 0
    code, _, err = finetune_cli(capsys, toy_model_path, train, out, "--resume")
    assert code == 1 and "continues a fine-tuning of tiny" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("what", ["missing", "text", "folder"])
def test_from_a_missing_or_bad_file_is_a_one_line_error(capsys, tmp_path, user_files, what):
    train, _ = user_files
    bad = {"missing": tmp_path / "nope.pt", "text": train, "folder": tmp_path}[what]
    code, _, err = finetune_cli(capsys, bad, train, tmp_path / "mine.pt")
    assert code == 1 and err.startswith("autocomplete: error: ") and len(err.strip().splitlines()) == 1
    assert str(bad) in err and not (tmp_path / "mine.pt").exists()


def test_from_alone_fine_tunes_the_shipped_model(capsys, tmp_path, user_files, trained_model_path, monkeypatch):
    monkeypatch.setenv("AUTOCOMPLETE_MODEL", str(trained_model_path))  # how the shipped model is found
    train, _ = user_files
    code, _, err = run(capsys, "train", train, "-o", tmp_path / "mine.pt", "--from", "--no-cache", "-q",
                       "--max-steps", 2)
    assert code == 0, err
    assert checkpoint.load(tmp_path / "mine.pt").metadata["fine_tuned_from"]["file"] == str(trained_model_path)


@pytest.mark.parametrize(
    "option, shown",
    [(["--hidden-dim", "99"], "--hidden-dim 99"), (["--layers", "3"], "--layers 3"), (["--no-tie"], "--no-tie"),
     (["--adaptive", "100,200"], "--adaptive 100,200"), (["--tokenizer", "whitespace"], "--tokenizer whitespace"),
     (["--lowercase"], "--lowercase")],  # --vocab-size with --from: a usage error (test_cli)
)
def test_size_options_that_contradict_the_base_model_are_refused(capsys, tmp_path, user_files, trained_model_path,
                                                                 option, shown):
    train, _ = user_files
    code, _, err = finetune_cli(capsys, trained_model_path, train, tmp_path / "mine.pt", *option)
    assert code == 1 and shown in err and len(err.strip().splitlines()) == 1


def test_size_options_that_agree_with_the_base_model_are_accepted(trained_lm):
    c = trained_lm.model.config
    check_settings(trained_lm, embedding_dim=c.embedding_dim, hidden_dim=c.hidden_dim, layers=c.num_layers,
                   tokenizer="words", adaptive=None, tie=None, lowercase=None)
    with pytest.raises(ConfigError, match="embedding dim 32"):
        check_settings(trained_lm, embedding_dim=c.embedding_dim + 1)


# ---- growing the vocabulary --------------------------------------------------------------------------------------


DECODERS = {
    "full softmax, tied": {},
    "full softmax, untied": {"tie_weights": False},
    "two-level softmax, tied": {"adaptive_cutoffs": (100, 400)},
    "adaptive softmax, untied": {"adaptive_cutoffs": (100, 400), "tie_weights": False},
}


@pytest.fixture(scope="module", params=list(DECODERS))
def trained_each_decoder(request, tmp_path_factory):
    """A model of each output layer, trained for a few seconds (an untrained one has no rare words to speak of)."""
    lm = make_lm(embedding_dim=24, hidden_dim=32, **DECODERS[request.param])
    corpus = data.load_corpus(data.resolve_sources([SHAKESPEARE]), lm.tokenizer, lm.vocab)
    config = TrainConfig(epochs=1, batch_size=16, bptt=20, lr=1e-2, warmup_steps=5, device="cpu")
    Trainer(lm, corpus, config, tmp_path_factory.mktemp("decoder") / "m.pt", progress=False).run()
    return lm


WORDS = [("Watson", 5), ("Kubernetes", 3), ("kubectl", 2)]


def test_new_words_start_less_likely_than_the_median_word_and_never_on_top(trained_each_decoder):
    lm = trained_each_decoder
    grown = grow(lm, WORDS).model.eval()
    V = len(lm.vocab)
    ids = data.encode_text(SHAKESPEARE.read_text()[:3000], lm.tokenizer, lm.vocab).long().unsqueeze(0)
    with torch.no_grad():
        logp = torch.log_softmax(grown(ids)[0][0].float(), -1)  # (T, V + 3)
    new = logp[:, V:]
    median = logp[:, len(SPECIALS):V].median(-1).values  # (T,)
    assert (new.mean(-1) < median).float().mean() > 0.9
    assert (new.max(-1).values < logp[:, :V].max(-1).values).all()
    assert torch.allclose(new[:, 0], new[:, 1])  # all start alike: the average rare word


def test_growing_keeps_every_known_words_id_and_ranking(trained_each_decoder):
    lm = trained_each_decoder
    grown = grow(lm, WORDS)
    assert grown.vocab.itos[: len(lm.vocab)] == lm.vocab.itos and grown.vocab.itos[:2] == list(SPECIALS)
    assert grown.vocab.id("Watson") == len(lm.vocab) and grown.vocab.counts[-1] == 2
    ids = data.encode_text("The king is come , my lord .", lm.tokenizer, lm.vocab).long().unsqueeze(0)
    with torch.no_grad():
        before = torch.log_softmax(lm.model.eval()(ids)[0].float(), -1)
        after = torch.log_softmax(grown.model.eval()(ids)[0].float(), -1)[..., : len(lm.vocab)]
    assert torch.equal(before.argsort(-1, descending=True)[..., :20], after.argsort(-1, descending=True)[..., :20])
    assert (after <= before + 1e-5).all()  # the new words' share comes from the known words


def test_grown_models_save_and_load_like_any_other(tmp_path, trained_each_decoder):
    grown = grow(trained_each_decoder, WORDS)
    checkpoint.save(grown, tmp_path / "g.pt")
    loaded = checkpoint.load(tmp_path / "g.pt")
    assert loaded.vocab.itos == grown.vocab.itos
    for a, b in zip(loaded.model.state_dict().values(), grown.model.state_dict().values()):
        assert torch.equal(a, b)


def test_new_words_are_the_texts_frequent_words_the_base_lacks():
    base = Vocab(["<unk>", "<eos>", "the", "king", "ask", "rust"], [0, 10, 50, 20, 9, 2])
    text = Vocab(["<unk>", "<eos>", "the", "Watson", "Rust", "kubectl", "Ask", "once"], [0, 9, 30, 7, 5, 4, 3, 1])
    assert new_words(base, text, min_count=2, limit=10) == [("Watson", 7), ("Rust", 5), ("kubectl", 4)]
    assert new_words(base, text, min_count=1, limit=1) == [("Watson", 7)]


def test_templates_are_the_rarest_words_of_the_last_cluster():
    itos = ["<unk>", "<eos>", *(f"w{i}" for i in range(98))]
    counts = [0, 5, *range(200, 102, -1)]
    ids = template_ids(Vocab(itos, counts), (40,)).tolist()
    assert ids == list(range(94, 100))  # the tenth of ids 40..99 with the lowest counts


def test_fine_tuning_reads_a_long_enough_text_in_the_recipes_windows_and_keeps_the_users_choice():
    from autocomplete.finetune import finetune_windows

    assert finetune_windows(50_000, None, None) == (32, 35)  # a trained model needs no small batches
    assert finetune_windows(5_000, None, None) == (None, None)  # too short for 20 such windows: fitted to the text
    assert finetune_windows(50_000, 8, None) == (8, None) and finetune_windows(50_000, None, 20) == (None, 20)


def test_growing_by_no_words_changes_nothing(trained_lm):
    same = grow(trained_lm, [])
    assert same.vocab.itos == trained_lm.vocab.itos
    for a, b in zip(same.model.state_dict().values(), trained_lm.model.state_dict().values()):
        assert torch.equal(a, b)
