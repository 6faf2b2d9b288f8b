import math
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from autocomplete.errors import ConfigError
from autocomplete.sampling import LIMITS, SamplingConfig, filter_logits, make_generator, sample

LOGITS = torch.tensor([2.0, 1.0, 0.5, -1.0, 3.0])


def test_temperature_zero_is_greedy():
    assert sample(LOGITS, temperature=0) == 4


def test_top_k_keeps_only_the_k_best():
    filtered = filter_logits(LOGITS, top_k=2)
    assert torch.isfinite(filtered).tolist() == [True, False, False, False, True]


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.softmax(LOGITS, 0)  # ≈ [.23, .08, .05, .01, .63]
    kept = torch.isfinite(filter_logits(LOGITS, top_p=0.8)).tolist()
    assert kept == [True, False, False, False, True]
    assert probs[4] < 0.8 <= probs[4] + probs[0]
    assert torch.isfinite(filter_logits(LOGITS, top_p=0.01)).sum() == 1


def test_the_same_seed_draws_the_same_tokens():
    a = [sample(LOGITS, 1.0, generator=make_generator(7)) for _ in range(5)]
    g1, g2 = make_generator(3), make_generator(3)
    assert [sample(LOGITS, 1.0, generator=g1) for _ in range(20)] == [sample(LOGITS, 1.0, generator=g2) for _ in range(20)]
    assert len(set(a)) == 1


def test_high_temperature_spreads_the_choices():
    g = make_generator(0)
    draws = {sample(LOGITS, 5.0, generator=g) for _ in range(200)}
    assert draws == {0, 1, 2, 3, 4}


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-20, 20), min_size=2, max_size=30), st.integers(0, 1000))
def test_temperature_towards_zero_equals_greedy(values, seed):
    logits = torch.tensor(values)
    best = int(torch.argmax(logits))
    if (logits == logits[best]).sum() > 1 or torch.topk(logits, 2).values.diff().abs() < 1e-3:
        return  # ties: any of them is greedy
    assert sample(logits, 1e-4, generator=make_generator(seed)) == best


@pytest.mark.parametrize(
    "changes",
    [{"temperature": -0.1}, {"temperature": math.nan}, {"temperature": 5.5}, {"temperature": True}, {"top_k": -1},
     {"top_k": 2.5}, {"top_p": 0.0}, {"top_p": 1.5}, {"max_words": 0}, {"suggestions": 101}],
)
def test_invalid_settings_are_refused_with_the_valid_range(changes):
    name = next(iter(changes)).replace("_", "-")
    with pytest.raises(ConfigError, match=f"{name} must be .*[\\[(≥]"):
        SamplingConfig(**changes)
    with pytest.raises(ConfigError, match=f"{name} must be"):
        SamplingConfig().replace(**changes)


def test_the_config_is_frozen_and_replace_returns_a_validated_copy():
    config = SamplingConfig()
    hotter = config.replace(temperature=1.5, top_k=0)
    assert (config.temperature, hotter.temperature, hotter.top_k) == (0.8, 1.5, 0)
    with pytest.raises(AttributeError):
        config.temperature = 2.0  # type: ignore[misc]
    with pytest.raises(ConfigError, match="unknown sampling settings"):
        config.replace(temprature=1.0)


def test_with_temperature_clamps_into_the_one_range_and_rounds():
    config = SamplingConfig()
    assert config.with_temperature(0.8 + 0.1).temperature == 0.9
    assert config.with_temperature(99).temperature == LIMITS["temperature"].high == 5.0
    assert config.with_temperature(-1).temperature == 0.0


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [("temperature", "0.5", 0.5), ("temperature", "5", 5.0), ("top_k", "0", 0), ("top_p", "1", 1.0)],
)
def test_user_text_parses_into_a_field(name, text, expected):
    value = SamplingConfig.parse(name, text)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [("temperature", "hot", "got 'hot'"), ("temperature", "inf", "not a finite number"),
     ("temperature", "6", "out of range"), ("top_k", "1.5", "an integer"), ("top_p", "0", "out of range")],
)
def test_bad_user_text_names_the_setting_and_its_range(name, text, message):
    with pytest.raises(ConfigError, match=message) as error:
        SamplingConfig.parse(name, text)
    assert str(error.value).startswith(name.replace("_", "-") + " must be")


@pytest.mark.parametrize("text", [None, True, [1]])
def test_a_value_that_is_no_text_names_the_setting_and_the_value(text):
    message = rf"^temperature must be a number in \[0, 5\].*, got {re.escape(repr(text))}$"
    with pytest.raises(ConfigError, match=message):
        SamplingConfig.parse("temperature", text)


@pytest.mark.parametrize("name", ["bogus", "top-k", None])
def test_an_unknown_setting_is_a_config_error_that_lists_the_known_ones(name):
    known = "temperature, top_k, top_p, max_words, suggestions"
    message = f"^unknown sampling setting {re.escape(repr(name))}; known: {known}$"
    with pytest.raises(ConfigError, match=message):
        SamplingConfig.parse(name, "1")


def test_with_temperature_refuses_nan_instead_of_turning_greedy():
    with pytest.raises(ConfigError, match="temperature must be a number in \\[0, 5\\].*got nan"):
        SamplingConfig().with_temperature(math.nan)
    assert SamplingConfig().with_temperature(math.inf).temperature == 5.0  # infinity is still clamped


def test_a_config_error_is_also_a_value_error_and_still_an_autocomplete_error():
    from autocomplete.errors import AutocompleteError

    with pytest.raises(ValueError, match="top-k must be") as error:
        SamplingConfig(top_k=-1)
    assert isinstance(error.value, ConfigError) and isinstance(error.value, AutocompleteError)
