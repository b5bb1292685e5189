"""get_provider and the cached demo source: generated once into the cache, named errors."""
from __future__ import annotations

import pandas as pd
import pytest

import core.data.demo as demo_module
from core.canonical import bars_fingerprint, fingerprint_of
from core.config import load_settings
from core.data import get_provider, validate_bars, validate_symbol
from core.data.cached import CachedProvider, make_source
from core.data.demo import DemoProvider
from core.data.folder import FolderProvider
from core.data.yahoo import DEFAULT_WATCHLIST, YahooProvider
from core.errors import DataValidationError, UnknownSymbolError
from core.data.prices import PriceCache


@pytest.fixture
def demo(tmp_path) -> CachedProvider:
    return CachedProvider(DemoProvider(6, 2), PriceCache(tmp_path / "prices.zarr"))


def test_package_exports_resolve_lazily():
    assert validate_bars.__module__ == "core.data.validate"
    assert validate_symbol("AAPL") == "AAPL"
    with pytest.raises(AttributeError):
        import core.data

        core.data.no_such_name  # noqa: B018


def test_demo_is_generated_once_into_the_cache(demo, tmp_path, monkeypatch):
    bars = demo.load_bars("DEMO02")
    assert demo.cache.symbols(demo.cache_key) == [f"DEMO0{i}" for i in range(1, 7)]
    assert bars.attrs["symbol"] == "DEMO02"
    assert bars.attrs["fingerprint"] == bars_fingerprint(bars) == fingerprint_of(bars)
    assert demo.cache.source_meta(demo.cache_key)["label"] == "synthetic demo data"

    def refuse(*args, **kwargs):
        raise AssertionError("the demo universe was generated again")

    monkeypatch.setattr(demo_module, "_cached_universe", refuse)
    again = CachedProvider(DemoProvider(6, 2), PriceCache(tmp_path / "prices.zarr"))
    pd.testing.assert_frame_equal(again.load_bars("DEMO02"), bars)
    assert again.load_bars("DEMO02").attrs["fingerprint"] == bars.attrs["fingerprint"]


def test_cached_bars_equal_the_generated_ones(demo):
    generated = DemoProvider(6, 2).load_bars("DEMO05")
    cached = demo.load_bars("DEMO05")
    pd.testing.assert_frame_equal(cached, generated, check_freq=False)
    assert cached.attrs["fingerprint"] == generated.attrs["fingerprint"]


def test_load_many_keeps_order_and_drops_repeats(demo):
    out = demo.load_many(["DEMO03", "DEMO01", "DEMO03"], start="2025-01-01")
    assert list(out) == ["DEMO03", "DEMO01"]
    assert all(b.index[0] >= pd.Timestamp("2025-01-01") for b in out.values())
    assert all(b.attrs["fingerprint"] == bars_fingerprint(b) for b in out.values())


def test_unknown_symbol_suggests_the_right_one(demo):
    with pytest.raises(UnknownSymbolError, match="'DEMO1'.*Did you mean 'DEMO01'"):
        demo.load_bars("DEMO1")
    with pytest.raises(UnknownSymbolError, match="Did you mean 'DEMO04'"):
        demo.load_bars("demo04")
    with pytest.raises(UnknownSymbolError, match="Unknown symbol 'DEMO99'"):
        demo.load_many(["DEMO01", "DEMO99"])


def test_large_universes_do_not_list_every_symbol(tmp_path):
    provider = DemoProvider(300, 1)
    message = str(pytest.raises(UnknownSymbolError, provider.load_bars, "ZZZZZZZZ").value)
    assert "300 symbols, e.g. DEMO001" in message and "DEMO300" not in message


@pytest.mark.parametrize(
    ("start", "end", "fragment"),
    [
        ("1990-01-01", "1990-12-31", "no bars between 1990-01-01 and 1990-12-31"),
        ("2030-01-01", None, "no bars between 2030-01-01 and the end"),
        ("2025-06-01", "2025-01-01", "is after end"),
        ("not a date", None, "is not a date"),
    ],
)
def test_date_ranges_without_bars_are_explained(demo, start, end, fragment):
    with pytest.raises(DataValidationError) as info:
        demo.load_bars("DEMO01", start, end)
    assert str(info.value).startswith("DEMO01:") and fragment in str(info.value)


def test_a_weekend_range_has_no_bars(demo):
    with pytest.raises(DataValidationError, match="covers"):
        demo.load_bars("DEMO01", "2025-06-07", "2025-06-08")


def test_get_provider_builds_each_source(tmp_path):
    base = {"price_cache": str(tmp_path / "p.zarr")}
    demo = get_provider(load_settings(tmp_path / "none.toml", demo_symbols=4, **base))
    assert isinstance(demo.source, DemoProvider) and demo.symbols()[-1] == "DEMO04"
    assert get_provider(load_settings(tmp_path / "none.toml", demo_symbols=4, **base)) is demo
    folder = get_provider(load_settings(tmp_path / "none.toml", data_source="folder",
                                        data_folder=str(tmp_path), **base))
    assert isinstance(folder.source, FolderProvider) and folder.source.folder == tmp_path
    yahoo = get_provider(load_settings(tmp_path / "none.toml", data_source="yahoo", **base))
    assert isinstance(yahoo.source, YahooProvider)
    assert yahoo.symbols() == sorted(DEFAULT_WATCHLIST)
    assert demo.cache is folder.cache is yahoo.cache  # one cache per path in a process


@pytest.mark.parametrize("text", ["SPY, QQQ", "SPY;QQQ", "['SPY', 'QQQ']", " SPY QQQ "])
def test_watchlist_setting_forms(tmp_path, text):
    settings = load_settings(tmp_path / "none.toml", data_source="yahoo", watchlist=text)
    assert make_source(settings).symbols() == ["QQQ", "SPY"]


def test_watchlist_from_config_file_and_environment(tmp_path, monkeypatch):
    config = tmp_path / "config.toml"
    config.write_text('data_source = "yahoo"\nwatchlist = ["MSFT", "KO"]\n')
    assert make_source(load_settings(config)).symbols() == ["KO", "MSFT"]
    monkeypatch.setenv("HINDSIGHT_WATCHLIST", "IBM")
    assert make_source(load_settings(config)).symbols() == ["IBM"]


def test_bad_watchlist_entry_is_refused(tmp_path):
    settings = load_settings(tmp_path / "none.toml", data_source="yahoo", watchlist="SPY,../x")
    with pytest.raises(DataValidationError, match="'../x'"):
        make_source(settings)


def test_refreshing_the_demo_writes_nothing(demo):
    demo.load_bars("DEMO01")
    version = demo.cache.manifest()["version"]
    assert demo.refresh() == {f"DEMO0{i}": 0 for i in range(1, 7)}
    assert demo.cache.manifest()["version"] == version


def test_threads_loading_at_once_generate_the_demo_once(tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    calls = []
    original = demo_module.generate_demo_universe

    def counted(*args):
        calls.append(args)
        return original(*args)

    monkeypatch.setattr(demo_module, "generate_demo_universe", counted)
    demo_module._cached_universe.cache_clear()
    provider = CachedProvider(DemoProvider(4, 1, seed=99), PriceCache(tmp_path / "p.zarr"))
    with ThreadPoolExecutor(4) as pool:
        loaded = list(pool.map(provider.load_bars, ["DEMO01", "DEMO02", "DEMO03", "DEMO04"]))
    assert len(calls) == 1
    assert provider.cache.manifest()["version"] == 1  # one commit
    assert [b.attrs["symbol"] for b in loaded] == ["DEMO01", "DEMO02", "DEMO03", "DEMO04"]


def test_get_provider_without_settings_reads_the_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no config.toml here
    monkeypatch.setenv("HINDSIGHT_DATA_SOURCE", "folder")
    monkeypatch.setenv("HINDSIGHT_DATA_FOLDER", str(tmp_path / "files"))
    monkeypatch.setenv("HINDSIGHT_PRICE_CACHE", str(tmp_path / "env.zarr"))
    provider = get_provider()
    assert provider.name == "folder" and provider.source.folder == tmp_path / "files"
    assert provider.cache.path == (tmp_path / "env.zarr").absolute()
