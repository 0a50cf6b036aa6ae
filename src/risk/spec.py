"""The stress-test parameters: one pydantic model that every face validates into.

The CLI builds it from its options, the HTTP API takes it as the JSON body (or the query
of a GET), so the same value is checked the same way wherever it comes from. A value out
of range names its field; the faces add only their own limits (the API's compute budget).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from ledger.calendar import parse_iso_date
from ledger.limits import EARLIEST, LATEST, MAX_TONNES
from risk.choices import MODEL_HELP, RegionBy, StressModel
from risk.engine import DEFAULT_LEVEL, CatastropheParams
from risk.errors import StressTestRejected
from risk.pool_contents import ContentsOptions


def _day(value: Any, field: str) -> date | None:
    if value is None or (isinstance(value, date) and not isinstance(value, datetime)):
        day = value
    elif isinstance(value, str):
        day = parse_iso_date(value.strip(), field)
    else:
        raise ValueError(f"{field}: {value!r} is not a date in the form YYYY-MM-DD")
    if day is not None and not EARLIEST <= day <= LATEST:
        raise ValueError(f"{field}: {day} is outside {EARLIEST} to {LATEST}")
    return day


def _instant(value: Any) -> datetime | None:
    """An ISO timestamp in UTC; a bare date is the end of that day (UTC), naive is UTC."""
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and len(value.strip()) == 10:
        d = parse_iso_date(value.strip(), "known_at")
        return datetime(d.year, d.month, d.day, 23, 59, 59, 999999, tzinfo=UTC)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"known_at: {value!r} is not an ISO timestamp") from None
    else:
        raise ValueError(f"known_at: {value!r} is not an ISO timestamp")
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"known_at: {value!r} falls outside years 1 to 9999 in UTC") from None


def parse_allocations(value: Any) -> Any:
    """Backtest sub-allocations: a table, or ``CAUSE=CREDITS`` texts (``wildfire=5950000``)."""
    if value is None:
        return {}
    if isinstance(value, Mapping) or not isinstance(value, Sequence) or isinstance(value, str):
        return value
    out: dict[str, int] = {}
    for item in value:
        name, sep, amount = str(item).partition("=")
        raw = amount.strip().replace("_", "")
        if not sep or not name.strip() or not raw.isascii() or not raw.isdigit() or int(raw) < 1:
            raise ValueError(
                f"allocation: {item!r} is not CAUSE=CREDITS (a positive whole number)"
            )
        out[name.strip()] = int(raw)
    return out


Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Level = Annotated[float, Field(gt=0.0, lt=1.0)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=64,
                                        pattern=r"^[^\x00-\x1f\x7f-\x9f]*$")]
Tonnes = Annotated[int, Field(ge=1, le=MAX_TONNES)]
AsOf = Annotated[date | None, BeforeValidator(lambda v: _day(v, "as_of"))]
Since = Annotated[date | None, BeforeValidator(lambda v: _day(v, "since"))]
KnownAt = Annotated[datetime | None, BeforeValidator(_instant)]
Allocations = Annotated[dict[Name, Tonnes], BeforeValidator(parse_allocations)]


class StressSpec(BaseModel):
    """One stress test, as ``permanence stress-test`` and ``/stress-test`` take it."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    model: StressModel = Field(StressModel.independent, description="The loss model.")
    pool: Name | None = Field(None, description="Pool (default: the ledger's only pool).")
    as_of: AsOf = Field(None, description=f"Business date YYYY-MM-DD, {EARLIEST} to {LATEST} "
                        "(default today).")
    known_at: KnownAt = Field(None, description=(
        "Only what had been recorded by this ISO timestamp (a bare date: the end of that day, "
        "UTC)."))
    scenarios: int = Field(10_000, ge=1, description="Simulated futures.")
    horizon: int = Field(100, ge=1, description="Years simulated, numbered from 1.")
    seed: int = Field(0, ge=0, le=2**63 - 1, description="Random seed (same seed, same result).")
    level: list[Level] = Field(default_factory=lambda: [DEFAULT_LEVEL], min_length=1,
                               max_length=8, description="VaR/ES levels, each within (0, 1).")
    target_ruin: float | None = Field(None, ge=0.0, lt=1.0, description=(
        "Find the buffer rate keeping P(exhausted) at or under this probability."))
    loss_fraction: Probability = Field(1.0, description="Share of a project lost per event.")
    avoidable_share: Probability = Field(0.0, description=(
        "Avoidable share of a loss, for projects without assessed categories."))
    default_probability: Probability = Field(0.5, description=(
        "Chance a proponent defaults on an avoidable loss (default, combined)."))
    hazard_trend: float = Field(0.02, gt=-1.0, le=1.0, description=(
        "Yearly growth of the hazard (rising, combined), above -1 and at most 1."))
    annual_contributions: int = Field(0, ge=0, le=MAX_TONNES, description=(
        "Credits added to the pool at each year's end."))
    region_by: RegionBy = Field(RegionBy.program, description="What a catastrophe region is.")
    cat_probability: Probability = Field(0.02, description=(
        "Annual chance a region is struck (catastrophe, combined)."))
    cat_probability_multiplier: float = Field(5.0, ge=1.0, le=1_000.0)
    cat_loss_multiplier: float = Field(1.5, ge=1.0, le=1_000.0)
    allocation: Allocations = Field(default_factory=dict, max_length=32, description=(
        "Backtest: cause -> credits of each sub-allocation."))
    since: Since = Field(None, description=(
        "Backtest: replay from this date's year (default: the first loss's)."))
    pool_size: Tonnes | None = Field(None, description="Stylised: credits in the pool.")
    event_loss: Tonnes | None = Field(None, description="Stylised: credits lost per event.")
    annual_probability: Probability | None = Field(None, description=(
        "Stylised: chance of an event each year."))

    @model_validator(mode="after")
    def _stylised_needs_its_pool(self) -> StressSpec:
        if self.model is StressModel.stylised:
            missing = [n for n in ("pool_size", "event_loss", "annual_probability")
                       if getattr(self, n) is None]
            if missing:
                names = ", ".join(f"{n} (--{n.replace('_', '-')})" for n in missing)
                raise ValueError(f"stylised: the stylised pool needs {names}")
        return self

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> StressSpec:
        """Validate plain values; a bad one is :class:`StressTestRejected` naming its field."""
        try:
            return cls.model_validate(dict(values))
        except ValidationError as e:
            raise StressTestRejected(first_problem(e)) from None

    @property
    def levels(self) -> tuple[float, ...]:
        """The VaR/ES levels."""
        return tuple(self.level)

    @property
    def simulated(self) -> bool:
        """A Monte Carlo run (every model but the backtest)."""
        return self.model is not StressModel.backtest

    @property
    def on_a_pool(self) -> bool:
        """A run on one of the ledger's pools (every model but the stylised pool)."""
        return self.model is not StressModel.stylised

    def options(self) -> ContentsOptions:
        """The assumptions stated beside the ledger's own figures."""
        return ContentsOptions(
            self.loss_fraction, self.avoidable_share, self.default_probability,
            self.hazard_trend, self.annual_contributions, self.region_by.value,
        )

    def catastrophe(self) -> CatastropheParams:
        """The regional shock assumed by the catastrophe and combined models."""
        return CatastropheParams(
            self.cat_probability, self.cat_probability_multiplier, self.cat_loss_multiplier
        )

    def naming(self, pool: str) -> StressSpec:
        """The same test of a named pool."""
        return self.model_copy(update={"pool": pool})

    def parameters(self) -> dict[str, Any]:
        """The request as published with the run (pool figures are added by the runner)."""
        model = self.model.value
        out: dict[str, Any] = {"model": model}
        if self.model is StressModel.stylised:
            out |= {
                "pool_size": self.pool_size,
                "event_loss": self.event_loss,
                "annual_probability": self.annual_probability,
            }
        else:
            out |= {"pool": self.pool, "as_of": self.as_of.isoformat() if self.as_of else None}
            if self.known_at is not None:
                out["known_at"] = self.known_at.isoformat()
        if self.model is StressModel.backtest:
            out |= {
                "allocations": dict(self.allocation),
                "since": self.since.isoformat() if self.since else None,
                "annual_contributions": self.annual_contributions,
            }
            return out
        out |= {"scenarios": self.scenarios, "horizon": self.horizon, "seed": self.seed,
                "levels": list(self.level), "target_ruin": self.target_ruin}
        if self.model is not StressModel.stylised:
            out["assumptions"] = asdict(self.options())
        if self.model in (StressModel.catastrophe, StressModel.combined):
            out["catastrophe"] = self.catastrophe().to_dict()
        return out


def first_problem(error: ValidationError) -> str:
    """One line naming the field and the problem (a cross-field check names its own)."""
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    if not where or message.startswith(f"{where}:"):
        return message
    return f"{where}: {message}"


__all__ = [
    "MODEL_HELP",
    "RegionBy",
    "StressModel",
    "StressSpec",
    "first_problem",
    "parse_allocations",
]
