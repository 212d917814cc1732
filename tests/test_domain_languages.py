"""Every response the bot sends exists in en (the default variant), de, tr and ja."""
import yaml

from knowledge_base.config import PROJECT_ROOT


def test_every_response_has_all_four_languages_and_the_same_buttons():
    domain = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text(encoding="utf-8"))
    for name, variants in domain["responses"].items():
        langs = []
        payloads = set()
        for v in variants:
            conds = v.get("condition") or []
            lang = next((c["value"] for c in conds if c.get("name") == "language"), "en")
            langs.append(lang)
            assert v.get("text", "").strip(), f"{name}/{lang} has no text"
            payloads.add(tuple(b["payload"] for b in v.get("buttons") or []))
        assert sorted(langs) == ["de", "en", "ja", "tr"], f"{name}: {langs}"
        assert len(payloads) == 1, f"{name}: buttons differ between languages: {payloads}"
        placeholders = {frozenset(__import__("re").findall(r"{(\w+)}", v["text"])) for v in variants}
        assert len(placeholders) == 1, f"{name}: placeholders differ between languages"
