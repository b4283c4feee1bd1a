"""Where the platform may send things (issue 18, 8): webhooks, FHIR endpoints, MLLP receivers.

`IMAGING_OUTBOUND_ALLOW` lists the destinations: host names (`his.hospital.local`), domains
(`.hospital.local` = any host under it) and networks (`10.20.0.0/16`, `192.168.1.7`). A destination
passes twice:

1. when it is configured (receiver saved, settings read): its host must match a host or domain entry,
   or, given as an IP address, fall inside a network entry; otherwise 422 / refusal to start;
2. every time it is called: the name is resolved and *every* address must be either public or inside
   a network entry — loopback, private (RFC 1918, fc00::/7), link-local (169.254.0.0/16 with the cloud
   metadata address, fe80::/10), CGNAT, unspecified, multicast and reserved addresses are refused
   unless listed. The connection then goes to the address that was checked (the Host header and the
   TLS server name stay the configured name), so a DNS answer that changes between the check and the
   connect (DNS rebinding) cannot redirect it. Cloud metadata addresses are refused even when listed.

Unset, development allows loopback and the private networks (a developer machine's receivers);
production allows nothing until configured.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

if TYPE_CHECKING:
    from imaging_common.config import CommonSettings

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
DEVELOPMENT_DEFAULT = "localhost,127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7"
METADATA = (ipaddress.ip_network("169.254.169.254/32"), ipaddress.ip_network("fd00:ec2::254/128"),
            ipaddress.ip_network("100.100.100.200/32"))  # AWS/GCP/Azure/OpenStack, AWS IPv6, Alibaba Cloud


class DestinationRefused(ConnectionError):
    """The destination is not on the allow-list, or resolves to an address that is not allowed (a
    ConnectionError: a send to it fails like an unreachable peer, and is recorded as such)."""


@dataclass(frozen=True)
class AllowList:
    hosts: frozenset[str]
    domains: tuple[str, ...]  # ".hospital.local"
    networks: tuple[IPNetwork, ...]

    @classmethod
    def parse(cls, text: str) -> AllowList:
        hosts, domains, networks = set(), [], []
        for raw in (p.strip() for p in (text or "").replace(";", ",").split(",")):
            if not raw:
                continue
            try:
                networks.append(ipaddress.ip_network(raw, strict=False))
                continue
            except ValueError:
                pass
            name = raw.lower().rstrip(".")
            if name.startswith("*."):
                name = name[1:]
            if not name.replace(".", "").replace("-", "").isalnum():
                raise DestinationRefused(f"IMAGING_OUTBOUND_ALLOW: {raw!r} is neither a host, a .domain nor a network")
            (domains.append(name) if name.startswith(".") else hosts.add(name))
        return cls(frozenset(hosts), tuple(domains), tuple(networks))

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> AllowList:
        configured = settings.outbound_allow
        if configured is None:
            configured = DEVELOPMENT_DEFAULT if settings.env != "production" else ""
        return cls.parse(configured)

    # ---- 1. at configuration ------------------------------------------------------------------
    def _listed_address(self, address: IPAddress) -> bool:
        return any(address in net for net in self.networks if net.version == address.version)

    def check_host(self, host: str | None) -> str:
        """The host, when the allow-list names it (or its address); else DestinationRefused."""
        name = (host or "").strip().lower().rstrip(".").strip("[]")
        if not name:
            raise DestinationRefused("no host")
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            if name in self.hosts or any(name.endswith(d) for d in self.domains):
                return name
            raise DestinationRefused(f"{name} is not in IMAGING_OUTBOUND_ALLOW") from None
        self._check_address(address, name)
        if not self._listed_address(address):
            raise DestinationRefused(f"{name} is not in IMAGING_OUTBOUND_ALLOW")
        return name

    def check_url(self, url: str | None) -> str:
        parts = urlsplit(url or "")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DestinationRefused(f"{url!r} is not an http(s) URL")
        if parts.username or parts.password:
            raise DestinationRefused("credentials do not go in a receiver's URL")
        self.check_host(parts.hostname)
        return url or ""

    # ---- 2. at call time ----------------------------------------------------------------------
    def _check_address(self, address: IPAddress, host: str) -> None:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in net for net in METADATA if net.version == address.version):
            raise DestinationRefused(f"{host} resolves to a cloud metadata address ({address})")
        if address.is_global and not address.is_multicast:
            return
        if not self._listed_address(address):
            raise DestinationRefused(f"{host} resolves to {address}: not public, not in IMAGING_OUTBOUND_ALLOW")

    def check_addresses(self, host: str, addresses: Iterable[str]) -> str:
        """The first address to connect to, once every address the name resolves to is allowed."""
        found = [ipaddress.ip_address(a.split("%")[0]) for a in addresses]
        if not found:
            raise DestinationRefused(f"{host} does not resolve")
        for address in found:
            self._check_address(address, host)
        return str(found[0])

    async def resolve(self, host: str, port: int) -> str:
        """Check the host against the list, resolve it now and check every address: the address to use."""
        self.check_host(host)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise DestinationRefused(f"{host} does not resolve: {exc}") from None
        return self.check_addresses(host, [str(info[4][0]) for info in infos])


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that sends only to allowed destinations, to the address it checked."""

    def __init__(self, allow: AllowList, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.allow = allow
        self.inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        port = request.url.port or (443 if request.url.scheme == "https" else 80)
        try:
            address = await self.allow.resolve(host, port)
        except DestinationRefused as exc:
            raise httpx.ConnectError(f"destination refused: {exc}", request=request) from None
        if address != host:
            # Connect to the checked address; the Host header (set from the URL) and TLS SNI stay the name.
            request.url = request.url.copy_with(host=address)
            if request.url.scheme == "https":
                request.extensions = {**request.extensions, "sni_hostname": host}
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def guarded_client(allow: AllowList, **kwargs: Any) -> httpx.AsyncClient:
    """An httpx.AsyncClient for outbound calls: no redirects followed (a redirect could leave the list)."""
    return httpx.AsyncClient(transport=GuardedTransport(allow), follow_redirects=False, **kwargs)
