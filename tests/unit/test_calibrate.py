"""Choosing a version's HNSW ef_search from the recall it reaches on sampled users."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, cast

import numpy as np
import pytest
import scipy.sparse as sp

from pyrec_pg.db import Db
from pyrec_pg.store.calibrate import LADDER, Calibration, calibrate, choose


def test_choose_takes_the_first_step_that_reaches_the_target_and_measures_no_further() -> None:
    measured: list[int] = []

    def steps() -> Iterator[tuple[int, float]]:
        for ef, recall in ((40, 0.90), (60, 0.97), (100, 0.985), (150, 1.0)):
            measured.append(ef)
            yield ef, recall

    assert choose(steps(), 0.98) == Calibration(100, 0.985)
    assert measured == [40, 60, 100]


def test_choose_falls_back_to_the_cheapest_step_near_the_best_when_none_reaches_it() -> None:
    # a graph that never reaches some items: more candidates past 150 only cost time
    steps = [(40, 0.70), (60, 0.80), (100, 0.86), (150, 0.893), (200, 0.90), (300, 0.899)]
    assert choose(steps, 0.98) == Calibration(150, 0.893)
    with pytest.raises(ValueError, match="no ef_search"):
        choose([], 0.98)


class _Index(Db):
    """An index that answers exactly from ef_search 100 on, and half right below."""

    def __init__(self, items: np.ndarray[Any, Any], ids: np.ndarray[Any, Any]) -> None:
        super().__init__(cast(Any, None))
        self.items, self.ids, self.ef = items, ids, 40
        self.settings: dict[str, str] = {"hnsw.ef_search": "40", "hnsw.iterative_scan": "off"}
        self.asked: list[int] = []

    def run(self, sql: str, args: Sequence[Any] = (), types: Sequence[str] = ()) -> None:
        if "'hnsw.ef_search', $1" in sql:
            self.settings["hnsw.ef_search"] = args[0]
        elif "'hnsw.iterative_scan', 'relaxed_order'" in sql:
            self.settings["hnsw.iterative_scan"] = "relaxed_order"
        else:
            self.settings[args[0]] = args[1]

    def scalar(self, sql: str, args: Sequence[Any] = (), types: Sequence[str] = ()) -> Any:
        if "current_setting" in sql:
            return self.settings[args[0]]
        assert self.settings["hnsw.iterative_scan"] == "relaxed_order"
        ef = int(self.settings["hnsw.ef_search"])
        self.asked.append(ef)
        query = np.array([float.fromhex(x) for x in args[0].strip("[]").split(",")])
        scores = self.items @ query
        scores[np.isin(self.ids, args[1])] = -np.inf  # seen items are left out
        top = self.ids[np.argsort(-scores, kind="stable")[:10]].tolist()
        return top if ef >= 100 else top[:5] + ["nowhere"] * 5


def test_calibrate_measures_the_index_with_seen_items_left_out_and_restores_settings() -> None:
    rng = np.random.default_rng(3)
    items = rng.standard_normal((500, 8)).astype(np.float32)
    users = rng.standard_normal((300, 8)).astype(np.float32)
    seen = sp.csr_matrix(sp.random(300, 500, density=0.05, random_state=1, dtype=np.float32))
    ids = np.array([f"i{n}" for n in range(500)])
    db = _Index(items, ids)
    got = calibrate(db, "pyrec.t", ids, items, users, seen, "vector(8)")
    assert got == Calibration(100, 1.0)
    # 200 sampled users per step, steps 40, 60 and 100 measured, none after
    assert db.asked == [40] * 200 + [60] * 200 + [100] * 200
    assert db.settings == {"hnsw.ef_search": "40", "hnsw.iterative_scan": "off"}
    assert LADDER[:3] == (40, 60, 100)


def test_calibrate_scores_the_exact_answer_a_few_users_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pyrec_pg.store.calibrate as calibrate_module

    rng = np.random.default_rng(4)
    items = rng.standard_normal((500, 8)).astype(np.float32)
    users = rng.standard_normal((300, 8)).astype(np.float32)
    seen = sp.csr_matrix(sp.random(300, 500, density=0.05, random_state=2, dtype=np.float32))
    ids = np.array([f"i{n}" for n in range(500)])
    whole = calibrate(_Index(items, ids), "pyrec.t", ids, items, users, seen, "vector(8)")
    monkeypatch.setattr(calibrate_module, "_SCORES", 7 * 500)  # 7 users a block
    blocks = calibrate(_Index(items, ids), "pyrec.t", ids, items, users, seen, "vector(8)")
    assert blocks == whole == Calibration(100, 1.0)
