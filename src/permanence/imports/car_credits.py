"""Climate Action Reserve retirements and cancellations exports.

Retirements: ``Quantity of Offset Credits`` retired on ``Status Effective``, beneficiary
``Account Holder``. Cancellations: ``Cancellation Reason`` as stated; ``ARB`` is "Canceled for
ARB Compliance": the credits left CAR for California's program, so they leave CAR's exposure
(California's own table carries them from then on).

CAR's exports name no issuance (its issuance export has no serials), so the importer finds the
project's vintages of the row's vintage year issued on or before the effective date.
"""

from __future__ import annotations

from .credit_rows import CreditFormat

PROGRAM = "car-forest"

RETIREMENTS = CreditFormat(
    FORMAT="car-retirements",
    PROGRAM=PROGRAM,
    action="retire",
    serials=("Offset Credit Serial Numbers",),
    quantity=("Quantity of Offset Credits",),
    effective=("Status Effective",),
    reason=("Account Holder",),
)

CANCELLATIONS = CreditFormat(
    FORMAT="car-cancellations",
    PROGRAM=PROGRAM,
    action="cancel",
    serials=("Offset Credit Serial Numbers",),
    quantity=("Quantity of Offset Credits",),
    effective=("Status Effective",),
    reason=("Cancellation Reason",),
)
