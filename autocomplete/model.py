"""The network: Embedding → N-layer LSTM → (tied) softmax. Nothing else lives here.

The recurrent state goes in and out of every call (``forward(tokens, state) -> (logits, state)``) and is never stored
on the module, so one model serves the trainer, the predictor and any number of threads holding their own states.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from autocomplete.errors import ConfigError
from autocomplete.settings import MODEL_SIZE_LIMITS

# PyTorch's notes on paths this package takes on purpose: a projected LSTM on its own kernel (oneDNN has none, noted on
# every call) and the int8 quantisation API it announces will move.
_NOTES = (
    r"LSTM with projections is not supported with oneDNN",
    r"torch\.ao\.quantization is deprecated",
    r"torch\.quantize_per_tensor, torch\.quantize_per_channel and other quantized tensor creation functions",
)


def quiet_notes() -> None:
    """Ignore :data:`_NOTES`, and only them, ahead of every other warnings filter. Filters for good, not a
    ``warnings.catch_warnings()`` around each call (a keystroke's step, the learner's re-quantisation in its thread):
    that is not thread-safe, and two interleaved ones let the note through or leave "ignore everything" in the host's
    filters. Put back ahead by the learner before each piece it learns, and by :func:`quantize_dynamic`: a host that
    turns warnings into errors after the import (``simplefilter("error")``) must not stop learning with a note."""
    for note in _NOTES:
        warnings.filterwarnings("ignore", message=note)  # an identical filter already there moves to the front


quiet_notes()

# One (h, c) pair per layer; h is (1, B, out_dim), c is (1, B, hidden_dim).
State = list[tuple[Tensor, Tensor]]
# A replacement for the last LSTM layer: (input (B, T, H), its (h, c)) → (output (B, T, D), new (h, c)).
TopLayer = Callable[[Tensor, tuple[Tensor, Tensor]], tuple[Tensor, tuple[Tensor, Tensor]]]


_SIZE_LIMITS = MODEL_SIZE_LIMITS  # far above any model this tool trains, refused before anything is allocated


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int  # number of tokens, specials included
    embedding_dim: int = 256  # word vector size; also the LSTM's output size when weights are tied
    hidden_dim: int = 512  # LSTM cell size; the last layer projects back to embedding_dim when tied and larger
    num_layers: int = 2  # stacked LSTM layers
    dropout: float = 0.2  # dropout on every LSTM layer's output
    input_dropout: float = 0.0  # dropout on the embeddings entering the first layer
    embedding_dropout: float = 0.0  # drops whole words from the embedding matrix (AWD-LSTM "dropoute")
    weight_dropout: float = 0.0  # DropConnect on the hidden-to-hidden weights (AWD-LSTM "wdrop")
    locked_dropout: bool = True  # one dropout mask for all time steps (variational) instead of a fresh one per step
    tie_weights: bool = True  # share the input embedding with the output layer
    adaptive_cutoffs: tuple[int, ...] = field(default_factory=tuple)  # softmax clusters by frequency; () = full softmax

    def __post_init__(self) -> None:
        """Every value's type and range: a config also comes from model files, which may be hostile."""
        for name, high in _SIZE_LIMITS.items():
            value = getattr(self, name)
            if not _is_int(value) or not 1 <= value <= high:
                raise ConfigError(f"{name.replace('_', ' ')} must be an integer from 1 to {high:,}, got {value!r}")
        for name in ("dropout", "input_dropout", "embedding_dropout", "weight_dropout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ConfigError(f"{name.replace('_', ' ')} must be a number in [0, 1), got {value!r}")
        for name in ("locked_dropout", "tie_weights"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name.replace('_', ' ')} must be true or false, got {getattr(self, name)!r}")
        if self.tie_weights and self.hidden_dim < self.embedding_dim:
            raise ConfigError(
                f"with tied weights the hidden size ({self.hidden_dim}) must be at least the embedding size "
                f"({self.embedding_dim}); raise it, or untie the weights (--no-tie)"
            )
        if not isinstance(self.adaptive_cutoffs, (list, tuple)) or not all(map(_is_int, self.adaptive_cutoffs)):
            raise ConfigError(f"adaptive cutoffs must be a list of integers, got {self.adaptive_cutoffs!r}")
        cutoffs = tuple(self.adaptive_cutoffs)
        object.__setattr__(self, "adaptive_cutoffs", cutoffs)
        if cutoffs:
            if list(cutoffs) != sorted(set(cutoffs)) or cutoffs[0] < 1 or cutoffs[-1] >= self.vocab_size:
                raise ConfigError(
                    f"adaptive cutoffs must increase strictly within 1..{self.vocab_size - 1}, got {list(cutoffs)}"
                )

    @property
    def output_dim(self) -> int:
        """Size of the vectors fed to the softmax."""
        return self.embedding_dim if self.tie_weights else self.hidden_dim

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["adaptive_cutoffs"] = list(self.adaptive_cutoffs)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown model settings {sorted(unknown)}")
        return cls(**data)  # type: ignore[arg-type]


def parameter_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The name and shape of every entry of :class:`LSTMLanguageModel`'s ``state_dict`` for ``config``, computed
    without building it: a model file's declared sizes are checked against its tensors before anything is allocated
    (tests/test_model.py keeps this in step with the module)."""
    c = config
    shapes: dict[str, tuple[int, ...]] = {"embedding.weight": (c.vocab_size, c.embedding_dim)}
    for i in range(c.num_layers):
        in_dim = c.embedding_dim if i == 0 else c.hidden_dim
        proj = c.embedding_dim if i == c.num_layers - 1 and c.tie_weights and c.hidden_dim != c.embedding_dim else 0
        gates = 4 * c.hidden_dim
        shapes |= {
            f"layers.{i}.weight_ih_l0": (gates, in_dim),
            f"layers.{i}.weight_hh_l0": (gates, proj or c.hidden_dim),
            f"layers.{i}.bias_ih_l0": (gates,),
            f"layers.{i}.bias_hh_l0": (gates,),
        }
        if proj:
            shapes[f"layers.{i}.weight_hr_l0"] = (proj, c.hidden_dim)
    cutoffs, d = c.adaptive_cutoffs, c.output_dim
    if cutoffs and c.tie_weights:
        shapes |= {
            "decoder.bias": (c.vocab_size,),
            "decoder.clusters.weight": (len(cutoffs), d),
            "decoder.clusters.bias": (len(cutoffs),),
        }
    elif cutoffs:  # nn.AdaptiveLogSoftmaxWithLoss(d, V, cutoffs, div_value=4.0), no head bias
        shapes["decoder.head.weight"] = (cutoffs[0] + len(cutoffs), d)
        bounds = [*cutoffs, c.vocab_size]
        for i in range(len(cutoffs)):
            hidden = int(d // (4.0 ** (i + 1)))
            shapes[f"decoder.tail.{i}.0.weight"] = (hidden, d)
            shapes[f"decoder.tail.{i}.1.weight"] = (bounds[i + 1] - bounds[i], hidden)
    else:
        shapes |= {"decoder.weight": (c.vocab_size, d), "decoder.bias": (c.vocab_size,)}
    return shapes


def _dropout_mask(x: Tensor, p: float, locked: bool) -> Tensor:
    """A scaled Bernoulli mask for ``x`` (B, T, D); ``locked`` shares it over T."""
    shape = (x.size(0), 1, x.size(2)) if locked else x.shape
    return x.new_empty(shape).bernoulli_(1 - p) / (1 - p)


class LSTMLanguageModel(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.embedding = nn.Embedding(c.vocab_size, c.embedding_dim)
        layers = []
        for i in range(c.num_layers):
            last = i == c.num_layers - 1
            in_dim = c.embedding_dim if i == 0 else c.hidden_dim
            proj = c.embedding_dim if last and c.tie_weights and c.hidden_dim != c.embedding_dim else 0
            layers.append(nn.LSTM(in_dim, c.hidden_dim, batch_first=True, proj_size=proj))
        self.layers = nn.ModuleList(layers)
        if c.adaptive_cutoffs and c.tie_weights:
            self.decoder: nn.Module = TiedAdaptiveSoftmax(self.embedding, c.adaptive_cutoffs)
        elif c.adaptive_cutoffs:
            self.decoder = nn.AdaptiveLogSoftmaxWithLoss(
                c.output_dim, c.vocab_size, list(c.adaptive_cutoffs), div_value=4.0
            )
        else:
            linear = nn.Linear(c.output_dim, c.vocab_size)
            if c.tie_weights:
                linear.weight = self.embedding.weight
            self.decoder = linear
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        if isinstance(self.decoder, nn.Linear):
            nn.init.zeros_(self.decoder.bias)

    def init_state(self, batch_size: int = 1, device: torch.device | str | None = None) -> State:
        """A zero state for ``batch_size`` independent streams."""
        device = device or self.embedding.weight.device
        dtype = self.embedding.weight.dtype
        state: State = []
        for layer in self.layers:
            hidden = cast(int, layer.hidden_size)  # an int on every LSTM, quantised or not
            out = getattr(layer, "proj_size", 0) or hidden  # quantised LSTMs have no proj_size
            h = torch.zeros(1, batch_size, out, device=device, dtype=dtype)
            c = torch.zeros(1, batch_size, hidden, device=device, dtype=dtype)
            state.append((h, c))
        return state

    def features(self, tokens: Tensor, state: State | None = None, top: TopLayer | None = None) -> tuple[Tensor, State]:
        """Run the LSTM over ``tokens`` (B, T) → (outputs (B, T, output_dim), new state).

        ``top`` runs in place of the last LSTM layer (same input, state and output shapes): the user's adapted copy
        of it (:mod:`autocomplete.personal`)."""
        c = self.config
        if state is None:
            state = self.init_state(tokens.size(0), tokens.device)
        weight = self.embedding.weight
        if self.training and c.embedding_dropout:
            weight = weight * _dropout_mask(weight.unsqueeze(0), c.embedding_dropout, False).squeeze(0)[:, :1]
        x = F.embedding(tokens, weight)  # (B, T, E)
        if self.training and c.input_dropout:
            x = x * _dropout_mask(x, c.input_dropout, c.locked_dropout)
        new_state: State = []
        last = len(self.layers) - 1
        for i, (layer, layer_state) in enumerate(zip(self.layers, state)):
            if top is not None and i == last:
                x, layer_state = top(x, layer_state)
            elif self.training and c.weight_dropout:
                w = F.dropout(cast(Tensor, layer.weight_hh_l0), c.weight_dropout, training=True)
                x, layer_state = functional_call(layer, {"weight_hh_l0": w}, (x, layer_state), strict=False)
            else:
                x, layer_state = layer(x, layer_state)  # (B, T, H or E)
            new_state.append(layer_state)
            if self.training and c.dropout:
                x = x * _dropout_mask(x, c.dropout, c.locked_dropout)
        return x, new_state

    def logits(self, features: Tensor) -> Tensor:
        """Scores over the vocabulary for ``features`` (..., D) → (..., V); softmax of them is the distribution.

        With the adaptive softmax the scores are already normalised log-probabilities.
        """
        if features.dim() == 1:  # one position (int8 linear layers want a batch dimension)
            return self.logits(features.unsqueeze(0)).squeeze(0)
        if isinstance(self.decoder, (nn.AdaptiveLogSoftmaxWithLoss, TiedAdaptiveSoftmax)):
            flat = features.reshape(-1, features.size(-1))
            return self.decoder.log_prob(flat).view(*features.shape[:-1], -1)
        return self.decoder(features)

    def forward(self, tokens: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """tokens (B, T) → (logits (B, T, V), state)."""
        x, state = self.features(tokens, state)
        return self.logits(x), state

    def loss(self, features: Tensor, targets: Tensor) -> Tensor:
        """Mean negative log-likelihood of ``targets`` (B, T) given ``features`` (B, T, D)."""
        flat = features.reshape(-1, features.size(-1))
        if isinstance(self.decoder, nn.AdaptiveLogSoftmaxWithLoss):
            return self.decoder(flat, targets.reshape(-1)).loss
        if isinstance(self.decoder, TiedAdaptiveSoftmax):
            return self.decoder.loss(flat, targets.reshape(-1))
        return F.cross_entropy(self.decoder(flat).float(), targets.reshape(-1))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class TiedAdaptiveSoftmax(nn.Module):
    """A two-level softmax over frequency clusters whose word vectors are the input embeddings (tied).

    ``p(w | h) = p(cluster(w) | h) · p(w | cluster(w), h)``. The head scores the ``cutoffs[0]`` most frequent words
    and one entry per tail cluster; a tail is only scored for the positions whose target falls in it. Word scores are
    ``h · embedding[w] + bias[w]`` at full width, so the parameters are those of the tied full softmax plus one
    vector per cluster, while training costs a fraction of the full softmax (the vocabulary is sorted by frequency,
    so most targets are in the head). ``log_prob`` still gives the exact full distribution.
    """

    def __init__(self, embedding: nn.Embedding, cutoffs: tuple[int, ...]) -> None:
        super().__init__()
        vocab_size, dim = embedding.weight.shape
        self._embedding = [embedding]  # shared, not a submodule: its weight is saved once, with the embedding
        self.bounds = [*cutoffs, vocab_size]
        self.bias = nn.Parameter(torch.zeros(vocab_size))
        self.clusters = nn.Linear(dim, len(cutoffs))
        self._int8: list[nn.Module] = []  # an int8 copy of every word's score (inference); a list: not a submodule

    @property
    def weight(self) -> Tensor:
        return self._embedding[0].weight

    def quantize(self) -> None:
        """Score words with an int8 copy of the word vectors (one scale per word), for batch-1 inference on a CPU.

        A word distribution reads every word vector once: 41 MB in float32 for 40,000 words × 256, ~3 ms a position,
        against ~0.2 ms in int8. The float matrix stays for the embedding lookups; the copy is not a parameter (not
        saved, not trained)."""
        self._int8 = [int8_linear(self.weight.detach(), self.bias.detach())]

    def _head(self, h: Tensor, scores: Tensor | None = None) -> Tensor:
        """Log-probabilities (N, c0 + clusters) of the head words and the tail clusters; ``scores`` are the head
        words' scores when already computed."""
        if scores is None:
            c0 = self.bounds[0]
            scores = F.linear(h, self.weight[:c0], self.bias[:c0])
        return torch.log_softmax(torch.cat([scores, self.clusters(h)], -1).float(), -1)

    def log_prob(self, h: Tensor) -> Tensor:
        """Full log-probabilities (N, V)."""
        c0 = self.bounds[0]
        scores = self._int8[0](h) if self._int8 else None  # every word's score in one int8 product
        head = self._head(h, None if scores is None else scores[:, :c0])
        parts = [head[:, :c0]]
        for i, (lo, hi) in enumerate(zip(self.bounds, self.bounds[1:])):
            tail = scores[:, lo:hi] if scores is not None else F.linear(h, self.weight[lo:hi], self.bias[lo:hi])
            parts.append(torch.log_softmax(tail.float(), -1) + head[:, c0 + i : c0 + i + 1])
        return torch.cat(parts, -1)

    def loss(self, h: Tensor, targets: Tensor) -> Tensor:
        """Mean negative log-likelihood of ``targets`` (N,) given ``h`` (N, D), scoring tails only where needed."""
        c0 = self.bounds[0]
        which = torch.bucketize(targets, torch.tensor(self.bounds[:-1], device=targets.device), right=True)
        head_target = torch.where(which == 0, targets, c0 + which - 1)
        rows = [(which == i + 1).nonzero().squeeze(1) for i in range(len(self.bounds) - 1)]
        # every cluster's scores in one autograd node, which writes its slice of the shared weight's gradient in place
        scores = _BlockLinear.apply(self.weight, self.bias, (0, *self.bounds), h, *(h.index_select(0, r) for r in rows))
        head = self._head(h, scores[0])
        nll = -head.gather(1, head_target.unsqueeze(1)).squeeze(1)
        for i, (r, tail_scores) in enumerate(zip(rows, scores[1:])):
            if r.numel():
                tail = torch.log_softmax(tail_scores.float(), -1)
                picked = tail.gather(1, (targets[r] - self.bounds[i]).unsqueeze(1)).squeeze(1)
                nll = nll.index_add(0, r, -picked)
        return nll.mean()


class _BlockLinear(torch.autograd.Function):
    """``xs[i] @ weight[b[i]:b[i+1]].T + bias[b[i]:b[i+1]]`` for consecutive row blocks of one weight matrix.

    Slicing a parameter in autograd costs a zero-filled gradient the size of the whole matrix per slice, then an
    addition per slice (four of each per step for a tied two-level softmax, ~15 % of a PTB-sized training step on a
    CPU). Here every block's gradient is written straight into its rows of one buffer.
    """

    @staticmethod
    def forward(ctx, weight: Tensor, bias: Tensor, bounds: tuple[int, ...], *xs: Tensor) -> tuple[Tensor, ...]:
        ctx.set_materialize_grads(False)
        ctx.bounds = bounds
        ctx.save_for_backward(weight, *xs)
        return tuple(F.linear(x, weight[lo:hi], bias[lo:hi]) for x, lo, hi in zip(xs, bounds, bounds[1:]))

    @staticmethod
    def backward(ctx, *grads: Tensor | None) -> tuple[Tensor | None, ...]:
        weight, *xs = ctx.saved_tensors
        grad_weight = torch.empty_like(weight)
        grad_bias = weight.new_empty(weight.size(0))
        grad_xs: list[Tensor | None] = []
        for x, g, lo, hi in zip(xs, grads, ctx.bounds, ctx.bounds[1:]):
            if g is None or x.size(0) == 0:
                grad_weight[lo:hi].zero_()
                grad_bias[lo:hi].zero_()
                grad_xs.append(None)
                continue
            if g.dtype == weight.dtype == x.dtype:
                torch.mm(g.t(), x, out=grad_weight[lo:hi])
            else:  # under autocast the scores (and so g) are in lower precision
                grad_weight[lo:hi] = g.t().mm(x.to(g.dtype))
            grad_bias[lo:hi] = g.sum(0)
            grad_xs.append(g.mm(weight[lo:hi].to(g.dtype)).to(x.dtype))
        return (grad_weight, grad_bias, None, *grad_xs)


def unfilled(module: nn.Module) -> nn.Module:
    """``module``, made on the meta device, given uninitialised CPU storage, to be loaded next (drawing the random
    initial weights of a layer about to be overwritten can take most of the time of making it). ``to_empty`` does the
    same but first imports PyTorch's symbolic-shape machinery: a second of start-up."""
    return module._apply(lambda t: torch.empty(t.shape, dtype=t.dtype))


class Int8Linear(nn.Module):
    """``x @ weight.T + bias`` with int8 weights (one scale per output row) and dynamically quantised inputs.

    The same weights, scales and kernel as PyTorch's dynamically quantised ``nn.Linear`` (symmetric per-row scales
    ``max |w| / 127.5``, fbgemm's ``linear_dynamic`` with a reduced input range), built without its observer and
    module machinery: the learner re-quantises the adapted top LSTM layer after every line, and this takes a third
    of the time."""

    def __init__(self, weight: Tensor, bias: Tensor | None) -> None:
        super().__init__()
        weight = weight.detach().float().contiguous()
        scale = torch.clamp(weight.abs().amax(1) / 127.5, min=torch.finfo(torch.float32).eps)
        ints = torch.round(weight * (1.0 / scale).unsqueeze(1)).clamp_(-128, 127).to(torch.int8)
        zero = torch.zeros(weight.size(0), dtype=torch.long)
        self.in_features, self.out_features = weight.size(1), weight.size(0)
        qweight = torch._make_per_channel_quantized_tensor(ints, scale.double(), zero, 0)
        self._packed = torch.ops.quantized.linear_prepack(qweight, None if bias is None else bias.detach().float())

    def forward(self, x: Tensor) -> Tensor:
        return torch.ops.quantized.linear_dynamic(x, self._packed, reduce_range=True)


def int8_linear(weight: Tensor, bias: Tensor | None) -> nn.Module:
    """``x @ weight.T + bias`` with int8 weights (one scale per output row) and dynamically quantised inputs."""
    return Int8Linear(weight, bias)


class Int8ProjectedLSTM(nn.Module):
    """A one-layer projected LSTM (``proj_size`` > 0) with int8 weights, for inference on a CPU.

    PyTorch's dynamic quantisation has no projected LSTM, and in float such a layer (768 cells projected to 256) reads
    7 MB of weights a step. Here the input gates of every step are one int8 product, then each step two more (the
    recurrent gates and the projection) and the cell's arithmetic in float: ``nn.LSTM``'s equations, gates in its
    order (i, f, g, o). Built from the float layer's parameters by name (``weight_ih_l0``, ...); batch first.
    """

    def __init__(self, weights: dict[str, Tensor], pause: Callable[[], None] = lambda: None) -> None:
        """``pause`` is called before each matrix is quantised (the learner's slices of work)."""
        super().__init__()
        w_ih, w_hh, w_hr = weights["weight_ih_l0"], weights["weight_hh_l0"], weights["weight_hr_l0"]
        self.input_size, self.hidden_size, self.proj_size = w_ih.size(1), w_hr.size(1), w_hr.size(0)
        bias = weights["bias_ih_l0"] + weights["bias_hh_l0"] if "bias_ih_l0" in weights else None
        pause()
        self.ih = int8_linear(w_ih.detach(), None if bias is None else bias.detach())
        pause()
        self.hh = int8_linear(w_hh.detach(), None)
        pause()
        self.hr = int8_linear(w_hr.detach(), None)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """``x`` (B, T, input), ``state`` ((1, B, proj), (1, B, hidden)) → (output (B, T, proj), new state)."""
        h, c = state[0][0].float(), state[1][0].float()
        gates = self.ih(x.float())  # (B, T, 4 × hidden)
        out = []
        for t in range(x.size(1)):
            i, f, g, o = (gates[:, t] + self.hh(h)).chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = self.hr(torch.sigmoid(o) * torch.tanh(c))
            out.append(h)
        output = torch.stack(out, 1) if out else x.new_zeros(x.size(0), 0, self.proj_size)
        return output, (h.unsqueeze(0), c.unsqueeze(0))


def quantize_dynamic(model: LSTMLanguageModel) -> LSTMLanguageModel:
    """A copy with int8 weights in its LSTM and linear layers and its tied word scores, for fast batch-1 inference
    on a CPU.

    One step of the predictor reads every weight once, so it is bound by memory traffic: int8 weights make it several
    times faster (see BENCHMARKS.md) at a perplexity cost well under 1 %. The embedding lookups stay in float.
    """
    names = {
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) or isinstance(module, nn.LSTM) and not module.proj_size
    }
    # the embedding table (41 MB at 40,000 × 256) is only read: the copy shares it
    weight = model.embedding.weight
    quiet_notes()
    copied = copy.deepcopy(model, {id(weight): weight}).eval()
    quantized = torch.ao.quantization.quantize_dynamic(copied, names, dtype=torch.qint8, inplace=True)
    for i, layer in enumerate(quantized.layers):
        if isinstance(layer, nn.LSTM) and layer.proj_size:
            quantized.layers[i] = Int8ProjectedLSTM(dict(layer.named_parameters()))
    if isinstance(quantized.decoder, TiedAdaptiveSoftmax):
        quantized.decoder.quantize()
    return quantized


def detach_state(state: State) -> State:
    """Cut the graph between truncated-BPTT segments while keeping the values."""
    return [(h.detach(), c.detach()) for h, c in state]
