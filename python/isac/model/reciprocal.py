"""Reciprocal filtering (3): Y~ = Y_r (/) 1 x^T, removing the data symbols from the echo."""

from __future__ import annotations

import numpy as np

#: symbols with |x| below this are treated as zero (their column carries no information)
MIN_SYMBOL_MAGNITUDE = 1e-6


def invalid_symbols(symbols: np.ndarray) -> np.ndarray:
    """Mask (same shape as ``symbols``) of zero, near-zero or non-finite symbols."""
    x = np.asarray(symbols)
    return ~np.isfinite(x) | (np.abs(x) < MIN_SYMBOL_MAGNITUDE)


def reciprocal_filter(y_sensing: np.ndarray, symbols: np.ndarray, invalid: str = "raise") -> np.ndarray:
    """Y~ = Y_r (/) 1 x^T (eq. 3): divide each subcarrier column s by x_s.

    ``y_sensing``: (..., K, S); ``symbols``: (..., S). Zero or non-finite symbols cannot be
    divided by: with ``invalid="raise"`` (default) a ValueError names them; with
    ``invalid="zero"`` their columns are set to 0 (they then add no signal and no noise)."""
    y = np.asarray(y_sensing)
    x = np.asarray(symbols)
    if y.shape[-1] != x.shape[-1] or y.ndim != x.ndim + 1:
        raise ValueError(
            f"reciprocal_filter: y_sensing (..., K, S) and symbols (..., S) disagree: {y.shape} vs {x.shape}"
        )
    bad = invalid_symbols(x)
    if np.any(bad):
        if invalid == "raise":
            idx = np.argwhere(bad)[:5].tolist()
            raise ValueError(
                f"reciprocal_filter: {int(bad.sum())} zero or non-finite transmitted symbols "
                f"(first indices {idx}); pass invalid='zero' to null those subcarriers"
            )
        if invalid != "zero":
            raise ValueError(f"reciprocal_filter: invalid must be 'raise' or 'zero', got {invalid!r}")
    safe = np.where(bad, 1.0, x)
    out = y / safe[..., None, :]
    if np.any(bad):
        out = np.where(bad[..., None, :], 0.0, out)
    return out.astype(np.complex64)
