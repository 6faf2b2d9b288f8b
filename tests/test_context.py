import threading

import torch

from autocomplete.context import Context, batch_one


def test_batch_one_restores_the_process_wide_onednn_flag_only_when_the_last_user_leaves():
    before = torch.backends.mkldnn.enabled
    with batch_one():
        with batch_one():
            assert not torch.backends.mkldnn.enabled
        assert not torch.backends.mkldnn.enabled
    assert torch.backends.mkldnn.enabled == before


def test_batch_one_on_many_threads_never_leaves_onednn_switched_off():
    before = torch.backends.mkldnn.enabled
    seen_on = []

    def worker() -> None:
        for _ in range(200):
            with batch_one():
                seen_on.append(torch.backends.mkldnn.enabled)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not any(seen_on)  # nobody restored the flag while another was still stepping
    assert torch.backends.mkldnn.enabled == before


def test_a_context_keeps_one_state_for_any_amount_of_committed_text(tiny_lm):
    context = Context(tiny_lm.model, tiny_lm.tokenizer, tiny_lm.vocab, torch.device("cpu"))
    context.reset([1])
    context.commit("hear me speak\n")
    size = context.cache_size
    context.commit("hear me speak before we proceed\n" * 200)
    assert context.cache_size == size
    assert context.committed == 1 + 4 + 200 * 7  # six words and an end of line, 200 times
