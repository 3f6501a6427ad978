"""A screenshot of a web page after it has settled, optionally after clicking on it, through headless
Chromium (docs/headless_chromium.py). docs/screenshots.sh uses it for the MLflow UI, whose trial runs sit
folded under their parent run until a click unfolds them, and for the report.

    python docs/screenshot_page.py URL OUT.png [--click CSS_SELECTOR]... [--width 1800 --height 1000]
"""

from __future__ import annotations

import argparse

from headless_chromium import find_browser, screenshot  # run as a script: docs/ is on the path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("out")
    parser.add_argument("--click", action="append", default=[], help="CSS selector of elements to click, in turn")
    parser.add_argument("--width", type=int, default=1800)
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument("--settle", type=float, default=6.0, help="seconds to let the page load and render")
    args = parser.parse_args()
    if find_browser() is None:
        raise SystemExit("screenshot_page.py: no chromium on PATH (apt-get install chromium)")
    try:
        screenshot(args.url, args.out, args.click, args.width, args.height, args.settle)
    except RuntimeError as exc:
        raise SystemExit(f"screenshot_page.py: {exc}") from None


if __name__ == "__main__":
    main()
