"""Hypothesis state machine: the store behaves like a plain dict of version lists."""
from __future__ import annotations

import shutil
import tempfile

import hypothesis.strategies as st
from factories import make_result
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from core.store import BacktestStore

SYMBOLS = ("AAA", "BBB")
PERIODS = (5, 6)
EXITS = (None, {"type": "stop_loss", "pct": 0.05})
KEYS = [(s, p, e) for s in SYMBOLS for p in PERIODS for e in range(len(EXITS))]


class StoreModel(RuleBasedStateMachine):
    """Model: key -> list of (backtest id, win_rate) versions, oldest first; deletes remove."""

    def __init__(self):
        super().__init__()
        self.folder = tempfile.mkdtemp()
        self.url = f"{self.folder}/store.zarr"
        self.store = BacktestStore(self.url)
        self.model: dict[tuple, list[tuple[str, float]]] = {}
        self.seed = 0

    def teardown(self):
        self.store.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    @rule(keys=st.lists(st.sampled_from(KEYS), min_size=1, max_size=3))
    def store_batch(self, keys):
        results = []
        for symbol, period, exit_index in keys:
            self.seed += 1
            results.append(make_result(symbol=symbol, params={"period": period},
                                       exit_rule=EXITS[exit_index], seed=self.seed,
                                       curve=self.seed % 2 == 0, trades=self.seed % 3))
        ids = self.store.store_many(results)
        for key, bid, result in zip(keys, ids, results):
            self.model.setdefault(key, []).append((bid, result.metrics["sharpe_ratio"]))

    @precondition(lambda self: any(self.model.values()))
    @rule(data=st.data())
    def delete(self, data):
        live = [bid for versions in self.model.values() for bid, _ in versions]
        bid = data.draw(st.sampled_from(sorted(live)))
        self.store.delete_backtest(bid)
        for versions in self.model.values():
            versions[:] = [v for v in versions if v[0] != bid]

    @rule()
    def compact(self):
        self.store.compact()

    @rule()
    def reopen(self):
        self.store.close()
        self.store = BacktestStore(self.url)

    @rule(key=st.sampled_from(KEYS))
    def get(self, key):
        symbol, period, exit_index = key
        stats = self.store.get_stats(symbol, "rsi_meanrev", {"period": float(period)},
                                     EXITS[exit_index])
        versions = self.model.get(key, [])
        if not versions:
            assert stats is None
        else:
            assert (stats["backtest_id"], stats["sharpe_ratio"]) == versions[-1]
            history = self.store.history(symbol, "rsi_meanrev", {"period": period},
                                         EXITS[exit_index])
            assert list(history["backtest_id"]) == [bid for bid, _ in versions]

    @invariant()
    def counts_match(self):
        assert self.store.count() == sum(1 for v in self.model.values() if v)
        assert self.store.count(include_history=True) == sum(len(v) for v in self.model.values())


StoreModel.TestCase.settings = settings(max_examples=12, stateful_step_count=8, deadline=None)
TestStoreModel = StoreModel.TestCase
