import math

import pytest

from autocomplete.display import percent, sparkline


@pytest.mark.parametrize(
    ("p", "shown"),
    [(0.42, "42.0%"), (0.1, "10.0%"), (0.0995, "10.0%"), (0.099, "9.9%"), (0.034, "3.4%"), (1.0, "100.0%"),
     (0.001, "0.1%"), (0.0004, "<0.1%"), (0.0, "<0.1%")],
)
def test_probabilities_read_like_percentages_with_one_decimal_and_a_rare_word_is_never_zero(p, shown):
    assert percent(p) == shown


@pytest.mark.parametrize("p", [math.nan, math.inf, -math.inf, 1.5, -0.5, 2.0, 1e300])
def test_a_number_that_is_no_probability_reads_as_a_question_mark_not_nan_nor_a_percentage(p):
    assert percent(p) == "?"


def test_an_integer_too_large_for_a_float_reads_as_a_question_mark_not_an_overflow():
    assert percent(10**400) == "?" and percent(-(10**400)) == "?"


@pytest.mark.parametrize("p", [True, False, None, "0.5", [0.5]])
def test_what_is_no_number_is_a_type_error_and_true_is_no_probability_of_one(p):
    with pytest.raises(TypeError, match="^percent takes a probability \\(a number\\), got "):
        percent(p)


@pytest.mark.parametrize(("p", "shown"), [(1 + 1e-9, "100.0%"), (-1e-9, "<0.1%")])
def test_a_probability_that_rounding_pushed_just_outside_0_to_1_reads_as_its_nearest_end(p, shown):
    assert percent(p) == shown


def test_neighbouring_probabilities_never_read_in_the_wrong_order():
    values = [i / 10_000 for i in range(10, 10_001)]
    shown = [float(percent(p).rstrip("%")) for p in values]
    assert shown == sorted(shown)


def test_a_sparkline_draws_a_falling_curve_from_the_highest_block_to_the_lowest():
    assert sparkline([7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0]) == "█▇▆▅▄▃▂▁"
    assert sparkline([5.0, 5.0]) == "▁▁" and sparkline([]) == ""


def test_a_long_series_is_thinned_to_the_width_keeping_its_ends():
    line = sparkline([float(v) for v in range(100, 0, -1)], width=10)
    assert len(line) == 10 and line[0] == "█" and line[-1] == "▁"
