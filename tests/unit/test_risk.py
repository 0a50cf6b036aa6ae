"""Project-level risk assessment: the tool as data, the three buffer methods, the rejections."""

from __future__ import annotations

import copy
import math
import tomllib
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from risk.assessment import (
    Assessment,
    BufferMethod,
    RiskAssessmentRejected,
    evaluate,
    load_risk_tool,
    parse_assessment,
    reassessment_due,
)
from tests.support import FIXTURES

EXAMPLE = FIXTURES / "assessment-example.toml"
TOOL = load_risk_tool()
CATEGORIES = [
    "fire",
    "pests_disease",
    "extreme_weather",
    "geological",
    "financial",
    "management",
    "governance_political",
    "land_tenure_community",
]


def example() -> dict[str, Any]:
    with EXAMPLE.open("rb") as handle:
        return tomllib.load(handle)


def scored(scores: dict[str, float], trends: dict[str, float] | None = None) -> dict[str, Any]:
    """An assessment with the given scores (others 0), one expert source each, no trends."""
    trends = trends or {}
    return {
        "project": "TEST-1",
        "assessed_on": "2025-06-30",
        "tool": TOOL.name,
        "tool_version": TOOL.version,
        "scores": {
            name: {
                "score": scores.get(name, 0.0),
                "annual_trend": trends.get(name, 0.0),
                "sources": [{"name": "site visit", "kind": "expert_judgement"}],
            }
            for name in CATEGORIES
        },
    }


# --------------------------------------------------------------------------- the tool and parsing


def test_packaged_tool_lists_the_categories_and_natural_hazards() -> None:
    assert TOOL.name == "permanence-risk-tool"
    assert TOOL.version == "1.0.0"
    assert TOOL.category_ids == CATEGORIES
    natural = [c.id for c in TOOL.categories if c.natural]
    assert natural == ["fire", "pests_disease", "extreme_weather", "geological"]
    assert TOOL.score_scale.reference_period_years == 100
    assert (TOOL.reassessment_interval_years.minimum, TOOL.reassessment_interval_years.maximum) == (
        1,
        5,
    )


def test_example_toml_parses_with_dates_sources_and_trends() -> None:
    assessment = parse_assessment(example())
    assert isinstance(assessment, Assessment)
    assert assessment.project == "VCS-9001"
    assert assessment.assessed_on == date(2025, 3, 1)
    fire = assessment.score_for("fire")
    assert fire.score == 4.0 and fire.annual_trend == 0.01
    assert [s.kind for s in fire.sources] == ["public_dataset", "peer_reviewed"]
    assert fire.sources[1].reference == "doi:10.3389/ffgc.2022.930426"
    assert assessment.score_for("geological").annual_trend == 0.0


def test_scores_may_also_be_a_list_of_tables() -> None:
    data = example()
    data["scores"] = [{"category": k, **v} for k, v in data["scores"].items()]
    result = evaluate(data, TOOL, BufferMethod.multiplicative())
    same = evaluate(example(), TOOL, BufferMethod.multiplicative())
    assert result.buffer_rate == same.buffer_rate


def test_unknown_tool_name_is_rejected() -> None:
    with pytest.raises(RiskAssessmentRejected, match="no risk tool named 'nprt-9'"):
        load_risk_tool("nprt-9")
    with pytest.raises(RiskAssessmentRejected, match="not a valid risk tool name"):
        load_risk_tool("../profiles/verra-vcs")


# --------------------------------------------------------------------------- rejections


def test_missing_category_is_rejected() -> None:
    data = example()
    del data["scores"]["geological"]
    with pytest.raises(RiskAssessmentRejected, match="missing category 'geological'"):
        evaluate(data, TOOL, BufferMethod.flat())


def test_unsourced_score_is_rejected() -> None:
    data = example()
    data["scores"]["fire"]["sources"] = []
    with pytest.raises(RiskAssessmentRejected, match="unsourced score for category 'fire'"):
        evaluate(data, TOOL, BufferMethod.flat())
    del data["scores"]["fire"]["sources"]
    with pytest.raises(RiskAssessmentRejected, match="unsourced score for category 'fire'"):
        evaluate(data, TOOL, BufferMethod.flat())


def test_unknown_category_is_rejected() -> None:
    data = example()
    data["scores"]["volcano"] = copy.deepcopy(data["scores"]["geological"])
    with pytest.raises(RiskAssessmentRejected, match="unknown category 'volcano'"):
        evaluate(data, TOOL, BufferMethod.flat())


def test_unknown_source_kind_is_rejected() -> None:
    data = example()
    data["scores"]["management"]["sources"][0]["kind"] = "hearsay"
    with pytest.raises(RiskAssessmentRejected) as caught:
        parse_assessment(data)
    message = str(caught.value)
    assert "scores.management.sources[0].kind" in message
    assert "'hearsay' is not a source kind" in message


def test_rate_below_profile_minimum_is_rejected() -> None:
    with pytest.raises(RiskAssessmentRejected) as caught:
        evaluate(example(), TOOL, BufferMethod.flat(0.08), minimum_rate=0.10)
    assert str(caught.value) == "buffer rate 0.0800 is below the profile minimum 0.1000"
    lenient = evaluate(example(), TOOL, BufferMethod.flat(0.08), minimum_rate=0.10, strict=False)
    assert not lenient.passed and lenient.rating == "fail"
    assert evaluate(example(), TOOL, BufferMethod.flat(0.10), minimum_rate=0.10).passed


def test_additive_over_a_fail_threshold_fails() -> None:
    data = scored({"financial": 25.0})
    with pytest.raises(RiskAssessmentRejected, match="'financial' score 25 is over its fail"):
        evaluate(data, TOOL, BufferMethod.additive())
    result = evaluate(data, TOOL, BufferMethod.additive(), strict=False)
    assert result.passed is False
    assert result.rating == "fail"
    assert result.failures == ["category 'financial' score 25 is over its fail threshold 20"]
    # A profile can set its own thresholds; then the tool's do not apply.
    custom = BufferMethod.additive(fail_thresholds={"financial": 30.0})
    assert evaluate(data, TOOL, custom).passed


def test_additive_over_the_maximum_fails_or_caps() -> None:
    data = scored({"fire": 30.0, "pests_disease": 20.0, "extreme_weather": 15.0})
    with pytest.raises(
        RiskAssessmentRejected, match="total risk 0.6500 exceeds the maximum 0.6000"
    ):
        evaluate(data, TOOL, BufferMethod.additive())
    capped = evaluate(data, TOOL, BufferMethod.additive(over_maximum="cap"))
    assert capped.passed and capped.buffer_rate == 0.60


def test_other_structural_faults_are_rejected() -> None:
    trend = scored({}, trends={"financial": 0.02})
    with pytest.raises(RiskAssessmentRejected, match="'financial' is not a natural hazard"):
        evaluate(trend, TOOL, BufferMethod.flat())
    out_of_scale = scored({"fire": 120.0})
    with pytest.raises(RiskAssessmentRejected, match=r"scores.fire.score: 120.0 is outside 0..100"):
        evaluate(out_of_scale, TOOL, BufferMethod.flat())
    old = scored({})
    old["tool_version"] = "0.9.0"
    with pytest.raises(RiskAssessmentRejected, match="tool_version"):
        evaluate(old, TOOL, BufferMethod.flat())
    undated = scored({})
    undated["assessed_on"] = "last spring"
    with pytest.raises(RiskAssessmentRejected, match="assessed_on"):
        parse_assessment(undated)


def test_invalid_methods_are_rejected() -> None:
    with pytest.raises(RiskAssessmentRejected, match=r"method.rate: 1.5 is not within \[0, 1\]"):
        BufferMethod.flat(1.5)
    with pytest.raises(RiskAssessmentRejected, match="method.minimum"):
        BufferMethod.additive(minimum=0.7, maximum=0.6)
    with pytest.raises(RiskAssessmentRejected, match="method.kind"):
        BufferMethod(kind="lottery")  # type: ignore[arg-type]
    with pytest.raises(RiskAssessmentRejected, match="unknown category 'drought'"):
        evaluate(scored({}), TOOL, BufferMethod.additive(fail_thresholds={"drought": 5.0}))


# --------------------------------------------------------------------------- methods


def test_flat_rate_ignores_scores() -> None:
    result = evaluate(example(), TOOL, BufferMethod.flat())
    assert result.buffer_rate == 0.20
    assert result.rating == "medium"
    assert evaluate(scored({"fire": 50.0}), TOOL, BufferMethod.flat(0.1)).rating == "low"


def test_additive_sums_points_with_minimum() -> None:
    data = scored({"fire": 5.0, "pests_disease": 3.0, "financial": 4.0, "management": 2.5})
    assert evaluate(data, TOOL, BufferMethod.additive()).buffer_rate == 0.145
    low = scored({"fire": 2.0, "financial": 1.0})
    assert evaluate(low, TOOL, BufferMethod.additive()).buffer_rate == 0.12


def test_multiplicative_carb_style() -> None:
    carb = scored({"fire": 3.0, "pests_disease": 3.0, "extreme_weather": 3.0})
    result = evaluate(carb, TOOL, BufferMethod.multiplicative())
    assert result.buffer_rate == 0.0873
    assert result.buffer_rate == round(1 - 0.97**3, 4)
    assert result.combined_period_risk == pytest.approx(1 - 0.97**3)
    assert result.period_risk["fire"] == 0.03


def test_score_maps_to_annual_probability() -> None:
    result = evaluate(scored({"fire": 4.0, "financial": 2.0}), TOOL, BufferMethod.flat())
    assert result.annual_probability["fire"] == pytest.approx(1 - 0.96 ** (1 / 100))
    assert result.annual_probability["geological"] == 0.0
    # Over the reference period the annual probability compounds back to the score.
    assert (1 - result.annual_probability["fire"]) ** 100 == pytest.approx(0.96)
    expected = 1 - (1 - result.annual_probability["fire"]) * (
        1 - result.annual_probability["financial"]
    )
    assert result.combined_annual_probability == pytest.approx(expected)


def test_climate_trend_raises_period_risk_and_the_rate() -> None:
    still = evaluate(scored({"fire": 4.0}), TOOL, BufferMethod.multiplicative())
    warming = evaluate(
        scored({"fire": 4.0}, trends={"fire": 0.02}), TOOL, BufferMethod.multiplicative()
    )
    assert warming.annual_probability["fire"] == still.annual_probability["fire"]
    p = still.annual_probability["fire"]
    expected = 1 - math.prod(1 - p * 1.02**t for t in range(100))
    assert warming.period_risk["fire"] == pytest.approx(expected)
    assert warming.buffer_rate > still.buffer_rate == 0.04
    assert warming.annual_trend["fire"] == 0.02


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=5_000), min_size=8, max_size=8))
def test_multiplicative_rate_lies_between_largest_and_sum(hundredths: list[int]) -> None:
    scores = {name: h / 100 for name, h in zip(CATEGORIES, hundredths, strict=True)}
    result = evaluate(scored(scores), TOOL, BufferMethod.multiplicative())
    risks = [s / 100 for s in scores.values()]
    assert max(risks) - 1e-9 <= result.buffer_rate <= sum(risks) + 1e-9


# --------------------------------------------------------------------------- reassessment


def test_reassessment_due_is_calendar_addition() -> None:
    assert reassessment_due(date(2024, 2, 29), 1) == date(2025, 2, 28)
    assert reassessment_due(date(2024, 2, 29), 4) == date(2028, 2, 29)
    assert reassessment_due(date(2025, 3, 1), 5) == date(2030, 3, 1)
    for bad in (0, 6):
        with pytest.raises(RiskAssessmentRejected, match="interval_years"):
            reassessment_due(date(2025, 1, 1), bad)


def test_risk_errors_belong_to_the_ledgers_family() -> None:
    """Faces map LedgerError subclasses in one place: a rejection 400/exit 1, NotFound 404."""
    from ledger.errors import InvalidCommand, LedgerError, NotFound
    from risk.errors import StressTestRejected, UnknownPool

    assert issubclass(RiskAssessmentRejected, InvalidCommand)
    assert issubclass(StressTestRejected, InvalidCommand)
    assert issubclass(UnknownPool, NotFound) and issubclass(NotFound, LedgerError)
    with pytest.raises(InvalidCommand, match="no risk tool named"):
        load_risk_tool("nprt-9")
