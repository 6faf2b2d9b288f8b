import pytest

from autocomplete.display import percent


@pytest.mark.parametrize(
    ("p", "shown"),
    [(0.42, "42.0%"), (0.1, "10.0%"), (0.0995, "10.0%"), (0.099, "9.9%"), (0.034, "3.4%"), (1.0, "100.0%"),
     (0.001, "0.1%"), (0.0004, "<0.1%"), (0.0, "<0.1%")],
)
def test_probabilities_read_like_percentages_with_one_decimal_and_a_rare_word_is_never_zero(p, shown):
    assert percent(p) == shown


def test_neighbouring_probabilities_never_read_in_the_wrong_order():
    values = [i / 10_000 for i in range(10, 10_001)]
    shown = [float(percent(p).rstrip("%")) for p in values]
    assert shown == sorted(shown)
