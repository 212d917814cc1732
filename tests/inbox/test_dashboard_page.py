"""The dashboard at /dashboard in a real browser (Debian's Chromium driven by Playwright) on the real
gateway with the seeded week of tests/inbox/test_metrics.py: an admin signs in and sees the hand-computed
figures, the charts and the customers at risk with their reasons; filters change the figures; a
customer count entered on the page gives its churn rates; the CSV link downloads; an agent gets no
dashboard; HTML in a customer's name is shown as text. Screenshot: tests/artifacts/dashboard.png."""
from __future__ import annotations

from pathlib import Path

from bot.keys import SESSIONMAKER
from bot.store.models import Contact

from ..conftest import ARTIFACTS, CHROMIUM_ARGS, chromium_executable, playwright_api
from .conftest import PASSWORD, make_settings, start_gateway
from .test_metrics import seed


async def test_the_page_and_its_files_are_served_with_security_headers(gateway):
    for path, ctype in (("/dashboard", "text/html"), ("/dashboard/static/dashboard.js", "application/javascript"),
                        ("/dashboard/static/dashboard.css", "text/css"),
                        ("/dashboard/static/texts.json", "application/json")):
        async with gateway.http.get(gateway.url + path) as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith(ctype), path
            if path == "/dashboard":
                assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    async with gateway.http.get(gateway.url + "/dashboard/static/..%2F..%2Fsettings.py") as r:
        assert r.status == 404


async def test_an_admin_reads_the_week_in_the_browser(tmp_path, assistant):
    async_api = playwright_api("async")
    gw = await start_gateway(make_settings(tmp_path, assistant), tmp_path / "gw.db")
    async with gw.app[SESSIONMAKER]() as session:
        await seed(session)
        c = (await session.execute(Contact.__table__.select().where(Contact.name == "Customer C"))).first()
        await session.execute(Contact.__table__.update().where(Contact.id == c.id)
                              .values(name="<b>Cara</b><script>window.pwned=1</script>"))
        await session.commit()
    await gw.add_agent("ada@example.com", "Ada Admin", "admin")
    await gw.add_agent("ben@example.com", "Ben Agent")
    # two customers an agent finds to be one (the same confirmed address): a merge to undo on the page
    ben_api = gw.agent_client()
    await ben_api.login("ben@example.com")
    for sender in ("merge-a", "merge-b"):
        await gw.ask(sender, "human please " + sender)
        conv = next(c for c in (await ben_api.get("/api/inbox/conversations?view=queue"))[1]["conversations"]
                    if sender in ((c.get("handoff") or {}).get("summary") or ""))
        assert (await ben_api.post(f"/api/inbox/conversations/{conv['id']}/confirm-email",
                                   {"email": "kim@example.com"}))[0] == 200
    await ben_api.close()
    executable = chromium_executable()
    try:
        async with async_api.async_playwright() as p:
            browser = await p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            expect = async_api.expect
            page = await browser.new_page(viewport={"width": 1280, "height": 1600}, accept_downloads=True)

            async def sign_in(email):
                await page.goto(gw.url + "/dashboard")
                await page.fill("#login-email", email)
                await page.fill("#login-password", PASSWORD)
                await page.click("#login-form button[type=submit]")

            await sign_in("ben@example.com")  # an agent: no dashboard
            await expect(page.locator("#denied-view")).to_be_visible()
            await expect(page.locator("#app-view")).to_be_hidden()
            await page.click("#logout-button")
            await expect(page.locator("#login-view")).to_be_visible()

            await sign_in("ada@example.com")
            await expect(page.locator("#app-view")).to_be_visible()
            await page.fill("#f-from", "2026-11-01")
            await page.fill("#f-to", "2026-11-07")
            await page.click("#filter-form button[type=submit]")
            kpi = lambda key: page.locator(f'[data-kpi="{key}"] .value')  # noqa: E731
            await expect(kpi("conversations")).to_have_text("6")
            await expect(kpi("containment")).to_have_text("33.3 %")
            await expect(kpi("handoff")).to_have_text("50 %")
            await expect(kpi("fcr")).to_have_text("33.3 %")
            await expect(kpi("first_response")).to_have_text("6 min")  # median 360 s
            await expect(kpi("resolution")).to_have_text("35 min")  # median 2,100 s
            await expect(kpi("csat")).to_have_text("50 %")
            await expect(kpi("nps")).to_have_text("0")
            await expect(kpi("unanswered")).to_have_text("33.3 %")
            # one bar pair per day, with the day's numbers in its tooltip
            await expect(page.locator("#daily-chart g[data-date]")).to_have_count(7)
            await expect(page.locator('#daily-chart g[data-date="2026-11-03"] title')).to_contain_text("1")
            assert float(await page.locator('#daily-chart g[data-date="2026-11-06"] rect').first.get_attribute("height")) == 0
            await expect(page.locator("#csat-chart rect[data-score]")).to_have_count(5)
            await expect(page.locator("#reasons")).to_contain_text("Upset")
            # the customer at risk, named as text (the HTML in the name is not run), with the reasons
            risk = page.locator("#risk tr").nth(1)
            await expect(risk).to_contain_text("<b>Cara</b><script>window.pwned=1</script>")
            await expect(risk).to_contain_text("13")
            await expect(risk).to_contain_text("I want to cancel my subscription")
            assert await page.evaluate("window.pwned === undefined")
            await expect(page.locator("#drivers").locator("xpath=preceding-sibling::p[1]")).to_contain_text("could not be grouped")

            # filters: only WhatsApp
            await page.select_option("#f-channel", "whatsapp")
            await page.click("#filter-form button[type=submit]")
            await expect(kpi("conversations")).to_have_text("2")
            await expect(kpi("handoff")).to_have_text("50 %")
            await page.select_option("#f-channel", "")
            await page.click("#filter-form button[type=submit]")

            # a customer count entered on the page: lost 20, 20 / 200 and 20 / 195
            await page.fill("#c-start", "2026-11-01")
            await page.fill("#c-end", "2026-11-30")
            await page.fill("#c-cstart", "200")
            await page.fill("#c-cend", "190")
            await page.fill("#c-new", "10")
            await page.click("#count-form button[type=submit]")
            await expect(page.locator("#churn tr").nth(1)).to_contain_text("10 %")
            await expect(page.locator("#churn tr").nth(1)).to_contain_text("10.3 %")
            await page.fill("#c-cend", "500")  # more than the start plus the new ones: refused, said so
            await page.click("#count-form button[type=submit]")
            await expect(page.locator("#count-error")).to_contain_text("cannot exceed")

            # the merge: listed with who confirmed it, undone with one click
            merge_row = page.locator("#merges tr[data-merge]")
            await expect(merge_row).to_have_count(1)
            await expect(merge_row).to_contain_text("Ben Agent")
            await merge_row.locator("button").click()
            await expect(merge_row).to_contain_text("undone by Ada Admin")
            await expect(merge_row.locator("button")).to_have_count(0)

            async with page.expect_download() as info:
                await page.click("#csv-daily")
            download = await info.value
            text = Path(await download.path()).read_text(encoding="utf-8")
            assert text.splitlines()[0] == "date,conversations,handed_off,contained,not_resolved,csat_responses,csat_average"
            assert text.splitlines()[3] == "2026-11-03,1,1,0,0,1,2.0"

            await page.select_option("#lang-select", "de")
            await expect(page.locator('[data-kpi="containment"] .label')).to_have_text("Self-Service-Quote")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
            await browser.close()
    finally:
        await gw.close()
