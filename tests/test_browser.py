"""The page in a real headless Chromium: translate, heatmap, hover highlights, selectors.

Needs the `playwright` Python package (test extra) and a Chromium binary: Debian's
/usr/bin/chromium (.ci/run installs it; Playwright's own browser download is not
used). Set UPDATE_SCREENSHOTS=1 to refresh docs/img/serve.png.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install -e '.[test]')")

from crossattn.server import create_app  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM") or next(
    (p for p in (shutil.which("chromium"), shutil.which("chromium-browser"), shutil.which("google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium)")

SENTENCE = "The cat sleeps on the red sofa."


@contextmanager
def serving(app):
    """A real uvicorn server for ``app`` in a thread of this process, on a free loopback port."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=30)


def open_page(browser, url: str):
    """A new page of ``browser`` at ``url``; ``page.errors``: its script errors and logged ones."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
    page.goto(url + "/")
    return page


@pytest.fixture(scope="module")
def server(shipped_translator):
    with serving(create_app(shipped_translator)) as url:
        yield url


@pytest.fixture(scope="module")
def page(server):
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
            "--disable-extensions", "--no-first-run"])
        yield open_page(browser, server)
        browser.close()


def css_weight(page, selector: str) -> float:
    return float(page.eval_on_selector(selector, "el => el.style.getPropertyValue('--w') || '0'"))


def test_translate_heatmap_and_hover(page, server, tmp_path):
    api = httpx.post(server + "/api/attention", json={"text": SENTENCE}, timeout=60).json()
    page.fill("#source", SENTENCE)
    page.press("#source", "Enter")
    page.wait_for_selector("#heatmap .cell", timeout=60_000)
    assert page.text_content("#translation") == api["translation"]
    src_words, tgt_words = api["source_words"], api["target_words"]
    assert page.locator("#heatmap .cell").count() == len(src_words) * len(tgt_words)
    assert page.locator("#src-words .word").all_text_contents() == src_words
    assert page.locator("#tgt-words .word").all_text_contents() == tgt_words
    # the word alignment is outlined over the heatmap, and can be turned off and on
    assert api["links"] and page.locator("#heatmap .link").count() == len(api["links"])
    page.uncheck("#show-links")
    assert page.locator("#heatmap .link").count() == 0
    page.check("#show-links")
    assert page.locator("#heatmap .link").count() == len(api["links"])

    # hover a target word: source words light up, the most attended one fully
    layers = api["word_attention"]
    row = 1
    avg = [sum(h[row][j] for layer in layers for h in layer) for j in range(len(src_words))]
    best = avg.index(max(avg))
    page.hover(f'#tgt-words .word[data-index="{row}"]')
    assert "active" in page.get_attribute(f'#tgt-words .word[data-index="{row}"]', "class")
    top = f'#src-words .word[data-index="{best}"]'
    assert "lit" in page.get_attribute(top, "class").split()
    assert css_weight(page, top) == pytest.approx(1.0)
    others = [css_weight(page, f'#src-words .word[data-index="{j}"]') for j in range(len(src_words)) if j != best]
    assert max(others) < 1.0
    assert page.locator("#heatmap .band").count() == 1  # the row is outlined
    assert "on" in page.get_attribute(f'#heatmap .label[data-side="tgt"][data-index="{row}"]', "class").split()
    page.wait_for_timeout(300)  # let the highlight transition finish before the picture
    page.screenshot(path=str(tmp_path / "serve.png"), full_page=True)
    if os.environ.get("UPDATE_SCREENSHOTS"):
        (REPO / "docs" / "img").mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(REPO / "docs" / "img" / "serve.png"), full_page=True)

    # hover a source word: the target words attending to it light up
    page.hover(top)
    lit = page.locator("#tgt-words .word.lit").count()
    assert lit >= 1 and "active" in page.get_attribute(top, "class")
    page.mouse.move(0, 0)
    page.wait_for_function("document.querySelectorAll('.word.lit').length === 0")
    assert page.errors == []


def test_selectors_and_pieces_view(page, server):
    api = httpx.post(server + "/api/attention", json={"text": SENTENCE}, timeout=60).json()
    layer_options = page.locator("#layer option").all_text_contents()
    assert layer_options[0] == "Average" and len(layer_options) == api["layers"] + 1
    assert len(page.locator("#head option").all_text_contents()) == api["heads"] + 1
    page.click('.seg button[data-unit="pieces"]')
    page.select_option("#layer", "0")
    page.select_option("#head", str(api["heads"] - 1))
    assert page.locator("#heatmap .cell").count() == len(api["source_tokens"]) * len(api["target_tokens"])
    # one head of one layer: the shade of each cell follows that head's weights
    weights = api["attention"][0][api["heads"] - 1]
    i, j = max(((i, j) for i in range(len(weights)) for j in range(len(weights[0]))), key=lambda ij: weights[ij[0]][ij[1]])
    page.hover(f'#heatmap .cell[data-row="{i}"][data-col="{j}"]')
    assert f"{weights[i][j]:.3f}" in page.text_content("#cell-info")
    # word links drawn on every piece pair of the linked words
    src_word, tgt_word = api["source_word_index"], api["target_word_index"]
    pairs = sum(src_word.count(s) * tgt_word.count(t) for s, t in api["links"])
    assert page.locator("#heatmap .link").count() == pairs
    page.click('.seg button[data-unit="words"]')
    assert page.errors == []


def test_text_is_never_html_and_errors_show(page):
    page.fill("#source", '<img src=x onerror="window.pwned=1"> Hello')
    page.click("#translate")
    page.wait_for_selector("#translate:not([disabled])", timeout=60_000)
    page.wait_for_function("document.querySelector('#translation').textContent.length > 0")
    assert page.evaluate("document.querySelectorAll('#translation img, .word img, #heatmap img').length") == 0
    assert page.evaluate("window.pwned === undefined")
    # an over-long text is refused by the server with a readable message
    page.evaluate("document.querySelector('#source').removeAttribute('maxlength')")
    page.fill("#source", "a" * 1500)
    page.click("#translate")
    page.wait_for_selector("#error:not([hidden])", timeout=30_000)
    assert "max_chars" in page.text_content("#error")


DOUBTFUL_SENTENCE = "My neighbour's dog barks at the postman every morning."


def test_doubtful_words_underlined(page, server, tmp_path):
    """The words the model was unsure of are underlined; each word's probability shows on hover."""
    scored = httpx.post(server + "/api/translate", json={"text": DOUBTFUL_SENTENCE, "confidence": True},
                        timeout=60).json()["confidence"]
    words = scored["words"]
    threshold = page.evaluate("DOUBTFUL")
    doubtful = [w["text"] for w in words if w["probability"] < threshold]
    assert doubtful and len(doubtful) < len(words)  # the sentence shows both kinds
    errors_before = len(page.errors)  # the tests before leave theirs (a 413 on purpose)
    page.fill("#source", DOUBTFUL_SENTENCE)
    page.click("#translate")
    page.wait_for_selector(f"#translation .tword >> nth={len(words) - 1}", timeout=60_000)
    assert page.text_content("#translation") == scored["translation"]
    assert page.locator("#translation .tword").all_text_contents() == [w["text"] for w in words]
    assert page.locator("#translation .tword.doubtful").all_text_contents() == doubtful
    spans = page.locator("#translation .tword")
    for i, w in enumerate(words):
        assert spans.nth(i).get_attribute("title") == f"probability {w['probability']:.2f}"
        line = spans.nth(i).evaluate("el => getComputedStyle(el).textDecorationLine")
        assert ("underline" in line) == (w["probability"] < threshold)
    assert page.text_content("#confidence") == f"confidence {scored['confidence']:.2f}"
    page.hover("#translation .tword.doubtful")
    page.screenshot(path=str(tmp_path / "confidence.png"))
    if os.environ.get("CONFIDENCE_SCREENSHOT"):
        page.screenshot(path=os.environ["CONFIDENCE_SCREENSHOT"])
    assert page.errors[errors_before:] == []


def test_html_in_the_box_and_files_picked_or_dropped(page, server, tmp_path):
    page.errors.clear()  # (an earlier test's refused request is logged by the browser as an error)
    # HTML typed in the box is sent as HTML (markup kept), and shown as source code, never as markup
    html = "<p>The <b>red</b> house is big.</p>"
    want = httpx.post(server + "/api/translate", json={"text": html, "format": "html"}, timeout=60).json()["translation"]
    page.fill("#source", html)
    page.click("#translate")
    page.wait_for_selector("#timing:has-text('HTML, markup kept')", timeout=60_000)
    assert page.text_content("#translation") == want and "<b>" in want
    assert page.locator("#translation b").count() == 0 and page.is_hidden("#attention-card")

    # a file picked: translated, offered for download under its own name, with the translation in it
    text = "The cat sleeps on the red sofa."
    expected = httpx.post(server + "/api/translate", json={"text": text}, timeout=60).json()["translation"] + "\n"
    picked = tmp_path / "notes.txt"
    picked.write_text(text + "\n")
    assert ".docx" in page.get_attribute("#file-input", "accept").split(",")
    page.set_input_files("#file-input", str(picked))
    page.wait_for_selector("#file-download:not([hidden])", timeout=60_000)
    with page.expect_download() as download:
        page.click("#file-download")
    assert download.value.suggested_filename == "notes.txt"
    assert Path(download.value.path()).read_text() == expected
    page.screenshot(path=str(tmp_path / "files.png"), full_page=True)
    if os.environ.get("SCREENSHOT_DIR"):
        page.screenshot(path=str(Path(os.environ["SCREENSHOT_DIR"]) / "files.png"), full_page=True)

    # a file dropped on the control; an unsupported one gets the server's one-line reason
    def drop(name: str, content: str) -> None:
        transfer = page.evaluate_handle("([name, content]) => { const t = new DataTransfer(); "
                                        "t.items.add(new File([content], name)); return t; }", [name, content])
        page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})

    drop("hello.txt", text + "\n")
    page.wait_for_selector("#file-download[download='hello.txt']:not([hidden])", timeout=60_000)
    assert page.errors == []
    drop("program.exe", "MZ")  # (the browser logs the 400 as an error)
    page.wait_for_selector("#file-error:not([hidden])", timeout=30_000)
    assert "file format not supported" in page.text_content("#file-error")


def test_glossary_field_is_sent_and_a_malformed_line_is_one_line_on_the_page(page, server, tmp_path):
    from crossattn.glossary import Glossary

    page.errors.clear()
    # the page reads what a --glossary file holds (TSV, "#" comments) as Glossary.read does,
    # and "term = translation" lines too
    tsv = "# terms\nred sofa\tcanapé vermillon\n\ncat\tmatou\n"
    (tmp_path / "terms.tsv").write_text(tsv)
    parsed = page.evaluate("(t) => parseGlossary(t)", tsv)
    assert Glossary(parsed["entries"]) == Glossary.read(tmp_path / "terms.tsv")
    assert page.evaluate("(t) => parseGlossary(t)", " red sofa = canapé vermillon \r\n#x = y\ncat=matou") == parsed
    for bad, line in (("cat matou", 1), ("cat = matou\nsofa = a = b", 2), ("cat\tmatou\tchat", 1), ("= matou", 1)):
        assert page.evaluate("(t) => parseGlossary(t)", bad)["error"].startswith(f"Glossary line {line}: ")

    # the glossary reaches /api/translate: the page shows what the API answers with it
    glossary = {"red sofa": "canapé vermillon", "cat": "matou"}
    want = httpx.post(server + "/api/translate", json={"text": SENTENCE, "confidence": True, "glossary": glossary},
                      timeout=60).json()
    assert "canapé vermillon" in want["translation"] and "matou" in want["translation"]
    page.click("#glossary-box summary")
    page.fill("#glossary", "red sofa = canapé vermillon\ncat\tmatou")
    page.fill("#source", SENTENCE)
    page.click("#translate")
    page.wait_for_selector("#timing:has-text('glossary of 2 terms')", timeout=60_000)
    assert page.text_content("#translation") == want["translation"]
    assert page.locator("#translation .tword").count() == len(want["confidence"]["words"])
    assert page.is_hidden("#attention-card") and page.is_hidden("#glossary-error")
    # HTML typed in the box gets it too
    html = "<p>The <b>cat</b> sleeps.</p>"
    want_html = httpx.post(server + "/api/translate", json={"text": html, "format": "html", "glossary": glossary},
                           timeout=60).json()["translation"]
    page.fill("#source", html)
    page.click("#translate")
    page.wait_for_selector("#timing:has-text('HTML, markup kept')", timeout=60_000)
    assert page.text_content("#translation") == want_html and "matou" in want_html
    # and a file: /translate_file gets it as its glossary field
    want_file = httpx.post(server + "/api/translate", json={"text": SENTENCE, "glossary": glossary},
                           timeout=60).json()["translation"] + "\n"
    picked = tmp_path / "terms.txt"
    picked.write_text(SENTENCE + "\n")
    page.set_input_files("#file-input", str(picked))
    page.wait_for_selector("#file-download[download='terms.txt']:not([hidden])", timeout=60_000)
    with page.expect_download() as download:
        page.click("#file-download")
    assert Path(download.value.path()).read_text() == want_file and "matou" in want_file

    # a malformed line: one line on the page, and nothing sent, for text or a file
    sent = []
    page.on("request", lambda r: ("/api/" in r.url or "/translate_file" in r.url) and sent.append(r.url))
    page.fill("#glossary", "cat = matou\nsofa canapé")
    page.fill("#source", SENTENCE)
    page.click("#translate")
    page.wait_for_selector("#glossary-error:not([hidden])", timeout=10_000)
    assert page.text_content("#glossary-error") == "Glossary line 2: “sofa canapé” is not “term = translation”"
    assert "\n" not in page.text_content("#glossary-error") and sent == []
    page.set_input_files("#file-input", str(picked))
    page.wait_for_selector("#file-error:not([hidden])", timeout=10_000)
    assert page.text_content("#file-error") == ("Could not translate terms.txt: Glossary line 2: “sofa canapé” is "
                                                "not “term = translation”") and sent == []
    page.fill("#glossary", "")
    assert page.errors == []


def test_the_page_carries_the_api_key_a_server_requires(page, shipped_translator, tmp_path):
    from crossattn.libretranslate import Access

    text = "The cat sleeps on the red sofa."
    picked = tmp_path / "notes.txt"
    picked.write_text(text + "\n")
    app = create_app(shipped_translator, access=Access(keys={"key-one": 0}, require_key=True),
                     attention_process=False)
    with serving(app) as url:
        page = open_page(page.context.browser, url)  # a page of its own, on the server that wants keys
        expected = httpx.post(url + "/api/translate", json={"text": text, "api_key": "key-one"},
                              timeout=60).json()["translation"] + "\n"
        page.wait_for_selector("#key-row:not([hidden])", timeout=10_000)  # the server says it wants a key
        # without the key: the server's one-line refusal
        page.set_input_files("#file-input", str(picked))
        page.wait_for_selector("#file-error:not([hidden])", timeout=30_000)
        assert "requires an api_key" in page.text_content("#file-error")
        # a wrong key, then the right one
        page.fill("#api-key", "key-two")
        page.set_input_files("#file-input", str(picked))
        page.wait_for_selector("#file-error:has-text('Invalid API key')", timeout=30_000)
        page.fill("#api-key", "key-one")
        page.dispatch_event("#api-key", "change")
        page.set_input_files("#file-input", str(picked))
        page.wait_for_selector("#file-download:not([hidden])", timeout=60_000)
        assert page.is_hidden("#file-error")
        with page.expect_download() as download:
            page.click("#file-download")
        assert Path(download.value.path()).read_text() == expected
        # text goes to /api/*, which the key closes too: the page sends it there as well
        page.fill("#source", text)
        page.press("#source", "Enter")
        page.wait_for_selector("#heatmap .cell", timeout=60_000)
        assert page.text_content("#translation") + "\n" == expected and page.is_hidden("#error")
        # kept in this browser for the next visit, as LibreTranslate's page keeps it
        page.reload()
        page.wait_for_selector("#key-row:not([hidden])", timeout=10_000)
        assert page.input_value("#api-key") == "key-one"
        page.close()
