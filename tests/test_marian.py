"""Importing Marian / OPUS-MT checkpoints, checked against Hugging Face's own MarianMTModel.

Tiny Marian models with random weights (MarianConfig, a few layers) and SentencePiece models
trained here on a tiny corpus stand in for a real OPUS-MT folder: our forward gives
Hugging Face's logits and cross-attention, our searches and `crossattn translate`'s
CTranslate2 give `generate`'s tokens, and every command takes the imported directory.
"""

from __future__ import annotations

import io
import json
import pickle
import random
import time

import pytest
import torch

transformers = pytest.importorskip("transformers")
spm = pytest.importorskip("sentencepiece")

from crossattn.decode import beam_search  # noqa: E402
from crossattn.decoding import max_output_length  # noqa: E402
from crossattn.marian import MarianImportError, import_marian  # noqa: E402
from crossattn.modeldir import load_model_dir  # noqa: E402

EN = "the a cat dog house red blue small big runs sees eats green old new man woman child city river".split()
FR = "le la chat chien maison rouge bleu petit grand court voit mange vert vieux homme femme enfant ville".split()
TEXTS = ["the cat sees the dog", "a big red house runs", "the old woman eats", "a child", "green river city man"]


def spm_bytes(words: list[str], seed: int, byte_fallback: bool = False) -> bytes:
    rng = random.Random(seed)
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 9))) for _ in range(300)]
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=buf, model_type="unigram",
                                   vocab_size=300 if byte_fallback else 60, byte_fallback=byte_fallback,
                                   character_coverage=1.0, minloglevel=2, num_threads=1, hard_vocab_limit=False)
    return buf.getvalue()


def write_checkpoint(folder, *, d_model=32, heads=4, ffn=64, layers=2, activation="swish", vocab_size=None,
                     seed=0, eos_bias=2.0, positions=64, target_byte_fallback=False, **config):
    """A Hugging Face Marian folder with random weights, scaled so that the model's output
    depends on its input (tiny default initialisations give one repeated token)."""
    from transformers import MarianConfig, MarianMTModel

    folder.mkdir(parents=True, exist_ok=True)
    source, target = spm_bytes(EN, 1), spm_bytes(FR, 2, target_byte_fallback)
    vocab = {"</s>": 0, "<unk>": 1}
    for data in (source, target):
        sp = spm.SentencePieceProcessor()
        sp.LoadFromSerializedProto(data)
        for i in range(sp.get_piece_size()):
            if not (sp.is_control(i) or sp.is_unknown(i)):
                vocab.setdefault(sp.id_to_piece(i), len(vocab))
    for i in range(len(vocab), (vocab_size or 0) - 1):  # padded to an OPUS-MT-sized vocabulary
        vocab[f"▁filler{i}"] = i
    vocab["<pad>"] = len(vocab)
    (folder / "source.spm").write_bytes(source)
    (folder / "target.spm").write_bytes(target)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    n = len(vocab)
    cfg = MarianConfig(vocab_size=n, decoder_vocab_size=n, d_model=d_model, encoder_layers=layers,
                       decoder_layers=layers, encoder_attention_heads=heads, decoder_attention_heads=heads,
                       encoder_ffn_dim=ffn, decoder_ffn_dim=ffn, max_position_embeddings=positions, pad_token_id=n - 1,
                       eos_token_id=0, decoder_start_token_id=n - 1, activation_function=activation,
                       scale_embedding=True, **config)
    torch.manual_seed(seed)
    model = MarianMTModel(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
            elif p.dim() == 2 and "shared" not in name and "embed_positions" not in name:
                p.normal_(0, p.size(1) ** -0.5)
        model.model.shared.weight.normal_(0, 0.2)
        model.model.shared.weight[n - 1] = 0  # <pad>'s row, zero as in every OPUS-MT checkpoint
        model.final_logits_bias.normal_(0, 0.5)
        model.final_logits_bias[0, 0] += eos_bias  # </s> comes within a few tokens
    model.save_pretrained(folder)
    return model


@pytest.fixture(scope="module")
def marian(tmp_path_factory):
    """(Hugging Face model, its folder, our imported model directory)."""
    from transformers import MarianMTModel

    root = tmp_path_factory.mktemp("marian")
    write_checkpoint(root / "opus-mt-en-fr")
    hf = MarianMTModel.from_pretrained(root / "opus-mt-en-fr", attn_implementation="eager").eval()
    import_marian(root / "opus-mt-en-fr", root / "imported")
    return hf, root / "opus-mt-en-fr", root / "imported"


def batch(tok, texts):
    ids = [tok.encode(t) + [tok.eos_id] for t in texts]
    width = max(map(len, ids))
    return torch.tensor([i + [tok.pad_id] * (width - len(i)) for i in ids])


def test_tokenizer_gives_marian_tokenizers_ids(marian):
    from transformers import MarianTokenizer

    _, folder, out = marian
    _, tok, config = load_model_dir(out)
    hf_tok = MarianTokenizer(str(folder / "source.spm"), str(folder / "target.spm"), str(folder / "vocab.json"))
    for text in TEXTS + ["the zebra eats"]:  # "z" is unknown to the source model
        assert hf_tok(text)["input_ids"] == tok.encode(text) + [tok.eos_id]
        ids = tok.encode(text)
        assert tok.decode(ids) == hf_tok.decode(ids, skip_special_tokens=True)
    spans = tok.encode_with_spans("the zebra eats")  # <unk> ("z") included
    assert [i for i, _, _ in spans] == tok.encode("the zebra eats")
    assert "".join("the zebra eats"[b:e] for _, b, e in spans) == "thezebraeats"
    for text in ["le chat voit le chien", "la maison rouge"]:  # a translation is cut by the target model
        assert hf_tok(text_target=text)["input_ids"] == tok.target_side().encode(text) + [tok.eos_id]
    assert config["languages"] == {"source": "en", "target": "fr"}  # read off the folder's name
    assert config["tokenizer"] == "shared-vocabulary"


def test_logits_and_cross_attention_equal_hugging_faces(marian):
    hf, _, out = marian
    model, tok, _ = load_model_dir(out)
    src = batch(tok, TEXTS)  # padded rows included
    tgt = torch.randint(0, tok.vocab_size - 1, (len(TEXTS), 6))
    tgt[:, 0] = tok.pad_id  # the decoder starts from <pad>
    with torch.no_grad():
        ref = hf(input_ids=src, attention_mask=src.ne(tok.pad_id), decoder_input_ids=tgt, output_attentions=True)
        ours = model(src, tgt, need_weights=True)
    assert (ref.logits - ours.logits).abs().max() <= 1e-4
    assert len(ours.cross_attention) == len(ref.cross_attentions)
    for theirs, mine in zip(ref.cross_attentions, ours.cross_attention):  # per layer, (batch, heads, tgt, src)
        assert mine.shape == theirs.shape
        assert (mine - theirs).abs().max() <= 1e-5


def hf_generate(hf, ids, beam, alpha, **extra):
    out = hf.generate(input_ids=torch.tensor([ids]), num_beams=beam, length_penalty=alpha, do_sample=False,
                      max_new_tokens=max_output_length(len(ids), 64), bad_words_ids=[[hf.config.pad_token_id]],
                      renormalize_logits=True, early_stopping=True, forced_eos_token_id=None, **extra)[0].tolist()
    return [t for t in out[1:] if t not in (hf.config.eos_token_id, hf.config.pad_token_id)]


@pytest.mark.parametrize("beam", [1, 4])
def test_searches_give_generates_tokens(marian, beam):
    """Our torch search and CTranslate2 (what `crossattn translate` runs) write the tokens
    `generate` writes. CTranslate2 never writes an empty translation (</s> first), which
    is `generate`'s min_new_tokens=1."""
    from crossattn.translator import Translator

    hf, _, out = marian
    model, tok, _ = load_model_dir(out)
    ct2 = Translator(out, device="cpu", dtype="fp32", threads=1)
    for text in TEXTS:
        ids = tok.encode(text) + [tok.eos_id]
        assert beam_search(model, torch.tensor([ids]), beam, 1.0)[0] == hf_generate(hf, ids, beam, 1.0)
        assert ct2._search([ids[:-1]], beam, 1.0, 8, guard=False)[0] == hf_generate(hf, ids, beam, 1.0,
                                                                                   min_new_tokens=1)
    text = TEXTS[0]
    expected = tok.decode(hf_generate(hf, tok.encode(text) + [tok.eos_id], beam, 1.0, min_new_tokens=1))
    assert ct2.translate([text], beam=beam, alpha=1.0, repetition_guard=False) == [expected]


def test_every_command_takes_the_imported_model(marian, tmp_path, capsys):
    from crossattn.cli import main

    _, _, out = marian
    assert main(["attend", "--model", str(out), "the cat sees the dog", "--json", str(tmp_path / "a.json")]) == 0
    attention = json.loads((tmp_path / "a.json").read_text())
    assert attention["source_tokens"][-1] == "</s>"
    assert main(["explain", "--model", str(out), "the cat", "--json", str(tmp_path / "e.json")]) == 0
    trace = json.loads((tmp_path / "e.json").read_text())
    assert trace["model"]["activation"] == "swish" and trace["model"]["norm_first"] is False
    printed = capsys.readouterr().out  # the post-LN layout, as the network computes it
    assert "swish (SiLU)" in printed and "(+ the final logits bias)" in printed
    assert "LayerNorm -> Linear" not in printed and "added to the residual, then LayerNorm" in printed
    (tmp_path / "pairs.tsv").write_text("the cat sees the dog\tle chat voit le chien\n")
    assert main(["align", "--model", str(out), "--method", "attention", "-i", str(tmp_path / "pairs.tsv"),
                 "-o", str(tmp_path / "links.txt")]) == 0
    links = (tmp_path / "links.txt").read_text().split()
    assert links and all("-" in link for link in links)
    (tmp_path / "links.tsv").write_text("the cat sees the dog\tle chat voit le chien\t0-0 1-1 2-2 3-3 4-4\n" * 4)
    assert main(["align-head", "--model", str(out), "--links", str(tmp_path / "links.tsv"), "--steps", "3",
                 "--dtype", "fp32", "--out", str(tmp_path / "with-head")]) == 0
    assert main(["align", "--model", str(tmp_path / "with-head"), "--method", "head", "-i", str(tmp_path / "pairs.tsv"),
                 "-o", str(tmp_path / "head-links.txt")]) == 0
    assert (tmp_path / "head-links.txt").read_text().strip()
    assert main(["export", "--model", str(out), "--format", "ctranslate2", "--out", str(tmp_path / "ct2")]) == 0
    assert (tmp_path / "ct2" / "model.bin").is_file() and (tmp_path / "ct2" / "vocab.json").is_file()


def test_server_translates_with_the_imported_model(marian):
    from fastapi.testclient import TestClient

    from crossattn.server import Limits, create_app
    from crossattn.translator import Translator

    _, _, out = marian
    translator = Translator(out, device="cpu", dtype="fp32", threads=1)
    with TestClient(create_app(translator, Limits(timeout_s=300), attention_process=False, files=False)) as client:
        reply = client.post("/api/translate", json={"text": "the cat sees the dog"})
        assert reply.status_code == 200, reply.text
        assert isinstance(reply.json()["translation"], str)
        reply = client.post("/translate", json={"q": "the cat sees the dog", "source": "en", "target": "fr"})
        assert reply.status_code == 200 and isinstance(reply.json()["translatedText"], str), reply.text
        data = client.post("/api/attention", json={"text": "the cat sees the dog"}).json()
        cfg = translator.model_config
        assert (data["layers"], data["heads"]) == (cfg.decoder_layers, cfg.n_heads)
        assert data["source_tokens"][-1] == data["target_tokens"][-1] == "</s>"
        assert len(data["attention"][0][0]) == len(data["target_tokens"])


def test_refusals_are_one_line_naming_the_field(tmp_path, capsys):
    from crossattn.cli import main

    folder = tmp_path / "ckpt"
    write_checkpoint(folder)
    config = json.loads((folder / "config.json").read_text())
    capsys.readouterr()  # transformers' progress bars
    for field, value in [("model_type", "bart"), ("share_encoder_decoder_embeddings", False),
                         ("activation_function", "tanh"), ("decoder_vocab_size", 7)]:
        (folder / "config.json").write_text(json.dumps(config | {field: value}))
        with pytest.raises(MarianImportError, match=field):
            import_marian(folder, tmp_path / f"out-{field}", "en", "fr")
        assert main(["import", str(folder), "--out", str(tmp_path / "cli-out")]) == 1
        err = capsys.readouterr().err.strip()
        assert field in err and "\n" not in err
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(MarianImportError, match="give --from and --to"):  # "ckpt" names no languages
        import_marian(folder, tmp_path / "out-langs")
    assert not (tmp_path / "cli-out").exists()


def test_damaged_and_pickled_weights_are_refused(tmp_path):
    from safetensors.torch import load_file

    folder = tmp_path / "opus-mt-en-fr"
    write_checkpoint(folder)
    state = {k: v.clone() for k, v in load_file(str(folder / "model.safetensors")).items()}  # not a view of the file
    (folder / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes()[:1000])
    with pytest.raises(MarianImportError, match="model.safetensors: cannot read weights"):
        import_marian(folder, tmp_path / "out1")
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")  # a plain state dict loads with weights_only=True
    import_marian(folder, tmp_path / "out2")
    model, _, _ = load_model_dir(tmp_path / "out2")
    assert torch.equal(model.embed.tokens.weight, state["model.shared.weight"])

    class RunsCode:
        def __reduce__(self):
            return (print, ("this would run",))

    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"x": RunsCode()}, protocol=2))
    with pytest.raises(MarianImportError, match="weights_only"):
        import_marian(folder, tmp_path / "out3")
    assert not (tmp_path / "out3").exists()


def test_opus_mt_shaped_model_imports_and_matches(tmp_path):
    """opus-mt-en-fr's shape: d 512, 6+6 layers, 8 heads, swish, vocabulary 59,514."""
    from transformers import MarianMTModel

    folder = tmp_path / "opus-mt-en-fr"
    hf = write_checkpoint(folder, d_model=512, heads=8, ffn=2048, layers=6, vocab_size=59514)
    start = time.perf_counter()
    import_marian(folder, tmp_path / "imported")
    print(f"import of the opus-mt-en-fr-shaped model: {time.perf_counter() - start:.1f} s")
    model, tok, _ = load_model_dir(tmp_path / "imported")
    assert model.config.vocab_size == 59514 and model.config.activation == "swish"
    src = batch(tok, TEXTS[:2])
    tgt = torch.tensor([[tok.pad_id, 5, 9, 11]] * 2)
    with torch.no_grad():
        ref = hf(input_ids=src, attention_mask=src.ne(tok.pad_id), decoder_input_ids=tgt).logits
        ours = model(src, tgt).logits
    assert (ref - ours).abs().max() <= 1e-4
    del MarianMTModel


def test_hub_name_is_read_from_the_local_cache(tmp_path, monkeypatch):
    """`crossattn import Helsinki-NLP/opus-mt-en-fr` goes through huggingface_hub; here
    offline, from a cache laid out as the hub writes it (never the internet)."""
    hub = pytest.importorskip("huggingface_hub")
    import shutil

    commit = "0" * 40
    repo = tmp_path / "hub" / "models--Helsinki-NLP--opus-mt-en-fr"
    write_checkpoint(tmp_path / "src")
    shutil.copytree(tmp_path / "src", repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hub.constants, "HF_HUB_OFFLINE", True)
    import_marian("Helsinki-NLP/opus-mt-en-fr", tmp_path / "out")
    _, _, config = load_model_dir(tmp_path / "out")
    assert config["languages"] == {"source": "en", "target": "fr"}  # from the hub name
    with pytest.raises(MarianImportError, match="cannot download"):
        import_marian("Helsinki-NLP/opus-mt-xx-yy", tmp_path / "out2")


ARGOS_SCRIPT = """
import json, sys
import ctranslate2
import argostranslate.package as package, argostranslate.translate as translate

calls = []


class Recording(ctranslate2.Translator):  # what Argos gives CTranslate2 and gets back
    def translate_batch(self, source, *args, **kwargs):
        results = super().translate_batch(source, *args, **kwargs)
        calls.append({"source": source, "target": [r.hypotheses[0] for r in results], "options": kwargs})
        return results


translate.ctranslate2.Translator = Recording
package.install_from_path(sys.argv[1])
translation = translate.get_translation_from_codes("en", "fr")
out = []
for text in json.loads(sys.argv[2]):
    calls.clear()
    out.append({"text": translation.translate(text), "calls": list(calls)})
print(json.dumps(out))
"""


def argos_translations(package, texts: list[str], home) -> list[dict]:
    """Argos Translate itself installs ``package`` and translates each text (float32,
    nothing downloaded, as tests/test_export.py runs it), in a process of its own: per
    text, its output and the pieces it gave CTranslate2 and got back."""
    import subprocess
    import sys

    (home / "cache" / "argos-translate" / "spacy" / "senter" / "model").mkdir(parents=True)
    env = {"HOME": str(home), "XDG_DATA_HOME": str(home / "data"), "XDG_CACHE_HOME": str(home / "cache"),
           "XDG_CONFIG_HOME": str(home / "config"), "ARGOS_CHUNK_TYPE": "SPACY", "PATH": "/usr/bin:/bin",
           "OMP_NUM_THREADS": "1", "ARGOS_INTRA_THREADS": "1", "ARGOS_COMPUTE_TYPE": "float32"}
    proc = subprocess.run([sys.executable, "-c", ARGOS_SCRIPT, str(package), json.dumps(texts)], capture_output=True,
                          text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("shape", ["tiny", "opus-mt-en-fr"])
def test_argos_package_translates_as_crossattn(tmp_path, shape):
    """`export --format argos` of an imported model: Argos Translate installs the package
    and, with its own settings (beam 4, length penalty 0.2), gives CTranslate2 the pieces
    our tokenizer cuts, gets back the pieces `crossattn translate` writes, and joins them
    (with source.spm, the package's one SentencePiece model) into our text."""
    pytest.importorskip("argostranslate", reason="argostranslate is not installed (pip install argostranslate)")
    from crossattn.export import export_argos
    from crossattn.translator import Translator

    folder = tmp_path / "opus-mt-en-fr"
    # OPUS-MT's 512 positions: Argos lets CTranslate2 decode up to 256 tokens
    if shape == "tiny":  # (seed 5: translations of several pieces that end before crossattn's limit)
        write_checkpoint(folder, seed=5, positions=512)
    else:
        # (logits over 59,514 pieces spread wide: </s> needs a bias of 20 to end each translation)
        write_checkpoint(folder, d_model=512, heads=8, ffn=2048, layers=6, vocab_size=59514, positions=512,
                         eos_bias=20.0)
    import_marian(folder, tmp_path / "imported")
    package = export_argos(tmp_path / "imported", tmp_path / "en_fr.argosmodel", quantization=None)
    texts = TEXTS + ["the zebra eats"]  # "z" is unknown to the source model: <unk> in the source
    argos = argos_translations(package, texts, tmp_path / "home")

    _, tok, _ = load_model_dir(tmp_path / "imported")
    ours = Translator(tmp_path / "imported", device="cpu", dtype="fp32", threads=1)
    compared = []
    for text, got in zip(texts, argos):
        (call,) = got["calls"]  # one sentence, one CTranslate2 call
        assert (call["options"]["beam_size"], call["options"]["length_penalty"]) == (4, 0.2)
        ids = tok.encode(text)
        # CTranslate2 numbers them by the vocabulary ("z", unknown to it, is <unk>)
        assert [[tok.piece_to_id(piece) for piece in call["source"][0]]] == [ids]
        target = ours._search([ids], 4, 0.2, 8, guard=False)[0]
        if len(target) >= ours._budget(ids):
            continue  # cut by crossattn's length limit (1.5 x source + 10); Argos sets none
        assert call["target"] == [[tok.id_to_piece(i) for i in target]]
        assert got["text"] == ours.translate([text], beam=4, alpha=0.2, repetition_guard=False)[0]
        compared.append(target)
    assert len(compared) >= 3, compared
    if shape == "tiny":  # pieces joined after other pieces, not only first ones
        assert any(len(target) > 2 for target in compared), compared


def test_argos_export_refuses_a_source_model_that_joins_otherwise(tmp_path, capsys):
    """A target model with byte pieces (<0x41> is "A") that the source model lacks (it
    would write "<0x41>"): the one SentencePiece model of an Argos package cannot be both."""
    from crossattn.cli import main

    write_checkpoint(tmp_path / "opus-mt-en-fr", target_byte_fallback=True)
    import_marian(tmp_path / "opus-mt-en-fr", tmp_path / "imported")
    capsys.readouterr()
    assert main(["export", "--model", str(tmp_path / "imported"), "--format", "argos",
                 "--out", str(tmp_path / "x.argosmodel")]) == 1
    err = capsys.readouterr().err.strip()
    assert "source.spm" in err and "target.spm" in err and "'<0x" in err and "\n" not in err
    assert not (tmp_path / "x.argosmodel").exists()


def test_fine_tuning_an_imported_model(marian, tmp_path):
    """`crossattn train --init-from` an imported model: sources cut by source.spm and
    translations by target.spm (as MarianTokenizer cuts them), the decoder fed from <pad>,
    and the result a model directory with the same three tokenizer files and network
    options, which loads and translates."""
    from transformers import MarianTokenizer

    from crossattn.cli import main
    from crossattn.data import encode_corpus
    from crossattn.translator import Translator

    _, folder, out = marian
    rng = random.Random(0)
    pairs = [(" ".join(rng.choice(EN) for _ in range(4)), " ".join(rng.choice(FR) for _ in range(4))) for _ in range(60)]
    _, tok, _ = load_model_dir(out)
    hf_tok = MarianTokenizer(str(folder / "source.spm"), str(folder / "target.spm"), str(folder / "vocab.json"))
    src, tgt, dropped = encode_corpus(pairs, tok, 64, tok.target_side())
    assert dropped == 0
    assert [s + [tok.eos_id] for s in src] == [hf_tok(s)["input_ids"] for s, _ in pairs]
    assert [t + [tok.eos_id] for t in tgt] == [hf_tok(text_target=t)["input_ids"] for _, t in pairs]

    (tmp_path / "train.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs[:50]))
    (tmp_path / "dev.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs[50:]))
    assert main(["train", "--init-from", str(out), "--train", str(tmp_path / "train.tsv"), "--valid",
                 str(tmp_path / "dev.tsv"), "--out", str(tmp_path / "run"), "--max-steps", "4", "--eval-every", "4",
                 "--eval-sentences", "4", "--device", "cpu", "--dtype", "fp32", "--lr", "1e-3", "--warmup-steps", "1"]) == 0
    before = load_model_dir(out)[0]
    after, tuned_tok, config = load_model_dir(tmp_path / "run" / "model")
    assert config["tokenizer"] == "shared-vocabulary" and tuned_tok.vocab_size == tok.vocab_size
    network = lambda model: {k: v for k, v in model.config.to_dict().items() if "dropout" not in k}  # noqa: E731
    assert network(after) == network(before)  # post-LN, swish, <pad> start, ... (dropout is the run's)
    assert not torch.equal(after.embed.tokens.weight, before.embed.tokens.weight)  # it trained
    assert not after.embed.tokens.weight[tok.pad_id].any()  # <pad> (the decoder start) stays zero
    translation = Translator(tmp_path / "run" / "model", device="cpu", dtype="fp32", threads=1).translate(
        ["the cat sees the dog"])
    assert len(translation) == 1 and isinstance(translation[0], str)
