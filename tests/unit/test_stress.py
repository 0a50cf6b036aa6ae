"""Monte Carlo stress tester: exact answers where they exist, the record where it does not."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.charts import stress_test_chart
from risk.engine import (
    MODELS,
    CatastropheParams,
    HistoricalLoss,
    PoolContents,
    StressResult,
    StressTestRejected,
    backtest,
    binomial_exhaustion_probability,
    expected_shortfall,
    required_contribution_rate,
    simulate,
    simulate_stylised,
    value_at_risk,
)


def binomial_cdf(k: int, n: int, p: float) -> float:
    return math.fsum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


def binomial_quantile(q: float, n: int, p: float) -> int:
    return next(k for k in range(n + 1) if binomial_cdf(k, n, p) >= q)


# --------------------------------------------------------------------------- stylised pool


def test_exact_binomial_probability_by_hand() -> None:
    # N=100, L=30: four events (120 credits) exhaust the pool; three lose 90.
    assert binomial_exhaustion_probability(100, 30, 0.5, 4) == pytest.approx(1 / 16)
    assert binomial_exhaustion_probability(100, 30, 0.5, 3) == 0.0
    # N=90: three events lose exactly the 90 held, which is not exhaustion; four are needed.
    assert binomial_exhaustion_probability(90, 30, 0.5, 3) == 0.0
    assert binomial_exhaustion_probability(90, 30, 0.5, 4) == pytest.approx(1 / 16)
    assert binomial_exhaustion_probability(100, 30, 1.0, 4) == 1.0
    assert binomial_exhaustion_probability(100, 30, 0.0, 100) == 0.0
    # One event of more than N credits: 1 - (1 - P)^T.
    assert binomial_exhaustion_probability(49, 50, 0.1, 10) == pytest.approx(1 - 0.9**10)
    # An event of exactly N credits leaves the pool empty, not exhausted: two are needed.
    assert binomial_exhaustion_probability(50, 50, 0.1, 10) == pytest.approx(
        1 - 0.9**10 - 10 * 0.1 * 0.9**9)


@pytest.mark.parametrize(
    ("pool", "loss", "p", "horizon"),
    [
        (100, 30, 0.05, 100),
        (100, 30, 0.1, 10),
        (100, 30, 0.1, 50),
        (100, 30, 0.3, 10),
        (100, 30, 0.3, 20),
        (250, 40, 0.02, 100),
    ],
)
def test_stylised_matches_exact_binomial(pool: int, loss: int, p: float, horizon: int) -> None:
    result = simulate_stylised(pool, loss, p, horizon=horizon, scenarios=20_000, seed=11)
    exact = binomial_exhaustion_probability(pool, loss, p, horizon)
    error = math.sqrt(exact * (1 - exact) / result.scenarios)
    assert result.exact_p_exhausted == pytest.approx(exact)
    assert abs(result.p_exhausted - exact) <= 4 * error
    expected_se = math.sqrt(result.p_exhausted * (1 - result.p_exhausted) / 20_000)
    assert result.standard_error == pytest.approx(expected_se)


def test_stylised_ruin_by_year_matches_exact_curve() -> None:
    result = simulate_stylised(100, 30, 0.2, horizon=40, scenarios=20_000, seed=5)
    for year in (4, 10, 20, 40):
        exact = binomial_exhaustion_probability(100, 30, 0.2, year)
        error = math.sqrt(exact * (1 - exact) / result.scenarios)
        assert abs(result.p_exhausted_by_year[year - 1] - exact) <= 4 * error + 1e-12
    # Four events are needed: nobody can be exhausted before year 4.
    assert result.p_exhausted_by_year[:3] == [0.0, 0.0, 0.0]


def test_same_seed_same_result_different_seed_differs() -> None:
    first = simulate_stylised(100, 30, 0.1, horizon=50, scenarios=5_000, seed=42)
    again = simulate_stylised(100, 30, 0.1, horizon=50, scenarios=5_000, seed=42)
    other = simulate_stylised(100, 30, 0.1, horizon=50, scenarios=5_000, seed=43)
    assert first.to_dict() == again.to_dict()
    assert first.p_exhausted_by_year != other.p_exhausted_by_year


def test_results_do_not_depend_on_chunk_size() -> None:
    contents = PoolContents.homogeneous(
        300, 10_000, 0.02, 0.4, 150_000, regions=6, avoidable_share=0.3, default_probability=0.2
    )
    for model in MODELS:
        small = simulate(contents, model, scenarios=700, horizon=30, seed=9, chunk_size=64)
        large = simulate(contents, model, scenarios=700, horizon=30, seed=9, chunk_size=5_000)
        assert small.to_dict() == large.to_dict(), model
    stylised = [
        simulate_stylised(100, 30, 0.1, horizon=30, scenarios=3_000, seed=1, chunk_size=size)
        for size in (1, 640, 10_000)
    ]
    assert stylised[0].to_dict() == stylised[1].to_dict() == stylised[2].to_dict()


# --------------------------------------------------------------------------- VaR and ES


def test_var_and_es_on_a_known_sample() -> None:
    losses = np.arange(1, 1001)
    assert value_at_risk(losses, 0.99) == 990
    assert expected_shortfall(losses, 0.99) == pytest.approx(995.5)
    assert value_at_risk(losses, 0.5) == 500
    # Fractional tails: the worst 0.5% of 100 outcomes is half of the worst one; the worst
    # 1.5% is the worst one and half of the next.
    assert expected_shortfall(np.arange(1, 101), 0.995) == pytest.approx(100.0)
    assert expected_shortfall(np.arange(1, 101), 0.985) == pytest.approx((100 + 0.5 * 99) / 1.5)


@pytest.mark.parametrize(("horizon", "p", "level"), [(50, 0.1, 0.995), (100, 0.05, 0.99)])
def test_stylised_var_is_event_loss_times_binomial_quantile(
    horizon: int, p: float, level: float
) -> None:
    loss, scenarios = 30, 200_000
    k = binomial_quantile(level, horizon, p)
    margin = 5 * math.sqrt(level * (1 - level) / scenarios)
    # The exact CDF sits well clear of the level on both sides, so sampling cannot move it.
    assert binomial_cdf(k - 1, horizon, p) < level - margin
    assert binomial_cdf(k, horizon, p) > level + margin

    result = simulate_stylised(
        10**9, loss, p, horizon=horizon, scenarios=scenarios, seed=3, levels=[0.5, level]
    )

    assert result.horizon_quantile_at(level) == loss * k
    tail = math.fsum(
        i * math.comb(horizon, i) * p**i * (1 - p) ** (horizon - i)
        for i in range(k + 1, horizon + 1)
    )
    exact_es = loss * (tail + k * (binomial_cdf(k, horizon, p) - level)) / (1 - level)
    assert result.horizon_es_at(level) == pytest.approx(exact_es, abs=0.25 * loss)
    assert result.horizon_expected_loss == pytest.approx(loss * horizon * p, rel=0.01)
    assert result.horizon_quantile_at(0.5) < result.horizon_quantile_at(level)
    assert result.horizon_quantile_at(level) <= result.horizon_es_at(level)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=300),
    st.floats(min_value=0.01, max_value=0.999),
)
def test_var_and_es_are_ordered(losses: list[int], level: float) -> None:
    var = value_at_risk(losses, level)
    es = expected_shortfall(losses, level)
    assert min(losses) <= var <= max(losses)
    assert var - 1e-6 <= es <= max(losses) + 1e-6


# --------------------------------------------------------------------------- pool models


def test_independent_with_zero_probability_loses_nothing() -> None:
    contents = PoolContents.homogeneous(200, 5_000, 0.0, 1.0, 1_000)
    result = simulate(contents, "independent", scenarios=500, horizon=50, seed=1)
    assert result.horizon_expected_loss == 0.0
    assert result.p_exhausted == 0.0
    assert result.exhaustion_year_distribution["never"] == 500
    assert result.horizon_quantile_at() == 0.0 and result.one_year_var_at() == 0.0


def test_certain_total_loss_exhausts_in_year_one_and_never_exceeds_exposure() -> None:
    contents = PoolContents.homogeneous(40, 1_000, 1.0, 1.0, buffer_balance=39_999)
    result = simulate(contents, "independent", scenarios=300, horizon=10, seed=1)
    assert result.p_exhausted_by_year[0] == 1.0
    assert result.exhaustion_year_distribution["1"] == 300
    # Everything is lost in year 1; nothing is left to lose afterwards.
    assert result.horizon_expected_loss == contents.total_exposure
    assert result.horizon_quantile_at() == contents.total_exposure
    assert result.one_year_var_at() == contents.total_exposure


def test_heterogeneous_probabilities_give_their_expected_loss() -> None:
    rng = np.random.default_rng(0)
    probability = rng.uniform(0.001, 0.3, size=300)
    contents = PoolContents(
        buffer_balance=10**9,
        exposure=np.ones(300, dtype=np.int64),
        annual_probability=probability,
        loss_fraction=np.ones(300),
        region=np.zeros(300, dtype=np.int64),
        avoidable_share=np.zeros(300),
        default_probability=0.0,
        hazard_trend=0.0,
    )
    result = simulate(contents, "independent", scenarios=2_000, horizon=1, seed=12)
    # One credit each, all lost in an event: the expected loss is the sum of probabilities.
    assert result.horizon_expected_loss == pytest.approx(probability.sum(), rel=0.01)


@pytest.mark.parametrize("p", [0.002, 0.05, 0.3])
def test_single_project_ruin_curve_is_geometric(p: float) -> None:
    # Exposure above the balance and total loss: the pool fails at the project's first event.
    contents = PoolContents.homogeneous(1, 100, p, 1.0, 50)
    result = simulate(contents, "independent", scenarios=20_000, horizon=20, seed=21)
    for year in (1, 5, 20):
        exact = 1 - (1 - p) ** year
        error = math.sqrt(exact * (1 - exact) / result.scenarios)
        assert abs(result.p_exhausted_by_year[year - 1] - exact) <= 4 * error


def test_rare_events_in_a_small_pool_are_not_overcounted() -> None:
    # One project per 64-scenario stream: the sparse sampler's gaps often overrun the block.
    rare = PoolContents.homogeneous(1, 1, 0.001, 1.0, 10**9)
    result = simulate(rare, "independent", scenarios=20_000, horizon=10, seed=4)
    assert result.horizon_expected_loss == pytest.approx(1 - 0.999**10, abs=0.003)
    negligible = PoolContents.homogeneous(10, 1_000, 1e-19, 1.0, 100)
    assert simulate(negligible, scenarios=1_000, horizon=50, seed=4).horizon_expected_loss == 0.0


def test_loss_fraction_applies_to_remaining_exposure() -> None:
    contents = PoolContents.homogeneous(10, 1_000, 1.0, 0.5, buffer_balance=10**9)
    result = simulate(contents, "independent", scenarios=64, horizon=3, seed=1)
    assert result.horizon_expected_loss == 10 * (500 + 250 + 125)
    assert result.p_exhausted == 0.0


def test_annual_contributions_are_counted_as_they_arrive() -> None:
    # 1,000 lost in year 1, 500 in year 2, 250 in year 3 against 1,199 + 300 a year.
    contents = PoolContents.homogeneous(1, 2_000, 1.0, 0.5, 1_199, annual_contributions=300)
    result = simulate(contents, "independent", scenarios=64, horizon=3, seed=1)
    assert result.exhaustion_year_distribution["2"] == 64  # 1,500 lost > 1,199 + 300
    # With 1,200 held, the 1,500 lost by year 2 equals what the pool had: not exhausted.
    held = simulate(contents.with_balance(1_200), "independent", scenarios=64, horizon=3, seed=1)
    assert held.p_exhausted == 0.0 and held.exhaustion_year_distribution["never"] == 64


def test_catastrophe_raises_event_probability_as_specified() -> None:
    base = PoolContents.homogeneous(200, 1, 0.1, 1.0, 10**9, regions=10)
    shock = CatastropheParams(annual_probability=0.2, probability_multiplier=5.0)
    independent = simulate(base, "independent", scenarios=2_000, horizon=1, seed=4)
    catastrophe = simulate(
        base, "catastrophe", scenarios=2_000, horizon=1, seed=4, catastrophe=shock
    )
    # One credit per project, all lost in an event: expected loss / projects = P(event).
    assert independent.horizon_expected_loss / 200 == pytest.approx(0.1, abs=0.005)
    assert catastrophe.horizon_expected_loss / 200 == pytest.approx(0.8 * 0.1 + 0.2 * 0.5, abs=0.01)
    assert catastrophe.horizon_quantile_at() > independent.horizon_quantile_at()
    assert catastrophe.parameters["catastrophe"]["probability_multiplier"] == 5.0


def test_catastrophe_loss_multiplier_is_deterministic_when_certain() -> None:
    contents = PoolContents.homogeneous(4, 1_000, 0.5, 0.25, 10**9, regions=2)
    certain = CatastropheParams(
        annual_probability=1.0, probability_multiplier=2.0, loss_multiplier=2.0
    )
    result = simulate(contents, "catastrophe", scenarios=64, horizon=2, seed=1, catastrophe=certain)
    assert result.horizon_expected_loss == 4 * (500 + 250)


def test_rising_hazard_matches_its_survival_curve() -> None:
    p, trend, horizon = 0.01, 0.05, 30
    contents = PoolContents.homogeneous(100, 1, p, 1.0, 10**9, hazard_trend=trend)
    result = simulate(contents, "rising", scenarios=4_000, horizon=horizon, seed=8)
    survival = math.prod(1 - p * (1 + trend) ** t for t in range(horizon))
    assert result.horizon_expected_loss / 100 == pytest.approx(1 - survival, abs=0.01)
    flat = simulate(contents, "independent", scenarios=4_000, horizon=horizon, seed=8)
    assert result.horizon_expected_loss > flat.horizon_expected_loss


def test_rising_without_trend_is_the_independent_model() -> None:
    contents = PoolContents.homogeneous(50, 1_000, 0.05, 0.3, 20_000)
    rising = simulate(contents, "rising", scenarios=500, horizon=20, seed=2).to_dict()
    independent = simulate(contents, "independent", scenarios=500, horizon=20, seed=2).to_dict()
    rising.pop("model")
    independent.pop("model")
    assert rising == independent


def test_default_model_charges_only_defaulted_avoidable_reversals() -> None:
    def pool(avoidable: float, default: float) -> PoolContents:
        return PoolContents.homogeneous(
            200, 1_000, 0.1, 1.0, 10**9, avoidable_share=avoidable, default_probability=default
        )

    none = simulate(pool(1.0, 0.0), "default", scenarios=1_000, horizon=1, seed=3)
    some = simulate(pool(1.0, 0.3), "default", scenarios=1_000, horizon=1, seed=3)
    half = simulate(pool(0.5, 0.0), "default", scenarios=1_000, horizon=1, seed=3)
    assert none.horizon_expected_loss == 0.0
    assert some.horizon_expected_loss == pytest.approx(200 * 1_000 * 0.1 * 0.3, rel=0.05)
    assert half.horizon_expected_loss == pytest.approx(200 * 1_000 * 0.1 * 0.5, rel=0.05)


def test_result_shape_and_json() -> None:
    contents = PoolContents.homogeneous(100, 2_000, 0.03, 0.5, 15_000, regions=4)
    result = simulate(contents, "combined", scenarios=640, horizon=25, seed=6, levels=[0.9, 0.995])
    assert isinstance(result, StressResult)
    curve = result.p_exhausted_by_year
    assert len(curve) == 25
    assert all(a <= b for a, b in itertools.pairwise(curve))
    assert curve[-1] == result.p_exhausted
    assert sum(result.exhaustion_year_distribution.values()) == 640
    assert set(result.horizon_loss_quantile) == set(result.one_year_var) == {"0.9", "0.995"}
    assert result.horizon_quantile_at(0.9) <= result.horizon_quantile_at(0.995)
    assert result.one_year_var_at(0.9) <= result.one_year_var_at(0.995)
    assert result.one_year_var_at(0.995) <= result.one_year_es_at(0.995)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["model"] == "combined" and data["seed"] == 6 and data["horizon"] == 25
    assert data["parameters"]["pool"]["total_exposure"] == 200_000
    assert sum(data["loss_histogram"]["counts"]) == 640


def test_stress_test_chart_writes_a_png_and_an_svg(tmp_path: Path) -> None:
    result = simulate_stylised(100, 30, 0.1, horizon=30, scenarios=1_000, seed=1).to_dict()
    target = stress_test_chart(result, tmp_path / "ruin.png")
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = stress_test_chart(result, tmp_path / "ruin.svg").read_text(encoding="utf-8")
    assert "<svg" in svg and "year (from 1)" in svg


# --------------------------------------------------------------------------- backtest


def test_california_backtest_consumes_the_fire_allocation() -> None:
    """Badgley et al. 2022: ~31.0 M pool; fires used ~1/5 of it, >= 95% of the fire share.

    The fire allocation (about 6 M) and the split of the 5.68 M fire losses over 2015-2021
    are illustrative; the totals are those of domain.md section 6.
    """
    fire_losses = {2015: 310_000, 2017: 140_000, 2018: 560_000, 2020: 3_970_000, 2021: 700_000}
    assert sum(fire_losses.values()) == 5_680_000
    history = [
        HistoricalLoss(year - 2015, quantity, "fire") for year, quantity in fire_losses.items()
    ]

    result = backtest(31_000_000, history, allocations={"fire": 5_950_000})

    assert result.share_of_allocation("fire") >= 0.95
    assert result.share_of_pool_consumed == pytest.approx(0.1832, abs=5e-4)
    assert 0.17 < result.share_of_pool_consumed < 0.19
    assert result.horizon == 7  # under ten years
    assert result.exhausted_year is None
    assert result.balance_by_year[-1] == 31_000_000 - 5_680_000
    assert result.to_dict()["allocations"]["fire"]["losses"] == 5_680_000


def test_backtest_reports_exhaustion_and_counts_contributions() -> None:
    losses: list[tuple[int, int] | tuple[int, int, str]] = [(0, 60), (2, 50), (2, 0, "pests")]
    assert backtest(100, losses).exhausted_year == 3  # the third year, numbered from 1
    with_contributions = backtest(100, losses, annual_contributions=20)
    assert with_contributions.exhausted_year is None
    assert with_contributions.balance_by_year == [60, 80, 50]
    assert backtest(100, losses, allocations={"pests": 10}).share_of_allocation("pests") == 0.0


# --------------------------------------------------------------------------- contribution rate


def test_required_contribution_rate_is_monotone_and_meets_its_target() -> None:
    contents = PoolContents.homogeneous(200, 1_000, 0.01, 0.5, 0, regions=5)
    targets = [0.2, 0.05, 0.01]
    rates = [
        required_contribution_rate(contents, t, scenarios=2_000, horizon=50, seed=7)
        for t in targets
    ]
    assert rates[0] < rates[1] < rates[2]
    for target, rate in zip(targets, rates):
        funded = contents.with_balance(round(rate * contents.total_exposure))
        held = simulate(funded, "independent", scenarios=2_000, horizon=50, seed=7)
        assert held.p_exhausted <= target
        short = contents.with_balance(round((rate - 0.001) * contents.total_exposure))
        assert (
            simulate(short, "independent", scenarios=2_000, horizon=50, seed=7).p_exhausted > target
        )


def test_zero_ruin_target_needs_the_worst_scenario_funded() -> None:
    contents = PoolContents.homogeneous(50, 1_000, 0.05, 1.0, 0)
    rate = required_contribution_rate(contents, 0.0, scenarios=500, horizon=20, seed=2)
    assert 0.0 < rate < 1.0
    funded = contents.with_balance(round(rate * contents.total_exposure))
    assert simulate(funded, scenarios=500, horizon=20, seed=2).p_exhausted == 0.0


def test_required_rate_is_zero_without_hazard() -> None:
    contents = PoolContents.homogeneous(10, 1_000, 0.0, 0.5, 0)
    assert required_contribution_rate(contents, 0.01, scenarios=64, horizon=10) == 0.0


# --------------------------------------------------------------------------- rejections


def test_pool_contents_rejections_name_the_field() -> None:
    good = PoolContents.homogeneous(3, 100, 0.1, 0.5, 10)
    with pytest.raises(StressTestRejected, match="annual_probability"):
        PoolContents(
            10,
            good.exposure,
            np.array([0.1, 0.2]),
            good.loss_fraction,
            good.region,
            good.avoidable_share,
            0.0,
            0.0,
        )
    with pytest.raises(StressTestRejected, match="exposure"):
        PoolContents(
            10,
            np.array([1.5, 2.0, 3.0]),
            good.annual_probability,
            good.loss_fraction,
            good.region,
            good.avoidable_share,
            0.0,
            0.0,
        )
    with pytest.raises(StressTestRejected, match="loss_fraction"):
        PoolContents(
            10,
            good.exposure,
            good.annual_probability,
            np.array([0.5, 1.2, 0.1]),
            good.region,
            good.avoidable_share,
            0.0,
            0.0,
        )
    with pytest.raises(StressTestRejected, match="hazard_trend"):
        PoolContents(
            10,
            good.exposure,
            good.annual_probability,
            good.loss_fraction,
            good.region,
            good.avoidable_share,
            0.0,
            -1.5,
        )
    with pytest.raises(StressTestRejected, match="model"):
        simulate(good, "optimistic", scenarios=10, horizon=1)
    with pytest.raises(StressTestRejected, match="levels"):
        simulate(good, scenarios=10, horizon=1, levels=1.0)
    with pytest.raises(StressTestRejected, match="year_offset"):
        backtest(100, [(-1, 5)])


# --------------------------------------------------------------------------- figures that say what they measure


def test_one_year_var_and_horizon_quantile_of_a_binomial_pool() -> None:
    """20 projects of 1,000 credits, each lost whole with p = 0.1 a year, for 5 years.

    Year 1's loss is 1,000 x Bin(20, 0.1); a project is lost at most once, so the loss over
    5 years is 1,000 x Bin(20, 1 - 0.9^5). Both quantiles are worked out from the binomial
    law here, and chosen so the exact CDF sits clear of the level on both sides.
    """
    n, p, years, scenarios, level = 20, 0.1, 5, 100_000, 0.995
    p_horizon = 1 - (1 - p) ** years
    margin = 5 * math.sqrt(level * (1 - level) / scenarios)
    one, total = binomial_quantile(level, n, p), binomial_quantile(level, n, p_horizon)
    for k, q in ((one, p), (total, p_horizon)):
        assert binomial_cdf(k - 1, n, q) < level - margin < level + margin < binomial_cdf(k, n, q)
    contents = PoolContents.homogeneous(n, 1_000, p, 1.0, buffer_balance=10**9)

    result = simulate(contents, "independent", scenarios=scenarios, horizon=years, seed=17)

    assert result.one_year_var_at(level) == 1_000 * one
    assert result.horizon_quantile_at(level) == 1_000 * total
    assert one < total  # the horizon figure is no one-year VaR
    assert result.one_year_expected_loss == pytest.approx(1_000 * n * p, rel=0.01)
    assert result.horizon_expected_loss == pytest.approx(1_000 * n * p_horizon, rel=0.01)

    def exact_es(k: int, q: float) -> float:
        tail = math.fsum(i * math.comb(n, i) * q**i * (1 - q) ** (n - i)
                         for i in range(k + 1, n + 1))
        return 1_000 * (tail + k * (binomial_cdf(k, n, q) - level)) / (1 - level)

    assert result.one_year_es_at(level) == pytest.approx(exact_es(one, p), rel=0.02)
    assert result.horizon_es_at(level) == pytest.approx(exact_es(total, p_horizon), rel=0.02)
    data = result.to_dict()
    assert data["one_year_var"] == {"0.995": 1_000 * one}
    assert data["horizon_loss_quantile"] == {"0.995": 1_000 * total}
    assert "ONE year" in data["definitions"]["one_year_var"]
    assert "summed over all 5 years" in data["definitions"]["horizon_loss_quantile"]
    assert "var" not in data and "expected_loss" not in data  # no ambiguous label left


def test_a_loss_equal_to_the_balance_is_not_exhaustion() -> None:
    """Exhausted means cumulative loss strictly greater than the balance, in every path."""
    held = PoolContents.homogeneous(1, 100, 1.0, 1.0, buffer_balance=100)
    assert simulate(held, scenarios=64, horizon=3, seed=1).p_exhausted == 0.0
    short = held.with_balance(99)
    assert simulate(short, scenarios=64, horizon=3, seed=1).exhaustion_year_distribution["1"] == 64
    # The stylised pool: three certain events of 30 lose exactly the 90 held; a fourth exhausts.
    assert simulate_stylised(90, 30, 1.0, horizon=3, scenarios=64).p_exhausted == 0.0
    four = simulate_stylised(90, 30, 1.0, horizon=4, scenarios=64)
    assert four.exhaustion_year_distribution["4"] == 64 and four.exact_p_exhausted == 1.0
    # The backtest and the contribution-rate search follow the same rule.
    assert backtest(100, [(0, 100)]).exhausted_year is None
    assert backtest(100, [(0, 101)]).exhausted_year == 1
    rate = required_contribution_rate(held, 0.0, scenarios=64, horizon=3)
    assert round(rate * 100) == 100  # holding exactly what is lost is enough; 99 is not
    assert "strictly greater" in simulate(held, scenarios=64, horizon=1).to_dict()[
        "definitions"]["exhausted"]


@pytest.mark.parametrize("model", MODELS)
def test_years_are_numbered_from_one_in_every_model(model: str) -> None:
    """A certain total loss above the balance exhausts every scenario in year 1."""
    contents = PoolContents.homogeneous(3, 1_000, 1.0, 1.0, buffer_balance=2_999)
    result = simulate(contents, model, scenarios=128, horizon=4, seed=2)
    assert result.exhaustion_year_distribution == {"1": 128, "2": 0, "3": 0, "4": 0, "never": 0}
    assert result.p_exhausted_by_year == [1.0, 1.0, 1.0, 1.0]


def test_years_are_numbered_from_one_in_the_stylised_pool_and_the_backtest() -> None:
    stylised = simulate_stylised(10, 11, 1.0, horizon=3, scenarios=64)
    assert stylised.exhaustion_year_distribution == {"1": 64, "2": 0, "3": 0, "never": 0}
    # A loss in the first replayed year (offset 0) that exceeds the balance: year 1.
    assert backtest(50, [(0, 51)]).exhausted_year == 1
    assert backtest(50, [(0, 30), (1, 21)]).exhausted_year == 2
    assert "from 1" in backtest(50, [(0, 51)]).to_dict()["definitions"]["years"]


def test_progress_is_reported_chunk_by_chunk() -> None:
    contents = PoolContents.homogeneous(10, 1_000, 0.05, 0.5, 2_000)
    for run in (
        lambda told: simulate(contents, "combined", scenarios=640, horizon=5, chunk_size=64,
                              progress=told),
        lambda told: simulate_stylised(100, 30, 0.1, horizon=5, scenarios=640, chunk_size=64,
                                       progress=told),
        lambda told: required_contribution_rate(contents, 0.1, scenarios=640, horizon=5,
                                                chunk_size=64, progress=told),
    ):
        calls: list[tuple[int, int]] = []
        run(lambda done, total, calls=calls: calls.append((done, total)))
        assert calls == [(done, 10) for done in range(1, 11)]
    # A run that is not a whole number of chunks still ends at its total.
    calls = []
    simulate(contents, scenarios=700, horizon=2, chunk_size=128,
             progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (6, 6) and len(calls) == 6
