"""Reporting's part of the starter department (imaging_common.starter): report templates for common
exams (chest CT, head CT, abdomen ultrasound, knee MR, chest radiograph, and one plain template per
modality) and department phrases. A template is kept when its id exists or a template for the same
modality and body part does (the admin's is the one reports default to); a phrase is kept when the
department has one of the same modality, section and label."""

from __future__ import annotations

import asyncpg
from imaging_common.starter import Department, Report, Tally

from reporting.domain import phrases, templates

CREATED_BY = "starter"


async def load(conn: asyncpg.Connection, department: Department) -> Report:
    made, said = Tally(), Tally()
    stored = await templates.listing(conn, None)
    ids = {r["id"] for r in stored}
    covered = {(r["modality"], r["body_part"]) for r in stored}
    for t in department.templates:
        template = templates.TemplateCreate.model_validate(t.model_dump())  # reporting's own checks
        if made.add(t.id, t.id not in ids and (t.modality, t.body_part) not in covered):
            await templates.store(conn, template, "native", CREATED_BY)
            covered.add((t.modality, t.body_part))
    known = {(r["modality"], r["section"], r["label"])
             for r in await phrases.visible_to(conn, "", modality=None, section=None) if r["owner"] is None}
    for p in department.phrases:
        if said.add(f"{p.modality or '*'}/{p.section}/{p.label}", (p.modality, p.section, p.label) not in known):
            await phrases.add(conn, owner=None, department=department.name, modality=p.modality, section=p.section,
                              label=p.label, text=p.text)
    return {"templates": made, "phrases": said}
