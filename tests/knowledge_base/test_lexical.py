import json

import numpy as np
import pytest

from knowledge_base.lexical import PLAIN, BM25Index, Tokenizer, fold_diacritics, lowercase, tokenize


# ---- tokenisation ---------------------------------------------------------------------------------
def test_english_lowercase_and_word_split():
    assert tokenize("How do I CANCEL my sub-scription? (2FA)", "en") == \
        ["how", "do", "i", "cancel", "my", "sub", "scription", "2fa"]


def test_german_keeps_umlauts_and_eszett_and_splits_punctuation():
    assert Tokenizer().words("Wie kündige ich mein Abo? Straße, Größe!", "de") == \
        ["wie", "kündige", "ich", "mein", "abo", "straße", "größe"]
    # short German words yield no 4-grams; the plain tokeniser never does
    assert tokenize("Wo ist mein Abo?", "de") == ["wo", "ist", "mein", "abo"]
    assert PLAIN.tokenize("Inkubationszeit", "de") == ["inkubationszeit"]


def test_turkish_dotted_and_dotless_i():
    # Turkish lowercasing: I -> ı, İ -> i; then ı is folded to i so ASCII-typed Turkish matches
    assert PLAIN.tokenize("İSTANBUL IĞDIR ılık", "tr") == ["istanbul", "iğdir", "ilik"]
    assert PLAIN.tokenize("istanbul Igdir ilik", "tr") == ["istanbul", "igdir", "ilik"]
    assert tokenize("İstanbul", "en") == ["istanbul"]  # no stray combining dot outside Turkish
    assert lowercase("SİPARİŞİM", "tr") == "siparişim"
    assert lowercase("KAPIDA", "tr") == "kapida"
    # by default Turkish also loses its diacritics, so text typed on an English keyboard matches
    assert tokenize("Ödeme BAŞARISIZ, siparişim İPTAL", "tr") == ["odeme", "basarisiz", "siparisim", "iptal"]
    assert tokenize("odeme basarisiz siparisim iptal", "tr") == ["odeme", "basarisiz", "siparisim", "iptal"]
    # ... but German keeps its umlauts (schon != schön)
    assert tokenize("schön", "de") == ["schön"]


def test_diacritic_folding_leaves_other_scripts_alone():
    assert fold_diacritics("Straße Çay ğüşıöç") == "Strasse Cay gusioc"
    assert fold_diacritics("がぎ パン") == "がぎ パン"  # kana with (han)dakuten untouched


def test_japanese_character_bigrams_and_mixed_scripts():
    assert tokenize("解約したい", "ja") == ["解約", "約し", "した", "たい"]
    assert tokenize("Brewboxの定期便", "ja") == ["brewbox", "の定", "定期", "期便"]
    assert tokenize("猫", "ja") == ["猫"]
    # full-width Latin is NFKC-normalised; katakana long vowel mark stays inside the run
    assert tokenize("ＡＢＣ コーヒー", "ja") == ["abc", "コー", "ーヒ", "ヒー"]
    # CJK runs are bigrammed whatever the language label says
    assert tokenize("定期便", None) == ["定期", "期便"]


def test_character_ngrams_only_for_configured_languages_and_long_words():
    tok = Tokenizer()  # default: 4-grams of German words of >= 7 letters
    terms = tok.tokenize("Inkubationszeit kurz", "de")
    assert terms[:2] == ["inkubationszeit", "kurz"]
    grams = [t[1:] for t in terms[2:]]
    assert grams[0] == "inku" and grams[-1] == "zeit" and len(grams) == len("inkubationszeit") - 3
    assert tok.tokenize("Inkubationszeit", "en") == ["inkubationszeit"]
    assert tok.tokenize("Ansteckungsgefahr", None) == ["ansteckungsgefahr"]
    assert Tokenizer(ngram_min_len=20).tokenize("Inkubationszeit", "de") == ["inkubationszeit"]


def test_german_compound_matches_its_parts_through_grams():
    idx = BM25Index().build(["Wie lange dauert die Inkubationszeit?", "Wo kann ich mich testen lassen?"], ["de", "de"])
    s = idx.scores("Inkubation", "de")
    assert s[0] > 0 and s[1] == 0
    plain = BM25Index(tokenizer=PLAIN).build(["Wie lange dauert die Inkubationszeit?"], ["de"])
    assert plain.scores("Inkubation", "de")[0] == 0


# ---- scoring ----------------------------------------------------------------------------------------
DOCS = [
    ("How do I cancel my subscription?", "en"),
    ("How do I pause my subscription?", "en"),
    ("How do I change my delivery address for my subscription and my account and my profile?", "en"),
    ("Wie kündige ich mein Abo?", "de"),
    ("Aboneliğimi nasıl iptal ederim?", "tr"),
    ("サブスクリプションを解約するには？", "ja"),
]


@pytest.fixture()
def index():
    return BM25Index().build([d for d, _ in DOCS], [lang for _, lang in DOCS])


def test_scores_rank_the_matching_text_first(index):
    s = index.scores("cancel subscription", "en")
    assert s.shape == (len(DOCS),)
    assert int(np.argmax(s)) == 0
    assert s[1] > 0 and s[0] > s[1]  # "subscription" alone matches less than "cancel subscription"
    assert s[3] == s[4] == s[5] == 0


def test_rare_terms_outweigh_common_ones_and_length_is_normalised(index):
    s = index.scores("my pause", "en")
    assert int(np.argmax(s)) == 1  # "pause" is rare, "my" is everywhere
    s = index.scores("subscription", "en")
    assert s[0] > s[2]  # same tf, the longer text scores lower


def test_each_language_finds_its_text(index):
    assert int(np.argmax(index.scores("Abo kündigen kündige", "de"))) == 3
    assert int(np.argmax(index.scores("ABONELİĞİMİ İPTAL", "tr"))) == 4
    assert int(np.argmax(index.scores("aboneligimi iptal", "tr"))) == 4  # typed without Turkish letters
    assert int(np.argmax(index.scores("解約したい", "ja"))) == 5


def test_normalised_scores_are_comparable_and_unknown_words_lower_them(index):
    full = index.scores("cancel subscription", "en", normalise=True)
    diluted = index.scores("cancel subscription zebra", "en", normalise=True)
    assert 0 < full[0]
    assert diluted[0] < full[0]
    assert np.all(index.scores("zebra giraffe", "en", normalise=True) == 0)


def test_top_returns_best_first(index):
    idx, scores = index.top("how do I cancel my subscription", "en", k=3)
    assert idx[0] == 0 and len(idx) == 3
    assert list(scores) == sorted(scores, reverse=True)


def test_round_trip_through_json_gives_identical_scores(index):
    state = json.loads(json.dumps(index.to_dict()))
    again = BM25Index.from_dict(state)
    for q, lang in (("cancel subscription", "en"), ("Abo kündigen", "de"), ("解約", "ja"), ("iptal", "tr")):
        np.testing.assert_array_equal(again.scores(q, lang), index.scores(q, lang))
    assert (again.k1, again.b) == (index.k1, index.b)


def test_round_trip_keeps_tokenizer_settings():
    idx = BM25Index(k1=0.9, b=0.4, tokenizer=Tokenizer(4, 7, ("de",), ()), gram_weight=0.5)
    idx.build(["Inkubationszeit und Ansteckung", "Quarantäne"], ["de", "de"])
    again = BM25Index.from_dict(json.loads(json.dumps(idx.to_dict())))
    assert again.tokenizer.to_dict() == idx.tokenizer.to_dict()
    np.testing.assert_allclose(again.scores("Inkubation", "de"), idx.scores("Inkubation", "de"))
    assert again.scores("Inkubation", "de")[0] > 0  # matched through the 4-grams only


def test_empty_and_mismatched_inputs():
    idx = BM25Index().build([], [])
    assert idx.scores("anything", "en").shape == (0,)
    with pytest.raises(ValueError):
        BM25Index().build(["a", "b"], ["en"])
    with pytest.raises(ValueError):
        BM25Index.from_dict({"format": "something-else"})


def test_ranks_the_matching_text_first_among_100k():
    """At scale the matching text still wins: every query's source text ranks first and texts that share
    no word with the query score 0 (speed on this set is measured by bench/lexical_speed.py)."""
    rng = np.random.default_rng(0)
    vocab = np.array([f"w{i}" for i in range(20000)])
    words = vocab[rng.integers(0, len(vocab), size=(100_000, 12))]
    texts = [" ".join(row) for row in words.tolist()]
    idx = BM25Index().build(texts, ["en"] * len(texts))
    for source in rng.integers(0, len(texts), size=20):
        query = " ".join(words[source][:6])
        s = idx.scores(query, "en")
        assert int(np.argmax(s)) == source
        shares = np.isin(words, words[source][:6]).any(axis=1)
        assert (s[~shares] == 0).all() and (s[shares] > 0).all()