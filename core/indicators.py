"""Technical indicators over plain float64 arrays (numpy in, numpy out).

Each indicator returns an array as long as its input, NaN before the first bar where it is
defined (``first_valid`` says which bar that is). Recursive indicators run in numba kernels
(``_nb`` suffix, cached on disk) compiled on first use, so importing this module (and the
strategy registry built on it) does not import numba; conventions are pinned in docs/engine.md:

- SMA: plain rolling mean of the last ``p`` values, defined from bar ``p - 1``.
- EMA: alpha = 2 / (p + 1), seeded with the SMA of the first ``p`` values (TA-Lib), from ``p - 1``.
- RSI: Wilder's smoothing seeded with the simple mean of the first ``p`` gains and losses
  (TA-Lib), defined from bar ``p``; 100 when the average loss is 0, 50 when both are 0.
- Bollinger: SMA(p) +/- k x population standard deviation (ddof 0) of the same window.
- Donchian: highest high / lowest low of the ``p`` bars *before* bar t, defined from bar ``p``.
- ATR: Wilder's average of the true range, seeded with the mean of TR[1..p], defined from ``p``.
- ROC: ``100 x (x[t] / x[t-p] - 1)`` (TA-Lib ROC), NaN where ``x[t-p]`` is 0; from bar ``p``.
- Highest / lowest: max / min of the last ``p`` values *including* bar t (TA-Lib MAX / MIN),
  defined from bar ``p - 1`` (Donchian, by contrast, looks only at the bars before t).
- Shift: ``x[t-p]``, defined from bar ``p``.
- MACD: EMA(fast) - EMA(slow), both as above, defined from bar ``max(fast, slow) - 1``; its
  signal line is the EMA(signal) of the MACD line seeded with the SMA of its first ``signal``
  values, defined ``signal - 1`` bars later.

A key whose first item is not a string names a *derived* series (e.g. a rule expression from
``core.rules``): an object with ``compute(open, high, low, close, volume)`` and
``first_valid()``.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from functools import wraps

import numpy as np

#: Indicator keys understood by ``compute_series``: name -> number of integer/float arguments.
SERIES_KINDS: dict[str, int] = {
    "close": 0,
    "sma": 1,
    "ema": 1,
    "rsi": 1,
    "bb_upper": 2,
    "bb_lower": 2,
    "dc_high": 1,
    "dc_low": 1,
    "atr": 1,
}


_KERNELS: dict[str, Callable] = {}  # name -> plain function of each numba kernel below
_DISPATCHERS: dict[str, Callable] = {}  # name -> its numba dispatcher, once compiled
_BINDING = threading.Lock()


def kernel(fn: Callable) -> Callable:
    """Declare ``fn`` a numba kernel without importing numba: the first call of any kernel
    imports numba and makes every kernel's dispatcher (``_dispatchers``)."""
    _KERNELS[fn.__name__] = fn

    @wraps(fn)
    def first_call(*args):
        return _dispatchers()[fn.__name__](*args)

    return first_call


def _dispatchers() -> dict[str, Callable]:
    """Every kernel as ``numba.njit(cache=True, nogil=True)`` of it, made once and bound to its
    module name, so kernels calling kernels (``rolling_std_nb`` -> ``sma_nb``) resolve to
    dispatchers when numba compiles them, and later calls skip ``first_call``."""
    with _BINDING:
        if not _DISPATCHERS:
            from numba import njit

            _DISPATCHERS.update({name: njit(cache=True, nogil=True)(fn)
                                 for name, fn in _KERNELS.items()})
            globals().update(_DISPATCHERS)
    return _DISPATCHERS


@kernel
def sma_nb(x, p):
    out = np.full(x.shape[0], np.nan)
    total = 0.0
    for i in range(x.shape[0]):
        total += x[i]
        if i >= p:
            total -= x[i - p]
        if i >= p - 1:
            out[i] = total / p
    return out


@kernel
def ema_nb(x, p):
    n = x.shape[0]
    out = np.full(n, np.nan)
    if n < p:
        return out
    alpha = 2.0 / (p + 1.0)
    seed = 0.0
    for i in range(p):
        seed += x[i]
    value = seed / p
    out[p - 1] = value
    for i in range(p, n):
        value = value + alpha * (x[i] - value)
        out[i] = value
    return out


@kernel
def _rsi_value(avg_gain, avg_loss):
    total = avg_gain + avg_loss
    if total == 0.0:
        return 50.0
    return 100.0 * avg_gain / total


@kernel
def rsi_nb(close, p):
    n = close.shape[0]
    out = np.full(n, np.nan)
    if n <= p:
        return out
    gain = 0.0
    loss = 0.0
    for i in range(1, p + 1):
        change = close[i] - close[i - 1]
        if change > 0:
            gain += change
        else:
            loss -= change
    avg_gain = gain / p
    avg_loss = loss / p
    out[p] = _rsi_value(avg_gain, avg_loss)
    for i in range(p + 1, n):
        change = close[i] - close[i - 1]
        up = change if change > 0 else 0.0
        down = -change if change < 0 else 0.0
        avg_gain = (avg_gain * (p - 1) + up) / p
        avg_loss = (avg_loss * (p - 1) + down) / p
        out[i] = _rsi_value(avg_gain, avg_loss)
    return out


@kernel
def rolling_std_nb(x, p):
    """Population standard deviation (ddof 0) of each window of ``p`` values (two-pass)."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    mean = sma_nb(x, p)
    for i in range(p - 1, n):
        acc = 0.0
        for j in range(i - p + 1, i + 1):
            d = x[j] - mean[i]
            acc += d * d
        out[i] = np.sqrt(acc / p)
    return out


@kernel
def donchian_high_nb(high, p):
    n = high.shape[0]
    out = np.full(n, np.nan)
    for i in range(p, n):
        best = high[i - p]
        for j in range(i - p + 1, i):
            if high[j] > best:
                best = high[j]
        out[i] = best
    return out


@kernel
def donchian_low_nb(low, p):
    """Lowest low of the ``p`` bars before bar i: the high channel of ``-low``, negated
    (negation is exact, so this equals a direct running minimum)."""
    return -donchian_high_nb(-low, p)


@kernel
def atr_nb(high, low, close, p):
    n = close.shape[0]
    out = np.full(n, np.nan)
    if n <= p:
        return out
    total = 0.0
    value = 0.0
    for i in range(1, n):
        tr = max(high[i] - low[i], abs(high[i] - close[i - 1]), abs(low[i] - close[i - 1]))
        if i < p:
            total += tr
        elif i == p:
            value = (total + tr) / p
            out[i] = value
        else:
            value = (value * (p - 1) + tr) / p
            out[i] = value
    return out


@kernel
def rolling_max_nb(x, p):
    """Maximum of the ``p`` values ending at bar i (bar i included)."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    for i in range(p - 1, n):
        best = x[i - p + 1]
        for j in range(i - p + 2, i + 1):
            if x[j] > best:
                best = x[j]
        out[i] = best
    return out


def _f64(x) -> np.ndarray:
    """Contiguous writable float64 (read-only views would need their own compiled kernels)."""
    array = np.ascontiguousarray(x, dtype=np.float64)
    return array if array.flags.writeable else array.copy()


def sma(x, period: int) -> np.ndarray:
    """Simple moving average; NaN before bar ``period - 1``."""
    return sma_nb(_f64(x), int(period))


def ema(x, period: int) -> np.ndarray:
    """Exponential moving average seeded with the first SMA; NaN before bar ``period - 1``."""
    return ema_nb(_f64(x), int(period))


def rsi(close, period: int) -> np.ndarray:
    """Wilder's RSI (TA-Lib seeding); NaN before bar ``period``."""
    return rsi_nb(_f64(close), int(period))


def bollinger(close, period: int, num_std: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(middle, upper, lower) bands: SMA(period) +/- num_std x population std."""
    close = _f64(close)
    middle = sma_nb(close, int(period))
    width = float(num_std) * rolling_std_nb(close, int(period))
    return middle, middle + width, middle - width


def donchian(high, low, period: int) -> tuple[np.ndarray, np.ndarray]:
    """(upper, lower): highest high and lowest low of the ``period`` bars before each bar."""
    return donchian_high_nb(_f64(high), int(period)), donchian_low_nb(_f64(low), int(period))


def atr(high, low, close, period: int) -> np.ndarray:
    """Wilder's average true range; NaN before bar ``period``."""
    return atr_nb(_f64(high), _f64(low), _f64(close), int(period))


def roc(x, period: int) -> np.ndarray:
    """Rate of change in percent over ``period`` bars; NaN before bar ``period`` and where the
    earlier value is 0."""
    x, p = _f64(x), int(period)
    out = np.full(x.shape[0], np.nan)
    if p < x.shape[0]:
        earlier, now = x[:-p], x[p:]
        with np.errstate(divide="ignore", invalid="ignore"):
            out[p:] = np.where(earlier != 0.0, (now / earlier - 1.0) * 100.0, np.nan)
    return out


def highest(x, period: int) -> np.ndarray:
    """Highest of the last ``period`` values, bar t included; NaN before bar ``period - 1``."""
    return rolling_max_nb(_f64(x), int(period))


def lowest(x, period: int) -> np.ndarray:
    """Lowest of the last ``period`` values, bar t included (negated ``highest`` of ``-x``)."""
    return -rolling_max_nb(-_f64(x), int(period))


def shift(x, period: int) -> np.ndarray:
    """The value ``period`` bars earlier; NaN for the first ``period`` bars."""
    x, p = _f64(x), int(period)
    out = np.full(x.shape[0], np.nan)
    if p < x.shape[0]:
        out[p:] = x[:x.shape[0] - p]
    return out


def macd(x, fast: int, slow: int) -> np.ndarray:
    """MACD line EMA(fast) - EMA(slow); NaN before bar ``max(fast, slow) - 1``."""
    x = _f64(x)
    return ema_nb(x, int(fast)) - ema_nb(x, int(slow))


def macd_signal(x, fast: int, slow: int, signal: int) -> np.ndarray:
    """EMA(signal) of the MACD line, seeded at the line's first bar; NaN before bar
    ``max(fast, slow) + signal - 2``."""
    line = macd(x, fast, slow)
    start = max(int(fast), int(slow)) - 1
    out = np.full(line.shape[0], np.nan)
    if start < line.shape[0]:
        out[start:] = ema_nb(line[start:], int(signal))
    return out


def first_valid(key: tuple) -> int:
    """Index of the first bar where the series named by ``key`` is defined."""
    kind = key[0]
    if not isinstance(kind, str):
        return kind.first_valid()
    if kind == "close":
        return 0
    period = int(key[1])
    if kind in ("sma", "ema", "bb_upper", "bb_lower"):
        return period - 1
    return period  # rsi, dc_high, dc_low, atr


def compute_series(key: tuple[Hashable, ...], open_, high, low, close, volume=None
                   ) -> np.ndarray:
    """The series named by ``key`` (e.g. ``("rsi", 14)``, ``("bb_lower", 20, 2.0)``);
    ``volume`` is read by derived series only (a rule using ``volume``)."""
    kind = key[0]
    if not isinstance(kind, str):
        return kind.compute(open_, high, low, close, volume)
    if kind == "close":
        return _f64(close)
    if kind == "sma":
        return sma(close, key[1])
    if kind == "ema":
        return ema(close, key[1])
    if kind == "rsi":
        return rsi(close, key[1])
    if kind in ("bb_upper", "bb_lower"):
        _, upper, lower = bollinger(close, key[1], key[2])
        return upper if kind == "bb_upper" else lower
    if kind == "dc_high":
        return donchian_high_nb(_f64(high), int(key[1]))
    if kind == "dc_low":
        return donchian_low_nb(_f64(low), int(key[1]))
    if kind == "atr":
        return atr(high, low, close, key[1])
    raise KeyError(f"Unknown indicator series {key!r}; known kinds: {', '.join(SERIES_KINDS)}.")
