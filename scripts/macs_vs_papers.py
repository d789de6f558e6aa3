"""MACs of keras.applications models (weights=None, batch 1) beside their papers' multiply-adds.

Usage: python scripts/macs_vs_papers.py [MODEL ...]

Counts come from `profile_model(..., timing=False)` (both methods, cross-checked); the paper
figures are the multiply-adds each paper publishes for that architecture at its default size.
Prints one Markdown table row per model.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Published multiply-adds (millions) at the default input size, and where they come from.
PAPERS = {
    "MobileNet": (569, "Howard et al. 2017, Table 8 (1.0 MobileNet-224)"),
    "MobileNetV2": (300, "Sandler et al. 2018, Table 4"),
    "MobileNetV3Large": (219, "Howard et al. 2019, Table 3 (Large 1.0)"),
    "MobileNetV3Small": (56, "Howard et al. 2019, Table 4 (Small 1.0)"),
    "ResNet50": (3800, "He et al. 2016, Table 1 (3.8×10⁹ FLOPs, multiply-adds)"),
    "EfficientNetB0": (390, "Tan & Le 2019, Table 2 (0.39B FLOPs, multiply-adds)"),
    "NASNetMobile": (564, "Zoph et al. 2018, Table 2 (564M mult-adds)"),
    "VGG16": (15300, "He et al. 2016, Sec. 3.3 (VGG-16: 15.3 billion FLOPs, multiply-adds)"),
    "DenseNet121": (2900, "Huang et al. 2017, Fig. 3 (≈2.9×10⁹ FLOPs read off the plot)"),
    "ConvNeXtTiny": (4500, "Liu et al. 2022, Table 1 (4.5G FLOPs, multiply-adds)"),
}


def main(names) -> None:
    import keras

    from submodel_profiler import profile_model
    from submodel_profiler.loading import load_model

    print(
        "| model | MACs (ours) | paper multiply-adds | deviation | complete float ops | "
        "TF float ops | source |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in names:
        model = load_model(name).model  # weights=None, at the documented default size
        report = profile_model(model, timing=False)
        t = report.totals
        paper, source = PAPERS[name]
        deviation = 100.0 * (t.macs / 1e6 - paper) / paper
        exact = "" if report.cross_check.flops_exact else " (cross-check FAILED)"
        print(
            f"| {name} | {t.macs / 1e6:,.1f}M{exact} | {paper:,}M | {deviation:+.1f}% | "
            f"{t.flops / 1e6:,.1f}M | {t.tf_flops / 1e6:,.1f}M | {source} |"
        )
        sys.stdout.flush()
        keras.backend.clear_session()


if __name__ == "__main__":
    main(sys.argv[1:] or list(PAPERS))
