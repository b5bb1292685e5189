"""A deliberately simple, slow bar-by-bar backtester written from docs/engine.md.

It shares no code with ``core`` (plain Python lists and ``math``, its own indicators and its
own metrics) so that agreement with the numba engine means the conventions were implemented
the same way twice, not that one function was called twice.
"""
from __future__ import annotations

import math
import statistics


# --- indicators -----------------------------------------------------------------------------

def sma(x, p):
    return [sum(x[i - p + 1:i + 1]) / p if i >= p - 1 else math.nan for i in range(len(x))]


def ema(x, p):
    out = [math.nan] * len(x)
    if len(x) < p:
        return out
    value = sum(x[:p]) / p
    out[p - 1] = value
    alpha = 2.0 / (p + 1.0)
    for i in range(p, len(x)):
        value = value + alpha * (x[i] - value)
        out[i] = value
    return out


def rsi(close, p):
    out = [math.nan] * len(close)
    if len(close) <= p:
        return out
    changes = [close[i] - close[i - 1] for i in range(1, len(close))]
    gains = [max(ch, 0.0) for ch in changes]
    losses = [max(-ch, 0.0) for ch in changes]
    avg_gain = sum(gains[:p]) / p
    avg_loss = sum(losses[:p]) / p
    for i in range(p, len(close)):
        if i > p:
            avg_gain = (avg_gain * (p - 1) + gains[i - 1]) / p
            avg_loss = (avg_loss * (p - 1) + losses[i - 1]) / p
        total = avg_gain + avg_loss
        out[i] = 50.0 if total == 0 else 100.0 * avg_gain / total
    return out


def bollinger_band(close, p, k):
    """mean + k x std (k < 0 gives the lower band)."""
    out = [math.nan] * len(close)
    for i in range(p - 1, len(close)):
        window = close[i - p + 1:i + 1]
        mean = sum(window) / p
        std = math.sqrt(sum((v - mean) ** 2 for v in window) / p)
        out[i] = mean + k * std
    return out


def prior_max(x, p):
    return [max(x[i - p:i]) if i >= p else math.nan for i in range(len(x))]


def prior_min(x, p):
    return [min(x[i - p:i]) if i >= p else math.nan for i in range(len(x))]


def atr(high, low, close, p):
    out = [math.nan] * len(close)
    if len(close) <= p:
        return out
    tr = [math.nan] + [
        max(high[i] - low[i], abs(high[i] - close[i - 1]), abs(low[i] - close[i - 1]))
        for i in range(1, len(close))
    ]
    value = sum(tr[1:p + 1]) / p
    out[p] = value
    for i in range(p + 1, len(close)):
        value = (value * (p - 1) + tr[i]) / p
        out[i] = value
    return out


# --- signals --------------------------------------------------------------------------------

def crosses_below(a, b, t):
    """a crosses below b at t: a[t-1] >= b[t-1] and a[t] < b[t] (b may be a number)."""
    b0, b1 = (b, b) if isinstance(b, (int, float)) else (b[t - 1], b[t])
    return t >= 1 and a[t - 1] >= b0 and a[t] < b1


def crosses_above(a, b, t):
    b0, b1 = (b, b) if isinstance(b, (int, float)) else (b[t - 1], b[t])
    return t >= 1 and a[t - 1] <= b0 and a[t] > b1


def minus(a, b):
    return [x - y for x, y in zip(a, b)]


def signals(strategy, params, o, h, low, c):
    """(entries, exits) lists of bools, decided on each bar's close (direction as given)."""
    if params.get("direction", "long") == "short":
        return short_signals(strategy, params, h, low, c)
    n = len(c)
    if strategy == "rsi_meanrev":
        r = rsi(c, params["period"])
        entries = [crosses_below(r, params["oversold"], t) for t in range(n)]
        exits = [crosses_above(r, params["overbought"], t) for t in range(n)]
    elif strategy == "ma_crossover":
        avg = sma if params["kind"] == "sma" else ema
        spread = minus(avg(c, params["fast"]), avg(c, params["slow"]))
        entries = [crosses_above(spread, 0.0, t) for t in range(n)]
        exits = [crosses_below(spread, 0.0, t) for t in range(n)]
    elif strategy == "bollinger_reversion":
        below = minus(c, bollinger_band(c, params["period"], -params["num_std"]))
        above = minus(c, sma(c, params["period"]))
        entries = [crosses_below(below, 0.0, t) for t in range(n)]
        exits = [crosses_above(above, 0.0, t) for t in range(n)]
    elif strategy == "breakout":
        up = minus(c, prior_max(h, params["period"]))
        down = minus(c, prior_min(low, params["exit_period"]))
        entries = [crosses_above(up, 0.0, t) for t in range(n)]
        exits = [crosses_below(down, 0.0, t) for t in range(n)]
    else:
        raise KeyError(strategy)
    return entries, exits


def short_signals(strategy, params, h, low, c):
    """The mirrored rules of docs/engine.md: (short entries, buy-back exits)."""
    n = len(c)
    if strategy == "rsi_meanrev":
        r = rsi(c, params["period"])
        entries = [crosses_above(r, params["overbought"], t) for t in range(n)]
        exits = [crosses_below(r, params["oversold"], t) for t in range(n)]
    elif strategy == "ma_crossover":
        avg = sma if params["kind"] == "sma" else ema
        fast, slow = avg(c, params["fast"]), avg(c, params["slow"])
        entries = [crosses_below(fast, slow, t) for t in range(n)]
        exits = [crosses_above(fast, slow, t) for t in range(n)]
    elif strategy == "bollinger_reversion":
        upper = bollinger_band(c, params["period"], params["num_std"])
        middle = sma(c, params["period"])
        entries = [crosses_above(c, upper, t) for t in range(n)]
        exits = [crosses_below(c, middle, t) for t in range(n)]
    elif strategy == "breakout":
        down = minus(c, prior_min(low, params["period"]))
        up = minus(c, prior_max(h, params["exit_period"]))
        entries = [crosses_below(down, 0.0, t) for t in range(n)]
        exits = [crosses_above(up, 0.0, t) for t in range(n)]
    else:
        raise KeyError(strategy)
    return entries, exits


# --- the simulation -------------------------------------------------------------------------

def simulate(o, h, low, c, entries, exits, exit_rule, costs=None, initial=100_000.0,
             whole_shares=False, stop_on_entry_bar=True, direction="long", periods_per_year=252.0):
    """Bar-by-bar loop. Returns (equity list, trades list of dicts with bar indices).

    ``periods_per_year`` spreads a short's annual borrow rate over the bars of a year.
    """
    if direction == "short":
        return simulate_short(o, h, low, c, entries, exits, exit_rule, costs, initial,
                              whole_shares, stop_on_entry_bar, periods_per_year)
    costs = costs or {}
    commission = costs.get("commission", 0.0)
    fixed = costs.get("fixed", 0.0)
    slip = costs.get("slippage_bps", 0.0) / 10_000
    rules = {r["type"]: r for r in exit_rule}
    signal_on = "signal" in rules and rules["signal"].get("enabled", True)
    atr_series = None
    if "atr_stop" in rules:
        atr_series = atr(h, low, c, rules["atr_stop"]["period"])
    n = len(c)
    cash = initial
    pos = None
    order = None  # "buy" or "sell", to fill at the next open
    equity, trades = [], []

    def close_trade(t, raw_price, reason, held):
        nonlocal cash, pos
        price = raw_price * (1 - slip)
        proceeds = pos["units"] * price * (1 - commission) - fixed
        cash += proceeds
        pnl = proceeds - pos["cost"]
        trades.append({
            "entry_bar": pos["bar"], "exit_bar": t, "entry_price": pos["price"],
            "exit_price": price, "units": pos["units"], "pnl": pnl,
            "return": pnl / pos["cost"], "bars_held": held, "exit_reason": reason,
        })
        pos = None

    for t in range(n):
        if order == "buy":
            price = o[t] * (1 + slip)
            units = (cash - fixed) / (price * (1 + commission))
            if whole_shares:
                units = math.floor(units)
            if units > 0:
                cost = units * price * (1 + commission) + fixed
                cash -= cost
                pos = {"bar": t, "price": price, "units": units, "cost": cost, "peak": price}
                if "atr_stop" in rules:
                    pos["atr_level"] = price - rules["atr_stop"]["mult"] * atr_series[t - 1]
        if pos is not None:
            exit_at = _exit_for_bar(t, pos, order, rules, o, h, low, stop_on_entry_bar)
            if exit_at is not None:
                close_trade(t, exit_at[0], exit_at[1], t - pos["bar"])
            else:
                pos["peak"] = max(pos["peak"], h[t])
        order = None
        if pos is not None and t == n - 1:
            close_trade(t, c[t], "end_of_data", t - pos["bar"] + 1)
        equity.append(cash + (pos["units"] * c[t] if pos is not None else 0.0))
        if t < n - 1:
            if pos is None and entries[t]:
                order = "buy"
            elif pos is not None and signal_on and exits[t]:
                order = "sell"
    return equity, trades


def _exit_for_bar(t, pos, order, rules, o, h, low, stop_on_entry_bar):
    """(raw price, reason) of an exit during bar t, or None."""
    if order == "sell":
        return o[t], "signal"
    if "time_stop" in rules and t - pos["bar"] >= rules["time_stop"]["bars"]:
        return o[t], "time_stop"
    if t == pos["bar"] and not stop_on_entry_bar:
        return None
    stops = []
    if "stop_loss" in rules:
        stops.append((pos["price"] * (1 - rules["stop_loss"]["pct"]), "stop_loss"))
    if "trailing_stop" in rules:
        stops.append((pos["peak"] * (1 - rules["trailing_stop"]["pct"]), "trailing_stop"))
    if "atr_stop" in rules and not math.isnan(pos["atr_level"]):
        stops.append((pos["atr_level"], "atr_stop"))
    stop = None
    for level, reason in stops:  # the highest level wins; the earlier one on a tie
        if stop is None or level > stop[0]:
            stop = (level, reason)
    target = None
    if "take_profit" in rules:
        target = pos["price"] * (1 + rules["take_profit"]["pct"])
    after_entry = t > pos["bar"]
    if after_entry and stop is not None and o[t] <= stop[0]:
        return min(o[t], stop[0]), stop[1]
    if after_entry and target is not None and o[t] >= target:
        return max(o[t], target), "take_profit"
    if stop is not None and low[t] <= stop[0]:
        return stop[0], stop[1]
    if target is not None and h[t] >= target:
        return target, "take_profit"
    return None


def simulate_short(o, h, low, c, entries, exits, exit_rule, costs, initial, whole_shares,
                   stop_on_entry_bar, periods_per_year):
    """The short side, written from the short conventions of docs/engine.md.

    Cash holds what is not at stake in the position: entry costs, borrow fees and, at the exit,
    units x (entry - exit) minus the exit costs go through it; equity at a close is
    cash + units x (entry - close).
    """
    costs = costs or {}
    commission = costs.get("commission", 0.0)
    fixed = costs.get("fixed", 0.0)
    slip = costs.get("slippage_bps", 0.0) / 10_000
    bar_borrow = costs.get("borrow_rate", 0.0) / periods_per_year
    rules = {r["type"]: r for r in exit_rule}
    signal_on = "signal" in rules and rules["signal"].get("enabled", True)
    atr_series = atr(h, low, c, rules["atr_stop"]["period"]) if "atr_stop" in rules else None
    n = len(c)
    cash = initial
    pos = None
    order = None  # "sell short" or "buy back", at the next open
    equity, trades = [], []

    def close_trade(t, raw_price, reason, held):
        nonlocal cash, pos
        price = raw_price * (1 + slip)  # buying back: slippage raises the price
        exit_costs = pos["units"] * price * commission + fixed
        cash += pos["units"] * (pos["price"] - price) - exit_costs
        pnl = (pos["units"] * (pos["price"] - price) - pos["entry_costs"] - exit_costs
               - pos["borrow"])
        trades.append({
            "entry_bar": pos["bar"], "exit_bar": t, "entry_price": pos["price"],
            "exit_price": price, "units": pos["units"], "pnl": pnl,
            "return": pnl / pos["committed"], "bars_held": held, "exit_reason": reason,
        })
        pos = None

    for t in range(n):
        if order == "sell short":
            price = o[t] * (1 - slip)
            units = (cash - fixed) / (price * (1 + commission))
            if whole_shares:
                units = math.floor(units)
            if units > 0:
                entry_costs = units * price * commission + fixed
                cash -= entry_costs
                pos = {"bar": t, "price": price, "units": units, "entry_costs": entry_costs,
                       "committed": units * price * (1 + commission) + fixed,
                       "trough": price, "borrow": 0.0}
                if "atr_stop" in rules:
                    pos["atr_level"] = price + rules["atr_stop"]["mult"] * atr_series[t - 1]
        if pos is not None:
            exit_at = _short_exit_for_bar(t, pos, order, rules, o, h, low, stop_on_entry_bar)
            if exit_at is not None:
                close_trade(t, exit_at[0], exit_at[1], t - pos["bar"])
            else:
                pos["trough"] = min(pos["trough"], low[t])
        order = None
        if pos is not None:  # held through this close: a bar of borrow
            fee = pos["units"] * c[t] * bar_borrow
            cash -= fee
            pos["borrow"] += fee
            if t == n - 1:
                close_trade(t, c[t], "end_of_data", t - pos["bar"] + 1)
        equity.append(cash + (pos["units"] * (pos["price"] - c[t]) if pos is not None else 0.0))
        if t < n - 1:
            if pos is None and entries[t]:
                order = "sell short"
            elif pos is not None and signal_on and exits[t]:
                order = "buy back"
    return equity, trades


def _short_exit_for_bar(t, pos, order, rules, o, h, low, stop_on_entry_bar):
    """(raw price, reason) of a short's exit during bar t, or None."""
    if order == "buy back":
        return o[t], "signal"
    if "time_stop" in rules and t - pos["bar"] >= rules["time_stop"]["bars"]:
        return o[t], "time_stop"
    if t == pos["bar"] and not stop_on_entry_bar:
        return None
    stops = []
    if "stop_loss" in rules:
        stops.append((pos["price"] * (1 + rules["stop_loss"]["pct"]), "stop_loss"))
    if "trailing_stop" in rules:
        stops.append((pos["trough"] * (1 + rules["trailing_stop"]["pct"]), "trailing_stop"))
    if "atr_stop" in rules and not math.isnan(pos["atr_level"]):
        stops.append((pos["atr_level"], "atr_stop"))
    stop = None
    for level, reason in stops:  # the lowest level wins; the earlier one on a tie
        if stop is None or level < stop[0]:
            stop = (level, reason)
    target = None
    if "take_profit" in rules:
        target = pos["price"] * (1 - rules["take_profit"]["pct"])
    after_entry = t > pos["bar"]
    if after_entry and stop is not None and o[t] >= stop[0]:
        return max(o[t], stop[0]), stop[1]
    if after_entry and target is not None and o[t] <= target:
        return min(o[t], target), "take_profit"
    if stop is not None and h[t] >= stop[0]:
        return stop[0], stop[1]
    if target is not None and low[t] <= target:
        return target, "take_profit"
    return None


# --- metrics --------------------------------------------------------------------------------

def weekday_bars_per_year(index):
    """Bars per year of daily weekday bars by the documented rule: bar intervals per year of
    span (365.25 days) once the span reaches 365 days, else the nominal 252."""
    days = (index[-1] - index[0]).total_seconds() / 86400
    return (len(index) - 1) / (days / 365.25) if days >= 365 else 252.0


def metrics(equity, trades, days, initial, periods_per_year):
    """Every engine metric from the equity list and trade dicts (plain Python)."""
    nan = math.nan
    returns = [equity[i] / equity[i - 1] - 1 for i in range(1, len(equity))]
    trade_returns = [tr["return"] for tr in trades]
    pnls = [tr["pnl"] for tr in trades]
    held = [tr["bars_held"] for tr in trades]
    ratio = equity[-1] / initial
    cagr = ratio ** (365.25 / days) - 1 if days > 0 and ratio > 0 else nan
    sharpe = sortino = nan
    if len(returns) >= 2:
        mean = statistics.fmean(returns)
        std = statistics.stdev(returns)
        if std > 0:
            sharpe = mean / std * math.sqrt(periods_per_year)
        downside = math.sqrt(sum(min(r, 0.0) ** 2 for r in returns) / len(returns))
        if downside > 0:
            sortino = mean / downside * math.sqrt(periods_per_year)
    peak, max_dd = -math.inf, 0.0
    for value in equity:
        peak = max(peak, value)
        max_dd = min(max_dd, value / peak - 1)
    gross_win = sum(p for p in pnls if p > 0)
    gross_loss = -sum(p for p in pnls if p < 0)
    k = len(trades)
    return {
        "num_trades": float(k),
        "win_rate": sum(r > 0 for r in trade_returns) / k if k else nan,
        "total_return": ratio - 1,
        "cagr": cagr,
        "sharpe_ratio": sharpe,
        "sortino_ratio": sortino,
        "max_drawdown": max_dd,
        "calmar_ratio": cagr / -max_dd if max_dd < 0 else nan,
        "expectancy": sum(trade_returns) / k if k else nan,
        "profit_factor": gross_win / gross_loss if k and gross_loss > 0 else nan,
        "exposure": sum(held) / len(equity),
        "avg_bars_held": sum(held) / k if k else nan,
        "best_trade": max(trade_returns) if k else nan,
        "worst_trade": min(trade_returns) if k else nan,
    }


def backtest(bars, strategy, params, exit_rule, costs=None, initial=100_000.0,
             whole_shares=False, stop_on_entry_bar=True, periods_per_year=None):
    """Full reference run over a bars DataFrame: (metrics, trades, equity).

    ``periods_per_year`` defaults to ``weekday_bars_per_year`` (the test bars are weekdays).
    """
    if periods_per_year is None:
        periods_per_year = weekday_bars_per_year(bars.index)
    o, h, low, c = (bars[col].tolist() for col in ("open", "high", "low", "close"))
    entries, exits = signals(strategy, params, o, h, low, c)
    equity, trades = simulate(o, h, low, c, entries, exits, exit_rule, costs, initial,
                              whole_shares, stop_on_entry_bar, params.get("direction", "long"),
                              periods_per_year)
    days = (bars.index[-1] - bars.index[0]).total_seconds() / 86400
    return metrics(equity, trades, days, initial, periods_per_year), trades, equity
