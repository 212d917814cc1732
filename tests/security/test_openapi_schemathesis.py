"""schemathesis against the gateway's own OpenAPI document (/api/openapi.json, the editors' API): for
every operation its hypothesis strategies generate requests from the schema, valid and deliberately
invalid (wrong types, missing fields, odd strings, huge values), sent signed in as an editor with the
session's CSRF token, as the editors' page does. (Through schemathesis' strategies rather than its
pytest plugin, whose lazy loader does not run on pytest 9.) No answer may be a 5xx (but for publishing, which says so with
503 here: this server has no action server), every refusal is JSON with an "error", and a refused
request writes no article version. The counts per operation go to tests/artifacts/schemathesis.json."""
from __future__ import annotations

import json
from collections import Counter

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation.modes import GenerationMode

from ..conftest import ARTIFACTS
from ..inbox.conftest import PASSWORD
from .test_hostile_input import Server

TRIED: Counter = Counter()
EXAMPLES_PER_OPERATION = 30  # per generation mode (valid and invalid)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("schemathesis"))
    http = requests.Session()
    resp = http.post(srv.url + "/api/inbox/login", json={"email": "ed@example.com", "password": PASSWORD}, timeout=30)
    assert resp.status_code == 200
    http.headers["X-CSRF-Token"] = resp.json()["csrf_token"]
    yield srv, http
    http.close()
    srv.close()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "schemathesis.json").write_text(json.dumps(dict(sorted(TRIED.items())), indent=1))
    print("\nschemathesis calls per operation and mode:", dict(sorted(TRIED.items())), "total", sum(TRIED.values()))


def operations(srv, http) -> list:
    spec = http.get(srv.url + "/api/openapi.json", timeout=30).json()
    ops = [result.ok() for result in schemathesis.openapi.from_dict(spec).get_all_operations()]
    assert len(ops) >= 15, "the document lists the editors' operations"
    return ops


def check_answer(srv, http, case, mode: str) -> None:
    """The gateway's contract for any request: never a 5xx, every refusal a JSON error, and a refused
    request writes no article version."""
    versions = srv.count("kb_article_versions")
    response = case.call(base_url=srv.url, session=http)
    TRIED[f"{case.method} {case.path} {mode}"] += 1
    status, body = response.status_code, response.content
    where = f"{case.method} {case.formatted_path} ({mode}): {status} {body[:300]!r}"
    assert status < 500 or (status == 503 and b"action server" in body), where
    if 400 <= status < 500:
        if status not in (414, 431):  # refused by the HTTP parser before the app
            assert "error" in json.loads(body), where
        assert srv.count("kb_article_versions") == versions, "a refused request wrote an article version: " + where


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_of_the_openapi_document(live, mode):
    srv, http = live
    for op in operations(srv, http):
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck),
                  derandomize=True, database=None)
        @given(case=op.as_strategy(generation_mode=mode))
        def one(case):
            check_answer(srv, http, case, str(mode))

        one()
    assert sum(n for key, n in TRIED.items() if key.endswith(str(mode))) >= 100
