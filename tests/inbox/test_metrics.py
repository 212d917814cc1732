"""The managers' numbers (bot/insights/metrics.py, bot/insights/churn.py, bot/insights/dashboard.py) on a seeded week, on SQLite
and PostgreSQL, through the real gateway's admin API. Every expected value is computed by hand in the
comments from the fixture below, not by the code under test."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone

import pytest

from bot.insights.dashboard import _safe_cell
from bot.keys import SESSIONMAKER
from bot.store.models import Contact, Conversation, ConversationEvent, Message, SurveyResponse

from ..editor.conftest import database_url  # noqa: F401  (fixture: sqlite and postgresql)
from .conftest import make_settings, start_gateway


def at(day: int, hh: int, mm: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hh, mm, tzinfo=timezone.utc)


async def seed(session) -> dict:
    """Seven conversations in the week 2026-11-01..07 (C1-C6) and around it (C0, C7, H1-H3).

    C1 A webchat en 11-01 10:00 answered, no hand-off        (A writes again on 11-05: not FCR)
    C2 B whatsapp de 11-02 09:00 unanswered -> hand-off customer_request 09:01, agent 09:03, resolved 09:11,
       CSAT 5, NPS 9
    C3 C webchat en 11-03 12:00 answered, "did not help", "I want to cancel my subscription",
       hand-off frustration 12:02, agent 12:12, resolved 13:02, CSAT 2, NPS 3; C renews on 11-20
    C4 D rest tr 11-04 08:00 unanswered -> hand-off not_helpful 08:01, still pending
    C5 A webchat en 11-05 15:00 clarify, no hand-off, nothing chosen (no answer: not contained)
    C6 E whatsapp ja 11-07 23:30 answered            (E writes again 11-08 00:30, C7: not FCR)
    C0 F webchat en 10-31 23:59 (before the period)
    H1-H3 H webchat en 10-20, 10-21, 10-22, each unanswered (before the period; churn risk only)
    """
    contacts = {}
    for key in "ABCDEFH":
        c = Contact(name=f"Customer {key}", attributes={"renewal_date": "2026-11-20"} if key == "C" else {})
        session.add(c)
        contacts[key] = c
    await session.flush()
    convs = {}

    def conv(key, who, channel, lang, created, last, status="bot"):
        c = Conversation(contact_id=contacts[who].id, channel=channel, language=lang, status=status,
                         created_at=created, last_message_at=last)
        session.add(c)
        convs[key] = c
        return c

    conv("C1", "A", "webchat", "en", at(1, 10), at(1, 10, 2))
    conv("C2", "B", "whatsapp", "de", at(2, 9), at(2, 9, 11), "resolved")
    conv("C3", "C", "webchat", "en", at(3, 12), at(3, 13, 2), "resolved")
    conv("C4", "D", "rest", "tr", at(4, 8), at(4, 8, 1), "pending")
    conv("C5", "A", "webchat", "en", at(5, 15), at(5, 15, 1))
    conv("C6", "E", "whatsapp", "ja", at(7, 23, 30), at(7, 23, 31))
    conv("C7", "E", "whatsapp", "ja", at(8, 0, 30), at(8, 0, 31))
    conv("C0", "F", "webchat", "en", at(31, 23, 59, month=10), at(31, 23, 59, month=10))
    for i, day in enumerate((20, 21, 22), 1):
        conv(f"H{i}", "H", "webchat", "en", at(day, 9, month=10), at(day, 9, 1, month=10))
    await session.flush()

    def ev(key, type_, when, **data):
        session.add(ConversationEvent(conversation_id=convs[key].id, type=type_, data=data, created_at=when))

    def msg(key, sender, when, text):
        session.add(Message(conversation_id=convs[key].id, direction="in" if sender == "customer" else "out",
                            sender_type=sender, channel=convs[key].channel, text=text, created_at=when))

    for key, decision, query, when in (("C1", "answer", "where is my parcel", at(1, 10, 1)),
                                       ("C2", "handoff", "Rechnung mit USt-IdNr", at(2, 9)),
                                       ("C3", "answer", "cancel my subscription", at(3, 12)),
                                       ("C4", "handoff", "fatura", at(4, 8)),
                                       ("C5", "clarify", "return label", at(5, 15)),
                                       ("C6", "answer", "送料", at(7, 23, 30)),
                                       ("C0", "answer", "old question", at(31, 23, 59, month=10)),
                                       ("H1", "handoff", "gift card", at(20, 9, month=10)),
                                       ("H2", "handoff", "gift voucher", at(21, 9, month=10)),
                                       ("H3", "handoff", "gift card please", at(22, 9, month=10))):
        ev(key, "kb_answer", when, decision=decision, query=query)
    msg("C3", "customer", at(3, 12), "I want to cancel my subscription")
    ev("C3", "kb_feedback", at(3, 12, 1), helpful=False)
    for key, reason, when in (("C2", "customer_request", at(2, 9, 1)), ("C3", "frustration", at(3, 12, 2)),
                              ("C4", "not_helpful", at(4, 8, 1))):
        ev(key, "handoff", when, reason=reason, sentiment="negative" if reason == "frustration" else "neutral")
        ev(key, "status", when, **{"from": "bot", "to": "pending"})
    msg("C2", "agent", at(2, 9, 3), "Hallo!")
    msg("C3", "agent", at(3, 12, 12), "Sorry about that")
    msg("C3", "agent", at(3, 12, 30), "Done")
    ev("C2", "status", at(2, 9, 11), **{"from": "open", "to": "resolved"})
    ev("C3", "status", at(3, 13, 2), **{"from": "open", "to": "resolved"})
    for key, who, csat, nps in (("C2", "B", 5, 9), ("C3", "C", 2, 3)):
        session.add(SurveyResponse(conversation_id=convs[key].id, contact_id=contacts[who].id,
                                   channel=convs[key].channel, stage="done", csat=csat, nps=nps))
    await session.commit()
    return {k: c.public_id for k, c in convs.items()} | {"contact_C": contacts["C"].public_id,
                                                          "contact_H": contacts["H"].public_id}


@pytest.fixture
async def seeded(tmp_path, assistant, database_url):  # noqa: F811
    gw = await start_gateway(make_settings(tmp_path, assistant, DATABASE_URL=database_url), tmp_path / "gw.db")
    async with gw.app[SESSIONMAKER]() as session:
        ids = await seed(session)
    await gw.add_agent("ada@example.com", "Ada", "admin")
    await gw.add_agent("ben@example.com", "Ben")
    ada, ben = gw.agent_client(), gw.agent_client()
    await ada.login("ada@example.com")
    await ben.login("ben@example.com")
    yield gw, ada, ben, ids
    await ada.close()
    await ben.close()
    await gw.close()


WEEK = "/api/admin/metrics?from=2026-11-01&to=2026-11-07"


async def test_every_metric_of_the_seeded_week(seeded):
    gw, ada, ben, ids = seeded
    assert (await ben.get(WEEK))[0] == 403
    status, m = await ada.get(WEEK)
    assert status == 200
    assert m["conversations"] == 6  # C1-C6 (C0 before, C7 after the week)
    assert (m["handed_off"], m["handoff_rate"]) == (3, 0.5)  # C2, C3, C4
    assert m["handoff_reasons"] == {"customer_request": 1, "frustration": 1, "not_helpful": 1}
    assert (m["contained"], m["containment_rate"]) == (2, 0.3333)  # C1, C6 (C5 was only asked to clarify)
    assert m["outcomes"] == {"contained": 2, "handed_off": 3, "handoff_abandoned": 0, "misfired": 0, "no_answer": 1}
    assert m["resolved_by_agent"] == 2  # C2, C3
    # FCR: C1 no (A again in C5), C2 yes, C3 yes, C4 no (pending), C5 no (not contained), C6 no (E again in C7)
    assert (m["first_contact_resolved"], m["fcr_rate"]) == (2, 0.3333)
    # first responses 120 s (C2) and 600 s (C3); resolutions 600 s and 3,600 s
    assert m["first_response_seconds"] == {"count": 2, "median": 360.0, "p90": 600.0, "mean": 360.0}
    assert m["resolution_seconds"] == {"count": 2, "median": 2100.0, "p90": 3600.0, "mean": 2100.0}
    assert m["csat"] == {"responses": 2, "score": 0.5, "average": 3.5,
                         "distribution": {"1": 0, "2": 1, "3": 0, "4": 0, "5": 1}}
    assert m["nps"] == {"responses": 2, "promoters": 1, "passives": 0, "detractors": 1, "nps": 0}
    assert (m["questions"], m["unanswered"], m["unanswered_rate"]) == (6, 2, 0.3333)
    assert {x["question"] for x in m["top_unanswered"]} == {"rechnung mit ust-idnr", "fatura"}
    assert m["unanswered_other"] == {"questions": 0, "count": 0}
    assert m["by_channel"] == {"webchat": 3, "whatsapp": 2, "rest": 1}
    assert m["by_language"] == {"en": 3, "de": 1, "tr": 1, "ja": 1}
    assert [(d["date"], d["conversations"], d["handed_off"], d["contained"], d["not_resolved"], d["csat_average"])
            for d in m["daily"]] == [
        ("2026-11-01", 1, 0, 1, 0, None), ("2026-11-02", 1, 1, 0, 0, 5.0), ("2026-11-03", 1, 1, 0, 0, 2.0),
        ("2026-11-04", 1, 1, 0, 0, None), ("2026-11-05", 1, 0, 0, 1, None), ("2026-11-06", 0, 0, 0, 0, None),
        ("2026-11-07", 1, 0, 1, 0, None)]
    # no action server here: the drivers say why they are missing instead of failing the page
    assert m["drivers"]["questions"] == 6 and m["drivers"]["topics"] == [] and "could not be grouped" in m["drivers"]["error"]


async def test_filters_by_channel_and_language(seeded):
    gw, ada, _, _ = seeded
    _, web = await ada.get(WEEK + "&channel=webchat")
    # C1 contained but A wrote again, C3 handed off and resolved, C5 not contained
    assert (web["conversations"], web["handed_off"], web["contained"], web["first_contact_resolved"]) == (3, 1, 1, 1)
    _, de = await ada.get(WEEK + "&language=de")
    assert (de["conversations"], de["csat"]["average"], de["nps"]["nps"]) == (1, 5.0, 100)
    for bad, message in (("from=2026-13-01", "dates"), ("from=2026-11-08&to=2026-11-01", "after"),
                         ("from=2024-01-01&to=2026-11-01", "at most"), ("channel=%3Cscript%3E", "channel")):
        status, body = await ada.get("/api/admin/metrics?" + bad)
        assert status == 400 and message in body["error"], (bad, body)


async def test_churn_risk_scores_with_their_reasons(seeded):
    gw, ada, _, ids = seeded
    _, m = await ada.get(WEEK)
    risk = {r["contact_id"]: r for r in m["at_risk"]}
    assert list(risk) == [ids["contact_C"], ids["contact_H"]]  # highest first; nobody else reaches 3
    c = risk[ids["contact_C"]]
    # anger 3 + cancel 3 + renewal within 30 days 2 + unhelpful answer 2 + CSAT 2 -> 2 + NPS 3 -> 1
    assert [s["signal"] for s in c["signals"]] == ["anger", "cancel_refund", "renewal_near", "negative_feedback",
                                                   "low_csat", "nps_detractor"]
    assert (c["score"], c["level"]) == (13, "high")
    assert "I want to cancel my subscription" in c["signals"][1]["reason"] and "2026-11-20" in c["signals"][2]["reason"]
    h = risk[ids["contact_H"]]  # three conversations in three days, each unanswered: 2 + 2
    assert ([s["signal"] for s in h["signals"]], h["score"], h["level"]) == (
        ["many_contacts", "repeated_unresolved"], 4, "medium")


async def test_customer_counts_give_both_churn_rates_and_bad_input_is_refused(seeded):
    gw, ada, _, _ = seeded
    ok = {"period_start": "2026-11-01", "period_end": "2026-11-30", "customers_start": 200, "customers_end": 190,
          "new_customers": 10}
    assert (await ada.post("/api/admin/customer-counts", ok))[0] == 200
    for change, message in (({"customers_end": 211}, "cannot exceed"), ({"customers_start": 0}, "more than 0"),
                            ({"period_end": "2026-10-01"}, "not be after"), ({"new_customers": -1}, "whole number"),
                            ({"customers_start": "many"}, "whole number"), ({"period_start": "soon"}, "date")):
        status, body = await ada.post("/api/admin/customer-counts", {**ok, **change})
        assert status == 400 and message in body["error"], (change, body)
    async with ada.http.post(gw.url + "/api/admin/customer-counts/import", headers={"X-CSRF-Token": ada.csrf},
                             data="period_start,period_end,customers_start,customers_end,new_customers\n"
                                  "2026-10-01,2026-10-31,180,200,30\n2026-09-01,2026-09-30,0,180,5\n".encode()) as r:
        assert r.status == 400 and "line 3" in (await r.json())["error"]
    assert len((await ada.get("/api/admin/customer-counts"))[1]["counts"]) == 1  # nothing of the bad file
    async with ada.http.post(gw.url + "/api/admin/customer-counts/import", headers={"X-CSRF-Token": ada.csrf},
                             data="\ufeffperiod_start,period_end,customers_start,customers_end,new_customers\n"
                                  "2026-10-01,2026-10-31,180,200,30\n".encode()) as r:
        assert r.status == 200 and (await r.json())["imported"] == 1
    _, m = await ada.get(WEEK)
    # only November overlaps the week: lost = 200 + 10 - 190 = 20; 20 / 200 = .1; 20 / 195 = .1026
    assert m["churn"] == [{"period_start": "2026-11-01", "period_end": "2026-11-30", "customers_start": 200,
                           "customers_end": 190, "new_customers": 10, "lost": 20, "simple_churn": 0.1,
                           "adjusted_churn": 0.1026}]
    _, october = await ada.get("/api/admin/metrics?from=2026-10-01&to=2026-10-31")
    # lost = 180 + 30 - 200 = 10; 10 / 180 = .0556; 10 / 190 = .0526
    assert [(c["lost"], c["simple_churn"], c["adjusted_churn"]) for c in october["churn"]] == [(10, 0.0556, 0.0526)]


async def test_csv_exports(seeded):
    gw, ada, _, ids = seeded
    async with ada.http.get(gw.url + "/api/admin/metrics.csv?from=2026-11-01&to=2026-11-07&table=summary") as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv")
        assert 'filename="summary-2026-11-01-2026-11-07.csv"' in r.headers["Content-Disposition"]
        summary = dict(csv.reader(io.StringIO(await r.text())))
    assert (summary["conversations"], summary["containment_rate"], summary["fcr_rate"], summary["nps"]) == (
        "6", "0.3333", "0.3333", "0")
    assert (summary["outcome_contained"], summary["outcome_no_answer"]) == ("2", "1")
    async with ada.http.get(gw.url + "/api/admin/metrics.csv?from=2026-11-01&to=2026-11-07&table=conversations") as r:
        rows = list(csv.DictReader(io.StringIO(await r.text())))
    assert [row["conversation"] for row in rows] == [ids[k] for k in ("C1", "C2", "C3", "C4", "C5", "C6")]
    assert [row["outcome"] for row in rows] == ["contained", "handed_off", "handed_off", "handed_off", "no_answer",
                                                "contained"]
    c3 = rows[2]
    assert (c3["reason"], c3["first_response_seconds"], c3["resolution_seconds"], c3["csat"]) == (
        "frustration", "600.0", "3600.0", "2")
    async with ada.http.get(gw.url + "/api/admin/metrics.csv?table=secrets") as r:
        assert r.status == 400
    assert [_safe_cell(v) for v in ("=HYPERLINK(1)", "+1+1", "-5", "@x", "ok", None)] == [
        "'=HYPERLINK(1)", "'+1+1", "-5", "'@x", "ok", ""]


async def test_the_agent_sees_the_churn_risk_of_the_customer_with_its_reasons(gateway, agents):
    ben = agents["ben"]
    await gateway.ask("cust-upset", "I am angry, I want a refund now")  # hands off for frustration
    conv = (await ben.get("/api/inbox/conversations?view=queue"))[1]["conversations"][0]["id"]
    status, detail = await ben.get(f"/api/inbox/conversations/{conv}")
    assert status == 200
    risk = detail["churn_risk"]
    # anger 3 + asking for a refund 3
    assert (risk["score"], risk["level"]) == (6, "high")
    assert [s["signal"] for s in risk["signals"]] == ["anger", "cancel_refund"]
    await gateway.ask("cust-calm", "I would like to speak to a human")
    calm = next(c for c in (await ben.get("/api/inbox/conversations?view=queue"))[1]["conversations"] if c["id"] != conv)
    assert (await ben.get(f"/api/inbox/conversations/{calm['id']}"))[1]["churn_risk"] == {
        "score": 0, "level": "none", "signals": []}


async def test_an_admin_sets_a_renewal_date_and_a_cancellation_near_it_weighs_more(gateway, agents):
    ada, ben = agents["ada"], agents["ben"]
    await gateway.ask("cust-renews", "I want to cancel, talk to a human")
    conv = (await ben.get("/api/inbox/conversations?view=queue"))[1]["conversations"][0]["id"]
    before = (await ben.get(f"/api/inbox/conversations/{conv}"))[1]["churn_risk"]
    assert [s["signal"] for s in before["signals"]] == ["cancel_refund"] and before["score"] == 3
    soon = (datetime.now(timezone.utc) + timedelta(days=10)).date().isoformat()
    headers = {"X-CSRF-Token": ada.csrf}
    async with ada.http.patch(gateway.url + "/api/admin/contacts/rest:cust-renews", json={"renewal_date": soon},
                              headers=headers) as r:
        assert r.status == 200 and (await r.json())["renewal_date"] == soon
    after = (await ben.get(f"/api/inbox/conversations/{conv}"))[1]["churn_risk"]
    assert [s["signal"] for s in after["signals"]] == ["cancel_refund", "renewal_near"] and after["score"] == 5
    for bad in ({"renewal_date": "soon"}, {"plan": "gold"}, {}, {"renewal_date": 5}):
        async with ada.http.patch(gateway.url + "/api/admin/contacts/rest:cust-renews", json=bad, headers=headers) as r:
            assert r.status == 400, bad
    async with ben.http.patch(gateway.url + "/api/admin/contacts/rest:cust-renews", json={"renewal_date": None},
                              headers={"X-CSRF-Token": ben.csrf}) as r:
        assert r.status == 403
