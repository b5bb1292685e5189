"""Altair chart builders for the pages: pandas in, ``alt.Chart`` out (no Streamlit calls).

Every time-series chart shares an x-axis interval selection bound to the scales, so the user
can zoom (wheel) and pan (drag); double-click resets. Time axes always show the year (and the
time of day for intraday bars) and are drawn in UTC, so a bar's date never shifts with the
browser's time zone. Long series are thinned for drawing (:func:`downsample_positions` keeps
every bucket's low and high), which keeps the page fast without hiding a peak or a trough.
The pure helpers (formats, thinning, frames) are plain functions so they can be tested alone.
"""
from __future__ import annotations

import math

import altair as alt
import numpy as np
import pandas as pd

HEIGHT = 260
UP, DOWN, NEUTRAL = "#2e7d5b", "#b3412f", "#5b6b78"
STRATEGY, BENCHMARK = "#2f6f8f", "#a9b4bd"
#: Indicator lines: calm colours apart from the price's grey and the trades' green and red.
INDICATOR_COLORS = ("#c98a2e", "#7866b0", "#3b98a8", "#c0607d", "#8a7a48", "#5e8f40")
LEVEL = "#8a949c"  # an oscillator's dashed level lines and their labels
OSCILLATOR_HEIGHT = 120
BENCHMARK_LABEL = "buy and hold"
MAX_POINTS = 500  # points drawn per line: each bucket's low and high, ~5 px per bucket
ROW_HEIGHT = 20  # pixels per year in the monthly heatmap (its height is the cells', not the axes')
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


# --- pure helpers: formats, thinning ------------------------------------------------------------

def is_intraday(index: pd.DatetimeIndex) -> bool:
    """True when any bar carries a time of day (hourly, minute bars)."""
    if len(index) == 0:
        return False
    stamps = pd.DatetimeIndex(index)
    return bool((stamps != stamps.normalize()).any())


def time_format(index: pd.DatetimeIndex) -> dict[str, str]:
    """Vega-Lite dynamic time format for an axis: every label names its year.

    Vega picks tick intervals from the visible span (years over a decade, months over a year,
    days or hours when zoomed in); each level's format keeps the year, and intraday data adds
    the time of day.
    """
    day = "%d %b %Y"
    clock = f"{day} %H:%M" if is_intraday(index) else day
    return {"year": "%Y", "quarter": "%b %Y", "month": "%b %Y", "week": day, "date": day,
            "hours": clock, "minutes": clock, "seconds": f"{clock}:%S",
            "milliseconds": f"{clock}:%S"}


def tooltip_time_format(index: pd.DatetimeIndex) -> str:
    """strftime pattern of one bar's time in a tooltip: month, day or minute, by frequency."""
    if is_intraday(index):
        return "%Y-%m-%d %H:%M"
    stamps = pd.DatetimeIndex(index)
    if len(stamps) > 2 and pd.Series(stamps).diff().median() >= pd.Timedelta(days=27):
        return "%b %Y"
    return "%Y-%m-%d"


def price_decimals(values, most: int = 8, significant: int = 7) -> int:
    """Decimals the prices are quoted with (EURUSD 5, most stocks 2), read off the data.

    The fewest decimals that write every value exactly, capped so that about ``significant``
    digits show (float noise in adjusted prices does not ask for 8 decimals).
    """
    data = np.asarray(values, dtype=float)
    data = data[np.isfinite(data)]
    if data.size == 0:
        return 2
    sample = data[:: max(1, data.size // 2000)]
    exact = most
    for decimals in range(most + 1):
        scaled = sample * 10.0 ** decimals
        if np.all(np.abs(scaled - np.round(scaled)) <= 1e-6 * np.maximum(1.0, np.abs(scaled))):
            exact = decimals
            break
    magnitude = np.median(np.abs(sample))
    digits = math.floor(math.log10(magnitude)) + 1 if magnitude > 0 else 1
    return int(min(exact, max(2, significant - digits)))


def money_format(largest: float) -> str:
    """d3 format of an equity axis: whole units, or 1.5M / 2.3G style once numbers get long."""
    return ",.0f" if abs(largest) < 1e7 else ".3~s"


def percent_format(depth: float) -> str:
    """d3 percent format with as many decimals as a drawdown of ``depth`` needs."""
    depth = abs(float(depth))
    if depth >= 0.1:
        return ".0%"
    if depth >= 0.01:
        return ".1%"
    return ".2%"


def downsample_positions(values, max_points: int = MAX_POINTS) -> np.ndarray:
    """Positions of a long series worth drawing: first, last and each bucket's min and max.

    Never more than ``max_points`` positions (at least 2: the first and the last), ascending; a
    series this short is kept whole. The points between the first and the last are cut into
    ``(max_points - 2) // 2`` buckets of ``ceil(inner / buckets)`` consecutive points (the last
    bucket may be shorter) and each bucket's lowest and highest are kept. NaNs are never picked
    as a low or high unless a bucket holds nothing else.
    """
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, not {max_points}")
    data = np.asarray(values, dtype=float)
    n = data.size
    if n <= max_points:
        return np.arange(n)
    buckets = (max_points - 2) // 2
    if buckets == 0:
        return np.array([0, n - 1])
    inner = data[1:-1]
    size = -(-inner.size // buckets)
    pad = size * buckets - inner.size
    low = np.concatenate([np.where(np.isnan(inner), np.inf, inner), np.full(pad, np.inf)])
    high = np.concatenate([np.where(np.isnan(inner), -np.inf, inner), np.full(pad, -np.inf)])
    offsets = np.arange(buckets) * size + 1
    lows = low.reshape(buckets, size).argmin(axis=1) + offsets
    highs = high.reshape(buckets, size).argmax(axis=1) + offsets
    keep = np.unique(np.concatenate([[0, n - 1], lows, highs]))
    return keep[keep < n]


def thin(series: pd.Series, max_points: int = MAX_POINTS) -> pd.Series:
    """``series`` reduced to :func:`downsample_positions` for drawing."""
    return series.iloc[downsample_positions(series.to_numpy(dtype=float), max_points)]


def naive_index(index) -> pd.DatetimeIndex:
    """Timestamps without a time zone, keeping their wall-clock time (drawn as UTC)."""
    stamps = pd.DatetimeIndex(index)
    return stamps.tz_localize(None) if stamps.tz is not None else stamps


def unique_labels(labels: list[str]) -> list[str]:
    """The labels, with a ``(2)``, ``(3)``... suffix on repeats so no two read the same."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return out


def suggest_log_scale(*curves: pd.Series | None) -> bool:
    """True when the curves span more than 10x (a linear axis would flatten the smaller one)."""
    values = np.concatenate([c.to_numpy(dtype=float) for c in curves if c is not None and len(c)]
                            or [np.array([1.0])])
    values = values[np.isfinite(values)]
    if values.size == 0 or values.min() <= 0:
        return False
    return bool(values.max() / values.min() > 10)


# --- chart pieces -------------------------------------------------------------------------------

def _zoom(name: str | None = None) -> alt.Parameter:
    return alt.selection_interval(bind="scales", encodings=["x"], name=name)


def time_x(index, title: str | None = None) -> alt.X:
    """The x encoding of a time series: UTC scale, labels with the year, formatted by span."""
    return alt.X("date:T", title=title, scale=alt.Scale(type="utc"),
                 axis=alt.Axis(format=time_format(naive_index(index)), labelOverlap=True,
                               labelFlush=True))


def series_frame(series: pd.Series, name: str, max_points: int | None = MAX_POINTS) -> pd.DataFrame:
    """Columns date, value, series of one curve (thinned for drawing unless ``max_points`` is None)."""
    drawn = series if max_points is None else thin(series, max_points)
    return pd.DataFrame({"date": naive_index(drawn.index), "value": drawn.to_numpy(dtype=float),
                         "series": name})


def benchmark_curve(close: pd.Series, equity: pd.Series, capital: float) -> pd.Series:
    """Buy and hold over the equity curve's dates, grown from the same ``capital``."""
    prices = close.reindex(equity.index).ffill().bfill() if len(equity) else close
    prices = prices.dropna()
    if prices.empty or prices.iloc[0] <= 0:
        return prices.iloc[:0]
    return prices / prices.iloc[0] * capital


def equity_chart(equity: pd.Series, benchmark: pd.Series | None = None,
                 label: str = "strategy", log: bool = False) -> alt.Chart:
    """Equity curve next to buy-and-hold of the same symbol grown from the same capital."""
    frames = [series_frame(equity, label)]
    if benchmark is not None and len(benchmark):
        frames.append(series_frame(benchmark, BENCHMARK_LABEL))
    colors = alt.Scale(domain=[label, BENCHMARK_LABEL], range=[STRATEGY, BENCHMARK])
    return overlay_chart(pd.concat(frames, ignore_index=True), title="Equity", colors=colors,
                         log=log)


def overlay_chart(long: pd.DataFrame, title: str, colors: alt.Scale | None = None,
                  log: bool = False, legend: str = "top") -> alt.Chart:
    """Lines of several equity curves (columns date, value, series) on one zoomable chart.

    Legend labels are never cut (``labelLimit=0``): in a row above the chart, or with
    ``legend="bottom"`` one per line under it (for long names).
    """
    scale = colors if colors is not None else alt.Scale(scheme="tableau10")
    positive = bool(len(long)) and float(long["value"].min()) > 0
    y_scale = alt.Scale(type="log") if log and positive else alt.Scale(zero=False)
    largest = float(long["value"].abs().max()) if len(long) else 0.0
    return (
        alt.Chart(long, title=title, height=HEIGHT)
        .mark_line(strokeWidth=1.4)
        .encode(
            x=time_x(long["date"]),
            y=alt.Y("value:Q", title="equity (log)" if log and positive else "equity",
                    scale=y_scale, axis=alt.Axis(format=money_format(largest))),
            color=alt.Color("series:N", title=None, scale=scale,
                            legend=alt.Legend(
                                orient="bottom" if legend == "bottom" else "top",
                                direction="vertical" if legend == "bottom" else "horizontal",
                                labelLimit=0, symbolType="stroke")),
        )
        .add_params(_zoom())
    )


def equity_panel(equity: pd.Series, benchmark: pd.Series | None = None, log: bool = False,
                 drawdown: bool = True) -> alt.Chart | alt.VConcatChart:
    """Equity (with buy and hold) above its drawdown on a shared time axis.

    Zooming or panning the equity moves the drawdown with it. One Vega view instead of two
    draws faster; without ``drawdown`` the equity chart alone.
    """
    top = equity_chart(equity, benchmark, log=log)
    if not drawdown:
        return top
    zoom = _zoom("zoom_equity")
    top = top.copy()
    top.params = alt.Undefined
    bottom = drawdown_chart(equity).copy()
    bottom.params = alt.Undefined
    return alt.vconcat(top.add_params(zoom), bottom, spacing=8).resolve_scale(x="shared")


def drawdown_series(equity: pd.Series) -> pd.Series:
    """Drawdown from the running peak as a fraction (0 at new highs, negative below)."""
    values = equity.to_numpy(dtype=float)
    peak = np.maximum.accumulate(values)
    return pd.Series(values / peak - 1.0, index=equity.index)


def drawdown_chart(equity: pd.Series) -> alt.Chart:
    """Underwater chart: how far below its previous peak the equity was, over time."""
    drawdown = thin(drawdown_series(equity))
    frame = pd.DataFrame({"date": naive_index(drawdown.index), "drawdown": drawdown.to_numpy()})
    depth = float(np.nanmin(frame["drawdown"])) if len(frame) else 0.0
    return (
        alt.Chart(frame, title="Drawdown", height=HEIGHT * 0.6)
        .mark_area(color=DOWN, opacity=0.55, line={"color": DOWN, "strokeWidth": 0.8})
        .encode(
            x=time_x(frame["date"]),
            y=alt.Y("drawdown:Q", title="drawdown", axis=alt.Axis(format=percent_format(depth))),
        )
        .add_params(_zoom())
    )


def price_chart(bars: pd.DataFrame, trades: pd.DataFrame | None, lines: list | None = None,
                colors: dict[str, str] | None = None) -> alt.LayerChart:
    """Close price with entry (up triangle) and exit (down triangle) markers from the trade log.

    Prices show with the decimals the instrument is quoted in; hovering a marker names the
    side, time, price, the trade's return and P&L and why it closed. ``lines`` are price-scale
    indicators (``core.rules.IndicatorSeries``) drawn over the price, named in a legend above.
    """
    base = price_line(bars)
    decimals = price_decimals(bars["close"].to_numpy())
    markers = trade_markers(trades, decimals=decimals, when=tooltip_time_format(bars.index))
    layers = [base]
    if not markers.empty:
        layers.append(trade_points(markers))
    if lines:
        colors = colors or indicator_colors([s.label for s in lines])
        layers.append(indicator_lines(indicator_frame(bars.index, lines), colors, "close"))
    chart = alt.layer(*layers, title="Price and trades")
    return chart.resolve_scale(color="independent", shape="independent") if lines else chart


def trade_points(markers: pd.DataFrame) -> alt.Chart:
    """Entry and exit markers (rows of :func:`trade_markers`) with their hover tooltips.

    Their legend sits above the chart: a legend at the side would widen a chart with panes
    below beyond the page.
    """
    legend = alt.Legend(orient="top", direction="horizontal")
    return (
        alt.Chart(markers)
        .mark_point(filled=True, size=80, opacity=0.9)
        .encode(
            x="date:T", y="price:Q",
            shape=alt.Shape("side:N", scale=alt.Scale(domain=["entry", "exit"],
                                                      range=["triangle-up", "triangle-down"]),
                            title=None, legend=legend),
            color=alt.Color("side:N", scale=alt.Scale(domain=["entry", "exit"], range=[UP, DOWN]),
                            title=None, legend=legend),
            tooltip=[alt.Tooltip("side:N", title="side"), alt.Tooltip("when:N", title="time"),
                     alt.Tooltip("price_text:N", title="price"),
                     alt.Tooltip("return:Q", title="trade return", format="+.2%"),
                     alt.Tooltip("pnl:Q", title="P&L", format="+,.2f"),
                     alt.Tooltip("exit_reason:N", title="exit reason")],
        )
    )


def indicator_colors(labels: list[str]) -> dict[str, str]:
    """One of :data:`INDICATOR_COLORS` per indicator label, in order (repeating after six)."""
    return {label: INDICATOR_COLORS[i % len(INDICATOR_COLORS)] for i, label in enumerate(labels)}


def indicator_frame(dates, series: list, max_points: int = MAX_POINTS) -> pd.DataFrame:
    """Columns date, value, series: each indicator's defined values (no warm-up), thinned."""
    stamps = naive_index(dates)
    return pd.concat([series_frame(pd.Series(s.values, index=stamps).dropna(), s.label, max_points)
                      for s in series], ignore_index=True)


def indicator_lines(frame: pd.DataFrame, colors: dict[str, str], y_title: str | None) -> alt.Chart:
    """Indicator lines (columns date, value, series) with a legend above, labels never cut."""
    labels = list(dict.fromkeys(frame["series"]))
    return (
        alt.Chart(frame)
        .mark_line(strokeWidth=1.2, opacity=0.9)
        .encode(
            x="date:T",
            y=alt.Y("value:Q", title=y_title, scale=alt.Scale(zero=False)),
            color=alt.Color("series:N", title=None,
                            scale=alt.Scale(domain=labels, range=[colors[x] for x in labels]),
                            legend=alt.Legend(orient="top", direction="horizontal",
                                              labelLimit=0, symbolType="stroke")),
        )
    )


def level_frame(series: list) -> pd.DataFrame:
    """Columns value, text: each distinct level of the oscillators, named (``oversold 30``)."""
    rows: dict[float, str] = {}
    for s in series:
        for name, value in s.levels.items():
            number = f"{value:g}"
            rows.setdefault(value, number if name == number else f"{name} {number}")
    return pd.DataFrame({"value": list(rows), "text": list(rows.values())})


def oscillator_chart(dates, series: list, colors: dict[str, str], title: str) -> alt.LayerChart:
    """One pane of oscillators sharing a scale, their levels as labelled dashed lines."""
    lines = indicator_lines(indicator_frame(dates, series), colors, None).encode(x=time_x(dates))
    levels = level_frame(series)
    if levels.empty:
        return alt.layer(lines, title=title, height=OSCILLATOR_HEIGHT)
    rule = alt.Chart(levels).mark_rule(color=LEVEL, strokeDash=[4, 3]).encode(y="value:Q")
    text = rule.mark_text(align="left", baseline="bottom", dx=3, dy=-2, color=LEVEL,
                          fontSize=10).encode(x=alt.value(0), text="text:N")
    return alt.layer(lines, rule, text, title=title, height=OSCILLATOR_HEIGHT)


def price_panel(bars: pd.DataFrame, trades: pd.DataFrame | None, indicators: list | None = None
                ) -> alt.LayerChart | alt.VConcatChart:
    """The price with its trades and price-scale indicators, above one pane per oscillator
    group (MACD with its signal line) on a shared time axis: zooming the price moves them.

    The chart fits the page's width and keeps its heights for the plots (``fit-x``): by
    default Streamlit shrinks a lone chart's plot under its legends and lets a stack of layered
    charts grow past the page by the width of its axes.
    """
    fit_width = alt.AutoSizeParams(type="fit-x", contains="padding")
    indicators = indicators or []
    colors = indicator_colors([s.label for s in indicators])
    top = price_chart(bars, trades, [s for s in indicators if s.pane == "price"], colors)
    groups: dict[str, list] = {}
    for s in indicators:
        if s.pane != "price":
            groups.setdefault(s.group, []).append(s)
    if not groups:
        return top.properties(autosize=fit_width)
    panes = [oscillator_chart(bars.index, members, colors, group)
             for group, members in groups.items()]
    stack = alt.vconcat(top, *panes, spacing=8, autosize=fit_width)
    return stack.resolve_scale(x="shared", color="independent", shape="independent")


def price_line(bars: pd.DataFrame) -> alt.Chart:
    """The close as a thin zoomable line (thinned for drawing): the base of the price charts."""
    close = thin(bars["close"])
    price = pd.DataFrame({"date": naive_index(close.index), "close": close.to_numpy(dtype=float)})
    return (
        alt.Chart(price, height=HEIGHT)
        .mark_line(color=NEUTRAL, strokeWidth=1)
        .encode(x=time_x(bars.index),
                y=alt.Y("close:Q", title="close", scale=alt.Scale(zero=False)))
        .add_params(_zoom())
    )


def trade_markers(trades: pd.DataFrame | None, decimals: int = 2,
                  when: str = "%Y-%m-%d") -> pd.DataFrame:
    """One row per entry and per exit: date, price, side, the trade's return, P&L, exit reason.

    ``when`` and ``price_text`` are the time and price as the tooltip shows them.
    """
    columns = ["date", "price", "side", "return", "pnl", "exit_reason", "when", "price_text"]
    if trades is None or trades.empty:
        return pd.DataFrame(columns=columns)
    pnl = trades["pnl"] if "pnl" in trades else pd.Series(np.nan, index=trades.index)
    common = {"return": trades["return"].to_numpy(dtype=float), "pnl": pnl.to_numpy(dtype=float),
              "exit_reason": trades["exit_reason"].astype(str).to_numpy()}
    sides = []
    for side in ("entry", "exit"):
        stamps = naive_index(pd.to_datetime(trades[f"{side}_time"]))
        prices = trades[f"{side}_price"].to_numpy(dtype=float)
        sides.append(pd.DataFrame({"date": stamps, "price": prices, "side": side, **common}))
    markers = pd.concat(sides, ignore_index=True).dropna(subset=["date"])
    markers["when"] = markers["date"].dt.strftime(when)
    markers["price_text"] = [f"{p:,.{decimals}f}" for p in markers["price"]]
    return markers[columns]


def signal_markers(bars: pd.DataFrame, entries, exits) -> pd.DataFrame:
    """One row per bar where the entry or the exit fires: date, close, side, and the time and
    price as the tooltip shows them."""
    decimals = price_decimals(bars["close"].to_numpy())
    when = tooltip_time_format(bars.index)
    sides = []
    for side, fired in (("entry", entries), ("exit", exits)):
        picked = bars.loc[np.asarray(fired, dtype=bool), "close"]
        sides.append(pd.DataFrame({"date": naive_index(picked.index),
                                   "price": picked.to_numpy(dtype=float), "side": side}))
    markers = pd.concat(sides, ignore_index=True)
    markers["when"] = markers["date"].dt.strftime(when)
    markers["price_text"] = [f"{p:,.{decimals}f}" for p in markers["price"]]
    return markers


def signal_chart(bars: pd.DataFrame, entries, exits) -> alt.LayerChart:
    """Close price with a marker on each bar where the entry (up triangle) or the exit (down
    triangle) fires: a strategy's signals before any backtest (fills follow at the next open)."""
    markers = signal_markers(bars, entries, exits)
    points = (
        alt.Chart(markers)
        .mark_point(filled=True, size=70, opacity=0.9)
        .encode(
            x="date:T", y="price:Q",
            shape=alt.Shape("side:N", scale=alt.Scale(domain=["entry", "exit"],
                                                      range=["triangle-up", "triangle-down"]),
                            title=None),
            color=alt.Color("side:N", scale=alt.Scale(domain=["entry", "exit"], range=[UP, DOWN]),
                            title=None),
            tooltip=[alt.Tooltip("side:N", title="signal"), alt.Tooltip("when:N", title="time"),
                     alt.Tooltip("price_text:N", title="close")],
        )
    )
    return alt.layer(price_line(bars), points, title="Price and signals")


def monthly_returns(equity: pd.Series) -> pd.DataFrame:
    """Month-by-month return of the equity curve: columns year, month (1-12), return."""
    month_end = equity.groupby(equity.index.to_period("M")).last()
    previous = month_end.shift(1)
    previous.iloc[0] = equity.iloc[0]
    returns = month_end / previous - 1.0
    return pd.DataFrame({"year": returns.index.year, "month": returns.index.month,
                         "return": returns.to_numpy(dtype=float)})


def monthly_heatmap(equity: pd.Series) -> alt.Chart:
    """Calendar heatmap: one row per year (every year labelled), one cell per month."""
    frame = monthly_returns(equity)
    limit = float(np.nanmax(np.abs(frame["return"]))) if len(frame) else 0.0
    limit = limit or 0.01
    frame = frame.assign(month_name=[MONTHS[m - 1] for m in frame["month"]],
                         year=frame["year"].astype(str))
    years = sorted(frame["year"].unique())
    return (
        alt.Chart(frame, title="Monthly returns", height=ROW_HEIGHT * len(years),
                  autosize=alt.AutoSizeParams(type="fit-x", contains="padding"))
        .mark_rect()
        .encode(
            x=alt.X("month_name:O", sort=MONTHS, title=None,
                    axis=alt.Axis(labelAngle=0, orient="top", labelOverlap=False)),
            y=alt.Y("year:O", sort=years, title=None,
                    axis=alt.Axis(labelOverlap=False, values=years, labelFontSize=11)),
            color=alt.Color("return:Q", title="return",
                            scale=alt.Scale(scheme="redyellowgreen", domain=[-limit, limit]),
                            legend=alt.Legend(format=".0%")),
            tooltip=[alt.Tooltip("year:O", title="year"),
                     alt.Tooltip("month_name:O", title="month"),
                     alt.Tooltip("return:Q", format="+.2%")],
        )
    )


def trade_histogram(trades: pd.DataFrame) -> alt.Chart:
    """Distribution of per-trade returns, winners and losers coloured apart."""
    frame = pd.DataFrame({"return": trades["return"].to_numpy(dtype=float)})
    frame["outcome"] = np.where(frame["return"] > 0, "win", "loss")
    return (
        alt.Chart(frame, title="Trade returns", height=HEIGHT * 0.8)
        .mark_bar(opacity=0.85)
        .encode(
            x=alt.X("return:Q", bin=alt.Bin(maxbins=40), title="trade return",
                    axis=alt.Axis(format="%")),
            y=alt.Y("count():Q", title="trades", axis=alt.Axis(format="d", tickMinStep=1)),
            color=alt.Color("outcome:N", scale=alt.Scale(domain=["win", "loss"],
                                                         range=[UP, DOWN]), title=None),
            tooltip=[alt.Tooltip("count():Q", title="trades")],
        )
    )


def param_heatmap(cells: pd.DataFrame, x: str, y: str, metric: str) -> alt.LayerChart:
    """Sweep heatmap: ``metric`` over two params (columns x, y, metric), value printed in cells."""
    base = alt.Chart(cells, height=heatmap_height(cells, y)).encode(
        x=alt.X(f"{x}:O", title=x, axis=alt.Axis(labelAngle=0)),
        y=alt.Y(f"{y}:O", title=y, sort="descending"),
    )
    rects = base.mark_rect().encode(
        color=alt.Color(f"{metric}:Q", scale=alt.Scale(scheme="viridis"), title=metric),
        tooltip=[f"{x}:O", f"{y}:O", alt.Tooltip(f"{metric}:Q", format=".3f")],
    )
    labels = base.mark_text(fontSize=11, color="white").encode(
        text=alt.Text(f"{metric}:Q", format=".2f"))
    return alt.layer(rects, labels, title=f"{metric} by {x} and {y}")


def heatmap_height(cells: pd.DataFrame, y: str) -> int:
    """Pixels for a heatmap: one readable row per distinct ``y`` value."""
    return int(max(200, 36 * cells[y].nunique() + 60))
