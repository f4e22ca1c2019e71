"""Evaluation on real labelled images: feature extraction, linear probe, kNN, alignment/uniformity.

>>> from noisevision.eval import probe
>>> result = probe(encoder="runs/dl/encoder.pt", dataset="cifar10", out="probe.json")  # doctest: +SKIP
"""
from __future__ import annotations

from .features import extract_features, recalibrate_batchnorm
from .knn import knn_accuracy, knn_predict_scores
from .linear import fit_linear_probe, fit_logistic_regression, softmax_xent_and_grad, topk_accuracy
from .metrics import alignment_uniformity
from .outcomes import decode_outcomes, encode_outcomes
from .probe import PROTOCOLS, ProbeConfig, probe, summary_table

__all__ = [
    "PROTOCOLS", "ProbeConfig", "alignment_uniformity", "decode_outcomes", "encode_outcomes", "extract_features",
    "fit_linear_probe",
    "fit_logistic_regression", "knn_accuracy", "knn_predict_scores", "probe", "recalibrate_batchnorm",
    "softmax_xent_and_grad", "summary_table", "topk_accuracy",
]
