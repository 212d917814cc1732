"""A whitespace tokenizer that also splits runs of different scripts, so Japanese (no spaces)
gets word-like tokens: 請求書はどこでダウンロードできますか -> 請求書|は|どこで|ダウンロード|できますか.
Latin-script text is tokenised exactly as by Rasa's WhitespaceTokenizer."""
from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.tokenizers.tokenizer import Token
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
from rasa.shared.nlu.training_data.message import Message

# One run per script: kanji, hiragana, katakana (with the long-vowel mark), everything else.
_RUNS = re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf々〆]+|[\u3040-\u309f]+|[\u30a0-\u30ff\u31f0-\u31ffー]+|[^\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff々〆ー]+")
_CJK = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff]")
_PUNCT = re.compile(r"^[\s、。！？「」『』（）・…,.!?()]+$")


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER, is_trainable=False)
class ScriptAwareTokenizer(WhitespaceTokenizer):
    @staticmethod
    def not_supported_languages() -> Optional[List[Text]]:
        return None

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "ScriptAwareTokenizer":
        return cls(config)

    def tokenize(self, message: Message, attribute: Text) -> List[Token]:
        tokens = super().tokenize(message, attribute)
        out: List[Token] = []
        for tok in tokens:
            if not _CJK.search(tok.text):
                out.append(tok)
                continue
            for m in _RUNS.finditer(tok.text):
                piece = m.group(0)
                if _PUNCT.match(piece):
                    continue
                start = tok.start + m.start()
                out.append(Token(piece, start, start + len(piece)))
        return out or tokens
