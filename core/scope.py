"""The scope of a backtest: which data, which window, which costs and settings it ran with.

A stored result's identity is (symbol, strategy, params, exit rule, scope): two runs of one
configuration on different data, windows, costs, capital or engine settings are different
experiments, and neither replaces the other. Conventions in docs/store.md ("Scope").

A scope is canonical, like params: ``{"source", "window", "costs", "capital", "settings"}`` with
``window`` either ``"full"`` (all the data there is, growing with the nightly refresh) or
``{"start": date|None, "end": date|None}``. Pure functions; no I/O.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import pandas as pd

from core.canonical import bars_span, canonical_json, hash_of_json
from core.errors import ParamError, ValidationError, did_you_mean

COST_FIELDS = ("commission", "fixed", "slippage_bps", "borrow_rate")
SETTING_DEFAULTS = {"whole_shares": False, "stop_on_entry_bar": True}
#: Optional engine settings recorded only when set (runs before them keep their form).
OPTIONAL_SETTINGS = ("periods_per_year",)
DEFAULT_CAPITAL = 100_000.0
FULL = "full"
#: A lookup with this scope sees every scope (the latest run of a key in any of them).
ALL_SCOPES = "all"
SCOPE_FIELDS = ("source", "window", "costs", "capital", "settings")


def canonical_costs(costs: Mapping[str, Any] | None) -> dict[str, float]:
    """``{"commission": fraction, "fixed": amount, "slippage_bps": bps}``, zeros by default.

    An annual ``borrow_rate`` (a fraction, charged on shorts only) is present only when set
    above 0, so the costs of runs recorded before it existed keep their form.
    """
    if costs is None:
        costs = {}
    if not isinstance(costs, Mapping):
        raise ParamError(
            f"costs must be a dict like {{'commission': 0.001, 'fixed': 1.0, 'slippage_bps': 5}}, "
            f"got {costs!r}."
        )
    for key in costs:
        if key not in COST_FIELDS:
            raise ParamError(f"Unknown cost {key!r}.{did_you_mean(str(key), COST_FIELDS)}")
    out = {}
    for key, high in (("commission", 0.5), ("fixed", math.inf), ("slippage_bps", 5000.0),
                      ("borrow_rate", 10.0)):
        value = costs.get(key, 0.0)
        if isinstance(value, bool) or not _is_real(value):
            raise ParamError(f"Cost {key} must be a number, got {value!r}.")
        value = float(value)
        if not math.isfinite(value) or not 0.0 <= value <= high:
            raise ParamError(f"Cost {key}={value!r} is out of range; use 0..{high}.")
        out[key] = value
    if out["borrow_rate"] == 0.0:
        del out["borrow_rate"]
    return out


def canonical_settings(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """Engine settings with defaults filled in: whole_shares, stop_on_entry_bar (and
    periods_per_year when it was set)."""
    settings = dict(settings or {})
    unknown = [k for k in settings if k not in SETTING_DEFAULTS and k not in OPTIONAL_SETTINGS]
    if unknown:
        raise ValidationError(f"Unknown engine setting {unknown[0]!r}."
                              f"{did_you_mean(str(unknown[0]), (*SETTING_DEFAULTS, *OPTIONAL_SETTINGS))}")
    out: dict[str, Any] = {}
    for key, default in SETTING_DEFAULTS.items():
        value = settings.get(key, default)
        if not isinstance(value, (bool, int)) or value not in (0, 1):
            raise ValidationError(f"Engine setting {key} must be true or false, got {value!r}.")
        out[key] = bool(value)
    if settings.get("periods_per_year") is not None:
        value = settings["periods_per_year"]
        if isinstance(value, bool) or not _is_real(value) or not 0 < float(value) < math.inf:
            raise ValidationError(f"periods_per_year must be a positive number, got {value!r}.")
        out["periods_per_year"] = float(value)
    return out


def canonical_window(window: Any) -> str | dict[str, str | None]:
    """``"full"`` or ``{"start": iso date|None, "end": iso date|None}`` (both None is full).

    Accepts ``"full"``/None, a dict with start/end, or a (start, end) pair; dates print as
    ``YYYY-MM-DD`` (with the time when it is not midnight).
    """
    if window is None or window == FULL:
        return FULL
    if isinstance(window, Mapping):
        unknown = [k for k in window if k not in ("start", "end")]
        if unknown:
            raise ValidationError(f"A window has a start and an end, got {unknown[0]!r}; "
                                  "e.g. {'start': '2010-01-01', 'end': '2013-12-31'}.")
        start, end = window.get("start"), window.get("end")
    elif isinstance(window, (list, tuple)) and len(window) == 2:
        start, end = window
    else:
        raise ValidationError(f"Window {window!r} is neither 'full' nor a start/end pair.")
    start, end = _iso(start, "start"), _iso(end, "end")
    if start is None and end is None:
        return FULL
    if start is not None and end is not None and pd.Timestamp(start) > pd.Timestamp(end):
        raise ValidationError(f"Window start {start} is after its end {end}; swap the dates.")
    return {"start": start, "end": end}


def _iso(value: Any, what: str) -> str | None:
    """A date as ISO text (date only at midnight), or None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError, OverflowError):
        raise ValidationError(f"Window {what} {value!r} is not a date; use YYYY-MM-DD.") from None
    if pd.isna(stamp):
        return None
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.strftime("%Y-%m-%d") if stamp == stamp.normalize() else stamp.isoformat()


def make_scope(source: str, window: Any = FULL, costs: Mapping | None = None,
               capital: float = DEFAULT_CAPITAL, settings: Mapping | None = None) -> dict:
    """The canonical scope dict of one run."""
    if not isinstance(source, str) or not source:
        raise ValidationError(f"A scope's source must be a non-empty name, got {source!r}.")
    if isinstance(capital, bool) or not _is_real(capital) or not 0 < float(capital) < math.inf:
        raise ValidationError(f"A scope's capital must be a positive number, got {capital!r}.")
    return {"source": source, "window": canonical_window(window),
            "costs": canonical_costs(costs), "capital": float(capital),
            "settings": canonical_settings(settings)}


def complete_scope(partial: Mapping[str, Any], default: Mapping[str, Any]) -> dict:
    """A scope from the fields given, the others from ``default`` (e.g. just a window)."""
    unknown = [k for k in partial if k not in SCOPE_FIELDS]
    if unknown:
        raise ValidationError(f"Unknown scope field {unknown[0]!r}.{did_you_mean(str(unknown[0]), SCOPE_FIELDS)}"
                              f" A scope has {', '.join(SCOPE_FIELDS)}.")
    merged = {**default, **partial}
    return make_scope(merged["source"], merged["window"], merged["costs"], merged["capital"],
                      merged["settings"])


def scope_json(scope: Mapping[str, Any]) -> str:
    return canonical_json(dict(scope))


def scope_hash(scope: Mapping[str, Any]) -> str:
    """16 hex digits identifying a canonical scope (like a params hash)."""
    return hash_of_json(scope_json(scope))


def source_id(data_source: str, data_folder: str = "") -> str:
    """The source part of a scope: ``demo``, ``yahoo`` or ``folder:<absolute path>``."""
    if data_source == "folder":
        return "folder:" + os.path.abspath(os.path.expanduser(data_folder))
    return data_source


def default_scope(settings: Any = None) -> dict:
    """The configured default scope: the configured source's full history, no costs,
    the default capital and engine settings (what the Scanner shows)."""
    if settings is None:
        from core.config import load_settings

        settings = load_settings()
    return make_scope(source_id(settings.data_source, settings.data_folder))


def window_label(window: Any) -> str:
    window = canonical_window(window)
    if window == FULL:
        return "full history"
    start, end = window["start"], window["end"]
    return f"{start or 'start'} → {end or 'latest'}"


def source_label(source: str) -> str:
    if source.startswith("folder:"):
        return "folder " + (os.path.basename(source[len("folder:"):].rstrip("/\\")) or "/")
    return source


def scope_label(scope: Mapping[str, Any]) -> str:
    """A short readable name: source · window, then costs, capital and settings that differ
    from the defaults (``demo · full history`` or ``folder prices · 2010-01-01 → 2013-12-31 ·
    commission 0.1 %``)."""
    parts = [source_label(str(scope.get("source", "?"))), window_label(scope.get("window"))]
    costs = scope.get("costs") or {}
    if costs.get("commission"):
        parts.append(f"commission {costs['commission'] * 100:g} %")
    if costs.get("slippage_bps"):
        parts.append(f"slippage {costs['slippage_bps']:g} bps")
    if costs.get("fixed"):
        parts.append(f"fixed {costs['fixed']:g} per order")
    if costs.get("borrow_rate"):
        parts.append(f"borrow {costs['borrow_rate'] * 100:g} %/yr")
    for key in costs:
        if key not in COST_FIELDS:
            parts.append(f"{key} {costs[key]}")
    capital = scope.get("capital", DEFAULT_CAPITAL)
    if capital != DEFAULT_CAPITAL:
        parts.append(f"capital {capital:,.0f}")
    settings = scope.get("settings") or {}
    if settings.get("whole_shares"):
        parts.append("whole shares")
    if settings.get("stop_on_entry_bar") is False:
        parts.append("no stop on entry bar")
    if settings.get("periods_per_year"):
        parts.append(f"annualised ×{settings['periods_per_year']:g}")
    return " · ".join(parts)


def lenient_scope(source: str, window: Any, costs: Any, capital: float, settings: Any) -> dict:
    """The scope of a row stored before scopes existed: canonical where its recorded costs
    and settings allow it, as recorded where they do not (nothing is refused on read)."""
    try:
        costs = canonical_costs(costs)
    except ValidationError:
        costs = dict(costs or {})
    try:
        settings = canonical_settings(settings)
    except ValidationError:
        settings = dict(settings or {})
    return {"source": source, "window": canonical_window(window), "costs": costs,
            "capital": float(capital), "settings": settings}


# --- bars: which source and window they hold -----------------------------------------------

def stamp_scope(bars: pd.DataFrame, source: str, start: Any = None, end: Any = None
                ) -> pd.DataFrame:
    """Record on ``bars.attrs`` the source and requested window they were loaded with."""
    bars.attrs["source"] = source
    bars.attrs["window"] = canonical_window({"start": start, "end": end})
    bars.attrs["window_span"] = bars_span(bars)
    return bars


def with_window(bars: pd.DataFrame, start: Any = None, end: Any = None) -> pd.DataFrame:
    """``bars`` between ``start`` and ``end`` (inclusive), stated as that explicit window."""
    lo = None if start is None else pd.Timestamp(start)
    hi = None if end is None else pd.Timestamp(end)
    index = bars.index
    first = 0 if lo is None else index.searchsorted(lo, side="left")
    last = len(index) if hi is None else index.searchsorted(hi, side="right")
    out = bars.iloc[first:last].copy(deep=False)
    out.attrs = dict(bars.attrs)
    return stamp_scope(out, bars.attrs.get("source", ""), start, end)


def bars_scope_parts(bars: pd.DataFrame) -> tuple[str, Any]:
    """(source, window) the engine records for ``bars``.

    The window stamped by the provider holds while the bars are the ones stamped (pandas
    copies ``attrs`` to slices, so the span is checked): a slice of them is the explicit window
    of its first and last bar. Bars without a stamp are the caller's whole data (``full``), and
    their source is the store's default (``""`` here).
    """
    attrs = bars.attrs
    source = attrs.get("source", "") if isinstance(attrs.get("source", ""), str) else ""
    window = attrs.get("window")
    if window is None:
        return source, FULL
    if attrs.get("window_span") == bars_span(bars):
        return source, window
    if len(bars.index) == 0:
        return source, window
    return source, canonical_window({"start": bars.index[0], "end": bars.index[-1]})


def _is_real(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError, OverflowError):
        return False
    return not isinstance(value, (str, bytes))
