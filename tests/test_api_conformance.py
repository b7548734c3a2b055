"""The server against its own OpenAPI document, with schemathesis: every
operation, valid requests (they must not be refused) and invalid ones (they
must be refused), bounded examples and a fixed seed, on SQLite."""

from __future__ import annotations

import threading

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from werkzeug.serving import make_server

from conftest import MINI_FILES, as_test_app, make_config, token_for
from crmkit.app import create_app
from crmkit.permissions import SYSTEM
from crmkit.settings import Settings

WORKFLOW_YAML = """
    workflow: customer_level
    entity: customer
    field: level
    states: [bronze, silver, gold]
    transitions:
      - {name: upgrade, from: bronze, to: silver, label: {en: Upgrade, zh: 升级}}
      - {name: crown, from: silver, to: gold, require: [age]}
"""


#: Examples per operation and phase: the size (and the time) of the run.
MAX_EXAMPLES = 3
#: The operations that take list parameters (filters of every field).
LIST_OPERATIONS = r"^GET /api/v1/[a-z_]+(/_export|/\{id\}/[a-z_]+)?$"


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    """The admin's view of the document, loaded from the app; requests carry the
    admin's token. Operations on users and tokens are pointed at a spare user
    and their token, so the run cannot lock itself out (revoke its own token,
    take the admin's roles)."""
    root = tmp_path_factory.mktemp("conformance")
    config = make_config(root / "config", {**MINI_FILES, "workflows/customer_level.yaml": WORKFLOW_YAML})
    settings = Settings(database_url=f"sqlite:///{root / 'crm.sqlite3'}", instance_dir=root / "instance")
    app = as_test_app(create_app(config, settings))
    rt = app.extensions["crmkit"]
    token = token_for(app)
    spare = rt.directory.create_user({"username": "spare", "roles": ["admin"]}, SYSTEM)
    spare_token = rt.directory.create_token(spare["id"], "spare", SYSTEM)
    for name in ("alice", "bob"):
        rt.records.create("customer", {"name": name}, SYSTEM)
    rt.records.create("product", {"name": "beans"}, SYSTEM)
    # Served over HTTP from a thread: schemathesis's own transport, the one its checks are written for.
    server = make_server("127.0.0.1", 0, app, threaded=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    schema_config = SchemathesisConfig.from_dict({
        "seed": 20261130,
        "base-url": f"http://127.0.0.1:{server.port}",
        "headers": {"Authorization": f"Bearer {token}"},
        "generation": {"max-examples": MAX_EXAMPLES},
        "phases": {"stateful": {"enabled": False}},
        # Lists take a parameter per filter of each field: the coverage phase would try each one's
        # boundaries, thousands of requests; fuzzing draws them in combinations instead.
        "operations": [
            {"include-name-regex": LIST_OPERATIONS, "phases": {"coverage": {"enabled": False}}},
            {"include-path-regex": "^/api/v1/(users|me)/", "parameters": {"user_id": spare["id"],
                                                                         "token_id": spare_token.id}},
            # A schema cannot say which current password is right: a wrong one is a 422, as documented.
            {"include-path": "/api/v1/me/password", "checks": {"positive_data_acceptance": {"enabled": False}}},
        ],
    })
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    schema = schemathesis.openapi.from_dict(without_cursors(document), config=schema_config)
    yield schema
    server.shutdown()
    thread.join()
    rt.engine.dispose()


def without_cursors(document: dict) -> dict:
    """The document without the cursor parameter: a cursor is opaque, only one
    a page gave is valid, which a schema cannot say (test_pagination and
    test_bad_input cover cursors)."""
    parameters = document["components"]["parameters"]
    cursors = {key for key, parameter in parameters.items() if parameter["name"] == "cursor"}
    for key in cursors:
        del parameters[key]
    for operations in document["paths"].values():
        for operation in operations.values():
            operation["parameters"] = [p for p in operation.get("parameters", ())
                                       if p.get("$ref", "").rsplit("/", 1)[-1] not in cursors]
    return document


def _problems(api_schema) -> list[str]:
    """Run every phase of schemathesis over every operation; the failed checks and errors."""
    from schemathesis.engine import Status, from_schema
    from schemathesis.engine.events import FatalError, NonFatalError, ScenarioFinished

    problems = []
    for event in from_schema(api_schema).execute():
        if isinstance(event, ScenarioFinished):
            for case_id, checks in event.recorder.checks.items():
                for check in checks:
                    if check.status == Status.FAILURE and check.failure_info is not None:
                        case = event.recorder.cases[case_id].value
                        failure = check.failure_info.failure
                        problems.append(f"{event.label}: {check.name}: {failure.title}\n  {failure.message[:400]}"
                                        f"\n  {case.method} {case.formatted_path} query={str(case.query)[:200]} "
                                        f"headers={str(case.headers)[:120]} body={str(case.body)[:300]}")
        elif isinstance(event, (NonFatalError, FatalError)):
            problems.append(f"error: {getattr(event, 'label', '')} {str(getattr(event, 'value', event))[:500]}")
    return problems


@pytest.mark.conformance
def test_the_server_keeps_its_document(api_schema):
    problems = _problems(api_schema)
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)
