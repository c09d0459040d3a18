"""HTML markup placement measured, side by side, in one run (issue 25, deliverable 4).

1. **Placement alone.** On the public gold-aligned sets (Hansards trial, Golden
   Collection; never a test set) a fixed-seed sample of source spans of 1-4 words is
   wrapped in ``<b>``; the gold target sentence is forced as the translation and
   markup.translate_html (the path users get: place() and render()) puts the tag on it,
   given the links of (a) the alignment heads of both directions, symmetrized as the
   html mode does, (b) the naive read-out (``crossattn align --method attention``: mean
   of layers and heads, en-fr only), (c) eflomal (grow-diag-final-and, trained on N
   Hansard pairs plus the gold sentences, as bench/alignment.py does) and (d) position
   only (markup.monotone_links, the fallback without a head). The gold span is the hull
   (first..last) of the target words linked to the span's words by the gold *sure*
   links; spans without a sure link are not sampled. Scores: exact match of the hull,
   word F1 (mean over spans).
2. **Whole sentences.** Dev sentences (Tatoeba dev, newstest2012) with 1-2 inline
   elements inserted (fixed seed): chrF of the html mode's plain text against the plain
   translation of the same sentence; the same for ``translatehtml`` (LibreTranslate's html
   mode, PyPI) on our Argos export, installed in a temporary ARGOS_PACKAGES_DIR.
3. **Real pages** available offline (a Debian doc page, a pydoc page, one of this
   project's docs rendered by markdown-it-py): every tag kept exactly once, nesting as
   good as the input's, and a screenshot of source and translation side by side in
   headless Chromium.

    python bench/markup.py [--json bench/results/markup.json] [--eflomal-pairs 100000]
"""

from __future__ import annotations

import argparse
import html
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

from alignment import DATA, GOLD_SETS, eflomal_links, hansard_pairs, read_gold, tokenize_like  # noqa: E402
from common import machine_info  # noqa: E402

from crossattn import markup  # noqa: E402
from crossattn.markup import INLINE, VOID, parse  # noqa: E402

SEED = 25
WORDLIKE = re.compile(r"\w")
TAG = re.compile(r"<[^>]*>")


# -- 1. placement alone --------------------------------------------------------------------
def sample_spans(en: list[list[str]], sure: list[set], per_sentence: int, rng: random.Random
                 ) -> list[tuple[int, int, int]]:
    """(sentence, first token, end token) of up to ``per_sentence`` spans per sentence: a
    length of 1-4 words drawn uniformly, then a span of that length that begins and ends
    with a word (not punctuation) and has a sure gold link."""
    out = []
    for k, tokens in enumerate(en):
        linked = {i for i, _ in sure[k]}
        by_length: dict[int, list[tuple[int, int]]] = {}
        for a in range(len(tokens)):
            for b in range(a + 1, min(a + 4, len(tokens)) + 1):
                if WORDLIKE.search(tokens[a]) and WORDLIKE.search(tokens[b - 1]) and linked & set(range(a, b)):
                    n_words = sum(bool(WORDLIKE.search(t)) for t in tokens[a:b])
                    if n_words <= 4:
                        by_length.setdefault(n_words, []).append((a, b))
        taken: set[tuple[int, int]] = set()
        for _ in range(per_sentence):
            lengths = [n for n in sorted(by_length) if set(by_length[n]) - taken]
            if not lengths:
                break
            n = rng.choice(lengths)
            span = rng.choice(sorted(set(by_length[n]) - taken))
            taken.add(span)
            out.append((k, *span))
    return out


def token_offsets(tokens: list[str]) -> list[tuple[int, int]]:
    """Character (start, end) of each token in " ".join(tokens)."""
    out, pos = [], 0
    for t in tokens:
        out.append((pos, pos + len(t)))
        pos += len(t) + 1
    return out


def word_to_token(tokens: list[str]) -> list[int]:
    """For each markup word (markup.WORD) of " ".join(tokens), the gold token it lies in."""
    offsets = token_offsets(tokens)
    return [next(g for g, (s, e) in enumerate(offsets) if s <= start < e)
            for _, start, _ in markup.words(" ".join(tokens))]


def with_tag(tokens: list[str], a: int, b: int) -> str:
    parts = [" ".join(tokens[:a]), "<b>" + html.escape(" ".join(tokens[a:b]), quote=False) + "</b>",
             " ".join(tokens[b:])]
    return " ".join(html.escape(p, quote=False) if n != 1 else p for n, p in enumerate(parts) if p)


def projected_tokens(output: str, target: list[str]) -> set[int]:
    """The gold target tokens that the ``<b>`` element of ``output`` covers."""
    opened = output.index("<b>")
    closed = output.index("</b>") - len("<b>")
    plain = html.unescape(output.replace("<b>", "").replace("</b>", ""))
    if plain != " ".join(target):
        raise AssertionError(f"the forced translation changed: {plain!r}")
    opened = len(html.unescape(output[:opened]))
    closed = len(html.unescape(output[:closed + len("<b>")].replace("<b>", "")))
    return {g for g, (s, e) in enumerate(token_offsets(target)) if s < closed and opened < e}


def miss_kind(got: set[int], want: set[int], allowed: set[int]) -> str:
    """What a tag that is not exactly on the gold (sure) span did instead."""
    if not got:
        return "empty (in a gap)"
    if not got & want:
        return "on other words"
    if not want <= got:
        return "part of the sure span"
    return "sure span, inside the possible links" if got <= allowed else "sure span and words outside the possible links"


def placement(name: str, models, per_sentence: int, eflomal_pairs: int, links_cache: Path | None = None,
              max_failures: int = 40) -> dict:
    from crossattn.align import DEFAULT, align, align_pairs_with_heads, word_attention

    forward, backward = models
    en, fr, gold = read_gold(name)
    en_tok, fr_tok = [s.split() for s in en], [s.split() for s in fr]
    sure = [s for s, _ in gold]
    spans = sample_spans(en_tok, sure, per_sentence, random.Random(SEED))
    reference = {" ".join(e): " ".join(f) for e, f in zip(en_tok, fr_tok)}
    sentence_of = {(tuple(w for w, _, _ in markup.words(" ".join(e))), tuple(w for w, _, _ in markup.words(" ".join(f)))): k
                   for k, (e, f) in enumerate(zip(en_tok, fr_tok))}

    # --links-cache: each aligner's links per sentence pair, kept from an earlier run, so
    # that a change to place() is measured on the very same links (eflomal's sampler is
    # not seeded, and it takes minutes)
    stored = json.loads(links_cache.read_text()) if links_cache and links_cache.exists() else {}
    eflomal_label = f"eflomal ({eflomal_pairs:,} Hansard pairs + gold, gdfa)"
    eflomal_gold: list = []
    eflomal_seconds = 0.0
    if eflomal_pairs and eflomal_label not in stored.get(name, {}):
        # eflomal's links on the gold tokens, turned into links between markup words
        style = "hansards" if name.startswith("hansards") else "golden"
        extra = hansard_pairs(eflomal_pairs)
        start = time.perf_counter()
        eflomal_gold = eflomal_links(en + [tokenize_like(e, "en", style) for e, _ in extra],
                                     fr + [tokenize_like(f, "fr", style) for _, f in extra])[: len(en)]
        eflomal_seconds = time.perf_counter() - start

    def to_words(k: int, links: set) -> set:
        ws, wt = word_to_token(en_tok[k]), word_to_token(fr_tok[k])
        return {(i, j) for i, gi in enumerate(ws) for j, gj in enumerate(wt) if (gi, gj) in links}

    def naive(pairs):
        return align(word_attention(forward.model, forward.tokenizer, pairs, (DEFAULT.shift,)), DEFAULT)

    def gold_links(pairs):  # the annotators' sure and possible links: how far the strict score can go
        return [to_words(k, gold[k][0] | gold[k][1]) for k in (sentence_of[(tuple(s), tuple(t))] for s, t in pairs)]

    aligners = {
        "alignment heads (both directions, symmetrized)": lambda pairs: align_pairs_with_heads(pairs, forward, backward),
        "naive read-out (align --method attention)": naive,
        eflomal_label: lambda pairs: [
            to_words(sentence_of[(tuple(s), tuple(t))], eflomal_gold[sentence_of[(tuple(s), tuple(t))]])
            for s, t in pairs],
        "position only (monotone_links)": None,
        "gold sure + possible links (reference)": gold_links,
    }
    if not eflomal_pairs:  # --eflomal-pairs 0: a quick look without it
        del aligners[eflomal_label]
    documents = [with_tag(en_tok[k], a, b) for k, a, b in spans]
    gold_spans, possible_spans = [], []
    for k, a, b in spans:
        js = [j for i, j in sure[k] if a <= i < b]
        gold_spans.append(set(range(min(js), max(js) + 1)))
        js = [j for i, j in sure[k] | gold[k][1] if a <= i < b]
        possible_spans.append(set(range(min(js), max(js) + 1)))
    rows = []
    for label, aligner in aligners.items():
        cache: dict = {(tuple(s), tuple(t)): {tuple(x) for x in links}
                       for s, t, links in stored.get(name, {}).get(label, [])}

        def cached(pairs, aligner=aligner, cache=cache):
            todo = [p for p in dict.fromkeys((tuple(s), tuple(t)) for s, t in pairs) if p not in cache]
            for p, links in zip(todo, aligner([(list(s), list(t)) for s, t in todo]) if todo else []):
                cache[p] = links
            return [cache[(tuple(s), tuple(t))] for s, t in pairs]

        start = time.perf_counter()
        outputs = markup.translate_html(documents, lambda sentences: [reference[s] for s in sentences],
                                        cached if aligner is not None else None)
        seconds = time.perf_counter() - start
        if aligner is not None:
            stored.setdefault(name, {})[label] = [[list(s), list(t), sorted(links)] for (s, t), links in cache.items()]
        exact, within, f1s, failures, by_length, misses = 0, 0, [], [], Counter(), Counter()
        for (k, a, b), out, want, allowed in zip(spans, outputs, gold_spans, possible_spans):
            got = projected_tokens(out, fr_tok[k])
            hit = got == want
            exact += hit
            within += want <= got <= allowed
            f1s.append(2 * len(got & want) / (len(got) + len(want)))
            n_words = sum(bool(WORDLIKE.search(t)) for t in en_tok[k][a:b])
            by_length[(n_words, hit)] += 1
            if not hit:
                misses[miss_kind(got, want, allowed)] += 1
                failures.append({"source": documents[len(f1s) - 1], "output": out,
                                 "gold": " ".join(fr_tok[k][min(want): max(want) + 1]),
                                 "possible": " ".join(fr_tok[k][min(allowed): max(allowed) + 1]),
                                 "sure_within_possible": want <= got <= allowed})
        rows.append({"set": name, "method": label, "spans": len(spans), "sentences": len(en),
                     "exact_match": 100 * exact / len(spans), "word_f1": 100 * sum(f1s) / len(f1s),
                     "sure_within_possible": 100 * within / len(spans),
                     "exact_by_words": {n: 100 * by_length[(n, True)] / max(1, by_length[(n, True)] + by_length[(n, False)])
                                        for n in range(1, 5)},
                     "misses": dict(misses.most_common()),
                     "seconds": seconds + (eflomal_seconds if "eflomal" in label else 0),
                     "failures": failures[:max_failures]})
    if links_cache:
        links_cache.write_text(json.dumps(stored))
    return {"rows": rows}


# -- 2. whole sentences ------------------------------------------------------------------------
INLINE_TAGS = [("<b>", "</b>"), ("<em>", "</em>"), ('<a href="https://example.org/page">', "</a>"),
               ('<span class="note">', "</span>"), ("<i>", "</i>"), ("<strong>", "</strong>")]


def dev_set(n_each: int, rng: random.Random) -> list[str]:
    """``n_each`` English sentences drawn from Tatoeba dev and from newstest2012 (dev sets)."""
    out = []
    for path in (DATA / "tatoeba" / "dev.tsv", DATA / "wmt" / "newstest2012.tsv"):
        lines = [line.split("\t")[0] for line in path.read_text(encoding="utf-8").splitlines() if "\t" in line]
        out += rng.sample([s for s in lines if s.strip()], n_each)
    return out


def tagged(text: str, rng: random.Random) -> str:
    """``text`` escaped, with 1-2 inline elements around spans of 1-4 words (not overlapping)."""
    ws = [w for w in markup.words(text) if WORDLIKE.search(w[0])]
    cuts: list[tuple[int, int, tuple[str, str]]] = []
    for _ in range(rng.choice((1, 2))):
        n = rng.randint(1, min(4, len(ws)))
        a = rng.randrange(0, len(ws) - n + 1)
        s, e = ws[a][1], ws[a + n - 1][2]
        if all(e <= s2 or e2 <= s for s2, e2, _ in cuts):
            cuts.append((s, e, rng.choice(INLINE_TAGS)))
    out, pos = [], 0
    for s, e, (open_, close) in sorted(cuts):
        out += [html.escape(text[pos:s], quote=False), open_, html.escape(text[s:e], quote=False), close]
        pos = e
    return "".join(out + [html.escape(text[pos:], quote=False)])


def tag_text(document: str) -> str:
    return html.unescape(TAG.sub("", document))


def tag_counts(document: str) -> Counter:
    return Counter(c.raw for c in parse(document) if c.kind in ("start", "end", "startend"))


def nesting_errors(document: str) -> int:
    """End tags that do not close the innermost open element (blocks may be closed
    implicitly: an open block is popped by its parent's end tag)."""
    stack: list[str] = []
    errors = 0
    for c in parse(document):
        if c.kind == "start" and c.tag not in VOID:
            stack.append(c.tag)
        elif c.kind == "end" and c.tag in INLINE:
            if stack and stack[-1] == c.tag:
                stack.pop()
            else:
                errors += 1
        elif c.kind == "end":
            if c.tag not in stack:
                errors += 1
                continue
            while stack[-1] != c.tag:
                errors += stack.pop() in INLINE
            stack.pop()
    return errors


ARGOS_SCRIPT = r"""
import json, sys
import argostranslate.package as p, argostranslate.translate as t
from translatehtml import translate_html
package, src, out = sys.argv[1:4]
p.install_from_path(package)
en, fr = [next(l for l in t.get_installed_languages() if l.code == c) for c in ("en", "fr")]
tr = en.get_translation(fr)
items = json.load(open(src, encoding="utf-8"))
json.dump([{"plain": tr.translate(x["plain"]), "html": str(translate_html(tr, x["html"]))} for x in items],
          open(out, "w", encoding="utf-8"))
"""


def run_translatehtml(plain: list[str], documents: list[str]) -> tuple[list[str], list[str], float]:
    from peers import argos_env

    from crossattn.export import export_argos

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        package = export_argos(None, work / "en_fr.argosmodel", force=True)
        (work / "in.json").write_text(json.dumps([{"plain": p, "html": d} for p, d in zip(plain, documents)]))
        env = {**os.environ, **argos_env(work / "home"), "ARGOS_PACKAGES_DIR": str(work / "packages")}
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", ARGOS_SCRIPT, str(package), str(work / "in.json"), str(work / "out.json")],
                       check=True, env=env, cwd=REPO)
        seconds = time.perf_counter() - start
        got = json.loads((work / "out.json").read_text())
    return [g["plain"] for g in got], [g["html"] for g in got], seconds


def whole_sentences(translator, backward, n_each: int) -> dict:
    import sacrebleu

    rng = random.Random(SEED)
    sentences = dev_set(n_each, rng)
    documents = [tagged(s, rng) for s in sentences]
    start = time.perf_counter()
    plain = translator.translate(sentences)
    plain_seconds = time.perf_counter() - start
    start = time.perf_counter()
    ours = translator.translate_html(documents, backward=backward)
    html_seconds = time.perf_counter() - start
    a_plain, a_html, a_seconds = run_translatehtml(sentences, documents)

    def summary(label, outputs, plains, seconds):
        text = [" ".join(tag_text(o).split()) for o in outputs]
        return {"system": label, "sentences": len(outputs),
                "chrf_vs_plain": sacrebleu.corpus_chrf(text, [plains]).score,
                "identical_to_plain": 100 * sum(t == " ".join(p.split()) for t, p in zip(text, plains)) / len(text),
                "all_tags_kept": 100 * sum(tag_counts(o) == tag_counts(d) for o, d in zip(outputs, documents)) / len(text),
                "well_formed": 100 * sum(nesting_errors(o) == 0 for o in outputs) / len(text),
                "seconds_html": seconds}

    return {"sentences": len(sentences), "elements": sum(d.count("</") for d in documents),
            "rows": [summary("crossattn translate_html (CTranslate2 + alignment heads)", ours, plain, html_seconds),
                     summary("translatehtml 1.5 + argostranslate (our Argos export)", a_html, a_plain, a_seconds)],
            "plain_seconds": plain_seconds,
            "examples": [{"source": d, "ours": o, "ours_plain": p, "translatehtml": ah, "argos_plain": ap}
                         for d, o, p, ah, ap in list(zip(documents, ours, plain, a_html, a_plain))[:12]]}


# -- 3. real pages -----------------------------------------------------------------------------
def real_pages(work: Path) -> dict[str, str]:
    """Three HTML documents to be had offline: name -> text."""
    pages = {}
    debian = Path("/usr/share/doc/base-passwd/users-and-groups.html")
    if debian.exists():
        pages["users-and-groups (base-passwd)"] = debian.read_text(encoding="utf-8", errors="replace")
    subprocess.run([sys.executable, "-m", "pydoc", "-w", "textwrap"], cwd=work, check=True, capture_output=True)
    pages["pydoc textwrap"] = (work / "textwrap.html").read_text(encoding="utf-8")
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render((REPO / "docs" / "serving.md").read_text(encoding="utf-8"))
    pages["docs/serving.md (markdown-it-py)"] = f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Serving</title></head><body>\n{body}</body></html>\n"
    return pages


def screenshot(source: str, translation: str, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    chromium = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser")) if p), None)
    frame = 'style="width:49.5%;height:100%;border:1px solid #999" srcdoc="{}"'
    page_html = (f'<html><body style="margin:0;display:flex;gap:4px;height:100vh">'
                 f'<iframe {frame.format(html.escape(source))}></iframe>'
                 f'<iframe {frame.format(html.escape(translation))}></iframe></body></html>')
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu",
                                                                      "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_content(page_html)
        page.wait_for_timeout(500)
        page.screenshot(path=str(out))
        browser.close()


def pages(translator, backward) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, source in real_pages(Path(tmp)).items():
            start = time.perf_counter()
            out = translator.translate_html([source], backward=backward)[0]
            seconds = time.perf_counter() - start
            slug = re.sub(r"[^a-z0-9]+", "-", name.split(" (")[0].lower()).strip("-")
            png = Path(tmp) / f"markup-{slug}.png"
            shot = None
            if shutil.which("chromium") or shutil.which("chromium-browser"):
                screenshot(source, out, png)
                dest = (REPO / "docs" / "img") if png.stat().st_size < 200_000 else (BENCH / "results")
                shutil.copy(png, dest / png.name)
                shot = str((dest / png.name).relative_to(REPO))
            src_tags, out_tags = tag_counts(source), tag_counts(out)
            rows.append({"page": name, "characters": len(source), "tags": sum(src_tags.values()),
                         "segments_translated": len(markup.plain_text(source).splitlines()),
                         "every_tag_once": src_tags == out_tags,
                         "tags_missing": sum((src_tags - out_tags).values()), "tags_added": sum((out_tags - src_tags).values()),
                         "nesting_errors_input": nesting_errors(source), "nesting_errors_output": nesting_errors(out),
                         "seconds": seconds, "screenshot": shot})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the results here too")
    parser.add_argument("--spans-per-sentence", type=int, nargs=2, default=(8, 3),
                        help="Hansards trial (37 sentences), Golden Collection (100)")
    parser.add_argument("--sentences-each", type=int, default=150, help="from Tatoeba dev and from newstest2012")
    parser.add_argument("--eflomal-pairs", type=int, default=100_000, help="0: leave eflomal out")
    parser.add_argument("--only", choices=("placement", "sentences", "pages"),
                        help="one part, merged into --json (the parts can run side by side)")
    parser.add_argument("--links-cache", type=Path,
                        help="placement: read each aligner's links from this JSON if it has them, else write them "
                             "there (the same links for a before/after of place())")
    parser.add_argument("--sets", nargs="+", choices=list(GOLD_SETS), default=list(GOLD_SETS))
    args = parser.parse_args()
    from crossattn.align import AlignmentModel
    from crossattn.translator import Translator

    info = machine_info(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))
    forward, backward = AlignmentModel.load("en-fr"), AlignmentModel.load("fr-en")
    result: dict = {"machine": info, "seed": SEED}
    if args.only in (None, "placement"):
        result["placement"] = []
        for name in args.sets:
            per_sentence = args.spans_per_sentence[list(GOLD_SETS).index(name)]
            result["placement"] += placement(name, (forward, backward), per_sentence, args.eflomal_pairs,
                                             args.links_cache)["rows"]
        print("| set | method | spans | exact match % | word F1 % | sure <= span <= possible % |\n|---|---|---|---|---|---|")
        for r in result["placement"]:
            print(f"| {r['set']} | {r['method']} | {r['spans']} | {r['exact_match']:.1f} | {r['word_f1']:.1f} "
                  f"| {r['sure_within_possible']:.1f} |")
    translator = Translator.load("en-fr") if args.only in (None, "sentences", "pages") else None
    if args.only in (None, "sentences"):
        result["sentences"] = whole_sentences(translator, backward, args.sentences_each)
        print("| system | sentences | chrF vs plain | identical % | all tags kept % | well-formed % |\n|---|---|---|---|---|---|")
        for r in result["sentences"]["rows"]:
            print(f"| {r['system']} | {r['sentences']} | {r['chrf_vs_plain']:.1f} | {r['identical_to_plain']:.1f} "
                  f"| {r['all_tags_kept']:.1f} | {r['well_formed']:.1f} |")
    if args.only in (None, "pages"):
        result["pages"] = pages(translator, backward)
        for r in result["pages"]:
            print(json.dumps(r))
    result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if args.json:
        write_results(Path(args.json), result, args)


def write_results(path: Path, result: dict, args) -> None:
    """Write ``result``; with --only, merged into what ``path`` holds (the parts may run
    side by side as separate processes on a busy machine: a lock keeps their writes apart)."""
    import fcntl

    from crossattn.atomic import write_text_atomic

    with open(Path(tempfile.gettempdir()) / f"crossattn-{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        merged = json.loads(path.read_text()) if args.only and path.exists() else {}
        runs = merged.get("runs", [])
        runs.append({"part": args.only or "all", "sets": args.sets if args.only in (None, "placement") else None,
                     "machine": result.pop("machine"),
                     "finished": result.pop("finished")})
        if "placement" in result:
            result["placement"] = [r for r in merged.get("placement", []) if r["set"] not in args.sets] + \
                result["placement"]
        merged.update(result, runs=runs)
        write_text_atomic(path, json.dumps(merged, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
