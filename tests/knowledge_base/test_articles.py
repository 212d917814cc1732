import json

import pytest

from knowledge_base.articles import ArticleError, load_jsonl, load_markdown_folder, load_source, parse_markdown

GOOD_MD = """---
id: reset-password-en
title: How do I reset my password?
locale: en
group: reset-password
tags: [account]
questions:
  - I forgot my password
---
Use "Forgot password?" on the sign-in page.

## Steps
1. Open the sign-in page.
"""


def test_markdown_folder_loads_good_files_and_reports_bad_ones_with_their_file(tmp_path):
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "good.md").write_text(GOOD_MD, encoding="utf-8")
    (tmp_path / "en" / "nofront.md").write_text("just text", encoding="utf-8")
    (tmp_path / "en" / "badyaml.md").write_text("---\ntitle: [unclosed\n---\nbody", encoding="utf-8")
    (tmp_path / "en" / "missing.md").write_text("---\nid: x\nlocale: en\n---\nbody", encoding="utf-8")
    res = load_markdown_folder(tmp_path)
    assert [a.id for a in res.articles] == ["reset-password-en"]
    art = res.articles[0]
    assert art.group == "reset-password" and art.questions == ("I forgot my password",)
    assert art.short_answer == 'Use "Forgot password?" on the sign-in page.'
    assert art.link == "/help/en/reset-password"
    problems = {p.source.split("/")[-1]: p.message for p in res.problems}
    assert set(problems) == {"nofront.md", "badyaml.md", "missing.md"}
    assert "title" in problems["missing.md"] and "body" not in problems["missing.md"]


def test_jsonl_reports_bad_lines_with_line_numbers_and_loads_the_rest(tmp_path):
    p = tmp_path / "kb.jsonl"
    lines = [
        json.dumps({"id": "a", "title": "A", "body": "Alpha.", "locale": "en", "questions": ["what is a"]}),
        "{not json",
        json.dumps({"id": "b", "title": "B", "body": "Beta.", "locale": "english"}),
        json.dumps({"id": "c", "title": "C", "body": "Gamma.", "locale": "de", "group": "a"}),
        json.dumps(["not", "an", "object"]),
        json.dumps({"id": "a", "title": "dup", "body": "x", "locale": "en"}),
    ]
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    res = load_jsonl(p)
    assert [a.id for a in res.articles] == ["a", "c"]
    assert res.articles[1].group == "a"
    by_line = {pr.line: pr.message for pr in res.problems}
    assert set(by_line) == {2, 3, 5, 6}
    assert "JSON" in by_line[2] and "locale" in by_line[3] and "duplicate" in by_line[6]


def test_parse_markdown_rejects_unclosed_front_matter():
    with pytest.raises(ArticleError, match="not closed"):
        parse_markdown("---\nid: x\n")


def test_load_source_rejects_unknown_kinds(tmp_path):
    (tmp_path / "kb.csv").write_text("id,title\n", encoding="utf-8")
    with pytest.raises(ArticleError, match="unsupported"):
        load_source(tmp_path / "kb.csv")
    with pytest.raises(FileNotFoundError):
        load_source(tmp_path / "nope")


def test_the_sample_knowledge_base_is_complete_and_clean():
    from knowledge_base.config import PROJECT_ROOT

    res = load_markdown_folder(PROJECT_ROOT / "data" / "knowledge_base")
    assert res.problems == []
    by_locale: dict[str, set[str]] = {}
    for a in res.articles:
        by_locale.setdefault(a.locale, set()).add(a.group)
        assert a.id == f"{a.group}-{a.locale}"
        assert len(a.questions) >= 3, a.id
    assert len(by_locale["en"]) >= 40
    for loc in ("de", "tr", "ja"):
        assert len(by_locale[loc]) >= 12, loc
        assert by_locale[loc] <= by_locale["en"], f"{loc} has groups with no English original"
