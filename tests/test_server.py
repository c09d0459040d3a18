"""`crossattn serve`: API shapes, hostile inputs, limits, batching, and a bounded load
test against a real uvicorn server on loopback (a small run of bench/load_test.py)."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from pathlib import Path

import pytest

from fastapi.testclient import TestClient

from crossattn.cli import CLIError, build_parser
from crossattn.commands import cmd_serve
from crossattn.batcher import Batcher, Job, Worker
from crossattn.server import APIError, Limits, create_app
from crossattn.translator import Translator

from conftest import load_bench_module

REPO = Path(__file__).resolve().parents[1]
STATIC = REPO / "crossattn" / "static"


@pytest.fixture(scope="module")
def translator(shipped_translator) -> Translator:
    """What `crossattn serve` runs: the CTranslate2 Translator of the shipped model (conftest.py)."""
    return shipped_translator


@pytest.fixture(scope="module")
def client(translator):
    # a generous time limit: the first /api/attention request starts the attention process
    # (12 s, and more, on a busy 2-core test machine), and one test starts it twice
    with TestClient(create_app(translator, Limits(timeout_s=300))) as c:
        yield c


def assert_error(response, status: int, code: str | None = None, limit: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    data = response.json()
    assert isinstance(data["error"], str) and data["detail"]
    if code:
        assert data["error"] == code, data
    if limit:
        assert data["limit"] == limit and limit in data["detail"], data
    return data


# -- API shapes -----------------------------------------------------------------------
def test_translate_one_and_many(client, translator):
    texts = ["Hello.", "Where is the station?", "I like cats."]
    want = translator.translate(texts)
    assert client.post("/api/translate", json={"text": texts[1]}).json() == {"translation": want[1]}
    assert client.post("/api/translate", json={"texts": texts}).json() == {"translations": want}
    assert client.post("/api/translate", json={"texts": []}).json() == {"translations": []}
    greedy = client.post("/api/translate", json={"text": texts[1], "beam": 1}).json()
    assert greedy == {"translation": translator.translate([texts[1]], beam=1)[0]}


def test_attention_shapes_match_model(client, translator):
    text = "The cat sleeps on the sofa."
    data = client.post("/api/attention", json={"text": text}).json()
    cfg = translator.model_config
    assert data["translation"] == translator.translate([text])[0]
    assert (data["layers"], data["heads"]) == (cfg.decoder_layers, cfg.n_heads)
    src, tgt = data["source_tokens"], data["target_tokens"]
    assert src[-1] == tgt[-1] == "</s>"
    att = data["attention"]
    assert len(att) == cfg.decoder_layers and all(len(layer) == cfg.n_heads for layer in att)
    for head in (h for layer in att for h in layer):
        assert len(head) == len(tgt) and all(len(row) == len(src) for row in head)
        assert all(abs(sum(row) - 1) < 1e-2 for row in head)  # softmax rows (rounded to 4 digits)
    assert data["source_words"][:2] == ["The", "cat"] and data["source_words"][-1] == "</s>"
    assert len(data["source_word_index"]) == len(src) and len(data["target_word_index"]) == len(tgt)
    words = data["word_attention"]
    assert len(words[0][0]) == len(data["target_words"]) and len(words[0][0][0]) == len(data["source_words"])
    assert all(abs(sum(row) - 1) < 1e-2 for row in words[0][0])
    # the word alignment of the model's alignment head, numbered like the word view
    links = {(data["source_words"][i], data["target_words"][j]) for i, j in data["links"]}
    assert ("cat", "chat") in links and not any("</s>" in link for link in links)


def test_health_and_openapi(client, translator):
    health = client.get("/health").json()
    assert health["status"] == "ok"
    assert health["model"]["parameters"] == translator.torch_engine().model.num_parameters()
    assert health["model"]["config"]["n_heads"] == translator.model_config.n_heads
    assert health["limits"]["max_chars"] == Limits().max_chars
    schema = client.get("/openapi.json").json()
    assert {"/api/translate", "/api/attention", "/health"} <= set(schema["paths"])
    assert {"TranslateRequest", "AttentionResponse", "ErrorResponse"} <= set(schema["components"]["schemas"])


def test_page_is_served_and_self_contained(client):
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for name in ("app.js", "style.css", "favicon.svg"):
        assert client.get(f"/static/{name}").status_code == 200
    for path in STATIC.iterdir():  # works offline: nothing fetched from elsewhere
        text = path.read_text()
        assert "http://" not in text.replace('"http://www.w3.org/2000/svg"', "") and "https://" not in text, path


# -- hostile input --------------------------------------------------------------------
ODD_TEXTS = ["", "   ", "😀🎉👍", "مرحبا بالعالم", "שלום עולם", "a\x00b\x07c\x1b[31m", "\u202eevil\u202c",
             "e\u0301\u0301\u0301", "<script>alert(1)</script>", "\ufeff\u200b\u2028"]


def test_odd_text_translates(client):
    response = client.post("/api/translate", json={"texts": ODD_TEXTS})
    assert response.status_code == 200, response.text
    out = response.json()["translations"]
    assert len(out) == len(ODD_TEXTS) and all(isinstance(t, str) for t in out)
    assert out[0] == out[1] == ""  # empty in, empty out
    for text in ("", "😀🎉👍", "a\x00b\x07c\x1b[31m"):
        response = client.post("/api/attention", json={"text": text})
        assert response.status_code == 200, response.text
        assert response.json()["source_tokens"][-1] == "</s>"


@pytest.mark.parametrize("content,status,code", [
    (b'{"text": "Hello', 400, "invalid_json"),
    (b"", 422, "invalid_request"),
    (b"null", 422, "invalid_request"),
    (b"[1, 2]", 422, "invalid_request"),
    (b'{"text": 42}', 422, "invalid_request"),
    (b'{"texts": "Hello"}', 422, "invalid_request"),
    (b'{"texts": ["a", null]}', 422, "invalid_request"),
    (b'{"text": "a", "texts": ["b"]}', 422, "invalid_request"),
    (b'{"text": "a", "colour": "red"}', 422, "invalid_request"),
    (b'{"text": "a", "beam": "4"}', 422, "invalid_request"),
    (b'{"text": "a", "beam": 0}', 422, "invalid_request"),
    (b'{"text": "a", "alpha": NaN}', 422, "invalid_request"),
    (b'{"text": "\xff\xfe abc"}', 400, "invalid_utf8"),
    (b'{"text": "\\ud800"}', 422, "invalid_text"),
    (b"[" * 50_000, 400, None),  # nesting deep enough to break a recursive parser
])
def test_malformed_requests_are_clean_4xx(client, content, status, code):
    assert_error(client.post("/api/translate", content=content, headers={"content-type": "application/json"}), status, code)


def test_limits_name_themselves(client):
    lim = Limits()
    assert_error(client.post("/api/translate", json={"text": "a" * 100_000}), 413, "text_too_long", "max_chars")
    assert_error(client.post("/api/attention", json={"text": "a" * (lim.max_chars + 1)}), 413, "text_too_long", "max_chars")
    assert_error(client.post("/api/translate", json={"texts": ["Hi."] * (lim.max_texts + 1)}), 413, "too_many_texts", "max_texts")
    big = b'{"text": "' + b"a" * lim.max_body_bytes + b'"}'
    assert_error(client.post("/api/translate", content=big), 413, "body_too_large", "max_body_bytes")
    assert_error(client.post("/api/translate", content=big, headers={"content-length": "x"}), 400)
    assert_error(client.post("/api/translate", json={"text": "a", "beam": lim.max_beam + 1}), 422, "beam_too_large", "max_beam")


def test_limits_are_configurable_and_inclusive(translator):
    lim = Limits(max_chars=12, max_texts=2, max_body_bytes=100)
    with TestClient(create_app(translator, lim)) as c:
        assert c.post("/api/translate", json={"texts": ["Hello there.", "Hi."]}).status_code == 200  # 12 chars, 2 texts
        assert_error(c.post("/api/translate", json={"text": "Hello there!!"}), 413, "text_too_long", "max_chars")
        assert_error(c.post("/api/translate", json={"texts": ["a", "b", "c"]}), 413, "too_many_texts", "max_texts")
        assert_error(c.post("/api/translate", json={"texts": ["a" * 10] * 2, "beam": 1, "alpha": 0.5, "x": "y" * 40}),
                     413, "body_too_large", "max_body_bytes")


def test_not_found_and_wrong_method_are_json(client):
    assert_error(client.get("/nope"), 404, "not_found")
    assert_error(client.get("/api/translate"), 405, "method_not_allowed")


def test_form_encoded_json_is_accepted(client):
    # curl -d '{"text": ...}' labels the body as a form; the API reads it as JSON anyway
    r = client.post("/api/translate", content=b'{"text": "Hello."}',
                    headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and r.json()["translation"]


# -- batching, timeouts, failures -----------------------------------------------------
class FakeTranslator:
    """Records each call; 'boom' raises, 'slow' sleeps."""

    def __init__(self):
        self.calls: list[list[str]] = []

    def translate(self, texts, beam=None, alpha=None, batch_size=64, glossary=None):
        self.calls.append(list(texts))
        if "boom" in texts:
            raise RuntimeError("boom")
        if "slow" in texts:
            time.sleep(0.5)
        return [t.upper() for t in texts]


def test_batcher_groups_requests_arriving_together():
    fake = FakeTranslator()
    batcher = Batcher(fake, Limits(batch_wait_ms=200, max_batch=8))
    jobs = [Job([f"t{i}", f"u{i}"], None, None) for i in range(6)]
    for job in jobs:  # queued before the worker starts: all arrive "together"
        batcher.submit(job)
    batcher.start()
    assert [j.future.result(timeout=10) for j in jobs] == [[f"T{i}", f"U{i}"] for i in range(6)]
    assert [len(c) for c in fake.calls] == [8, 4]  # max_batch texts per call, requests kept whole
    different_beam = Job(["x"], 1, None)
    same = Job(["y"], None, None)
    batcher.submit(different_beam), batcher.submit(same)
    assert different_beam.future.result(timeout=10) == ["X"] and same.future.result(timeout=10) == ["Y"]
    assert fake.calls[-2:] in (
        [["y"], ["x"]], [["x"], ["y"]]), "different decoding settings must not share a call"
    batcher.stop()
    assert not batcher.thread.is_alive()


def test_one_bad_text_does_not_fail_its_batch_mates():
    fake = FakeTranslator()
    batcher = Batcher(fake, Limits(batch_wait_ms=200))
    good, bad = Job(["ok"], None, None), Job(["boom"], None, None)
    batcher.submit(good), batcher.submit(bad)
    batcher.start()
    assert good.future.result(timeout=10) == ["OK"]
    with pytest.raises(RuntimeError):
        bad.future.result(timeout=10)
    batcher.stop()


def test_queue_limit_gives_503():
    batcher = Batcher(FakeTranslator(), Limits(max_queue=3))
    batcher.submit(Job(["a", "b"], None, None))
    with pytest.raises(APIError) as e:
        batcher.submit(Job(["c", "d"], None, None))
    assert e.value.status == 503 and e.value.extra["limit"] == "max_queue"


class SlowTranslator:
    """The real translator, made slow for the text "Slow.", to trip the per-request timeout."""

    def __init__(self, inner: Translator):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def translate(self, texts, *args, **kwargs):
        if "Slow." in texts:
            time.sleep(1.0)
        return self.inner.translate(texts, *args, **kwargs)


def test_timeout_is_a_json_504_and_server_recovers(translator):
    with TestClient(create_app(SlowTranslator(translator), Limits(timeout_s=0.2))) as c:
        assert_error(c.post("/api/translate", json={"text": "Slow."}), 504, "timeout", "timeout_s")
        # the worker finishes the abandoned batch and then serves again
        for _ in range(200):
            answer = c.post("/api/translate", json={"text": "Hello.", "beam": 1})
            if answer.status_code != 504:
                break
        assert answer.status_code == 200 and answer.json()["translation"]


def test_unexpected_errors_are_json_500(translator):
    class Broken(SlowTranslator):
        def translate_with_attention(self, *args, **kwargs):
            raise RuntimeError("bug")

    with TestClient(create_app(Broken(translator), attention_process=False), raise_server_exceptions=False) as c:
        assert_error(c.post("/api/attention", json={"text": "Hello."}), 500, "internal_error")
        assert c.get("/health").status_code == 200


def test_concurrent_requests_are_batched_and_correct(client, translator):
    texts = ["Hello.", "I like cats.", "He is tall.", "It is raining.", "I am hungry.", "Thank you."]
    want = dict(zip(texts, translator.translate(texts)))
    before = client.get("/health").json()["stats"]["batches"]
    with concurrent.futures.ThreadPoolExecutor(len(texts)) as pool:
        got = list(pool.map(lambda t: client.post("/api/translate", json={"text": t}).json()["translation"], texts))
    assert got == [want[t] for t in texts]
    assert client.get("/health").json()["stats"]["batches"] - before < len(texts)


# -- command line -----------------------------------------------------------------------
def test_serve_command_defaults_and_bad_limits():
    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.func) == ("127.0.0.1", 8000, cmd_serve)
    args = build_parser().parse_args(["serve", "--max-chars", "0"])
    with pytest.raises(CLIError):
        cmd_serve(args)


# -- load test on a real server ---------------------------------------------------------
def test_load_real_server_good_and_bad_mixed(translator):
    lt = load_bench_module("load_test")
    reference = dict(zip(lt.SENTENCES, translator.translate(lt.SENTENCES)))
    t0 = time.perf_counter()
    # the reference's precision: int8 and fp32 may pick different words ("Hello." -> "Salut." / "Hello.")
    proc, url = lt.start_server(["--threads", "1", "--dtype", "fp32"])
    print(f"server up in {time.perf_counter() - t0:.1f} s")
    try:
        report = lt.run_load(url, reference, clients=8, requests=6, seed=1)
        assert proc.poll() is None, "server died"
    finally:
        lt.stop_server(proc)
    lt.print_report(report)
    assert report["failures"] == []
    assert report["requests"] == 48 and report["good"] > 0 and report["bad"] > 0
    assert report["server"]["status"] == "ok"
    assert report["server"]["largest_batch"] > 1, "concurrent requests should share model calls"


def test_worker_stops_with_the_app(translator):
    app = create_app(translator)
    with TestClient(app) as c:
        assert c.get("/health").json()["status"] == "ok"
        assert app.state.batcher.thread.is_alive() and app.state.attention.thread.is_alive()
    assert not app.state.batcher.thread.is_alive() and not app.state.attention.thread.is_alive()


# -- the workers: attention apart, shutdown, statistics ------------------------------------
class HeldAttention(SlowTranslator):
    """The real translator whose attention jobs wait until the test lets them go."""

    def __init__(self, inner: Translator):
        super().__init__(inner)
        self.started, self.release = threading.Event(), threading.Event()

    def translate_with_attention(self, *args, **kwargs):
        self.started.set()
        assert self.release.wait(60), "the test never let the attention job go"
        return self.inner.translate_with_attention(*args, **kwargs)


def test_translation_is_answered_while_an_attention_job_runs(translator):
    held = HeldAttention(translator)
    app = create_app(held, Limits(timeout_s=20), attention_process=False)  # to hold it, the job runs here
    with TestClient(app) as c, concurrent.futures.ThreadPoolExecutor(1) as pool:
        try:
            attention = pool.submit(c.post, "/api/attention", json={"text": "Hello.", "beam": 1})
            assert held.started.wait(60)
            # the attention job is in progress (on its own worker); a translation does not wait for it
            answer = c.post("/api/translate", json={"text": "Where is the station?"})
            assert answer.status_code == 200, answer.text
            assert answer.json()["translation"] == translator.translate(["Where is the station?"])[0]
            assert not attention.done()
        finally:
            held.release.set()
        assert attention.result(timeout=60).status_code == 200


class HeldTranslator(FakeTranslator):
    """A fake translator whose "hold" text waits until the test lets it go."""

    def __init__(self):
        super().__init__()
        self.started, self.release = threading.Event(), threading.Event()

    def translate(self, texts, beam=None, alpha=None, batch_size=64, glossary=None):
        if "hold" in texts:
            self.started.set()
            assert self.release.wait(60)
        return super().translate(texts, beam, alpha, batch_size)


@pytest.mark.parametrize("kind", ["batcher", "attention worker"])
def test_stop_answers_queued_jobs_with_503(kind):
    held = HeldTranslator()
    if kind == "batcher":
        worker = Batcher(held, Limits(batch_wait_ms=0))
    else:
        worker = Worker(held, Limits(), lambda translators, direction, job: translators[direction].translate(job.texts))
    worker.start()
    running = Job(["hold"])
    worker.submit(running)
    assert held.started.wait(30)
    queued = [Job([f"q{i}"]) for i in range(3)]
    for job in queued:
        worker.submit(job)
    stopper = threading.Thread(target=worker.stop)
    stopper.start()
    try:
        for job in queued:  # answered at once, not after the job in progress
            with pytest.raises(APIError) as e:
                job.future.result(timeout=30)
            assert (e.value.status, e.value.code) == (503, "shutting_down")
        with pytest.raises(APIError) as e:
            worker.submit(Job(["late"]))
        assert e.value.status == 503
    finally:
        held.release.set()
    stopper.join(30)
    assert running.future.result(timeout=30) == ["HOLD"]  # the job in progress finishes
    assert not worker.thread.is_alive() and worker.snapshot()["queue"] == 0


def test_health_reads_statistics_under_their_lock(translator):
    app = create_app(translator)
    with TestClient(app) as c, concurrent.futures.ThreadPoolExecutor(1) as pool:
        assert c.post("/api/translate", json={"text": "Hello."}).status_code == 200
        with app.state.batcher.lock:  # as if the worker were updating them right now
            health = pool.submit(c.get, "/health")
            # it waits for the lock (a /health that does not would be done well within this)
            assert not concurrent.futures.wait([health], timeout=1.0).done
        body = health.result(timeout=30).json()
    assert body["stats"]["batches"] >= 1 and body["stats"]["texts"] >= 1 and body["queue"] == 0
    assert set(body["attention"]) >= {"queue", "batches"}


@pytest.mark.parametrize("text", [
    "Read https://example.com/docs today. THE MEETING STARTS AT NINE. It costs $20.",
    "WHERE IS THE STATION?", "Write to ana@example.org.", "I paid $35 for it."])
def test_attention_shows_the_translation_the_user_gets(client, text):
    """URLs, capitals and dollars are handled for /api/attention as for /api/translate."""
    translated = client.post("/api/translate", json={"text": text}).json()["translation"]
    shown = client.post("/api/attention", json={"text": text}).json()
    assert shown["translation"] == translated
    assert len(shown["attention"][0][0]) == len(shown["target_tokens"])


def test_attention_process_is_started_again_after_it_dies(client):
    body = {"text": "The cat sleeps on the sofa.", "beam": 1}
    first = client.post("/api/attention", json=body)
    process = client.app.state.attention.compute.process
    assert first.status_code == 200 and process.is_alive()
    process.kill()
    process.join(30)
    again = client.post("/api/attention", json=body)
    assert again.status_code == 200 and again.json() == first.json()
    assert client.app.state.attention.compute.process.pid != process.pid


def test_stop_while_a_batch_is_being_collected():
    """stop() during the batching wait: the collected jobs run and the thread ends."""
    fake = FakeTranslator()
    batcher = Batcher(fake, Limits(batch_wait_ms=60_000, max_batch=8))
    batcher.start()
    job = Job(["a"])
    batcher.submit(job)
    for _ in range(1000):  # until the worker has taken the job and waits for batch-mates
        if batcher.queue.empty():
            break
        time.sleep(0.01)
    batcher.stop(timeout=20)
    assert job.future.result(timeout=10) == ["A"]
    assert not batcher.thread.is_alive()
