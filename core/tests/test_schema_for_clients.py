"""What a generated client needs from the schema (issue 12, item 11).

Every error answer has a body schema, so a generated client parses it and hands
the message to its caller; every operation has a summary; no description is a
docstring written for developers.
"""

import inspect

import pytest
from rest_framework import serializers

pytestmark = pytest.mark.django_db

# The answers the issue found without a body schema.
LISTED_ANSWERS = [
    ("post", "/api/v1/settings/api-keys", "400"),
    ("post", "/api/v1/settings/api-keys", "403"),
    ("delete", "/api/v1/settings/api-keys/{key_id}", "403"),
    ("delete", "/api/v1/settings/api-keys/{key_id}", "404"),
    ("put", "/api/v1/users/{user_id}/role", "400"),
    ("delete", "/api/v1/users/{user_id}", "400"),
    ("post", "/api/v1/settings/admin/retention/run", "400"),
    ("get", "/api/v1/settings/ai/models", "429"),
    ("get", "/api/v1/settings/ai/models", "502"),
]
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@pytest.fixture
def schema(api_client) -> dict:
    response = api_client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    return response.json()


def operations(schema: dict):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield method, path, operation


def descriptions(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                yield value
            else:
                yield from descriptions(value)
    elif isinstance(node, list):
        for value in node:
            yield from descriptions(value)


def project_serializer_docstrings() -> set[str]:
    found, todo = set(), [serializers.BaseSerializer]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        for klass in cls.__mro__:  # mixins too: drf-spectacular reads the first docstring up the MRO
            module = klass.__module__.split(".")[0]
            library = module in ("rest_framework", "drf_spectacular", "rest_framework_simplejwt", "builtins")
            if klass.__doc__ and not library:
                found.add(inspect.cleandoc(klass.__doc__))
    return found


class TestErrorBodies:
    @pytest.mark.parametrize(("method", "path", "code"), LISTED_ANSWERS)
    def test_the_listed_answers_have_drfs_error_body(self, schema, method, path, code):
        response = schema["paths"][path][method]["responses"][code]
        body = response["content"]["application/json"]["schema"]
        if code == "400":
            assert body == {"type": "object", "additionalProperties": {}}
        else:
            assert body == {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}

    def test_every_error_answer_has_a_json_body(self, schema):
        missing = [
            f"{method.upper()} {path} {code}"
            for method, path, operation in operations(schema)
            for code, response in operation["responses"].items()
            if code[0] in "45" and "application/json" not in response.get("content", {})
        ]
        assert missing == []


class TestDescriptions:
    def test_every_operation_has_a_summary(self, schema):
        assert [f"{m.upper()} {p}" for m, p, op in operations(schema) if not op.get("summary")] == []

    def test_summaries_are_unique(self, schema):
        summaries = [op["summary"] for _, _, op in operations(schema)]
        assert len(summaries) == len(set(summaries))

    def test_no_serializer_docstring_is_a_description(self, schema):
        docstrings = project_serializer_docstrings()
        assert "Reject fields the serializer does not accept" in " ".join(docstrings)  # the search works
        leaked = [text for text in descriptions(schema) if text.strip() in docstrings]
        assert leaked == []
        assert "Reject fields the serializer does not accept" not in str(schema)
