import os
import subprocess
import sys

import pytest
import torch

from autocomplete.errors import ConfigError
from autocomplete.model import (
    Int8ProjectedLSTM, LSTMLanguageModel, ModelConfig, detach_state, int8_linear, quantize_dynamic,
)


def model(**kwargs: object) -> LSTMLanguageModel:
    torch.manual_seed(0)
    settings = {"vocab_size": 50, "embedding_dim": 8, "hidden_dim": 16, "num_layers": 2, "dropout": 0.0, **kwargs}
    return LSTMLanguageModel(ModelConfig(**settings)).eval()  # type: ignore[arg-type]


def test_forward_returns_logits_over_the_vocabulary_and_a_new_state():
    m = model()
    tokens = torch.randint(0, 50, (3, 7))
    logits, state = m(tokens)
    assert logits.shape == (3, 7, 50)
    assert len(state) == 2
    h, c = state[-1]
    assert h.shape == (1, 3, 8) and c.shape == (1, 3, 16)  # last layer projects back to the embedding size


def test_state_is_passed_explicitly_and_never_kept_on_the_module():
    m = model()
    tokens = torch.randint(0, 50, (1, 6))
    first, _ = m(tokens)
    again, _ = m(tokens)
    assert torch.equal(first, again)
    assert not any(isinstance(v, torch.Tensor) and v.dim() == 3 for v in vars(m).values())


def test_stepping_token_by_token_matches_one_pass_over_the_sequence():
    m = model()
    tokens = torch.randint(0, 50, (2, 9))
    full, _ = m(tokens)
    state = None
    for t in range(9):
        step, state = m(tokens[:, t : t + 1], state)
        assert torch.allclose(step[:, 0], full[:, t], atol=1e-5)


def test_tied_weights_share_the_embedding_matrix():
    m = model()
    assert m.decoder.weight is m.embedding.weight
    untied = model(tie_weights=False)
    assert untied.decoder.weight is not untied.embedding.weight


def test_adaptive_softmax_gives_a_normalised_distribution():
    for m in (model(tie_weights=False, adaptive_cutoffs=(10, 30)), model(adaptive_cutoffs=(10, 30))):
        logits, _ = m(torch.randint(0, 50, (2, 4)))
        assert torch.allclose(logits.exp().sum(-1), torch.ones(2, 4), atol=1e-5)


def test_the_tied_adaptive_softmax_shares_the_embedding_and_adds_only_cluster_vectors():
    tied, full = model(adaptive_cutoffs=(10, 30)), model()
    assert tied.decoder.weight is tied.embedding.weight
    assert tied.num_parameters() == full.num_parameters() + 2 * (8 + 1)  # two cluster vectors with biases


def peaked(m: LSTMLanguageModel) -> LSTMLanguageModel:
    """Weights scaled up so that distributions are far from uniform, as in a trained model (much more and the random
    network turns chaotic: any rounding, int8's included, grows step by step)."""
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(4)
    return m


def test_the_int8_copy_of_a_projected_tied_two_level_model_gives_the_float_distribution():
    m = peaked(model(vocab_size=300, embedding_dim=32, hidden_dim=96, adaptive_cutoffs=(40, 120)))
    q = quantize_dynamic(m)
    assert isinstance(q.layers[-1], Int8ProjectedLSTM) and q.decoder._int8  # nothing of the step left in float
    tokens = torch.randint(0, 300, (2, 12))
    with torch.inference_mode():
        exact, (h, c) = m(tokens)[0].exp(), m(tokens)[1][-1]
        fast, (qh, qc) = q(tokens)[0].exp(), q(tokens)[1][-1]
    assert exact.max() > 0.05  # 15 times the uniform 1/300: a wrong gate, bias or cluster would show
    assert torch.allclose(fast.sum(-1), torch.ones(2, 12), atol=1e-4)
    assert (fast - exact).abs().max() < 0.01 and (qh - h).abs().max() < 0.05 and (qc - c).abs().max() < 0.1


def test_the_int8_projected_lstm_continues_from_a_given_state_like_the_float_one():
    lstm = peaked(model(embedding_dim=16, hidden_dim=48)).layers[-1]
    int8 = Int8ProjectedLSTM(dict(lstm.named_parameters()))
    x = torch.randn(3, 5, 48)
    state = (torch.randn(1, 3, 16), torch.randn(1, 3, 48))
    with torch.inference_mode():
        (out, (h, c)), (qout, (qh, qc)) = lstm(x, state), int8(x, state)
    assert qout.shape == out.shape == (3, 5, 16) and qh.shape == h.shape and qc.shape == c.shape
    assert (qout - out).abs().max() < 0.1 * out.abs().max()  # int8 rounding; a wrong gate or bias is of the order 1
    assert torch.equal(qout[:, -1], qh[0]) and (qc - c).abs().max() < 0.1 * c.abs().max()


@pytest.mark.parametrize("rows, columns, bias", [(96, 40, True), (7, 300, False), (3, 5, True)])
def test_the_int8_linear_layer_is_pytorchs_dynamically_quantised_linear_bit_for_bit(rows, columns, bias):
    import warnings

    generator = torch.Generator().manual_seed(rows)
    linear = torch.nn.Linear(columns, rows, bias=bias)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(rows, columns, generator=generator) * 3)
        linear.weight[0].zero_()  # a row of zeros gets the smallest scale, not a division by zero
    spec = {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(linear), spec, dtype=torch.qint8)[0]
    ours = int8_linear(linear.weight, linear.bias)
    x = torch.randn(4, columns, generator=generator)
    assert torch.equal(ours(x), reference(x))


def test_loss_equals_the_negative_log_probability_of_the_targets():
    for m in (model(), model(tie_weights=False, adaptive_cutoffs=(10, 30)), model(adaptive_cutoffs=(10, 30))):
        x, y = torch.randint(0, 50, (2, 5)), torch.randint(0, 50, (2, 5))
        features, _ = m.features(x)
        logp = torch.log_softmax(m.logits(features), -1)
        expected = -logp.gather(-1, y.unsqueeze(-1)).mean()
        assert torch.allclose(m.loss(features, y), expected, atol=1e-5)


@pytest.mark.parametrize("targets", ["every cluster", "head only"])
def test_the_tied_two_level_loss_has_the_gradients_of_the_full_distribution(targets):
    m = model(adaptive_cutoffs=(10, 30)).double()
    x = torch.randint(0, 50, (3, 6))
    y = torch.randint(0, 50, (3, 6)) if targets == "every cluster" else torch.randint(0, 10, (3, 6))
    params = [p for p in m.parameters() if p.requires_grad]

    def gradients(loss_of) -> list[torch.Tensor]:
        features, _ = m.features(x)
        return list(torch.autograd.grad(loss_of(features), params, allow_unused=True))

    fast = gradients(lambda f: m.loss(f, y))
    slow = gradients(lambda f: -torch.log_softmax(m.logits(f), -1).gather(-1, y.unsqueeze(-1)).mean())
    for a, b in zip(fast, slow):
        if b is None:  # a tail cluster's vector that no target reached
            assert a is None or torch.count_nonzero(a) == 0
        else:
            assert torch.allclose(a, b, atol=1e-8)


# torch.backends.mkldnn.flags() announces, each time it is entered, a TF32 path for Intel GPUs this build lacks
@pytest.mark.filterwarnings("ignore:TF32 acceleration on top of oneDNN:UserWarning")
def test_the_tied_two_level_loss_trains_under_bfloat16_autocast_as_on_a_gpu():
    m = model(adaptive_cutoffs=(10, 30))
    x, y = torch.randint(0, 50, (3, 6)), torch.randint(0, 50, (3, 6))
    params = [p for p in m.parameters() if p.requires_grad]
    exact = torch.autograd.grad(m.loss(m.features(x)[0], y), params, allow_unused=True)
    # What is under test is the loss, not oneDNN: its bfloat16 LSTM primitive is missing on AVX2-only CPUs
    # (``torch.ops.mkldnn._is_mkldnn_bf16_supported()`` is False there), so the LSTM runs on PyTorch's own kernel,
    # which every CPU has.
    with torch.backends.mkldnn.flags(enabled=False), torch.autocast("cpu", dtype=torch.bfloat16):
        loss = m.loss(m.features(x)[0], y)
    low = torch.autograd.grad(loss, params, allow_unused=True)
    for a, b in zip(low, exact):
        assert (a is None) == (b is None)
        if a is not None:
            assert a.dtype == b.dtype and torch.allclose(a, b, atol=2e-2, rtol=5e-2)


def test_dropout_variants_only_act_in_training_mode():
    m = model(dropout=0.5, input_dropout=0.3, embedding_dropout=0.2, weight_dropout=0.4)
    tokens = torch.randint(0, 50, (2, 6))
    a, _ = m(tokens)
    b, _ = m(tokens)
    assert torch.equal(a, b)
    m.train()
    c, _ = m(tokens)
    assert not torch.allclose(a, c)


def test_weight_dropout_gradients_reach_the_recurrent_weights():
    m = model(weight_dropout=0.5).train()
    features, _ = m.features(torch.randint(0, 50, (2, 6)))
    m.loss(features, torch.randint(0, 50, (2, 6))).backward()
    assert m.layers[0].weight_hh_l0.grad is not None and m.layers[0].weight_hh_l0.grad.abs().sum() > 0


def test_detached_state_keeps_values_but_cuts_the_graph():
    m = model().train()
    _, state = m(torch.randint(0, 50, (1, 3)))
    assert state[0][0].requires_grad
    detached = detach_state(state)
    assert not detached[0][0].requires_grad and torch.equal(detached[0][0], state[0][0])


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"hidden_dim": 0}, "hidden dim"),
        ({"dropout": 1.5}, "dropout"),
        ({"tie_weights": False, "adaptive_cutoffs": (30, 10)}, "cutoffs"),
    ],
)
def test_invalid_model_settings_are_refused(settings, message):
    with pytest.raises(ConfigError, match=message):
        ModelConfig(vocab_size=50, **settings)


def test_config_round_trips_through_a_plain_dict():
    config = ModelConfig(vocab_size=50, tie_weights=False, adaptive_cutoffs=(10, 20))
    assert ModelConfig.from_dict(config.to_dict()) == config


def test_stepping_and_learning_on_two_threads_warns_nothing_and_leaves_the_hosts_filters_alone(
    trained_model_path, tmp_path
):
    # a projected top layer (oneDNN's note on every call) stepped by the caller while the learner re-quantises it
    # (PyTorch's int8 notes) in its thread: a host running with warnings as errors sees none, and gets no "ignore
    # everything" filter left behind (catch_warnings() interleaved on two threads could leave one)
    script = f"""
import sys, threading, warnings
import autocomplete
predictor = autocomplete.load({str(trained_model_path)!r})
warnings.simplefilter("error")  # a host that turns warnings into errors after the import, too
entered = []
class Counting(warnings.catch_warnings):
    def __enter__(self):
        entered.append(threading.current_thread().name)
        return super().__enter__()
warnings.catch_warnings = Counting
for i in range(30):
    predictor.commit("the king is dead and the queen is here\\n")
    predictor.suggest("the king is ")
predictor.personal.wait()
predictor.suggest("the king is ")
assert not any(f[:4] == ("ignore", None, Warning, None) for f in warnings.filters), warnings.filters
assert not entered, entered  # steps and learning swap no filters in and out
assert predictor.personal.error is None and predictor.personal.stats.lines == 30, predictor.personal.error
"""
    env = {**os.environ, "AUTOCOMPLETE_DATA_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-W", "error", "-c", script], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0 and done.stderr == "", done.stderr
