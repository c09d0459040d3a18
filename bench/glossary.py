"""Glossaries: how often the translation uses the glossary's term, and what happens to the
rest of the sentence, for each candidate mechanism, on dev glossaries built from public
dev data.

The dev glossary (gold-free): sentences of hansard/dev and wmt/newstest2012 (the dev sets
of the data README: parliament and news; the test sets are never read) with 6 to 40
words are aligned to their references by eflomal (bench/alignment.eflomal_links, with
Hansard training pairs added so the aligner has data to learn from). From each sentence,
1 to 3 non-overlapping source n-grams of 1-3 words that start and end with a content
word (not a function word, a unigram of 4+ letters) and whose aligned reference words
form a consistent phrase (contiguous, of 1-4 words, nothing in it aligned outside) become
entries: source n-gram -> the reference's words. Entries whose two sides are equal
(names, numbers) are skipped: a glossary that asks for a copy says little.

Mechanisms measured (each sentence translated with its own entries):

* ``none``: the translation without a glossary;
* ``placeholders``: every term swapped for a placeholder the model copies, its
  translation put in after (what crossattn shipped first);
* ``missed``: what crossattn shipped from 2026-12-06 19:30 UTC (``Translator._obey`` with
  ``best_scored=False``): the translation without the glossary, kept where it writes
  every term; elsewhere placeholders for the missed terms only;
* ``shipped``: what crossattn ships now (``translator.translate(glossary=...)``, timed one
  sentence at a time): ``missed``, then each sentence with placeholders written as the
  best-scored of its candidates (``Translator._best_scored``: the placeholder
  translation, the 8 best of the placeholder search and of the plain search; the most
  terms, then the best mean log-probability per piece for the source as written,
  CTranslate2's score_batch; no torch);
* ``aligned``: translate without a glossary, then replace the target words that the
  alignment heads link to the term's source words (their span) by the term's translation;
* ``obey_aligned``: as ``shipped``, but a missed term that the alignment heads link to
  words of the plain translation is written there (``aligned``) instead of a placeholder;
* ``obey_inline``: as ``shipped``, but the source first gets each missed term written as
  its translation ("see you this fin de semaine"), which the model may copy, agreeing with it;
* ``obey_best``: of ``missed``, ``obey_aligned`` and the plain search's 8-best, the one
  that writes the most terms, the model's best-scored among those (``obey_best``).
  ``obey_aligned`` and ``obey_best`` need the torch network at translation time;
* ``pool`` (after ``missed`` and the mechanisms offered as extra candidates): the
  library's candidates (``Translator._glossary_candidates``) from the searches of
  POOL_SEARCHES and from other mechanisms' outputs, scored once, then each of VARIANTS
  chooses among a part of them by the library's rule (mean per piece, or the sum). The
  parts are searched for all sentences at once; a variant's seconds are ``missed``'s
  plus its parts'. ``best_held8_plain8`` is what ships: its output must equal ``shipped``'s.

Reported: term use (the entry's translation appears in the output, case-insensitively, on
word boundaries), BLEU and chrF of the sentences, and chrF outside the terms (each entry's
translation removed from both hypothesis and reference before scoring). A hypothesis that
misses a term keeps its own words for it there, which the reference lacks; so it is also
scored with those words removed (``chrf_outside_terms_aligned``: the words the alignment
heads link to the term's source words; ``outside``). Also: how many of the sentences whose
plain translation writes every term already each mechanism changes.

    python bench/glossary.py [--sentences 100] [--json bench/results/glossary.json]
        [--cache /tmp/dev-glossaries.json] [--outputs /tmp/outputs]

The first choice (2026-12-06 16:20 UTC): placeholders for every term (100% term use,
BLEU up; chrF outside the terms -1.4 en-fr, -0.4 fr-en). The second (2026-12-06 19:30 UTC,
bench/README.md "Glossaries"): ``missed``, the plain translation first. The third
(2026-12-06 21:27 UTC): ``shipped``, the best-scored candidate, torch-free.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alignment import eflomal_links, hansard_pairs  # noqa: E402
from common import DATA, machine_info  # noqa: E402

from crossattn.atomic import write_text_atomic  # noqa: E402

SETS = {"hansard/dev": DATA / "hansard" / "dev.tsv", "newstest2012": DATA / "wmt" / "newstest2012.tsv"}
TOKEN = re.compile(r"\w+['’]|\w+(?:[-.]\w+)*|[^\w\s]")
FUNCTION_WORDS = {
    "en": set("""a an the of to in on at by for with from and or but not no nor as is are was were be been being
    this that these those it its he she they we you i me him her them us my your his our their there here which who
    whom whose what when where why how all any some each every other such than then so too very can could will would
    shall should may might must do does did have has had if into out up down over under about also only just more
    most much many one two s t having being said get got make made like well now""".split()),
    "fr": set("""le la les l' un une des du de d' à au aux et ou mais ne pas ni que qu' qui quoi dont où en y
    ce cet cette ces c' se s' il elle ils elles on nous vous je j' tu me m' te t' lui leur leurs son sa ses mon ma
    mes ton ta tes notre nos votre vos est sont était être été a ont avait avoir fait plus moins très aussi si
    par pour dans sur sous avec sans entre vers chez comme tout tous toute toutes autre autres même n' un""".split()),
}


def tokens(text: str) -> list[re.Match]:
    return list(TOKEN.finditer(text))


LINKS_INSIDE = {"of", "de", "du", "des", "d'", "d’"}  # "Minister of Finance", "problème de protection"


def is_content(word: str, language: str) -> bool:
    return word[:1].isalpha() and word.lower() not in FUNCTION_WORDS[language]


def noun_phrase_like(words: list[str], language: str) -> bool:
    """Content words at both ends, only content words or "of"/"de" between: a stand-in
    for a noun phrase without a tagger ("taxation system", "Minister of Finance")."""
    return is_content(words[0], language) and is_content(words[-1], language) and \
        all(is_content(w, language) or w.lower() in LINKS_INSIDE for w in words[1:-1])


def read_pairs(path: Path, source: str) -> list[tuple[str, str]]:
    pairs = [tuple(line.split("\t")[:2]) for line in path.read_text(encoding="utf-8").splitlines() if "\t" in line]
    return [(e, f) if source == "en" else (f, e) for e, f in pairs]


def entries_of(src: str, ref: str, links: set[tuple[int, int]], languages: tuple[str, str],
               rng: random.Random, most: int = 3) -> list[tuple[str, str]]:
    """Up to ``most`` consistent (source n-gram, reference phrase) pairs of one sentence."""
    s_tok, t_tok = tokens(src), tokens(ref)
    candidates = []
    for n in (3, 2, 1):
        for i in range(len(s_tok) - n + 1):
            words = [m.group(0) for m in s_tok[i: i + n]]
            if not noun_phrase_like(words, languages[0]):
                continue
            if n == 1 and len(words[0]) < 4 or any(not w[:1].isalnum() for w in words):
                continue
            targets = {j for a, j in links if i <= a < i + n}
            if not targets or not all(any(a == k for a, _ in links) for k in range(i, i + n)):
                continue
            j1, j2 = min(targets), max(targets)
            if j2 - j1 + 1 > 4 or any(j1 <= j <= j2 and not i <= a < i + n for a, j in links):
                continue
            t_words = [m.group(0) for m in t_tok[j1: j2 + 1]]
            if not noun_phrase_like(t_words, languages[1]):
                continue
            term = src[s_tok[i].start(): s_tok[i + n - 1].end()]
            translation = ref[t_tok[j1].start(): t_tok[j2].end()]
            if term.lower() == translation.lower():
                continue
            candidates.append((n, i, i + n, term, translation))
    rng.shuffle(candidates)
    candidates.sort(key=lambda c: -c[0])  # multi-word terms first, then chance
    chosen: list[tuple[int, int, int, str, str]] = []
    want = rng.randint(1, most)
    for c in candidates:
        if len(chosen) < want and all(c[2] <= o[1] or c[1] >= o[2] for o in chosen) \
                and all(c[3].lower() != o[3].lower() and c[4].lower() != o[4].lower() for o in chosen):
            chosen.append(c)
    return [(term, translation) for *_, term, translation in sorted(chosen, key=lambda c: c[1])]


def dev_glossaries(per_set: int, extra_pairs: int = 10000, seed: int = 26) -> dict[str, list[dict]]:
    """{"en-fr": items, "fr-en": items}, items [{"set", "source", "reference", "glossary"}]:
    ``per_set`` sentences of each dev set that got at least one entry, per direction. One
    eflomal alignment per set serves both directions (its links read either way)."""
    rng = random.Random(seed)
    out: dict[str, list[dict]] = {"en-fr": [], "fr-en": []}
    extra = hansard_pairs(extra_pairs)
    tok = lambda text: " ".join(m.group(0) for m in tokens(text))  # noqa: E731
    for name, path in SETS.items():
        pairs = [p for p in read_pairs(path, "en") if 6 <= len(p[0].split()) <= 40]
        rng.shuffle(pairs)
        pairs = pairs[: per_set * 3]
        links = eflomal_links([tok(e) for e, _ in pairs + extra], [tok(f) for _, f in pairs + extra])[: len(pairs)]
        for direction in out:
            found = 0
            for (en, fr), en_fr_links in zip(pairs, links):
                if found == per_set:
                    break
                if direction == "en-fr":
                    src, ref, sentence_links, languages = en, fr, en_fr_links, ("en", "fr")
                else:
                    src, ref, sentence_links, languages = fr, en, {(j, i) for i, j in en_fr_links}, ("fr", "en")
                entries = entries_of(src, ref, sentence_links, languages, rng)
                if entries:
                    out[direction].append({"set": name, "source": src, "reference": ref, "glossary": dict(entries)})
                    found += 1
    return out


def uses(text: str, term: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(term)}(?!\w)", text, re.IGNORECASE) is not None


def without_terms(text: str, terms: list[str]) -> str:
    for term in sorted(terms, key=len, reverse=True):
        text = re.sub(rf"(?<!\w){re.escape(term)}(?!\w)", " ", text, flags=re.IGNORECASE)
    return " ".join(text.split())


def term_links(translator, items: list[dict], hyps: list[str]) -> list[list[tuple[str, list[int]]]]:
    """Per item, per glossary occurrence in its source: (the entry's translation, the
    whitespace words of the hypothesis that the alignment heads link to the occurrence's
    source words, sorted)."""
    from crossattn.align import align_pairs_with_heads
    from crossattn.glossary import Glossary

    pairs = [(item["source"].split(), hyp.split()) for item, hyp in zip(items, hyps)]
    links = align_pairs_with_heads(pairs, translator.alignment_model())
    out = []
    for item, (s_words, _), sentence_links in zip(items, pairs, links):
        # source word index of each character, to map the glossary's matches onto words
        owner: list[int | None] = []
        pos = 0
        for k, word in enumerate(s_words):
            start = item["source"].index(word, pos)
            owner += [None] * (start - len(owner)) + [k] * len(word)
            pos = start + len(word)
        found = []
        for start, end, translation in Glossary(item["glossary"]).find(item["source"]):
            words = {owner[c] for c in range(start, min(end, len(owner))) if owner[c] is not None}
            found.append((translation, sorted({j for i, j in sentence_links if i in words})))
        out.append(found)
    return out


def replaced(hyp: str, found: list[tuple[str, list[int]]]) -> str:
    """``hyp`` with each term's linked words (their span, first to last) written as the
    term's translation; a term without links, or whose span crosses another's, is left."""
    words = hyp.split()
    replace: dict[int, tuple[int, str]] = {}  # first target word -> (last, translation)
    for translation, targets in found:
        if targets:
            replace[targets[0]] = (targets[-1], translation)
    out, j = [], 0
    while j < len(words):
        if j in replace and all(k not in replace or k == j for k in range(j, replace[j][0] + 1)):
            out.append(replace[j][1])
            j = replace[j][0] + 1
        else:
            out.append(words[j])
            j += 1
    return " ".join(out)


def aligned_replacement(translator, items: list[dict], plain: list[str]) -> list[str]:
    """The aligned replacement: each term's aligned target words in the plain translation
    replaced by the term's translation (links from the alignment heads on whitespace words)."""
    return [replaced(hyp, found) for hyp, found in zip(plain, term_links(translator, items, plain))]


def obey_aligned(translator, items: list[dict], plain: list[str], obeyed: list[str]) -> list[str]:
    """Candidate (b): the plain translation where it writes every term; else, when the
    alignment heads link every missed term to words of it, those words replaced by the
    terms' translations; else the shipped path's output (placeholders for the missed terms)."""
    out = []
    for item, hyp, found, fallback in zip(items, plain, term_links(translator, items, plain), obeyed):
        missed = [(t, links) for t, links in found if not uses(hyp, t)]
        if not missed:
            out.append(hyp)
        elif all(links for _, links in missed):
            out.append(replaced(hyp, missed))
        else:
            out.append(fallback)
    return out


def obey_inline(translator, items: list[dict], plain: list[str], obeyed: list[str]) -> list[str]:
    """Candidate (c): the plain translation where it writes every term; else the source
    with each missed term written as its translation ("send it this fin de semaine"), which
    the model may copy, agreeing with it (the words around a placeholder cannot); where the
    output then misses a term, the shipped path's output (placeholders for the missed terms)."""
    from crossattn.glossary import Glossary

    out = []
    for item, hyp, fallback in zip(items, plain, obeyed):
        missed = {t for t in item["glossary"].values() if not uses(hyp, t)}
        if not missed:
            out.append(hyp)
            continue
        source, last = [], 0
        for start, end, translation in Glossary(item["glossary"]).find(item["source"]):
            source += [item["source"][last:start], translation if translation in missed else item["source"][start:end]]
            last = end
        inline = translator.translate(["".join(source) + item["source"][last:]])[0]
        out.append(inline if all(uses(inline, t) for t in item["glossary"].values()) else fallback)
    return out


def obey_best(translator, items: list[dict], plain: list[str], candidates: list[list[str]], n: int = 8) -> list[str]:
    """Candidate (c): the plain translation where it writes every term; else, of the
    ``candidates`` (other mechanisms' outputs) and the first of the plain search's ``n``
    best that writes the most terms, one that writes the most terms and, among those, the
    one the model scores best for the source without placeholders (mean log-probability
    per target piece, CTranslate2's score_batch)."""
    target = translator.tokenizer.target_side()
    out = []
    for k, item in enumerate(items):
        terms = list(item["glossary"].values())
        if all(uses(plain[k], t) for t in terms):
            out.append(plain[k])
            continue
        alternatives = translator.translate_alternatives([item["source"]], n)[0]
        options = [max(alternatives, key=lambda h: sum(uses(h, t) for t in terms))] + [c[k] for c in candidates]
        source = [translator.pieces[i] for ids in translator._sources([item["source"]], False)[0].ids for i in ids]
        scored = translator.engine.score_batch([source] * len(options),
                                               [[translator.pieces[i] for i in target.encode(h)] for h in options],
                                               max_input_length=0)
        mean = [sum(r.log_probs) / max(len(r.log_probs), 1) for r in scored]
        best = max(range(len(options)), key=lambda j: (sum(uses(options[j], t) for t in terms), mean[j]))
        out.append(options[best])
    return out


POOL_SEARCHES = {"held8": ("held", 8), "plain4": ("plain", 4), "plain8": ("plain", 8), "plain16": ("plain", 16)}
EXTRAS = ("placeholders", "obey_inline", "obey_aligned")  # other mechanisms' outputs offered as candidates
# name -> (the pool's parts it chooses among, per piece): "placeholders" (the placeholder
# translation) is in every variant; "extra:<mechanism>" is that mechanism's output
VARIANTS = {
    "best_held8_plain8": (("held8", "plain8"), True),
    "best_held8_plain8_sum": (("held8", "plain8"), False),
    "best_plain4": (("plain4",), True),
    "best_plain8": (("plain8",), True),
    "best_plain16": (("plain16",), True),
    "best_held8": (("held8",), True),
    "best_held8_plain16": (("held8", "plain16"), True),
    "best_held8_plain8_every": (("held8", "plain8", "extra:placeholders"), True),
    "best_held8_plain8_inline": (("held8", "plain8", "extra:obey_inline"), True),
    "best_plain8_aligned": (("plain8", "extra:obey_aligned"), True),
}


def held_sentences(translator, item: dict) -> tuple[list, list, list]:
    """The library's placeholder translation of one item (``Translator._obey`` without the
    best-scored choice): its SourceTexts, its sentences' target ids, and the sentences that
    hold placeholders (``Translator._glossary_sentences``)."""
    from crossattn.decoding import decoding_settings
    from crossattn.glossary import Glossary

    beam, alpha = decoding_settings(translator.decoding, None, None)
    glossary = Glossary(item["glossary"])
    plain = translator._sources([item["source"]], True)
    plain_hyps = translator._search([ids for s in plain for ids in s.ids], beam, alpha, 64)
    sources, _, hyps = translator._obey([item["source"]], glossary, plain, plain_hyps, beam, alpha, True, 64, True,
                                        best_scored=False)
    wanted = translator._sources([item["source"]], True, glossary)
    return sources, hyps, translator._glossary_sentences(plain, wanted, sources, hyps)


def candidate_pools(translator, held: list[tuple], extras: dict[str, list[str]]) -> tuple[list, dict[str, float]]:
    """Per item, per held sentence: its candidates from every part of the pool (the
    library's ``_glossary_candidates``, one call per part so that each part is timed:
    its search and its scoring), and the seconds each part took for all items at once.
    An extra mechanism's output is offered only for items of one sentence."""
    from crossattn.decoding import decoding_settings

    beam, alpha = decoding_settings(translator.decoding, None, None)
    sentences = [(k, s) for k, (sources, _, found) in enumerate(held) for s in found]
    flat = [s for _, s in sentences]
    pools: list[list] = [[] for _ in flat]
    seconds = {}
    parts = [(name, {name: search}, None) for name, search in POOL_SEARCHES.items()]
    parts += [(f"extra:{m}", {}, [[extras[m][k]] if len(held[k][0][0].ids) == 1 else [] for k, _ in sentences])
              for m in EXTRAS if m in extras]
    for name, searches, extra in parts:
        start = time.perf_counter()
        found = translator._glossary_candidates(flat, searches, beam, alpha, 64, True, extra)
        seconds[name] = round(time.perf_counter() - start, 1)
        for pool, candidates in zip(pools, found):
            for c in candidates:
                c.origin = name if c.origin != "placeholders" else "placeholders"
                pool.append(c)
    out: list[list] = [[] for _ in held]
    for (k, s), pool in zip(sentences, pools):
        out[k].append((s, pool))
    return out, seconds


def chosen(translator, held: list[tuple], pools: list, parts: tuple[str, ...], per_piece: bool) -> list[str]:
    """Each item's output when each of its held sentences takes, of the candidates from
    ``parts`` (and the placeholder translation), the one that writes the most terms and
    then scores best (mean per piece or sum): the library's rule (Candidate.rank_key)
    applied to a part of the pool."""
    out = []
    for (sources, hyps, _), item_pools in zip(held, pools):
        hyps = list(hyps)
        for s, pool in item_pools:
            options = [c for c in pool if c.origin == "placeholders" or c.origin in parts]
            best = max(options, key=lambda c: (c.written, c.log_prob / max(c.pieces, 1) if per_piece else c.log_prob))
            hyps[s.position] = best.ids
        it = iter(hyps)
        out.append(sources[0].finish([translator.tokenizer.decode(next(it)) for _ in sources[0].ids]))
    return out


def with_placeholders(translator, item: dict) -> tuple[str, int, int]:
    """Placeholders for every term (the path shipped before the plain translation was
    tried first): the library's steps, counting the term placeholders the model kept
    (after the n-best retry); the others were appended at the end of their text by
    SourceText.finish: in use, but out of place."""
    from crossattn.decoding import decoding_settings
    from crossattn.glossary import restore_terms

    beam, alpha = decoding_settings(translator.decoding, None, None)
    source = translator._sources([item["source"]], True, item["glossary"])[0]
    hyps = translator._keep_terms([source], source.ids, translator._search(source.ids, beam, alpha, 64), beam, alpha,
                                  64, True)
    decoded = [translator.tokenizer.decode(h) for h in hyps]
    terms = source.terms
    for text in decoded:
        _, terms = restore_terms(text, terms)
    return source.finish(decoded), len(source.terms) - len(terms), len(source.terms)


def outside(hyp: str, found: list[tuple[str, list[int]]]) -> str:
    """``hyp`` without its terms, whatever words it used for them: a term it writes as the
    glossary says is removed as a string; for a term it does not, the words the alignment
    heads link to the term's source words are removed (a plain translation's "e-mail"
    for "email" is the term's translation too, not a word of the rest of the sentence)."""
    drop = {j for translation, links in found if not uses(hyp, translation) for j in links}
    kept = " ".join(w for j, w in enumerate(hyp.split()) if j not in drop)
    return without_terms(kept, [translation for translation, _ in found])


def score(items: list[dict], hyps: list[str], found: list[list[tuple[str, list[int]]]] | None = None) -> dict:
    """Term use, BLEU, chrF; chrF outside the terms as first measured (the entries'
    translations removed from hypothesis and reference as strings) and, with ``found``
    (term_links of ``hyps``), with each hypothesis' own words for a term it misses removed
    as well (``outside``)."""
    import sacrebleu

    refs = [item["reference"] for item in items]
    terms = [list(item["glossary"].values()) for item in items]
    used = [uses(h, t) for h, ts in zip(hyps, terms) for t in ts]
    outside_r = [without_terms(r, ts) for r, ts in zip(refs, terms)]
    out = {"term_use": round(100 * sum(used) / len(used), 2), "terms": len(used),
           "bleu": round(sacrebleu.corpus_bleu(hyps, [refs]).score, 2),
           "chrf": round(sacrebleu.corpus_chrf(hyps, [refs]).score, 2),
           "chrf_outside_terms": round(sacrebleu.corpus_chrf(
               [without_terms(h, ts) for h, ts in zip(hyps, terms)], [outside_r]).score, 2)}
    if found is not None:
        out["chrf_outside_terms_aligned"] = round(sacrebleu.corpus_chrf(
            [outside(h, f) for h, f in zip(hyps, found)], [outside_r]).score, 2)
    return out


def outside_interval(items: list[dict], hyps: list[str], base: list[str], samples: int = 1000,
                     seed: int = 0) -> list[float]:
    """The 95% interval of chrF outside the terms of ``hyps`` minus that of ``base``, by
    paired bootstrap resampling of the sentences."""
    import sacrebleu

    terms = [list(item["glossary"].values()) for item in items]
    refs = [without_terms(item["reference"], ts) for item, ts in zip(items, terms)]
    h = [without_terms(x, ts) for x, ts in zip(hyps, terms)]
    b = [without_terms(x, ts) for x, ts in zip(base, terms)]
    # per-sentence chrF statistics, summed over each resample: corpus chrF of the resample
    # without scoring it again (a few seconds instead of a minute per mechanism)
    chrf = sacrebleu.metrics.CHRF()
    h_stats, b_stats = (chrf._extract_corpus_statistics(x, [refs]) for x in (h, b))
    rng = random.Random(seed)
    diffs = []
    for _ in range(samples):
        pick = [rng.randrange(len(items)) for _ in items]
        diffs.append(chrf._compute_score_from_stats([sum(col) for col in zip(*(h_stats[i] for i in pick))]).score -
                     chrf._compute_score_from_stats([sum(col) for col in zip(*(b_stats[i] for i in pick))]).score)
    diffs.sort()
    return [round(diffs[int(0.025 * samples)], 2), round(diffs[int(0.975 * samples) - 1], 2)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sentences", type=int, default=100, help="sentences per dev set and direction")
    ap.add_argument("--directions", default="en-fr,fr-en")
    ap.add_argument("--mechanisms", default="none,placeholders,missed,shipped,aligned,obey_aligned,obey_inline,"
                    "obey_best,pool", help="'pool' (after 'missed' and the mechanisms offered as extra candidates): "
                    "the best-scored variants (VARIANTS)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default="bench/results/glossary.json")
    ap.add_argument("--outputs", help="a file outside the project to write each mechanism's translations to")
    ap.add_argument("--cache", help="a file outside the project to keep the dev glossaries in between runs "
                    "(they take minutes to align; the dev data is never copied into the project)")
    args = ap.parse_args()
    if not all(path.is_file() for path in SETS.values()):
        sys.exit(f"dev sets not found under {DATA}")
    from crossattn.translator import Translator

    results = {"machine": machine_info(args.threads), "sentences_per_set": args.sentences, "directions": {}}
    start = time.perf_counter()
    cache = Path(args.cache) if args.cache else None
    if cache is not None and cache.is_file():
        glossaries = json.loads(cache.read_text(encoding="utf-8"))
    else:
        glossaries = dev_glossaries(args.sentences)
        if cache is not None:
            write_text_atomic(cache, json.dumps(glossaries, ensure_ascii=False))
    results["dev_glossary_seconds"] = round(time.perf_counter() - start, 1)
    for direction in args.directions.split(","):
        items = glossaries[direction]
        translator = Translator.load(direction, device="cpu", dtype="fp32", threads=args.threads)
        sources = [item["source"] for item in items]
        outputs, seconds = {}, {}
        for mechanism in args.mechanisms.split(","):
            start = time.perf_counter()
            if mechanism == "none":
                outputs[mechanism] = translator.translate(sources)
            elif mechanism == "placeholders":
                done = [with_placeholders(translator, item) for item in items]
                outputs[mechanism] = [out for out, _, _ in done]
                kept = 100 * sum(k for _, k, _ in done) / sum(n for _, _, n in done)
            elif mechanism == "shipped":
                outputs[mechanism] = [translator.translate([item["source"]], glossary=item["glossary"])[0] for item in items]
            elif mechanism == "missed":
                held = [held_sentences(translator, item) for item in items]
                outputs[mechanism] = []
                for item_sources, hyps, _ in held:
                    it = iter(hyps)
                    outputs[mechanism].append(item_sources[0].finish([translator.tokenizer.decode(next(it))
                                                                      for _ in item_sources[0].ids]))
            elif mechanism == "pool":  # the candidates of every variant, chosen among below
                pools, pool_seconds = candidate_pools(translator, held, {m: outputs[m] for m in EXTRAS if m in outputs})
                report_pool = {"seconds": pool_seconds, "held_sentences": sum(len(p) for p in pools),
                               "candidates": sum(len(c) for p in pools for _, c in p)}
                for name, (parts, per_piece) in VARIANTS.items():
                    if all(part in pool_seconds for part in parts):
                        outputs[name] = chosen(translator, held, pools, parts, per_piece)
                        seconds[name] = round(seconds["missed"] + sum(pool_seconds[part] for part in parts), 1)
                continue
            elif mechanism == "aligned":
                outputs[mechanism] = aligned_replacement(translator, items, outputs["none"])
            elif mechanism == "obey_best":
                outputs[mechanism] = obey_best(translator, items, outputs["none"],
                                               [outputs["missed"], outputs["obey_aligned"]])
            elif mechanism == "obey_inline":
                outputs[mechanism] = obey_inline(translator, items, outputs["none"], outputs["missed"])
            elif mechanism == "obey_aligned":
                outputs[mechanism] = obey_aligned(translator, items, outputs["none"], outputs["missed"])
            else:
                sys.exit(f"unknown mechanism {mechanism}")
            seconds[mechanism] = round(time.perf_counter() - start, 1)
            print(direction, mechanism, seconds[mechanism], "s, load", os.getloadavg()[0], time.strftime("%H:%M:%S"),
                  flush=True)
        report: dict = {"entries": sum(len(item["glossary"]) for item in items), "sentences": len(items),
                        "utc_end_of_translation": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}
        if "pool" in args.mechanisms.split(","):
            report["pool"] = report_pool
        # sentences whose plain translation writes every term already: does a mechanism touch them?
        plain = outputs.get("none")
        obeyed = [k for k, item in enumerate(items) if plain and all(uses(plain[k], t) for t in item["glossary"].values())]
        report["plain_obeys_every_term"] = len(obeyed)
        links: dict[tuple[int, str], list] = {}  # many mechanisms share an output: each is aligned once
        for mechanism, hyps in outputs.items():
            todo = sorted({k for k, hyp in enumerate(hyps) if (k, hyp) not in links})
            if todo:
                links.update(zip([(k, hyps[k]) for k in todo],
                                 term_links(translator, [items[k] for k in todo], [hyps[k] for k in todo])))
            found = [links[k, hyp] for k, hyp in enumerate(hyps)]
            report[mechanism] = {"all": score(items, hyps, found), "seconds": seconds[mechanism]}
            if plain:
                report[mechanism]["changed_where_plain_obeys"] = sum(hyps[k] != plain[k] for k in obeyed)
                if mechanism != "none":
                    report[mechanism]["chrf_outside_terms_vs_none_95"] = outside_interval(items, hyps, plain)
                if "missed" in outputs and mechanism not in ("none", "missed"):
                    report[mechanism]["chrf_outside_terms_vs_missed_95"] = outside_interval(items, hyps,
                                                                                             outputs["missed"])
            if mechanism == "placeholders":
                report[mechanism]["placeholders_kept_percent"] = round(kept, 2)
            for name in SETS:
                idx = [k for k, item in enumerate(items) if item["set"] == name]
                report[mechanism][name] = score([items[k] for k in idx], [hyps[k] for k in idx], [found[k] for k in idx])
            for n in (1, 2, 3):
                idx = [k for k, item in enumerate(items) if len(item["glossary"]) == n]
                if idx:
                    report[mechanism][f"{n}_terms"] = score([items[k] for k in idx], [hyps[k] for k in idx],
                                                            [found[k] for k in idx])
        # no sentences of the dev sets in the results: the data is never copied into the project
        results["directions"][direction] = report
        if args.outputs:
            write_text_atomic(Path(f"{args.outputs}.{direction}"), json.dumps(outputs, ensure_ascii=False))
        print(direction, json.dumps({m: report[m]["all"] for m in outputs}), flush=True)
        results["machine"]["load_avg_end"] = os.getloadavg()
        # written after each direction: a long run stopped halfway keeps what it measured
        write_text_atomic(Path(args.json), json.dumps(results, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
