"""Altair chart builders for the pages: pandas in, ``alt.Chart`` out (no Streamlit calls).

Every time-series chart shares an x-axis interval selection bound to the scales, so the user
can zoom (wheel) and pan (drag); double-click resets.
"""
from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

HEIGHT = 260
UP, DOWN, NEUTRAL = "#2e7d5b", "#b3412f", "#5b6b78"
STRATEGY, BENCHMARK = "#2f6f8f", "#a9b4bd"


def _zoom() -> alt.Parameter:
    return alt.selection_interval(bind="scales", encodings=["x"])


def equity_chart(equity: pd.Series, benchmark: pd.Series | None = None,
                 label: str = "strategy") -> alt.Chart:
    """Equity curve, with buy-and-hold of the same symbol scaled to the same start capital."""
    frames = [series_frame(equity, label)]
    if benchmark is not None and len(benchmark):
        frames.append(series_frame(benchmark, "buy and hold"))
    colors = alt.Scale(domain=[label, "buy and hold"], range=[STRATEGY, BENCHMARK])
    return overlay_chart(pd.concat(frames, ignore_index=True), title="Equity", colors=colors)


def overlay_chart(long: pd.DataFrame, title: str, colors: alt.Scale | None = None) -> alt.Chart:
    """Lines of several equity curves (columns date, value, series) on one zoomable chart."""
    scale = colors if colors is not None else alt.Scale(scheme="tableau10")
    return (
        alt.Chart(long, title=title, height=HEIGHT)
        .mark_line(strokeWidth=1.4)
        .encode(
            x=alt.X("date:T", title=None),
            y=alt.Y("value:Q", title="equity", scale=alt.Scale(zero=False)),
            color=alt.Color("series:N", title=None, scale=scale,
                            legend=alt.Legend(orient="top", direction="horizontal")),
            tooltip=[alt.Tooltip("date:T"), "series:N", alt.Tooltip("value:Q", format=",.0f")],
        )
        .add_params(_zoom())
    )


def series_frame(series: pd.Series, name: str) -> pd.DataFrame:
    return pd.DataFrame({"date": series.index, "value": series.to_numpy(dtype=float),
                         "series": name})


def drawdown_series(equity: pd.Series) -> pd.Series:
    """Drawdown from the running peak as a fraction (0 at new highs, negative below)."""
    values = equity.to_numpy(dtype=float)
    peak = np.maximum.accumulate(values)
    return pd.Series(values / peak - 1.0, index=equity.index)


def drawdown_chart(equity: pd.Series) -> alt.Chart:
    """Underwater chart: how far below its previous peak the equity was, over time."""
    frame = pd.DataFrame({"date": equity.index, "drawdown": drawdown_series(equity).to_numpy()})
    return (
        alt.Chart(frame, title="Drawdown", height=HEIGHT * 0.6)
        .mark_area(color=DOWN, opacity=0.55, line={"color": DOWN, "strokeWidth": 0.8})
        .encode(
            x=alt.X("date:T", title=None),
            y=alt.Y("drawdown:Q", title="drawdown", axis=alt.Axis(format="%")),
            tooltip=[alt.Tooltip("date:T"), alt.Tooltip("drawdown:Q", format=".1%")],
        )
        .add_params(_zoom())
    )


def price_chart(bars: pd.DataFrame, trades: pd.DataFrame) -> alt.LayerChart:
    """Close price with entry (up triangle) and exit (down triangle) markers from the trade log."""
    price = pd.DataFrame({"date": bars.index, "close": bars["close"].to_numpy(dtype=float)})
    base = (
        alt.Chart(price, height=HEIGHT)
        .mark_line(color=NEUTRAL, strokeWidth=1)
        .encode(x=alt.X("date:T", title=None),
                y=alt.Y("close:Q", title="close", scale=alt.Scale(zero=False)),
                tooltip=[alt.Tooltip("date:T"), alt.Tooltip("close:Q", format=",.2f")])
        .add_params(_zoom())
    )
    markers = trade_markers(trades)
    if markers.empty:
        return alt.layer(base, title="Price and trades")
    points = (
        alt.Chart(markers)
        .mark_point(filled=True, size=70, opacity=0.9)
        .encode(
            x="date:T", y="price:Q",
            shape=alt.Shape("side:N", scale=alt.Scale(domain=["entry", "exit"],
                                                      range=["triangle-up", "triangle-down"]),
                            title=None),
            color=alt.Color("side:N", scale=alt.Scale(domain=["entry", "exit"],
                                                      range=[UP, DOWN]), title=None),
            tooltip=[alt.Tooltip("date:T"), "side:N", alt.Tooltip("price:Q", format=",.2f"),
                     alt.Tooltip("return:Q", format=".2%"), "exit_reason:N"],
        )
    )
    return alt.layer(base, points, title="Price and trades")


def trade_markers(trades: pd.DataFrame) -> pd.DataFrame:
    """One row per entry and per exit: date, price, side, the trade's return and exit reason."""
    if trades is None or trades.empty:
        return pd.DataFrame(columns=["date", "price", "side", "return", "exit_reason"])
    common = {"return": trades["return"].to_numpy(dtype=float),
              "exit_reason": trades["exit_reason"].astype(str).to_numpy()}
    entries = pd.DataFrame({"date": trades["entry_time"].to_numpy(),
                            "price": trades["entry_price"].to_numpy(dtype=float),
                            "side": "entry", **common})
    exits = pd.DataFrame({"date": trades["exit_time"].to_numpy(),
                          "price": trades["exit_price"].to_numpy(dtype=float),
                          "side": "exit", **common})
    return pd.concat([entries, exits], ignore_index=True).dropna(subset=["date"])


def monthly_returns(equity: pd.Series) -> pd.DataFrame:
    """Month-by-month return of the equity curve: columns year, month (1-12), return."""
    month_end = equity.groupby(equity.index.to_period("M")).last()
    previous = month_end.shift(1)
    previous.iloc[0] = equity.iloc[0]
    returns = month_end / previous - 1.0
    return pd.DataFrame({"year": returns.index.year, "month": returns.index.month,
                         "return": returns.to_numpy(dtype=float)})


def monthly_heatmap(equity: pd.Series) -> alt.Chart:
    """Calendar heatmap: one cell per month, coloured by that month's return."""
    frame = monthly_returns(equity)
    limit = float(np.nanmax(np.abs(frame["return"]))) if len(frame) else 0.0
    limit = limit or 0.01
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    frame = frame.assign(month_name=[months[m - 1] for m in frame["month"]])
    return (
        alt.Chart(frame, title="Monthly returns",
                  height=max(120, 22 * frame["year"].nunique()))
        .mark_rect()
        .encode(
            x=alt.X("month_name:O", sort=months, title=None),
            y=alt.Y("year:O", title=None),
            color=alt.Color("return:Q", title="return",
                            scale=alt.Scale(scheme="redyellowgreen", domain=[-limit, limit]),
                            legend=alt.Legend(format="%")),
            tooltip=["year:O", "month_name:O", alt.Tooltip("return:Q", format=".2%")],
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
            y=alt.Y("count():Q", title="trades"),
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
