"""The dependency audit (bot/ops/audit.py): OSV range semantics, the loopback OSV service answering the
real pip-audit, accepted findings, and the clear "blocked" when no vulnerability source answers."""
from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version as installed_version

import pytest
import urllib.request

from bot.ops.audit import Advisories, OsvServer, affects, pip_audit, read_ignores, AuditError
from knowledge_base.config import PROJECT_ROOT

AIOHTTP = installed_version("aiohttp")  # installed in .venv, so the audit of .venv must find the fake record


def record(vid: str, name: str, events: list[dict], versions: list[str] | None = None) -> dict:
    return {"id": vid, "summary": f"{vid} summary", "aliases": [f"CVE-{vid}"],
            "affected": [{"package": {"ecosystem": "PyPI", "name": name},
                          "ranges": [{"type": "ECOSYSTEM", "events": events}], "versions": versions or []}]}


def test_osv_ranges_are_read_as_the_schema_says():
    r = record("T-1", "Some_Package", [{"introduced": "0"}, {"fixed": "1.4.2"}, {"introduced": "2.0"},
                                       {"last_affected": "2.1"}, {"introduced": "3.0rc1"}])
    a = r["affected"][0]
    assert affects(a, "some-package", "1.4.1") and affects(a, "some-package", "0.1")
    assert not affects(a, "some-package", "1.4.2") and not affects(a, "some-package", "1.9")
    assert affects(a, "some-package", "2.0") and affects(a, "some-package", "2.1")
    assert not affects(a, "some-package", "2.1.1")
    assert affects(a, "some-package", "3.0") and affects(a, "some-package", "9.9")  # never fixed
    assert not affects(a, "other-package", "1.0")  # by canonical name only
    listed = record("T-2", "pkg", [], versions=["0.5", "0.7.post1"])["affected"][0]
    assert affects(listed, "pkg", "0.7.post1") and affects(listed, "pkg", "0.05") and not affects(listed, "pkg", "0.6")


def test_an_advisory_folder_is_served_to_pip_audit(tmp_path):
    import yaml

    (tmp_path / "vulns" / "aiohttp").mkdir(parents=True)
    (tmp_path / "vulns" / "aiohttp" / "T-YAML.yaml").write_text(yaml.safe_dump(
        record("T-YAML", "aiohttp", [{"introduced": "0"}, {"fixed": "3.9.2"}])))
    (tmp_path / "T-JSON.json").write_text(json.dumps(
        {**record("T-JSON", "requests", [{"introduced": "2.0"}, {"fixed": "2.32.0"}]), "published": "2024-05-20T20:15:00Z"}))
    (tmp_path / "T-OLD.json").write_text(json.dumps(
        {**record("T-OLD", "aiohttp", [{"introduced": "0"}]), "withdrawn": "2024-01-01T00:00:00Z"}))
    (tmp_path / "workflow.yaml").write_text("on: push\n")  # not an OSV record: skipped
    adv = Advisories.load(tmp_path)
    assert adv.files == 3
    with OsvServer(adv) as server:
        rows = pip_audit(["aiohttp==3.9.0", "requests==2.31.0", "requests-toolbelt==1.0.0", "aiohttp-cors==0.8.1"],
                         server.url)
        bad = urllib.request.Request(server.url, data=b'{"package": {"name": "x"}}', method="POST")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(bad, timeout=5)
        assert err.value.code == 400 and "bad query" in json.loads(err.value.read())["error"]
    found = {(r["package"], i): r for r in rows for i in r["ids"] if i.startswith("T-")}
    assert set(found) == {("aiohttp", "T-YAML"), ("requests", "T-JSON")}  # the withdrawn one is not reported
    assert found[("aiohttp", "T-YAML")]["fix_versions"] == ["3.9.2"]
    assert found[("requests", "T-JSON")]["ids"] == ["CVE-T-JSON", "T-JSON"]


def test_an_accepted_risk_needs_a_reason(tmp_path):
    f = tmp_path / "ignore.txt"
    f.write_text("# header\n\nPYSEC-1  # no fix inside Rasa 3.6's pins; Rasa listens on loopback only\n")
    assert read_ignores(f) == {"PYSEC-1": "no fix inside Rasa 3.6's pins; Rasa listens on loopback only"}
    f.write_text("PYSEC-2\n")
    with pytest.raises(AuditError, match="expected 'VULNERABILITY-ID  # reason'"):
        read_ignores(f)


def _audit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot", "audit", *args], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=600)


def test_the_command_fails_on_a_finding_and_passes_once_it_is_accepted(tmp_path):
    (tmp_path / "adv").mkdir()
    (tmp_path / "adv" / "T-AIO.json").write_text(json.dumps(
        record("T-AIO", "aiohttp", [{"introduced": "0"}, {"fixed": "999.0"}])))
    report = tmp_path / "audit.json"
    out = _audit("--advisories", str(tmp_path / "adv"), "--ignore-file", str(tmp_path / "none.txt"),
                 "--report", str(report))
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"aiohttp {AIOHTTP}: CVE-T-AIO T-AIO (fixed in 999.0)" in out.stdout and "FAILED" in out.stdout
    data = json.loads(report.read_text())
    app = next(e for e in data["environments"] if e["name"] == "application")
    assert data["status"] == "vulnerable" and [f["ids"] for f in app["found"]] == [["CVE-T-AIO", "T-AIO"]]
    assert app["packages"] > 50  # the whole environment, not a handful

    (tmp_path / "ok.txt").write_text("T-AIO  # accepted for this test\n")
    out = _audit("--advisories", str(tmp_path / "adv"), "--ignore-file", str(tmp_path / "ok.txt"),
                 "--report", str(report))
    assert out.returncode == 0 and "passed" in out.stdout, out.stdout + out.stderr
    assert json.loads(report.read_text())["environments"][0]["accepted"][0]["reason"] == "accepted for this test"


def test_no_vulnerability_source_is_a_clear_blocked_not_a_pass(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/v1/query"  # nothing listens there
    report = tmp_path / "audit.json"
    out = _audit("--osv-url", closed, "--report", str(report))
    assert out.returncode == 0 and "dependency audit blocked: no vulnerability source answers" in out.stderr
    assert json.loads(report.read_text())["status"] == "blocked"
    assert _audit("--osv-url", closed, "--report", str(report), "--strict").returncode == 3
    assert _audit("--advisories", str(tmp_path / "missing")).returncode == 2
