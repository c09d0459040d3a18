"""The one normalizer and the sentence splitter (crossattn/text.py), and what translate
does with them: every sentence of a paragraph reaches the output, lines stay lines."""

from __future__ import annotations

import pytest

from crossattn.text import (clean_text, dollars_in_signs, dollars_in_words, is_shouted, protect_spans, restore_spans,
                            sentence_case, split_sentences)

from conftest import run_cli


@pytest.mark.parametrize("text, sentences", [
    ("I went to the market this morning. It was raining, so I took an umbrella. My sister stayed at home "
     "because she was sick.",
     ["I went to the market this morning.", "It was raining, so I took an umbrella.",
      "My sister stayed at home because she was sick."]),
    ("Dr. Smith met Mr. Jones and Mrs. Brown.", ["Dr. Smith met Mr. Jones and Mrs. Brown."]),
    ("We met at 9 a.m. and left at 5 p.m. on Monday.", ["We met at 9 a.m. and left at 5 p.m. on Monday."]),
    ("He lives in the U.S. with his wife.", ["He lives in the U.S. with his wife."]),
    ("Bring tools, e.g. a hammer. Then start.", ["Bring tools, e.g. a hammer.", "Then start."]),
    ("Pi is about 3.14. It never ends.", ["Pi is about 3.14.", "It never ends."]),
    ("It costs $2.50 per kg.", ["It costs $2.50 per kg."]),
    ("Wait... What? Really?! Yes.", ["Wait...", "What?", "Really?!", "Yes."]),
    ("Well… I don't know.", ["Well…", "I don't know."]),
    ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
    ('"Stop!" he said. We went home.', ['"Stop!" he said.', "We went home."]),
    ("(It was late.) We went home.", ["(It was late.)", "We went home."]),
    ("I can't. Please help.", ["I can't.", "Please help."]),
    ("J. K. Rowling wrote it.", ["J. K. Rowling wrote it."]),
    ("M. Dupont est arrivé. Il parle. Vraiment ? Oui !", ["M. Dupont est arrivé.", "Il parle.", "Vraiment ?", "Oui !"]),
    ("« Viens ! » dit-il. Elle vint.", ["« Viens ! » dit-il.", "Elle vint."]),
    ("He bought apples, pears, etc. Then he left.", ["He bought apples, pears, etc.", "Then he left."]),
    ("See p. 12 and fig. 3 for details.", ["See p. 12 and fig. 3 for details."]),
    ("no capital after. this stays one", ["no capital after. this stays one"]),
    ("In 1990. In 2000 he moved.", ["In 1990.", "In 2000 he moved."]),
    ("It rained; we stayed home. Then it stopped.", ["It rained;", "we stayed home.", "Then it stopped."]),
    ("Il pleuvait ; nous sommes restés.", ["Il pleuvait ;", "nous sommes restés."]),
    ("Tom &amp; Jerry; the cat.", ["Tom &amp; Jerry;", "the cat."]),  # an HTML entity is no clause end
    ("The man – a doctor – said no.", ["The man – a doctor – said no."]),  # dashes: no split (loops)
    ("A well-known, self-made man.", ["A well-known, self-made man."]),
    ("", []),
    ("   ", []),
    ("One sentence without a final stop", ["One sentence without a final stop"]),
])
def test_split_sentences(text, sentences):
    assert split_sentences(text) == sentences
    assert " ".join(split_sentences(text)) == " ".join(text.split())  # nothing lost, nothing added


def test_clean_text_is_what_every_path_uses():
    assert clean_text("\ufeffHello,\u00a0world\u2028 again\x07 ") == "Hello, world again"
    assert clean_text("e\u0301t\u00e9") == "été"  # NFC


@pytest.mark.parametrize("text, protected, spans", [
    ("See https://example.com/docs, or write to info@example.org.", "See X1, or write to X2.",
     ["https://example.com/docs", "info@example.org"]),
    ("Visit www.example.com. Then call X1!", "Visit X2. Then call X1!", ["www.example.com"]),  # no collision
    ("(see https://en.wikipedia.org/wiki/Foo_(bar)).", "(see X1).", ["https://en.wikipedia.org/wiki/Foo_(bar)"]),
    ("Écrivez à jean.dupont@exemple.fr : merci !", "Écrivez à X1 : merci !", ["jean.dupont@exemple.fr"]),
    ("No address here, only 3.5 % and e.g. this.", "No address here, only 3.5 % and e.g. this.", []),
    ("go to http:// now", "go to http:// now", []),
])
def test_urls_and_addresses_become_placeholders_and_come_back(text, protected, spans):
    got, pairs = protect_spans(text)
    assert got == protected and [original for _, original in pairs] == spans
    assert restore_spans(got, pairs) == text


def test_restore_spans_loses_nothing_and_adds_nothing():
    spans = [("X1", "https://a.example/x"), ("X2", "b@c.org")]
    # a placeholder the model dropped is appended; a repeated one is put back once
    assert restore_spans("Voir X1 X1 pour les détails.", spans) == "Voir https://a.example/x pour les détails. b@c.org"
    assert restore_spans("VOIR X1 ET x2.", spans) == "VOIR https://a.example/x ET b@c.org."


@pytest.mark.parametrize("sentence, shouted, cased", [
    ("THE MEETING WILL START AT 9.", True, "The meeting will start at 9."),
    ("LA LOI SUR LA CONCURRENCE", True, "La loi sur la concurrence"),
    ("« ÉCRIVEZ-NOUS À X1 ! »", True, "« Écrivez-nous à X1 ! »"),
    ("NATO and the EU met in Brussels.", False, None),  # acronyms in normal text
    ("OK.", False, None),
    ("I", False, None),
    ("", False, None),
])
def test_sentences_in_capitals(sentence, shouted, cased):
    assert is_shouted(sentence) is shouted
    if cased:
        assert sentence_case(sentence) == cased


def test_sentence_case_gives_names_their_capital_back():
    names = {"monday", "paris"}
    assert sentence_case("SEE YOU IN PARIS ON MONDAY, X1.", names.__contains__) == "See you in Paris on Monday, X1."
    # modeldir asks the vocabulary: a word whose capitalized form it holds whole
    from crossattn.modeldir import PRETRAINED_DIR, capitalized
    from crossattn.tokenizer import Tokenizer

    tokenizer = Tokenizer(PRETRAINED_DIR / "tokenizer.model")
    assert [capitalized(tokenizer, w) for w in ("monday", "paris", "canada")] == [True, True, True]
    assert [capitalized(tokenizer, w) for w in ("meeting", "the", "will", "see")] == [False, False, False, False]


@pytest.mark.parametrize("text, words, count", [
    ("It costs $3,580 a year.", "It costs 3,580 dollars a year.", 1),
    ("more than $2 million and $ 7.50", "more than 2 million dollars and 7.50 dollars", 2),
    ("ceux qui gagnent 39 000 $ et moins", "ceux qui gagnent 39 000 dollars et moins", 1),
    ("US$5, a $ sign, $x", "US$5, a $ sign, $x", 0),  # only amounts, and not other currencies' "$"
])
def test_dollar_amounts_in_words(text, words, count):
    assert dollars_in_words(text) == (words, count)


def test_dollar_amounts_back_in_signs():
    assert dollars_in_signs("more than 2 million dollars and 3,580 dollars", "en", 2) == "more than $2 million and $3,580"
    assert dollars_in_signs("2 millions de dollars et 3 580 dollars", "fr", 2) == "2 millions de dollars et 3 580 $"
    assert dollars_in_signs("5 dollars, 6 dollars", "en", 1) == "$5, 6 dollars"  # no more than the source had
    assert dollars_in_signs("5 dollars", "de", 1) == "5 dollars"  # a language without a rule: as translated


def test_translation_keeps_urls_capitals_and_dollar_amounts():
    """Through the shipped models: the addresses come back as written, a heading in capitals
    is translated (not spelled out) and given back in capitals."""
    from crossattn.translator import Translator

    en_fr, fr_en = Translator.load("en-fr", device="cpu"), Translator.load("fr-en", device="cpu")
    out = en_fr.translate(["See https://example.com/docs?id=3 for details, or write to info@example.org.",
                           "THE CAT IS SLEEPING ON THE SOFA."])
    assert "https://example.com/docs?id=3" in out[0] and "info@example.org" in out[0], out
    assert out[1] == out[1].upper() and "CHAT" in out[1], out
    (out,) = fr_en.translate(["Écrivez-moi à jean.dupont@exemple.fr. MERCI BEAUCOUP !"])
    assert "jean.dupont@exemple.fr" in out and "THANK" in out, out
    # "$" is not in the shipped vocabulary: amounts go through in words and come back signed
    assert "25 $" in en_fr.translate(["The ticket costs $25."])[0]
    assert "$25" in fr_en.translate(["Le billet coûte 25 $."])[0]


def test_every_sentence_of_a_paragraph_reaches_the_output():
    """The shipped model, through the command: three sentences in, three translated out."""
    paragraph = ("I went to the market this morning. It was raining, so I took an umbrella. "
                 "My sister stayed at home because she was sick.")
    proc = run_cli(["translate", paragraph])
    assert proc.returncode == 0, proc.stderr
    (out,) = proc.stdout.splitlines()
    sentences = split_sentences(out)
    assert len(sentences) == 3, out
    assert "marché" in sentences[0] and "parapluie" in sentences[1] and "malade" in sentences[2], out


def test_a_bom_file_translates_its_first_line_like_the_others(tmp_path):
    """A UTF-8 BOM must not reach the model as pieces it never saw."""
    plain, bom = tmp_path / "plain.txt", tmp_path / "bom.txt"
    plain.write_text("Hello, how are you?\nThank you.\n", encoding="utf-8")
    bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    a = run_cli(["translate", "-i", plain, "--beam", "1"])
    b = run_cli(["translate", "-i", bom, "--beam", "1"])
    assert a.returncode == b.returncode == 0
    assert a.stdout == b.stdout and len(a.stdout.splitlines()) == 2
