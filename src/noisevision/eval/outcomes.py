"""Which test images a probe classified correctly, stored compactly in its result JSON.

A probe's headline numbers are means over test images; keeping the per-image
outcomes (one bit each) lets a report resample the test set afterwards, e.g. a
bootstrap interval of the rank correlation between entries that were all probed
on the same images. The bits are ``np.packbits`` of the bool vector, as URL-safe
base64 text (no ``/``, so no stored string can look like an absolute path),
next to the vector's length.

>>> text = encode_outcomes(np.array([True, False, True]))
>>> decode_outcomes(text, 3).tolist()
[True, False, True]
"""
from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence

import numpy as np

ENCODING = "packbits-base64url"


def encode_outcomes(correct: np.ndarray | Sequence[bool]) -> str:
    """A 1-d bool vector (one entry per test image) as URL-safe base64 text of its packed bits."""
    bits = np.asarray(correct)
    if bits.ndim != 1:
        raise ValueError(f"outcomes must be a 1-d vector, got shape {bits.shape}")
    return base64.urlsafe_b64encode(np.packbits(bits.astype(bool)).tobytes()).decode("ascii")


def decode_outcomes(text: str, n: int) -> np.ndarray:
    """The bool vector of length ``n`` that :func:`encode_outcomes` wrote.

    Raises:
        ValueError: text that is not such an encoding of ``n`` outcomes (stored files are untrusted).
    """
    if not isinstance(text, str) or not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"per-image outcomes need a base64 string and a count, got {type(text).__name__} "
                         f"and {n!r}")
    try:
        raw = base64.urlsafe_b64decode(text.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise ValueError(f"per-image outcomes are not valid base64 ({exc})") from None
    if len(raw) != (n + 7) // 8:
        raise ValueError(f"per-image outcomes hold {len(raw)} bytes, {n} images need {(n + 7) // 8}")
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8))
    if bits[n:].any():  # the padding bits of the last byte are zero in a genuine encoding
        raise ValueError("per-image outcomes have bits set past the image count")
    return bits[:n].astype(bool)


def test_set_fingerprint(files: Sequence[str]) -> str:
    """A short hash of the test images (their file names, in order): outcomes of two probes can be
    compared image by image only when their fingerprints match."""
    return hashlib.sha256("\n".join(files).encode()).hexdigest()[:16]
