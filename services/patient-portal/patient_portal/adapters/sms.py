"""SMS to patients through a provider: an SMSC over SMPP 3.4 (smpplib), or an SMS cloud's HTTP API.

A provider is one coroutine, `send(phone, text) -> message id`; any failure raises `SmsFailed`
(retryable or not), never leaves a half-sent state to clean up: the SMSC's or cloud's message id is
the receipt.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import smpplib.client
import smpplib.consts
import smpplib.exceptions
from imaging_common.outbound import AllowList, guarded_client
from imaging_common.service import ServiceContext

from patient_portal.settings import Settings

SmsProvider = Callable[[str, str], Awaitable[str]]
UCS2 = 8  # data_coding of a UCS-2 message (Chinese text)
SINGLE_UCS2_BYTES = 140  # one SMS; a longer message goes as message_payload (SMPP 3.4 5.3.2.32)


class SmsFailed(Exception):
    """The provider did not take the message; `retryable` when trying again later may succeed."""

    def __init__(self, reason: str, *, retryable: bool = True):
        super().__init__(reason)
        self.retryable = retryable


class SmppProvider:
    """Binds as a transmitter, submits one message, unbinds: one short session per message (patient
    messages are few; a held bind would need enquire_link upkeep across the SMSC's idle timeout)."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def _submit(self, phone: str, text: str) -> str:
        s = self.settings
        client = smpplib.client.Client(s.patient_smpp_host, s.patient_smpp_port, timeout=s.patient_smpp_timeout,
                                        allow_unknown_opt_params=True)
        payload = text.encode("utf-16-be")
        body: dict[str, Any] = (
            {"short_message": payload} if len(payload) <= SINGLE_UCS2_BYTES
            else {"short_message": b"", "message_payload": payload})
        try:
            client.connect()
            client.bind_transmitter(system_id=s.patient_smpp_system_id, password=s.patient_smpp_password)
            client.send_message(
                source_addr_ton=smpplib.consts.SMPP_TON_ALNUM, source_addr=s.patient_smpp_source,
                dest_addr_ton=smpplib.consts.SMPP_TON_INTL, dest_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
                destination_addr=f"86{phone}", data_coding=UCS2, registered_delivery=0, **body)
            resp = client.read_pdu()
            if resp.command != "submit_sm_resp":
                raise SmsFailed(f"SMSC answered {resp.command} to submit_sm")
            if resp.is_error():
                raise smpplib.exceptions.PDUError(resp.get_status_desc(), int(resp.status))
            message_id = resp.message_id
            client.unbind()
            return message_id.decode() if isinstance(message_id, bytes) else str(message_id)
        except smpplib.exceptions.PDUError as exc:
            status = exc.args[1] if len(exc.args) > 1 else None
            # Throttled or queue full: later; anything else (bad number, bad account) will not change.
            transient = status in (smpplib.consts.SMPP_ESME_RTHROTTLED, smpplib.consts.SMPP_ESME_RMSGQFUL)
            raise SmsFailed(f"SMSC refused: {exc.args[0]}", retryable=transient) from None
        except (OSError, smpplib.exceptions.ConnectionError) as exc:
            raise SmsFailed(f"SMSC unreachable: {exc}") from None
        finally:
            client.disconnect()

    async def __call__(self, phone: str, text: str) -> str:
        return await asyncio.to_thread(self._submit, phone, text)


class HttpSmsProvider:
    """The shape the common Chinese SMS clouds share behind a hospital's gateway: POST JSON with the
    number, the signature, the approved template and its parameters (here the whole text as `content`,
    for gateways that take free text); answered with a message id. 4xx: refused for good; 5xx, 429,
    network: retried."""

    def __init__(self, settings: Settings, client: httpx.AsyncClient):
        self.settings = settings
        self.client = client

    async def __call__(self, phone: str, text: str) -> str:
        s = self.settings
        assert s.patient_sms_http_url
        body = {"phone_numbers": phone, "sign_name": s.patient_sms_signature.strip("【】"),
                "template_code": s.patient_sms_http_template, "template_param": {"content": text}}
        headers = {"Authorization": f"Bearer {s.patient_sms_http_token}"} if s.patient_sms_http_token else {}
        try:
            response = await self.client.post(s.patient_sms_http_url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise SmsFailed(f"SMS gateway unreachable: {exc}") from None
        if response.status_code >= 400:
            retryable = response.status_code >= 500 or response.status_code == 429
            raise SmsFailed(f"SMS gateway answered {response.status_code}", retryable=retryable)
        answer = response.json() if response.content else {}
        return str(answer.get("message_id") or answer.get("BizId") or answer.get("biz_id") or "")


@contextlib.asynccontextmanager
async def sms_channel(ctx: ServiceContext[Settings]) -> AsyncIterator[SmsProvider]:
    """Listener: the configured provider, shared with routes and workers as `ctx.extras["sms"]`."""
    s = ctx.settings
    if s.patient_sms_provider == "http":
        allow = AllowList.from_settings(s)
        allow.check_url(s.patient_sms_http_url)  # unset or not on IMAGING_OUTBOUND_ALLOW: refuse to start
        async with guarded_client(allow, timeout=s.patient_smpp_timeout) as client:
            ctx.extras["sms"] = HttpSmsProvider(s, client)
            yield ctx.extras["sms"]
        return
    ctx.extras["sms"] = SmppProvider(s)
    yield ctx.extras["sms"]
