"""Per-word confidence (confidence.py, Translator.translate_with_confidence), its interfaces
(/api/translate's `confidence`, `crossattn translate --json`), and source "auto" on
/api/translate. The page's underline is tested in test_browser.py."""

from __future__ import annotations

import json
import math

import pytest
from conftest import run_cli

from crossattn.confidence import ScoredPart, confident_translation, piece_owners

TEXTS = [
    "The cat sleeps on the sofa. My neighbour's dog barks at the postman every morning.",
    "Write to bob@example.org or visit https://example.com/a?b=1 today.",  # placeholders put back
    "I paid $5 for it.",  # the amount written in words for the model, then as "5 $"
    "THE TRAIN IS LATE.",  # translated in sentence case, given back in capitals
    "",
    "   ",
]


def check(confident, translation: str) -> None:
    assert confident.translation == translation
    assert " ".join(w.text for w in confident.words) == translation  # one entry per word, joined back
    assert [w.text for w in confident.words] == translation.split()
    assert " ".join(s.text for s in confident.sentences) == translation
    for value in [confident.confidence] + [s.confidence for s in confident.sentences] + \
            [w.probability for w in confident.words]:
        assert 0 < value <= 1
    for w in confident.words:  # a word's probability is its pieces' product
        assert w.probability == pytest.approx(math.exp(sum(w.log_probs)))


def test_words_join_back_to_the_translation(shipped_translator):
    confident = shipped_translator.translate_with_confidence(TEXTS)
    translations = shipped_translator.translate(TEXTS)
    assert len(confident) == len(TEXTS)
    for c, t in zip(confident, translations):
        check(c, t)
    assert len(confident[0].sentences) == 2
    assert confident[4].words == [] and confident[4].confidence == 1.0  # nothing written, nothing doubted
    assert "https://example.com/a?b=1" in confident[1].translation
    assert confident[3].translation == confident[3].translation.upper()
    data = confident[0].to_json()
    assert data["translation"] == translations[0]
    assert [w["text"] for w in data["words"]] == translations[0].split()
    assert all(0 < w["probability"] <= 1 for w in data["words"])


def test_unsure_words_get_lower_probabilities(shipped_translator):
    """An everyday sentence is more sure than a garbled one (what the measure is for)."""
    clear, garbled = shipped_translator.translate_with_confidence(
        ["The cat sleeps on the sofa.", "Quarterly turmoil beats earnings despite expectations of zorbs."])
    assert clear.confidence > garbled.confidence
    assert min(w.probability for w in garbled.words) < min(w.probability for w in clear.words)


def test_pieces_to_characters_and_rewritten_words():
    """Without a model: a lone "▁" goes with the next piece, two byte pieces own their one
    character, and a word that finish rewrote keeps the probabilities of what it came from."""
    vocabulary = {1: "▁J", 2: "'", 3: "ai", 4: "▁", 5: "5", 6: "▁dollars", 7: ".", 8: "<0xC3>", 9: "<0xA9>"}

    def decode(ids):
        raw = b"".join(bytes([int(vocabulary[i][3:5], 16)]) if vocabulary[i].startswith("<0x")
                       else vocabulary[i].replace("▁", " ").encode() for i in ids)
        return raw.decode("utf-8", errors="replace").lstrip(" ")

    text, owners = piece_owners(decode, [1, 2, 3, 4, 5, 6, 7])
    assert text == "J'ai 5 dollars."
    assert owners[text.index("5")] == (3, 4)  # "▁" then "5"
    assert owners[text.index("d")] == (5,)
    text, owners = piece_owners(decode, [1, 8, 9])
    assert text == "Jé" and owners[1] == (1, 2)

    log_probs = [math.log(p) for p in (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.95)]  # 7 pieces, then end of sentence
    text, owners = piece_owners(decode, [1, 2, 3, 4, 5, 6, 7])
    confident = confident_translation("J'ai 5 $.", [ScoredPart(text, owners, log_probs)])
    assert [w.text for w in confident.words] == ["J'ai", "5", "$."]
    assert [round(w.probability, 4) for w in confident.words] == [round(0.9 * 0.8 * 0.7, 4), round(0.6 * 0.5, 4),
                                                                  round(0.4 * 0.3, 4)]
    assert confident.confidence == pytest.approx(math.exp(sum(log_probs) / len(log_probs)))


def test_translate_json(shipped_translator):
    lines = ["The cat sleeps on the sofa.", "Where is the station? It is late."]
    proc = run_cli(["translate", "--json", "--dtype", "fp32", *lines])
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["translation"] for r in rows] == shipped_translator.translate(lines)
    for row in rows:
        assert set(row) == {"translation", "confidence", "sentences", "words"}
        assert " ".join(w["text"] for w in row["words"]) == row["translation"]
        assert 0 < row["confidence"] <= 1 and all(0 < w["probability"] <= 1 for w in row["words"])
    assert len(rows[1]["sentences"]) == 2
    proc = run_cli(["translate", "--json", "--format", "html", "<p>Hello</p>"])
    assert proc.returncode != 0 and len(proc.stderr.strip().splitlines()) == 1 and "--json" in proc.stderr


@pytest.fixture(scope="module")
def client(shipped_translator, shipped_fr_en_translator):
    from fastapi.testclient import TestClient

    from crossattn.server import Limits, create_app

    translators = {"en-fr": shipped_translator, "fr-en": shipped_fr_en_translator}
    with TestClient(create_app(translators, Limits(timeout_s=300), attention_process=False)) as c:
        yield c


def test_api_confidence_field(client, shipped_translator):
    text = "The cat sleeps on the sofa. It is red."
    plain = client.post("/api/translate", json={"text": text})
    assert plain.json() == {"translation": shipped_translator.translate([text])[0]}  # without asking: as before
    body = client.post("/api/translate", json={"text": text, "confidence": True}).json()
    assert body["translation"] == plain.json()["translation"] == body["confidence"]["translation"]
    assert " ".join(w["text"] for w in body["confidence"]["words"]) == body["translation"]
    assert len(body["confidence"]["sentences"]) == 2
    assert all(0 < w["probability"] <= 1 for w in body["confidence"]["words"])
    many = client.post("/api/translate", json={"texts": [text, ""], "confidence": True}).json()
    assert many["translations"] == [body["translation"], ""]
    assert many["confidences"][0] == body["confidence"] and many["confidences"][1]["words"] == []
    bad = client.post("/api/translate", json={"text": "<p>Hi</p>", "format": "html", "confidence": True})
    assert bad.status_code == 422 and "\n" not in bad.json()["detail"]


def test_api_source_auto(client):
    body = client.post("/api/translate", json={"text": "Merci beaucoup", "source": "auto", "target": "en"}).json()
    assert body["detected_language"]["language"] == "fr"
    assert "thank" in body["translation"].lower()
    # several texts: each detected; one already in the target language comes back as it is, without confidence
    body = client.post("/api/translate", json={"texts": ["Merci beaucoup", "Good night."], "source": "auto",
                                               "target": "en", "confidence": True}).json()
    assert [d["language"] for d in body["detected_languages"]] == ["fr", "en"]
    assert body["translations"][1] == "Good night." and body["confidences"][1] is None
    assert body["confidences"][0]["translation"] == body["translations"][0]
    # the same path as LibreTranslate's /translate
    libre = client.post("/translate", json={"q": "Merci beaucoup", "source": "auto", "target": "en"}).json()
    assert libre["translatedText"] == body["translations"][0]
    missing = client.post("/api/translate", json={"text": "Merci", "source": "auto"})
    assert missing.status_code == 422 and "target" in missing.json()["detail"]
