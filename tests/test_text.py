"""The one normalizer and the sentence splitter (crossattn/text.py), and what translate
does with them: every sentence of a paragraph reaches the output, lines stay lines."""

from __future__ import annotations

import pytest

from crossattn.text import clean_text, split_sentences

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
