"""Project-level risk assessment (ICVCM CIWP recommendation 4), as pure domain code.

A *risk tool* is data (``risk/risk_tools/<name>.json``): its categories, whether each is a
natural hazard with a climate trend, and how a score maps to a reversal probability. An
*assessment* scores every category of one tool version from named, typed data sources; a
:class:`BufferMethod` turns it into a buffer rate (flat, additive as in the Verra NPRT, or
multiplicative as in the CARB forest protocol).

Score scale (see the tool JSON): a score is in percentage points, the share of the credited
stock expected to be reversed through that category over the tool's reference period (100
years). Annual probability ``p = 1 - (1 - score/100) ** (1/T)``; a natural hazard's
``annual_trend`` g raises it to ``p * (1 + g) ** t`` in year t, which raises the category's
period risk ``r`` that the additive and multiplicative methods use.

The caller reads an assessment from TOML with ``tomllib`` and hands the dict to
:func:`parse_assessment` or :func:`evaluate`. TOML shape::

    project = "VCS-1234"
    assessed_on = 2025-03-01          # a TOML date (or an ISO string)
    tool = "permanence-risk-tool"
    tool_version = "1.0.0"
    assessor = "Jane Doe, Example Verifiers"   # optional
    notes = "..."                              # optional

    [scores.fire]                     # one table per category of the tool, all required
    score = 4.0                       # points, 0..100
    annual_trend = 0.02               # natural hazards only; default 0
    notes = "..."                     # optional
    [[scores.fire.sources]]           # at least one source per score
    name = "MTBS burned-area record 1984-2022"
    kind = "public_dataset"           # peer_reviewed | public_dataset | proprietary | expert_judgement
    reference = "https://www.mtbs.gov/"   # optional

``scores`` may also be a list of tables each carrying ``category``. See
``tests/fixtures/assessment-example.toml``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from importlib import resources
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from risk.errors import RiskAssessmentRejected

SourceKind = Literal["peer_reviewed", "public_dataset", "proprietary", "expert_judgement"]
MethodKind = Literal["flat", "additive", "multiplicative"]
SOURCE_KINDS: tuple[str, ...] = get_args(SourceKind)
REASSESSMENT_YEARS = (1, 5)
"""CIWP recommendation 4: reassess every 1 to 5 years."""

_TOOL_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


# --------------------------------------------------------------------------- the tool, as data


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ScoreScale(_Frozen):
    """How a category score maps to a reversal probability (documented in the tool JSON)."""

    unit: Literal["percentage_points"]
    minimum: float = 0.0
    maximum: float = 100.0
    reference_period_years: int = Field(gt=0)
    meaning: str = ""
    climate_trend: str = ""
    fail_threshold: str = ""


class RiskCategory(_Frozen):
    """One category of the tool; natural hazards may carry a climate trend."""

    id: str
    label: str
    natural: bool
    fail_threshold: float | None = None
    description: str = ""


class Rating(_Frozen):
    """A rating band: the rating applies up to and including ``max_buffer_rate``."""

    rating: str
    max_buffer_rate: float


class ReassessmentInterval(_Frozen):
    """Bounds on the reassessment interval, in years."""

    minimum: int
    maximum: int
    source: str = ""


class RiskTool(_Frozen):
    """A named, versioned risk tool: categories, score scale and rating bands."""

    name: str
    version: str
    title: str = ""
    description: str = ""
    score_scale: ScoreScale
    reassessment_interval_years: ReassessmentInterval
    source_kinds: dict[str, str]
    ratings: list[Rating]
    categories: list[RiskCategory]

    def category(self, category_id: str) -> RiskCategory:
        """Return the category, or reject an id the tool does not know."""
        for candidate in self.categories:
            if candidate.id == category_id:
                return candidate
        known = ", ".join(c.id for c in self.categories)
        raise RiskAssessmentRejected(
            f"unknown category {category_id!r} for tool {self.name} {self.version} (known: {known})"
        )

    @property
    def category_ids(self) -> list[str]:
        """Category ids in the tool's order."""
        return [c.id for c in self.categories]


def load_risk_tool(name: str = "permanence-risk-tool") -> RiskTool:
    """Load a packaged risk tool by name (``risk/risk_tools/<name>.json``)."""
    if not _TOOL_NAME.match(name):
        raise RiskAssessmentRejected(f"tool: {name!r} is not a valid risk tool name")
    resource = resources.files("risk") / "risk_tools" / f"{name}.json"
    if not resource.is_file():
        raise RiskAssessmentRejected(f"tool: no risk tool named {name!r}")
    return risk_tool_from_dict(json.loads(resource.read_text(encoding="utf-8")))


def risk_tool_from_dict(data: Mapping[str, Any]) -> RiskTool:
    """Validate a risk tool document, so a malformed tool fails at load, not at evaluation."""
    try:
        tool = RiskTool.model_validate(dict(data))
    except ValidationError as exc:
        raise RiskAssessmentRejected(f"risk tool: {_first_error(exc)}") from None
    _check_tool(tool)
    return tool


def _check_tool(tool: RiskTool) -> None:
    ids = tool.category_ids
    if len(set(ids)) != len(ids):
        raise RiskAssessmentRejected(f"risk tool {tool.name}: duplicate category ids in {ids}")
    if set(tool.source_kinds) != set(SOURCE_KINDS):
        raise RiskAssessmentRejected(
            f"risk tool {tool.name}: source_kinds must be exactly {', '.join(SOURCE_KINDS)}"
        )
    bands = [r.max_buffer_rate for r in tool.ratings]
    if not bands or bands != sorted(bands) or bands[-1] < 1.0:
        raise RiskAssessmentRejected(
            f"risk tool {tool.name}: ratings must ascend and the last must reach 1.0"
        )


# --------------------------------------------------------------------------- an assessment


class DataSource(_Frozen):
    """A named source behind a score, tagged with its kind."""

    name: str = Field(min_length=1)
    kind: SourceKind
    reference: str | None = None


class CategoryScore(_Frozen):
    """One category's score, its sources and (natural hazards) its annual climate trend."""

    category: str
    score: float
    sources: list[DataSource] = Field(default_factory=list)
    annual_trend: float = 0.0
    notes: str | None = None


class Assessment(_Frozen):
    """A project's assessment against one version of one risk tool."""

    project: str = Field(min_length=1)
    assessed_on: date
    tool: str
    tool_version: str
    scores: list[CategoryScore]
    assessor: str | None = None
    notes: str | None = None

    def score_for(self, category: str) -> CategoryScore:
        """Return the score of one category (KeyError if absent)."""
        for entry in self.scores:
            if entry.category == category:
                return entry
        raise KeyError(category)


def parse_assessment(data: Mapping[str, Any]) -> Assessment:
    """Turn a TOML/JSON-shaped dict into an :class:`Assessment`, naming any bad field."""
    if not isinstance(data, Mapping):
        raise RiskAssessmentRejected("assessment: expected a table of fields")
    body = dict(data)
    raw_scores = body.pop("scores", None)
    if raw_scores is None:
        raise RiskAssessmentRejected("scores: missing; every category needs a score")
    scores = [_parse_score(category, entry) for category, entry in _score_entries(raw_scores)]
    try:
        assessment = Assessment.model_validate({**body, "scores": scores})
    except ValidationError as exc:
        raise RiskAssessmentRejected(_first_error(exc)) from None
    _check_unique(assessment)
    return assessment


def _score_entries(raw: Any) -> list[tuple[str, Mapping[str, Any]]]:
    """Accept ``{category: {...}}`` (the TOML shape) or ``[{category: ..., ...}]``."""
    if isinstance(raw, Mapping):
        entries = [(str(k), v) for k, v in raw.items()]
    elif isinstance(raw, list):
        entries = [(str(v.get("category", "")) if isinstance(v, Mapping) else "", v) for v in raw]
    else:
        raise RiskAssessmentRejected("scores: expected a table per category or a list of tables")
    for category, entry in entries:
        if not isinstance(entry, Mapping):
            raise RiskAssessmentRejected(f"scores.{category}: expected a table")
    return entries


def _parse_score(category: str, entry: Mapping[str, Any]) -> CategoryScore:
    if not category:
        raise RiskAssessmentRejected("scores: an entry has no category")
    if "score" not in entry:
        raise RiskAssessmentRejected(f"scores.{category}.score: missing")
    _check_source_kinds(category, entry.get("sources", []))
    try:
        return CategoryScore.model_validate({**entry, "category": category})
    except ValidationError as exc:
        raise RiskAssessmentRejected(f"scores.{category}.{_first_error(exc)}") from None


def _check_source_kinds(category: str, sources: Any) -> None:
    """Name the offending kind plainly rather than pass on pydantic's literal error."""
    if not isinstance(sources, list):
        raise RiskAssessmentRejected(f"scores.{category}.sources: expected a list of tables")
    for index, source in enumerate(sources):
        kind = source.get("kind") if isinstance(source, Mapping) else None
        if kind not in SOURCE_KINDS:
            raise RiskAssessmentRejected(
                f"scores.{category}.sources[{index}].kind: {kind!r} is not a source kind "
                f"(one of {', '.join(SOURCE_KINDS)})"
            )


def _check_unique(assessment: Assessment) -> None:
    seen: set[str] = set()
    for entry in assessment.scores:
        if entry.category in seen:
            raise RiskAssessmentRejected(f"scores.{entry.category}: scored more than once")
        seen.add(entry.category)


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "value"
    return f"{where}: {error['msg']} (got {error.get('input')!r})"


# --------------------------------------------------------------------------- buffer methods


@dataclass(frozen=True)
class BufferMethod:
    """How scores become a buffer rate; the program profile chooses it.

    ``flat``: ``rate`` (default 0.20). ``additive``: sum of category period risks, at least
    ``minimum``; above ``maximum`` it FAILS (``over_maximum="fail"``, as in the NPRT) or is
    capped; a category score above its fail threshold (points) FAILS. ``multiplicative``:
    ``1 - prod(1 - r_i)``, optionally bounded by ``minimum``/``maximum``.
    """

    kind: MethodKind
    rate: float | None = None
    minimum: float | None = None
    maximum: float | None = None
    fail_thresholds: Mapping[str, float] | None = None
    over_maximum: Literal["fail", "cap"] = "fail"

    def __post_init__(self) -> None:
        if self.kind not in get_args(MethodKind):
            raise RiskAssessmentRejected(
                f"method.kind: {self.kind!r} is not one of {', '.join(get_args(MethodKind))}"
            )
        for name in ("rate", "minimum", "maximum"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise RiskAssessmentRejected(f"method.{name}: {value} is not within [0, 1]")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise RiskAssessmentRejected(
                f"method.minimum: {self.minimum} is above method.maximum {self.maximum}"
            )
        if self.kind == "flat" and self.rate is None:
            object.__setattr__(self, "rate", 0.20)

    @classmethod
    def flat(cls, rate: float = 0.20) -> BufferMethod:
        """A flat share of issuance (the ICVCM 20% option)."""
        return cls(kind="flat", rate=rate)

    @classmethod
    def additive(
        cls,
        minimum: float = 0.12,
        maximum: float = 0.60,
        fail_thresholds: Mapping[str, float] | None = None,
        over_maximum: Literal["fail", "cap"] = "fail",
    ) -> BufferMethod:
        """Verra NPRT style; ``fail_thresholds`` None uses the tool's own thresholds."""
        return cls("additive", None, minimum, maximum, fail_thresholds, over_maximum)

    @classmethod
    def multiplicative(
        cls, minimum: float | None = None, maximum: float | None = None
    ) -> BufferMethod:
        """CARB style: ``1 - prod(1 - r_i)``."""
        return cls(kind="multiplicative", minimum=minimum, maximum=maximum)


class RiskResult(_Frozen):
    """The outcome of evaluating one assessment with one method."""

    project: str
    assessed_on: date
    tool: str
    tool_version: str
    method: MethodKind
    annual_probability: dict[str, float]
    annual_trend: dict[str, float]
    period_risk: dict[str, float]
    combined_annual_probability: float
    combined_period_risk: float
    buffer_rate: float
    rating: str
    passed: bool
    failures: list[str]


def evaluate(
    assessment_dict: Mapping[str, Any] | Assessment,
    tool: RiskTool,
    method: BufferMethod,
    minimum_rate: float | None = None,
    strict: bool = True,
) -> RiskResult:
    """Validate an assessment against its tool and compute its buffer rate.

    A structural fault (unknown or missing category, unsourced score, bad source kind, trend
    on a non-natural category, out-of-scale score, wrong tool) always raises. A FAIL (over a
    fail threshold or the maximum) or a rate below ``minimum_rate`` (the program profile's
    minimum) raises when ``strict``; otherwise it is reported with ``passed=False``.
    """
    assessment = (
        assessment_dict
        if isinstance(assessment_dict, Assessment)
        else parse_assessment(assessment_dict)
    )
    _check_against_tool(assessment, tool)
    years = tool.score_scale.reference_period_years
    scores = {entry.category: entry for entry in assessment.scores}
    ordered = [scores[c] for c in tool.category_ids]
    annual = {e.category: annual_probability(e.score, years) for e in ordered}
    period = {
        e.category: period_risk(annual[e.category], e.annual_trend, years, e.score) for e in ordered
    }
    rate, failures = _buffer_rate(method, tool, scores, period)
    if minimum_rate is not None and rate < minimum_rate:
        failures.append(f"buffer rate {rate:.4f} is below the profile minimum {minimum_rate:.4f}")
    if failures and strict:
        raise RiskAssessmentRejected("; ".join(failures))
    return RiskResult(
        project=assessment.project,
        assessed_on=assessment.assessed_on,
        tool=tool.name,
        tool_version=tool.version,
        method=method.kind,
        annual_probability=annual,
        annual_trend={e.category: e.annual_trend for e in ordered},
        period_risk=period,
        combined_annual_probability=_combine(annual.values()),
        combined_period_risk=_combine(period.values()),
        buffer_rate=rate,
        rating="fail" if failures else _rating(tool, rate),
        passed=not failures,
        failures=failures,
    )


def _check_against_tool(assessment: Assessment, tool: RiskTool) -> None:
    if assessment.tool != tool.name:
        raise RiskAssessmentRejected(
            f"tool: assessment uses {assessment.tool!r}, evaluated with {tool.name!r}"
        )
    if assessment.tool_version != tool.version:
        raise RiskAssessmentRejected(
            f"tool_version: assessment uses {assessment.tool_version!r}, "
            f"tool {tool.name} is version {tool.version!r}"
        )
    for entry in assessment.scores:
        _check_score(entry, tool.category(entry.category), tool.score_scale)
    scored = {entry.category for entry in assessment.scores}
    missing = [c for c in tool.category_ids if c not in scored]
    if missing:
        raise RiskAssessmentRejected(f"scores: missing category {', '.join(map(repr, missing))}")


def _check_score(entry: CategoryScore, category: RiskCategory, scale: ScoreScale) -> None:
    name = entry.category
    if not entry.sources:
        raise RiskAssessmentRejected(f"unsourced score for category {name!r}")
    if not (math.isfinite(entry.score) and scale.minimum <= entry.score <= scale.maximum):
        raise RiskAssessmentRejected(
            f"scores.{name}.score: {entry.score} is outside {scale.minimum:g}..{scale.maximum:g}"
        )
    if not category.natural and entry.annual_trend != 0:
        raise RiskAssessmentRejected(
            f"scores.{name}.annual_trend: {name!r} is not a natural hazard; its trend must be 0"
        )
    if not (math.isfinite(entry.annual_trend) and entry.annual_trend > -1):
        raise RiskAssessmentRejected(
            f"scores.{name}.annual_trend: {entry.annual_trend} must be greater than -1"
        )


def annual_probability(score: float, reference_period_years: int) -> float:
    """The constant annual probability whose period risk is ``score`` percent."""
    risk = score / 100.0
    if risk >= 1.0:
        return 1.0
    return -math.expm1(math.log1p(-risk) / reference_period_years)


def period_risk(annual: float, trend: float, reference_period_years: int, score: float) -> float:
    """Risk over the reference period with a rising hazard; exactly ``score/100`` without trend."""
    if trend == 0:
        return score / 100.0
    survival = 0.0
    for year in range(reference_period_years):
        hazard = min(1.0, annual * (1.0 + trend) ** year)
        if hazard >= 1.0:
            return 1.0
        survival += math.log1p(-hazard)
    return -math.expm1(survival)


def _combine(probabilities: Iterable[float]) -> float:
    """1 - prod(1 - p): the chance that at least one independent category strikes."""
    values = list(probabilities)
    if any(p >= 1.0 for p in values):
        return 1.0
    return -math.expm1(math.fsum(math.log1p(-p) for p in values))


def _buffer_rate(
    method: BufferMethod,
    tool: RiskTool,
    scores: Mapping[str, CategoryScore],
    period: Mapping[str, float],
) -> tuple[float, list[str]]:
    if method.kind == "flat":
        return round(float(method.rate or 0.0), 4), []
    if method.kind == "multiplicative":
        raw = _combine(period.values())
        return round(_bounded(raw, method.minimum, method.maximum), 4), []
    return _additive_rate(method, tool, scores, period)


def _additive_rate(
    method: BufferMethod,
    tool: RiskTool,
    scores: Mapping[str, CategoryScore],
    period: Mapping[str, float],
) -> tuple[float, list[str]]:
    failures = _threshold_failures(method, tool, scores)
    raw = math.fsum(period.values())
    if method.maximum is not None and raw > method.maximum and method.over_maximum == "fail":
        failures.append(f"total risk {raw:.4f} exceeds the maximum {method.maximum:.4f}")
    return round(_bounded(raw, method.minimum, method.maximum), 4), failures


def _threshold_failures(
    method: BufferMethod, tool: RiskTool, scores: Mapping[str, CategoryScore]
) -> list[str]:
    if method.fail_thresholds is None:
        thresholds = {c.id: c.fail_threshold for c in tool.categories}
    else:
        for name in method.fail_thresholds:
            tool.category(name)
        thresholds = dict(method.fail_thresholds)
    failures = []
    for name in tool.category_ids:
        limit = thresholds.get(name)
        if limit is not None and scores[name].score > limit:
            failures.append(
                f"category {name!r} score {scores[name].score:g} is over its fail threshold {limit:g}"
            )
    return failures


def _bounded(value: float, minimum: float | None, maximum: float | None) -> float:
    if minimum is not None:
        value = max(value, minimum)
    if maximum is not None:
        value = min(value, maximum)
    return value


def _rating(tool: RiskTool, rate: float) -> str:
    for band in tool.ratings:
        if rate <= band.max_buffer_rate:
            return band.rating
    return tool.ratings[-1].rating


# --------------------------------------------------------------------------- reassessment


def reassessment_due(last_assessed: date, interval_years: int) -> date:
    """The date the next assessment is due: calendar addition (29 Feb + 1 y = 28 Feb)."""
    low, high = REASSESSMENT_YEARS
    if isinstance(interval_years, bool) or not isinstance(interval_years, int):
        raise RiskAssessmentRejected(f"interval_years: {interval_years!r} is not a whole number")
    if not low <= interval_years <= high:
        raise RiskAssessmentRejected(
            f"interval_years: {interval_years} is outside the CIWP range {low}..{high}"
        )
    try:
        return last_assessed.replace(year=last_assessed.year + interval_years)
    except ValueError:
        return last_assessed.replace(year=last_assessed.year + interval_years, day=28)


__all__ = [
    "Assessment",
    "BufferMethod",
    "CategoryScore",
    "DataSource",
    "RiskAssessmentRejected",
    "RiskCategory",
    "RiskResult",
    "RiskTool",
    "annual_probability",
    "evaluate",
    "load_risk_tool",
    "parse_assessment",
    "period_risk",
    "reassessment_due",
    "risk_tool_from_dict",
]
