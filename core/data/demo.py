"""The offline demo universe: synthetic daily bars for ``DEMO01``...``DEMOnn``.

Synthetic demo data, not market data: named ``DEMOnn`` so nobody mistakes a series for a real
ticker. One seed drives everything, so every machine generates the same bars (prices are in
cents). The model, per symbol, all symbols at once (vectorised over symbols, stepping over days):

- regimes (Markov switching): up-trend, down-trend, mean reversion toward the price at the
  start of the regime;
- GARCH(1,1) variance, so quiet and turbulent stretches cluster;
- overnight gaps at the open, occasionally a large jump;
- a few missing days (trading halts): the next bar simply gaps;
- consistent OHLC (low <= open, close <= high) and volume that rises with the size of the move.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np
import pandas as pd

from core.data.provider import Provider
from core.data.validate import BAR_COLUMNS
from core.errors import DataValidationError

DEMO_SEED = 20_240_607
DEMO_END = "2025-12-31"  # fixed, so the universe never depends on today's date
TRADING_DAYS = 252
DEMO_LABEL = "synthetic demo data"


def demo_symbols(count: int) -> list[str]:
    """``DEMO01``...``DEMOnn`` (three digits from 100 symbols on)."""
    width = max(2, len(str(count)))
    return [f"DEMO{i:0{width}d}" for i in range(1, count + 1)]


def generate_demo_universe(count: int = 60, years: int = 12,
                           seed: int = DEMO_SEED) -> dict[str, pd.DataFrame]:
    """``{symbol: bars}`` for ``count`` symbols x ``years`` x 252 business days ending 2025-12-31."""
    if not 1 <= int(count) <= 999:
        raise DataValidationError(f"Demo universe size {count!r} must be between 1 and 999.")
    if not 1 <= int(years) <= 60:
        raise DataValidationError(f"Demo history of {years!r} years must be between 1 and 60.")
    dates = pd.bdate_range(end=DEMO_END, periods=int(years) * TRADING_DAYS).as_unit("ns")
    values, present = _simulate(int(count), len(dates), np.random.default_rng(seed))
    universe = {}
    for i, symbol in enumerate(demo_symbols(int(count))):
        keep = present[i]
        frame = pd.DataFrame(values[i][keep], index=dates[keep], columns=list(BAR_COLUMNS))
        frame.index.name = "date"
        frame.attrs["symbol"] = symbol
        universe[symbol] = frame
    return universe


def _simulate(count: int, days: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Values ``(count, days, 5)`` OHLCV and a ``(count, days)`` mask of bars that exist."""
    S, T = count, days
    daily_var = (rng.uniform(0.15, 0.50, S) / np.sqrt(TRADING_DAYS)) ** 2
    alpha = rng.uniform(0.05, 0.12, S)
    beta = np.minimum(rng.uniform(0.80, 0.92, S), 0.985 - alpha)
    omega = daily_var * (1.0 - alpha - beta)
    trend = rng.uniform(0.0003, 0.0012, S)  # daily drift while trending
    kappa = rng.uniform(0.02, 0.08, S)  # daily pull toward the anchor while mean-reverting
    switch_p = rng.uniform(1 / 250, 1 / 60, S)
    log_close = rng.uniform(np.log(15.0), np.log(400.0), S)
    base_volume = np.exp(rng.uniform(np.log(2e5), np.log(2e7), S))

    z = rng.standard_normal((T, S))
    switch = rng.random((T, S)) < switch_p
    next_regime = rng.choice(3, size=(T, S), p=[0.40, 0.25, 0.35])  # up, down, mean-revert
    jumps = np.where(rng.random((T, S)) < 0.006, rng.standard_normal((T, S)) * 0.05, 0.0)

    regime = rng.choice(3, size=S, p=[0.40, 0.25, 0.35])
    anchor = log_close.copy()
    var = daily_var.copy()
    shock = np.zeros(S)
    closes = np.empty((T, S))
    sds = np.empty((T, S))
    for t in range(T):
        regime = np.where(switch[t], next_regime[t], regime)
        anchor = np.where(switch[t], log_close, anchor)
        var = omega + alpha * shock**2 + beta * var
        sd = np.sqrt(var)
        drift = np.where(regime == 0, trend,
                         np.where(regime == 1, -trend, kappa * (anchor - log_close)))
        shock = sd * z[t]
        log_close = log_close + drift + shock + jumps[t]
        closes[t] = log_close
        sds[t] = sd

    previous = np.vstack([closes[:1] - sds[:1] * z[:1], closes[:-1]])
    log_open = previous + jumps + 0.3 * sds * rng.standard_normal((T, S))
    top = np.maximum(log_open, closes) + 0.6 * sds * np.abs(rng.standard_normal((T, S)))
    bottom = np.minimum(log_open, closes) - 0.6 * sds * np.abs(rng.standard_normal((T, S)))
    prices = [np.maximum(np.round(np.exp(x), 2), 0.01) for x in (log_open, top, bottom, closes)]
    move = np.abs(closes - previous) / np.sqrt(daily_var)
    volume = np.round(base_volume * np.exp(0.25 * rng.standard_normal((T, S))) * (1 + 0.5 * move))
    present = rng.random((T, S)) >= 0.002
    present[0] = True
    values = np.stack([*prices, volume], axis=-1).transpose(1, 0, 2)  # (S, T, 5)
    return np.ascontiguousarray(values), np.ascontiguousarray(present.T)


def universe_checksum(universe: dict[str, pd.DataFrame]) -> str:
    """16-hex digest of symbols, dates and values rounded to cents (machine independent)."""
    digest = hashlib.blake2b(digest_size=8)
    for symbol in sorted(universe):
        bars = universe[symbol]
        digest.update(symbol.encode())
        digest.update(bars.index.as_unit("s").asi8.astype("<i8").tobytes())
        cents = np.rint(bars[list(BAR_COLUMNS)].to_numpy() * 100).astype("<i8")
        digest.update(cents.tobytes())
    return digest.hexdigest()


@lru_cache(maxsize=4)
def _cached_universe(count: int, years: int, seed: int) -> dict[str, pd.DataFrame]:
    return generate_demo_universe(count, years, seed)


class DemoProvider(Provider):
    """The default, offline source: the deterministic synthetic universe."""

    name = "demo"
    label = DEMO_LABEL

    def __init__(self, count: int = 60, years: int = 12, seed: int = DEMO_SEED):
        self.count, self.years, self.seed = int(count), int(years), int(seed)
        self.cache_key = f"demo:{self.count}x{self.years}y:seed{self.seed}"
        self._symbols = demo_symbols(self.count)

    def symbols(self) -> list[str]:
        return list(self._symbols)

    def fetch(self, symbol: str) -> pd.DataFrame:
        return _cached_universe(self.count, self.years, self.seed)[symbol]

    def fetch_all(self) -> dict[str, pd.DataFrame]:
        """The whole universe in one go (it is generated as a whole anyway)."""
        return dict(_cached_universe(self.count, self.years, self.seed))
