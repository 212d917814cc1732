"""Performance fixes for Rasa 3.6.21 (pinned in scripts/requirements-rasa.txt), found with py-spy
under bench/load.py. Each gives the same results as the code it replaces.

- ``RemoteAction._validate_action_result`` calls ``jsonschema.validate(result, schema)``, which builds
  a validator and checks the schema on every call: the same validation with a validator built once.
- ``Event.resolve_by_type`` walks every subclass of ``Event`` (``all_subclasses``, with an
  ``inspect.isabstract`` per class) for every event it deserialises, that is for every stored event
  of a conversation on every message: 9% of the server's CPU. The class found for a type name is
  remembered. (Rasa's event classes and ours are all defined at import time, before the first
  lookup, so the first match never changes.)
"""
from __future__ import annotations

_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    _install_action_result_validator()
    _install_event_type_cache()
    _installed = True


def _install_action_result_validator() -> None:
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


def _install_event_type_cache() -> None:
    from rasa.shared.core.events import Event

    original = Event.resolve_by_type
    found: dict = {}

    def resolve_by_type(type_name, default=None):
        cls = found.get(type_name)
        if cls is None:
            cls = original(type_name, default)  # raises for an unknown name, as before
            if cls is not None and cls is not default:
                found[type_name] = cls
        return cls

    Event.resolve_by_type = staticmethod(resolve_by_type)
