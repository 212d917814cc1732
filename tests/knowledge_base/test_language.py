import pytest

from knowledge_base.language import detect, normalise_hint


@pytest.mark.parametrize("text,lang", [
    ("How do I reset my password?", "en"), ("Wie kann ich mein Abo kündigen?", "de"),
    ("Siparişimi nasıl iade ederim?", "tr"), ("siparisimi nasil iade ederim", "tr"),
    ("請求書はどこでダウンロードできますか", "ja"), ("解約したい", "ja"),
])
def test_clear_messages_are_detected(text, lang):
    assert detect(text).lang == lang


@pytest.mark.parametrize("text", ["ok", "hanako@example.jp", "BB-123456", "12345", "https://example.com/x", "/affirm"])
def test_short_or_language_neutral_messages_keep_the_conversations_language(text):
    for prev in ("de", "tr", "ja"):
        assert detect(text, previous=prev).lang == prev


def test_the_hint_is_a_prior_when_there_is_no_conversation_language():
    assert detect("hallo", hint="de-DE").lang == "de"
    assert detect("ok", hint="ja").lang == "ja"
    assert detect("How do I cancel my subscription?", previous="de").lang == "en"  # a real switch


@pytest.mark.parametrize("text,lang", [("ok", "en"), ("Okay!", "en"), ("OK.", "en"), ("Hallo", "de"), ("hallo!", "de"),
                                       ("Merhaba", "tr"), ("tamam", "tr"), ("hi", "en")])
def test_a_first_message_of_one_common_word_gets_its_language_or_the_default(text, lang):
    """"ok" was taken for Turkish and "Hallo" for English when nothing else was known, so a new
    customer's "ok" was answered in Turkish."""
    assert detect(text).lang == lang
    assert detect(text, previous="ja").lang == "ja"  # the conversation's language still wins


def test_hint_normalisation():
    assert normalise_hint("de-AT") == "de" and normalise_hint("JA_jp") == "ja"
    assert normalise_hint("fr") is None and normalise_hint(None) is None and normalise_hint(5) is None
