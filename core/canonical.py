"""Canonical JSON and stable hashes for params and exit rules.

Key order never matters and an integral float hashes like the int (``14`` == ``14.0``), so the
same configuration always maps to the same key in the store, whoever typed it.
"""
from __future__ import annotations

import hashlib
import json
import math
from typing import Any


def _normalise(value: Any) -> Any:
    """Turn numpy scalars into Python ones and integral floats into ints, recursively."""
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalar
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
        return value
    raise TypeError(f"Cannot canonicalise {value!r} of type {type(value).__name__}")


def canonical_json(obj: Any) -> str:
    """Compact JSON with sorted keys and normalised numbers: the stored form of params."""
    return json.dumps(_normalise(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)


def stable_hash(obj: Any) -> str:
    """16-hex-digit BLAKE2b digest of ``canonical_json(obj)``; identical on every machine."""
    return hash_of_json(canonical_json(obj))


def _json_scalar(value: Any) -> str:
    """One validated param value as ``canonical_json`` writes it (integral floats as ints)."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(int(value))


def flat_params_json(params: dict[str, Any]) -> str:
    """``canonical_json`` of validated flat params (str -> int/float/str), without recursion."""
    items = sorted(params.items())
    return "{" + ",".join(f'"{k}":{_json_scalar(v)}' for k, v in items) + "}"


def hash_of_json(text: str) -> str:
    """``stable_hash`` of an object from its canonical JSON (same digest, no second dump)."""
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def bars_fingerprint(bars: Any) -> str:
    """16-hex-digit digest of a bars DataFrame (timestamps in ns + OHLCV values).

    Recorded with every stored backtest so that it says which data it used; equal data on any
    machine gives the same fingerprint, whatever time unit the index was built with.
    """
    import numpy as np
    import pandas as pd

    index = pd.DatetimeIndex(bars.index)
    if index.tz is not None:
        index = index.tz_convert(None)
    digest = hashlib.blake2b(index.as_unit("ns").asi8.tobytes(), digest_size=8)
    for column in ("open", "high", "low", "close", "volume"):
        digest.update(np.ascontiguousarray(bars[column].to_numpy(dtype=np.float64)).tobytes())
    return digest.hexdigest()


def bars_span(bars: Any) -> list[int]:
    """Length and first/last timestamp (ns): what tells a slice from the frame it came from."""
    index = bars.index
    if len(index) == 0:
        return [0, 0, 0]
    return [len(index), int(index[0].value), int(index[-1].value)]


def stamp_fingerprint(bars: Any, fingerprint: str | None = None) -> Any:
    """Record the fingerprint of ``bars`` (computed unless given) in ``bars.attrs``; returns bars."""
    bars.attrs["fingerprint"] = fingerprint or bars_fingerprint(bars)
    bars.attrs["fingerprint_span"] = bars_span(bars)
    return bars


def fingerprint_of(bars: Any) -> str:
    """The fingerprint stamped on ``bars``, or a freshly computed one.

    pandas copies ``attrs`` to slices, so a stamp is trusted only when its span (length, first
    and last timestamp) matches the bars it is attached to.
    """
    fingerprint = bars.attrs.get("fingerprint")
    if fingerprint and bars.attrs.get("fingerprint_span") == bars_span(bars):
        return fingerprint
    return bars_fingerprint(bars)
