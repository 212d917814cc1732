"""The Rasa model is retrained, and the index rebuilt, when and only when their inputs change."""
import shutil

from bot.ops.stack import rasa_model_hash
from knowledge_base.articles import load_markdown_folder
from knowledge_base.config import PROJECT_ROOT
from knowledge_base.snapshot import source_hash


def _copy_project(tmp_path):
    for name in ("config.yml", "domain.yml"):
        shutil.copy(PROJECT_ROOT / name, tmp_path / name)
    for d in ("data/nlu", "data/rules", "data/stories"):
        shutil.copytree(PROJECT_ROOT / d, tmp_path / d)
    return tmp_path


def test_model_key_changes_with_training_data_domain_and_config_only(tmp_path):
    root = _copy_project(tmp_path)
    base = rasa_model_hash(root)
    assert rasa_model_hash(root) == base
    (root / "README.md").write_text("docs do not retrain", encoding="utf-8")
    (root / "data" / "knowledge_base").mkdir(parents=True)
    (root / "data" / "knowledge_base" / "a.md").write_text("articles do not retrain", encoding="utf-8")
    assert rasa_model_hash(root) == base
    for rel in ("config.yml", "domain.yml", "data/rules/faq.yml", "data/nlu/chitchat.yml"):
        p = root / rel
        original = p.read_bytes()
        p.write_bytes(original + b"\n# changed\n")
        assert rasa_model_hash(root) != base, rel
        p.write_bytes(original)
        assert rasa_model_hash(root) == base
    (root / "data" / "stories" / "new.yml").write_text("version: '3.1'\n", encoding="utf-8")
    assert rasa_model_hash(root) != base


def test_index_key_changes_with_articles_and_encoder_but_not_with_order():
    res = load_markdown_folder(PROJECT_ROOT / "data" / "knowledge_base")
    arts = res.articles
    base = source_hash(arts, "use-multilingual-v3@0.2.1", "calib")
    assert source_hash(list(reversed(arts)), "use-multilingual-v3@0.2.1", "calib") == base
    assert source_hash(arts, "st:other", "calib") != base
    assert source_hash(arts, "use-multilingual-v3@0.2.1", "other-calibration") != base
    from dataclasses import replace

    edited = [replace(arts[0], body=arts[0].body + " More.")] + arts[1:]
    assert source_hash(edited, "use-multilingual-v3@0.2.1", "calib") != base
    drafted = [replace(arts[0], status="draft")] + arts[1:]
    assert source_hash(drafted, "use-multilingual-v3@0.2.1", "calib") != base
