"""Performance fixes for Rasa 3.6.21 (pinned in scripts/requirements-rasa.txt), found with py-spy
under bench/load.py. Each gives the same results as the code it replaces.

- ``RemoteAction._validate_action_result`` calls ``jsonschema.validate(result, schema)``, which builds
  a validator and checks the schema on every call, and then walks Rasa's long ``oneOf`` of event
  schemas in Python (7% of the server's CPU per message even with the validator built once). The
  schema is compiled once with fastjsonschema, which accepts what is valid, each event against the
  schema of its own type only (``_by_event_type``: 0.024 ms instead of 3.07 ms a response); what it
  refuses is then judged by jsonschema with a validator built once, so an invalid response fails
  exactly as before.
- ``Event.resolve_by_type`` walks every subclass of ``Event`` (``all_subclasses``, with an
  ``inspect.isabstract`` per class) for every event it deserialises, that is for every stored event
  of a conversation on every message: 9% of the server's CPU. The class found for a type name is
  remembered. (Rasa's event classes and ours are all defined at import time, before the first
  lookup, so the first match never changes.)
- ``DaskGraphRunner.run`` hands every NLU parse and every policy prediction to dask's synchronous
  scheduler, which builds, orders and walks a task graph each time (10% of the server's CPU). The
  same nodes run here in one topological order computed once per set of targets, each getting its
  parents' outputs (or, like dask, the name of a parent that is neither a node nor an input).
"""
from __future__ import annotations

_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    _install_action_result_validator()
    _install_event_type_cache()
    _install_sequential_graph_runner()
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
            state["fast"] = _compiled(spec)
        if state["fast"] is not None:
            try:
                state["fast"](result)
                return True
            except Exception:  # noqa: BLE001 - refused (or not understood): jsonschema decides below
                pass
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


def _compiled(spec):
    try:
        import fastjsonschema
    except ImportError:  # not installed: jsonschema alone, as before
        return None
    return _by_event_type(spec, fastjsonschema.compile) or fastjsonschema.compile(spec)


def _by_event_type(spec, compile_):
    """A check that accepts exactly what ``spec`` accepts, or None when ``spec`` is not shaped like
    Rasa's response schema: an object whose ``events`` are an array of objects that must have a
    string ``event`` and match exactly one of a ``oneOf`` whose alternatives each fix ``event`` to a
    different constant. Compiled as one schema, every event is tried against all 23 alternatives
    (3.07 ms for a response of six slots and three messages); since an event can only match the
    alternative of its own type, each event is checked against that one alone (with the common
    part), which is the same verdict. An event of no known type raises, as ``oneOf`` would."""
    try:
        events = spec["properties"]["events"]
        item = events["items"]
        alternatives = item["oneOf"]
        consts = [alt["properties"]["event"]["const"] for alt in alternatives]
        if (spec.get("type") != "object" or events.get("type") != "array" or item.get("type") != "object"
                or "event" not in item.get("required", ()) or item["properties"]["event"] != {"type": "string"}
                or not all(isinstance(c, str) for c in consts) or len(set(consts)) != len(consts)):
            return None
    except (KeyError, TypeError, AttributeError):
        return None
    common = {k: v for k, v in item.items() if k != "oneOf"}
    per_type = {c: compile_({**common, "allOf": [alt]}) for c, alt in zip(consts, alternatives)}
    outer = compile_({**spec, "properties": {**spec["properties"], "events": {"type": "array"}}})

    def check(result):
        outer(result)  # the object, the responses, and that the events are an array
        for ev in result.get("events") or ():
            kind = ev.get("event") if isinstance(ev, dict) else None
            check_type = per_type.get(kind) if isinstance(kind, str) else None
            if check_type is None:
                raise ValueError(f"no event type matches {str(ev)[:80]}")
            check_type(ev)
        return result

    return check


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


def _install_sequential_graph_runner() -> None:
    from rasa.engine.exceptions import GraphRunError
    from rasa.engine.runner.dask import DaskGraphRunner

    def run(self, inputs=None, targets=None):
        run_targets = targets if targets else self._graph_schema.target_names
        plans = self.__dict__.setdefault("_sequential_plans", {})
        plan = plans.get(tuple(run_targets))
        if plan is None:
            plan = plans[tuple(run_targets)] = _plan(self._graph_schema.minimal_graph_schema(run_targets))
        results: dict = {}
        for input_name, input_value in (inputs or {}).items():
            if isinstance(input_value, str) and input_value in plan.names:
                raise GraphRunError(
                    f"Input value '{input_value}' clashes with a node name. Make sure that none of the "
                    f"input names passed to the `run` method are the same as node names in the graph schema.")
            results[input_name] = (input_name, input_value)
        try:
            for node_name, needs in plan.steps:
                results[node_name] = self._instantiated_nodes[node_name](*[results.get(n, n) for n in needs])
        except RuntimeError as e:
            raise GraphRunError("Error running runner.") from e
        return {name: value for name, value in (results[t] for t in run_targets)}

    DaskGraphRunner.run = run


class _Plan:
    __slots__ = ("steps", "names")

    def __init__(self, steps, names):
        self.steps, self.names = steps, names


def _plan(schema) -> _Plan:
    """The schema's nodes in an order where every node comes after the nodes it needs."""
    needs = {name: list(node.needs.values()) for name, node in schema.nodes.items()}
    done: set = set()
    steps: list = []

    def visit(name, path=()):
        if name in done or name not in needs:
            return
        if name in path:
            raise ValueError(f"the graph has a cycle through {name!r}")
        for parent in needs[name]:
            visit(parent, (*path, name))
        done.add(name)
        steps.append((name, needs[name]))

    for name in needs:
        visit(name)
    return _Plan(steps, set(needs))
