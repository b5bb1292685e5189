"""compact() and verify(): merge small segments, and check every byte (fsck)."""
from __future__ import annotations

import time

import numpy as np

from core.errors import StoreCorruptionError
from core.store._backend import crash_point
from core.store._curves import Calendars, pack_curves, unpack_curves
from core.store._segdata import SegmentData
from core.store._format import (CODE_KINDS, COMPACT_LEVEL, HASHED_KINDS, LEGACY_CODE_KINDS,
                                SEGMENTS_DIR)
from core.store._index import bid_range, entry_bids
from core.store._scopes import LegacyScopes, with_scope_columns
from core.store._segment import (ARRAY_FIELDS, SegmentReader, new_segment_name, open_segment,
                                 segment_path, write_segment)

#: A compacted segment holds up to this many rows.
COMPACT_ROWS = 2_097_152
#: Unreferenced segment folders younger than this may be a writer's in-progress batch.
ORPHAN_AGE_S = 3_600.0
#: Seconds a segment replaced by compaction stays on disk for readers of older manifests.
RETIRE_GRACE_S = 600.0


# -------------------------------------------------------------------------------- compact
def compact(backend, zstore, damaged: set[str], grace_s: float = RETIRE_GRACE_S,
            legacy: LegacyScopes | None = None) -> dict:
    """Merge runs of small segments into large ones; deleted rows are dropped for good.

    The merge runs without the writer lock (writers keep committing); only the manifest swap
    is locked, and it is abandoned if another compaction replaced the same segments first.
    Replaced segments are retired, not deleted: readers that loaded the previous manifest may
    still read them. Segments retired more than ``grace_s`` seconds ago are deleted.
    Rows of segments written before scopes are rewritten with the scope ``legacy`` gives them.
    """
    with backend.lock():
        doc = backend.current_manifest()
    tombstones = set(doc.get("tombstones", []))
    merged = []
    for group in _plan(doc["segments"], tombstones, damaged):
        readers = [open_segment(zstore, entry["name"]) for entry in group]
        data = merge_segments(group, readers, tombstones, legacy)
        name = new_segment_name()
        if data.rows:
            write_segment(zstore, name, data, COMPACT_LEVEL)
        merged.append((group, name, data))
    crash_point("compact_written")
    replaced, dropped, expired = _swap(backend, merged, tombstones, grace_s)
    for name in expired:
        backend.remove_tree(segment_path(name))
    return {"merged_segments": len(replaced), "new_segments": sum(
        1 for _, _, d in merged if d.rows), "dropped_rows": dropped,
        "removed_segments": len(expired), "removed_orphans": _remove_orphans(backend),
        "removed_temp_files": backend.clean_temp_manifests(ORPHAN_AGE_S)}


def _plan(entries: list[dict], tombstones: set[int], damaged: set[str]) -> list[list[dict]]:
    """Consecutive runs worth merging: small segments, or any holding deleted rows."""
    tomb = np.asarray(sorted(tombstones), np.int64)
    groups, current, rows = [], [], 0

    def close():
        if len(current) > 1 or (current and _has_tombstones(current[0], tomb)):
            groups.append(list(current))
        current.clear()

    for entry in entries:
        if entry["name"] in damaged:
            close()
            rows = 0
            continue
        big = entry["rows"] >= COMPACT_ROWS // 2 and not _has_tombstones(entry, tomb)
        if big or rows + entry["rows"] > COMPACT_ROWS:
            close()
            rows = 0
        if big:
            continue
        current.append(entry)
        rows += entry["rows"]
    close()
    return groups


def _has_tombstones(entry: dict, tomb: np.ndarray) -> bool:
    lo, hi = bid_range(entry)
    i = np.searchsorted(tomb, lo)
    return bool(i < len(tomb) and tomb[i] <= hi)


def merge_segments(entries: list[dict], readers: list[SegmentReader],
                   tombstones: set[int], legacy: LegacyScopes | None = None) -> SegmentData:
    """One SegmentData holding the live rows of several segments, in bid order."""
    parts = [_read_all(entry, reader, legacy) for entry, reader in zip(entries, readers)]
    tomb = np.asarray(sorted(tombstones), np.int64)
    keeps = [~np.isin(p["bids"], tomb) for p in parts]
    vocab, codes = _merge_codes(parts, keeps)
    float_columns, floats = _merge_floats(parts, keeps)
    param_columns: dict[str, str] = {}
    for part in parts:
        param_columns.update(part["attrs"].get("param_columns", {}))
    data = SegmentData(
        rows=int(sum(k.sum() for k in keeps)), vocab=vocab, codes=codes,
        times=np.concatenate([p["times"][k] for p, k in zip(parts, keeps)]),
        float_columns=float_columns, floats=floats, param_columns=param_columns,
        bids=np.concatenate([p["bids"][k] for p, k in zip(parts, keeps)]))
    _merge_ragged(data, parts, keeps, "eq", ("eq_values",))
    _merge_calendars(data, parts, keeps)
    _merge_ragged(data, parts, keeps, "tr", ("tr_times", "tr_floats", "tr_ints"))
    pack_curves(data)
    return data


def _read_all(entry: dict, reader: SegmentReader, legacy: LegacyScopes | None) -> dict:
    names = [f for f in ARRAY_FIELDS if reader.has(f)]
    values = reader.read_many([(name, Ellipsis) for name in names])
    part = dict(zip(names, values))
    capital = reader.attrs["float_columns"].index("initial_capital")
    vocab, part["codes"] = with_scope_columns(
        reader.attrs["vocab"], part["codes"],
        lambda: (part["times"], part["floats"][:, capital]), legacy)
    part["attrs"] = {**reader.attrs, "vocab": vocab}
    part["bids"] = entry_bids(entry, reader)
    if "eq_layout" in part:
        try:
            part["eq_values"] = _unpacked(part)
        except (ValueError, IndexError) as exc:
            raise reader.damaged(exc) from None
    return part


def _unpacked(part: dict) -> np.ndarray:
    """Every curve of a segment read whole, as float64 values (one vectorised decode)."""
    lengths = np.diff(part["eq_offsets"])
    trade_lengths = (np.diff(part["tr_offsets"]) if "tr_offsets" in part
                     else np.zeros(len(lengths), np.int64))
    return unpack_curves(lengths, part["eq_layout"], part.get("eq_runs"), part.get("eq_steps"),
                         part.get("eq_plain"), trade_lengths, part.get("tr_floats"))


def _merge_codes(parts: list[dict], keeps: list[np.ndarray]) -> tuple[dict, np.ndarray]:
    vocab: dict[str, list] = {}
    columns = []
    for j, kind in enumerate(CODE_KINDS):
        merged: dict = {}
        pieces = []
        for part, keep in zip(parts, keeps):
            local = part["attrs"]["vocab"][kind]
            mapping = np.empty(len(local), np.int32)
            for i, value in enumerate(local):
                key = tuple(value) if kind in HASHED_KINDS else value
                mapping[i] = merged.setdefault(key, len(merged))
            pieces.append(mapping[part["codes"][keep, j]] if len(local) else
                          np.zeros(int(keep.sum()), np.int32))
        vocab[kind] = [list(k) if kind in HASHED_KINDS else k for k in merged]
        columns.append(np.concatenate(pieces))
    return vocab, np.ascontiguousarray(np.stack(columns, axis=1).astype(np.int32))


def _merge_floats(parts: list[dict], keeps: list[np.ndarray]) -> tuple[list[str], np.ndarray]:
    names: dict[str, None] = {}
    for part in parts:
        names.update(dict.fromkeys(part["attrs"]["float_columns"]))
    columns = list(names)
    total = int(sum(k.sum() for k in keeps))
    out = np.full((total, len(columns)), np.nan)
    row = 0
    for part, keep in zip(parts, keeps):
        block = part["floats"][keep]
        for j, name in enumerate(part["attrs"]["float_columns"]):
            out[row:row + len(block), columns.index(name)] = block[:, j]
        row += len(block)
    return columns, out


def _merge_ragged(data: SegmentData, parts: list[dict], keeps: list[np.ndarray], prefix: str,
                  fields: tuple[str, ...]) -> None:
    offsets_name = f"{prefix}_offsets"
    if not any(offsets_name in p for p in parts):
        return
    lengths, values = [], {field: [] for field in fields}
    for part, keep in zip(parts, keeps):
        if offsets_name not in part:
            lengths.append(np.zeros(int(keep.sum()), np.int64))
            continue
        row_lengths = np.diff(part[offsets_name])
        lengths.append(row_lengths[keep])
        value_keep = np.repeat(keep, row_lengths)
        for field in fields:
            values[field].append(part[field][value_keep])
    offsets = np.zeros(data.rows + 1, np.int64)
    np.cumsum(np.concatenate(lengths), out=offsets[1:])
    if offsets[-1] == 0:
        return
    setattr(data, offsets_name, offsets)
    for field in fields:
        setattr(data, field, np.concatenate(values[field]))


def _merge_calendars(data: SegmentData, parts: list[dict], keeps: list[np.ndarray]) -> None:
    """Each kept curve's dates re-pointed into one deduplicated calendar.

    Curves point at (start, length) slices of their segment's calendar; each distinct slice
    is looked up once, and rows take its new start by their slice's code.
    """
    if data.eq_offsets is None:
        return
    calendars = Calendars()
    starts = []
    for part, keep in zip(parts, keeps):
        if "eq_offsets" not in part:
            starts.append(np.zeros(int(keep.sum()), np.int64))
            continue
        lengths = np.diff(part["eq_offsets"])[keep]
        old_starts = part["eq_date_starts"][keep]
        new_starts = np.zeros(len(lengths), np.int64)
        has = lengths > 0
        slices, codes = np.unique(np.stack([old_starts[has], lengths[has]], axis=1), axis=0,
                                  return_inverse=True)
        moved = np.array([calendars.start_of(part["eq_calendar"][lo:lo + n])
                          for lo, n in slices], np.int64)
        new_starts[has] = moved[codes.reshape(-1)] if len(moved) else 0
        starts.append(new_starts)
    data.eq_date_starts = np.concatenate(starts)
    data.eq_calendar = calendars.concat()


def _swap(backend, merged: list, tombstones: set[int], grace_s: float
          ) -> tuple[list[str], int, list[str]]:
    """Replace each merged group in the manifest (under the lock); returns (replaced segment
    names, dropped rows, retired segments past their grace, now unlisted)."""
    replaced, dropped = [], 0
    with backend.lock():
        crash_point("compact_locked")
        doc = backend.current_manifest()
        names = [e["name"] for e in doc["segments"]]
        prune: set[int] = set()
        for group, new_name, data in merged:
            group_names = [e["name"] for e in group]
            start = names.index(group_names[0]) if group_names[0] in names else -1
            if start < 0 or names[start:start + len(group_names)] != group_names:
                backend.remove_tree(segment_path(new_name))  # another compaction won
                continue
            new_entries = []
            if data.rows:
                new_entries = [{"name": new_name, "rows": data.rows,
                                "bid_min": int(data.bids[0]), "bid_max": int(data.bids[-1]),
                                "created_at": int(data.times[:, 2].max())}]
            doc["segments"][start:start + len(group)] = new_entries
            names[start:start + len(group)] = [e["name"] for e in new_entries]
            dropped += sum(e["rows"] for e in group) - data.rows
            for entry in group:
                lo, hi = bid_range(entry)
                prune |= {b for b in tombstones if lo <= b <= hi}
            replaced.extend(group_names)
        now = time.time()
        retired = doc.get("retired", []) + [{"name": n, "at": now} for n in replaced]
        expired = [r["name"] for r in retired if now - r["at"] >= grace_s]
        if replaced or expired:
            doc["retired"] = [r for r in retired if now - r["at"] < grace_s]
            doc["tombstones"] = sorted(set(doc.get("tombstones", [])) - prune)
            backend.commit(doc)
    return replaced, dropped, expired


def _remove_orphans(backend) -> int:
    """Delete segment folders no manifest lists (nor retires) older than ORPHAN_AGE_S."""
    doc = backend.current_manifest()
    listed = {e["name"] for e in doc["segments"]} | {r["name"] for r in doc.get("retired", [])}
    removed = 0
    for name in backend.list_dir(SEGMENTS_DIR):
        if name in listed:
            continue
        age = backend.modified_age_s(f"{SEGMENTS_DIR}/{name}")
        if age is not None and age > ORPHAN_AGE_S:
            backend.remove_tree(segment_path(name))
            removed += 1
    return removed


# -------------------------------------------------------------------------------- verify
def verify(backend, zstore) -> dict:
    """Read every chunk of every committed segment; report damage per segment, never hide it."""
    report = {"ok": True, "url": backend.url, "segments": 0, "rows": 0, "damaged": [],
              "orphan_segments": [], "problems": []}
    try:
        doc = backend.current_manifest()
    except StoreCorruptionError as exc:
        report.update(ok=False, problems=[str(exc)])
        return report
    report["problems"] = _id_problems(doc)
    for entry in doc["segments"]:
        report["segments"] += 1
        problems = _check_segment(zstore, entry)
        if problems:
            lo, hi = bid_range(entry)
            report["damaged"].append({"segment": entry["name"], "rows": entry["rows"],
                                      "backtest_ids": [str(lo), str(hi)],
                                      "problems": problems})
        else:
            report["rows"] += entry["rows"]
    listed = {e["name"] for e in doc["segments"]} | {r["name"] for r in doc.get("retired", [])}
    report["orphan_segments"] = [n for n in backend.list_dir(SEGMENTS_DIR) if n not in listed]
    report["ok"] = not report["damaged"] and not report["problems"]
    return report


def _id_problems(doc: dict) -> list[str]:
    """Id ranges of the manifest's segments that overlap, or reach ``next_bid``."""
    problems = []
    ranges = sorted((*bid_range(e), e["name"]) for e in doc["segments"] if e["rows"])
    for (lo, hi, name), (next_lo, _, next_name) in zip(ranges, ranges[1:]):
        if next_lo <= hi:
            problems.append(f"segments {name!r} and {next_name!r} claim the same backtest ids "
                            f"({next_lo}..{hi})")
    top = max((hi for _, hi, _ in ranges), default=0)
    if int(doc.get("next_bid", 1)) <= top:
        problems.append(f"next_bid {doc.get('next_bid')} is not above the highest id {top}: "
                        "new backtests would reuse ids")
    return problems


def _check_segment(zstore, entry: dict) -> list[str]:
    try:
        reader = open_segment(zstore, entry["name"])
    except StoreCorruptionError as exc:
        return [str(exc)]
    problems = []
    if reader.rows != entry["rows"]:
        problems.append(f"holds {reader.rows} rows, the manifest says {entry['rows']}")
    values = {}
    for name in reader.names:
        try:
            values[name] = reader.read(name)
        except StoreCorruptionError:
            problems.extend(_locate_bad_chunks(reader, name))
    if not problems:
        problems.extend(_check_structure(reader, values))
    return problems


def _locate_bad_chunks(reader: SegmentReader, name: str) -> list[str]:
    try:
        array = reader.array(name)
    except StoreCorruptionError as exc:
        return [f"array {name!r} cannot be opened: {exc}"]
    step = array.chunks[0]
    bad = []
    for lo in range(0, array.shape[0], step):
        try:
            reader.read(name, slice(lo, min(lo + step, array.shape[0])))
        except StoreCorruptionError as exc:
            bad.append(f"array {name!r} rows {lo}..{min(lo + step, array.shape[0]) - 1}: "
                       f"{str(exc).split('(', 1)[-1].rstrip(').').split('). Run')[0]}")
    return bad or [f"array {name!r} cannot be read"]


def _check_structure(reader: SegmentReader, values: dict) -> list[str]:
    problems = []
    attrs = reader.attrs
    vocab = attrs["vocab"]
    codes = values.get("codes")
    if codes is not None:
        kinds = CODE_KINDS if "scope" in vocab else LEGACY_CODE_KINDS
        for j, kind in enumerate(kinds):
            if len(codes) and (codes[:, j].min() < 0 or codes[:, j].max() >= len(vocab[kind])):
                problems.append(f"{kind} codes point outside the segment's vocabulary")
    for prefix, fields in (("eq", ("eq_values",)), ("tr", ("tr_times", "tr_floats", "tr_ints"))):
        offsets = values.get(f"{prefix}_offsets")
        if offsets is None:
            continue
        if offsets[0] != 0 or (np.diff(offsets) < 0).any():
            problems.append(f"{prefix}_offsets are not increasing from 0")
        for field in fields:
            if field in values and len(values[field]) != offsets[-1]:
                problems.append(f"{field} holds {len(values[field])} values, offsets say "
                                f"{offsets[-1]}")
    starts, calendar = values.get("eq_date_starts"), values.get("eq_calendar")
    if starts is not None and calendar is not None:
        lengths = np.diff(values["eq_offsets"])
        if ((starts < 0) | (starts + lengths > len(calendar))).any():
            problems.append("eq_date_starts point outside eq_calendar")
    if "eq_layout" in values and "eq_offsets" in values and not problems:
        try:
            _unpacked(values)
        except (ValueError, IndexError, KeyError) as exc:
            problems.append(f"equity curves cannot be decoded: {exc}")
    return problems
