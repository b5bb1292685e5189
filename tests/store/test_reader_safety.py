"""Readers are never misled: each case found by trying the store as a user would.

(a) reads running while another process compacts see one complete committed state: no short
    or empty table, no false "damaged" error or warning;
(b) a manifest edited by hand (one digit) is refused, never served as a wrong id mapping, and
    verify() also reports overlapping ids and a next id not above every id;
(c) a note or tag that cannot be encoded (a lone surrogate) is refused; every table still reads;
(d) opening a folder that is not a store for writing refuses and writes nothing; an unknown URL
    scheme gives a one-line error naming the supported forms;
(e) deleting the same id twice in one call counts it once.

Only the public API (BacktestStore, open_store, core.errors) is used; the manifest is edited
as a file, as a user or a damaged disk would. This file is also the script of the two
processes of case (a): ``python test_reader_safety.py reader|compactor <plan.json>``.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from core.errors import HindsightError, StoreCorruptionError  # noqa: E402
from core.store import BacktestStore, open_store  # noqa: E402

MANIFEST = "manifest.json"


def snapshot_tree(root: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every file under root (folders listed with b"<dir>")."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            out[str((Path(folder) / name).relative_to(root)) + "/"] = b"<dir>"
        for name in files:
            path = Path(folder) / name
            out[str(path.relative_to(root))] = path.read_bytes()
    return out


def key_of(row) -> tuple:
    return (str(row["symbol"]), str(row["strategy"]), json.loads(row["params"]),
            json.loads(row["exit_rule"]))


# --- (a) reads concurrent with compaction in another process ---------------------------------

KEYS = 40           # distinct keys, each stored VERSIONS times (history)
VERSIONS = 3
COMPACTIONS = 20


def build_history_store(path: Path) -> dict:
    """A store of KEYS keys x VERSIONS versions in many small segments (curves, trades and
    batch rows); returns the plan the two processes share."""
    from factories import make_batch, make_result

    store = BacktestStore(path, mode="r+")
    for version in range(VERSIONS):
        results = [make_result(symbol=f"SYM{k % 8}", params={"period": 5 + k // 8},
                               seed=1000 * version + k, trades=2 + k % 3)
                   for k in range(KEYS // 2)]
        for lo in range(0, len(results), 5):
            store.store_many(results[lo:lo + 5])
        store.store_many(make_batch([f"BAT{k}" for k in range(KEYS // 4)], [7, 9],
                                    exit_rule={"type": "stop_loss", "pct": 0.05},
                                    seed=version))
    latest = store.get_all_stats()
    history = store.get_all_stats(include_history=True)
    old_ids = sorted(set(history["backtest_id"].astype(str)) - set(latest["backtest_id"].astype(str)),
                     key=int)
    assert len(latest) == KEYS and len(old_ids) >= COMPACTIONS
    latest = latest.sort_values("backtest_id", key=lambda s: s.astype(str).astype(int))
    details = {}
    for bid in latest["backtest_id"].astype(str):
        d = store.get_detailed_results(bid)
        if d["equity"] is not None and len(details) < 3:
            details[bid] = {"equity_sum": float(d["equity"].sum()), "points": len(d["equity"]),
                            "trades": len(d["trades"])}
    rows = [key_of(r) for _, r in latest.iterrows()]
    plan = {
        "store": str(path),
        "count": len(latest),
        "ids": [str(b) for b in latest["backtest_id"]],
        "sharpe": [float(x).hex() for x in latest["sharpe_ratio"]],
        "query": {"strategy": "rsi_meanrev", "where": "num_trades >= 1 and rsi_period >= 5"},
        "details": details,
        "keys": [[k[0], k[1], k[2], k[3]] for k in rows[::7]],
        "key_ids": [str(b) for b in latest["backtest_id"]][::7],
        "old_ids": old_ids[:COMPACTIONS],
        "stop_file": str(path.parent / "compactor.done"),
        "ready_file": str(path.parent / "reader.ready"),
    }
    plan["query_rows"] = len(store.query(**plan["query"]))
    assert plan["query_rows"] > 0 and len(details) == 3
    store.close()
    return plan


def check_reads(store, plan: dict, which: int | None = None) -> list[str]:
    """The read APIs (all of them, or only number ``which``); the wrong answers, if any."""
    wrong = []

    def expect(what, got, want):
        if got != want:
            wrong.append(f"{what}: got {got!r:.120}, expected {want!r:.120}")

    def count():
        expect("count()", store.count(), plan["count"])

    def all_stats():
        frame = store.get_all_stats()
        expect("len(get_all_stats())", len(frame), plan["count"])
        if len(frame) == plan["count"]:
            order = np.argsort(frame["backtest_id"].astype(str).astype(np.int64).to_numpy())
            expect("get_all_stats() ids", [str(b) for b in frame["backtest_id"].iloc[order]],
                   plan["ids"])
            expect("get_all_stats() sharpe",
                   [float(x).hex() for x in frame["sharpe_ratio"].iloc[order]], plan["sharpe"])

    def query():
        expect("len(query)", len(store.query(**plan["query"])), plan["query_rows"])

    def details():
        for bid, want in plan["details"].items():
            d = store.get_detailed_results(bid)
            got = None if d["equity"] is None else {
                "equity_sum": float(d["equity"].sum()), "points": len(d["equity"]),
                "trades": len(d["trades"])}
            expect(f"get_detailed_results({bid})", got, want)

    def bulk():
        bulk = store.bulk_get_stats([tuple(k) for k in plan["keys"]])
        expect("bulk_get_stats ids", [str(b) for b in bulk["backtest_id"]], plan["key_ids"])

    def stats():
        for key, bid in zip(plan["keys"][:3], plan["key_ids"][:3]):
            found = store.get_stats(*key)
            expect(f"get_stats{tuple(key[:2])}", None if found is None else found["backtest_id"],
                   bid)

    reads = [all_stats, count, query, details, bulk, stats]
    for read in (reads if which is None else [reads[which % len(reads)]]):
        read()
    return wrong


READS = 6


def run_reader(plan: dict) -> dict:
    """Loop the read APIs until the compactor is done: each round opens a fresh handle and reads
    all stats and one other kind of read; every READS rounds a long-lived handle reads all."""
    out = {"iterations": 0, "wrong": [], "errors": [], "warnings": []}
    long_lived = open_store(plan["store"], mode="r")
    deadline = time.monotonic() + 240
    done_seen_at = None
    rounds = 0
    while time.monotonic() < deadline:
        for fresh in (True, False):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    if fresh:
                        store = open_store(plan["store"], mode="r")
                        try:  # all stats (the widest read), then one other kind in turn
                            out["wrong"].extend(check_reads(store, plan, which=0))
                            out["wrong"].extend(check_reads(store, plan,
                                                            which=1 + rounds % (READS - 1)))
                        finally:
                            store.close()
                    elif rounds % READS == 0:
                        out["wrong"].extend(check_reads(long_lived, plan))
                except Exception as exc:  # noqa: BLE001 - every error is a wrong answer here
                    out["errors"].append(f"{type(exc).__name__}: {exc}"[:300])
            out["warnings"].extend(f"{w.category.__name__}: {w.message}"[:300] for w in caught)
        rounds += 1
        out["iterations"] = rounds
        if rounds == 2 * READS:
            Path(plan["ready_file"]).write_text("ready")
        if Path(plan["stop_file"]).exists():
            done_seen_at = done_seen_at or time.monotonic()
            if time.monotonic() - done_seen_at > 0.5 and rounds % READS == 0:
                break
    long_lived.close()
    for name in ("wrong", "errors", "warnings"):
        out[name] = out[name][:20]
    return out


def run_compactor(plan: dict) -> dict:
    """Compact COMPACTIONS times; before each, delete one old (not latest) version so that the
    compaction rewrites the segment: nothing any reader checks changes."""
    deadline = time.monotonic() + 60
    while not Path(plan["ready_file"]).exists():
        if time.monotonic() > deadline:
            raise SystemExit("the reader never started")
        time.sleep(0.01)
    store = open_store(plan["store"], mode="r+")
    merged = []
    for bid in plan["old_ids"]:
        assert store.delete_backtest(bid) == 1
        merged.append(store.compact()["merged_segments"])
    store.close()
    Path(plan["stop_file"]).write_text("done")
    return {"merged": merged}


def _spawn(role: str, plan_file: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(HERE)]))
    return subprocess.Popen([sys.executable, __file__, role, str(plan_file)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_reads_during_compactions_in_another_process(tmp_path):
    plan = build_history_store(tmp_path / "store.zarr")
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan))
    reader = _spawn("reader", plan_file)
    compactor = _spawn("compactor", plan_file)
    try:
        c_out, c_err = compactor.communicate(timeout=300)
        r_out, r_err = reader.communicate(timeout=300)
    finally:
        for proc in (reader, compactor):
            if proc.poll() is None:
                proc.kill()
    assert compactor.returncode == 0, c_err
    assert reader.returncode == 0, r_err
    compacted = json.loads(c_out.strip().splitlines()[-1])
    assert len(compacted["merged"]) == COMPACTIONS and all(m >= 1 for m in compacted["merged"])
    seen = json.loads(r_out.strip().splitlines()[-1])
    assert seen["iterations"] >= 4 * READS, seen
    assert not seen["wrong"], f"wrong answers during compaction: {seen['wrong']}"
    assert not seen["errors"], f"errors during compaction: {seen['errors']}"
    assert not seen["warnings"], f"warnings during compaction: {seen['warnings']}"
    store = open_store(plan["store"], mode="r")
    try:
        assert store.verify()["ok"] is True
        assert check_reads(store, plan) == []
    finally:
        store.close()


# --- (b) the manifest is checked ---------------------------------------------------------------

#: Fields of the format-2 manifest (docs/store.md); any other field named like a checksum is
#: taken to be the manifest's own checksum and recomputed by ``write_manifest``.
MANIFEST_FIELDS = {"format_version", "version", "next_bid", "segments", "tombstones", "notes"}


def _checksum_field(doc: dict) -> str | None:
    names = [k for k in doc if k not in MANIFEST_FIELDS
             and any(w in k.lower() for w in ("checksum", "crc", "digest", "hash", "sum"))]
    assert len(names) <= 1, f"several checksum-like manifest fields: {names}"
    return names[0] if names else None


def _digests(body: bytes) -> dict[str, object]:
    out = {}
    try:
        import crc32c as _crc32c

        c = _crc32c.crc32c(body)
        out.update({"crc32c-int": c, "crc32c-hex": f"{c:08x}", "crc32c-tag": f"crc32c:{c:08x}"})
    except ImportError:  # pragma: no cover - crc32c is a pinned requirement
        pass
    z = zlib.crc32(body)
    out.update({"crc32-int": z, "crc32-hex": f"{z:08x}", "crc32-tag": f"crc32:{z:08x}"})
    for algo in ("sha256", "blake2b", "md5", "sha1"):
        h = hashlib.new(algo, body).hexdigest()
        out.update({f"{algo}-hex": h, f"{algo}-tag": f"{algo}:{h}", f"{algo}-16": h[:16]})
    b16 = hashlib.blake2b(body, digest_size=8).hexdigest()
    b32 = hashlib.blake2b(body, digest_size=16).hexdigest()
    out.update({"blake2b8-hex": b16, "blake2b16-hex": b32, "blake2b8-tag": f"blake2b:{b16}"})
    return out


def _bodies(doc: dict, field: str) -> dict[str, bytes]:
    from core.canonical import canonical_json

    rest = {k: v for k, v in doc.items() if k != field}
    out = {}
    for sort in (False, True):
        for seps in ((",", ":"), (", ", ": ")):
            out[f"json-{sort}-{seps[0]!r}"] = json.dumps(rest, sort_keys=sort,
                                                          separators=seps).encode()
            for blank in ("", None, 0):
                out[f"blank{blank!r}-{sort}-{seps[0]!r}"] = json.dumps(
                    {**doc, field: blank}, sort_keys=sort, separators=seps).encode()
    out["canonical"] = canonical_json(rest).encode()
    return out


def _checksum_scheme(doc: dict, field: str):
    """The (body, digest) recipe that reproduces the stored manifest's own checksum."""
    for body_name, body in _bodies(doc, field).items():
        for digest_name, value in _digests(body).items():
            if value == doc[field]:
                return body_name, digest_name
    pytest.fail(f"manifest.json carries a checksum field {field!r} = {doc[field]!r} that none "
                "of the known recipes reproduce; teach tests/store/test_reader_safety.py "
                "(_bodies/_digests) the recipe docs/store.md gives for it.")


def read_manifest(store_dir: Path) -> dict:
    return json.loads((store_dir / MANIFEST).read_bytes())


def write_manifest(store_dir: Path, doc: dict) -> None:
    """Write an edited manifest as a consistent one: when the store keeps a checksum in the
    manifest, it is recomputed with the recipe that reproduces the current file's checksum."""
    current = read_manifest(store_dir)
    field = _checksum_field(current)
    doc = dict(doc)
    if field is not None:
        body_name, digest_name = _checksum_scheme(current, field)
        doc[field] = _digests(_bodies(doc, field)[body_name])[digest_name]
    (store_dir / MANIFEST).write_bytes(json.dumps(doc, separators=(",", ":")).encode())


def single_row_store(path: Path, n: int = 3) -> list[str]:
    """A store of n one-row segments (ids 1..n, fresh segments: bid0 = id)."""
    from factories import make_result

    with BacktestStore(path, mode="r+") as store:
        return [store.store_backtest(make_result(symbol=f"S{i}", seed=i)) for i in range(n)]


def test_one_digit_edit_of_the_manifest_is_refused_on_open_and_reported_by_verify(tmp_path):
    path = tmp_path / "store.zarr"
    ids = single_row_store(path)
    raw = (path / MANIFEST).read_bytes()
    last_bid0 = read_manifest(path)["segments"][-1]["bid0"]
    assert last_bid0 == 3 and ids == ["1", "2", "3"]
    edited, edits = re.subn(rb'("bid0"\s*:\s*)3(?=\D)', rb"\g<1>9", raw)
    assert edits == 1, raw
    before = open_store(path, mode="r")  # a handle opened before the damage
    try:
        (path / MANIFEST).write_bytes(edited)  # one digit: the last segment's id 3 -> 9
        with pytest.raises(StoreCorruptionError):
            open_store(path, mode="r")
        with pytest.raises(StoreCorruptionError):
            BacktestStore(path, mode="r+")
        try:
            report = before.verify()
        except StoreCorruptionError:
            pass  # refused outright: also never served
        else:
            assert report["ok"] is False, report
            assert report["problems"] or report["damaged"], report
        # never a silent wrong mapping: id 9 does not exist, id 3 is not someone else's
        time.sleep(1.1)  # past any handle's re-check interval
        for call in (lambda: before.get_detailed_results("9"), lambda: before.count(),
                     lambda: before.get_all_stats()):
            try:
                result = call()
            except StoreCorruptionError:
                continue
            assert not (isinstance(result, dict) and result.get("backtest_id") == "9")
            if isinstance(result, int):
                assert result == 3
            elif hasattr(result, "columns"):
                assert sorted(result["backtest_id"].astype(str)) == ["1", "2", "3"]
    finally:
        before.close()


def _verify_or_refuse(path: Path, what: str) -> None:
    """The store is refused on open, or opens and verify() reports the problem."""
    try:
        store = open_store(path, mode="r")
    except StoreCorruptionError:
        return
    try:
        report = store.verify()
    finally:
        store.close()
    assert report["ok"] is False, f"verify() did not report {what}: {report}"
    assert report["problems"] or report["damaged"], report


def test_verify_reports_overlapping_ids(tmp_path):
    path = tmp_path / "store.zarr"
    single_row_store(path)
    doc = read_manifest(path)
    doc["segments"][2]["bid0"] = 2  # ids 1, 2, 2
    write_manifest(path, doc)
    _verify_or_refuse(path, "overlapping ids")


def test_verify_reports_next_id_not_above_every_id(tmp_path):
    path = tmp_path / "store.zarr"
    single_row_store(path)
    doc = read_manifest(path)
    assert doc["next_bid"] == 4
    doc["next_bid"] = 3  # the next write would reuse id 3
    write_manifest(path, doc)
    _verify_or_refuse(path, "a next id not above every id")


def test_manifest_helper_keeps_an_unedited_manifest_valid(tmp_path):
    """The helper of the two tests above writes manifests the store accepts as they are."""
    path = tmp_path / "store.zarr"
    single_row_store(path)
    write_manifest(path, read_manifest(path))
    with open_store(path, mode="r") as store:
        assert store.count() == 3
        assert store.verify()["ok"] is True


# --- (c) notes and tags that cannot be encoded -----------------------------------------------

def every_table_reads(store, ids: list[str]) -> None:
    key = key_of(store.get_all_stats().iloc[0])
    assert len(store.get_all_stats()) == len(ids)
    assert len(store.get_all_stats(include_history=True)) == len(ids)
    assert len(store.query(where="num_trades >= 0")) == len(ids)
    assert len(store.history(*key)) == 1
    assert len(store.bulk_get_stats([key])) == 1
    assert store.get_stats(*key) is not None
    assert store.count() == len(ids)
    for bid in ids:
        store.get_detailed_results(bid)


@pytest.mark.parametrize("field", ["note", "tags", "note_inside_text", "tag_among_others"])
def test_unencodable_note_or_tag_is_refused(tmp_path, field):
    path = tmp_path / "store.zarr"
    ids = single_row_store(path)
    kwargs = {"note": {"note": "\ud800"}, "tags": {"tags": ["\ud800"]},
              "note_inside_text": {"note": "robust \ud800 run"},
              "tag_among_others": {"tags": ["keep", "x\udfffy"]}}[field]
    with BacktestStore(path, mode="r+") as store:
        store.set_note(ids[0], note="kept", tags=["keep"])
        with pytest.raises(HindsightError) as info:
            store.set_note(ids[1], **kwargs)
        assert not isinstance(info.value, UnicodeError)
        message = str(info.value)
        assert "\n" not in message.strip() and ("note" in message or "tag" in message), message
        every_table_reads(store, ids)
        assert store.get_stats(*key_of(store.get_all_stats().iloc[0])) is not None
        assert store.get_detailed_results(ids[0])["note"] == "kept"
        assert store.get_detailed_results(ids[1])["note"] == ""
    with open_store(path, mode="r") as fresh:
        every_table_reads(fresh, ids)


# --- (d) opening what is not a store -------------------------------------------------------------

def test_non_empty_folder_that_is_not_a_store_is_refused_for_writing(tmp_path):
    folder = tmp_path / "my_documents"
    (folder / "sub").mkdir(parents=True)
    (folder / "report.txt").write_text("quarterly numbers\n")
    (folder / "sub" / "data.csv").write_text("a,b\n1,2\n")
    before = snapshot_tree(folder)
    with pytest.raises(HindsightError) as info:
        BacktestStore(folder, mode="r+")
    assert "store" in str(info.value).lower()
    assert snapshot_tree(folder) == before, "files were written into a folder that is no store"
    with pytest.raises(HindsightError):
        open_store(folder, mode="r+")
    with pytest.raises(HindsightError):
        open_store(folder, mode="r")
    assert snapshot_tree(folder) == before


def test_empty_folder_becomes_a_store(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    with BacktestStore(folder, mode="r+") as store:
        assert store.count() == 0
    with open_store(folder, mode="r") as store:
        assert store.count() == 0


@pytest.mark.parametrize("opener", ["open_store", "class_r+", "open_store_r+"])
def test_unknown_url_scheme_is_a_one_line_error_naming_the_supported_forms(tmp_path, opener,
                                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    call = {"open_store": lambda: open_store("bogus://x"),
            "class_r+": lambda: BacktestStore("bogus://x"),
            "open_store_r+": lambda: open_store("bogus://x", mode="r+")}[opener]
    with pytest.raises(HindsightError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message.strip(), message
    assert "bogus" in message
    for form in ("s3://", "memory://"):
        assert form in message, f"{form} not named in: {message}"
    assert "path" in message.lower() or "folder" in message.lower(), message
    assert list(tmp_path.iterdir()) == [], "an unknown URL created files in the working folder"


# --- (e) the same id twice -------------------------------------------------------------------

@pytest.mark.parametrize("ids", [["7", "7"], ["7", 7], [7, "7", "7"]], ids=str)
def test_delete_the_same_id_twice_counts_it_once(tmp_path, ids):
    from factories import make_result

    with BacktestStore(tmp_path / "store.zarr", mode="r+") as store:
        store.store_many([make_result(symbol=f"S{i}", seed=i) for i in range(8)])
        assert store.delete_backtest(ids) == 1
        assert store.count() == 7
        assert "7" not in set(store.get_all_stats()["backtest_id"].astype(str))
        assert store.verify()["ok"] is True


if __name__ == "__main__":
    role, plan_path = sys.argv[1], sys.argv[2]
    plan = json.loads(Path(plan_path).read_text())
    result = {"reader": run_reader, "compactor": run_compactor}[role](plan)
    print(json.dumps(result))
