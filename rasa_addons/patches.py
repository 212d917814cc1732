"""Performance fix for Rasa 3.6.21 (pinned in scripts/requirements-rasa.txt).

``RemoteAction._validate_action_result`` calls ``jsonschema.validate(result, schema)``, which builds
a validator and checks the schema on every call. The same validation with a validator built once
gives identical results (same schema, same validator class, same errors) at a fraction of the cost.
"""
from __future__ import annotations

_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    from jsonschema import ValidationError
    from jsonschema.validators import validator_for
    from rasa.core.actions.action import DOCS_BASE_URL, RemoteAction

    state: dict = {}

    def _validate_action_result(self, result):
        validator = state.get("validator")
        if validator is None:
            spec = RemoteAction.action_response_format_spec()
            cls = validator_for(spec)
            cls.check_schema(spec)
            validator = state["validator"] = cls(spec)
        try:
            validator.validate(result)
            return True
        except ValidationError as e:
            e.message += (
                ". Failed to validate Action server response from API, make sure your response from the "
                f"Action endpoint is valid. For more information about the format visit {DOCS_BASE_URL}/custom-actions"
            )
            raise e

    RemoteAction._validate_action_result = _validate_action_result
    _installed = True
