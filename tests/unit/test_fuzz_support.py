"""The fuzzing support (tests/support/fuzz.py) cannot pass by sending nothing: an operation
that yields no case fails the run, and only operations with no input skip invalid cases."""

import json

import pytest
import schemathesis
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.support.fuzz import EXAMPLES, all_cases, can_be_invalid, generated_cases

OK = {"200": {"description": "ok"}}
DOCUMENT = {
    "openapi": "3.1.0",
    "info": {"title": "t", "version": "1"},
    "paths": {
        "/things": {
            "get": {
                "parameters": [{"name": "size", "in": "query", "required": True, "schema": {"type": "integer"}}],
                "responses": OK,
            }
        },
        "/health": {"get": {"responses": OK}},
    },
}


def operations() -> dict[str, object]:
    return {op.path: op for op in (each.ok() for each in schemathesis.openapi.from_dict(DOCUMENT).get_all_operations())}


def test_an_operation_without_invalid_cases_fails_instead_of_passing_empty():
    health = operations()["/health"]
    assert not can_be_invalid(health)
    with pytest.raises(Unsatisfiable):
        generated_cases(health, GenerationMode.NEGATIVE, 3)


def test_every_operation_is_fuzzed_with_every_case_it_can_have():
    counts = {(path, mode): len(cases) for _, path, mode, cases in all_cases(json.dumps(DOCUMENT))}
    assert counts == {
        ("/things", GenerationMode.POSITIVE): EXAMPLES[GenerationMode.POSITIVE],
        ("/things", GenerationMode.NEGATIVE): EXAMPLES[GenerationMode.NEGATIVE],
        ("/health", GenerationMode.POSITIVE): 1,
    }
