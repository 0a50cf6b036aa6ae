"""The cause a CARB reversal is recorded with: CARB's table states only intentional or
unintentional, so the comment's words choose among the natural causes (see
:mod:`permanence.imports.commands` for why)."""

from __future__ import annotations

import re

_UNAVOIDABLE_WORDS: tuple[tuple[str, str], ...] = (
    (r"(wild|forest\s+)?fires?|burn(ed|t)?", "wildfire"),
    (r"(bark\s+)?beetles?|insects?|pests?|infestation", "pest"),
    (r"disease|pathogens?|sudden\s+oak\s+death", "disease"),
    (r"storms?|wind(throw|storm)?s?|hurricanes?|tornado(es)?|ice\s+storm", "storm"),
    (r"flood(s|ing)?", "flood"),
    (r"drought", "drought"),
    (r"earthquakes?|landslides?|volcan\w*", "geological"),
)
_AVOIDABLE_WORDS: tuple[tuple[str, str], ...] = (
    (r"harvest(s|ed|ing)?|logging|timber\s+sale", "harvest"),
    (r"development|conversion|land[-\s]use\s+change", "land-use-change"),
    (r"terminat(ed|ion)", "termination"),
)


def reversal_cause(comment: str | None, intentional: bool) -> str:
    """The cause a CARB reversal is recorded with (see the module docstring for why)."""
    words = _UNAVOIDABLE_WORDS + (_AVOIDABLE_WORDS if intentional else ())
    found: list[tuple[int, str]] = []
    for pattern, cause in words:
        match = re.search(rf"\b(?:{pattern})\b", comment or "", re.IGNORECASE)
        if match is not None:
            found.append((match.start(), cause))
    if found:
        return min(found)[1]
    return "mismanagement" if intentional else "wildfire"

