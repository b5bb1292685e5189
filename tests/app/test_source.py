"""One data source for every page, switched in the sidebar; bad files skipped and listed."""
from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.test_pages import open_page, texts


@pytest.fixture
def folder(env):
    """A folder of three CSV files in the usual layout (MYA, MYB, MYC; four years each)."""
    from core.data.demo import generate_demo_universe

    path = env / "prices"
    path.mkdir()
    for name, bars in zip("ABC", generate_demo_universe(count=3, years=4).values()):
        bars.rename_axis("Date").to_csv(path / f"MY{name}.csv")
    return path


def use_folder(monkeypatch, path) -> None:
    monkeypatch.setenv("HINDSIGHT_DATA_SOURCE", "folder")
    monkeypatch.setenv("HINDSIGHT_DATA_FOLDER", str(path))


def switch_source(at: AppTest, source: str, folder=None) -> AppTest:
    """Pick a source (and folder) in the sidebar's settings panel and click Apply."""
    at.radio(key="settings.source").set_value(source)
    if folder is not None:
        at.text_input(key="settings.folder").set_value(str(folder))
    at.button(key="settings.apply").click().run()
    assert not at.exception, at.exception
    return at


def sidebar_text(at: AppTest) -> str:
    return "\n".join(str(e.value) for e in at.sidebar.caption)


def test_every_symbol_input_follows_the_configured_folder(folder, monkeypatch):
    use_folder(monkeypatch, folder)
    at = open_page()
    assert "3 of 3 symbols from folder" in texts(at.caption)
    at.radio(key="scan.universe.kind").set_value("typed").run()
    assert at.text_area(key="scan.universe.typed").value == "MYA, MYB, MYC"
    at.switch_page("views/manager.py").run()
    assert at.text_input(key="run.symbol").value == "MYA"
    at.radio(key="manager.mode").set_value("sweep").run()
    assert at.text_area(key="sweep.symbols").value == "MYA, MYB, MYC"


def test_the_settings_panel_switches_source_without_a_restart(folder):
    at = open_page("views/manager.py")
    assert at.text_input(key="run.symbol").value == "DEMO01"
    switch_source(at, "folder", folder)
    assert not at.error, texts(at.error)
    assert f"folder {folder}" in sidebar_text(at)
    assert at.text_input(key="run.symbol").value == "MYA"
    at.button(key="run.go").click().run()
    assert not at.error, texts(at.error)
    assert "MYA" in texts(at.success)
    at.switch_page("views/scanner.py").run()
    assert "symbols from folder" in texts(at.caption)
    switch_source(at, "demo")
    assert "synthetic demo data" in sidebar_text(at)
    assert "60 symbols from demo" in texts(at.caption)


def test_a_missing_folder_is_refused_and_the_source_stays(env):
    at = open_page()
    switch_source(at, "folder", env / "nowhere")
    assert "does not exist" in texts(at.error)
    assert "synthetic demo data" in sidebar_text(at)


def test_the_scanner_skips_a_bad_file_and_lists_it(folder, monkeypatch):
    (folder / "BROKEN.csv").write_text("Date,Open,High,Low,Close,Volume\n"
                                       "2024-01-02,10.0,10.5,9.8,10.2,1000\n"
                                       "not a date,10.2,10.6,10.1,10.4,1000\n")
    use_folder(monkeypatch, folder)
    at = open_page()
    at.number_input(key="scan.lookback").set_value(250).run()
    assert not at.exception, at.exception
    assert not at.error, texts(at.error)
    assert "BROKEN" in texts(at.warning)
    assert "3 of 4 symbols from folder" in texts(at.caption)
    skipped = [d.value for d in at.dataframe if "error" in d.value.columns]
    assert skipped and skipped[0]["file"].tolist() == ["BROKEN"]
    assert "not a date" in skipped[0]["error"].iloc[0]


def test_the_scanner_flags_stale_data_of_a_folder_but_not_the_demo(folder, monkeypatch):
    """The generated files end on 2025-12-31, long before today's expected session."""
    at = open_page()
    at.number_input(key="scan.lookback").set_value(250).run()
    assert not at.warning, texts(at.warning)
    assert not at.dataframe[0].value["flag"].str.contains("stale").any()
    use_folder(monkeypatch, folder)
    at.run()
    assert not at.exception, at.exception
    assert "3 of 3 symbol(s) have data older than the last expected session: MYA, MYB, MYC" in (
        texts(at.warning))
    flags = at.dataframe[0].value["flag"]
    assert flags.str.contains("stale data \\(last bar 2025-12-31\\)").all(), flags.tolist()


def test_stale_data_is_named_even_without_a_signal(folder, monkeypatch):
    use_folder(monkeypatch, folder)
    at = open_page()  # lookback 1: no signal on the last bar of these files
    assert "No signal matches" in texts(at.info)
    assert "3 of 3 symbol(s) have data older than the last expected session" in texts(at.warning)


def sweep_on_folder(at: AppTest) -> AppTest:
    """Sweep mode over every symbol of the folder, RSI period 10 and 12 (the signal exit)."""
    at.radio(key="manager.mode").set_value("sweep").run()
    at.number_input(key="sweep.rsi_meanrev.period.start").set_value(10)
    at.number_input(key="sweep.rsi_meanrev.period.stop").set_value(12)
    at.number_input(key="sweep.rsi_meanrev.period.step").set_value(2)
    at.checkbox(key="sweep.all_symbols").check().run()
    (run,) = [b for b in at.button if b.label.startswith("Run sweep")]
    run.click().run()
    assert not at.exception, at.exception
    return at


def test_a_sweep_leaves_out_a_bad_file_and_names_it(folder, monkeypatch, env):
    from tests.app.conftest import open_test_store

    (folder / "BROKEN.csv").write_text("Date,Open,High,Low,Close,Volume\n"
                                       "not a date,10.2,10.6,10.1,10.4,1000\n")
    use_folder(monkeypatch, folder)
    at = sweep_on_folder(open_page("views/manager.py"))
    assert not at.error, texts(at.error)
    assert "Left out 1 symbol(s)" in texts(at.warning) and "BROKEN" in texts(at.warning)
    assert sorted(set(open_test_store(env).query()["symbol"])) == ["MYA", "MYB", "MYC"]


def test_read_outs_of_this_data_source_leave_the_other_out(filled, folder, monkeypatch):
    """The store holds demo runs (DEMO01-03); read-outs on the folder source show its cells."""
    use_folder(monkeypatch, folder)
    at = sweep_on_folder(open_page("views/manager.py"))
    for cells in ("last", "source"):
        at.radio(key="sweep.cells").set_value(cells).run()
        assert not at.exception, at.exception
        assert at.selectbox(key="sweep.hm.symbol").options == ["all (median)", "MYA", "MYB",
                                                                "MYC"], cells
    at.radio(key="sweep.cells").set_value("all").run()
    assert "DEMO01" in at.selectbox(key="sweep.hm.symbol").options
