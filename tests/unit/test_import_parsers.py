"""The registry-export parsers: exact values on our own fixtures, invariants on the real samples.

Fixtures in ``tests/fixtures/imports`` are made-up rows in each format's column layout. The real
samples live beside the project in ``../shared`` (never copied in); those tests skip without it.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from permanence.imports import (
    PARSERS,
    PROGRAMS,
    BufferRetirementRecord,
    ImportFormatError,
    InvalidationRecord,
    IssuanceRecord,
    ParseResult,
    Rejected,
    RetirementRecord,
    ReversalRecord,
    Skipped,
    SurrenderRecord,
    acr,
    art,
    car,
    carb,
    count_rows,
    gold_standard,
    isometric,
    parse,
    verra,
)
from permanence.imports.carb import reversal_letters
from permanence.imports.cells import whole_number
from tests.support import FIXTURES, SHARED, data_rows

IMPORTS = FIXTURES / "imports"
REAL = SHARED / "data" / "registry-exports"

needs_shared = pytest.mark.skipif(
    not REAL.is_dir(),
    reason=f"real registry samples not found at {REAL} (../shared is absent); "
    "the project's own fixtures cover every format",
)


def issuance(**fields: Any) -> IssuanceRecord:
    """An IssuanceRecord with the fields a format does not fill left at None/0/()."""
    defaults: dict[str, Any] = {
        "project_name": None,
        "vintage_year": None,
        "vintage_start": None,
        "vintage_end": None,
        "total": None,
        "serial_first": None,
        "serial_last": None,
        "serial_prefix": None,
        "crediting_start": None,
        "country": None,
        "project_type": None,
        "corresponding_adjustment": None,
        "authorization": None,
        "labels": (),
        "buffer_transferred": 0,
    }
    defaults.update(fields)
    return IssuanceRecord(**defaults)


#: Fields that say how an issuance is classified and verified; checked by their own tests
#: (tests/integration/test_import_permanence.py), so the record-by-record tests here leave them out.
CLASSIFYING = ("methodology", "reversible_stated", "verifier", "verified_on")


def plain(results: list[ParseResult]) -> list[object]:
    """Results with each Rejected reduced to (line, reason), the raw row being checked apart."""
    return [
        ("rejected", result.line, result.reason)
        if isinstance(result, Rejected)
        else replace(result, **dict.fromkeys(CLASSIFYING))
        if isinstance(result, IssuanceRecord)
        else result
        for result in results
    ]


# --------------------------------------------------------------------------- the registry


def test_parsers_cover_the_seven_formats_with_their_programs() -> None:
    credit_formats = {
        "acr-retirements": "acr",
        "acr-cancellations": "acr",
        "car-retirements": "car-forest",
        "car-cancellations": "car-forest",
    }
    assert PROGRAMS == {
        "acr": "acr",
        "car": "car-forest",
        "art": "art-trees",
        "verra": "verra-vcs",
        "gold-standard": "gold-standard",
        "isometric": "isometric",
        "carb": "carb-forest",
        **credit_formats,
    }
    assert set(PARSERS) == set(PROGRAMS)
    modules = (acr, car, art, verra, gold_standard, isometric, carb)
    assert {module.FORMAT: module.parse for module in modules}.items() <= PARSERS.items()


def test_parse_by_name_rejects_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown import format 'apx'.*acr, acr-cancellations"):
        parse("apx", IMPORTS / "acr_issuances.csv")


# --------------------------------------------------------------------------- ACR


def test_acr_fixture() -> None:
    path = IMPORTS / "acr_issuances.csv"
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")  # the BOM must not hide the 1st column
    common = {"program": "acr", "country": "US"}
    assert plain(list(acr.parse(path))) == [
        issuance(
            **common,
            line=2,
            source_key="ACR9001|2024|2025-02-03T16:05:06|2024-01-01/2024-12-31",
            project="ACR9001",
            project_name="Example Landfill Gas",
            vintage_year=2024,
            vintage_start=date(2024, 1, 1),
            vintage_end=date(2024, 12, 31),
            issued_on=date(2025, 2, 3),
            quantity=5000,
            buffer=0,
            total=5000,
            crediting_start=date(2020, 3, 15),
            project_type="Landfill Gas Capture/Combustion",
        ),
        issuance(
            **common,
            line=3,
            source_key="ACR9002|2025|2025-11-30T07:15:00|2025-01-01/2025-06-30|removal",
            project="ACR9002",
            project_name="Example Forest",
            vintage_year=2025,
            vintage_start=date(2025, 1, 1),
            vintage_end=date(2025, 6, 30),
            issued_on=date(2025, 11, 30),
            quantity=9600,
            buffer=2400,
            total=12000,
            crediting_start=date(2020, 1, 1),
            project_type="Forest Carbon",
            labels=("CCP Approved", "Verified Removal"),
        ),
        issuance(
            **common,
            line=4,
            source_key="ACR9002|2025|2025-11-30T07:15:00|2025-01-01/2025-06-30",
            project="ACR9002",
            project_name="Example Forest",
            vintage_year=2025,
            vintage_start=date(2025, 1, 1),
            vintage_end=date(2025, 6, 30),
            issued_on=date(2025, 11, 30),
            quantity=8000,
            buffer=1500,  # transferred to the pool: part of the contribution, not of the total
            total=8000,
            crediting_start=date(2020, 1, 1),
            project_type="Forest Carbon",
            buffer_transferred=1500,
        ),
        issuance(
            **common,
            line=5,  # its Project Name spans lines 5-6
            source_key="ACR9003|2025|2025-06-01T00:00:00|2025-01-01/2025-03-31",
            project="ACR9003",
            project_name="Example Dairy\nDigester Phase 2",
            vintage_year=2025,
            vintage_start=date(2025, 1, 1),
            vintage_end=date(2025, 3, 31),
            issued_on=date(2025, 6, 1),
            quantity=700,
            buffer=0,
            total=700,
            project_type="Livestock Waste Management",
        ),
        ("rejected", 7, "line 7: column 'Credits Issued to Project': 'abc' is not a whole number"),
        (
            "rejected",
            8,
            (
                "line 8: total 100 != project 80 + buffer 10 (columns 'Total Credits Issued', "
                "'Credits Issued to Project', 'Credits Issued to Buffer Pool')"
            ),
        ),
        (
            "rejected",
            9,
            (
                "line 9: column 'Date Issued (GMT)': '13/45/2025 1:00:00 PM' is not a date "
                "(expected M/D/YYYY h:mm:ss AM)"
            ),
        ),
        ("rejected", 10, "line 10: column 'Project ID' is empty"),
        ("rejected", 11, "line 11: column 'Total Credits Issued': '-5' is negative"),
        ("rejected", 12, "line 12: column 'Total Credits Issued': '10.5' is not a whole number"),
        # line 13 is blank and not a row; line 14 is cut short
        ("rejected", 14, "line 14: row has 7 cells, the header has 27"),
    ]


def test_rejected_raw_is_the_row_and_formula_text_is_kept_verbatim() -> None:
    path = IMPORTS / "acr_issuances.csv"
    rows = data_rows(path)
    rejected = [result for result in acr.parse(path) if isinstance(result, Rejected)]
    for result in rejected:
        assert next(csv.reader([result.raw])) == rows[result.line]
    # a spreadsheet formula in a text cell stays a string, never evaluated
    assert rows[5][15] == '=HYPERLINK("http://example.invalid")'


# --------------------------------------------------------------------------- CAR


def test_car_fixture_buffer_is_inside_the_total() -> None:
    common = {"program": "car-forest", "vintage_year": 2025, "corresponding_adjustment": "No"}
    results = list(car.parse(IMPORTS / "car_issuances.csv"))  # CRLF line ends
    assert plain(results) == [
        issuance(
            **common,
            line=2,
            source_key="CAR9101|2025|2026-03-05|10000",
            project="CAR9101",
            project_name="Example Mexico Forest",
            issued_on=date(2026, 3, 5),
            quantity=7100,
            buffer=2900,
            total=10000,
            country="MX",
            project_type="Forestry - MX",
            labels=("CCP Approved",),
        ),
        issuance(
            **common,
            line=3,  # same project, vintage and date: only the total tells them apart
            source_key="CAR9101|2025|2026-03-05|2000",
            project="CAR9101",
            project_name="Example Mexico Forest",
            issued_on=date(2026, 3, 5),
            quantity=1420,
            buffer=580,
            total=2000,
            country="MX",
            project_type="Forestry - MX",
        ),
        issuance(
            program="car-forest",
            vintage_year=2025,
            line=4,
            source_key="CAR9102|2025|2026-02-10|50000",
            project="CAR9102",
            project_name="Example IFM Compliance",
            issued_on=date(2026, 2, 10),
            quantity=40500,
            buffer=9500,
            total=50000,
            country="US",
            project_type="Improved Forest Management - ARB Compliance",
            corresponding_adjustment="Yes",
            labels=("Reversible",),
        ),
        issuance(
            **common,
            line=5,
            source_key="CAR9103|2025|2026-01-20|30000",
            project="CAR9103",
            project_name="Example Mine Methane",
            issued_on=date(2026, 1, 20),
            quantity=30000,
            buffer=0,
            total=30000,
            country="US",
            project_type="Mine Methane Capture - ARB Compliance",
        ),
        Skipped(6, "zero-credit reporting period (column 'Zero-Credit Reporting Period')"),
        (
            "rejected",
            7,
            (
                "line 7: buffer 1200 (columns 'Offset Credits Currently in Reserve Buffer Pool' "
                "1200 + 'Offset Credits Intended for Compliance Buffer Pool' 0) exceeds column "
                "'Total Offset Credits Issued' 1000"
            ),
        ),
        (
            "rejected",
            8,
            "line 8: column 'Date Issued': '02/30/2026' is not a date (expected MM/DD/YYYY)",
        ),
        ("rejected", 9, "line 9: column 'Vintage' is empty"),
    ]


# --------------------------------------------------------------------------- ART


def test_art_fixture() -> None:
    common = {"program": "art-trees", "country": "EXAMPLELAND", "project_type": "Forest Carbon"}
    assert plain(list(art.parse(IMPORTS / "art_issuances.csv"))) == [
        issuance(
            **common,
            line=2,
            source_key="ART901|2019|2022-12-01",
            project="ART901",
            project_name="Exampleland",
            vintage_year=2019,
            issued_on=date(2022, 12, 1),
            quantity=940000,
            buffer=60000,
            total=1000000,
            labels=("CORSIA Eligible",),
        ),
        issuance(
            **common,
            line=3,
            source_key="ART901|2020|2022-12-01",
            project="ART901",
            project_name="Exampleland",
            vintage_year=2020,
            issued_on=date(2022, 12, 1),
            quantity=1034000,
            buffer=66000,
            total=1100000,
        ),
        issuance(
            **common,
            line=4,
            source_key="ART902|2023|2026-03-09",
            project="ART902",
            project_name="Example FCPF Program",
            vintage_year=2023,
            issued_on=date(2026, 3, 9),
            quantity=5000,
            buffer=0,
            total=5000,
            labels=("CCP Approved",),
        ),
        (
            "rejected",
            5,
            (
                "line 5: total 5000 != project 5000 + buffer 100 (columns "
                "'Total Emission Reductions/Removals', 'Credits Verified', "
                "'Credits Deposited in Buffer')"
            ),
        ),
    ]


# --------------------------------------------------------------------------- Verra


def test_verra_fixture_issues_every_block_and_retires_the_retired_ones() -> None:
    common = {
        "program": "verra-vcs",
        "buffer": 0,
        "serial_prefix": "VCS-VCU",
        "country": "Exampleland",
    }
    assert plain(list(verra.parse(IMPORTS / "verra_transactions.csv"))) == [
        issuance(
            **common,
            line=2,
            source_key="9876-154223456-154233455-VCS-VCU-263-VER-BR-14-9876-01012019-31122019-0",
            project="VCS9876",
            project_name="Example Cookstoves",
            vintage_year=2019,
            vintage_start=date(2019, 1, 1),
            vintage_end=date(2019, 12, 31),
            issued_on=date(2020, 3, 2),
            quantity=10000,
            serial_first="154223456",
            serial_last="154233455",
            project_type="Energy demand",
        ),
        # a retired block was issued too: its issuance, then its retirement
        issuance(
            **common,
            line=3,
            source_key="9877-154233456-154243455-VCS-VCU-263-VER-BR-14-9876-01012019-31122019-0",
            project="VCS9876",
            project_name="Example Cookstoves",
            vintage_year=2019,
            vintage_start=date(2019, 1, 1),
            vintage_end=date(2019, 12, 31),
            issued_on=date(2020, 3, 2),
            quantity=10000,
            serial_first="154233456",
            serial_last="154243455",
            project_type="Energy demand",
        ),
        RetirementRecord(
            3,
            "verra-vcs",
            "9877-154233456-154243455-VCS-VCU-263-VER-BR-14-9876-01012019-31122019-0",
            date(2021, 5, 5),
            10000,
            "Example Corp",
        ),
        issuance(
            **common,
            line=4,
            source_key="9901-200000001-200001500-VCS-VCU-1289-VER-KH-3-9877-01072022-30062023-1",
            project="VCS9877",  # the ID cell says 9877.0
            project_name="Example Grouped Project",
            vintage_year=None,  # the vintage period spans 2022 and 2023
            vintage_start=date(2022, 7, 1),
            vintage_end=date(2023, 6, 30),
            issued_on=date(2024, 7, 15),
            quantity=1500,
            serial_first="200000001",
            serial_last="200001500",
            project_type="Energy demand",
            authorization="Article 6 Authorized – NDC Use",
            labels=("Article 6 Authorized – NDC Use", "CORSIA - First Phase, 2024-2026 Scope"),
        ),
        (
            "rejected",
            5,
            (
                "line 5: column 'Quantity Issued' is 499 but column 'Serial Number' covers "
                "300000001-300000500 (500 credits)"
            ),
        ),
        (
            "rejected",
            6,
            "line 6: column 'Serial Number': 'not-a-serial' is not a Verra serial range",
        ),
    ]


# --------------------------------------------------------------------------- Gold Standard


def test_gold_standard_fixture_reads_native_and_cdm_serials() -> None:
    common = {
        "program": "gold-standard",
        "buffer": 0,
        "country": "Exampleland",
        "project_type": "Energy Efficiency - Domestic",
    }
    assert plain(list(gold_standard.parse(IMPORTS / "gold_standard_issuances.csv"))) == [
        issuance(
            **common,
            line=2,
            source_key="GS1-1-XX-GS99001-16-2024-40001-1-1500",
            project="GS99001",
            project_name="Example Cookstoves VPA 1",
            vintage_year=2024,
            vintage_start=date(2024, 1, 1),
            vintage_end=date(2024, 12, 8),
            issued_on=date(2026, 4, 13),
            quantity=1500,
            serial_first="1",
            serial_last="1500",
            serial_prefix="GS1-1-XX-GS99001-16-2024-40001",
            authorization="Not Applicable",
            labels=("ICVCM CCP", "Emission Reduction"),
        ),
        issuance(
            **common,
            line=3,
            source_key="XX-5-1000001-2-2-0-9902 - XX-5-1000250-2-2-0-9902",
            project="GS99002",
            project_name="Example CDM Transition",
            vintage_year=2018,
            vintage_start=date(2017, 8, 19),  # the monitoring period, as stated
            vintage_end=date(2019, 8, 16),
            issued_on=date(2026, 3, 26),
            quantity=250,
            serial_first="1000001",
            serial_last="1000250",
            serial_prefix="XX-5",
            authorization="Authorized",
        ),
        (
            "rejected",
            4,
            "line 4: column 'Quantity' is 100 but column 'Serial Number' covers 1-99 (99 credits)",
        ),
        Skipped(5, "column 'Credit Status' is 'Retired', not an issuance"),
        (
            "rejected",
            6,
            (
                "line 6: column 'Issuance Date': 'yesterday' is not a date "
                "(expected an ISO date or date-time)"
            ),
        ),
    ]


# --------------------------------------------------------------------------- Isometric


def test_isometric_fixture_floors_exact_kilograms_to_whole_tonnes() -> None:
    common = {"program": "isometric"}
    assert plain(list(isometric.parse(IMPORTS / "isometric_issuances.csv"))) == [
        issuance(
            **common,
            line=2,
            source_key="iss_EXAMPLE0001",
            project="prj_EXAMPLE01",
            issued_on=date(2026, 4, 14),  # the UTC date as written
            quantity=980,
            buffer=20,
            total=1000,
        ),
        issuance(
            **common,
            line=3,
            source_key="iss_EXAMPLE0002",
            project="prj_EXAMPLE01",
            issued_on=date(2025, 1, 2),
            quantity=49,
            buffer=1,
            total=50,
        ),
        # 1,234,567 kg + 25,900 kg = 1,260,467 kg: floored apart, the total keeps one tonne more
        issuance(
            **common,
            line=4,
            source_key="iss_EXAMPLE0003",
            project="prj_EXAMPLE02",
            issued_on=date(2025, 1, 3),
            quantity=1234,
            buffer=25,
            total=1260,
        ),
        (
            "rejected",
            5,
            (
                "line 5: column 'buffer_pool_credit_batch_size_total.credits' '1.0' disagrees with "
                "column 'buffer_pool_credit_batch_size_total.credit_kgs' '2000'"
            ),
        ),
        (
            "rejected",
            6,
            (
                "line 6: column 'supplier_credit_batch_size_total.credit_kgs' is missing or empty: "
                "no exact quantity"
            ),
        ),
        (
            "rejected",
            7,
            (
                "line 7: kilograms do not add up: supplier_credit_batch_size_total.credit_kgs "
                "10000 + buffer_pool_credit_batch_size_total.credit_kgs 1000 != "
                "credit_batch_size_total.credit_kgs 12000"
            ),
        ),
        Skipped(
            8,
            "less than one whole tonne issued (column 'credit_batch_size_total.credit_kgs' is 510)",
        ),
    ]


def test_isometric_without_kg_columns_rejects_every_row(tmp_path: Path) -> None:
    path = tmp_path / "iso.csv"
    path.write_text(
        "id,issued_at,project_id,supplier_credit_batch_size_total.credits,"
        "buffer_pool_credit_batch_size_total.credits,credit_batch_size_total.credits\n"
        "iss_A,2025-02-03T04:05:06Z,prj_A,95.0,5,100\n",
        encoding="utf-8",
    )
    assert plain(list(isometric.parse(path))) == [
        (
            "rejected",
            2,
            (
                "line 2: column 'supplier_credit_batch_size_total.credit_kgs' is missing or "
                "empty: no exact quantity"
            ),
        )
    ]


@given(st.integers(0, 10**9), st.integers(0, 10**8))
def test_isometric_floored_tonnes_lose_at_most_one_tonne(supplier: int, buffer: int) -> None:
    total = supplier + buffer
    assert total // 1000 - (supplier // 1000 + buffer // 1000) in (0, 1)


# --------------------------------------------------------------------------- CARB


def test_carb_fixture_every_record() -> None:
    p = "carb-forest"

    def carb_issuance(line: int, key: str, year: int, **fields: Any) -> IssuanceRecord:
        project = key.split("-")[0]
        return issuance(
            line=line,
            program=p,
            source_key=key,
            project=project,
            project_name=f"Example {project}",
            vintage_year=year,
            vintage_start=date(year, 1, 1),
            vintage_end=date(year, 12, 31),
            total=None,
            **{"project_type": "Forest", **fields},
        )

    results = list(carb.parse(IMPORTS / "carb_issuance_table.csv"))
    assert plain(results) == [
        # lines 2-3 (the Comment spans two lines): one buffer contribution retired for two
        # different reversals
        carb_issuance(
            2, "CAFR9101-A", 2014, issued_on=date(2015, 6, 1), quantity=100000, buffer=18000
        ),
        BufferRetirementRecord(2, p, "CAFR9101-A", date(2020, 3, 2), 5000, "CAFR9102-A"),
        BufferRetirementRecord(2, p, "CAFR9101-A", date(2021, 8, 14), 7000, "CAFR9103-B"),
        # the reversals those retirements name, keyed project + letter of the project's reversal
        ReversalRecord(4, p, "CAFR9102-A", "CAFR9102", date(2018, 12, 31), 5000, False),
        carb_issuance(
            5, "CAFR9103-A", 2015, issued_on=date(2016, 5, 10), quantity=40000, buffer=7000
        ),
        ReversalRecord(6, p, "CAFR9103-A", "CAFR9103", date(2016, 12, 31), 1500, False),
        ReversalRecord(7, p, "CAFR9103-B", "CAFR9103", date(2017, 12, 31), 7000, False),
        # project X: an intentional reversal, surrendered over its three later issuances
        carb_issuance(
            8, "CAFR9104-A", 2015, issued_on=date(2016, 3, 1), quantity=60000, buffer=10000
        ),
        ReversalRecord(9, p, "CAFR9104-A", "CAFR9104", date(2016, 12, 31), 9000, True),
        carb_issuance(
            10, "CAFR9104-B", 2017, issued_on=date(2018, 4, 2), quantity=30000, buffer=5000
        ),
        SurrenderRecord(10, p, "CAFR9104-B", "CAFR9104", 3000),
        carb_issuance(
            11, "CAFR9104-C", 2018, issued_on=date(2019, 4, 2), quantity=31000, buffer=5100
        ),
        SurrenderRecord(11, p, "CAFR9104-C", "CAFR9104", 3000),
        carb_issuance(
            12, "CAFR9104-D", 2019, issued_on=date(2020, 4, 2), quantity=32000, buffer=5200
        ),  # Issuance Date written 4/2/2020
        SurrenderRecord(12, p, "CAFR9104-D", "CAFR9104", 3000),
        # an invalidation (ODS: no buffer)
        carb_issuance(
            13,
            "CAOD9201-A",
            2016,
            issued_on=date(2017, 2, 1),
            quantity=50000,
            buffer=0,
            project_type="ODS",
        ),
        InvalidationRecord(13, p, "CAOD9201-A", 1200),
        # a Comment that names no reversal: the column is still the quantity, recorded as
        # a retirement for no named reversal, with the reason (a pool cancellation)
        carb_issuance(
            14, "CAFR9105-A", 2016, issued_on=date(2017, 3, 1), quantity=20000, buffer=3600
        ),
        BufferRetirementRecord(
            14,
            p,
            "CAFR9105-A",
            None,
            2000,
            None,
            "column 'Comment' names no reversal for 2000 of the 2000 credits in column "
            "'Buffer Pool Retired': 'Buffer credits were retired after the 2021 fire season.'",
        ),
        # a Comment whose retirements fall short of the column: the rest is unnamed
        carb_issuance(
            15, "CAFR9106-A", 2016, issued_on=date(2017, 4, 1), quantity=22000, buffer=4000
        ),
        BufferRetirementRecord(15, p, "CAFR9106-A", date(2022, 5, 1), 2500, "CAFR9102-A"),
        BufferRetirementRecord(
            15,
            p,
            "CAFR9106-A",
            None,
            500,
            None,
            "column 'Comment' names no reversal for 500 of the 3000 credits in column "
            "'Buffer Pool Retired' (its clauses account for 2500)",
        ),
        Skipped(
            16, "no credits issued and no reversal, buffer retirement, surrender or invalidation"
        ),
        (
            "rejected",
            17,
            ("line 17: column 'ARB Offset Credits Issued': '1500.5' is not a whole number"),
        ),
        (
            "rejected",
            18,
            (
                "line 18: column 'Forest Buffer Account Contribution' is 500 on a 'MMC' project; "
                "only Forest projects contribute to the Forest Buffer Account"
            ),
        ),
    ]
    # the compensations reconcile with what they compensate
    reversals = {r.source_key: r for r in results if isinstance(r, ReversalRecord)}
    for retirement in (r for r in results if isinstance(r, BufferRetirementRecord)):
        if retirement.for_reversal is None:
            assert retirement.unread  # said why, and recorded all the same
            continue
        assert retirement.for_reversal in reversals
        assert not reversals[retirement.for_reversal].intentional
    surrendered = sum(r.quantity for r in results if isinstance(r, SurrenderRecord))
    assert surrendered == reversals["CAFR9104-A"].quantity


CARB_HEADER = (
    "CARB Project ID,Project Type,Reporting Period Start Date,Reporting Period End Date,Vintage,"
    "ARB Offset Credits Issued,Forest Buffer Account Contribution,Issuance Date,"
    "Intentional Reversal,Unintentional Reversal,CARB Issuance ID,Invalidated or Canceled,"
    "Buffer Pool Retired,Retired for Intentional Reversal,Comment\n"
)


def test_carb_reversal_edge_cases(tmp_path: Path) -> None:
    path = tmp_path / "carb.csv"
    path.write_text(
        CARB_HEADER
        # both kinds on one row that has its own CARB Issuance ID
        + "CAFR1,Forest,2020-01-01,2020-12-31,,,,,-10.0,-20.0,CAFR1-R,,,,\n"
        # a positive reversal is not how the table writes them
        + "CAFR2,Forest,2020-01-01,2020-12-31,,,,,,20.0,,,,,\n"
        # deferred reforestation credits: nothing issued yet
        + "CAFR3,Forest,2020-01-01,2020-12-31,2020.0,reforest defer,,,,,,,,,\n"
        # a retirement clause without a date, buffer retired on a row without an issuance id
        + "CAFR4,Forest,2020-01-01,2020-12-31,2020.0,100.0,20.0,2021-01-01,,,CAFR4-A,,20.0,,"
        + '"CARB retired 20 credits from the buffer pool for the CAFR5224-A-B reversal."\n'
        + "CAFR5,Forest,2020-01-01,2020-12-31,,,,,,,,,5.0,,\n",
        encoding="utf-8",
    )
    assert plain(list(carb.parse(path))) == [
        ReversalRecord(2, "carb-forest", "CAFR1-R", "CAFR1", date(2020, 12, 31), 20, False),
        ReversalRecord(
            2, "carb-forest", "CAFR1-R-intentional", "CAFR1", date(2020, 12, 31), 10, True
        ),
        (
            "rejected",
            3,
            (
                "line 3: column 'Unintentional Reversal': '20.0' is positive; the table writes "
                "reversals as negative quantities"
            ),
        ),
        Skipped(
            4,
            "no credits issued and no reversal, buffer retirement, surrender or invalidation "
            "(column 'ARB Offset Credits Issued' is 'reforest defer')",
        ),
        issuance(
            line=5,
            program="carb-forest",
            source_key="CAFR4-A",
            project="CAFR4",
            vintage_year=2020,
            vintage_start=date(2020, 1, 1),
            vintage_end=date(2020, 12, 31),
            issued_on=date(2021, 1, 1),
            quantity=100,
            buffer=20,
            project_type="Forest",
        ),
        BufferRetirementRecord(5, "carb-forest", "CAFR4-A", None, 20, "CAFR5224-A-B"),
        (
            "rejected",
            6,
            (
                "line 6: column 'Buffer Pool Retired' is 5 but column 'CARB Issuance ID' is empty: "
                "no issuance to attach it to"
            ),
        ),
    ]


def test_reversal_letters_count_like_spreadsheet_columns() -> None:
    assert [reversal_letters(n) for n in (0, 1, 25, 26, 27, 701, 702)] == [
        "A",
        "B",
        "Z",
        "AA",
        "AB",
        "ZZ",
        "AAA",
    ]
    assert len({reversal_letters(n) for n in range(2000)}) == 2000


# --------------------------------------------------------------------------- whole files


def test_missing_columns_raise_before_any_record(tmp_path: Path) -> None:
    path = tmp_path / "acr.csv"
    header = ",".join(
        c for c in acr.REQUIRED if c not in ("Credits Issued to Buffer Pool", "Project ID")
    )
    path.write_text(header + "\n" + ",".join("1" for _ in range(6)) + "\n", encoding="utf-8")
    records = acr.parse(path)
    with pytest.raises(ImportFormatError) as raised:
        next(records)
    assert str(raised.value) == (
        "acr.csv: not a acr export: missing column(s) 'Credits Issued to Buffer Pool', 'Project ID'"
    )
    assert isinstance(raised.value, ValueError)


def test_a_file_of_another_format_is_refused() -> None:
    with pytest.raises(ImportFormatError, match="not a acr export: missing column"):
        list(acr.parse(IMPORTS / "car_issuances.csv"))


def test_empty_file_is_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"\xef\xbb\xbf")
    with pytest.raises(ImportFormatError, match="empty file"):
        list(verra.parse(path))
    assert count_rows(path) == 0


@pytest.mark.parametrize(
    ("fmt", "name"),
    [
        ("acr", "acr_issuances.csv"),
        ("car", "car_issuances.csv"),
        ("art", "art_issuances.csv"),
        ("verra", "verra_transactions.csv"),
        ("gold-standard", "gold_standard_issuances.csv"),
        ("isometric", "isometric_issuances.csv"),
        ("carb", "carb_issuance_table.csv"),
    ],
)
def test_every_fixture_row_is_accounted_for(fmt: str, name: str) -> None:
    path = IMPORTS / name
    results = list(PARSERS[fmt](path))
    assert sorted({result.line for result in results}) == sorted(data_rows(path))
    assert count_rows(path) == len(data_rows(path))
    for result in results:
        if isinstance(result, Rejected):
            assert result.reason.startswith(f"line {result.line}: ")
        elif not isinstance(result, Skipped):
            assert result.program == PROGRAMS[fmt]


def test_parsing_streams_a_large_file(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    rows = 100_000
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow((acr.ISSUED, "Vintage", "ReportingPeriodBegin", "ReportingPeriodEnd",
                         *acr.REQUIRED[1:]))
        for n in range(rows):
            writer.writerow(
                [
                    "1/2/2025 3:04:05 PM",
                    "2024",
                    "1/1/2024",
                    "12/31/2024",
                    str(n + 10),
                    str(n + 8),
                    "2",
                    f"ACR{n}",
                ]
            )
    assert count_rows(path) == rows
    seen = 0
    quantity = 0
    for result in acr.parse(path):
        assert isinstance(result, IssuanceRecord)
        seen += 1
        quantity += result.quantity
    assert seen == rows
    assert quantity == sum(n + 8 for n in range(rows))


@given(st.integers(min_value=-(10**12), max_value=10**12), st.booleans())
def test_whole_numbers_in_every_spelling(value: int, separators: bool) -> None:
    text = f"{value:,}" if separators else str(value)
    assert whole_number(text) == value
    assert whole_number(text + ".0") == value  # how CARB writes counts
    assert whole_number(text + ".5") is None


@pytest.mark.parametrize("text", ["", "abc", "1e3", "NaN", "Infinity", "12,34", "1,2345", "--1"])
def test_not_whole_numbers(text: str) -> None:
    assert whole_number(text) is None


# --------------------------------------------------------------------------- real samples

REAL_FILES = {
    # format: (file, expected outcome counts by type, as observed on the samples)
    "acr": ("american-carbon-registry/issuances.csv", {"IssuanceRecord": 100}),
    "car": ("climate-action-reserve/issuances.csv", {"IssuanceRecord": 100}),
    "art": ("art-trees/issuances.csv", {"IssuanceRecord": 11}),
    # every block was issued; 100 of them were also retired
    "verra": ("verra/transactions.csv", {"IssuanceRecord": 200, "RetirementRecord": 100}),
    "gold-standard": ("gold-standard/issuances.csv", {"IssuanceRecord": 100}),
    # every Isometric batch is fractional tonnes, floored to whole tonnes (see isometric.py)
    "isometric": ("isometric/issuances.csv", {"IssuanceRecord": 100}),
}

HAS_TOTAL_PROJECT_BUFFER = {"acr", "car", "art", "isometric"}


@needs_shared
@pytest.mark.parametrize("fmt", sorted(REAL_FILES))
def test_real_sample_every_row_read_or_rejected(fmt: str) -> None:
    name, expected = REAL_FILES[fmt]
    path = REAL / name
    rows = data_rows(path)
    results = list(PARSERS[fmt](path))
    # one issuance (or rejection) per row, in file order, each on its row's line
    firsts = [r for r in results if not isinstance(r, RetirementRecord)]
    assert len(firsts) == len(rows) == count_rows(path)
    assert [result.line for result in firsts] == sorted(rows)
    assert Counter(type(result).__name__ for result in results) == expected
    issuances = [result for result in results if isinstance(result, IssuanceRecord)]
    keys = Counter(record.source_key for record in issuances)
    assert [key for key, count in keys.items() if count > 1] == []
    for record in issuances:
        assert record.quantity >= 0 and record.buffer >= 0
        if fmt in HAS_TOTAL_PROJECT_BUFFER:
            assert record.total is not None
            stated = record.quantity + record.buffer - record.buffer_transferred
            if fmt == "isometric":  # whole tonnes floored apart: the total may keep one more
                assert record.total - stated in (0, 1)
            else:
                assert stated == record.total
    retired = {r.line: r for r in results if isinstance(r, RetirementRecord)}
    for record in issuances:
        if record.line in retired:
            assert retired[record.line].source_key == record.source_key
            assert retired[record.line].quantity == record.quantity
            assert retired[record.line].on >= record.issued_on


@needs_shared
def test_real_acr_quantities_match_the_columns() -> None:
    path = REAL / REAL_FILES["acr"][0]
    with path.open(newline="", encoding="utf-8-sig") as handle:
        table = list(csv.DictReader(handle))
    records = [r for r in acr.parse(path) if isinstance(r, IssuanceRecord)]
    assert sum(r.quantity for r in records) == sum(
        int(row["Credits Issued to Project"]) for row in table
    )
    assert sum(r.buffer for r in records) == sum(
        int(row["Credits Issued to Buffer Pool"]) + int(row["Credits Transferred to Buffer Pool"])
        for row in table
    )
    assert sum(r.buffer_transferred for r in records) == sum(
        int(row["Credits Transferred to Buffer Pool"]) for row in table
    )
    # ACR splits 12 issuances into a verified-removal row and a reduction row
    assert sum(r.source_key.endswith("|removal") for r in records) == 13
    split = Counter(r.source_key.removesuffix("|removal") for r in records)
    assert sum(1 for count in split.values() if count == 2) == 12


@needs_shared
def test_real_car_buffer_never_exceeds_total_and_split_issuance_keeps_two_keys() -> None:
    records = [r for r in car.parse(REAL / REAL_FILES["car"][0]) if isinstance(r, IssuanceRecord)]
    with_buffer = [r for r in records if r.buffer]
    assert len(with_buffer) == 50  # rows with a reserve or compliance buffer figure
    assert all(r.total is not None and r.buffer < r.total for r in with_buffer)
    assert sorted(r.source_key for r in records if r.project == "CAR1568") == [
        "CAR1568|2025|2025-12-31|118084",
        "CAR1568|2025|2025-12-31|22287",
    ]


@needs_shared
def test_real_verra_and_gold_standard_serials_match_quantities() -> None:
    for fmt in ("verra", "gold-standard"):
        for record in PARSERS[fmt](REAL / REAL_FILES[fmt][0]):
            if isinstance(record, IssuanceRecord):
                assert record.serial_first is not None and record.serial_last is not None
                count = int(record.serial_last) - int(record.serial_first) + 1
                assert count == record.quantity
                assert record.serial_prefix
