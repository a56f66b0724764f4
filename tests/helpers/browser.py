"""Headless Chromium (Debian's ``chromium`` package) driven by Playwright, for the web UI tests.

Playwright's own browser downloads are not reachable here, so it launches the system binary.
Flags: no sandbox (tests run as root), and no background networking (the closed network
otherwise refuses Chromium's own connections, many at a time, and they end up in the logs).
"""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.helpers.paths import REPO

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = REPO / "test-output" / "screenshots"


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium browser (Playwright ``Browser``), closed on exit."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Console:
    """Console errors and failed requests of one page, to assert a view loads cleanly."""
    errors: list[str] = field(default_factory=list)

    @classmethod
    def watch(cls, page: Any) -> "Console":
        console = cls()
        page.on("console", lambda msg: msg.type == "error" and console.errors.append(msg.text))
        page.on("pageerror", lambda exc: console.errors.append(f"page error: {exc}"))
        return console

    def unexpected(self, allowed: tuple[str, ...] = ()) -> list[str]:
        """Errors not matching any of ``allowed`` (substrings; each needs a reason at its call site)."""
        return [e for e in self.errors if not any(a in e for a in allowed)]


def screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
