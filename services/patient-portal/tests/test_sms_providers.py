"""The SMS providers against real peers: SMPP 3.4 to the test SMSC (UCS-2 Chinese, long text as
message_payload, a refused bind and a throttled submit); the HTTP shape of the Chinese SMS clouds to a
gateway served over TCP here (JSON body, bearer token, 5xx retried, 4xx not)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from imaging_testing import http_server
from imaging_testing.smsc import TestSmsc
from patient_portal.adapters.sms import HttpSmsProvider, SmppProvider, SmsFailed
from patient_portal.settings import Settings


async def test_smpp_chinese_long_text_and_refusals(settings_for: Any) -> None:
    async with TestSmsc(password="s3cret") as smsc:
        provider = SmppProvider(settings_for(Settings, patient_smpp_port=smsc.port, patient_smpp_password="s3cret"))
        receipt = await provider("13800138000", "【影像中心】您好")
        long_text = "检查报告已出。" * 30  # over 70 UCS-2 characters: one message_payload
        await provider("13800138000", long_text)
        assert [m.text for m in smsc.messages] == ["【影像中心】您好", long_text]
        assert smsc.messages[0].message_id == receipt and smsc.messages[0].destination == "8613800138000"
        smsc.refuse_next = 1
        with pytest.raises(SmsFailed) as throttled:
            await provider("13800138000", "x")
        assert throttled.value.retryable
        wrong = SmppProvider(settings_for(Settings, patient_smpp_port=smsc.port, patient_smpp_password="nope"))
        with pytest.raises(SmsFailed) as refused:
            await wrong("13800138000", "x")
        assert not refused.value.retryable, "a wrong password will not get better"


async def test_smpp_unreachable_is_retryable(settings_for: Any) -> None:
    async with TestSmsc() as smsc:
        port = smsc.port
    with pytest.raises(SmsFailed) as down:
        await SmppProvider(settings_for(Settings, patient_smpp_port=port, patient_smpp_timeout=2))("13800138000", "x")
    assert down.value.retryable


async def test_http_gateway_shape(settings_for: Any) -> None:
    received: list[dict[str, Any]] = []
    answers = [JSONResponse({"message_id": "BIZ-1"}), JSONResponse({}, status_code=503),
               JSONResponse({"error": "bad number"}, status_code=400)]
    gateway = FastAPI()

    @gateway.post("/send")
    async def send(request: Request) -> JSONResponse:
        received.append({"auth": request.headers.get("authorization"), "body": await request.json()})
        return answers[len(received) - 1]

    async with http_server(gateway) as url, httpx.AsyncClient(timeout=5) as client:
        s = settings_for(Settings, patient_sms_provider="http", patient_sms_http_url=f"{url}/send",
                         patient_sms_http_token="tok", patient_sms_http_template="SMS_1")
        provider = HttpSmsProvider(s, client)
        assert await provider("13800138000", "【影像中心】您好") == "BIZ-1"
        with pytest.raises(SmsFailed) as unavailable:
            await provider("13800138000", "x")
        assert unavailable.value.retryable
        with pytest.raises(SmsFailed) as refused:
            await provider("13800138000", "x")
        assert not refused.value.retryable
    assert received[0] == {"auth": "Bearer tok", "body": {
        "phone_numbers": "13800138000", "sign_name": "影像中心", "template_code": "SMS_1",
        "template_param": {"content": "【影像中心】您好"}}}
