"""Language detection (crossattn/detect.py, issue 26): short and mixed texts in both
languages, in the library, through LibreTranslate's /detect and source=auto on a live
server, and `crossattn translate --from auto`."""

from __future__ import annotations

import httpx
import pytest
from conftest import load_bench_module, run_cli

from crossattn.detect import Detection, detect
from crossattn.errors import InputError

# The greetings of issue 26 (the detector before it answered "en", confidence 0), and
# short or mixed texts of both languages.
FRENCH = ["Merci beaucoup", "Bonne nuit.", "Salut !", "Bonjour", "À demain !", "Ça va ?", "Je t'aime.",
          "Où est la gare ?", "MERCI BEAUCOUP", "J'ai un meeting à 10h avec le manager.",
          "On se voit ce week-end pour le brunch ?", "Il fait beau et nous allons à la plage."]
ENGLISH = ["Thanks a lot", "Good night.", "Hello there!", "See you tomorrow.", "What is this?",
           "GOOD MORNING", "I had a croissant and a café au lait.", "The rendez-vous was a fiasco.",
           "The weather is nice and we are going to the beach."]


@pytest.mark.parametrize("text, language", [(t, "fr") for t in FRENCH] + [(t, "en") for t in ENGLISH])
def test_short_and_mixed_texts(text, language):
    found = detect(text)
    assert found.language == language
    assert 50.0 < found.confidence <= 100.0  # two candidates: the winner has more than half


def test_text_without_letters_has_no_language():
    # confidence 0, and the language the caller asks for: the target, so it is given back as is
    assert detect("42 !") == Detection("en", 0.0)
    assert detect("", fallback="fr") == Detection("fr", 0.0)
    assert detect("1234", ["fr", "en"]) == Detection("fr", 0.0)


@pytest.mark.parametrize("text", ["中文", "\ud800abc", "😀😀", "x" * 20000, "Ελληνικά"])
def test_any_text_gets_a_candidate(text):
    # other scripts, a lone surrogate (JSON can carry one), a very long word: an answer, no error
    found = detect(text)
    assert found.language in ("en", "fr") and 0.0 <= found.confidence <= 100.0


def test_candidates_are_checked():
    assert detect("Bonne nuit.", ["fr"]) == Detection("fr", 100.0)
    with pytest.raises(InputError, match="cannot detect xx"):
        detect("Bonne nuit.", ["fr", "xx"])
    with pytest.raises(InputError, match="not one of the candidates"):
        detect("Bonne nuit.", ["en", "fr"], fallback="de")
    with pytest.raises(InputError, match="no candidate"):
        detect("Bonne nuit.", [])


def test_library_keeps_texts_already_in_the_target_language(shipped_translator):
    texts = ["Good night.", "Merci beaucoup", "Salut !", "Where is the station?", "2024"]
    assert shipped_translator.in_target_language(texts) == [False, True, True, False, True]
    out = shipped_translator.translate(texts, keep_target_language=True)
    english = shipped_translator.translate(["Good night.", "Where is the station?"])
    assert out == [english[0], "Merci beaucoup", "Salut !", english[1], "2024"]


def test_cli_from_auto(shipped_translator):
    proc = run_cli(["translate", "--from", "auto", "--to", "fr", "--dtype", "fp32", "--device", "cpu",
                    "Bonne nuit.", "Good night.", "Salut !"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["Bonne nuit.", shipped_translator.translate(["Good night."])[0], "Salut !"]
    bad = run_cli(["evaluate", "--from", "auto", "--test", "x.tsv"])  # only translate detects
    assert bad.returncode == 2 and "invalid choice: 'auto'" in bad.stderr


@pytest.fixture(scope="module")
def live_server():
    """`crossattn serve` (both shipped directions) on loopback, as LibreTranslate's clients reach it."""
    lt_server = load_bench_module("load_test")
    proc, url = lt_server.start_server(["--threads", "1", "--dtype", "fp32"])
    try:
        yield url
    finally:
        lt_server.stop_server(proc)


@pytest.fixture(scope="module")
def french_english(shipped_fr_en_translator):
    return shipped_fr_en_translator


@pytest.mark.parametrize("text", ["Merci beaucoup", "Bonne nuit.", "Salut !"])
def test_short_french_over_http(live_server, french_english, text):
    detected = httpx.post(f"{live_server}/detect", json={"q": text}, timeout=60).json()
    assert detected[0]["language"] == "fr" and 50.0 < detected[0]["confidence"] <= 100.0
    # form bodies, as libretranslatepy sends them
    assert httpx.post(f"{live_server}/detect", data={"q": text}, timeout=60).json() == detected
    body = httpx.post(f"{live_server}/translate", json={"q": text, "source": "auto", "target": "en"},
                      timeout=60).json()
    assert body == {"translatedText": french_english.translate([text])[0], "detectedLanguage": detected[0]}
    # detected as the target language itself: given back unchanged, that language reported
    same = httpx.post(f"{live_server}/translate", json={"q": text, "source": "auto", "target": "fr"},
                      timeout=60).json()
    assert same == {"translatedText": text, "detectedLanguage": detected[0]}


def test_mixed_batch_over_http(live_server, shipped_translator):
    texts = ["Good night.", "Bonne nuit.", "Thanks a lot", "42"]
    body = httpx.post(f"{live_server}/translate", json={"q": texts, "source": "auto", "target": "fr"},
                      timeout=60).json()
    english = shipped_translator.translate(["Good night.", "Thanks a lot"])
    assert body["translatedText"] == [english[0], "Bonne nuit.", english[1], "42"]
    assert [d["language"] for d in body["detectedLanguage"]] == ["en", "fr", "en", "fr"]
    assert body["detectedLanguage"][3]["confidence"] == 0.0  # no letters: no language, kept as is
