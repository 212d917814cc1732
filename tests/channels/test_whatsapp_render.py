"""The WhatsApp channel's pure parts: rendering the bot's replies within Meta's limits (checked by
the simulator's validator, which mirrors Meta's), mapping replies back to payloads, signatures and
parsing Meta's notifications."""
import hashlib
import hmac
import json

import pytest

from bot.channels.whatsapp_api import classify, country_language, parse_notification, verify_signature
from bot.channels.whatsapp_render import button_id, payload_for_reply, render, reply_ids, split_text
from bot.messages import Reply
from tests.whatsapp_sim import GraphError, validate_content


def valid(parts: list[dict]) -> list[dict]:
    for p in parts:
        validate_content(p["type"], {"messaging_product": "whatsapp", "to": "1", **p})
    return parts


def test_short_text_is_one_text_message():
    assert render(Reply("Hello there"), "en") == [{"type": "text", "text": {"body": "Hello there", "preview_url": False}}]


def test_text_with_a_link_asks_for_a_preview():
    [part] = render(Reply("See https://example.com/help"), "en")
    assert part["text"]["preview_url"] is True


def test_long_text_is_split_at_paragraphs_then_sentences_and_each_part_fits():
    para = "This is a sentence about coffee. " * 60  # ~2000 chars
    text = "\n\n".join([para.strip()] * 4)  # ~8000 chars, 4 paragraphs
    parts = valid(render(Reply(text), "en"))
    bodies = [p["text"]["body"] for p in parts]
    assert len(bodies) >= 2 and all(len(b) <= 4096 for b in bodies)
    assert all(b.endswith(".") for b in bodies), "cut inside a sentence"
    assert "".join(b.replace(" ", "").replace("\n", "") for b in bodies) == text.replace(" ", "").replace("\n", "")


def test_one_huge_word_is_cut_hard():
    parts = split_text("x" * 10000)
    assert [len(p) for p in parts] == [4096, 4096, 1808]


def test_japanese_text_is_split_at_sentence_ends():
    text = "これはテストの文です。" * 500  # 5500 chars, no spaces
    parts = split_text(text)
    assert all(len(p) <= 4096 for p in parts) and all(p.endswith("。") for p in parts)
    assert "".join(parts) == text


def test_two_or_three_buttons_become_reply_buttons_with_short_titles():
    reply = Reply("Did that help?", [{"title": "Yes", "payload": "/affirm"}, {"title": "No", "payload": "/deny"}])
    [part] = valid(render(reply, "en"))
    inter = part["interactive"]
    assert inter["type"] == "button" and inter["body"]["text"] == "Did that help?"
    assert [b["reply"] for b in inter["action"]["buttons"]] == [{"id": "/affirm", "title": "Yes"},
                                                                {"id": "/deny", "title": "No"}]
    long = Reply("Kann ich noch helfen?", [{"title": "Bir temsilciyle görüşmek istiyorum", "payload": "/request_human"},
                                          {"title": "Başka bir şey sormak istiyorum", "payload": "/ask_something_else"}])
    [part] = valid(render(long, "tr"))
    titles = [b["reply"]["title"] for b in part["interactive"]["action"]["buttons"]]
    assert all(len(t) <= 20 for t in titles) and titles[0].startswith("Bir temsilciyle") and titles[0].endswith("…")


def test_titles_that_collide_after_shortening_stay_unique():
    reply = Reply("Which?", [{"title": "Subscription cancellation policy", "payload": "/a"},
                             {"title": "Subscription cancellation fees", "payload": "/b"}])
    [part] = valid(render(reply, "en"))
    titles = [b["reply"]["title"] for b in part["interactive"]["action"]["buttons"]]
    assert len(set(titles)) == 2 and all(len(t) <= 20 for t in titles)


def test_more_than_three_buttons_become_a_list_with_the_full_title_as_description():
    buttons = [{"title": f"How do I change my delivery address number {i}?",
                "payload": '/choose_article{"article_group":"change-address-%d"}' % i} for i in range(4)]
    buttons.append({"title": "None of these", "payload": "/deny"})
    [part] = valid(render(Reply("Which one do you mean?", buttons), "de"))
    inter = part["interactive"]
    assert inter["type"] == "list" and inter["action"]["button"] == "Auswählen"
    rows = inter["action"]["sections"][0]["rows"]
    assert len(rows) == 5
    assert rows[0]["id"] == '/choose_article{"article_group":"change-address-0"}'
    assert len(rows[0]["title"]) <= 24 and rows[0]["description"].startswith("How do I change")
    assert rows[-1] == {"id": "/deny", "title": "None of these"}


def test_more_than_ten_buttons_keep_the_first_ten():
    buttons = [{"title": f"Option {i}", "payload": f"/o{i}"} for i in range(14)]
    [part] = valid(render(Reply("Pick", buttons), "en"))
    assert len(part["interactive"]["action"]["sections"][0]["rows"]) == 10


def test_buttons_without_text_get_a_body_and_long_text_goes_before_the_buttons():
    [part] = valid(render(Reply(None, [{"title": "Skip", "payload": "/skip"}]), "ja"))
    assert part["interactive"]["body"]["text"] == "お選びください："
    text = "A sentence that is quite long. " * 60  # ~1900 chars > 1024
    parts = valid(render(Reply(text, [{"title": "Yes", "payload": "/affirm"}]), "en"))
    assert [p["type"] for p in parts] == ["text", "interactive"]
    assert len(parts[1]["interactive"]["body"]["text"]) <= 1024


def test_long_payloads_get_a_hashed_id_that_maps_back_through_the_message():
    payload = '/choose_article{"article_group":"%s"}' % ("x" * 300)
    buttons = [{"title": "Long one", "payload": payload}, {"title": "No", "payload": "/deny"}]
    [part] = valid(render(Reply("?", buttons), "en"))
    rid = part["interactive"]["action"]["buttons"][0]["reply"]["id"]
    assert rid.startswith("h:") and len(rid) <= 256
    assert payload_for_reply(rid, "Long one", buttons) == payload


def test_reply_ids_map_back_to_payloads():
    buttons = [{"title": "Yes", "payload": "/affirm"}]
    assert payload_for_reply("/affirm", "Yes", buttons) == "/affirm"
    assert payload_for_reply("/deny", "No", None) == "/deny"  # the id is the payload
    assert payload_for_reply("h:unknown", "Some title", None) == "Some title"  # unknown: what the customer saw
    assert button_id("/affirm", 256) == "/affirm"


def test_buttons_with_the_same_payload_get_ids_unique_in_the_message_that_map_back_to_it():
    # Meta refuses (400) a message whose reply ids repeat; the simulator's validator does the same.
    buttons = [{"title": "Yes", "payload": "/affirm"}, {"title": "Sure", "payload": "/affirm"},
               {"title": "No", "payload": "/deny"}]
    [part] = valid(render(Reply("Did that help?", buttons), "en"))
    ids = [b["reply"]["id"] for b in part["interactive"]["action"]["buttons"]]
    assert ids[0] == "/affirm" and ids[2] == "/deny" and len(set(ids)) == 3
    assert payload_for_reply(ids[1], "Sure", buttons) == "/affirm"  # through the message replied to
    assert payload_for_reply(ids[1], "Sure", None) == "/affirm"  # and from the id alone
    assert payload_for_reply(ids[0], "Yes", buttons) == "/affirm"
    # list rows, long (hashed) payloads included
    long = '/choose_article{"article_group":"%s"}' % ("x" * 300)
    rows = [{"title": f"Option {i}", "payload": p} for i, p in enumerate(["/a", "/a", long, long, "/a", "/b"])]
    [part] = valid(render(Reply("Which one?", rows), "en"))
    row_ids = [r["id"] for r in part["interactive"]["action"]["sections"][0]["rows"]]
    assert len(set(row_ids)) == 6 and all(len(r) <= 200 for r in row_ids)
    assert [payload_for_reply(r, None, rows) for r in row_ids] == ["/a", "/a", long, long, "/a", "/b"]
    assert reply_ids(["/a", "/a", "/a"], 256) == ["/a", "#1:/a", "#2:/a"]


def test_a_list_has_a_titled_section_and_a_body_of_up_to_4096_characters():
    buttons = [{"title": f"Artikel {i}", "payload": f"/choose_article{{\"article_group\":\"a{i}\"}}"} for i in range(5)]
    text = "Meinten Sie einen dieser Artikel? " * 60  # ~2000 characters: too long for buttons, not for a list
    [part] = valid(render(Reply(text, buttons), "de"))  # one message, not text + list
    inter = part["interactive"]
    assert inter["type"] == "list" and inter["body"]["text"] == text.strip()
    assert inter["action"]["sections"][0]["title"] == "Optionen"
    parts = valid(render(Reply("x " * 2500, buttons), "ja"))  # 5000 characters: text, then a list
    assert [p["type"] for p in parts] == ["text", "interactive"]
    assert parts[1]["interactive"]["action"]["sections"][0]["title"] == "選択肢"
    parts = valid(render(Reply(text, buttons[:2]), "en"))  # reply buttons still take 1024 at most
    assert [p["type"] for p in parts] == ["text", "interactive"]


def test_render_output_always_passes_metas_validation():
    for n in range(0, 13):
        buttons = [{"title": "T" * (5 + 3 * i), "payload": f"/p{i}"} for i in range(n)]
        for text in (None, "", "short", "y" * 5000):
            valid(render(Reply(text, buttons or None), "en"))


def test_a_reply_with_nothing_to_show_renders_nothing():
    assert render(Reply(None, None, {"kind": "widget"}), "en") == []


def test_signature_is_hmac_sha256_of_the_raw_body():
    body = b'{"a": 1}'
    good = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert verify_signature("s3cret", body, good)
    assert not verify_signature("s3cret", body + b" ", good)
    assert not verify_signature("other", body, good)
    assert not verify_signature("s3cret", body, good.replace("sha256=", "sha1="))
    assert not verify_signature("s3cret", body, "sha256=ü")


def _notification(messages=None, statuses=None, contacts=None, phone_number_id="100"):
    value = {"messaging_product": "whatsapp", "metadata": {"display_phone_number": "1555", "phone_number_id": phone_number_id}}
    if contacts is not None:
        value["contacts"] = contacts
    if messages is not None:
        value["messages"] = messages
    if statuses is not None:
        value["statuses"] = statuses
    return {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"value": value, "field": "messages"}]}]}


def test_parse_keys_contacts_on_the_business_scoped_user_id_when_present():
    body = _notification(contacts=[{"profile": {"name": "Ada", "username": "@ada"}, "wa_id": "4915112345678",
                                    "user_id": "DE.1234567890"}],
                         messages=[{"from": "4915112345678", "from_user_id": "DE.1234567890", "id": "wamid.1",
                                    "timestamp": "1700000000", "type": "text", "text": {"body": "Hallo"}}])
    [m], statuses = parse_notification(body, "100")
    assert statuses == []
    assert (m.source_id, m.wa_id, m.user_id, m.name, m.username, m.text, m.timestamp) == (
        "DE.1234567890", "4915112345678", "DE.1234567890", "Ada", "@ada", "Hallo", 1700000000)
    # username-only customers: no phone number at all
    body = _notification(contacts=[{"profile": {"name": "Bo"}, "user_id": "US.99"}],
                         messages=[{"from_user_id": "US.99", "id": "wamid.2", "timestamp": "1", "type": "text",
                                    "text": {"body": "hi"}}])
    [m], _ = parse_notification(body, "100")
    assert m.source_id == "US.99" and m.wa_id is None
    # older payloads: wa_id only
    body = _notification(contacts=[{"profile": {"name": "Cy"}, "wa_id": "905321234567"}],
                         messages=[{"from": "905321234567", "id": "wamid.3", "timestamp": "1", "type": "text",
                                    "text": {"body": "merhaba"}}])
    [m], _ = parse_notification(body, "100")
    assert m.source_id == "905321234567"


def test_business_scoped_user_ids_of_131_characters_and_parent_ids_are_kept():
    bsuid = "US." + "7" * 128  # a country code, a dot and up to 128 letters and digits
    parent = "US.ENT." + "A1" * 64
    for user_id in (bsuid, parent):
        body = _notification(contacts=[{"profile": {"name": "Dee"}, "user_id": user_id}],
                             messages=[{"from_user_id": user_id, "id": "wamid.b" + str(len(user_id)), "timestamp": "1",
                                        "type": "text", "text": {"body": "hello"}}])
        [m], _ = parse_notification(body, "100")
        assert m.source_id == user_id and m.wa_id is None
    body = _notification(contacts=[{"user_id": "US.\x00bad"}], messages=[{"from_user_id": "US.\x00bad", "id": "w",
                                                                          "type": "text", "text": {"body": "x"}}])
    assert parse_notification(body, "100") == ([], [])  # not an id at all


def test_parse_replies_media_and_things_to_ignore():
    msgs = [
        {"from": "1", "id": "w1", "timestamp": "1", "type": "interactive", "context": {"from": "1555", "id": "wamid.ctx"},
         "interactive": {"type": "button_reply", "button_reply": {"id": "/affirm", "title": "Yes"}}},
        {"from": "1", "id": "w2", "timestamp": "1", "type": "interactive",
         "interactive": {"type": "list_reply", "list_reply": {"id": "/deny", "title": "No", "description": "d"}}},
        {"from": "1", "id": "w3", "timestamp": "1", "type": "button", "button": {"payload": "/request_human", "text": "Talk"}},
        {"from": "1", "id": "w4", "timestamp": "1", "type": "image", "image": {"id": "55", "caption": "my parcel"}},
        {"from": "1", "id": "w5", "timestamp": "1", "type": "reaction", "reaction": {"message_id": "x", "emoji": "👍"}},
        {"from": "1", "id": "w6", "timestamp": "1", "type": "unsupported", "errors": [{"code": 131051}]},
        {"from": "1", "id": "w7", "timestamp": "1", "type": "text", "text": {"body": "a\x00b"}},
    ]
    parsed, _ = parse_notification(_notification(contacts=[{"profile": {"name": "X"}, "wa_id": "1"}], messages=msgs), "100")
    by_id = {m.wamid: m for m in parsed}
    assert by_id["w5"].window_only and by_id["w5"].meta["emoji"] == "👍"  # not answered: it opens the window
    assert (by_id["w1"].reply_id, by_id["w1"].context_id, by_id["w1"].meta["wa_reply_type"]) == ("/affirm", "wamid.ctx",
                                                                                               "button_reply")
    assert by_id["w2"].reply_id == "/deny" and by_id["w2"].meta["wa_reply_type"] == "list_reply"
    assert by_id["w3"].text == "/request_human" and not by_id["w3"].unsupported
    assert by_id["w4"].unsupported and by_id["w4"].meta["caption"] == "my parcel"
    assert by_id["w6"].unsupported
    assert by_id["w7"].text == "ab"


def test_parse_ignores_other_phone_numbers_and_other_objects():
    body = _notification(contacts=[{"wa_id": "1"}], messages=[{"from": "1", "id": "w", "type": "text",
                                                               "text": {"body": "x"}}], phone_number_id="999")
    assert parse_notification(body, "100") == ([], [])
    assert parse_notification({"object": "page", "entry": []}, "100") == ([], [])
    assert parse_notification({"object": "whatsapp_business_account", "entry": "nonsense"}, "100") == ([], [])


@pytest.mark.parametrize("http,code,kind,retry", [
    (400, 131047, "outside_24h_window", False),
    (429, 130429, "rate_limited", True),
    (400, 131057, "rate_limited", True),  # throughput being upgraded (up to a minute)
    (400, 80007, "rate_limited", True),
    (400, 131056, "pair_rate_limited", True),
    (500, 131000, "server_error", True),
    (503, None, "server_error", True),
    (400, 100, "invalid_request", False),
    (401, 190, "auth_failed", False),
    (400, 131026, "undeliverable", False),
    (400, 132000, "graph_error_132000", False),
    (None, None, "timeout", True),
])
def test_graph_errors_are_classified_by_kind(http, code, kind, retry):
    k, retryable, _ = classify(http, {"code": code} if code else {})
    assert (k, retryable) == (kind, retry)


def test_country_codes_give_a_language_hint_for_messages_without_text():
    assert country_language("4915112345678") == "de"
    assert country_language("905321234567") == "tr"
    assert country_language("819012345678") == "ja"
    assert country_language("14155550100") is None


def test_the_simulator_validator_rejects_what_meta_rejects():
    with pytest.raises(GraphError) as e:
        validate_content("text", {"text": {"body": "x" * 4097}})
    assert e.value.code == 100 and "4096" in e.value.details
    four = [{"type": "reply", "reply": {"id": f"/b{i}", "title": f"B{i}"}} for i in range(4)]
    with pytest.raises(GraphError, match="Invalid parameter"):
        validate_content("interactive", {"interactive": {"type": "button", "body": {"text": "x"},
                                                         "action": {"buttons": four}}})
    long = [{"type": "reply", "reply": {"id": "/b", "title": "x" * 21}}]
    with pytest.raises(GraphError) as e:
        validate_content("interactive", {"interactive": {"type": "button", "body": {"text": "x"},
                                                         "action": {"buttons": long}}})
    assert "Max length: 20" in e.value.details
    json.dumps(e.value.body())  # serialisable, Meta's shape
    assert set(e.value.body()["error"]) >= {"message", "type", "code", "fbtrace_id"}


def _list(body: str, section: dict) -> dict:
    return {"interactive": {"type": "list", "body": {"text": body},
                            "action": {"button": "Go", "sections": [{"rows": [{"id": "r", "title": "t"}], **section}]}}}


def test_the_simulator_validator_takes_list_bodies_up_to_4096_and_wants_a_section_title():
    validate_content("interactive", _list("y" * 4096, {"title": "Options"}))
    for body, section, limit in (("y" * 4097, {"title": "Options"}, "4096"), ("y", {}, "Section title"),
                                 ("y", {"title": "z" * 25}, "Max length: 24")):
        with pytest.raises(GraphError) as e:
            validate_content("interactive", _list(body, section))
        assert limit in e.value.details
    with pytest.raises(GraphError):  # reply buttons keep their 1024
        validate_content("interactive", {"interactive": {"type": "button", "body": {"text": "z" * 1025}, "action": {
            "buttons": [{"type": "reply", "reply": {"id": "b", "title": "ok"}}]}}})
