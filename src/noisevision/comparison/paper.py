"""What the comparison compares against: the paper's numbers and the chart's groups, keyed by entry.

The generators describe themselves (name, description, parameters); how
their bars are grouped and coloured in the comparison's chart, and the
small-scale ImageNet-100 linear top-1 the paper reports for them, live here,
next to the comparison that uses them. Each entry of the suite is one row.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PaperRow:
    """One entry of the comparison as the paper reports it.

    Attributes:
        group: the chart's bar group (its colour and legend label).
        top1: the paper's small-scale ImageNet-100 linear top-1, if it reports one.
        paper_family: one of the paper's 14 families (counted in the rank correlation);
            fractal/ifs shows FractalDB's number for reference but is not one of them.
    """

    group: str
    top1: float | None = None
    paper_family: bool = False


RANDOM_KEY, REAL_KEY = "baseline/random-init", "baseline/real"
FDSL_GROUP = "fdsl"
FDSL_GENERATORS: tuple[str, ...] = ("fractal/fractaldb", "fractal/1p-frac", "contour/rcdb", "contour/visualatom")
SUPERVISED_SUFFIX = "@supervised"  # the entry of a labelled generator pretrained on its labels

PAPER_ROWS: dict[str, PaperRow] = {
    RANDOM_KEY: PaperRow("baseline", 21.0),
    "dead-leaves/squares": PaperRow("dead leaves", 35.1, True),
    "dead-leaves/oriented": PaperRow("dead leaves", 37.4, True),
    "dead-leaves/mixed": PaperRow("dead leaves", 38.9, True),
    "dead-leaves/textured": PaperRow("dead leaves", 40.9, True),
    "stat/spectrum": PaperRow("statistical", 30.6, True),
    "stat/wmm": PaperRow("statistical", 31.4, True),
    "stat/spectrum-color": PaperRow("statistical", 36.7, True),
    "stat/spectrum-color-wmm": PaperRow("statistical", 39.9, True),
    "stylegan/random": PaperRow("stylegan", 34.0, True),
    "stylegan/high-freq": PaperRow("stylegan", 42.1, True),
    "stylegan/sparse": PaperRow("stylegan", 42.0, True),
    "stylegan/oriented": PaperRow("stylegan", 43.4, True),
    "feature-vis/random": PaperRow("feature vis", 34.6, True),
    "feature-vis/checkpoint": PaperRow("feature vis", 39.2, True),
    "fractal/ifs": PaperRow("fractal", 33.4),  # FractalDB's number, beyond the paper's families
    "mixup/stylegan/oriented": PaperRow("mixup (beyond paper)"),
    # Formula-driven supervised learning (FDSL), beyond the paper: each generator twice, pretrained with the
    # profile's SSL method on its images and with a classifier on its labels (``@supervised``), on the same
    # step budget. Published numbers only where one is comparable (a linear probe of a small encoder on
    # ImageNet-100): the noise paper trained its SSL recipe on FractalDB-1k unlabelled (33.4, the number
    # fractal/ifs shows); the FDSL papers themselves report fine-tuning (FractalDB: CIFAR/ImageNet-100 with
    # ResNet-50; RCDB, VisualAtom and 1p-frac: ImageNet-1k with ViTs), which a frozen-encoder probe of
    # SmallAlexNet cannot be set beside, so those rows carry none.
    **{key: PaperRow(FDSL_GROUP, top1) for gen, top1 in (
        ("fractal/fractaldb", 33.4), ("fractal/1p-frac", None), ("contour/rcdb", None), ("contour/visualatom", None))
       for key, top1 in ((gen, top1), (gen + SUPERVISED_SUFFIX, None))},
    REAL_KEY: PaperRow("baseline"),
}

PAPER_FAMILIES: tuple[str, ...] = tuple(k for k, row in PAPER_ROWS.items() if row.paper_family)
BEYOND_PAPER: tuple[str, ...] = tuple(
    k for k, row in PAPER_ROWS.items() if not row.paper_family and k not in (RANDOM_KEY, REAL_KEY))
