"""The fixed choices of command options, as enums: typer validates them (a wrong value
exits 2 naming the option and every choice), completes them in the shell and lists them
in ``--help``.

They are spelled here rather than imported from the modules that act on them, so that
declaring a command loads none of those modules; ``tests/e2e/test_cli.py`` checks
that each enum equals the set its module accepts.
"""

from __future__ import annotations

from enum import Enum


class Choice(str, Enum):
    """A choice whose value is what the user types (and what the application takes)."""

    def __str__(self) -> str:
        return self.value


class GroupBy(Choice):
    """``liabilities --by`` (``projections.queries.GROUP_BY_CHOICES``)."""

    program = "program"
    project = "project"
    pool = "pool"
    vintage_year = "vintage-year"
    bearer = "bearer"


class Route(Choice):
    """``compensate --by``: how a reversal is made good (``ledger.events.CompensationRoute``)."""

    buffer = "buffer"
    proponent = "proponent"
    insurance = "insurance"
    deduction = "deduction"
    fund = "fund"
    jurisdiction = "jurisdiction"


class TransfereeKind(Choice):
    """``transfer --kind`` (``ledger.events.TransfereeKind``)."""

    fund = "fund"
    insurer = "insurer"
    jurisdiction = "jurisdiction"


class VintageStatus(Choice):
    """``vintages --status`` (``projections.listings.STATUSES``)."""

    monitored = "monitored"
    lapsed = "lapsed"
    transferred = "transferred"
    ended = "ended"
    non_reversible = "non-reversible"


class ExportFormat(Choice):
    """``export --format``: the hash-chained event log, or CADT-shaped CSV tables."""

    jsonl = "jsonl"
    cadt = "cadt"


class ReminderKind(Choice):
    """``reminders --kind`` (``scheduler.reminders.KINDS``)."""

    verification_due = "verification_due"
    risk_reassessment_due = "risk_reassessment_due"
    stress_test_due = "stress_test_due"


class ImportFormat(Choice):
    """``import FORMAT`` (``permanence.imports.PARSERS``)."""

    acr = "acr"
    acr_cancellations = "acr-cancellations"
    acr_retirements = "acr-retirements"
    art = "art"
    car = "car"
    car_cancellations = "car-cancellations"
    car_retirements = "car-retirements"
    carb = "carb"
    gold_standard = "gold-standard"
    isometric = "isometric"
    verra = "verra"


class Role(Choice):
    """``token create --role`` (``permanence.tokens.ROLES``)."""

    registry = "registry"
    verifier = "verifier"
    trustee = "trustee"
