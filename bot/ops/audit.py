"""python -m bot audit: pip-audit over both Python environments (.venv and .venv-rasa).

Where the advisories come from, in this order:
- ``--advisories DIR`` (or ``AUDIT_ADVISORY_DIR``): a folder of OSV records, YAML or JSON, such as a
  checkout of https://github.com/pypa/advisory-database or GitHub's advisory database. A small
  OSV-compatible query service on loopback (:class:`OsvServer`) answers pip-audit from it, so the
  audit works without internet.
- otherwise OSV's public API (``--osv-url``, https://api.osv.dev/v1/query), when it answers.

pip-audit's default service, PyPI's per-version JSON API, is not used: where it is missing (as on a
PyPI mirror) pip-audit reports every package as "not found on PyPI" and exits 0, an audit that audited
nothing. When no source answers, the audit says so ("blocked", exit 0; exit 3 with ``--strict``).
A finding that cannot be fixed yet is accepted in ``scripts/audit-ignore.txt`` (one id per line and
the reason after ``#``); everything else found fails the audit (exit 1). The report is written to
``var/audit.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from knowledge_base.config import PROJECT_ROOT

ENVIRONMENTS = {"application": ".venv", "rasa": ".venv-rasa"}
PUBLIC_OSV_URL = "https://api.osv.dev/v1/query"
IGNORE_FILE = PROJECT_ROOT / "scripts" / "audit-ignore.txt"
REPORT = PROJECT_ROOT / "var" / "audit.json"
EXIT_FOUND, EXIT_USAGE, EXIT_BLOCKED = 1, 2, 3


class AuditError(Exception):
    """Bad input: exit code 2 with this message."""


def canonical(name: str) -> str:
    from packaging.utils import canonicalize_name

    return str(canonicalize_name(name))


# ---------- advisories from a folder, answered like OSV's /v1/query ----------

class Advisories:
    """OSV records (https://ossf.github.io/osv-schema/) of the PyPI ecosystem, by package."""

    def __init__(self, by_package: dict[str, list[dict]], files: int):
        self.by_package = by_package
        self.files = files

    @classmethod
    def load(cls, folder: Path) -> "Advisories":
        import yaml

        if not folder.is_dir():
            raise AuditError(f"advisory folder {folder} does not exist")
        loader = getattr(yaml, "CBaseLoader", yaml.BaseLoader)  # every scalar a string, as in JSON
        by_package: dict[str, list[dict]] = {}
        files = 0
        for path in sorted(folder.rglob("*")):
            if path.suffix not in (".yaml", ".yml", ".json") or not path.is_file() or ".git" in path.parts:
                continue
            try:
                text = path.read_text(encoding="utf-8")
                record = json.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=loader)
            except (OSError, ValueError, yaml.YAMLError) as exc:
                raise AuditError(f"advisory {path} cannot be read: {exc}") from exc
            if not isinstance(record, dict) or "id" not in record or not isinstance(record.get("affected"), list):
                continue  # not an OSV record (a workflow, a triage list)
            files += 1
            for affected in record["affected"]:
                pkg = affected.get("package") or {}
                if pkg.get("ecosystem") == "PyPI" and pkg.get("name"):
                    bucket = by_package.setdefault(canonical(pkg["name"]), [])
                    if not bucket or bucket[-1] is not record:
                        bucket.append(record)
        return cls(by_package, files)

    def query(self, name: str, version: str) -> list[dict]:
        """The records that affect this version of this package (withdrawn ones are left to pip-audit)."""
        name = canonical(name)
        return [r for r in self.by_package.get(name, ())
                if any(affects(a, name, version) for a in r["affected"])]


def affects(affected: dict, name: str, version: str) -> bool:
    """Whether one ``affected`` entry of an OSV record covers this version: listed in ``versions``, or
    inside an ECOSYSTEM range (introduced <= v < fixed, or <= last_affected)."""
    from packaging.version import InvalidVersion, Version

    pkg = affected.get("package") or {}
    if pkg.get("ecosystem") != "PyPI" or canonical(pkg.get("name", "")) != name:
        return False
    try:
        v = Version(version)
    except InvalidVersion:
        return version in (affected.get("versions") or [])
    for listed in affected.get("versions") or []:
        try:
            if Version(listed) == v:
                return True
        except InvalidVersion:
            continue
    for rng in affected.get("ranges") or []:
        if rng.get("type") != "ECOSYSTEM":
            continue
        start = None  # inside an interval since this introduced version
        for event in rng.get("events") or []:
            try:
                if "introduced" in event:
                    start = Version("0") if event["introduced"] == "0" else Version(event["introduced"])
                elif start is not None and "fixed" in event:
                    if start <= v < Version(event["fixed"]):
                        return True
                    start = None
                elif start is not None and "last_affected" in event:
                    if start <= v <= Version(event["last_affected"]):
                        return True
                    start = None
            except InvalidVersion:
                start = None
        if start is not None and start <= v:  # introduced and never fixed
            return True
    return False


class OsvServer:
    """OSV's ``POST /v1/query`` on 127.0.0.1 over an :class:`Advisories`, for pip-audit's ``--osv-url``."""

    def __init__(self, advisories: Advisories):
        self.advisories = advisories
        self.queries = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _json(self, status: int, body: Any):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                if self.path != "/v1/query":
                    return self._json(404, {"error": "only POST /v1/query is served"})
                try:
                    q = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                    pkg, version = q["package"], q["version"]
                    if pkg.get("ecosystem") != "PyPI" or not isinstance(version, str):
                        raise ValueError("only PyPI packages with a version are served")
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    return self._json(400, {"error": f"bad query: {exc}"})
                outer.queries += 1
                vulns = outer.advisories.query(pkg["name"], version)
                self._json(200, {"vulns": vulns} if vulns else {})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1/query"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="osv-local", daemon=True)

    def __enter__(self) -> "OsvServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ---------- the audit ----------

def read_ignores(path: Path = IGNORE_FILE) -> dict[str, str]:
    """``ID  # reason`` lines; a line without a reason is refused (an accepted risk must say why)."""
    ignores: dict[str, str] = {}
    if not path.exists():
        return ignores
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        vid, _, reason = line.partition("#")
        if not vid.strip() or not reason.strip() or len(vid.split()) != 1:
            raise AuditError(f"{path}:{n}: expected 'VULNERABILITY-ID  # reason', got {line!r}")
        ignores[vid.strip()] = reason.strip()
    return ignores


def frozen_requirements(python: Path) -> list[str]:
    """``name==version`` of every installed distribution of that environment (the project itself and
    anything installed from a path or URL are not on PyPI, so not audited)."""
    out = subprocess.run([str(python), "-m", "pip", "list", "--format", "json", "--exclude-editable",
                          "--disable-pip-version-check"], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise AuditError(f"{python} -m pip list failed: {out.stderr.strip()[-300:]}")
    return sorted(f"{d['name']}=={d['version']}" for d in json.loads(out.stdout))


def reachable(url: str, timeout: float = 8.0) -> str | None:
    """None when the OSV endpoint answers a query, else why not."""
    import urllib.error
    import urllib.request

    body = json.dumps({"package": {"name": "pip", "ecosystem": "PyPI"}, "version": "1.0"}).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=timeout) as r:
            json.loads(r.read() or b"{}")
            return None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"{url}: {getattr(exc, 'reason', exc)}"


@dataclass
class EnvResult:
    name: str
    packages: int
    found: list[dict] = field(default_factory=list)  # not accepted: these fail the audit
    accepted: list[dict] = field(default_factory=list)  # in the ignore file, with its reason


def pip_audit(requirements: list[str], osv_url: str) -> list[dict]:
    """pip-audit over pinned requirements against an OSV endpoint: one dict per (package, vulnerability)."""
    with tempfile.TemporaryDirectory(prefix="audit-") as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text("\n".join(requirements) + "\n")
        cmd = [sys.executable, "-m", "pip_audit", "-r", str(req), "--no-deps", "--disable-pip",
               "-s", "osv", "--osv-url", osv_url, "-f", "json", "--progress-spinner", "off",
               "--cache-dir", str(Path(tmp) / "cache"), "--timeout", "30"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    try:
        report = json.loads(out.stdout)
    except ValueError:
        raise AuditError(f"pip-audit failed (exit {out.returncode}): {out.stderr.strip()[-600:]}") from None
    rows = []
    for dep in report.get("dependencies", []):
        if dep.get("skip_reason"):
            raise AuditError(f"pip-audit could not audit {dep['name']}: {dep['skip_reason']}")
        for v in dep.get("vulns", []):
            ids = sorted({v["id"], *v.get("aliases", [])})  # pip-audit picks one as "id" (often the CVE)
            rows.append({"package": dep["name"], "version": dep["version"], "id": v["id"], "ids": ids,
                         "aliases": v.get("aliases", []), "fix_versions": v.get("fix_versions", []),
                         "description": (v.get("description") or "")[:200]})
    return rows


def run_audit(envs: dict[str, Path], osv_url: str, ignores: dict[str, str]) -> list[EnvResult]:
    results = []
    for name, python in envs.items():
        reqs = frozen_requirements(python)
        res = EnvResult(name, len(reqs))
        for row in pip_audit(reqs, osv_url):
            hit = next((i for i in row["ids"] if i in ignores), None)
            if hit:
                res.accepted.append({**row, "reason": ignores[hit]})
            else:
                res.found.append(row)
        results.append(res)
    return results


def cmd_audit(args) -> int:
    t0 = time.monotonic()
    try:
        envs = {}
        for name, folder in ENVIRONMENTS.items():
            python = PROJECT_ROOT / folder / "bin" / "python"
            if python.exists():
                envs[name] = python
            elif args.strict:
                raise AuditError(f"environment {folder} is missing (make envs)")
        if not envs:
            raise AuditError("neither .venv nor .venv-rasa exists (make envs)")
        ignores = read_ignores(Path(args.ignore_file))
        folder = args.advisories or os.environ.get("AUDIT_ADVISORY_DIR", "")
        if folder:
            advisories = Advisories.load(Path(folder))
            source = f"advisory folder {folder} ({advisories.files} records)"
            with OsvServer(advisories) as server:
                results = run_audit(envs, server.url, ignores)
        else:
            why = reachable(args.osv_url)
            if why:
                msg = (f"dependency audit blocked: no vulnerability source answers ({why}) and no advisory "
                       "folder is given (--advisories DIR or AUDIT_ADVISORY_DIR, e.g. a checkout of "
                       "github.com/pypa/advisory-database)")
                _write_report(Path(args.report), {"status": "blocked", "reason": msg})
                print(msg, file=sys.stderr)
                return EXIT_BLOCKED if args.strict else 0
            source = args.osv_url
            results = run_audit(envs, args.osv_url, ignores)
    except AuditError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    found = sum(len(r.found) for r in results)
    _write_report(Path(args.report), {"status": "vulnerable" if found else "clean", "source": source,
                   "seconds": round(time.monotonic() - t0, 1),
                   "environments": [r.__dict__ for r in results]})
    for r in results:
        print(f"{r.name}: {r.packages} packages, {len(r.found)} known vulnerabilities, "
              f"{len(r.accepted)} accepted ({args.ignore_file})")
        for row in r.found:
            fix = ", ".join(row["fix_versions"]) or "no fix yet"
            print(f"  {row['package']} {row['version']}: {' '.join(row['ids'])} (fixed in {fix}) "
                  f"{row['description'][:90]}")
    print(f"dependency audit against {source}: {'FAILED' if found else 'passed'} "
          f"in {time.monotonic() - t0:.1f} s; report {args.report}")
    return EXIT_FOUND if found else 0


def _write_report(path: Path, report: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(path)


def add_cli(sub) -> None:
    p = sub.add_parser("audit", help="pip-audit of both Python environments (see bot/ops/audit.py)")
    p.add_argument("--advisories", default="", help="a folder of OSV advisories (e.g. pypa/advisory-database)")
    p.add_argument("--osv-url", default=PUBLIC_OSV_URL, help="an OSV /v1/query endpoint")
    p.add_argument("--ignore-file", default=str(IGNORE_FILE))
    p.add_argument("--report", default=str(REPORT), help="where the JSON report is written")
    p.add_argument("--strict", action="store_true", help="exit 3 when no vulnerability source is reachable")
    p.set_defaults(func=cmd_audit)
