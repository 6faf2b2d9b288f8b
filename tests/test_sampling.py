import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from autocomplete.errors import ConfigError
from autocomplete.sampling import filter_logits, make_generator, sample, validate_sampling

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


@pytest.mark.parametrize("args", [(-0.1, 40, 0.9), (math.nan, 40, 0.9), (1.0, -1, 0.9), (1.0, 40, 0.0), (1.0, 40, 1.5)])
def test_invalid_settings_are_refused_with_the_valid_range(args):
    with pytest.raises(ConfigError, match="must be"):
        validate_sampling(*args)
