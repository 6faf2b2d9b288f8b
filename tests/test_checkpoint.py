import errno
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import autocomplete
from autocomplete import checkpoint
from autocomplete.errors import CheckpointError


def outputs(lm):
    tokens = torch.tensor([[1, 5, 9, 3]])
    with torch.no_grad():
        return lm.model(tokens)[0]


def test_a_saved_model_loads_back_with_identical_predictions(tiny_lm, tmp_path):
    path = tmp_path / "m.pt"
    checkpoint.save(tiny_lm, path)
    loaded = checkpoint.load(path)
    assert torch.equal(outputs(loaded), outputs(tiny_lm))
    assert loaded.vocab.itos == tiny_lm.vocab.itos
    assert loaded.tokenizer.config == tiny_lm.tokenizer.config
    assert loaded.model.config == tiny_lm.model.config
    assert loaded.metadata["name"] == "tiny"


def test_half_precision_files_are_smaller_and_predict_almost_the_same(tiny_lm, tmp_path):
    full, half = tmp_path / "full.pt", tmp_path / "half.pt"
    checkpoint.save(tiny_lm, full)
    checkpoint.save(tiny_lm, half, dtype=torch.float16)
    assert half.stat().st_size < full.stat().st_size * 0.75
    assert torch.allclose(outputs(checkpoint.load(half)), outputs(tiny_lm), atol=1e-2)


def test_the_file_describes_itself(tiny_lm, tmp_path):
    path = tmp_path / "m.pt"
    checkpoint.save(tiny_lm, path)
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == checkpoint.FORMAT
    assert payload["format_version"] == checkpoint.FORMAT_VERSION  # float weights: the version older readers know
    assert set(payload) >= {"model_config", "tokenizer", "vocab", "weights", "metadata"}


def test_missing_empty_and_folder_paths_are_named_in_the_error(tmp_path):
    with pytest.raises(CheckpointError, match="no such model file"):
        checkpoint.load(tmp_path / "nope.pt")
    (tmp_path / "a.pt").symlink_to(tmp_path / "b.pt")
    (tmp_path / "b.pt").symlink_to(tmp_path / "a.pt")
    with pytest.raises(CheckpointError, match=r"a.pt: cannot read \(Too many levels of symbolic links\)$"):
        checkpoint.load(tmp_path / "a.pt")
    with pytest.raises(CheckpointError, match=r": cannot read \(File name too long\)$"):
        checkpoint.load(tmp_path / ("b" * 300))
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.pt: file is empty"):
        checkpoint.load(tmp_path / "empty.pt")
    for load in (checkpoint.load, autocomplete.load):  # os.environ.get("MODEL", ""), which Path reads as "."
        with pytest.raises(CheckpointError, match="^an empty path where a model file belongs$"):
            load("")
    with pytest.raises(CheckpointError, match="is a folder"):
        checkpoint.load(tmp_path)


def test_a_truncated_file_is_reported_as_truncated_or_corrupt(tiny_lm, tmp_path):
    path = tmp_path / "m.pt"
    checkpoint.save(tiny_lm, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="m.pt: not a valid model file \\(truncated or corrupt\\)"):
        checkpoint.load(path)


def test_random_bytes_are_not_a_checkpoint(tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(bytes(range(256)) * 10)
    with pytest.raises(CheckpointError, match="noise.pt: not a valid model file"):
        checkpoint.load(path)


def test_a_foreign_pytorch_file_is_refused(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    with pytest.raises(CheckpointError, match="foreign"):
        checkpoint.load(path)


def test_a_newer_format_asks_for_an_upgrade(tiny_lm, tmp_path):
    payload = checkpoint.to_payload(tiny_lm)
    payload["format_version"] = checkpoint.READABLE_VERSION + 1
    path = tmp_path / "future.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="newer autocomplete"):
        checkpoint.load(path)


class _Exploit:
    def __reduce__(self):
        return (Path.touch, (Path(self.target),))


def test_a_pickle_that_would_run_code_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    exploit = _Exploit()
    exploit.target = str(marker)
    path = tmp_path / "evil.pt"
    torch.save({"format": checkpoint.FORMAT, "payload": exploit}, path)
    with pytest.raises(CheckpointError, match="tries to run code"):
        checkpoint.load(path)
    assert not marker.exists()
    plain = tmp_path / "evil.pkl"
    plain.write_bytes(pickle.dumps(exploit))
    with pytest.raises(CheckpointError):
        checkpoint.load(plain)
    assert not marker.exists()


def test_a_vocabulary_that_does_not_match_the_weights_is_refused(tiny_lm, tmp_path):
    payload = checkpoint.to_payload(tiny_lm)
    payload["vocab"]["itos"] = payload["vocab"]["itos"][:-1]
    payload["vocab"]["counts"] = payload["vocab"]["counts"][:-1]
    path = tmp_path / "mismatch.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="vocabulary has .* words but the weights expect"):
        checkpoint.load(path)


def test_weights_that_do_not_match_the_settings_are_refused(tiny_lm, tmp_path):
    payload = checkpoint.to_payload(tiny_lm)
    payload["model_config"]["hidden_dim"] = 64
    path = tmp_path / "bad.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="weights do not match"):
        checkpoint.load(path)


def test_an_interrupted_save_leaves_the_previous_checkpoint_intact(tiny_lm, tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    checkpoint.save(tiny_lm, path)
    before = path.read_bytes()

    def dies_halfway(obj, f, *args, **kwargs):
        f.write(b"partial garbage")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(tiny_lm, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temp file left behind


def test_a_disk_that_fills_up_during_a_save_is_one_error_naming_the_cause_and_the_previous_file_stays(tmp_path):
    # a real failed write under PyTorch's zip writer (which reports it as its own RuntimeError): files past 64 KB
    # cannot grow here, as on a full disk
    script = f"""
import resource, signal, torch
from pathlib import Path
from autocomplete import checkpoint
from autocomplete.errors import CheckpointError
path = Path({str(tmp_path / "state.pt")!r})
checkpoint.save_payload({{"weights": torch.zeros(10)}}, path)
before = path.read_bytes()
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
for target in (path, path.with_name("new.pt")):  # a file there before, and none
    try:
        checkpoint.save_payload({{"weights": torch.zeros(100_000)}}, target)
    except CheckpointError as e:
        print(e)
assert path.read_bytes() == before and sorted(p.name for p in path.parent.iterdir()) == ["state.pt"]
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{tmp_path / 'state.pt'}: could not save (File too large); the previous file is unchanged",
        f"{tmp_path / 'new.pt'}: could not save (File too large)",
    ]


def next_word_distributions(lm, texts):
    from autocomplete.predictor import Predictor

    predictor = Predictor(lm)
    return torch.stack([predictor.distribution(t) for t in texts])


def test_int8_files_are_smaller_and_give_the_float_models_next_word_distribution(trained_lm, tmp_path):
    float_path, int8_path = tmp_path / "float.pt", tmp_path / "int8.pt"
    checkpoint.save(trained_lm, float_path)
    checkpoint.save(trained_lm, int8_path, dtype=torch.float16, int8=True)
    assert int8_path.stat().st_size < float_path.stat().st_size * 0.4
    texts = ["", "To be, or not to be", "My lord, I will", "What say you to"]
    p = next_word_distributions(checkpoint.load(float_path), texts)
    q = next_word_distributions(checkpoint.load(int8_path), texts)
    # the stated tolerance (models/README.md): every probability within 0.01, KL(float ‖ int8) under 0.001 nats
    assert (p - q).abs().max() < 0.01
    kl = (p * (p.clamp_min(1e-12).log() - q.clamp_min(1e-12).log())).sum(-1)
    assert kl.max() < 1e-3


def test_an_int8_file_describes_its_weights_and_an_older_reader_asks_for_an_upgrade(tiny_lm, tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    checkpoint.save(tiny_lm, path, int8=True)
    payload = torch.load(path, weights_only=True)
    assert payload["format_version"] == checkpoint.INT8_FORMAT_VERSION
    assert payload["weights"]["embedding.weight"].dtype == torch.int8
    assert payload["int8_scales"]["embedding.weight"].shape == (len(tiny_lm.vocab),)
    assert checkpoint.storage_of(payload) == "int8 matrices (per-row scales), float32 rest"
    monkeypatch.setattr(checkpoint, "READABLE_VERSION", checkpoint.FORMAT_VERSION)
    with pytest.raises(CheckpointError, match="newer autocomplete .*upgrade autocomplete"):
        checkpoint.load(path)


def test_int8_weights_without_one_scale_per_row_are_refused(tiny_lm, tmp_path):
    path = tmp_path / "m.pt"
    payload = checkpoint.to_payload(tiny_lm, int8=True)
    payload["int8_scales"]["embedding.weight"] = payload["int8_scales"]["embedding.weight"][:-1]
    checkpoint.save_payload(payload, path)
    with pytest.raises(CheckpointError, match="m.pt: int8 weights are inconsistent \\(embedding.weight"):
        checkpoint.load(path)


def test_row_quantisation_keeps_each_weight_within_half_a_step_of_its_row():
    weight = torch.randn(50, 30) * torch.logspace(-3, 1, 50).unsqueeze(1)  # rows of very different magnitudes
    weight[7] = 0
    q, scales = checkpoint.quantize_rows(weight)
    error = (checkpoint.dequantize_rows(q, scales) - weight).abs()
    assert torch.all(error <= scales.unsqueeze(1) / 2 + 1e-7)
    assert torch.all(checkpoint.dequantize_rows(q, scales)[7] == 0)


def test_an_unreadable_model_file_says_it_cannot_be_read_not_that_it_is_invalid(tiny_lm, tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    checkpoint.save(tiny_lm, path)
    path.chmod(0)
    if os.access(path, os.R_OK):  # root reads it anyway: let opening it fail as it does for everyone else
        import builtins

        real_open = builtins.open

        def denied(f, *args, **kwargs):
            if str(f) == str(path):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(f))
            return real_open(f, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", denied)
    with pytest.raises(CheckpointError) as error:
        checkpoint.load(path)
    assert str(error.value) == f"{path}: cannot read (Permission denied)"


def test_a_truncated_file_whose_reader_fails_with_a_system_error_is_called_truncated(tiny_lm, tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    checkpoint.save(tiny_lm, path)

    def seek_past_the_end(*args, **kwargs):  # what torch.load raises for some truncated archives
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))

    monkeypatch.setattr(torch, "load", seek_past_the_end)
    with pytest.raises(CheckpointError) as error:
        checkpoint.load(path)
    assert str(error.value) == f"{path}: not a valid model file (truncated or corrupt)"


# ---- crafted files, refused in one line before they cost memory or reach the terminal ------------------------------


def saved(payload, path):
    torch.save(payload, path)
    return path


def refused_before(monkeypatch, owner, name, path):
    """The one-line refusal of loading ``path``, which must come before ``owner.name`` is reached (a model of the
    declared size built, an entry unpacked)."""

    def reached(*args, **kwargs):
        raise AssertionError(f"{name} was reached")

    monkeypatch.setattr(owner, name, reached)
    with pytest.raises(CheckpointError) as error:
        checkpoint.load(path)
    return str(error.value)


def test_weights_stretched_over_a_few_stored_numbers_are_refused_before_a_model_of_their_size_is_built(
    tiny_lm, tmp_path, monkeypatch
):
    from autocomplete.model import ModelConfig, parameter_shapes

    payload = checkpoint.to_payload(tiny_lm)
    config = dict(payload["model_config"], embedding_dim=512, hidden_dim=512)  # ~5 M parameters declared
    payload["model_config"] = config
    shapes = parameter_shapes(ModelConfig.from_dict(config))
    payload["weights"] = {name: torch.zeros(1).expand(*shape) for name, shape in shapes.items()}  # stride 0
    path = saved(payload, tmp_path / "stretched.pt")
    assert path.stat().st_size < 100_000

    assert refused_before(monkeypatch, checkpoint, "LSTMLanguageModel", path) == (
        f"{path}: refused: 'embedding.weight' has {len(tiny_lm.vocab) * 512:,} values but the file stores 1 of them"
    )


def test_one_weight_stretched_from_a_single_number_is_refused(tiny_lm, tmp_path):
    payload = checkpoint.to_payload(tiny_lm)
    payload["weights"]["decoder.bias"] = torch.zeros(1).expand(len(tiny_lm.vocab))
    path = saved(payload, tmp_path / "expanded.pt")
    with pytest.raises(CheckpointError, match=r"refused: 'decoder.bias' has [\d,]+ values but the file stores 1 of"):
        checkpoint.load(path)


def test_two_weights_that_view_one_stored_matrix_are_refused(tiny_lm, tmp_path):
    payload = checkpoint.to_payload(tiny_lm)
    weights = payload["weights"]
    assert weights["layers.1.weight_ih_l0"].shape == weights["layers.0.weight_hh_l0"].shape
    weights["layers.1.weight_ih_l0"] = weights["layers.0.weight_hh_l0"]  # saved once, loaded as one storage
    path = saved(payload, tmp_path / "shared.pt")
    with pytest.raises(CheckpointError) as error:
        checkpoint.load(path)
    assert str(error.value) == (
        f"{path}: refused: 'layers.1.weight_ih_l0' and 'layers.0.weight_hh_l0' are views of the same stored numbers"
    )


def test_a_model_file_whose_entries_were_compressed_is_refused_before_any_is_unpacked(tiny_lm, tmp_path, monkeypatch):
    import zipfile

    plain = tmp_path / "plain.pt"
    checkpoint.save(tiny_lm, plain)
    path = tmp_path / "deflated.pt"
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(path, "w") as packed:
        first = source.infolist()[0].filename
        for entry in source.infolist():  # the same entries, deflated: torch.load would unpack each whole
            packed.writestr(entry.filename, source.read(entry.filename), compress_type=zipfile.ZIP_DEFLATED)
    assert torch.load(path, weights_only=True)["format"] == checkpoint.FORMAT  # PyTorch itself would read it

    assert refused_before(monkeypatch, torch, "load", path) == (  # before torch.load unpacks anything
        f"{path}: refused: the model file holds a compressed entry ({first!r}), which PyTorch never writes"
        " and which could unpack to any size"
    )


def _huge_int8_scales(payload):
    payload["int8_scales"]["decoder.weight"][:] = 3e38  # finite, but 127 × 3e38 is not


def _large_int8_scales(payload):
    payload["int8_scales"]["decoder.weight"][:] = 1e36  # 127 × 1e36 is finite; its products with the inputs are not


def _huge_float64(payload):
    payload["weights"]["decoder.bias"] = payload["weights"]["decoder.bias"].double()
    payload["weights"]["decoder.bias"][3] = 1e300


@pytest.mark.parametrize("int8, damage, message", [
    (True, _huge_int8_scales, "'decoder.weight' holds numbers beyond float32's range once its int8 scales are applied"),
    (False, _huge_float64, "'decoder.bias' holds numbers beyond float32's range once read as float32"),
    (True, _large_int8_scales, "'decoder.weight' holds weights up to 1.27e+38 once its int8 scales are applied; a "
                               "trained model's are a few units (at most 1e+06 is read)"),
], ids=["int8 scales", "float64", "int8 scales in range"])
def test_weights_beyond_float32s_range_once_read_are_refused_in_one_line(tiny_lm, tmp_path, int8, damage, message):
    payload = checkpoint.to_payload(tiny_lm, int8=int8)
    damage(payload)
    path = saved(payload, tmp_path / "big.pt")
    with pytest.raises(CheckpointError) as error:
        checkpoint.load(path)
    assert str(error.value) == f"{path}: refused: {message}"


@pytest.mark.parametrize("damage, message", [
    (lambda p: p["tokenizer"].update(bogus=1), "unknown tokenizer settings ['bogus']"),
    (lambda p: p.pop("vocab"), "the vocabulary is missing"),
    (lambda p: p.pop("weights"), "the weights are missing"),
], ids=["an unknown tokenizer key", "no vocabulary", "no weights"])
def test_damaged_settings_are_named_in_plain_words(tiny_lm, tmp_path, damage, message):
    payload = checkpoint.to_payload(tiny_lm)
    damage(payload)
    path = saved(payload, tmp_path / "damaged.pt")
    with pytest.raises(CheckpointError) as error:
        checkpoint.load(path)
    assert str(error.value) == f"{path}: model file is incomplete or inconsistent ({message})"


def test_a_vocabulary_word_far_longer_than_any_build_keeps_is_refused_naming_its_index(tiny_lm, tmp_path):
    payload = checkpoint.to_payload(tiny_lm)
    payload["vocab"]["itos"][7] = "w" * 1_000  # ten times what a build keeps: still loads
    assert checkpoint.load(saved(payload, tmp_path / "long.pt")).vocab.itos[7] == "w" * 1_000
    payload["vocab"]["itos"][7] = "w" * 10_000_000
    path = saved(payload, tmp_path / "huge.pt")
    with pytest.raises(CheckpointError) as error:
        checkpoint.load(path)
    assert str(error.value) == (
        f"{path}: model file is incomplete or inconsistent (the vocabulary's word 7 is 10,000,000 characters long;"
        " a word has at most 1,000)"
    )
