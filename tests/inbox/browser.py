"""A staff page in Chromium (Playwright, Debian's Chromium), signed in: for the async tests of the
inbox, the dashboard and the like on the in-process gateway."""
from __future__ import annotations

import contextlib

from ..conftest import CHROMIUM_ARGS, chromium_executable, playwright_api
from .conftest import PASSWORD


@contextlib.asynccontextmanager
async def signed_in_page(base_url: str, path: str, email: str, viewport: dict):
    """The page at ``path`` (/inbox, /dashboard, /editor) after signing in as ``email`` (without Chromium:
    fails under CI=true, else skips; tests/conftest.py's missing_service)."""
    async_api = playwright_api("async")
    async with async_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium_executable(), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport=viewport)
            await page.goto(base_url + path)
            await page.fill("#login-email", email)
            await page.fill("#login-password", PASSWORD)
            await page.click("#login-form button[type=submit]")
            yield page
        finally:
            await browser.close()
