"""A service with a DICOM port and its TLS twin (worklist, print SCP), served over HTTP for its known-peers
admin API: what the DICOM peer and TLS checks register and read back from the audit log."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from imaging_testing.auth import issue_test_token

from security.certs import Certificates
from security.unavailable import connect


@dataclass
class DicomPorts:
    url: str
    settings: Any
    port: int
    tls_port: int
    certs: Certificates
    api: str  # its known-peers admin API, /api/<prefix>/admin/peers

    @property
    def database_url(self) -> str:
        return str(self.settings.database_url)

    def headers(self, *roles: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_test_token(self.settings, roles=roles or ('it-ops',))}"}

    async def register(self, ae_title: str, addresses: list[str] | None = None, cert_sha256: str | None = None,
                       kind: str = "modality") -> str:
        """A known peer (it-ops through the admin API), at 127.0.0.1 unless other addresses are given."""
        peer_id = f"dev-{uuid.uuid4().hex[:10]}"
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as api:
            r = await api.put(f"{self.api}/{peer_id}", headers=self.headers(), json={
                "kind": kind, "name": f"test {ae_title}", "ae_title": ae_title,
                "addresses": addresses or ["127.0.0.1"], "cert_sha256": cert_sha256})
        assert r.status_code == 200, r.text
        return peer_id

    async def audit_rows(self, actor: str) -> list[Any]:
        """The audit log's rows about peers by this actor (dicom:<AE>, tls:<address>), oldest first."""
        conn = await connect(self.database_url)
        try:
            return list(await conn.fetch(
                "SELECT * FROM audit.audit_log WHERE actor = $1 AND entity = 'peer' ORDER BY seq", actor))
        finally:
            await conn.close()
