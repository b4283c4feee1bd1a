"""The patient's copy of a final report as a PDF: the hospital's header, the exam, the impression, the
electronic signature and a QR code that opens the report's verification (Pillow draws an A4 page;
qrcode draws the code). Built in a worker thread: drawing is blocking work."""

from __future__ import annotations

import asyncio
import io
import textwrap
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import qrcode
from PIL import Image, ImageDraw, ImageFont

# Debian's fonts-noto-cjk (the image installs it): face 2 of the collection is Simplified Chinese.
CJK_COLLECTION, SIMPLIFIED = "NotoSansCJK-Regular.ttc", 2
DPI, WIDTH, HEIGHT, MARGIN = 150, 1240, 1754, 110  # A4
STATUS_NAMES = {"amended": "更正报告"}


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:  # Pillow finds the collection by its file name in the system font folders
        return ImageFont.truetype(CJK_COLLECTION, size, index=SIMPLIFIED)
    except OSError:
        return ImageFont.load_default(size)


def _local(at: datetime | None, tz: str) -> str:
    return at.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M") if at else ""


def render(exam: dict[str, Any], *, hospital: str, verify_url: str, tz: str) -> bytes:
    page = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(page)
    y = MARGIN
    draw.text((WIDTH // 2, y), hospital, font=_font(52), fill="black", anchor="mt")
    y += 80
    draw.text((WIDTH // 2, y), "影像检查报告单", font=_font(40), fill="black", anchor="mt")
    y += 80
    draw.line((MARGIN, y, WIDTH - MARGIN, y), fill="black", width=3)
    y += 30
    body = _font(30)
    for label, value in (("姓名", exam.get("patient_name") or ""), ("检查项目", exam["exam_name"]),
                         ("检查号", exam["accession_number"]), ("检查类型", exam["modality"]),
                         ("报告时间", _local(exam.get("reported_at"), tz)),
                         ("报告版本", f"第 {exam.get('report_version') or 1} 版")):
        draw.text((MARGIN, y), f"{label}：{value}", font=body, fill="black")
        y += 50
    y += 20
    draw.text((MARGIN, y), "诊断意见", font=_font(34), fill="black")
    y += 60
    for paragraph in (exam.get("impression") or "（无）").splitlines() or [""]:
        for line in textwrap.wrap(paragraph, 32) or [""]:
            draw.text((MARGIN, y), line, font=body, fill="black")
            y += 46
    y = HEIGHT - MARGIN - 300
    draw.line((MARGIN, y, WIDTH - MARGIN, y), fill="black", width=2)
    y += 30
    draw.text((MARGIN, y), f"报告医师（电子签名）：{exam.get('signed_by') or ''}", font=body, fill="black")
    digest = exam.get("content_sha256") or ""
    draw.text((MARGIN, y + 50), f"签名摘要：{digest[:32]}", font=_font(22), fill="black")
    note = "扫描右侧二维码可核验本报告的真实性。本报告仅供临床参考。"
    draw.text((MARGIN, y + 90), note, font=_font(24), fill="black")
    code = qrcode.make(verify_url, box_size=6, border=2).get_image().convert("RGB")
    page.paste(code, (WIDTH - MARGIN - code.width, y))
    out = io.BytesIO()
    page.save(out, format="PDF", resolution=DPI, title=f"{hospital} 影像检查报告 {exam['accession_number']}")
    return out.getvalue()


async def render_pdf(exam: dict[str, Any], *, hospital: str, verify_url: str, tz: str) -> bytes:
    return await asyncio.to_thread(render, exam, hospital=hospital, verify_url=verify_url, tz=tz)
