"""ACR retirements and cancellations exports (current and 2021 shapes).

Retirements: ``Quantity of Credits`` (2021: ``Quantity of Offset Credits``) retired on
``Status Effective (GMT)`` (2021: ``Status Effective``, ``M/D/YY`` checked against ``Retirement
Year``), beneficiary ``Retired on Behalf of``, else ``Account Holder``. Cancellations
(``Cancellation Type``, e.g. "Convert to ARB offset credits"): the credits leave ACR, and its
exposure with them.

The issuance is named by ACR's issuance key (see :mod:`.acr`) when the row states the issuance
date-time and the vintage assignment period; otherwise by project and vintage year.
"""

from __future__ import annotations

from .acr import issuance_key
from .cells import Row, us_date, us_datetime
from .credit_rows import CreditFormat

PROGRAM = "acr"


def _key(row: Row, project: str, vintage: int) -> str | None:
    issued = us_datetime(row.text("Date Issued (GMT)") or "")
    begin = us_date(row.text("Vintage Assignment Period Start Date") or "")
    end = us_date(row.text("Vintage Assignment Period End Date") or "")
    if issued is None or begin is None or end is None:
        return None
    return issuance_key(project, vintage, issued, begin, end, row.flag("Verified Removal"))


RETIREMENTS = CreditFormat(
    FORMAT="acr-retirements",
    PROGRAM=PROGRAM,
    action="retire",
    serials=("Credit Serial Numbers", "Offset Credit Serial Numbers"),
    quantity=("Quantity of Credits", "Quantity of Offset Credits"),
    effective=("Status Effective (GMT)", "Status Effective"),
    reason=("Retired on Behalf of", "Account Holder"),
    year=("Retirement Year",),
    key=_key,
)

CANCELLATIONS = CreditFormat(
    FORMAT="acr-cancellations",
    PROGRAM=PROGRAM,
    action="cancel",
    serials=("Credit Serial Numbers", "Offset Credit Serial Numbers"),
    quantity=("Quantity of Credits", "Quantity of Offset Credits"),
    effective=("Status Effective (GMT)", "Status Effective"),
    reason=("Cancellation Type", "Cancellation Reason"),
    key=_key,
)
