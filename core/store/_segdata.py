"""The columnar form of one segment: what a write encodes and a compaction merges."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class SegmentData:
    """One segment, columnar, ready to write."""

    rows: int
    vocab: dict[str, list]  # kind -> values (hashed kinds: (json, hash) pairs)
    codes: np.ndarray  # int32 (rows, len(CODE_KINDS))
    times: np.ndarray  # int64 ns (rows, 3): start, end, created_at
    float_columns: list[str]  # initial_capital, metrics..., param columns...
    floats: np.ndarray  # float64 (rows, len(float_columns))
    param_columns: dict[str, str] = field(default_factory=dict)  # column -> bare param name
    eq_offsets: np.ndarray | None = None  # int64 (rows + 1): values of row i at [o[i], o[i+1])
    eq_date_starts: np.ndarray | None = None  # int64 (rows): where row i's dates start ...
    eq_calendar: np.ndarray | None = None  # int64 ns: ... in these distinct date arrays
    eq_values: np.ndarray | None = None  # float64, every curve (format 1; before packing)
    eq_layout: np.ndarray | None = None  # int64 (rows, 3): codec, runs, steps (_curvecodec)
    eq_runs: np.ndarray | None = None  # int64 (runs, 2): signed length, anchor bits
    eq_steps: np.ndarray | None = None  # int64: price-grid step k and residual ULPs, fused
    eq_plain: np.ndarray | None = None  # float64: values of curves kept plain
    tr_offsets: np.ndarray | None = None  # int64 (rows + 1)
    tr_times: np.ndarray | None = None  # int64 ns (trades, 2)
    tr_floats: np.ndarray | None = None  # float64 (trades, 5)
    tr_ints: np.ndarray | None = None  # int32 (trades, 2)
    bids: np.ndarray | None = None  # int64, only for compacted segments
