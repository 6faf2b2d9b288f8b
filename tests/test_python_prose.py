"""Where the cursor is in Python source: prose (comments, strings, docstrings) or code."""

import pytest

from autocomplete.python_prose import plain_prose, prose_before_cursor, prose_in


@pytest.mark.parametrize(
    ("source", "prose"),
    [
        ("x = 1  # the weather is ni", " the weather is ni"),
        ('s = "the weather is ni', "the weather is ni"),
        ("s = 'it is a \\' quote", "it is a \\' quote"),
        ('def f():\n    """Return the\n    weather for', "Return the weather for"),
        ('def f():\n    """Return the weather.\n\n    It ', "Return the weather.\nIt "),
        ('x = f"hello {name} and th', "hello {name} and th"),
        ('x = rb"raw bytes ar', "raw bytes ar"),
        ("# one\n# two\n# thr", "one two thr"),
        ("x = 1\n# one\ny = 2  # tw", " tw"),
        ('x = """a\n"""  # after a docstring', " after a docstring"),
    ],
)
def test_prose_is_what_the_cursor_sits_in_ending_at_the_cursor(source, prose):
    assert prose_before_cursor(source) == prose


@pytest.mark.parametrize(
    "source",
    [
        "x = 1",
        "import o",
        'd["ke',  # a dictionary key: the host's completion knows better
        'open("/tmp/fi',  # a path
        'x = "a # b" + 1',  # a hash inside a string is no comment
        '"done" ',
        'f"hello {na',  # the code inside an f-string's braces
        'f"hello {d["a"] + le',
        '"""closed docstring"""\n',
        "# a comment\nx = 1",
        "s = 'unterminated\nx = ",  # a one-line string ends at its line end
    ],
)
def test_code_is_not_prose(source):
    assert prose_before_cursor(source) is None


@pytest.mark.parametrize(
    "source",
    [
        "dd['first n",  # IPython completes the keys dd holds: 'first name'
        'dd[ "first n',
        'dd[\n    "first n',
        'rows[0]["last n',
        'f(x)["a b',
        'd[rb"a b',
        'dd.get("first n',
        'dd.pop( "first n',
        'dd.setdefault("first n',
        'f"{dd[\'first n',
    ],
)
def test_a_key_is_code_even_with_a_space_in_it(source):
    assert prose_before_cursor(source) is None


@pytest.mark.parametrize(
    ("source", "prose"),
    [
        ('print("hello there', "hello there"),
        ('x = "some words', "some words"),
        ('x = ["some words', "some words"),  # a list display, not a subscript
        ('for w in ["a b', "a b"),
        ('x = [1, "a b', "a b"),
        ('print(d["a b"], "hello th', "hello th"),
        ('d.update("a b', "a b"),
    ],
)
def test_strings_next_to_keys_and_brackets_stay_prose(source, prose):
    assert prose_before_cursor(source) == prose


def test_a_shell_learns_no_key_from_the_cells_it_runs():
    assert prose_in('dd["first name"] = dd.get("last name")\nx = "some words here"\n') == ["some words here"]


def test_an_f_string_with_nested_quotes_returns_to_prose_after_its_field():
    assert prose_before_cursor('f"{d["key"]} is the an') == '{d["key"]} is the an'


def test_escaped_braces_do_not_open_a_field():
    assert prose_before_cursor('f"{{literal}} and so o') == "{{literal}} and so o"


def test_a_cells_prose_is_its_comment_blocks_docstring_paragraphs_and_strings_with_spaces():
    cell = (
        "# This module reads the weather.\n"
        "# It asks Okonkwo's station.\n"
        "x = 1  # noqa\n"
        "y = 2  # the second value\n"
        "def f(name):\n"
        '    """Return the weather\n'
        "    for a city.\n"
        "\n"
        "    Second paragraph.\n"
        '    """\n'
        '    d["key"] = open("/tmp/f")\n'
        '    return f"Hello {name}, welcome to\\nthe harbour"\n'
    )
    assert prose_in(cell) == [
        "This module reads the weather. It asks Okonkwo's station.",
        "the second value",
        "Return the weather for a city.",
        "Second paragraph.",
        "Hello , welcome to the harbour",
    ]


@pytest.mark.parametrize(
    ("cell", "prose"),
    [
        ("s = 'don\\'t stop'", ["don't stop"]),  # an escaped quote is the quote
        ('s = "tab\\there and\\x41gain"', ["tab here and gain"]),  # other escapes are spaces, not letters
        ('s = r"raw \\n stays"', ["raw \\n stays"]),
        ('s = b"some bytes here"', []),
        ('s = f"{{literal}} braces {x!r:>{width}} end"', ["{{literal}} braces end"]),
        ("# one\nx = 1\n# two words\n", ["two words"]),  # code between comments ends a block
        ("# a block\n\n# another block\n", ["a block", "another block"]),
        ('x = "open string with spaces', []),  # unfinished: left out
        ("x = 1  # a comment that ends the cell", ["a comment that ends the cell"]),
        ("", []),
    ],
)
def test_prose_in_reads_escapes_and_leaves_out_bytes_code_and_what_is_unfinished(cell, prose):
    assert prose_in(cell) == prose


@pytest.mark.parametrize(
    ("piece", "learned"),
    [
        ("I met Zorvathine at the harbour.", "I met Zorvathine at the harbour."),
        ("Meet at 5 pm, then call Dr. O'Neil.", "Meet at 5 pm, then call Dr. O'Neil."),
        ("well-known “quoted” words!", "well-known “quoted” words!"),
        ("my key is sk_live_9f8e7d6c5b4aQ for now", "my key is for now"),  # prose, but never the key
        ("df = pd.read_csv(path_to_file, sep=sep_char)", None),  # commented-out code
        ("Authorization: Bearer sk_live_9f8e7d6c5b4aQ", None),
        ("ls -la /tmp", None),
        ("[31mred text [0m here", None),  # an escape sequence's remains
        ("one", None),
    ],
)
def test_a_shell_learns_only_the_plain_words_of_what_reads_as_prose(piece, learned):
    assert plain_prose(piece) == learned
