"""A screenshot of a web page after it has settled, optionally after clicking on it, through headless
Chromium's DevTools protocol (aiohttp, which Ray brings, speaks its websocket). docs/screenshots.sh uses
it for the MLflow UI, whose trial runs sit folded under their parent run until a click unfolds them.

    python docs/screenshot_page.py URL OUT.png [--click CSS_SELECTOR]... [--width 1800 --height 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Page:
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


async def shoot(port: int, url: str, out: str, clicks: list[str], width: int, height: int, settle: float) -> None:
    import aiohttp

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as r:
        target = next(t for t in json.loads(r.read()) if t["type"] == "page")
    async with aiohttp.ClientSession() as session, session.ws_connect(target["webSocketDebuggerUrl"],
                                                                        max_msg_size=0) as ws:
        page = Page(ws)
        await page.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                        mobile=False)
        await page.call("Page.navigate", url=url)
        await asyncio.sleep(settle)
        for selector in clicks:
            count = await page.evaluate(
                f"(() => {{ const found = [...document.querySelectorAll({json.dumps(selector)})];"
                " found.forEach(e => e.click()); return found.length; })()")
            print(f"clicked {count} x {selector}")
            await asyncio.sleep(settle / 2)
        shot = await page.call("Page.captureScreenshot", format="png")
        with open(out, "wb") as f:
            f.write(base64.b64decode(shot["data"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("out")
    parser.add_argument("--click", action="append", default=[], help="CSS selector of elements to click, in turn")
    parser.add_argument("--width", type=int, default=1800)
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument("--settle", type=float, default=6.0, help="seconds to let the page load and render")
    args = parser.parse_args()

    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        raise SystemExit("screenshot_page.py: no chromium on PATH (apt-get install chromium)")
    port = _free_port()
    with tempfile.TemporaryDirectory() as profile:
        chrome = subprocess.Popen([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                                   f"--remote-debugging-port={port}", f"--user-data-dir={profile}",
                                   f"--window-size={args.width},{args.height}", "about:blank"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/json/version", timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise SystemExit("screenshot_page.py: chromium did not open its DevTools port")
                    time.sleep(0.3)
            asyncio.run(shoot(port, args.url, args.out, args.click, args.width, args.height, args.settle))
        finally:
            chrome.terminate()
            chrome.wait(timeout=30)


if __name__ == "__main__":
    main()
