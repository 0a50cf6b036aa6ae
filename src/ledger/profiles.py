"""Program rule profiles: each program's permanence rules as versioned data with sources.

Rules are data, not ``if program == ...`` branches: a vintage snapshots the rules it was
issued under (:class:`Rules`), so replaying its stream gives the same answers even after a
profile file changes. A registry adds its own profile as a JSON file of the same shape.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ledger.classification import Classification, floor_violations
from ledger.errors import ProfileRejected, UnknownProgram

T = TypeVar("T")
Confidence = Literal["V", "S", "M"]
Clock = Literal["issuance", "crediting_period"]
LiabilityBasis = Literal["none", "buffer_contribution", "all_issued"]
BufferMethod = Literal["flat", "additive", "multiplicative", "per_method", "none"]

ICVCM_MIN_PERIOD_YEARS = 40
#: CIWP recommendations 3 and 4: reassess project risk and stress-test the pool at least
#: every five years.
CCP_MAX_REASSESSMENT_YEARS = 5
CCP_MAX_STRESS_TEST_YEARS = 5
_BASIS_STRENGTH = {"none": 0, "buffer_contribution": 1, "all_issued": 2}


class Rule(BaseModel, Generic[T]):
    """One rule's value and where it comes from (V read, S secondary, M unverified)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    value: T
    source: str = Field(min_length=1)
    confidence: Confidence
    note: str | None = None


class Rules(BaseModel):
    """The values a vintage needs from its profile, snapshotted into its ``Issued`` event."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    profile: str
    profile_version: str
    period_years: int
    clock: Clock = "issuance"
    whichever_later: bool = False
    verification_interval_years: int | None = None
    grace_days: int = 0
    liability_basis: LiabilityBasis = "buffer_contribution"
    lapse_curable: bool = False
    lapse_holds_buffer: bool = False
    surrender_deadline_days: int | None = None
    risk_reassessment_years: int | None = None
    minimum_buffer_rate: float | None = None
    classification_overrides: dict[str, Classification] = Field(default_factory=dict)


class ReversalScope(BaseModel):
    """Which project types carry a reversal obligation under a program (why: destroyed gases
    and avoided emissions cannot reverse, so they must carry no exposure, lapse or buffer).

    Each entry is a case-insensitive regular expression searched in a row's project type,
    methodology or protocol; ``reversible`` is tried first, so a text naming both (a biogas
    project on forest land) keeps the obligation. No match is "unknown": the importing format
    decides, and says so.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    reversible: tuple[str, ...] = ()
    non_reversible: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _check_patterns(self) -> ReversalScope:
        for pattern in self.reversible + self.non_reversible:
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"pattern {pattern!r} is not a regular expression: {e}") from None
        return self

    def classify(self, *texts: str | None) -> bool | None:
        """True (can reverse), False (cannot), or None when no pattern names any text."""
        found = [t for t in texts if t]
        for patterns, answer in ((self.reversible, True), (self.non_reversible, False)):
            for pattern in patterns:
                if any(re.search(pattern, text, re.IGNORECASE) for text in found):
                    return answer
        return None


class ProgramProfile(BaseModel):
    """A program's rules as published, each with its source and confidence."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    version: str = Field(min_length=1)
    title: str
    ccp_aligned: bool = False
    pool: str | None = None
    period_years: Rule[int]
    clock: Rule[Clock]
    whichever_later: Rule[bool]
    verification_interval_years: Rule[int | None]
    grace_days: Rule[int]
    liability_basis: Rule[LiabilityBasis]
    lapse_curable: Rule[bool]
    lapse_holds_buffer: Rule[bool]
    surrender_deadline_days: Rule[int | None]
    buffer_method: Rule[BufferMethod]
    buffer_rate: Rule[float | None]
    minimum_buffer_rate: Rule[float | None]
    maximum_buffer_rate: Rule[float | None]
    risk_reassessment_years: Rule[int | None]
    stress_test_interval_years: Rule[int]
    classification_overrides: Rule[dict[str, Classification]]
    sources: list[str] = Field(default_factory=list)
    #: Where ``ccp_aligned`` comes from (ICVCM's published programme decisions).
    ccp_source: str | None = None
    #: Project types that carry a reversal obligation (see :class:`ReversalScope`); None:
    #: every vintage of the program can reverse.
    reversal_scope: Rule[ReversalScope] | None = None
    #: Years after issuance during which credits can be invalidated (CARB), and the shorter
    #: window once a second verification has been done.
    invalidation_years: Rule[int | None] | None = None
    invalidation_years_second_verification: Rule[int | None] | None = None

    @model_validator(mode="after")
    def _check_values(self) -> ProgramProfile:
        problems = _value_problems(self)
        problems += floor_violations(dict(self.classification_overrides.value))
        if self.ccp_aligned:
            problems += _ccp_floor_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def pool_name(self) -> str:
        """The pooled buffer this profile's vintages contribute to (default: its own name)."""
        return self.pool or self.name

    def rules(self) -> Rules:
        """The snapshot a vintage carries."""
        return Rules(
            profile=self.name,
            profile_version=self.version,
            period_years=self.period_years.value,
            clock=self.clock.value,
            whichever_later=self.whichever_later.value,
            verification_interval_years=self.verification_interval_years.value,
            grace_days=self.grace_days.value,
            liability_basis=self.liability_basis.value,
            lapse_curable=self.lapse_curable.value,
            lapse_holds_buffer=self.lapse_holds_buffer.value,
            surrender_deadline_days=self.surrender_deadline_days.value,
            risk_reassessment_years=self.risk_reassessment_years.value,
            minimum_buffer_rate=self.minimum_buffer_rate.value,
            classification_overrides=dict(self.classification_overrides.value),
        )

    def reversible(self, *texts: str | None) -> bool | None:
        """Whether credits of a project so described can reverse; None when the profile's
        scope does not say (no scope at all: every project of the program can)."""
        if self.reversal_scope is None:
            return True
        return self.reversal_scope.value.classify(*texts)

    def rule_table(self) -> list[tuple[str, Any, str, str]]:
        """(rule, value, confidence, source) rows, for display."""
        rows: list[tuple[str, Any, str, str]] = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, Rule):
                rows.append((name, value.value, value.confidence, value.source))
        return rows


def _value_problems(p: ProgramProfile) -> list[str]:
    problems = []
    if p.period_years.value <= 0:
        problems.append("period_years must be positive")
    interval = p.verification_interval_years.value
    if interval is not None and interval <= 0:
        problems.append("verification_interval_years must be positive")
    if p.grace_days.value < 0:
        problems.append("grace_days cannot be negative")
    for name in ("buffer_rate", "minimum_buffer_rate", "maximum_buffer_rate"):
        rate = getattr(p, name).value
        if rate is not None and not 0 <= rate <= 1:
            problems.append(f"{name} must lie between 0 and 1")
    return problems


def _ccp_floor_problems(p: ProgramProfile) -> list[str]:
    problems = []
    if p.period_years.value < ICVCM_MIN_PERIOD_YEARS:
        problems.append(
            f"ICVCM floor: period_years {p.period_years.value} is under "
            f"{ICVCM_MIN_PERIOD_YEARS} years"
        )
    basis = p.liability_basis.value
    if _BASIS_STRENGTH[basis] < _BASIS_STRENGTH["buffer_contribution"]:
        problems.append(
            f"ICVCM floor: liability_basis {basis!r} is weaker than 'buffer_contribution'"
        )
    reassess = p.risk_reassessment_years.value
    if reassess is None or reassess > CCP_MAX_REASSESSMENT_YEARS:
        problems.append(
            f"CIWP recommendation 4: a CCP-aligned profile must reassess risk at least every "
            f"{CCP_MAX_REASSESSMENT_YEARS} years (risk_reassessment_years is {reassess})"
        )
    if p.stress_test_interval_years.value > CCP_MAX_STRESS_TEST_YEARS:
        problems.append(
            f"CIWP recommendation 3: a CCP-aligned profile must stress-test its pool at least "
            f"every {CCP_MAX_STRESS_TEST_YEARS} years (stress_test_interval_years is "
            f"{p.stress_test_interval_years.value})"
        )
    return problems


def parse_profile(data: dict[str, Any], origin: str) -> ProgramProfile:
    """Validate one profile, naming the file and the rule in any rejection."""
    try:
        return ProgramProfile.model_validate(data)
    except ValidationError as e:
        details = "; ".join(
            f"{'.'.join(str(x) for x in err['loc']) or 'profile'}: {_clean(err['msg'])}"
            for err in e.errors()
        )
        raise ProfileRejected(f"profile {origin}: {details}") from None


def _clean(message: str) -> str:
    return message.removeprefix("Value error, ")


class ProfileCatalog:
    """The profiles a ledger knows: the packaged ones plus a registry's own files."""

    def __init__(self, profiles: list[ProgramProfile]) -> None:
        self._profiles = {p.name: p for p in profiles}
        self._rules = {p.name: p.rules() for p in profiles}

    @classmethod
    def load(cls, extra_files: list[Path] | tuple[Path, ...] = ()) -> ProfileCatalog:
        """Load the packaged profiles, then each extra file (a later name replaces an earlier)."""
        profiles = [
            parse_profile(json.loads(entry.read_text(encoding="utf-8")), entry.name)
            for entry in sorted(
                resources.files("ledger").joinpath("profiles").iterdir(), key=lambda e: e.name
            )
            if entry.name.endswith(".json")
        ]
        for path in extra_files:
            profiles.append(parse_profile(_read_json(path), str(path)))
        return cls(profiles)

    def get(self, name: str) -> ProgramProfile:
        try:
            return self._profiles[name]
        except KeyError:
            raise UnknownProgram(
                f"program: unknown program {name!r}; known: {', '.join(sorted(self._profiles))}"
            ) from None

    def rules(self, name: str) -> Rules:
        """The (immutable, shared) rules snapshot a new vintage of this program carries."""
        self.get(name)
        return self._rules[name]

    def names(self) -> list[str]:
        return sorted(self._profiles)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._profiles[n] for n in self.names())


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ProfileRejected(f"profile {path}: cannot read: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise ProfileRejected(f"profile {path}: not JSON: {e.msg} at line {e.lineno}") from None
    if not isinstance(data, dict):
        raise ProfileRejected(f"profile {path}: must be a JSON object")
    return data
