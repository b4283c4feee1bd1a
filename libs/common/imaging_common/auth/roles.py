"""Staff roles (least privilege, standard 10.3.4): each route names the roles it admits."""

from __future__ import annotations

CLERK = "clerk"
TECHNOLOGIST = "technologist"
NURSE = "nurse"
RADIOLOGIST = "radiologist"
SENIOR_RADIOLOGIST = "senior-radiologist"
CLINICIAN = "clinician"
ADMIN = "admin"
IT_OPS = "it-ops"

ROLES: tuple[str, ...] = (CLERK, TECHNOLOGIST, NURSE, RADIOLOGIST, SENIOR_RADIOLOGIST, CLINICIAN, ADMIN, IT_OPS)
