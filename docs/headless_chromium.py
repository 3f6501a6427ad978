"""Headless Chromium driven through its DevTools protocol (aiohttp, which Ray brings, speaks its websocket):
load a page, let it settle, click, read it with JavaScript, take a screenshot. docs/screenshot_page.py
photographs pages with it; tests/reporting/test_report_in_browser.py opens the report with it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from contextlib import contextmanager

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def find_browser() -> str | None:
    """The first Chromium on PATH (Debian's package installs ``chromium``)."""
    return next((found for found in map(shutil.which, BROWSERS) if found), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def chromium(width: int = 1400, height: int = 1000, start_timeout: float = 30.0):
    """A headless Chromium with a fresh profile for the block; yields its DevTools port."""
    browser = find_browser()
    if browser is None:
        raise RuntimeError(f"no Chromium on PATH ({', '.join(BROWSERS)}): apt-get install chromium")
    port = _free_port()
    with tempfile.TemporaryDirectory() as profile:
        # --no-sandbox: CI containers run as root, where Chromium's sandbox refuses to start.
        process = subprocess.Popen([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                                    f"--remote-debugging-port={port}", f"--user-data-dir={profile}",
                                    f"--window-size={width},{height}", "about:blank"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + start_timeout
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/json/version", timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise RuntimeError(f"{browser} did not open its DevTools port in {start_timeout:g} s")
                    time.sleep(0.3)
            yield port
        finally:
            process.terminate()
            process.wait(timeout=30)


class Page:
    """One tab: DevTools calls, one at a time."""

    def __init__(self, ws):
        self.ws, self.next_id = ws, 0

    async def call(self, method: str, **params):
        self.next_id += 1
        await self.ws.send_str(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads((await self.ws.receive()).data)
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    async def evaluate(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result.get("result", {}).get("value")

    async def open(self, url: str, width: int, height: int, settle: float) -> None:
        """Navigate, wait until the document and its images have loaded, then ``settle`` seconds more
        (a script-drawn page such as MLflow's UI renders after its load event)."""
        await self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                        mobile=False)
        await self.call("Page.navigate", url=url)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            if await self.evaluate("document.readyState === 'complete' && location.href !== 'about:blank'"):
                break
        await asyncio.sleep(settle)


async def _with_page(port: int, use):
    import aiohttp

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as r:
        target = next(t for t in json.loads(r.read()) if t["type"] == "page")
    async with aiohttp.ClientSession() as session, session.ws_connect(target["webSocketDebuggerUrl"],
                                                                        max_msg_size=0) as ws:
        return await use(Page(ws))


def screenshot(url: str, out: str, clicks=(), width: int = 1800, height: int = 1000, settle: float = 6.0) -> None:
    """A PNG of ``url`` after it settled and after clicking each CSS selector of ``clicks`` in turn."""

    async def shoot(page: Page) -> None:
        await page.open(url, width, height, settle)
        for selector in clicks:
            count = await page.evaluate(
                f"(() => {{ const found = [...document.querySelectorAll({json.dumps(selector)})];"
                " found.forEach(e => e.click()); return found.length; })()")
            print(f"clicked {count} x {selector}")
            await asyncio.sleep(settle / 2)
        shot = await page.call("Page.captureScreenshot", format="png")
        with open(out, "wb") as f:
            f.write(base64.b64decode(shot["data"]))

    with chromium(width, height) as port:
        asyncio.run(_with_page(port, shoot))


def evaluate(url: str, expression: str, width: int = 1400, height: int = 1000, settle: float = 0.5):
    """The value of the JavaScript ``expression`` on ``url`` once it has loaded (JSON-able values only)."""

    async def read(page: Page):
        await page.open(url, width, height, settle)
        return await page.evaluate(expression)

    with chromium(width, height) as port:
        return asyncio.run(_with_page(port, read))
