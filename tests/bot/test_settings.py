import re

import pytest

from bot.settings import SETTINGS_DOC, Settings, SettingsError
from knowledge_base.config import PROJECT_ROOT


def test_defaults_are_the_embedded_single_machine_setup():
    s = Settings.from_env({"SETTINGS_FILE": "", "HOME": "/tmp"})
    assert s.gateway_port == 8080 and s.rasa_port == 5005 and s.action_server_port == 5055
    assert s.database_url.startswith("sqlite+aiosqlite:///") and s.database_url.endswith("var/gateway.db")
    assert s.rasa_tracker_store_url.startswith("sqlite:///")
    assert s.rasa_lock_store_url == ""
    assert s.kb.encoder == "use-multilingual" and s.languages == ("en", "de", "tr", "ja")


@pytest.mark.parametrize("key,value,message", [
    ("GATEWAY_PORT", "eighty", "GATEWAY_PORT must be a port number"),
    ("GATEWAY_PORT", "70000", "between 0 and 65535"),
    ("DATABASE_URL", "mysql://x", "DATABASE_URL must start with"),
    ("RASA_URL", "localhost:5005", "RASA_URL must be an http(s) URL"),
    ("RASA_LOCK_STORE_URL", "memcached://x", "RASA_LOCK_STORE_URL"),
    ("KB_ENCODER_THREADS", "0", "KB_ENCODER_THREADS must be between 1 and 64"),
    ("LOG_LEVEL", "loud", "LOG_LEVEL must be"),
    ("MAX_MESSAGE_CHARS", "-3", "MAX_MESSAGE_CHARS must not be negative"),
])
def test_bad_values_are_rejected_with_the_key_named(key, value, message):
    with pytest.raises(SettingsError, match=re.escape(message)):
        Settings.from_env({key: value})


WHATSAPP = {"WHATSAPP_VERIFY_TOKEN": "v", "WHATSAPP_APP_SECRET": "s", "WHATSAPP_ACCESS_TOKEN": "t",
            "WHATSAPP_PHONE_NUMBER_ID": "1"}


@pytest.mark.parametrize("key,value,message", [
    ("WHATSAPP_WEBHOOK_MAX_BYTES", "lots", "WHATSAPP_WEBHOOK_MAX_BYTES must be a number"),
    ("WHATSAPP_WEBHOOK_MAX_BYTES", "1000", "WHATSAPP_WEBHOOK_MAX_BYTES must be at least 65536"),
    ("WHATSAPP_RATE_LIMIT_RETRY_SECONDS", "-1", "WHATSAPP_RATE_LIMIT_RETRY_SECONDS must not be negative"),
])
def test_bad_whatsapp_limits_are_rejected_with_the_key_named(key, value, message):
    with pytest.raises(SettingsError, match=re.escape(message)):
        Settings.from_env({**WHATSAPP, key: value})
    s = Settings.from_env(WHATSAPP).whatsapp
    assert (s.webhook_max_bytes, s.rate_limit_retry_seconds) == (8 * 1024 * 1024, 1800.0)


def test_settings_file_is_read_and_the_environment_wins(tmp_path):
    f = tmp_path / "settings.env"
    f.write_text("# comment\nGATEWAY_PORT=9001\nexport LOG_LEVEL='debug'\nRASA_PORT=6000\n", encoding="utf-8")
    s = Settings.from_env({"SETTINGS_FILE": str(f), "RASA_PORT": "6001"})
    assert s.gateway_port == 9001 and s.log_level == "DEBUG" and s.rasa_port == 6001
    f.write_text("GATEWAY_PORT\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="settings.env:1: expected KEY=value"):
        Settings.from_env({"SETTINGS_FILE": str(f)})
    with pytest.raises(SettingsError, match="does not exist"):
        Settings.from_env({"SETTINGS_FILE": str(tmp_path / "missing.env")})


def test_every_setting_is_documented_in_the_readme():
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    missing = [k for k in SETTINGS_DOC if f"`{k}`" not in readme]
    assert not missing, f"settings missing from README.md: {missing}"


def test_check_settings_command_fails_with_a_clear_message():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "bot", "check-settings"], env={"GATEWAY_PORT": "x", "PATH": "/usr/bin"},
                          capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert proc.returncode == 2
    assert "invalid setting: GATEWAY_PORT must be a port number" in proc.stderr


def test_check_settings_never_prints_a_secret():
    import os
    import subprocess
    import sys

    from knowledge_base.config import PROJECT_ROOT

    secrets = {"WHATSAPP_VERIFY_TOKEN": "verify-s3cret", "WHATSAPP_APP_SECRET": "app-s3cret",
               "WHATSAPP_ACCESS_TOKEN": "access-s3cret", "WHATSAPP_PHONE_NUMBER_ID": "1234",
               "WIDGET_IDENTITY_SECRET": "widget-s3cret", "OUTGOING_WEBHOOK_SECRET": "hook-s3cret",
               "OUTGOING_WEBHOOK_URL": "https://example.com/hook", "INTERNAL_TOKEN": "internal-s3cret",
               "REDIS_URL": "redis://:redis-s3cret@127.0.0.1:6379/0"}
    p = subprocess.run([sys.executable, "-m", "bot", "check-settings"], env={**os.environ, **secrets},
                       capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "widget_identity_secret = <set>" in p.stdout and "whatsapp = <set>" in p.stdout
    assert "s3cret" not in p.stdout + p.stderr
