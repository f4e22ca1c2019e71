"""noisevision: train vision models without real images.

Generate synthetic datasets from procedural noise, pretrain encoders on them
with contrastive learning, and probe them on real labelled images. Four verbs
(and ``preview``, ``export``, ``analyze``, ``sweep`` around them),
each ``verb(config=None, /, **fields)`` over a frozen, validated config
(a dataclass instance, a mapping or a YAML file; keyword fields on top):

>>> import noisevision as nv
>>> nv.generate(generator="dead-leaves/mixed", num_images=1000, size=64, out="data/dl")    # doctest: +SKIP
>>> nv.pretrain(data="data/dl", arch="smallalexnet", epochs=5, out="runs/dl")              # doctest: +SKIP
>>> nv.probe(encoder="runs/dl", dataset="cifar10", out="probe.json")                       # doctest: +SKIP
>>> nv.compare(profile="quick")                                                            # doctest: +SKIP
>>> images = nv.create_generator("dead-leaves/mixed").render(range(4), seed=0, size=64)   # uint8 (4, 64, 64, 3)

The verbs and their configs load on first use, so ``import noisevision`` stays light.
"""
from __future__ import annotations

import importlib
from typing import Any

# _env first: it sets OpenMP defaults before anything imports torch.
from . import _env  # noqa: F401  (imported for its side effect)
from ._version import __version__
from .errors import UserError
from .generators import create_generator, list_generators

# Public name -> the module that defines it (imported on first access).
_LAZY = {
    "generate": "noisevision.data.writer",
    "GenerateConfig": "noisevision.data.writer",
    "pretrain": "noisevision.train.loop",
    "PretrainConfig": "noisevision.train.config",
    "probe": "noisevision.eval.probe",
    "ProbeConfig": "noisevision.eval.probe",
    "compare": "noisevision.comparison.suite",
    "CompareConfig": "noisevision.comparison.suite",
    "sweep": "noisevision.comparison.sweep",
    "SweepConfig": "noisevision.comparison.sweep",
    "export": "noisevision.train.export",
    "ExportConfig": "noisevision.train.export",
    "analyze": "noisevision.eval.analyze",
    "AnalyzeConfig": "noisevision.eval.analyze",
    "preview": "noisevision.sheets",
    "PreviewConfig": "noisevision.sheets",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'noisevision' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))


__all__ = ["UserError", "create_generator", "list_generators", "__version__", *_LAZY]
