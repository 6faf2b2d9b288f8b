"""Where the cursor is in Python source: prose (comments, strings, docstrings) or code."""

import pytest

from autocomplete.python_prose import prose_before_cursor


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


def test_an_f_string_with_nested_quotes_returns_to_prose_after_its_field():
    assert prose_before_cursor('f"{d["key"]} is the an') == '{d["key"]} is the an'


def test_escaped_braces_do_not_open_a_field():
    assert prose_before_cursor('f"{{literal}} and so o') == "{{literal}} and so o"
