"""Training-step MACs and float ops beside the rules of thumb: 3 × forward for CNNs, 6·N·T for
transformers (Kaplan et al. 2020, §2.1, with their attention term).

Usage: python scripts/training_vs_rules.py [--transformer-only | --cnn-only]

Each model is profiled with `pass_="train"` and `timing=False` (both methods, cross-checked;
batch 1, weights=None / random weights). Prints two Markdown tables:

- keras.applications: step MACs (forward + backward) beside 3 × forward MACs. The rule
  assumes every contraction computes both its weight and its input gradient; the first
  convolution's input is the image, so it computes only the weight gradient.
- a keras-hub BERT encoder built from a config: step float ops beside
  6·N·T + 6·n_layer·n_ctx·d_model·T, N the non-embedding parameters, T the tokens.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

CNNS = ("MobileNetV3Small", "MobileNetV3Large", "MobileNetV2", "ResNet50", "EfficientNetB0")
BERT = {"num_layers": 4, "hidden_dim": 256, "num_heads": 4, "intermediate_dim": 1024}
SEQ_LEN = 128


def cnn_table(names) -> list[str]:
    from submodel_profiler import profile_model
    from submodel_profiler.loading import load_model

    lines = [
        "| model | forward MACs | step MACs | 3 × forward | step ÷ forward | exact |",
        "|---|---|---|---|---|---|",
    ]
    for name in names:
        model = load_model(name).model
        r = profile_model(model, timing=False, pass_="train")
        t = r.totals
        ratio = t.macs / t.forward_macs
        lines.append(
            f"| {name} | {t.forward_macs / 1e6:,.1f} M | {t.macs / 1e6:,.1f} M | "
            f"{3 * t.forward_macs / 1e6:,.1f} M | {ratio:.3f} | "
            f"{'yes' if r.cross_check.flops_exact else 'no'} |"
        )
    return lines


def transformer_table() -> list[str]:
    import keras_hub

    from submodel_profiler import profile_model

    model = keras_hub.models.BertBackbone(
        vocabulary_size=1000, max_sequence_length=SEQ_LEN, dropout=0.0, **BERT
    )
    r = profile_model(model, timing=False, pass_="train", seq_len=SEQ_LEN)
    t = r.totals
    embeddings = sum(
        int(w.numpy().size)
        for w in model.weights
        if "embedding" in w.path and w.trainable  # token, position and segment tables
    )
    n = sum(int(w.numpy().size) for w in model.trainable_weights) - embeddings
    tokens = SEQ_LEN
    d, layers = BERT["hidden_dim"], BERT["num_layers"]
    rule = 6 * n * tokens + 6 * layers * SEQ_LEN * d * tokens
    return [
        "| model | tokens | N (non-embedding) | step float ops | 6·N·T + attention | "
        "deviation | exact |",
        "|---|---|---|---|---|---|---|",
        f"| BertBackbone {layers}×{d} (keras-hub) | {tokens} | {n:,} | {t.flops / 1e9:,.3f} G | "
        f"{rule / 1e9:,.3f} G | {t.flops / rule - 1:+.1%} | "
        f"{'yes' if r.cross_check.flops_exact else 'no'} |",
    ]


def main(argv) -> None:
    if "--transformer-only" not in argv:
        print("\n".join(cnn_table(CNNS)))
        print()
    if "--cnn-only" not in argv:
        print("\n".join(transformer_table()))


if __name__ == "__main__":
    main(sys.argv[1:])
