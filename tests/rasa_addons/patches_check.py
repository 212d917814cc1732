"""Run in the Rasa environment by test_patches.py: the action-result check of rasa_addons.patches
must give jsonschema's verdict on Rasa's response schema for every response, valid or not. The
responses are built from every event type Rasa knows (as Rasa serialises them) and then broken in
many ways by a seeded random walk. Prints one JSON object of findings."""
from __future__ import annotations

import copy
import json
import random
import sys
import time

import fastjsonschema
from jsonschema.validators import validator_for
from rasa.core.actions.action import RemoteAction
from rasa.shared.core.events import (ActionExecuted, ActionExecutionRejected, ActionReverted, ActiveLoop,
                                     AgentUttered, AllSlotsReset, BotUttered, ConversationPaused,
                                     ConversationResumed, EntitiesAdded, FollowupAction, LoopInterrupted,
                                     ReminderCancelled, ReminderScheduled, Restarted, SessionStarted, SlotSet,
                                     StoryExported, UserUttered, UserUtteranceReverted)

import rasa_addons  # noqa: F401 - installs the patches, as in the server
from rasa_addons.patches import _compiled

N = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
SAMPLES = [
    UserUttered("hi", {"name": "greet", "confidence": 0.9}, [{"entity": "language", "value": "de", "start": 0, "end": 2}],
                parse_data={"intent_ranking": [{"name": "greet", "confidence": 0.9}]}, metadata={"channel": "rest"}),
    ActionExecuted("action_answer_from_kb", policy="RulePolicy", confidence=1.0), SlotSet("kb_shown", ["a", "b"]),
    SlotSet("handoff_reason", None), EntitiesAdded([{"entity": "email", "value": "a@b.co"}]), BotUttered("hello", {"buttons": []}),
    ReminderScheduled("remind", trigger_date_time=__import__("datetime").datetime(2026, 1, 1)), ReminderCancelled(name="remind"),
    ActionExecutionRejected("handoff_form"), LoopInterrupted(True), ActiveLoop("handoff_form"), AllSlotsReset(),
    ConversationResumed(), ConversationPaused(), FollowupAction("action_handoff"), StoryExported(), Restarted(),
    ActionReverted(), UserUtteranceReverted(), SessionStarted(), AgentUttered("agent says hi"),
]
WEIRD = [None, True, 0, 1.5, -3, "", "x", "user", "slot", [], {}, ["user"], {"event": "user"}, float("inf")]


def mutate(obj, rng: random.Random):
    """One random change somewhere inside ``obj`` (a copy): a value replaced, a key dropped or added."""
    obj = copy.deepcopy(obj)
    path, node = [], obj
    while isinstance(node, (dict, list)) and node and rng.random() < 0.7:
        key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
        path.append((node, key))
        node = node[key]
    if not path:
        return rng.choice(WEIRD)
    parent, key = path[-1]
    roll = rng.random()
    if roll < 0.55:
        parent[key] = rng.choice(WEIRD)
    elif roll < 0.8 and isinstance(parent, dict):
        del parent[key]
    elif isinstance(parent, dict):
        parent[rng.choice(["event", "name", "value", "text", "extra", "parse_data", "timestamp"])] = rng.choice(WEIRD)
    else:
        parent.append(rng.choice(WEIRD))
    return obj


def main() -> None:
    spec = RemoteAction.action_response_format_spec()
    slow = validator_for(spec)(spec)
    fast = _compiled(spec)
    rng = random.Random(20261203)
    base = [ev.as_dict() for ev in SAMPLES]
    kinds = sorted({ev["event"] for ev in base})
    cases = [{"events": base, "responses": [{"text": "a"}, {"custom": {"x": 1}}]}, {}, {"events": []}]
    while len(cases) < N:
        resp = {"events": rng.sample(base, rng.randint(0, 6)), "responses": [{"text": "t"}] * rng.randint(0, 3)}
        for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
            resp = mutate(resp, rng)
        cases.append(resp)

    def verdict(check, case) -> bool:
        try:
            check(case)
            return True
        except Exception:  # noqa: BLE001 - any refusal
            return False

    disagree, valid = [], 0
    for case in cases:
        a, b = verdict(fast, case), slow.is_valid(case)
        valid += b
        if a != b:
            disagree.append(case)
    typical = {"events": [SlotSet(n, v).as_dict() for n, v in [("kb_last_query", "q"), ("kb_awaiting_feedback", True),
               ("kb_shown", ["a"]), ("kb_candidates", []), ("human_offered", False), ("handoff_reason", None)]],
               "responses": [{"text": "x", "buttons": [], "response": "utter_kb_answer"}] * 3}
    whole = fastjsonschema.compile(spec)
    timings = {}
    for name, check in (("by_event_type", fast), ("one_schema", whole)):
        t0 = time.perf_counter()
        for _ in range(300):
            check(typical)
        timings[name] = round((time.perf_counter() - t0) / 300 * 1000, 3)
    print(json.dumps({"cases": len(cases), "valid": valid, "invalid": len(cases) - valid,
                      "disagree": len(disagree), "first_disagreement": str(disagree[:1])[:500],
                      "event_types": kinds, "by_event_type_used": fast.__name__ == "check",
                      "ms_per_typical_response": timings}))


if __name__ == "__main__":
    main()
