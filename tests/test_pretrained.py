"""The shipped en-fr model: present, intact, and actually translating."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from crossattn.modeldir import PRETRAINED_DIR, sha256_file
from crossattn.torch_engine import TorchTranslator as Translator

from conftest import SHARED_DATA


# (English, words the French must contain: any of each alternative tuple)
KNOWN = [
    ("Hello, how are you?", [("bonjour", "salut"), ("comment",)]),
    ("I love you.", [("aime",)]),
    ("The cat is sleeping on the sofa.", [("chat",), ("dort",), ("canapé",)]),
    ("Where is the train station?", [("où",), ("gare",)]),
    ("Thank you very much.", [("merci",)]),
    ("I don't understand.", [("comprends",)]),
]


@pytest.fixture(scope="module")
def translator(shipped_translator) -> Translator:
    return shipped_translator


def test_shipped_files_and_budget():
    config = json.loads((PRETRAINED_DIR / "config.json").read_text())
    size = sum(p.stat().st_size for p in PRETRAINED_DIR.iterdir())
    assert size <= 50 * 2**20, f"shipped model is {size / 2**20:.1f} MiB"
    for name, digest in config["files"].items():
        assert sha256_file(PRETRAINED_DIR / name) == digest
    assert (PRETRAINED_DIR / "MODEL_CARD.md").exists()


def test_parameter_budget(translator):
    assert translator.model.num_parameters() <= 25_000_000


def test_known_sentences(translator):
    outputs = translator.translate([en for en, _ in KNOWN])
    for (en, required), fr in zip(KNOWN, outputs):
        low = fr.lower()
        for alternatives in required:
            assert any(w in low for w in alternatives), f"{en!r} -> {fr!r} lacks {alternatives}"


def test_greedy_and_beam_agree_on_easy_input(translator):
    text = ["I am hungry."]
    assert translator.translate(text, beam=1) == translator.translate(text, beam=4) == ["J'ai faim."]


def test_cli_default_model_translates_the_article_example():
    out = subprocess.run([sys.executable, "-m", "crossattn", "translate", "Hello, how are you?"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "comment" in out.stdout.lower() and out.stdout.count("\n") == 1


@pytest.mark.skipif(not (SHARED_DATA / "tatoeba" / "dev.tsv").exists(), reason="../shared/data not present")
def test_dev_bleu_floor(tmp_path):
    """A broken model or tokenizer on main shows up here (measured: see MODEL_CARD.md)."""
    dev = tmp_path / "dev300.tsv"
    lines = (SHARED_DATA / "tatoeba" / "dev.tsv").read_text(encoding="utf-8").splitlines()[:300]
    dev.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "crossattn", "evaluate", "--test", str(dev), "--beam", "1"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    bleu = float(out.stdout.split()[1])
    chrf = float(out.stdout.split()[3])
    assert bleu >= BLEU_FLOOR_DEV300 and chrf >= CHRF_FLOOR_DEV300, out.stdout


BLEU_FLOOR_DEV300 = 40.0
CHRF_FLOOR_DEV300 = 60.0
