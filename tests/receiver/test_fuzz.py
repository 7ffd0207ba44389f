"""Property-based fuzzing of the webhook (hypothesis) and of the whole API (schemathesis).

Never a 500, and never a build from invalid input: every build Jenkins sees has parameter
values that pass the rules' allow patterns, and a body answered 400 leaves no decision.
"""

from __future__ import annotations

import json
import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stackmedic.receiver.views import openapi_document

from harness.services import wait_for
from tests.receiver.helpers import AUTH, TOKEN, actions

ALLOWED = re.compile(r"[a-z][a-z0-9_-]{0,62}")
HOSTILE = [
    "; rm -rf /",
    "../../etc/passwd",
    "petclinic\nwordpress",
    "$(id)",
    "`id`",
    "a b",
    "\x00",
    "petclinic\r",
    "PETCLINIC",
    "",
    "p" * 300,
    "wordpress;",
    "../",
    "%2e%2e/",
    "petclinic ",
    "ünïcödé",
]
VALUES = st.one_of(
    st.sampled_from(HOSTILE), st.sampled_from(["petclinic", "wordpress", "db1"]), st.text(max_size=20)
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
TIMES = st.one_of(
    st.sampled_from(
        [
            "2026-01-01T10:00:00Z",
            "2026-01-01T10:00:00.123456789+02:00",
            "0001-01-01T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "yesterday",
            "2026-01-01 10:00:00Z",
        ]
    ),
    JSON,
)
LABELS = st.one_of(
    st.fixed_dictionaries(
        {"remediation": st.sampled_from(["restart", "restore", "other"])},
        optional={"compose_service": VALUES, "database": VALUES, "alertname": st.text(max_size=10)},
    ),
    st.dictionaries(st.text(max_size=8), VALUES | JSON, max_size=4),
    JSON,
)
ALERT = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "status": st.sampled_from(["firing", "resolved", "pending"]) | JSON,
            "labels": LABELS,
            "startsAt": TIMES,
            "endsAt": TIMES,
            "fingerprint": st.text(max_size=20) | JSON,
            "annotations": JSON,
            "extra": JSON,
        },
    ),
    JSON,
)
BODY = st.one_of(
    st.fixed_dictionaries(
        {"alerts": st.lists(ALERT, max_size=4)},
        optional={"version": st.sampled_from(["4", "3"]) | JSON, "status": JSON, "groupKey": JSON},
    ),
    JSON,
)


def _builds_are_allowed(standin) -> None:
    for call in standin.posts():
        for name in ("SERVICE", "DATABASE"):
            if name in call.form:
                assert ALLOWED.fullmatch(call.form[name]), f"a build with {name}={call.form[name]!r}"


@pytest.fixture
def fuzz_app(make_app):
    return make_app(breaker={"cooldown": 0, "max_actions": 0, "max_ineffective": 0})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BODY, raw=st.booleans(), junk=st.binary(max_size=40))
def test_webhook_never_500_and_never_builds_from_invalid_input(fuzz_app, standin, body, raw, junk):
    client = fuzz_app.test_client()
    before = len(actions(fuzz_app))
    data = junk if raw else json.dumps(body)
    resp = client.post("/api/v1/alerts", data=data, headers={**AUTH, "Content-Type": "application/json"})
    assert resp.status_code in (200, 400, 422), resp.data
    if resp.status_code == 400:
        assert len(actions(fuzz_app)) == before
        assert resp.json["error"] == "invalid payload" and resp.json["problems"]
    _builds_are_allowed(standin)


def test_fuzzing_reaches_jenkins_with_valid_input_only(fuzz_app, standin):
    # the property above is only meaningful if valid alerts do reach Jenkins through the same app
    body = {
        "alerts": [
            {
                "status": "firing",
                "labels": {"remediation": "restart", "compose_service": "petclinic"},
                "startsAt": "2026-01-01T10:00:00Z",
            }
        ]
    }
    assert fuzz_app.test_client().post("/api/v1/alerts", json=body, headers=AUTH).status_code == 200
    wait_for(standin.posts, 10, "the valid alert's POST to Jenkins")
    assert [c.form["SERVICE"] for c in standin.posts()] == ["petclinic"]


# the document as the app serves it; pytest's lazy fixture loading of schemathesis does not
# work with this pytest, so the schema is loaded from the package and each case calls the app
schema = schemathesis.openapi.from_dict(openapi_document())


@schema.auth()
class WebhookToken:
    """The configured bearer token, applied the way schemathesis can also leave it out (its auth checks)."""

    def get(self, case, context):
        return TOKEN

    def set(self, case, data, context):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_follows_its_openapi_document(case, fuzz_app, standin):
    case.operation.schema.app = fuzz_app  # the checks that send more requests need it too
    response = case.call(app=fuzz_app)
    assert response.status_code < 500, response.text
    case.validate_response(response, transport_kwargs={"app": fuzz_app})
    _builds_are_allowed(standin)
