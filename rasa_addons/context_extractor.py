"""The conversation's context from the gateway's metadata, as entities: language, channel and
verified identity. Slots map from these entities (domain.yml), so Rasa fills them itself after every
user message, without a call to the action server (a custom slot mapping made one call per message:
about a sixth of Rasa's and the action server's CPU per message, measured with py-spy under
bench/load.py).

The gateway decides the language (with the conversation's history and the channel's hint) and
sends it as ``language_detected``; Rasa's REST channel is private, so a message without the
gateway's metadata leaves the slots as they are.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import ENTITIES
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

_LANGUAGE = re.compile(r"^[a-z]{2,3}$")
_CHANNEL = re.compile(r"^[a-z0-9_]{1,32}$")


def context_values(metadata: Any) -> Dict[Text, Text]:
    """What the metadata says, checked: an entity value is stored in the tracker on every turn."""
    if not isinstance(metadata, dict):
        return {}
    out: Dict[Text, Text] = {}
    lang = metadata.get("language_detected") or metadata.get("language")
    if isinstance(lang, str) and _LANGUAGE.match(lang):
        out["language"] = lang
    channel = metadata.get("channel")
    if isinstance(channel, str) and _CHANNEL.match(channel):
        out["channel"] = channel
    verified = metadata.get("verified_user_id")
    if isinstance(verified, str) and verified.strip():
        out["verified_user_id"] = verified.strip()[:128]
    return out


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=False)
class MetadataContextExtractor(GraphComponent, EntityExtractorMixin):
    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {}

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "MetadataContextExtractor":
        return cls()

    @staticmethod
    def required_packages() -> List[Text]:
        return []

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            found = context_values(message.get("metadata"))
            if not found:
                continue
            # Not in the text: start and end are 0 (nothing reads them for these entities).
            entities = [{"entity": name, "value": value, "start": 0, "end": 0, "confidence_entity": 1.0}
                        for name, value in found.items()]
            message.set(ENTITIES, message.get(ENTITIES, []) + self.add_extractor_name(entities),
                        add_to_output=True)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data
