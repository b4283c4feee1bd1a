"""A service with a DICOM port and its TLS twin (worklist, print SCP), served over HTTP for its known-peers
admin API: what the DICOM peer and TLS checks register and read back from the audit log."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from imaging_testing import free_port, http_server
from imaging_testing.auth import issue_test_token

from security.certs import Certificates, make_certificates
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


@contextlib.asynccontextmanager
async def serving(spec: Any, settings_class: type, settings_for: Any, folder: Path, *, ports: str,
                  **more: Any) -> AsyncIterator[DicomPorts]:
    """The service with its DICOM port and TLS port (settings `<ports>_host`, `_port`, `_tls_port`,
    `_peers`), mutual TLS on certificates made in `folder`, known peers enforced."""
    from imaging_common.service import create_service_app

    certs = make_certificates(folder)
    port, tls_port = free_port(), free_port()
    settings = settings_for(settings_class, **{f"{ports}_host": "127.0.0.1", f"{ports}_port": port,
                                               f"{ports}_tls_port": tls_port, f"{ports}_peers": "enforce"},
                            db_pool_max=3, dicom_tls_cert_file=certs.server.cert, dicom_tls_key_file=certs.server.key,
                            dicom_tls_ca_file=certs.ca, **more)
    async with http_server(create_service_app(spec, settings)) as url:
        yield DicomPorts(url, settings, port, tls_port, certs, f"{spec.api_prefix}/admin/peers")
