"""Checks of the metrics' inputs (probabilities, outcomes, labels, binning settings); each raises a ValueError
saying what was wrong and what is valid."""

from __future__ import annotations

import numpy as np

STRATEGIES = ("uniform", "quantile", "equal_count")
CLOSED = ("right", "left")



# ----------------------------------------------------------------------------------------------- validation

def _as_probs(p, name: str = "probabilities", ndim: int | None = 1) -> np.ndarray:
    try:
        arr = np.asarray(p, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numbers in [0, 1]; got something not convertible to float ({exc})") \
            from None
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array; got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty; at least one prediction is needed")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values; valid probabilities are finite numbers in [0, 1]")
    lo, hi = arr.min(), arr.max()
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{name} must lie in [0, 1]; got values in [{lo:.6g}, {hi:.6g}] (pass probabilities, "
                         f"not percentages or logits; see softmax() for log-probabilities)")
    return arr


def _as_binary(y, name: str = "outcomes") -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of 0/1 labels; got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(np.float64)
    try:
        f = arr.astype(np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be 0/1 (or bool) labels; got dtype {arr.dtype}") from None
    bad = ~((f == 0.0) | (f == 1.0))
    if bad.any():
        examples = np.unique(arr[bad])[:5].tolist()
        raise ValueError(f"{name} must be binary labels 0/1 (or bool); found other values, e.g. {examples}")
    return f


def _pair(p, y, p_name: str = "probabilities", y_name: str = "outcomes") -> tuple[np.ndarray, np.ndarray]:
    p = _as_probs(p, p_name)
    y = _as_binary(y, y_name)
    if p.shape != y.shape:
        raise ValueError(f"{p_name} and {y_name} must have the same length; got {p.shape[0]} and {y.shape[0]}")
    return p, y


def _check_binning(n_bins, strategy: str, closed: str) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer; got {n_bins!r}")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}; got {strategy!r}")
    if closed not in CLOSED:
        raise ValueError(f"closed must be one of {CLOSED}; got {closed!r}")
    return int(n_bins)


def _as_multiclass(probs, atol: float, name: str = "probs") -> np.ndarray:
    p = _as_probs(probs, name, ndim=2)
    if p.shape[1] < 2:
        raise ValueError(f"{name} must have one column per class (at least 2); got shape {p.shape}")
    sums = p.sum(axis=1)
    bad = np.abs(sums - 1.0) > atol
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"each row of {name} must sum to 1 (within atol={atol}); row {i} sums to {sums[i]:.6g} "
                         f"(normalize first, e.g. softmax() over log-probabilities)")
    return p


def _as_labels(labels, n: int, k: int, name: str = "labels") -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must be a 1-D array of {n} class indices; got shape {arr.shape}")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"{name} must be integer class indices in [0, {k}); got dtype {arr.dtype}")
    if arr.min() < 0 or arr.max() >= k:
        raise ValueError(f"{name} must be class indices in [0, {k}); got values in [{arr.min()}, {arr.max()}]")
    return arr.astype(np.int64)
