"""The classic PyTorch word-language-model recipe (pytorch/examples/word_language_model), kept minimal and faithful:
plain ``nn.LSTM``, sequence-first tensors, tied weights, dropout, batch 20, bptt 35, plain SGD at lr 20 with the
learning rate divided by 4 when validation stops improving, gradient clipping at 0.25.

It is the baseline the benchmark measures ``autocomplete train`` against, on the same data and model size.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class RNNModel(nn.Module):
    def __init__(self, ntoken: int, ninp: int, nhid: int, nlayers: int, dropout: float = 0.2, tie: bool = True):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.LSTM(ninp, nhid, nlayers, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        if tie:
            self.decoder.weight = self.encoder.weight
        self.nlayers, self.nhid = nlayers, nhid
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        if not tie:
            nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

    def forward(self, x: Tensor, hidden: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        emb = self.drop(self.encoder(x))
        output, hidden = self.rnn(emb, hidden)
        output = self.drop(output)
        return F.log_softmax(self.decoder(output), dim=-1), hidden

    def init_hidden(self, bsz: int) -> tuple[Tensor, Tensor]:
        weight = next(self.parameters())
        return (weight.new_zeros(self.nlayers, bsz, self.nhid), weight.new_zeros(self.nlayers, bsz, self.nhid))


def batchify(data: Tensor, bsz: int) -> Tensor:
    nbatch = data.size(0) // bsz
    return data[: nbatch * bsz].view(bsz, -1).t().contiguous()  # (L, B): sequence first, as in the example


def repackage_hidden(h: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    return (h[0].detach(), h[1].detach())


@dataclass
class EpochResult:
    epoch: int
    valid_ppl: float
    seconds: float
    tokens: int


def evaluate(model: RNNModel, data: Tensor, bptt: int = 35) -> float:
    model.eval()
    total, hidden = 0.0, model.init_hidden(data.size(1))
    with torch.no_grad():
        for i in range(0, data.size(0) - 1, bptt):
            seq = min(bptt, len(data) - 1 - i)
            x, y = data[i : i + seq], data[i + 1 : i + 1 + seq]
            output, hidden = model(x, hidden)
            total += len(x) * F.nll_loss(output.view(-1, output.size(-1)), y.reshape(-1)).item()
    return total / (len(data) - 1)


def train(
    train_ids: Tensor,
    valid_ids: Tensor,
    ntoken: int,
    size: int = 200,
    layers: int = 2,
    dropout: float = 0.2,
    epochs: int = 1,
    max_steps: int | None = None,
    lr: float = 20.0,
    bsz: int = 20,
    bptt: int = 35,
    clip: float = 0.25,
    seed: int = 1111,
) -> tuple[list[EpochResult], float]:
    """Train with the classic recipe; returns per-epoch results and the training tokens/s (timing the loop only)."""
    torch.manual_seed(seed)
    model = RNNModel(ntoken, size, size, layers, dropout)
    data, valid = batchify(train_ids.long(), bsz), batchify(valid_ids.long(), 10)
    results, best, train_time, tokens, steps = [], None, 0.0, 0, 0
    for epoch in range(1, epochs + 1):
        model.train()
        hidden = model.init_hidden(bsz)
        started = time.perf_counter()
        for i in range(0, data.size(0) - 1, bptt):
            seq = min(bptt, len(data) - 1 - i)
            x, y = data[i : i + seq], data[i + 1 : i + 1 + seq]
            model.zero_grad()
            hidden = repackage_hidden(hidden)
            output, hidden = model(x, hidden)
            loss = F.nll_loss(output.view(-1, ntoken), y.reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            for p in model.parameters():
                p.data.add_(p.grad, alpha=-lr)
            tokens += x.numel()
            steps += 1
            if max_steps and steps >= max_steps:
                break
        train_time += time.perf_counter() - started
        if max_steps and steps >= max_steps:
            return results, tokens / train_time
        val = evaluate(model, valid)
        results.append(EpochResult(epoch, math.exp(val), train_time, tokens))
        if best is None or val < best:
            best = val
        else:
            lr /= 4.0
    return results, tokens / train_time
