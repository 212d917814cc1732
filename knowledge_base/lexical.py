"""BM25 (Okapi) keyword ranking with language-aware tokenisation.

Tokens:
- space-separated languages (en, de, tr, ...): NFKC, lowercase (Turkish-aware: ``I`` -> ``ı``,
  ``İ`` -> ``i``), then dotless ``ı`` folded to ``i`` so that a Turkish query typed on an English
  keyboard, or a text lowercased without knowing its language, still matches; Unicode word split.
  For ``fold_langs`` (default: Turkish) Latin diacritics are folded too ("odeme basarisiz" matches
  "Ödeme başarısız"; Turkish customers often type without Turkish letters).
- Japanese (and any run of CJK ideographs / kana, whatever the language label): overlapping
  character bigrams of each run (a lone character is kept as a unigram).
- For ``ngram_langs`` (default: German), words of at least ``ngram_min_len`` (7) characters also
  yield their character 4-grams as extra terms whose idf is scaled by ``gram_weight`` (0.3): a
  cheap stand-in for compound splitting ("Inkubationszeit" shares grams with "Inkubation").
  Measured (bench/retrieval_eval.py, bench/results/retrieval.json, "bm25_ablation" and
  "bm25_in_fusion"): German COVID FAQ top-1 of BM25 alone .204 -> .234, of the fused search
  .270 -> .303; English texts are unaffected; 4-grams for Turkish did not help.

Scores are classic Okapi BM25 with the non-negative idf ``log(1 + (N - df + .5) / (df + .5))``
and a per-language average document length (a Japanese entry has many more bigrams than an
English one has words). ``scores(..., normalise=True)`` divides by the query's idf mass (terms
missing from the index count with the idf of an unseen term), giving a number that is roughly
comparable across queries: the share of the query's information that the text matches.

The state is a term -> postings (doc ids, term frequencies) table, JSON-serialisable via
``to_dict`` / ``from_dict``; scoring walks the postings of the query's terms with numpy, so a
short query over 100k texts takes well under a millisecond.
"""
from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from typing import Iterable, Sequence

import numpy as np

FORMAT = "bm25-v1"

# A run of CJK ideographs, hiragana, katakana (incl. the prolonged sound mark) or halfwidth katakana.
_CJK_RUN = re.compile(r"[\u3041-\u309f\u30a0-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
                      r"\uff66-\uff9f々〆ヵヶ]+")
_WORD = re.compile(r"\w+", re.UNICODE)
_COMBINING_DOT = "\u0307"
_GRAM_PREFIX = "\x01"  # marks character-n-gram terms so they never collide with words


def lowercase(text: str, lang: str | None = None) -> str:
    """NFKC + lowercase, Turkish-aware; dotless ı folded to i (see module docstring)."""
    text = unicodedata.normalize("NFKC", text)
    if lang and lang.lower().startswith(("tr", "az")):
        text = text.replace("I", "ı").replace("İ", "i")
    text = text.lower().replace(_COMBINING_DOT, "")  # 'İ'.lower() == 'i̇' outside Turkish
    return text.replace("ı", "i")


def _latin_fold_table() -> dict[int, str]:
    """Latin letters with diacritics -> their base letter (é -> e, ş -> s, ğ -> g, ß -> ss)."""
    table = {}
    for cp in range(0x00C0, 0x0250):
        ch = chr(cp)
        base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
        if base != ch and base.isascii() and base.isalpha():
            table[cp] = base.lower() if ch.islower() else base
    table[ord("ß")] = "ss"
    table[ord("ı")] = "i"
    return table


_FOLD = _latin_fold_table()


def fold_diacritics(text: str) -> str:
    """Strip diacritics from Latin letters only (kana with dakuten and other scripts are untouched)."""
    return text.translate(_FOLD)


def _cjk_bigrams(run: str) -> list[str]:
    if len(run) == 1:
        return [run]
    return [run[i:i + 2] for i in range(len(run) - 1)]


class Tokenizer:
    """Language-aware tokeniser (see module docstring). Stateless apart from its settings."""

    def __init__(self, ngram: int = 4, ngram_min_len: int = 7, ngram_langs: Sequence[str] = ("de",),
                 fold_langs: Sequence[str] = ("tr",)):
        self.ngram = int(ngram)
        self.ngram_min_len = int(ngram_min_len)
        self.ngram_langs = tuple(ngram_langs)
        # languages whose Latin letters lose their diacritics ("*" = every text), so that
        # "odeme basarisiz" matches "Ödeme başarısız"
        self.fold_langs = tuple(fold_langs)

    def _folds(self, lang: str | None) -> bool:
        return "*" in self.fold_langs or bool(lang and lang.split("-")[0].lower() in self.fold_langs)

    def words(self, text: str, lang: str | None = None) -> list[str]:
        """Word terms: Unicode words outside CJK runs, character bigrams inside them."""
        text = lowercase(text or "", lang)
        if self.fold_langs and self._folds(lang):
            text = fold_diacritics(text)
        out: list[str] = []
        pos = 0
        for m in _CJK_RUN.finditer(text):
            out.extend(_WORD.findall(text[pos:m.start()]))
            out.extend(_cjk_bigrams(m.group()))
            pos = m.end()
        out.extend(_WORD.findall(text[pos:]))
        return out

    def grams(self, words: Iterable[str], lang: str | None = None) -> list[str]:
        """Character n-gram terms of long words (only for ``ngram_langs``)."""
        if not self.ngram_langs or not lang or lang.split("-")[0] not in self.ngram_langs:
            return []
        n, out = self.ngram, []
        for w in words:
            if len(w) >= self.ngram_min_len and not _CJK_RUN.match(w):
                out.extend(_GRAM_PREFIX + w[i:i + n] for i in range(len(w) - n + 1))
        return out

    def tokenize(self, text: str, lang: str | None = None) -> list[str]:
        words = self.words(text, lang)
        return words + self.grams(words, lang)

    def to_dict(self) -> dict:
        return {"ngram": self.ngram, "ngram_min_len": self.ngram_min_len, "ngram_langs": list(self.ngram_langs),
                "fold_langs": list(self.fold_langs)}

    @classmethod
    def from_dict(cls, d: dict) -> "Tokenizer":
        return cls(d.get("ngram", 4), d.get("ngram_min_len", 7), d.get("ngram_langs", ("de",)),
                   d.get("fold_langs", ("tr",)))


PLAIN = Tokenizer(ngram_langs=(), fold_langs=())  # words and CJK bigrams only


_DEFAULT = Tokenizer()


def tokenize(text: str, lang: str | None = None) -> list[str]:
    """The default tokenisation (as BM25Index uses it): words / CJK bigrams, plus German 4-grams."""
    return _DEFAULT.tokenize(text, lang)


def _lang_key(lang: str | None) -> str:
    return (lang or "").split("-")[0].lower()


class BM25Index:
    """Okapi BM25 over a list of texts, each with an optional language label."""

    def __init__(self, k1: float = 1.2, b: float = 0.75, tokenizer: Tokenizer | None = None,
                 gram_weight: float = 0.3):
        self.k1 = float(k1)
        self.b = float(b)
        self.gram_weight = float(gram_weight)
        self.tokenizer = tokenizer or Tokenizer()
        self.n_docs = 0
        self.vocab: dict[str, int] = {}
        self.doc_len = np.zeros(0, dtype=np.float32)
        self.doc_lang: list[str] = []
        # postings in CSR layout: term t's docs are indices[indptr[t]:indptr[t+1]], with tfs
        self._indptr = np.zeros(1, dtype=np.int64)
        self._indices = np.zeros(0, dtype=np.int32)
        self._tf = np.zeros(0, dtype=np.float32)
        self._weights = np.zeros(0, dtype=np.float32)
        self._idf = np.zeros(0, dtype=np.float32)

    # ---- building -------------------------------------------------------------------------
    def build(self, texts: Sequence[str], langs: Sequence[str | None] | None = None) -> "BM25Index":
        langs = list(langs) if langs is not None else [None] * len(texts)
        if len(langs) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(langs)} language labels")
        postings: dict[str, list[tuple[int, int]]] = {}
        doc_len = np.zeros(len(texts), dtype=np.float32)
        for d, (text, lang) in enumerate(zip(texts, langs)):
            words = self.tokenizer.words(text, lang)
            doc_len[d] = len(words)
            counts = Counter(words)
            counts.update(self.tokenizer.grams(words, lang))
            for term, tf in counts.items():
                postings.setdefault(term, []).append((d, tf))
        terms = sorted(postings)
        indptr = np.zeros(len(terms) + 1, dtype=np.int64)
        indices, tfs = [], []
        for t, term in enumerate(terms):
            plist = postings[term]
            indptr[t + 1] = indptr[t] + len(plist)
            indices.extend(d for d, _ in plist)
            tfs.extend(f for _, f in plist)
        self._set_state(terms, indptr, np.asarray(indices, dtype=np.int32), np.asarray(tfs, dtype=np.float32),
                        doc_len, [_lang_key(lang) for lang in langs])
        return self

    def _set_state(self, terms: list[str], indptr: np.ndarray, indices: np.ndarray, tf: np.ndarray,
                   doc_len: np.ndarray, doc_lang: list[str]) -> None:
        self.vocab = {t: i for i, t in enumerate(terms)}
        self.n_docs = len(doc_len)
        self.doc_len = doc_len.astype(np.float32)
        self.doc_lang = doc_lang
        self._indptr, self._indices, self._tf = indptr, indices, tf
        n = self.n_docs
        df = np.diff(indptr).astype(np.float64)
        idf = np.log1p((n - df + 0.5) / (df + 0.5))
        is_gram = np.fromiter((t.startswith(_GRAM_PREFIX) for t in terms), dtype=bool, count=len(terms))
        idf[is_gram] *= self.gram_weight
        self._idf = idf.astype(np.float32)
        # average length per language label (all docs when a label has none)
        avg = np.ones(n, dtype=np.float32)
        if n:
            langs = np.asarray(doc_lang, dtype=object)
            for lang in set(doc_lang):
                mask = langs == lang
                avg[mask] = max(1.0, float(doc_len[mask].mean()))
        norm = self.k1 * (1.0 - self.b + self.b * self.doc_len / avg)  # per doc
        term_of = np.repeat(np.arange(len(terms)), np.diff(indptr))
        self._weights = (self._idf[term_of] * tf * (self.k1 + 1.0) / (tf + norm[indices])).astype(np.float32)

    # ---- scoring --------------------------------------------------------------------------
    def unseen_idf(self) -> float:
        return float(math.log1p((self.n_docs + 0.5) / 0.5))

    def query_terms(self, query: str, lang: str | None = None) -> list[str]:
        return self.tokenizer.tokenize(query, lang)

    def scores(self, query: str, lang: str | None = None, normalise: bool = False) -> np.ndarray:
        """One BM25 score per indexed text (0 when no term matches).

        With ``normalise``, scores are divided by the query's idf mass, each distinct query term
        counted once (unknown terms with the idf of an unseen term).
        """
        out = np.zeros(self.n_docs, dtype=np.float32)
        terms = set(self.query_terms(query, lang))
        mass = 0.0
        for term in terms:
            t = self.vocab.get(term)
            if t is None:
                mass += self.unseen_idf() * (self.gram_weight if term.startswith(_GRAM_PREFIX) else 1.0)
                continue
            mass += float(self._idf[t])
            s, e = self._indptr[t], self._indptr[t + 1]
            out[self._indices[s:e]] += self._weights[s:e]
        if normalise:
            out /= max(mass, 1e-9)
        return out

    def top(self, query: str, lang: str | None = None, k: int = 10, normalise: bool = False
            ) -> tuple[np.ndarray, np.ndarray]:
        """Indices and scores of the ``k`` best texts, best first (ties: lower index first)."""
        s = self.scores(query, lang, normalise=normalise)
        k = min(k, self.n_docs)
        if k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        idx = np.argpartition(-s, k - 1)[:k] if k < self.n_docs else np.arange(self.n_docs)
        idx = idx[np.lexsort((idx, -s[idx]))]
        return idx, s[idx]

    # ---- persistence ----------------------------------------------------------------------
    def to_dict(self) -> dict:
        """JSON-serialisable state (plain lists and numbers)."""
        terms = [None] * len(self.vocab)
        for term, t in self.vocab.items():
            terms[t] = term
        return {
            "format": FORMAT,
            "k1": self.k1, "b": self.b, "gram_weight": self.gram_weight,
            "tokenizer": self.tokenizer.to_dict(),
            "terms": terms,
            "indptr": self._indptr.tolist(),
            "indices": self._indices.tolist(),
            "tf": [int(x) for x in self._tf.tolist()],
            "doc_len": [int(x) for x in self.doc_len.tolist()],
            "doc_lang": list(self.doc_lang),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "BM25Index":
        if d.get("format") != FORMAT:
            raise ValueError(f"unknown BM25 state format {d.get('format')!r}, expected {FORMAT!r}")
        idx = cls(k1=d["k1"], b=d["b"], tokenizer=Tokenizer.from_dict(d.get("tokenizer") or {}),
                  gram_weight=d.get("gram_weight", 0.3))
        idx._set_state(list(d["terms"]), np.asarray(d["indptr"], dtype=np.int64),
                       np.asarray(d["indices"], dtype=np.int32), np.asarray(d["tf"], dtype=np.float32),
                       np.asarray(d["doc_len"], dtype=np.float32), list(d["doc_lang"]))
        return idx

    def __len__(self) -> int:
        return self.n_docs
