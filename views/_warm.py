"""Warm a server process: what every first page and first backtest would otherwise wait for.

A fresh process pays once for importing pandas, zarr, altair and numba with the app's own
modules, for the compiled kernels and for Altair's first charts (its schema validator compiles
what each kind of chart needs). ``python serve.py`` (what ``make run`` starts) calls
``prepare()`` before Streamlit's server answers (the imports, the default strategy's first
backtest and the Details page's charts of it: a server that says it is up is ready for a first
page and a first run), then ``start()``: one daemon
thread loads every other strategy's kernels. ``app.py`` calls ``start()`` too, for a plain
``streamlit run app.py`` (then all of it runs in the background from the first page). Each
step runs once per process; a failure is logged and the app works, only slower to its first
answer.
"""
from __future__ import annotations

import functools
import importlib
import logging
import threading

THREAD_NAME = "hindsight-warm-up"
#: What the pages import, heaviest first (the Details page's needs lead: deep links open it).
#: The pages' own modules are left to the first page: they declare Streamlit caches, which
#: belong to the server's runtime, and they are light once these are loaded (the chart
#: builders, which declare none, come with the first charts).
MODULES = ("pandas", "core.store", "core.data.cached", "core.details", "altair", "core.engine",
           "core.scanner", "core.sweep", "core.walkforward", "core.rule_files")

_started: list[threading.Thread] = []
_done: set[str] = set()
_lock = threading.Lock()


def prepare() -> None:
    """The imports, the first backtest and its charts, here and now."""
    for step in (_imports, _first_backtest, _first_charts):
        _once(step)


def start() -> threading.Thread:
    """The warm-up thread of this process (started on the first call)."""
    with _lock:
        if not _started:
            thread = threading.Thread(target=warm, name=THREAD_NAME, daemon=True)
            thread.start()
            _started.append(thread)
        return _started[0]


def warm() -> None:
    """Every step not done yet: imports, the first backtest, its charts, the kernels."""
    for step in (_imports, _first_backtest, _first_charts, _kernels):
        _once(step)


def _once(step) -> None:
    """Run a step unless it ran before in this process; log a failure and go on."""
    with _lock:
        if step.__name__ in _done:
            return
        _done.add(step.__name__)
    try:
        step()
    except Exception:  # noqa: BLE001 - a failed warm-up only costs a first answer its speed
        logging.getLogger(__name__).warning("Warm-up step %s failed", step.__name__,
                                            exc_info=True)


def _imports() -> None:
    for name in MODULES:
        importlib.import_module(name)


@functools.cache
def _bars():
    """300 business days of a random walk: enough bars for every strategy's defaults."""
    import numpy as np
    import pandas as pd

    index = pd.bdate_range("2020-01-01", periods=300)
    close = 100.0 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 0.01, len(index))))
    return pd.DataFrame({"open": close, "high": close * 1.01, "low": close * 0.99,
                         "close": close, "volume": 1e5}, index=index)


@functools.cache
def _first_result():
    """The default strategy's backtest of the warm-up bars (made once)."""
    from core.engine import run_backtest
    from core.strategies import list_strategies

    return run_backtest(_bars(), list_strategies()[0].name, None, None, symbol="WARMUP")


def _first_backtest() -> None:
    """The default strategy's backtest and an in-memory store write: what a first run needs."""
    from core.store import BacktestStore

    store = BacktestStore("memory://hindsight-warm-up")  # this process's memory only
    store.store_backtest(_first_result())
    store.close()


def _first_charts() -> None:
    """The Details page's four charts of the first backtest, built and validated."""
    from core.strategies import indicator_series
    from views import _charts

    result, bars = _first_result(), _bars()
    held = bars["close"] / bars["close"].iloc[0] * result.initial_capital
    charts = [_charts.equity_panel(result.equity, held, drawdown=True),
              _charts.price_panel(bars, result.trades,
                                  indicator_series(result.strategy, result.params, bars)),
              _charts.monthly_heatmap(result.equity)]
    if len(result.trades):
        charts.append(_charts.trade_histogram(result.trades))
    for chart in charts:
        chart.to_dict()


def _kernels() -> None:
    """Every strategy with every exit rule. The sweep's grid kernels are left out: slow to
    load, they would hold up a backtest clicked meanwhile."""
    from core.engine import run_backtest
    from core.exits import EXIT_RULE_TYPES
    from core.strategies import list_strategies

    bars = _bars()
    rule = [{"type": kind, **{p.name: p.default for p in params}}
            for kind, params in EXIT_RULE_TYPES.items()]
    for strategy in list_strategies():
        for exit_rule in (None, rule):
            run_backtest(bars, strategy.name, None, exit_rule, symbol="WARMUP")
