"""The README's five-minute tour runs as written.

A reader copy-pastes the tour's commands in order on a fresh clone; this test does the
same in an empty directory, with bash, and compares what each command prints with what
the README shows, line by line. In the shown output, ``recorded <time>`` and ``<n> ms``
match any record time or duration (they differ per run), and a line ``...`` stands for
any number of lines (where the README trims a long output). ``make`` lines are skipped
(the test already runs inside the venv, whose bin comes first on the path), and so is a
line ending in ``# not run by the test``.

``python tests/e2e/test_readme_tour.py`` prints the tour as it runs now, to paste into the
README when the CLI's output changes on purpose.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest

from ledger.errors import LedgerError
from permanence.config import Settings
from permanence.runtime import Runtime
from tests.support import REPO

README = REPO / "README.md"
SECTION = "## A five-minute tour"
NOT_RUN = "# not run by the test"
PROMPT = "$ "
SKIP_ANY = "..."
_RECORDED = re.compile(r"recorded \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:[+-]\d\d:\d\d|Z)?")
_DURATION = re.compile(r"\b\d+(?:\.\d+)? ms\b")


@dataclass
class Step:
    """One ``$`` command of the tour (continuations joined) and the output shown after it."""

    command: str
    shown: list[str] = field(default_factory=list)

    @property
    def runnable(self) -> bool:
        return not (self.command.startswith("make ") or self.command.rstrip().endswith(NOT_RUN))


def tour_block(text: str) -> list[str]:
    """The lines of the first ``console`` block after the tour's heading."""
    after = text.split(SECTION, 1)[1]
    body = after.split("```console\n", 1)[1]
    return body.split("\n```", 1)[0].splitlines()


def steps(lines: list[str]) -> list[Step]:
    """Commands and their shown outputs; a command line ending in ``\\`` continues."""
    found: list[Step] = []
    continued = False
    for line in lines:
        if continued:
            found[-1].command += "\n" + line
        elif line.startswith(PROMPT):
            found.append(Step(line[len(PROMPT):]))
        else:
            assert found, f"README tour: output before the first command: {line!r}"
            found[-1].shown.append(line)
            continue
        continued = line.endswith("\\")
    return found


def _normal(line: str) -> str:
    return _DURATION.sub("<n> ms", _RECORDED.sub("recorded <time>", line.rstrip()))


def matches(shown: list[str], printed: list[str]) -> bool:
    """Whether the printed lines are the shown ones, ``...`` standing for any lines."""
    pattern = "".join(
        r"(?:[^\n]*\n)*?" if line.strip() == SKIP_ANY else re.escape(_normal(line)) + r"\n"
        for line in shown
    )
    text = "".join(_normal(line) + "\n" for line in printed)
    return re.fullmatch(pattern, text) is not None


def run_tour(commands: list[str], cwd: Path) -> list[tuple[int, list[str]]]:
    """Run the commands in order in one bash session (so exports carry over, as in a
    terminal) and return each one's exit code and output (stdout and stderr)."""
    marker = f"@@tour-{uuid.uuid4().hex}@@"
    script = ["set +e"]
    for command in commands:
        script += [f"printf '\\n%s\\n' '{marker}'", "{", command, "} 2>&1", f"echo \"{marker} $?\""]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PERMANENCE_") and k not in ("COLUMNS", "LINES")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(["bash", "--noprofile", "--norc", "-c", "\n".join(script)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    results = []
    for chunk in done.stdout.split(f"\n{marker}\n")[1:]:
        body, _, code = chunk.rpartition(f"{marker} ")
        lines = body.splitlines()
        while lines and not lines[-1].strip():
            lines.pop()
        results.append((int(code.strip()), lines))
    assert len(results) == len(commands), done.stdout
    return results


def test_the_readme_tour_runs_as_written(tmp_path: Path) -> None:
    tour = steps(tour_block(README.read_text(encoding="utf-8")))
    runnable = [s for s in tour if s.runnable]
    assert len(runnable) >= 10, "README tour: too few commands found"
    results = run_tour([s.command for s in runnable], tmp_path)
    for step, (code, printed) in zip(runnable, results):
        refused = any(line.startswith("error:") for line in step.shown)
        assert (code != 0) == refused, (
            f"README tour: `{step.command}` exited {code}:\n" + "\n".join(printed))
        assert matches(step.shown, printed), (
            f"README tour: `{step.command}` prints what the README does not show.\n"
            "README shows:\n" + "\n".join(step.shown) + "\nthe CLI prints:\n" + "\n".join(printed))
    assert (tmp_path / "report.html").stat().st_size > 0
    assert (tmp_path / "runoff.png").stat().st_size > 0


def test_the_comparison_tells_a_drift() -> None:
    shown = ["a", "...", "recorded 2026-01-01T00:00:00 by cli", "done in 5 ms"]
    assert matches(shown, ["a", "x", "y", "recorded 2031-05-06T07:08:09 by cli", "done in 12.5 ms"])
    assert matches(shown, ["a", "recorded 2031-05-06T07:08:09 by cli", "done in 1 ms"])
    assert not matches(shown, ["a", "recorded 2031-05-06T07:08:09 by api", "done in 1 ms"])
    assert not matches(shown, ["b", "recorded 2031-05-06T07:08:09 by cli", "done in 1 ms"])
    assert not matches(["a"], ["a", "b"])
    parsed = steps(["$ one \\", "    --two", "out", "$ make venv", "$ three  # not run by the test"])
    assert [(s.command, s.shown, s.runnable) for s in parsed] == [
        ("one \\\n    --two", ["out"], True), ("make venv", [], False),
        ("three  # not run by the test", [], False)]


def _spec(program: str, serials: tuple[str, str] | None) -> dict[str, object]:
    first, last = serials or (None, None)
    return {"program": program, "project": "P-1", "vintage_year": 2024, "quantity": 1_000,
            "buffer": 250, "on": date(2025, 1, 1), "serial_first": first, "serial_last": last}


def _issue(rt: Runtime, program: str, serials: tuple[str, str] | None) -> str:
    return rt.app.issue(**_spec(program, serials))


def test_serials_fix_the_vintage_id_and_are_issued_once(runtime: Runtime, tmp_path: Path) -> None:
    """The tour's ids are the same on every run because its issuances give serials."""
    first = _issue(runtime, "icvcm-ccp", ("100", "199"))
    other = Runtime(Settings(db=f"sqlite:///{tmp_path / 'other.db'}"))
    try:  # another ledger, the same facts: the same id
        assert _issue(other, "icvcm-ccp", ("100", "199")) == first
    finally:
        other.close()
    assert _issue(runtime, "carb-forest", ("100", "199")) != first  # another program's serials
    assert _issue(runtime, "icvcm-ccp", ("200", "299")) != first
    unserialled = {_issue(runtime, "icvcm-ccp", None) for _ in range(2)}
    assert len(unserialled) == 2 and first not in unserialled
    recorded = runtime.app.recorder.max_notification_id()
    with pytest.raises(LedgerError, match=r"serials: 100-199 of program icvcm-ccp are already issued"):
        _issue(runtime, "icvcm-ccp", ("100", "199"))
    with pytest.raises(LedgerError, match=r"serials: 300-399 of program icvcm-ccp given twice"):
        runtime.app.issue_many([_spec("icvcm-ccp", ("1", "99")), _spec("icvcm-ccp", ("300", "399")),
                                _spec("icvcm-ccp", (" 300", "399 "))])
    assert runtime.app.recorder.max_notification_id() == recorded  # nothing written
    assert [e.originator_version for e in runtime.app.recorder.select_events(
        runtime.app.vintage(first).id)] == [1]


if __name__ == "__main__":
    # print the tour as it runs now (what to paste into the README)
    tour = [s for s in steps(tour_block(README.read_text(encoding="utf-8"))) if s.runnable]
    with tempfile.TemporaryDirectory() as tmp:
        for step, (_, printed) in zip(tour, run_tour([s.command for s in tour], Path(tmp))):
            print(PROMPT + step.command)
            print("\n".join(printed))
