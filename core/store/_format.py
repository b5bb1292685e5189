"""On-disk layout of the backtest store (format version 2). See docs/store.md.

A store is a Zarr v3 group whose root attributes carry ``hindsight_store.format_version``. Every
write lands as one immutable *segment* group under ``segments/`` holding a few 1-D/2-D arrays;
``manifest.json`` lists the committed segments and is replaced atomically under a lock.
"""
from __future__ import annotations

from core.types import METRIC_NAMES, TRADE_COLUMNS

#: 4: every row has a scope (data source, window, costs, capital, settings) and a strategy
#: definition in its key (two more code columns); rows of older segments get theirs by the rule
#: in ``_scopes`` (its facts are recorded in the manifest when the store is upgraded).
#: 3: the manifest carries its checksum and the segments compaction retired (kept for a grace
#: period); segments are laid out as in format 2. 2: equity curves packed by the curve codec
#: (eq_layout, eq_runs, eq_steps, eq_plain). Format 1 and 2 stores are still read; opening
#: one for writing migrates its manifest to format 3 (one atomic manifest replacement).
FORMAT_VERSION = 4
FORMAT_NAME = "hindsight-backtest-store"
ROOT_ATTR = "hindsight_store"
SEGMENT_ATTR = "hindsight_segment"
MANIFEST_KEY = "manifest.json"
COMMIT_COUNTER_KEY = "commits.seq"  # see _backend.CommitCounter
SEGMENTS_DIR = "segments"

#: Columns of the ``codes`` block: int32 codes into the segment's vocabularies, in this order.
#: The first KEY_KINDS make a stored backtest's identity (latest wins within one).
CODE_KINDS: tuple[str, ...] = (
    "symbol", "strategy", "params", "exit_rule", "scope", "definition", "costs", "settings",
    "engine_version", "data_fingerprint",
)
KEY_KINDS = CODE_KINDS[:6]
#: The code columns of segments written before format 4, in their order.
LEGACY_CODE_KINDS: tuple[str, ...] = (
    "symbol", "strategy", "params", "exit_rule", "costs", "settings", "engine_version",
    "data_fingerprint",
)
#: Vocabularies whose entries carry a hash next to the canonical JSON.
HASHED_KINDS = ("params", "exit_rule", "scope")
#: Columns of the ``times`` block (int64 nanoseconds since the epoch, UTC).
TIME_COLUMNS: tuple[str, ...] = ("start", "end", "created_at")
#: Leading columns of the ``floats`` block; metric then numeric param columns follow.
FLOAT_LEAD: tuple[str, ...] = ("initial_capital", "periods_per_year", "bar_seconds")

#: Trade-log columns by storage block.
TRADE_TIME_COLUMNS = ("entry_time", "exit_time")
TRADE_FLOAT_COLUMNS = ("entry_price", "exit_price", "units", "pnl", "return")
TRADE_INT_COLUMNS = ("bars_held", "exit_reason")
assert set(TRADE_TIME_COLUMNS + TRADE_FLOAT_COLUMNS + TRADE_INT_COLUMNS) == set(TRADE_COLUMNS)

#: Rows per inner chunk of the per-row blocks (one column per chunk).
ROW_CHUNK = 65_536
#: Inner chunks per shard file of the per-row blocks (a shard holds every column of its rows).
SHARD_CHUNKS = 16
#: Rows per inner chunk of the stat blocks (times, floats) in compacted segments: zarr has a
#: cost per chunk, and a fresh handle's first table decodes every column whole.
STAT_CHUNK = 65_536
STAT_FIELDS = ("times", "floats")
#: Values per inner chunk of the compacted ragged (equity / trade) arrays, and chunks per
#: shard file: a first details read decodes about a dozen such small chunks.
RAGGED_CHUNK = 2_048
RAGGED_SHARD_CHUNKS = 2_048
#: Values per inner chunk of the ragged arrays in a fresh write (before compaction): larger
#: chunks cost less CPU to compress (pcodec has a fixed cost per chunk).
RAGGED_WRITE_CHUNK = 65_536
#: pcodec compression level (0..12): 4 writes fast; compaction rewrites at a higher level.
WRITE_LEVEL = 4
COMPACT_LEVEL = 8

METRICS: tuple[str, ...] = METRIC_NAMES
