"""Inference benchmarks: keystroke latency (stateful vs re-run), cold start and memory, generation speed, and the
CPU inference levers (threads, int8 dynamic quantisation, half precision, torch.compile)."""

from __future__ import annotations

import contextlib
import copy
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

from autocomplete.completion import LanguageModelAutoSuggest, LanguageModelCompleter, SamplingSettings
from autocomplete.model import LSTMLanguageModel, quantize_dynamic
from autocomplete.context import batch_one
from autocomplete.predictor import Predictor
from autocomplete.vocab import EOS_ID
from benchmarks.common import Report, percentile, read_words, timed


class RerunPredictor:
    """The teaching notebook's approach: run the model over the whole text again on every keystroke."""

    def __init__(self, predictor: Predictor) -> None:
        self.p = predictor

    @torch.inference_mode()
    def suggest(self, text: str, k: int = 5) -> list[int]:
        complete, partial = self.p.tokenizer.split_partial(text)
        ids = [EOS_ID] + self.p.vocab.encode(self.p.tokenizer.tokenize(complete))
        features, _ = self.p.model.features(torch.tensor([ids]))
        logp = torch.log_softmax(self.p.model.logits(features[0, -1]), -1)
        candidates = self.p.candidates(partial)
        top = torch.topk(logp[candidates], min(k, candidates.numel()))
        return candidates[top.indices].tolist()


def keystroke_texts(words: list[str], context: int, keystrokes: int) -> list[str]:
    """The buffer contents after each keystroke, starting with ``context`` words already typed."""
    text = " ".join(words[:context]) + " "
    follow = " ".join(words[context:]) + " "
    return [text + follow[:i] for i in range(1, min(keystrokes, len(follow)) + 1)]


def repl_path(  # type: ignore[no-untyped-def]
    predictor: Predictor, settings: SamplingSettings | None = None, menu_ms: list[float] | None = None
):
    """One keystroke the way the session handles it: grey text + menu + toolbar candidates. ``menu_ms`` collects
    the time of the menu's part (the grey text has asked the model about the same text just before)."""
    suggest = LanguageModelAutoSuggest(predictor, settings or SamplingSettings())
    completer = LanguageModelCompleter(predictor, suggest.settings)
    buffer = Buffer()
    event = CompleteEvent(text_inserted=True)

    def keystroke(text: str) -> None:
        document = Document(text)
        suggest.compute(buffer, document)
        start = time.perf_counter()
        list(completer.get_completions(document, event))
        if menu_ms is not None:
            menu_ms.append((time.perf_counter() - start) * 1000)

    return keystroke


def keystroke_latency(report: Report, predictor: Predictor, text_path: Path, quick: bool, command: str) -> None:
    contexts = (10, 100) if quick else (10, 100, 500)
    keystrokes = 60 if quick else 300
    words = read_words(text_path, max(contexts) + keystrokes)
    rerun = RerunPredictor(predictor)
    for context in contexts:
        texts = keystroke_texts(words, context, keystrokes)
        predictor.reset()
        menu: list[float] = []
        keystroke = repl_path(predictor, menu_ms=menu)
        keystroke(texts[0][:-1])  # the context has been typed already: the state is warm
        menu.clear()
        stateful = [timed(lambda t=t: keystroke(t)) * 1000 for t in texts]
        sample = texts[:: max(1, len(texts) // (20 if quick else 60))]
        baseline = [timed(lambda t=t: rerun.suggest(t)) * 1000 for t in sample]
        ratio = percentile(baseline, 50) / percentile(stateful, 50)
        report.add(
            "keystroke latency", f"{context} words typed", command,
            stateful_p50_ms=percentile(stateful, 50), stateful_p95_ms=percentile(stateful, 95),
            stateful_p99_ms=percentile(stateful, 99), menu_p50_ms=percentile(menu, 50), rerun_p50_ms=percentile(baseline, 50),
            rerun_p99_ms=percentile(baseline, 99), speedup_p50=f"{ratio:.0f}×",
        )


def cold_start(report: Report, model: Path, command: str) -> None:
    with tempfile.TemporaryDirectory() as data:  # a first start: nothing learned by earlier runs
        _cold_start(report, model, command, {**os.environ, "AUTOCOMPLETE_DATA_DIR": data})


def _cold_start(report: Report, model: Path, command: str, env: dict[str, str]) -> None:
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "autocomplete", "--plain", "--model", str(model)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )
    assert proc.stdin and proc.stdout
    proc.stdin.write("I would like to\n")
    proc.stdin.flush()
    first = proc.stdout.readline()
    elapsed = time.perf_counter() - start
    proc.stdin.close()
    _, status, usage = os.wait4(proc.pid, 0)
    report.add(
        "cold start", "process start → first suggestion", command,
        seconds=elapsed, peak_rss_mb=usage.ru_maxrss / 1024, first_line=first.strip()[:40],
    )


def generation(report: Report, predictor: Predictor, quick: bool, command: str) -> None:
    words = 50 if quick else 300
    for name, temperature in (("greedy", 0.0), ("sampled (t=0.8, top-k 40, top-p 0.95)", 0.8)):
        predictor.reset()
        seconds = timed(
            lambda: predictor.continuation("I would like to", max_words=words, temperature=temperature, seed=1,
                                           stop_at="never", finished=True)
        )
        report.add("generation", f"{name}, batch 1, CPU", command, words_per_s=words / seconds)


def step_latency(model: LSTMLanguageModel, steps: int = 200, onednn: bool = False) -> float:
    """Median ms of one LSTM step plus the next-word distribution (the per-word cost of the predictor).

    The predictor steps with oneDNN off; ``onednn=True`` measures PyTorch's default instead."""
    state = model.init_state(1)
    token = torch.tensor([[5]])
    times = []
    with torch.inference_mode(), (contextlib.nullcontext() if onednn else batch_one()):
        for _ in range(steps):
            start = time.perf_counter()
            out, state = model.features(token, state)
            torch.log_softmax(model.logits(out[0, -1]).float(), -1)
            times.append((time.perf_counter() - start) * 1000)
    return percentile(times, 50)


def levers(report: Report, predictor: Predictor, eval_ids: torch.Tensor, quick: bool, command: str) -> None:
    """Each CPU inference lever measured on and off: step latency and held-out perplexity."""
    from autocomplete.evaluate import evaluate_stream

    ids = eval_ids[: 2000 if quick else 20000]
    threads = torch.get_num_threads()
    base_ms = step_latency(predictor.model)
    base_loss, _, _ = evaluate_stream(predictor.model, ids)
    report.add("levers", f"baseline: float32, {threads} threads, oneDNN off for batch-1 steps", command,
               step_ms=base_ms, perplexity=float(torch.tensor(base_loss).exp()))
    report.add("levers", "float32 with oneDNN on (PyTorch's default)", command,
               step_ms=step_latency(predictor.model, onednn=True))
    for n in sorted({1, 2, threads} - {threads}):
        torch.set_num_threads(n)
        report.add("levers", f"{n} thread(s)", command, step_ms=step_latency(predictor.model))
    torch.set_num_threads(threads)
    quantized = quantize_dynamic(predictor.model)
    q_loss, _, _ = evaluate_stream(quantized, ids)
    report.add("levers", "int8 dynamic quantisation (LSTM + Linear)", command,
               step_ms=step_latency(quantized), perplexity=float(torch.tensor(q_loss).exp()))
    half = copy.deepcopy(predictor.model).to(torch.bfloat16)
    report.add("levers", "bfloat16 weights", command, step_ms=step_latency(half))
    if not quick:
        compiled = copy.deepcopy(predictor.model)
        compiled.features = torch.compile(compiled.features, dynamic=False)  # type: ignore[method-assign]
        started = time.perf_counter()
        step_latency(compiled, steps=3)
        warm = time.perf_counter() - started
        report.add("levers", "torch.compile of the step", command, step_ms=step_latency(compiled),
                   compile_s=warm)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
