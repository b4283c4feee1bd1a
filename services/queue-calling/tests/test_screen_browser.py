"""A screen page in headless Chromium: masked name after a call, announcements spoken one after
another, "reconnecting" when its connection is cut, and a full re-sync once it is back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
from playwright.async_api import Browser, Page, async_playwright, expect

from .conftest import Service, World
from .test_http import setup_room
from .test_screens import make_screen

CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required"]


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Headless Chromium (speaking without a user gesture, as a screen does), closed on the way out."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def screen_page(browser: Browser, base: str, screen: dict) -> Page:
    """A new tab on a screen's public page (its token in the address, as the screen's URL carries it)."""
    page = await browser.new_page()
    await page.goto(f"{base}/ui/queue/screens/{screen['screen_id']}?token={screen['token']}")
    return page


async def terminal_page(browser: Browser, service: Service, token: str, errors: list[str] | None = None) -> Page:
    """A new tab on the calling terminal, signed in with `token`; its script errors into `errors`, if given."""
    page = await browser.new_page()
    if errors is not None:
        page.on("pageerror", lambda e: errors.append(str(e)))
    await page.add_init_script(f"sessionStorage.setItem('imaging.access_token', {token!r})")
    await page.goto(f"{service.url}/ui/queue/terminal")
    return page


class CuttableProxy:
    """A TCP proxy in front of the service: `cut()` drops every connection and refuses new ones."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.refusing = False
        self.writers: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.writers -= {writer, up_writer}

    def cut(self) -> None:
        self.refusing = True
        for w in list(self.writers):
            w.transport.abort()
        self.writers.clear()

    def heal(self) -> None:
        self.refusing = False

    async def close(self) -> None:
        self.cut()
        if self.server:
            self.server.close()
            await self.server.wait_closed()


@contextlib.asynccontextmanager
async def proxy_for(url: str) -> AsyncIterator[tuple[CuttableProxy, str]]:
    proxy = CuttableProxy(int(url.rsplit(":", 1)[1]))
    base = await proxy.start()
    try:
        yield proxy, base
    finally:
        await proxy.close()


async def test_screen_in_chromium_masks_speaks_and_recovers(api: httpx.AsyncClient, service: Service,
                                                            world: World) -> None:
    _, rid = await setup_room(api, service, world, door_cap=5)
    screen = await make_screen(api, service, world, [rid], layout={"next_count": 5})
    await world.patient(name="张三丰")
    await world.patient(name="李小龙")
    await world.patient(name="王五")
    nurse = service.headers("nurse")
    async with proxy_for(service.url) as (proxy, base), chromium() as browser:
        page = await screen_page(browser, base, screen)
        await page.wait_for_function("window.__screen && window.__screen.snapshots >= 1", timeout=10000)
        assert await page.locator("#status").is_hidden()
        next_names = await page.locator(".next .name").all_text_contents()
        assert next_names == ["张*丰", "李*龙", "王*"]

        # two calls back to back: both shown and both spoken, the second not cutting off the first
        first = (await api.post(f"/rooms/{rid}/call-next", headers=nurse)).json()
        second = (await api.post(f"/rooms/{rid}/call-next", headers=nurse)).json()
        await page.wait_for_function("window.__spoken.length >= 2", timeout=15000)
        spoken = await page.evaluate("window.__spoken")
        assert spoken[:2] == [f"请 {first['ticket']} 号 张*丰 到 CT1室 检查",
                              f"请 {second['ticket']} 号 李*龙 到 CT1室 检查"]
        current = await page.locator(".current .name").all_text_contents()
        assert set(current) == {"张*丰", "李*龙"}
        body = await page.content()
        assert "张三丰" not in body and "李小龙" not in body

        # cut the connection: the page says it is reconnecting
        proxy.cut()
        await page.wait_for_selector("#status", state="visible", timeout=10000)
        # meanwhile the queue moves on; this update cannot reach the page
        await api.post(f"/entries/{first['entry_id']}/start", json={}, headers=nurse)
        await api.post(f"/entries/{first['entry_id']}/finish", headers=nurse)
        third = (await api.post(f"/rooms/{rid}/call-next", headers=nurse)).json()
        assert third["patient_name"] == "王五"
        await asyncio.sleep(0.5)
        assert "王*" in await page.locator(".next .name").all_text_contents()  # still the old state

        # back online: the page re-syncs the full state and hides the banner
        proxy.heal()
        await page.wait_for_function("window.__screen.snapshots >= 2", timeout=15000)
        await page.wait_for_selector("#status", state="hidden", timeout=5000)
        current = await page.locator(".current .name").all_text_contents()
        assert set(current) == {"李*龙", "王*"}
        assert await page.locator(".next .name").all_text_contents() == []
        assert await page.locator(".room .waiting").inner_text() == "候诊 0 人"


async def test_terminal_page_calls_and_the_screen_follows(api: httpx.AsyncClient, service: Service,
                                                          world: World) -> None:
    _, rid = await setup_room(api, service, world, door_cap=5)
    screen = await make_screen(api, service, world, [rid])
    await world.patient(name="周八")
    late = await world.patient(name="吴九")
    token = service.token("technologist", username="tech-web")
    async with chromium() as browser:
        terminal = await terminal_page(browser, service, token)
        await terminal.wait_for_selector("#room option", state="attached")
        await terminal.select_option("#room", rid)
        await terminal.wait_for_selector(f"tr[data-entry-id='{late['entry_id']}']")
        names = await terminal.locator("#queues td.name").all_text_contents()
        assert names == ["周八", "吴九"]  # staff see full names

        board = await screen_page(browser, service.url, screen)
        await board.wait_for_function("window.__screen && window.__screen.snapshots >= 1")

        # move 吴九 up, then call next from the terminal: 吴九 is called, the screen shows 吴*
        await terminal.locator(f"tr[data-entry-id='{late['entry_id']}'] button", has_text="上移").click()
        # (a locator, not a string evaluated in the page: the terminal's CSP admits no eval)
        await expect(terminal.locator("#queues td.name").first).to_have_text("吴九", timeout=30_000)
        await terminal.click("#call-next")
        await terminal.wait_for_selector(f"tr[data-entry-id='{late['entry_id']}'].state-called")
        await board.wait_for_function(
            "[...document.querySelectorAll('.current .name')].some(e => e.textContent === '吴*')")
        log = (await api.get(f"/entries/{late['entry_id']}/log", headers=service.headers("nurse"))).json()["data"]
        assert [e["action"] for e in log] == ["check_in", "reorder", "call"]
        assert log[-1]["actor"] == "tech-web" and log[-1]["terminal"].startswith("web-")


async def test_screen_sleeps_outside_its_hours(api: httpx.AsyncClient, service: Service, world: World) -> None:
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    _, rid = await setup_room(api, service, world)
    local = datetime.now(ZoneInfo("Asia/Shanghai"))
    on, off = (local + timedelta(hours=1)).strftime("%H:%M"), (local + timedelta(hours=2)).strftime("%H:%M")
    screen = await make_screen(api, service, world, [rid], on_time=on, off_time=off)
    async with chromium() as browser:
        page = await screen_page(browser, service.url, screen)
        await page.wait_for_function("document.body.classList.contains('sleeping')", timeout=10000)
        assert await page.locator("#sleep").is_visible()
        # the schedule is changed centrally: the screen wakes without anyone touching it
        on = (local - timedelta(hours=1)).strftime("%H:%M")
        r = await api.put(f"/screens/{screen['screen_id']}", headers=service.headers("admin"), json={
            "kind": "hall", "room_ids": [rid], "on_time": on, "off_time": off})
        assert r.status_code == 200
        await page.wait_for_function("!document.body.classList.contains('sleeping')", timeout=10000)


async def test_a_nurse_checks_in_and_calls_with_the_keyboard_only(api: httpx.AsyncClient, service: Service,
                                                                   world: World) -> None:
    """Issue 23 item 6: the terminal's main task without the mouse: F2 to the scan field, the barcode (as a
    scanner types it, Enter last), the field ready for the next scan; F9 calls the next patient."""
    _, rid = await setup_room(api, service, world, door_cap=5)
    first, second = await world.exam(name="郑十"), await world.exam(name="王十一")
    token = service.token("nurse", username="nurse-keys")
    async with chromium() as browser:
        errors: list[str] = []
        page = await terminal_page(browser, service, token, errors)
        await page.wait_for_selector("#room option", state="attached")
        await page.select_option("#room", rid)
        await page.keyboard.press("F2")
        await expect(page.locator("#value")).to_be_focused()
        for order in (first, second):
            await page.keyboard.type(order.accession_number)
            await page.keyboard.press("Enter")
            await expect(page.locator("#checkin-result")).to_contain_text("前面")
            await expect(page.locator("#value")).to_have_value("")
            await expect(page.locator("#value")).to_be_focused()
        await expect(page.locator("#queues td.name")).to_have_text(["郑十", "王十一"])
        await page.keyboard.press("F9")
        await expect(page.locator("#queues tr.state-called td.name")).to_have_text("郑十")
        assert errors == []
    states = await world.pool.fetch("SELECT accession_number, state FROM queue_entry WHERE accession_number = ANY($1)",
                                    [first.accession_number, second.accession_number])
    assert {r["accession_number"]: r["state"] for r in states} == {first.accession_number: "called",
                                                                   second.accession_number: "waiting"}
