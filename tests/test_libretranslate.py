"""LibreTranslate's API in `crossattn serve`: a real client nobody here wrote
(`libretranslatepy`, from PyPI) against a live server on loopback, and the API's
errors (400/403/429 as {"error": ...}) in process."""

from __future__ import annotations

import urllib.error

import pytest
from fastapi.testclient import TestClient

from crossattn.libretranslate import Access, detect_language, read_api_keys
from crossattn.server_api import APIError
from crossattn.server import create_app
from crossattn.translator import Translator

from conftest import load_bench_module



@pytest.fixture(scope="module")
def translator(shipped_translator) -> Translator:
    return shipped_translator  # loaded once per session (conftest.py)


@pytest.fixture(scope="module")
def client(translator):
    with TestClient(create_app(translator, access=Access({"good-key": 0, "slow-key": 2}, req_limit=0))) as c:
        yield c


def test_libretranslatepy_client_against_a_live_server(translator, tmp_path):
    libretranslatepy = pytest.importorskip("libretranslatepy")
    keys = tmp_path / "keys.txt"
    keys.write_text("# key  requests per minute\nsecret-1\nlimited-1 2\n")
    lt_server = load_bench_module("load_test")
    proc, url = lt_server.start_server(["--threads", "1", "--api-keys", str(keys), "--require-api-key"])
    try:
        client = libretranslatepy.LibreTranslateAPI(url, api_key="secret-1")
        text = "I went to the market this morning. It was raining, so I took an umbrella."
        assert client.translate(text, "en", "fr") == translator.translate([text])[0]
        codes = {lang["code"]: lang for lang in client.languages()}
        assert "fr" in codes["en"]["targets"]
        assert client.detect("Je ne sais pas ce que tu veux dire.")[0]["language"] == "fr"
        # a wrong key and a missing key are refused with 403
        for key in ("wrong", None):
            with pytest.raises(urllib.error.HTTPError) as e:
                libretranslatepy.LibreTranslateAPI(url, api_key=key).translate("Hello.", "en", "fr")
            assert e.value.code == 403
        # a key's own limit: the third request within a minute gets 429
        limited = libretranslatepy.LibreTranslateAPI(url, api_key="limited-1")
        limited.translate("Hello.", "en", "fr")
        limited.translate("Hello.", "en", "fr")
        with pytest.raises(urllib.error.HTTPError) as e:
            limited.translate("Hello.", "en", "fr")
        assert e.value.code == 429 and "limit" in e.value.read().decode()
        assert proc.poll() is None, "server died"
    finally:
        lt_server.stop_server(proc)


def test_translate_json_and_form_bodies(client, translator):
    texts = ["Hello.", "Where is the station? It is late."]
    want = translator.translate(texts)
    assert client.post("/translate", data={"q": texts[0], "source": "en", "target": "fr"}).json() == \
        {"translatedText": want[0]}
    assert client.post("/translate", json={"q": texts, "source": "en", "target": "fr",
                                           "format": "text"}).json() == {"translatedText": want}


def test_alternatives_and_auto_detection(client, translator):
    body = client.post("/translate", json={"q": "Good night.", "source": "auto", "target": "fr",
                                           "alternatives": 2}).json()
    assert body["translatedText"] == translator.translate(["Good night."], beam=4)[0]
    assert len(body["alternatives"]) == 2 and all(isinstance(a, str) for a in body["alternatives"])
    assert body["detectedLanguage"]["language"] == "en"
    # text already in the target language comes back unchanged
    same = client.post("/translate", json={"q": "Je suis très content de te voir.", "source": "auto", "target": "fr"})
    assert same.json()["translatedText"] == "Je suis très content de te voir."


@pytest.mark.parametrize("params, message", [
    ({"source": "en", "target": "fr"}, "Invalid request: missing q parameter"),
    ({"q": [], "source": "en", "target": "fr"}, "Invalid request: missing q parameter"),
    ({"q": "Hi", "target": "fr"}, "Invalid request: missing source parameter"),
    ({"q": "Hi", "source": "en"}, "Invalid request: missing target parameter"),
    ({"q": "Hi", "source": "en", "target": "zz"}, "zz is not supported"),
    ({"q": "Hi", "source": "en", "target": "fr", "format": "xml"}, "xml format is not supported"),
    ({"q": "Hi", "source": "en", "target": "fr", "format": "html", "alternatives": 1},
     "Invalid request: alternatives are given for format=text only"),
    ({"q": "Hi", "source": "en", "target": "fr", "alternatives": "abc"},
     "Invalid request: alternatives parameter is not a number"),
    ({"q": "x" * 5000, "source": "en", "target": "fr"}, None),
    ({"q": 5, "source": "en", "target": "fr"}, "Invalid request: missing q parameter"),
])
def test_bad_requests_are_400_with_an_error_message(client, params, message):
    response = client.post("/translate", json=params)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert isinstance(error, str) and (message is None or error == message)


@pytest.mark.parametrize("body, content_type", [
    (b"{not json", "application/json"), (b"[1, 2]", "application/json"), (b"\xff\xfe", "application/json"),
    (b"q=%ZZ&source=en", "application/x-www-form-urlencoded"),
])
def test_malformed_bodies_are_400_never_500(client, body, content_type):
    response = client.post("/translate", content=body, headers={"content-type": content_type})
    assert response.status_code == 400, response.text
    assert "error" in response.json()


def test_api_keys_and_request_limit(client):
    ok = client.post("/translate", data={"q": "Hi.", "source": "en", "target": "fr", "api_key": "good-key"})
    assert ok.status_code == 200
    bad = client.post("/translate", data={"q": "Hi.", "source": "en", "target": "fr", "api_key": "nope"})
    assert bad.status_code == 403 and bad.json() == {"error": "Invalid API key"}
    codes = [client.post("/translate", data={"q": "Hi.", "source": "en", "target": "fr",
                                             "api_key": "slow-key"}).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def test_per_client_limit_without_a_key(translator):
    with TestClient(create_app(translator, access=Access(req_limit=1))) as c:
        first = c.post("/translate", json={"q": "Hi.", "source": "en", "target": "fr"})
        second = c.post("/translate", json={"q": "Hi.", "source": "en", "target": "fr"})
    assert (first.status_code, second.status_code) == (200, 429)
    assert second.json()["error"].startswith("Too many requests")


def test_a_required_key_is_required_on_our_api_too(translator):
    """--require-api-key closes /api/* as it closes LibreTranslate's routes (before, /api/translate
    answered anyone), and /api/*'s key counts against its request limit in the same table."""
    access = Access({"good-key": 0, "slow-key": 1}, require_key=True)
    with TestClient(create_app(translator, access=access, attention_process=False, files=False)) as c:
        missing = c.post("/api/translate", json={"text": "Hi."})
        wrong = c.post("/api/translate", json={"text": "Hi.", "api_key": "nope"})
        attention = c.post("/api/attention", json={"text": "Hi."})
        ok = c.post("/api/translate", json={"text": "Hi.", "api_key": "good-key"})
        limited = [c.post(path, json={"text": "Hi.", "api_key": "slow-key"}).status_code
                   for path in ("/api/translate", "/api/attention")]
        lt = c.post("/translate", json={"q": "Hi.", "source": "en", "target": "fr"})
    assert (missing.status_code, wrong.status_code, attention.status_code, lt.status_code) == (403, 403, 403, 403)
    assert missing.json()["error"] == "missing_api_key" and wrong.json()["error"] == "invalid_api_key"
    assert ok.status_code == 200 and ok.json()["translation"] == translator.translate(["Hi."])[0]
    assert limited == [200, 429]


def test_api_keys_file_errors_name_the_line(tmp_path):
    path = tmp_path / "keys.txt"
    path.write_text("a 10\nb\n\n# c\n")
    assert read_api_keys(path) == {"a": 10, "b": 0}
    path.write_text("a ten\n")
    with pytest.raises(ValueError, match=r"keys.txt:1: expected KEY"):
        read_api_keys(path)


@pytest.mark.parametrize("text, lang", [
    ("The weather is nice and we are going to the beach.", "en"),
    ("Il fait beau et nous allons à la plage.", "fr"),
    ("Où est la gare ?", "fr"),
    ("What is this?", "en"),
])
def test_detect_language(text, lang):
    assert detect_language(text, ["en", "fr"])[0] == lang


def test_request_limit_table_forgets_clients():
    now = [1000.0]
    access = Access(req_limit=2, max_clients=100, clock=lambda: now[0])
    for i in range(1000):  # a flood of distinct addresses within one minute
        access.admit("", f"10.0.{i // 256}.{i % 256}")
    assert access.clients_remembered == 100
    with pytest.raises(APIError) as e:  # the most recent ones still count
        access.admit("", "10.0.3.231")
        access.admit("", "10.0.3.231")
    assert e.value.status == 429
    now[0] += 61  # a minute later every window is empty: the next request forgets them all
    access.admit("", "192.0.2.1")
    assert access.clients_remembered == 1


def test_api_key_windows_survive_a_client_flood():
    now = [1000.0]
    access = Access({"k": 1}, req_limit=5, max_clients=10, clock=lambda: now[0])
    access.admit("k", "192.0.2.1")
    for i in range(100):
        access.admit("", f"10.0.0.{i}")
    with pytest.raises(APIError) as e:
        access.admit("k", "192.0.2.1")
    assert e.value.status == 429
