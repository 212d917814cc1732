from bot.i18n import LANGUAGES, TEXTS, t


def test_every_gateway_text_exists_in_every_language():
    for key, variants in TEXTS.items():
        missing = [lang for lang in LANGUAGES if not variants.get(lang, "").strip()]
        assert not missing, f"{key} is missing {missing}"


def test_unknown_language_falls_back_to_english():
    assert t("assistant_unavailable", "xx") == TEXTS["assistant_unavailable"]["en"]
    assert t("assistant_unavailable", "ja") == TEXTS["assistant_unavailable"]["ja"]
