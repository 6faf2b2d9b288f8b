"""benchmarks.presage: presage driven through its C API and typed by our keystroke simulator.

Skipped where presage's library is not installed (CI does not install it: it is a benchmark peer, never a dependency).
The databases are built here by presage itself (``presage_learn`` into an empty one), so text2ngram is not needed.
"""

import sqlite3
from pathlib import Path

import pytest

from autocomplete.evaluate import keystroke_savings
from benchmarks import presage

pytestmark = pytest.mark.skipif(presage.missing() is not None, reason=f"{presage.missing()} (a benchmark-only peer)")

TEXT = """The old man walked to the harbour every morning.
The old man watched the boats come in.
The children waved to the old man from the harbour wall.
"""


def learned_database(folder: Path, text: str) -> Path:
    """A presage database holding ``text``'s 1-, 2- and 3-grams, counted by presage (its schema, case kept)."""
    db = folder / "ngrams.db"
    with sqlite3.connect(db) as connection:
        connection.executescript("""
            CREATE TABLE _1_gram (word TEXT, count INTEGER, UNIQUE(word));
            CREATE TABLE _2_gram (word_1 TEXT, word TEXT, count INTEGER, UNIQUE(word_1, word));
            CREATE TABLE _3_gram (word_2 TEXT, word_1 TEXT, word TEXT, count INTEGER, UNIQUE(word_2, word_1, word));
        """)
    config = folder / "learn.xml"
    config.write_text(presage.configuration(db, learn=True, lowercase=False))
    with presage.Presage(config) as p:
        p.learn(text)
    return db


def driver(folder: Path, db: Path) -> presage.Presage:
    config = folder / "static.xml"
    config.write_text(presage.configuration(db, learn=False, lowercase=presage.is_lowercase(db)))
    return presage.Presage(config)


def test_the_driver_predicts_words_that_start_with_the_typed_prefix(tmp_path):
    db = learned_database(tmp_path, TEXT)
    assert not presage.is_lowercase(db)
    with driver(tmp_path, db) as p:
        p.past = "The children waved to the old man from the ha"
        words = p.predict(6)
        assert words and all(w.lower().startswith("ha") for w in words)
        assert words[0] == "harbour"
        p.past = "The old "
        assert p.predict(6)[0] == "man"  # the 3-gram it learned, case kept in the context


def test_the_typist_offers_the_typed_partial_word_completed_by_presage(tmp_path):
    db = learned_database(tmp_path, TEXT + "It's the harbour-master's boat.\n")
    with driver(tmp_path, db) as p:
        typist = presage.PresageTypist(p)
        typist.commit("The old man walked to the harbour every morning.\n")
        offered = [o.word for o in typist.suggest("The old m", 6)]
        assert offered and offered[0] == "man"
        # after a separator presage completes its own prefix ("mas"): the user gets the whole word typed so far
        offered = [o.word for o in typist.suggest("It's the harbour-mas", 6)]
        assert offered == ["harbour-master"]
        assert all(o.word.startswith("Th") for o in typist.suggest("The old man watched the boats come in. Th", 6))


def test_presage_plugs_into_keystroke_savings_and_its_learning_pays_on_a_repeated_line(tmp_path):
    db = learned_database(tmp_path, TEXT)
    line = ["The", "zyzzyva", "sang", "to", "the", "old", "man", "."]
    tokens = [*line, "<eos>", *line, "<eos>"]
    without = presage.keystrokes(db, tokens, learn=False, words=None)
    learned = presage.keystrokes(db, tokens, learn=True, words=None)
    assert without.words == learned.words == 16
    assert without.keys_without == learned.keys_without == 2 * sum(len(t) + 1 for t in line)
    assert 0 < without.savings < learned.savings  # "old man" is predicted; learned, "zyzzyva sang" is too
    assert presage.keystrokes(db, tokens, learn=False, words=None).savings == without.savings  # the database unchanged


def test_keystroke_savings_counts_presage_like_the_model_every_token_a_word_with_its_space(tmp_path):
    db = learned_database(tmp_path, TEXT)
    with driver(tmp_path, db) as p:
        result = keystroke_savings(presage.PresageTypist(p), ["The", "old", "man", ",", "<eos>"], 6)  # type: ignore[arg-type]
    # "The" after a line start and "old", "man" after it: each accepted with one key at most; "," typed in full
    assert result.words == 4
    assert result.keys_without == 4 + 4 + 4 + 2
    assert result.keys_with == 1 + 1 + 1 + 2


def test_a_learned_line_is_counted_after_the_words_committed_before_it(tmp_path):
    db = learned_database(tmp_path, TEXT)
    config = tmp_path / "learning.xml"
    config.write_text(presage.configuration(db, learn=True, lowercase=False))
    with presage.Presage(config) as p:
        typist = presage.PresageTypist(p, learn=True)
        typist.suggest("The old man walked to the harbour every mor", 6)  # presage's past: a line not yet finished
        typist.commit("The old man walked to the harbour every morning.\n")
        typist.suggest("Zyz", 6)
        typist.commit("Zyzzyva sang.\n")
    with sqlite3.connect(db) as connection:
        bigram = connection.execute("SELECT count FROM _2_gram WHERE word_1 = 'morning' AND word = 'Zyzzyva'").fetchone()
        trigram = connection.execute(
            "SELECT count FROM _3_gram WHERE word_2 = 'every' AND word_1 = 'morning' AND word = 'Zyzzyva'").fetchone()
    assert bigram == (1,) and trigram == (1,)


def test_the_command_refuses_missing_training_text_in_one_line_and_builds_nothing(tmp_path, capsys):
    text = tmp_path / "heldout.txt"
    text.write_text(TEXT)
    db = tmp_path / "presage.db"
    assert presage.main(["--db", str(db), "--train", str(tmp_path / "nowhere"), "--eval", str(text)]) == 1
    assert capsys.readouterr().err.strip() == f"presage: error: {tmp_path / 'nowhere'}: no such file or folder"
    assert not db.exists()
