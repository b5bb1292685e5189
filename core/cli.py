"""Command-line interface: ``python -m core <command>`` (also installed as ``hindsight``).

Every command is a thin wrapper over one core service. Heavy modules (engine, store, data
providers) are imported inside the command that needs them, so ``--help`` and argument errors
answer instantly. Any ``HindsightError`` becomes a one-line message on stderr and exit code 2;
bad input never prints a traceback. See docs/research.md for the reference.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from typing import Any

from core.errors import HindsightError, ValidationError

EXIT_OK = 0
EXIT_FAILED = 1  # the command ran but found a problem (e.g. verify found damage)
EXIT_BAD_INPUT = 2  # HindsightError / usage error / any other bad input
#: Whole numbers in JSON options longer than this are refused before Python converts them.
MAX_JSON_DIGITS = 20


# ---------------------------------------------------------------------------------------------
# shared helpers
# ---------------------------------------------------------------------------------------------


class _Context:
    """Settings, data provider and store, each created on first use."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self._settings = None
        self._provider = None
        self._stores: dict[str, Any] = {}

    @property
    def settings(self):
        if self._settings is None:
            from core.config import load_settings

            self._settings = load_settings(
                store_url=self.args.store, data_source=self.args.data_source
            )
        return self._settings

    @property
    def provider(self):
        if self._provider is None:
            from core.data import get_provider

            self._provider = get_provider(self.settings)
        return self._provider

    def store(self, mode: str = "a"):
        """The backtest store at ``--store`` (or the configured one), opened once per mode; its
        default scope is the full history of ``--data-source`` (or the configured source)."""
        if mode not in self._stores:
            from core.scope import default_scope
            from core.store import open_store

            _import_legacy_walk_forwards(self.settings.store_url)
            self._stores[mode] = open_store(self.settings.store_url, mode,
                                            default_scope=default_scope(self.settings))
        return self._stores[mode]


def _import_legacy_walk_forwards(store_url: str) -> None:
    """Move the walk-forwards of an old ``walkforward.zarr`` beside the store into it (once)."""
    from core.walkforward import import_legacy_walkforward_store, legacy_store_url

    copied = import_legacy_walkforward_store(store_url)
    if copied:
        print(f"imported {copied} walk-forward backtests from {legacy_store_url(store_url)} "
              "into the store (the folder is renamed *.imported)", file=sys.stderr)


def _json_arg(text: str | None, option: str, example: str) -> Any:
    """Parse a JSON option value, or explain what is wrong with it and show an example."""
    if text is None:
        return None
    try:
        return json.loads(text, parse_int=lambda digits: _json_int(digits, option, example))
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"{option} is not valid JSON ({exc.msg} at column {exc.colno}): {_clip(text)}. "
            f"Example: {option} '{example}'."
        ) from None
    except RecursionError:
        raise ValidationError(
            f"{option} nests lists or objects too deeply. Example: {option} '{example}'."
        ) from None


def _json_int(digits: str, option: str, example: str) -> int:
    """A JSON whole number, refused when it is longer than any value a setting could take."""
    if len(digits.lstrip("-")) > MAX_JSON_DIGITS:
        raise ValidationError(
            f"{option} holds the number {_clip(digits, 12)} ({len(digits.lstrip('-'))} digits), "
            f"far too large for any parameter. Example: {option} '{example}'."
        )
    return int(digits)


def _clip(text: str, keep: int = 60) -> str:
    """``text`` for a message: at most ``keep`` characters, the rest counted."""
    text = str(text)
    return repr(text) if len(text) <= keep else f"{text[:keep]!r}... ({len(text)} characters)"


def _exit_rules_arg(values: list[str] | None) -> list[Any]:
    """``--exit`` may be given several times: one exit rule (a dict or a list) per occurrence."""
    if not values:
        return [None]
    return [_json_arg(v, "--exit", '{"type": "stop_loss", "pct": 0.05}') for v in values]


def _symbols_arg(text: str | None) -> list[str]:
    return [s.strip() for s in (text or "").split(",") if s.strip()]


def jsonable(value: Any) -> Any:
    """Plain JSON value: NaN/inf -> None, numpy scalars -> Python, timestamps -> ISO text."""
    import numpy as np
    import pandas as pd

    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else _iso(value)
    if value is pd.NaT or value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _iso(ts) -> str:
    """A daily bar's stamp as ``2024-01-31``; an intraday one in full ISO form."""
    return ts.date().isoformat() if ts == ts.normalize() else ts.isoformat()


def _records(frame) -> list[dict[str, Any]]:
    """A DataFrame as a list of JSON-ready dicts."""
    if frame is None or len(frame) == 0:
        return []
    return [jsonable(row) for row in frame.to_dict(orient="records")]


def _typed_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """Metrics with counts as integers (``num_trades`` is a float only to allow NaN)."""
    out = dict(metrics)
    value = out.get("num_trades")
    if isinstance(value, float) and math.isfinite(value):
        out["num_trades"] = int(value)
    return out


def _print_json(obj: Any) -> None:
    print(json.dumps(jsonable(obj), allow_nan=False, default=str))


def _format_metric(name: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if name in ("num_trades",):
        return f"{int(value)}"
    if name in ("win_rate", "total_return", "cagr", "max_drawdown", "expectancy", "exposure",
                "best_trade", "worst_trade"):
        return f"{value:.2%}"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _print_metrics(metrics: dict[str, Any]) -> None:
    width = max((len(k) for k in metrics), default=0)
    for name, value in metrics.items():
        print(f"  {name:<{width}}  {_format_metric(name, value)}")


def _print_summary(summary: dict[str, Any]) -> None:
    """``key: value`` lines; dicts and lists as JSON, floats to 4 significant digits."""
    width = max((len(k) for k in summary), default=0)
    for key, value in summary.items():
        value = jsonable(value)
        if isinstance(value, (dict, list)):
            value = json.dumps(value)
        elif isinstance(value, float):
            value = f"{value:.4g}"
        print(f"  {key:<{width}}  {value}")


def _print_frame(frame, max_rows: int | None = None) -> None:
    import pandas as pd

    if frame is None or len(frame) == 0:
        print("  (none)")
        return
    with pd.option_context("display.width", 200, "display.max_columns", 40,
                           "display.max_rows", max_rows or len(frame) + 1):
        print(frame.to_string(index=False, max_rows=max_rows))


def _progress_bar(enabled: bool, total: int | None, desc: str, unit: str = "bt"):
    """A tqdm bar on stderr when asked for (silent when stderr is not a terminal), else None."""
    if not enabled:
        return None
    from tqdm import tqdm

    # disable=None: tqdm stays silent when stderr is not a terminal (cron, pipes, logs)
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True,
                disable=None)


# ---------------------------------------------------------------------------------------------
# run
# ---------------------------------------------------------------------------------------------


def _load_single_bars(ctx: _Context, args: argparse.Namespace):
    """Bars and symbol name for ``run``/``walkforward``: from ``--csv`` or the data provider."""
    if getattr(args, "csv", None):
        from pathlib import Path

        from core.data import read_ohlcv_csv

        path = Path(args.csv)
        if not path.is_file():
            raise ValidationError(f"CSV file not found: {args.csv!r}. Give the path of an OHLCV CSV.")
        bars = read_ohlcv_csv(path, date_format=ctx.settings.date_format)
        symbol = str(bars.attrs.get("symbol") or path.stem).upper()
        return symbol, bars
    from core.data import validate_symbol

    symbol = validate_symbol(args.symbol)
    return symbol, ctx.provider.load_bars(symbol, start=args.start, end=args.end)


def _cmd_run(ctx: _Context, args: argparse.Namespace) -> int:
    """One backtest: print metrics and trades (or one JSON object); store it unless --no-store."""
    from core.engine import run_backtest

    params = _json_arg(args.params, "--params", '{"period": 14}') or {}
    exit_rule = _json_arg(args.exit, "--exit", '{"type": "stop_loss", "pct": 0.05}')
    costs = _json_arg(args.costs, "--costs", '{"commission": 0.001}')
    symbol, bars = _load_single_bars(ctx, args)
    result = run_backtest(
        bars, args.strategy, params, exit_rule, costs=costs,
        initial_capital=args.capital, whole_shares=args.whole_shares,
        stop_on_entry_bar=not args.no_stop_on_entry_bar, symbol=symbol,
    )
    bid = None if args.no_store else ctx.store("a").store_backtest(result)
    stored = None if bid is None else f"stored backtest {bid} under {_scope_of(ctx, bid)}"
    if args.json:
        _print_json({"metrics": _typed_metrics(result.metrics), "trades": _records(result.trades)})
        if stored is not None:
            print(stored, file=sys.stderr)
        return EXIT_OK
    print(f"{result.strategy} on {result.symbol}  {_iso(result.start)} .. {_iso(result.end)}")
    print(f"  params  {result.params_json}")
    print(f"  exit    {result.exit_json}")
    _print_metrics(result.metrics)
    print(f"\ntrades ({len(result.trades)}):")
    _print_frame(result.trades)
    if stored is not None:
        print(f"\n{stored}  (python -m core show {bid})")
    return EXIT_OK


def _scope_of(ctx: _Context, bid: str) -> str:
    """The scope label a stored backtest was filed under (e.g. ``demo · full history``)."""
    row = ctx.store("a").query(where=f"backtest_id == {bid}", scope="all")
    return str(row["scope"].iloc[0])


# ---------------------------------------------------------------------------------------------
# sweep / walk-forward / universe
# ---------------------------------------------------------------------------------------------


def _cmd_sweep(ctx: _Context, args: argparse.Namespace) -> int:
    from core.sweep import run_sweep

    ranges = _json_arg(args.grid, "--grid", '{"period": {"start": 5, "stop": 30, "step": 5}}')
    if not isinstance(ranges, dict):
        raise ValidationError(
            f"--grid must be a JSON object of param -> values or range, got {args.grid!r}."
        )
    symbols = ctx.provider.symbols() if args.all_symbols else _symbols_arg(args.symbols)
    if not symbols:
        raise ValidationError("No symbols given. Use --symbols A,B,C or --all-symbols.")
    exit_rules = _exit_rules_arg(args.exit)
    bar = _progress_bar(not args.no_progress and not args.json, None, "sweep")
    try:
        report = run_sweep(
            args.strategy, ranges, symbols, exit_rules, ctx.store("a"), ctx.provider,
            force=args.force, scheduler=args.scheduler, batch_size=args.batch_size,
            progress=_tqdm_callback(bar), max_cells=args.max_cells, max_tries=args.max_tries,
            seed=args.seed, workers=args.workers, skip_bad_data=args.all_symbols,
        )
    finally:
        if bar is not None:
            bar.close()
    _report_skipped(report.skipped)
    summary = report.summary()
    if args.json:
        _print_json(summary)
    else:
        _print_summary(summary)
    return EXIT_OK


def _report_skipped(skipped: list[dict[str, str]]) -> None:
    """One stderr line per symbol left out because its data could not be loaded."""
    for item in skipped:
        symbol, error = str(item["symbol"]), " ".join(str(item["error"]).split())
        print(f"skipped {error if error.startswith(symbol) else f'{symbol}: {error}'}",
              file=sys.stderr)


def _tqdm_callback(bar):
    """Adapt a tqdm bar to the ``progress(done, total)`` callback the services call."""
    if bar is None:
        return None

    def update(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    return update


def _cmd_walkforward(ctx: _Context, args: argparse.Namespace) -> int:
    from core.walkforward import walk_forward

    ranges = _json_arg(args.grid, "--grid", '{"period": [10, 14, 20]}')
    symbol, bars = _load_single_bars(ctx, args)
    bar = _progress_bar(not args.no_progress and not args.json, None, "walk-forward", "window")
    try:
        report = walk_forward(
            bars, args.strategy, ranges, _exit_rules_arg(args.exit),
            in_sample=args.in_sample, out_of_sample=args.out_of_sample, step=args.step,
            anchored=args.anchored, metric=args.metric, min_trades=args.min_trades,
            store=None if args.no_store else ctx.store("a"), symbol=symbol,
            progress=_tqdm_callback(bar),
        )
    finally:
        if bar is not None:
            bar.close()
    _print_walk_forward(report, args.json)
    return EXIT_OK


def _print_walk_forward(report, as_json: bool) -> None:
    """A walk-forward report: one JSON object, or a heading, the windows and the summary."""
    if as_json:
        _print_json(report.to_dict())
        return
    scheme = report.spec.get("scheme", "unrecorded")
    print(f"walk-forward {report.parent_id}: {report.strategy} on {report.symbol}, "
          f"{scheme} windows, optimising {report.metric or 'an unrecorded metric'}")
    _print_frame(report.windows)
    _print_summary(report.summary())


def _cmd_walkforwards(ctx: _Context, args: argparse.Namespace) -> int:
    """The stored walk-forwards (newest first), or one of them with ``ID``."""
    from core.walkforward import list_walk_forwards, load_walk_forward

    if args.id:
        _print_walk_forward(load_walk_forward(ctx.store("r"), args.id), args.json)
        return EXIT_OK
    table = list_walk_forwards(ctx.store("r"))
    if args.json:
        _print_json(_records(table))
    else:
        _print_frame(table)
    return EXIT_OK


def _cmd_universe(ctx: _Context, args: argparse.Namespace) -> int:
    from core.sweep import universe_view

    params = _json_arg(args.params, "--params", '{"period": 14}') or {}
    exit_rule = _json_arg(args.exit, "--exit", '{"type": "stop_loss", "pct": 0.05}')
    view = universe_view(ctx.store("r"), args.strategy, params, exit_rule)
    table = view.pop("table")
    if args.json:
        _print_json({**view, "symbols": _records(table)})
        return EXIT_OK
    _print_summary(view)
    print()
    _print_frame(table)
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# store: query / show / export / compact / verify
# ---------------------------------------------------------------------------------------------


def _query_frame(ctx: _Context, args: argparse.Namespace):
    """The store's latest backtests filtered by --exit/--where/--order-by/--limit, --columns
    picked."""
    exit_rule = _exit_filter(args.exit) if args.exit is not None else None
    frame = ctx.store("r").query(
        symbol=_symbols_arg(args.symbols) or None, strategy=args.strategy, exit_rule=exit_rule,
        where=args.where, order_by=args.order_by, limit=args.limit,
        include_history=args.history, scope=_scope_filter(ctx, args.scope),
    )
    columns = _symbols_arg(args.columns)
    unknown = [c for c in columns if c not in frame.columns]
    if unknown:
        from core.errors import QueryError, did_you_mean

        raise QueryError(f"Unknown column {unknown[0]!r}.{did_you_mean(unknown[0], frame.columns)}")
    return frame[columns] if columns else frame


def _exit_filter(text: str) -> list[dict]:
    """The canonical exit rule named by ``--exit`` (``null``: the signal exit alone)."""
    from core.exits import canonical_exit_rule

    rule = _json_arg(text, "--exit", '{"type": "stop_loss", "pct": 0.05}')
    try:
        return canonical_exit_rule(rule)
    except HindsightError as exc:
        raise ValidationError(f"--exit {_clip(text)}: {exc}") from None


SCOPE_EXAMPLE = '{"window": {"start": "2016-01-01", "end": "2019-12-31"}}'


def _scope_filter(ctx: _Context, text: str) -> str:
    """The scope named by ``--scope``: ``default``, ``all``, a scope hash, or JSON of scope
    fields (the others from the default scope), checked before the store is read."""
    from core.scope import ALL_SCOPES

    text = text.strip()
    if text in ("default", ALL_SCOPES):
        return text
    if not text.startswith("{"):
        if len(text) == 16 and all(c in "0123456789abcdef" for c in text):
            return text
        raise ValidationError(
            f"--scope {_clip(text)} is not 'default', 'all', a scope hash (16 hex digits, see "
            f"the scope_hash column) or JSON of scope fields. Example: --scope '{SCOPE_EXAMPLE}'."
        )
    fields = _json_arg(text, "--scope", SCOPE_EXAMPLE)
    if not isinstance(fields, dict):
        raise ValidationError(f"--scope must be a JSON object of scope fields, got {_clip(text)}."
                              f" Example: --scope '{SCOPE_EXAMPLE}'.")
    try:
        return ctx.store("r").scope_hash(fields)
    except HindsightError as exc:
        raise ValidationError(f"--scope {_clip(text)}: {exc}") from None


def _cmd_query(ctx: _Context, args: argparse.Namespace) -> int:
    frame = _query_frame(ctx, args)
    if args.json:
        _print_json(_records(frame))
    else:
        _print_frame(frame)
        print(f"({len(frame)} row{'s' if len(frame) != 1 else ''})")
    return EXIT_OK


def _cmd_show(ctx: _Context, args: argparse.Namespace) -> int:
    from core.details import load_details

    details = load_details(ctx.store("r"), args.id, None if args.no_recompute else ctx.provider)
    equity = details.get("equity")
    trades = details.get("trades")
    if args.json:
        out = {k: v for k, v in details.items() if k not in ("equity", "trades")}
        out["trades"] = _records(trades)
        out["equity"] = (
            None if equity is None
            else [[_iso(t), jsonable(float(v))] for t, v in equity.items()]
        )
        _print_json(out)
        return EXIT_OK
    from core.details import stored_metrics

    for key in ("backtest_id", "symbol", "strategy", "params", "exit_rule", "scope",
                "scope_hash", "start", "end", "costs", "settings", "data_fingerprint",
                "engine_version", "created_at", "note", "tags"):
        if key in details:
            value = jsonable(details[key])
            text = json.dumps(value) if isinstance(value, (dict, list)) else value
            print(f"{key:>17}: {text}")
        if key == "strategy":
            print(f"{'definition':>17}: {_definition_text(details)}")
    _print_metrics(stored_metrics(details))
    if equity is None:
        print(f"\nequity: not available ({details.get('equity_reason', 'not stored')})")
    else:
        print(f"\nequity: {len(equity)} points, final {float(equity.iloc[-1]):,.2f}"
              f" ({details.get('equity_source', 'stored')})")
    print(f"\ntrades ({0 if trades is None else len(trades)}):")
    _print_frame(trades)
    return EXIT_OK


def _definition_text(details: dict[str, Any]) -> str:
    """The rule definition a backtest ran, and whether it is still the strategy's current one."""
    from core.strategies import current_definition

    ran = details.get("definition") or ""
    current = current_definition(details["strategy"])
    if current is None:
        return f"{ran or 'built-in'} (strategy no longer registered)"
    if ran == current:
        return f"{ran} (current)" if ran else "built-in"
    return f"{ran or 'built-in'} (an older definition; the current one is {current or 'built-in'})"


def _cmd_export(ctx: _Context, args: argparse.Namespace) -> int:
    frame = _query_frame(ctx, args)
    out = args.out or f"backtests.{args.format}"
    if args.format == "csv":
        if out == "-":
            frame.to_csv(sys.stdout, index=False)
            return EXIT_OK
        frame.to_csv(out, index=False)
    else:
        if out == "-":
            raise ValidationError("Parquet cannot be written to stdout; give --out FILE.")
        frame.to_parquet(out, index=False)
    print(f"exported {len(frame)} rows to {out}", file=sys.stderr)
    return EXIT_OK


def _cmd_compact(ctx: _Context, args: argparse.Namespace) -> int:
    result = ctx.store("a").compact()
    _print_json(result) if args.json else print(f"compacted: {jsonable(result)}")
    return EXIT_OK


def _cmd_verify(ctx: _Context, args: argparse.Namespace) -> int:
    report = ctx.store("r").verify()
    ok = bool(report.get("ok", True)) if isinstance(report, dict) else bool(report)
    if args.json:
        _print_json(report)
    else:
        print(f"verify: {'ok' if ok else 'PROBLEMS FOUND'}")
        if isinstance(report, dict):
            for key, value in report.items():
                print(f"  {key}: {jsonable(value)}")
    return EXIT_OK if ok else EXIT_FAILED


# ---------------------------------------------------------------------------------------------
# refresh / scan
# ---------------------------------------------------------------------------------------------


def _cmd_refresh(ctx: _Context, args: argparse.Namespace) -> int:
    """The nightly refresh; exit 1 with one line when another refresh holds the store's lock."""
    from core.refresh import RefreshRunningError, refresh

    try:
        report = refresh(
            ctx.store("a"), ctx.provider, symbols=_symbols_arg(args.symbols) or None,
            update_prices=not args.no_prices, progress=not args.no_progress and not args.json,
            wait=args.wait,
        )
    except RefreshRunningError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        _print_json(report.to_dict())
        return EXIT_OK
    for line in report.lines():
        print(line)
    return EXIT_OK


def _cmd_scan(ctx: _Context, args: argparse.Namespace) -> int:
    from core.scanner import add_backtest_stats, scan

    params = _json_arg(args.params, "--params", '{"period": 14}') or {}
    exit_rule = _json_arg(args.exit, "--exit", '{"type": "stop_loss", "pct": 0.05}')
    signals = scan(ctx.provider, args.strategy, params, exit_rule, args.lookback,
                   symbols=_symbols_arg(args.symbols) or None)
    _report_skipped(signals.attrs.get("skipped", []))
    if not args.no_stats:
        from core.errors import StoreError

        from core.scope import default_scope

        try:
            signals = add_backtest_stats(signals, ctx.store("r"),
                                         scope=default_scope(ctx.settings))
        except StoreError as exc:  # no store yet: the signals are still worth showing
            print(f"note: no stored stats joined ({exc})", file=sys.stderr)
    if args.json:
        _print_json(_records(signals))
    else:
        _print_frame(signals)
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# strategies
# ---------------------------------------------------------------------------------------------


def _cmd_strategies(ctx: _Context, args: argparse.Namespace) -> int:
    """List every strategy with its params and source, or check strategy files."""
    from core.strategies import list_strategies, strategy_problems

    if args.action == "check":
        return _check_strategy_files(args.files, args.json)
    if args.files:
        raise ValidationError(f"Unexpected {args.files[0]!r}. Use: strategies [check [FILE ...]].")
    strategies = [_strategy_record(s) for s in list_strategies()]
    problems = [{"path": p.path, "error": p.error} for p in strategy_problems()]
    if args.json:
        _print_json({"strategies": strategies, "problems": problems})
        return EXIT_OK
    for record in strategies:
        where = ("built-in" if record["source"] == "built-in"
                 else f"{record['direction']}, {record['source']}")
        print(f"{record['name']} ({where}): {record['title']}")
        for p in record["params"]:
            print(f"    {p['name']}: {p['kind']} = {p['default']}{_param_range(p)}")
    for problem in problems:
        print(f"not loaded: {problem['error']}")
    return EXIT_OK


def _strategy_record(strategy) -> dict[str, Any]:
    """A strategy as plain data: identity, params, source and (rules) definition hash."""
    return {
        "name": strategy.name, "title": strategy.title, "direction": strategy.direction,
        "source": strategy.source, "definition_hash": strategy.definition_hash,
        "params": [{"name": p.name, "kind": p.kind_name, "default": p.default, "low": p.low,
                    "high": p.high, "choices": list(p.choices)} for p in strategy.params],
    }


def _param_range(p: dict[str, Any]) -> str:
    if p["choices"]:
        return f" (one of {', '.join(map(str, p['choices']))})"
    if p["low"] is None and p["high"] is None:
        return ""
    low = "" if p["low"] is None else f"{p['low']:g}"
    high = "" if p["high"] is None else f"{p['high']:g}"
    return f" ({low}..{high})"


def _check_strategy_files(files: list[str], as_json: bool) -> int:
    """Check the given files (default: every file of the strategies folder); exit 1 on errors."""
    from core.rule_files import check_file
    from core.strategies import list_strategies, strategy_problems

    if not files:
        paths = [s.source for s in list_strategies() if s.source != "built-in"]
        paths += [p.path for p in strategy_problems()]
    else:
        paths = files
    results = []
    for path in sorted(paths):
        try:
            strategy = check_file(path, list_strategies())
            results.append({"path": path, "ok": True, "name": strategy.name,
                            "definition_hash": strategy.definition_hash})
        except HindsightError as exc:
            results.append({"path": path, "ok": False, "error": str(exc)})
    if as_json:
        _print_json(results)
    elif not results:
        print("no strategy files found")
    for result in [] if as_json else results:
        if result["ok"]:
            print(f"ok: {result['path']} ({result['name']}, definition {result['definition_hash']})")
        else:
            print(f"error: {' '.join(result['error'].split())}")
    return EXIT_OK if all(r["ok"] for r in results) else EXIT_FAILED


# ---------------------------------------------------------------------------------------------
# parser
# ---------------------------------------------------------------------------------------------


class _RemovedWfStore(argparse.Action):
    """``--wf-store`` is gone: walk-forward windows live in the main store."""

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error("--wf-store was removed: walk-forward windows are stored in the main store "
                     "(--store), each under its own window. Drop the option; a walkforward.zarr "
                     "beside the store is imported into it once.")


def _add_strategy_args(p: argparse.ArgumentParser, with_params: bool = True) -> None:
    p.add_argument("--strategy", required=True, help="strategy name, e.g. rsi_meanrev")
    if with_params:
        p.add_argument("--params", help='JSON object, e.g. \'{"period": 14}\' (defaults fill in)')


def _add_data_args(p: argparse.ArgumentParser) -> None:
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--symbol", help="symbol from the configured data source")
    source.add_argument("--csv", metavar="FILE", help="any OHLCV CSV with a date column")
    p.add_argument("--start", help="first date (YYYY-MM-DD) when loading --symbol")
    p.add_argument("--end", help="last date (YYYY-MM-DD) when loading --symbol")


def _add_query_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--symbols", help="only these symbols (comma-separated)")
    p.add_argument("--strategy", help="only this strategy")
    p.add_argument("--exit", help='only this exit rule (JSON), e.g. \'{"type": "stop_loss", '
                                  '"pct": 0.05}\'; null: the signal exit alone')
    p.add_argument("--where", help="filter, e.g. \"strategy == 'rsi_meanrev' and win_rate > 0.5\"")
    p.add_argument("--order-by", help="column; descending: --order-by -column")
    p.add_argument("--limit", type=int, help="at most this many rows")
    p.add_argument("--columns", help="comma-separated columns to show")
    p.add_argument("--history", action="store_true",
                   help="every stored version of each key, not only the latest")
    p.add_argument("--scope", default="default",
                   help="default (the data source's full history, no costs), all (every scope), "
                        "a scope hash, or JSON of scope fields, e.g. "
                        "'{\"window\": {\"start\": \"2016-01-01\", \"end\": \"2019-12-31\"}}'")


def _add_global_args(p: argparse.ArgumentParser, default: Any) -> None:
    p.add_argument("--store", default=default,
                   help="backtest store path or URL (default from settings)")
    p.add_argument("--data-source", choices=("demo", "folder", "yahoo"), default=default,
                   help="price data source (default from settings)")


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of every command (kept import-light)."""
    parser = argparse.ArgumentParser(
        prog="python -m core",
        description="Hindsight: run, store and look up backtests.",
    )
    _add_global_args(parser, default=None)
    common = argparse.ArgumentParser(add_help=False)
    _add_global_args(common, default=argparse.SUPPRESS)  # also accepted after the command
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, parents=[common])

    p = command("run", help="run one backtest, print metrics and trades, store it")
    _add_strategy_args(p)
    p.add_argument("--exit", help='exit rule JSON, e.g. \'{"type": "stop_loss", "pct": 0.05}\'')
    _add_data_args(p)
    p.add_argument("--costs", help='JSON, e.g. \'{"commission": 0.001, "slippage_bps": 5}\'')
    p.add_argument("--capital", type=float, default=100_000.0, help="initial capital")
    p.add_argument("--whole-shares", action="store_true", help="buy whole units only")
    p.add_argument("--no-stop-on-entry-bar", action="store_true",
                   help="check stops from the bar after entry (default: on the entry bar too)")
    p.add_argument("--json", action="store_true", help='print {"metrics": ..., "trades": [...]}')
    p.add_argument("--no-store", action="store_true", help="do not store the result")
    p.set_defaults(handler=_cmd_run)

    p = command("sweep", help="grid or random sweep over params x symbols x exit rules")
    _add_strategy_args(p, with_params=False)
    p.add_argument("--grid", required=True,
                   help='JSON: param -> list or {"start","stop","step"} (stop inclusive)')
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--symbols", help="comma-separated symbols")
    group.add_argument("--all-symbols", action="store_true", help="every symbol of the source")
    p.add_argument("--exit", action="append",
                   help="exit rule JSON; repeat for several rules (each is a sweep axis value)")
    p.add_argument("--force", action="store_true", help="recompute cells already stored")
    p.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://host:8786")
    p.add_argument("--workers", type=int, help="local worker processes (default: CPU count)")
    p.add_argument("--max-tries", type=int, help="sample this many param combinations at random")
    p.add_argument("--seed", type=int, default=0, help="random seed for --max-tries")
    p.add_argument("--max-cells", type=int, help="refuse grids larger than this (default: settings)")
    p.add_argument("--batch-size", type=int, default=20_000, help="cells per store write")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_sweep)

    p = command("walkforward", help="walk-forward optimisation on one symbol")
    _add_strategy_args(p, with_params=False)
    p.add_argument("--grid", required=True, help="JSON param ranges, as for sweep")
    p.add_argument("--exit", action="append", help="exit rule JSON; repeat to optimise over several")
    _add_data_args(p)
    p.add_argument("--in-sample", type=int, required=True, help="in-sample window, bars")
    p.add_argument("--out-of-sample", type=int, required=True, help="out-of-sample window, bars")
    p.add_argument("--step", type=int, help="bars between windows (default: out-of-sample)")
    p.add_argument("--anchored", action="store_true", help="in-sample always starts at bar 0")
    p.add_argument("--metric", default="sharpe_ratio", help="metric to maximise in-sample")
    p.add_argument("--min-trades", type=int, default=1, help="in-sample winner needs this many")
    p.add_argument("--wf-store", action=_RemovedWfStore, help=argparse.SUPPRESS)
    p.add_argument("--no-store", action="store_true")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_walkforward)

    p = command("walkforwards", help="list stored walk-forwards, or show one by its id")
    p.add_argument("id", nargs="?", help="a walk-forward id (wf...) to show its windows")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_walkforwards)

    p = command("universe", help="one configuration across every stored symbol")
    _add_strategy_args(p)
    p.add_argument("--exit", help="exit rule JSON")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_universe)

    p = command("query", help="list stored backtests (table or --json)")
    _add_query_args(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_query)

    p = command("show", help="one stored backtest: settings, metrics, trades")
    p.add_argument("id", help="backtest id")
    p.add_argument("--no-recompute", action="store_true",
                   help="do not recompute an equity curve that was not stored")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_show)

    p = command("export", help="write stored backtests to CSV or Parquet")
    p.add_argument("--format", choices=("csv", "parquet"), required=True)
    p.add_argument("--out", help="output file ('-' = stdout for csv)")
    _add_query_args(p)
    p.set_defaults(handler=_cmd_export)

    p = command("refresh", help="update prices, re-run stored configs whose data changed")
    p.add_argument("--symbols", help="only these symbols (comma-separated)")
    p.add_argument("--no-prices", action="store_true", help="do not update the price cache first")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="while another refresh runs, wait up to this long for it (default: exit 1)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_refresh)

    p = command("compact", help="merge store segments (safe while readers are open)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_compact)

    p = command("verify", help="check every stored checksum; exit 1 if damage is found")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_verify)

    p = command("scan", help="today's signals with the stored stats of that config")
    _add_strategy_args(p)
    p.add_argument("--exit", help="exit rule JSON (names the stored configuration)")
    p.add_argument("--symbols", help="comma-separated symbols (default: all)")
    p.add_argument("--lookback", type=int, default=1, help="signal on one of the last N bars")
    p.add_argument("--no-stats", action="store_true", help="do not join stored backtest stats")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_scan)

    p = command("strategies", help="list strategies (built-in and rule files); check files")
    p.add_argument("action", nargs="?", choices=("check",),
                   help="check: validate strategy files (default: the strategies folder)")
    p.add_argument("files", nargs="*", metavar="FILE", help="strategy TOML files to check")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_strategies)
    return parser


def _join_descending_order(argv: Sequence[str]) -> list[str]:
    """``--order-by -col`` -> ``--order-by=-col`` (argparse would read ``-col`` as an option)."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] == "--order-by" and arg.startswith("-") and len(arg) > 1:
            out[-1] = f"--order-by={arg}"
        else:
            out.append(arg)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the process exit code (0 ok, 1 problems found, 2 bad input)."""
    parser = build_parser()
    try:
        args = parser.parse_args(_join_descending_order(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # argparse already printed usage and the reason
        return int(exc.code or 0)
    ctx = _Context(args)
    try:
        return args.handler(ctx, args)
    except HindsightError as exc:
        return _bad_input(str(exc))
    except (ValueError, OverflowError) as exc:  # bad input caught below the core's own checks
        return _bad_input(_input_message(exc))
    except BrokenPipeError:  # `... | head` closed the pipe: not an error
        return EXIT_OK
    except OSError as exc:  # a path given on the command line cannot be read or written
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}. Check the path.", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _bad_input(message: str) -> int:
    """Print ``error: <message>`` as one line on stderr; the exit code for bad input."""
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _input_message(exc: ValueError | OverflowError) -> str:
    """What to tell the user about a ValueError/OverflowError raised by their input."""
    pandas_errors = sys.modules.get("pandas.errors")
    if pandas_errors is not None and isinstance(exc, pandas_errors.OutOfBoundsDatetime):
        from core.data.validate import DATE_RANGE

        return f"a date is out of range ({exc}). Use dates from {DATE_RANGE}."
    if isinstance(exc, OverflowError):
        return f"a number is too large ({exc}). Use smaller values."
    return f"invalid input: {exc}. Check the values given on the command line."
