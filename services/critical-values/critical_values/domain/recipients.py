"""Who is told: the responsible clinician from the order, on-call rosters, and the clinician systems
(receivers) that carry the message to them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg


@dataclass(frozen=True)
class Person:
    person_id: str | None
    name: str | None
    phone: str | None = None


async def remember_order(conn: asyncpg.Connection, *, accession_number: str, order_id: str, patient: dict[str, Any],
                         patient_class: str | None, ordering_doctor_id: str | None, ordering_doctor: str | None,
                         ordering_department: str | None, ward: str | None, modality: str | None) -> None:
    await conn.execute(
        """INSERT INTO order_info (accession_number, order_id, patient, patient_class, ordering_doctor_id,
               ordering_doctor, ordering_department, ward, modality)
           VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, $8, $9)
           ON CONFLICT (accession_number) DO UPDATE SET order_id = EXCLUDED.order_id, patient = EXCLUDED.patient,
               patient_class = EXCLUDED.patient_class, ordering_doctor_id = EXCLUDED.ordering_doctor_id,
               ordering_doctor = EXCLUDED.ordering_doctor, ordering_department = EXCLUDED.ordering_department,
               ward = EXCLUDED.ward, modality = EXCLUDED.modality, received_at = now()""",
        accession_number, order_id, json.dumps(patient, default=str, ensure_ascii=False), patient_class,
        ordering_doctor_id, ordering_doctor, ordering_department, ward, modality)


async def order_of(conn: asyncpg.Connection, accession_number: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM order_info WHERE accession_number = $1", accession_number)


async def on_duty(conn: asyncpg.Connection, *, department: str | None, duty: str, at: datetime) -> Person | None:
    """Who holds `duty` ('on-call', 'backup', 'head') for the department (or ward) at `at`."""
    if not department:
        return None
    row = await conn.fetchrow(
        """SELECT person_id, person_name, phone FROM roster_entry
           WHERE department = $1 AND duty = $2 AND starts_at <= $3 AND ends_at > $3
           ORDER BY starts_at DESC LIMIT 1""", department, duty, at)
    return Person(row["person_id"], row["person_name"], row["phone"]) if row else None


async def phone_of(conn: asyncpg.Connection, person_id: str | None, at: datetime) -> str | None:
    if not person_id:
        return None
    return await conn.fetchval(
        """SELECT phone FROM roster_entry WHERE person_id = $1 AND phone IS NOT NULL
           ORDER BY (starts_at <= $2 AND ends_at > $2) DESC, starts_at DESC LIMIT 1""", person_id, at)


async def receivers_for(conn: asyncpg.Connection, department: str | None) -> list[asyncpg.Record]:
    """The department's own clinician systems, else the catch-all ones ('*')."""
    rows = await conn.fetch("SELECT * FROM receiver WHERE active AND department = $1", department or "")
    if rows:
        return list(rows)
    return list(await conn.fetch("SELECT * FROM receiver WHERE active AND department = '*' ORDER BY receiver_id"))


async def put_receiver(conn: asyncpg.Connection, *, receiver_id: str, name: str, department: str,
                       hl7_host: str | None, hl7_port: int | None, hl7_message_type: str,
                       fhir_base_url: str | None, fhir_request: str | None, active: bool,
                       ack_application: str | None = None, ack_facility: str | None = None,
                       ack_hosts: list[str] | None = None, fhir_client: str | None = None) -> None:
    """Create or change a receiver. How it is recognised when it answers: HL7 ACKs by MSH-3
    `ack_application` (default: its receiver_id, the MSH-5 we address it by), MSH-4 `ack_facility`
    (default: any) and peer address in `ack_hosts` (default: any); FHIR by the service account
    `fhir_client` (default: a username equal to its receiver_id)."""
    await conn.execute(
        """INSERT INTO receiver (receiver_id, name, department, hl7_host, hl7_port, hl7_message_type, fhir_base_url,
               fhir_request, active, ack_application, ack_facility, ack_hosts, fhir_client)
           VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)
           ON CONFLICT (receiver_id) DO UPDATE SET name = EXCLUDED.name, department = EXCLUDED.department,
               hl7_host = EXCLUDED.hl7_host, hl7_port = EXCLUDED.hl7_port,
               hl7_message_type = EXCLUDED.hl7_message_type, fhir_base_url = EXCLUDED.fhir_base_url,
               fhir_request = EXCLUDED.fhir_request, active = EXCLUDED.active,
               ack_application = EXCLUDED.ack_application, ack_facility = EXCLUDED.ack_facility,
               ack_hosts = EXCLUDED.ack_hosts, fhir_client = EXCLUDED.fhir_client""",
        receiver_id, name, department, hl7_host, hl7_port, hl7_message_type, fhir_base_url, fhir_request, active,
        ack_application or None, ack_facility or None, list(ack_hosts or []), fhir_client or None)


async def receivers_by_hl7_sender(conn: asyncpg.Connection, *, application: str, facility: str,
                                  host: str | None) -> list[str]:
    """The receivers an HL7 message with this MSH-3/MSH-4, from this address, comes from (usually
    one; several when one clinician system is configured per department). [] = an unknown peer."""
    if not application:
        return []
    rows = await conn.fetch(
        """SELECT receiver_id FROM receiver
           WHERE coalesce(ack_application, receiver_id) = $1
             AND (ack_facility IS NULL OR ack_facility = $2)
             AND (cardinality(ack_hosts) = 0 OR $3 = ANY(ack_hosts))
           ORDER BY receiver_id""", application, facility, host)
    return [r["receiver_id"] for r in rows]


async def receivers_by_fhir_client(conn: asyncpg.Connection, username: str) -> list[str]:
    """The receivers whose FHIR service account this is. [] = not a clinician system's account."""
    rows = await conn.fetch("SELECT receiver_id FROM receiver WHERE coalesce(fhir_client, receiver_id) = $1 "
                            "ORDER BY receiver_id", username)
    return [r["receiver_id"] for r in rows]


async def add_roster_entry(conn: asyncpg.Connection, *, department: str, duty: str, person_id: str,
                           person_name: str, phone: str | None, starts_at: datetime, ends_at: datetime) -> int:
    return int(await conn.fetchval(
        """INSERT INTO roster_entry (department, duty, person_id, person_name, phone, starts_at, ends_at)
           VALUES ($1,$2,$3,$4,$5,$6,$7) RETURNING entry_id""",
        department, duty, person_id, person_name, phone, starts_at, ends_at))


async def receivers(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Clinician systems notifications go to."""
    return await conn.fetch("SELECT * FROM receiver ORDER BY receiver_id")


async def roster_at(conn: asyncpg.Connection, at: datetime | None) -> list[asyncpg.Record]:
    """Roster entries covering a time (now when None)."""
    return await conn.fetch(
        "SELECT * FROM roster_entry WHERE starts_at <= coalesce($1, now()) AND ends_at > coalesce($1, now()) "
        "ORDER BY department, duty", at)
