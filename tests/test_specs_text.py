"""Text models' inputs: --seq-len (seq_len=), and the refusal that lists every input with free dims
and prints a command line that runs (docs/models.md#inputs)."""

from __future__ import annotations

import shlex

import pytest

from submodel_profiler.errors import UsageError
from submodel_profiler.report import Report
from submodel_profiler.specs import (
    SUGGESTED_SEQ_LEN,
    FreeDimsError,
    check_seq_len,
    is_sequence_input,
    resolve_input_specs,
)

from conftest import assert_exact, run_cli


@pytest.fixture(scope="module")
def text_model(keras):
    """token_ids, segment_ids (int32) and padding_mask (bool), each (batch, seq) with seq free,
    and frames (batch, seq, 4) with the features fixed → Embedding sums → pooled Dense."""
    layers = keras.layers
    tokens = keras.Input((None,), dtype="int32", name="token_ids")
    segments = keras.Input((None,), dtype="int32", name="segment_ids")
    mask = keras.Input((None,), dtype="bool", name="padding_mask")
    frames = keras.Input((None, 4), name="frames")
    x = layers.Embedding(20, 4, name="tok")(tokens) + layers.Embedding(2, 4, name="seg")(segments)
    x = x * keras.ops.expand_dims(keras.ops.cast(mask, "float32"), -1) + frames
    outputs = layers.Dense(3, name="head")(layers.GlobalAveragePooling1D(name="pool")(x))
    return keras.Model([tokens, segments, mask, frames], outputs, name="text")


@pytest.fixture(scope="module")
def mixed_model(keras):
    """An image with free height and width, (None, None, 3), beside (batch, seq) token ids."""
    image = keras.Input((None, None, 3), name="image")
    tokens = keras.Input((None,), dtype="int32", name="token_ids")
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3)(image))
    text = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(10, 2)(tokens))
    return keras.Model([image, tokens], keras.layers.Concatenate()([pooled, text]), name="mixed")


def _shapes(specs) -> list:
    return [tuple(s.shape) for s in specs]


# --- the rule ------------------------------------------------------------------------------------


def test_seq_len_fills_every_sequence_input(text_model):
    specs = resolve_input_specs(text_model, 2, seq_len=7)
    assert _shapes(specs) == [(2, 7), (2, 7), (2, 7), (2, 7, 4)]
    assert [s.dtype.name for s in specs] == ["int32", "int32", "bool", "float32"]


def test_an_explicit_per_name_shape_wins_over_seq_len(text_model):
    specs = resolve_input_specs(text_model, 1, {"frames": (5, 4)}, seq_len=7)
    assert _shapes(specs) == [(1, 7), (1, 7), (1, 7), (1, 5, 4)]


def test_the_sequence_axis_is_the_only_free_one_right_after_the_batch(keras):
    def free(*shape):
        return is_sequence_input(keras.Input(shape))

    assert free(None) and free(None, 8) and free(None, 8, 8)
    assert not free(None, None) and not free(8, None) and not free(None, None, 3)
    assert not free(8)  # nothing free


def test_seq_len_leaves_other_free_inputs_to_input_shape(mixed_model):
    with pytest.raises(FreeDimsError) as e:
        resolve_input_specs(mixed_model, 1, seq_len=9)
    assert "image: float32 (None, None, None, 3)" in str(e.value)
    assert "token_ids" not in str(e.value)
    assert e.value.flags == ["--input-shape", "image=224,224,3"]
    specs = resolve_input_specs(mixed_model, 1, {"image": (32, 32, 3)}, seq_len=9)
    assert _shapes(specs) == [(1, 32, 32, 3), (1, 9)]


# --- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -3, True, 2.5, "128"])
def test_a_seq_len_that_is_not_a_positive_integer_is_refused(bad):
    with pytest.raises(UsageError, match=r"positive integer.*Received: seq_len="):
        check_seq_len(bad)


def test_seq_len_that_would_fill_no_input_is_refused(keras, text_model):
    static = keras.Model(i := keras.Input((6,), name="x"), keras.layers.Dense(2)(i))
    with pytest.raises(UsageError, match=r"would be ignored.*x \(None, 6\).*seq_len=8"):
        resolve_input_specs(static, 1, seq_len=8)
    named = {n: (3,) for n in ("token_ids", "segment_ids", "padding_mask")}
    with pytest.raises(UsageError, match="would be ignored"):
        resolve_input_specs(text_model, 1, {**named, "frames": (3, 4)}, seq_len=8)
    with pytest.raises(UsageError, match="would be ignored"):  # positional: every input given
        resolve_input_specs(text_model, 1, [(3,), (3,), (3,), (3, 4)], seq_len=8)


def test_seq_len_on_a_subclassed_model_is_refused(keras):
    from submodel_profiler import profile_model

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    model = Sub()
    model(keras.ops.zeros((1, 3)))
    with pytest.raises(UsageError, match="subclassed model.*Received: seq_len=4"):
        profile_model(model, input_shapes=[(3,)], seq_len=4, timing=False)


def test_the_api_refusal_lists_every_free_input_and_names_the_keywords(text_model):
    with pytest.raises(FreeDimsError) as e:
        resolve_input_specs(text_model, 1)
    message = str(e.value)
    for listed in (
        "token_ids: int32 (None, None)",
        "segment_ids: int32 (None, None)",
        "padding_mask: bool (None, None)",
        "frames: float32 (None, None, 4)",
    ):
        assert listed in message
    assert f"Pass seq_len={SUGGESTED_SEQ_LEN} to profile_model." in message
    assert "--seq-len N (seq_len=N)" in message and "\n" not in message
    assert e.value.flags == ["--seq-len", str(SUGGESTED_SEQ_LEN)]


def test_the_refusal_of_a_mixed_model_names_each_non_sequence_input(mixed_model):
    with pytest.raises(FreeDimsError) as e:
        resolve_input_specs(mixed_model, 1, {"token_ids": (5,)})
    assert e.value.flags == ["--input-shape", "image=224,224,3"]
    assert "input_shapes={'image': (224, 224, 3)} (with yours)" in str(e.value)
    with pytest.raises(FreeDimsError) as e:
        resolve_input_specs(mixed_model, 1)
    assert e.value.flags == ["--seq-len", "128", "--input-shape", "image=224,224,3"]
    command = e.value.for_command(["m.keras", "--no-timing"])
    assert command.endswith(
        "This runs: python -m submodel_profiler m.keras --no-timing --seq-len 128 "
        "--input-shape image=224,224,3"
    )


# --- the CLI: from the refusal to a report ------------------------------------------------------


def _pasted_command(stderr: str) -> list:
    """The command line the refusal printed, as the arguments after the program."""
    (line,) = [line for line in stderr.splitlines() if line.startswith("error:")]
    _, found, command = line.rpartition("python -m submodel_profiler ")
    assert found, line
    return shlex.split(command)


def _run_pasted(path, tmp_path) -> tuple:
    """Run MODEL bare, then the command its refusal printed: (stderr, that command, report)."""
    refused = run_cli([str(path)])
    assert refused.returncode == 2, refused.stderr
    assert "Traceback" not in refused.stderr
    args = _pasted_command(refused.stderr)
    out = tmp_path / "report.json"
    result = run_cli([*args, "--no-timing", "--format", "json", "--output", str(out)])
    assert result.returncode == 0, result.stderr
    report = Report.from_json(out.read_text())
    assert report.status == "complete"
    assert_exact(report)
    return refused.stderr, args, report


def test_a_text_model_starts_from_the_pasted_command(tmp_path, text_model):
    path = tmp_path / "text.keras"
    text_model.save(path)
    result = run_cli([str(path), "--seq-len", "0"])
    assert result.returncode == 2
    assert "error: --seq-len must be a positive integer. Received: 0." in result.stderr
    stderr, args, report = _run_pasted(path, tmp_path)
    for name in ("token_ids", "segment_ids", "padding_mask", "frames"):
        assert name in stderr
    assert args == [str(path), "--seq-len", "128"]
    assert [tuple(t.shape) for t in report.model.inputs] == [(1, 128)] * 3 + [(1, 128, 4)]


def test_seq_len_on_a_model_without_free_dims_is_refused(model_file):
    result = run_cli([model_file, "--no-timing", "--seq-len", "16"])
    assert result.returncode == 2
    assert "would be ignored" in result.stderr and "image (None, 16, 16, 3)" in result.stderr


def test_a_keras_hub_bert_backbone_starts_from_the_pasted_command(tmp_path):
    keras_hub = pytest.importorskip("keras_hub")
    path = tmp_path / "bert.keras"
    keras_hub.models.BertBackbone(
        vocabulary_size=50,
        num_layers=1,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        max_sequence_length=16,
    ).save(path)
    stderr, args, report = _run_pasted(path, tmp_path)
    for listed in (
        "padding_mask: int32 (None, None)",
        "segment_ids: int32 (None, None)",
        "token_ids: int32 (None, None)",
    ):
        assert listed in stderr
    # The suggestion stops at the backbone's max_sequence_length; keras.saving imports
    # keras_hub's classes by their module, so no --custom-objects is needed.
    assert args == [str(path), "--seq-len", "16"]
    assert [tuple(t.shape) for t in report.model.inputs] == [(1, 16)] * 3
