"""Experiment statistics: hand-computed answers, nominal false positives, power with traffic."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from pyrec_pg.analysis.experiments import Arm, compare_to_control


def arms(control: list[float], treated: list[float]) -> list[Arm]:
    return [
        Arm("A", np.asarray(control, float), len(control)),
        Arm("B", np.asarray(treated, float), 2 * len(treated)),
    ]


def test_two_proportions_by_hand() -> None:
    # control 2 of 4 converted, B 3 of 4: pooled 5/8, se = sqrt(5/8 * 3/8 * (1/4 + 1/4))
    a, b = compare_to_control(arms([0, 0, 1, 2], [1, 1, 3, 0]), "A", True, 0.05, 0.1)
    assert a["is_control"] and a["difference"] is None and a["conversion_rate"] == 0.5
    assert a["value_per_user"] == 0.75 and b["value_per_user"] == 1.25
    assert b["converted_users"] == 3 and b["impressions"] == 8 and b["metric"] == "conversion_rate"
    z = 0.25 / np.sqrt(5 / 8 * 3 / 8 * 0.5)
    assert b["difference"] == pytest.approx(0.25)
    assert b["p_value"] == pytest.approx(2 * (1 - stats.norm.cdf(z)))
    half = 1.959964 * np.sqrt(0.75 * 0.25 / 4 + 0.5 * 0.5 / 4)
    assert (b["ci_low"], b["ci_high"]) == pytest.approx((0.25 - half, 0.25 + half), rel=1e-5)


def test_welch_matches_scipy() -> None:
    rng = np.random.default_rng(1)
    c, t = rng.exponential(10, 300), rng.exponential(12, 250)
    _, b = compare_to_control(arms(c.tolist(), t.tolist()), "A", False, 0.05, 0.1)
    ref = stats.ttest_ind(t, c, equal_var=False)
    assert b["metric"] == "value_per_user"
    assert b["difference"] == pytest.approx(t.mean() - c.mean())
    assert b["p_value"] == pytest.approx(ref.pvalue)
    assert b["ci_low"] < b["difference"] < b["ci_high"]


def test_users_needed_is_the_textbook_sample_size() -> None:
    # p = 0.1 against 0.11 (+10 %), alpha 0.05 two-sided, power 0.8
    control = [1.0] * 1000 + [0.0] * 9000
    a, _ = compare_to_control(arms(control, control), "A", True, 0.05, 0.1)
    z = 1.959964 + 0.841621
    expected = z * z * (0.1 * 0.9 + 0.11 * 0.89) / 0.01**2
    assert a["users_needed"] == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("binary", [True, False])
def test_identical_variants_reject_at_the_nominal_rate(binary: bool) -> None:
    rng = np.random.default_rng(7)
    sims, rejected = 2000, 0
    for _ in range(sims):
        if binary:
            c, t = rng.random(400) < 0.1, rng.random(400) < 0.1
        else:
            c, t = (
                rng.exponential(5, 400) * (rng.random(400) < 0.2),
                rng.exponential(5, 400) * (rng.random(400) < 0.2),
            )
        _, b = compare_to_control(
            arms(c.astype(float).tolist(), t.astype(float).tolist()), "A", binary, 0.05, 0.1
        )
        rejected += b["p_value"] < 0.05
    # binomial(2000, 0.05): 100 expected, sd ~9.7
    assert 70 <= rejected <= 130, rejected


def test_a_better_variant_is_found_with_more_traffic() -> None:
    rng = np.random.default_rng(3)
    found = []
    for n in (100, 1000, 10000):
        c, t = rng.random(n) < 0.10, rng.random(n) < 0.13
        _, b = compare_to_control(
            arms(c.astype(float).tolist(), t.astype(float).tolist()), "A", True, 0.05, 0.3
        )
        found.append((b["p_value"], b["difference"], b["enough_data"]))
    assert found[0][0] > found[1][0] > found[2][0]
    assert found[2][0] < 1e-4 and found[2][1] > 0 and found[2][2]
    assert not found[0][2] and not found[1][2]  # ~1,800 users per arm are needed for +30 %
