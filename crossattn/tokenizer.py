"""Joint English+French subword tokenizer: a thin wrapper around SentencePiece.

One model is shared by source and target so that the decoder can copy names,
numbers and cognates straight from the source (and embeddings can be tied).

Normalisation: SentencePiece's "identity" rule. The default nmt_nfkc rule
rewrites French typography (« » spacing, U+202F, "…" -> "...", ligatures), so
decoded text would differ from the reference. Input cleaning (Unicode NFC,
collapsing whitespace) is done once in data.py instead. With identity rules,
decode(encode(s)) == s for any text s that

* has no leading/trailing spaces and no runs of two or more ASCII spaces
  (SentencePiece always collapses those), and
* does not contain U+2581 "▁" (SentencePiece's own space marker).

Characters missing from the vocabulary are spelled as UTF-8 bytes
(byte_fallback), so <unk> never appears and any Unicode (emoji, CJK) survives.
"""

from __future__ import annotations

import copy
import hashlib
import json
import io
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import sentencepiece as spm

from .atomic import write_bytes_atomic
from .errors import CrossattnError

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
_SPECIAL_IDS = (PAD_ID, BOS_ID, EOS_ID)
# Stand-ins for characters a vocabulary may lack that Unicode does not decompose into a
# base letter plus accents (typographic quotes and dashes, ß, æ, ø, ł, đ).
_STAND_INS = {"“": '"', "”": '"', "„": '"', "‟": '"', "—": "–", "―": "–", "‒": "–", "−": "-", "ß": "ss",
              "æ": "ae", "Æ": "AE", "ø": "o", "Ø": "O", "đ": "d", "Đ": "D", "ł": "l", "Ł": "L"}


class TokenizerError(CrossattnError, ValueError):
    """A tokenizer problem the user can fix (missing file, bad model, bad arguments)."""


def load_processor(data: bytes, name: str) -> spm.SentencePieceProcessor:
    """A SentencePiece model from its serialized bytes; a damaged one is a TokenizerError."""
    sp = spm.SentencePieceProcessor()
    try:
        sp.LoadFromSerializedProto(data)
    except Exception:  # spm raises RuntimeError/OSError depending on the damage
        raise TokenizerError(f"{name}: not a valid SentencePiece model") from None
    if sp.get_piece_size() == 0:
        raise TokenizerError(f"{name}: not a valid SentencePiece model")
    return sp


class Tokenizer:
    """A joint SentencePiece model shared by source and target languages."""

    def __init__(self, model_path: str | Path):
        path = Path(model_path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise TokenizerError(f"{path}: tokenizer model not found") from None
        except OSError as e:
            raise TokenizerError(f"{path}: cannot read tokenizer model ({e.strerror})") from None
        self._load(data, str(path))

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "<bytes>") -> Tokenizer:
        """Load from serialized model bytes, e.g. a copy stored inside a checkpoint."""
        tok = cls.__new__(cls)
        tok._load(bytes(data), name)
        return tok

    def _load(self, data: bytes, name: str) -> None:
        sp = load_processor(data, name)
        # Model code hard-codes these ids (padding masks, decoder start), so a
        # foreign model with another layout must be refused, not silently used.
        got = (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id())
        if got != (PAD_ID, UNK_ID, BOS_ID, EOS_ID):
            raise TokenizerError(
                f"{name}: special ids pad/unk/bos/eos are {got}, expected "
                f"{(PAD_ID, UNK_ID, BOS_ID, EOS_ID)}; train the tokenizer with Tokenizer.train"
            )
        self._sp = sp
        self._bytes = data
        self.name = name
        self._known_chars: frozenset[str] | None = None

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        out_path: str | Path,
        vocab_size: int,
        model_type: str = "unigram",
        character_coverage: float = 1.0,
        *,
        seed: int = 0,
        input_sentence_size: int = 2_000_000,
        num_threads: int = 16,
        log: Callable[[str], None] = print,
    ) -> Tokenizer:
        """Train jointly on `texts` (pass both languages) and write the model to `out_path`.

        Same texts and arguments give the same model bytes. If the corpus is too
        small for `vocab_size`, the vocabulary is shrunk to the largest size that
        fits and `log` is told so.
        """
        if model_type not in ("unigram", "bpe"):
            raise TokenizerError(f"model_type must be 'unigram' or 'bpe', got {model_type!r}")
        # Materialised because a retry needs the sentences again; one line each
        # since a newline would end the sentence inside spm.
        sentences = [t.replace("\r", " ").replace("\n", " ").strip(" ") for t in texts]
        sentences = [s for s in sentences if s]
        if not sentences:
            raise TokenizerError("cannot train a tokenizer on an empty corpus")
        # 4 specials + 256 byte pieces are always present; below that spm fails obscurely.
        if vocab_size < 300:
            raise TokenizerError(f"vocab_size must be at least 300 (byte fallback needs 260), got {vocab_size}")

        spm.set_random_generator_seed(seed)  # makes input sampling/shuffling reproducible
        size = vocab_size
        for _ in range(8):
            buf = io.BytesIO()
            try:
                spm.SentencePieceTrainer.train(
                    sentence_iterator=iter(sentences),
                    model_writer=buf,
                    vocab_size=size,
                    model_type=model_type,
                    character_coverage=character_coverage,
                    normalization_rule_name="identity",
                    byte_fallback=True,
                    split_digits=True,  # numbers get copied digit by digit, never mangled
                    pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
                    input_sentence_size=input_sentence_size,
                    shuffle_input_sentence=True,
                    num_threads=num_threads,
                    minloglevel=2,  # keep spm's progress chatter off stderr
                )
                break
            except RuntimeError as e:
                msg = str(e)
                if "Vocabulary size too high" not in msg and "Vocabulary size is too high" not in msg:
                    # Drop spm's "INTERNAL: file.cc(123) [check]" prefix; keep the human part.
                    reason = re.sub(r"^.*?\] ", "", msg.splitlines()[0])
                    raise TokenizerError(f"SentencePiece training failed: {reason}") from None
                m = re.search(r"<=\s*(\d+)", msg)
                new = int(m.group(1)) if m else size * 3 // 4
                if new >= size or new < 300:
                    raise TokenizerError(f"corpus too small for a tokenizer (vocabulary would be {new})") from None
                size = new
        else:
            raise TokenizerError(f"could not find a vocabulary size that fits the data (last tried {size})")
        if size != vocab_size:
            log(f"vocabulary shrunk from {vocab_size} to {size} to fit the data")

        data = buf.getvalue()
        out = Path(out_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(out, data)
        return cls.from_bytes(data, str(out))

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    @property
    def model_bytes(self) -> bytes:
        """The serialized model: store it in checkpoints so they are self-contained."""
        return self._bytes

    def sha256(self) -> str:
        return hashlib.sha256(self._bytes).hexdigest()

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, without BOS/EOS."""
        return self._sp.encode(text, out_type=int)

    def encode_with_spans(self, text: str) -> list[tuple[int, int, int]]:
        """``(id, first char, end char)`` per piece of ``text``: where in the text each piece
        comes from (its leading space marker excluded; byte pieces of one character share
        that character). Worked out from the pieces themselves (no protobuf needed):
        with identity normalisation a piece's text is its characters, "▁" standing for a
        space, except the space SentencePiece adds before the first word."""
        data = text.encode("utf-8")
        char_at = []
        for k, ch in enumerate(text):
            char_at.extend([k] * len(ch.encode("utf-8")))
        char_at.append(len(text))
        out, cursor = [], 0
        for pid in self._sp.encode(text, out_type=int):
            piece = self._sp.id_to_piece(pid)
            if self._sp.is_byte(pid):
                surface = bytes([int(piece[3:5], 16)])
            else:
                surface = piece.replace("\u2581", " ").encode("utf-8")
            if surface.startswith(b" "):
                if data[cursor:cursor + 1] != b" ":
                    surface = surface[1:]  # the dummy prefix: no space in the text
                while data[cursor:cursor + 2] == b"  ":  # runs of spaces are one "▁"
                    cursor += 1
            begin, end = cursor, cursor + len(surface)
            cursor = end
            while begin < end and data[begin:begin + 1] == b" ":
                begin += 1
            b_char, e_char = char_at[min(begin, len(data))], char_at[min(end, len(data))]
            if e_char == b_char and end > begin:  # a byte piece inside one character
                e_char = b_char + 1
            out.append((pid, b_char, e_char))
        return out

    @property
    def known_characters(self) -> frozenset[str]:
        """The characters this vocabulary's pieces spell (anything else becomes byte pieces)."""
        if self._known_chars is None:
            known = set()
            for i in range(self.vocab_size):
                if not (self._sp.is_byte(i) or self._sp.is_control(i) or self._sp.is_unknown(i)):
                    known.update(self._sp.id_to_piece(i).replace("\u2581", ""))
            self._known_chars = frozenset(known)
        return self._known_chars

    def fold_unknown(self, text: str) -> str:
        """``text`` with each character this vocabulary lacks replaced by a known stand-in:
        curly double quotes by '"', an em dash by an en dash, a letter by its base letter
        ("Čech" -> "Cech", "Jiráček" -> "Jiracek" where "č" is unknown but "á" known).
        Unknown characters reach the model as UTF-8 byte pieces, which it rarely saw and
        garbles with the words around them; measured on newstest2012's 113 (en-fr) / 95
        (fr-en) sentences that have such characters: +0.5 / +0.9 BLEU. Characters without
        a known stand-in ("$", emoji) are left as they are."""
        known = self.known_characters
        if all(c in known or c == " " for c in text):
            return text
        out = []
        for c in text:
            if c in known or c.isspace():
                out.append(c)
                continue
            stand_in = _STAND_INS.get(c) or "".join(b for b in unicodedata.normalize("NFKD", c)
                                                   if not unicodedata.combining(b))
            out.append(stand_in if stand_in and all(b in known for b in stand_in) else c)
        return "".join(out)

    def target_side(self) -> Tokenizer:
        """The tokenizer for text in the target language (a given translation to align or
        learn from): this one, for a joint model."""
        return self

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Same as [encode(t) for t in texts], but multi-threaded inside spm."""
        return self._sp.encode(list(texts), out_type=int)

    def decode(self, ids: Sequence[int]) -> str:
        """Text for `ids`; PAD/BOS/EOS are skipped so raw model output can be passed."""
        n = self.vocab_size
        clean = []
        for i in ids:  # also accepts numpy arrays / tensors element-wise
            i = int(i)
            if i in _SPECIAL_IDS:
                continue
            if not 0 <= i < n:
                raise TokenizerError(f"token id {i} out of range for vocabulary of {n}")
            clean.append(i)
        return self._sp.decode(clean)

    def pieces(self, text: str) -> list[str]:
        return self._sp.encode(text, out_type=str)

    def id_to_piece(self, i: int) -> str:
        if not 0 <= int(i) < self.vocab_size:
            raise TokenizerError(f"token id {i} out of range for vocabulary of {self.vocab_size}")
        return self._sp.id_to_piece(int(i))

    def piece_to_id(self, piece: str) -> int:
        """Id of ``piece``; the unknown id (1) for a piece this vocabulary does not have."""
        return self._sp.piece_to_id(piece)

    def save(self, path: str | Path) -> None:
        write_bytes_atomic(path, self._bytes)

    def __repr__(self) -> str:
        return f"Tokenizer({self.name!r}, vocab_size={self.vocab_size})"


class SharedVocabTokenizer(Tokenizer):
    """Separate source and target SentencePiece models over one shared vocabulary, as
    Marian / OPUS-MT models have them (Hugging Face's MarianTokenizer): the source model
    cuts the input into pieces, ``vocab`` ({piece: id}, vocab.json) numbers them (a piece
    it lacks is <unk>), and the target model joins the output pieces back into text.

    The special ids are the vocabulary's own (Marian: </s> 0, <unk> 1, <pad> last); there
    is no <s>, the decoder starting from <pad>."""

    def __init__(self, source: bytes, target: bytes, vocab: dict[str, int], name: str = "<shared vocabulary>"):
        self.name = name
        self._sp = load_processor(source, f"{name}: source model")
        self._target = load_processor(target, f"{name}: target model")
        pieces = sorted(vocab.items(), key=lambda kv: kv[1])
        if [i for _, i in pieces] != list(range(len(pieces))):
            raise TokenizerError(f"{name}: vocabulary ids are not 0 .. {len(pieces) - 1}, each once")
        for special in ("</s>", "<unk>", "<pad>"):
            if special not in vocab:
                raise TokenizerError(f"{name}: the vocabulary has no {special}")
        self._pieces = [p for p, _ in pieces]
        self._ids = dict(vocab)
        self.pad_id, self.unk_id, self.eos_id = vocab["<pad>"], vocab["<unk>"], vocab["</s>"]
        self._special = {self.pad_id, self.eos_id, self.unk_id}  # what MarianTokenizer's decode skips
        # source piece id -> vocabulary id, once, so encoding is a list lookup
        self._source_to_vocab = [vocab.get(self._sp.id_to_piece(i), self.unk_id) for i in range(self._sp.get_piece_size())]
        self._bytes = source + target + json.dumps(vocab, sort_keys=True).encode()
        self._known_chars = None

    @classmethod
    def from_files(cls, source: str | Path, target: str | Path, vocab: str | Path) -> SharedVocabTokenizer:
        try:
            vocabulary = json.loads(Path(vocab).read_text(encoding="utf-8"))
            return cls(Path(source).read_bytes(), Path(target).read_bytes(), vocabulary, str(Path(vocab).parent))
        except OSError as e:
            raise TokenizerError(f"{e.filename}: cannot read ({e.strerror})") from None
        except ValueError as e:
            if isinstance(e, TokenizerError):
                raise
            raise TokenizerError(f"{vocab}: not a JSON vocabulary ({e})") from None

    def target_side(self) -> SharedVocabTokenizer:
        """This tokenizer cutting text with the target model instead (same vocabulary): for a
        given translation, which Marian's decoder read cut by the target model."""
        view = copy.copy(self)
        view._sp = self._target
        view._source_to_vocab = [self._ids.get(self._target.id_to_piece(i), self.unk_id)
                                 for i in range(self._target.get_piece_size())]
        view._known_chars = None
        return view

    def save_files(self, source: Path, target: Path, vocab: Path) -> None:
        """The three files, each written whole or not at all."""
        write_bytes_atomic(source, self._sp.serialized_model_proto())
        write_bytes_atomic(target, self._target.serialized_model_proto())
        write_bytes_atomic(vocab, (json.dumps(self._ids, ensure_ascii=False, indent=1) + "\n").encode("utf-8"))

    def save(self, path: str | Path) -> None:
        raise TokenizerError("a shared-vocabulary tokenizer is three files: use save_files")

    @property
    def vocab_size(self) -> int:
        return len(self._pieces)

    def encode(self, text: str) -> list[int]:
        return [self._source_to_vocab[i] for i in self._sp.encode(text, out_type=int)]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [[self._source_to_vocab[i] for i in ids] for ids in self._sp.encode(list(texts), out_type=int)]

    def encode_with_spans(self, text: str) -> list[tuple[int, int, int]]:
        """As Tokenizer.encode_with_spans, read from SentencePiece's own offsets (a Marian
        model spells unknown characters as <unk>, whose text only the offsets know); those
        need the protobuf package, without which the pieces' own text is used, as for a joint
        model (an <unk> then gets no place in the text)."""
        try:
            pieces = self._sp.encode(text, out_type="proto").pieces
        except ImportError:  # no protobuf
            return [(self._source_to_vocab[i], b, e) for i, b, e in super().encode_with_spans(text)]
        char_at = []
        for k, ch in enumerate(text):
            char_at.extend([k] * len(ch.encode("utf-8")))
        char_at.append(len(text))
        out = []
        for p in pieces:
            begin, end = p.begin, p.end
            surface = p.surface
            while surface.startswith(" ") and begin < end:  # the space before a word is not the word
                surface, begin = surface[1:], begin + 1
            b_char, e_char = char_at[min(begin, len(char_at) - 1)], char_at[min(end, len(char_at) - 1)]
            if e_char == b_char and end > begin:
                e_char = b_char + 1
            out.append((self._source_to_vocab[p.id], b_char, e_char))
        return out

    @property
    def known_characters(self) -> frozenset[str]:
        if self._known_chars is None:
            sp = self._sp
            self._known_chars = frozenset(
                c for i in range(sp.get_piece_size())
                if not (sp.is_byte(i) or sp.is_control(i) or sp.is_unknown(i))
                and self._source_to_vocab[i] != self.unk_id
                for c in sp.id_to_piece(i).replace("\u2581", ""))
        return self._known_chars

    def decode(self, ids: Sequence[int]) -> str:
        """Text for ``ids`` through the target model; </s>, <pad> and <unk> are skipped."""
        n = self.vocab_size
        pieces = []
        for i in ids:
            i = int(i)
            if i in self._special:
                continue
            if not 0 <= i < n:
                raise TokenizerError(f"token id {i} out of range for vocabulary of {n}")
            pieces.append(self._pieces[i])
        # a piece the target model lacks (a source-only piece) keeps its "▁": a space, as
        # in Hugging Face's MarianTokenizer
        return self._target.decode_pieces(pieces).replace("\u2581", " ").strip()

    def pieces(self, text: str) -> list[str]:
        return self._sp.encode(text, out_type=str)

    def id_to_piece(self, i: int) -> str:
        if not 0 <= int(i) < self.vocab_size:
            raise TokenizerError(f"token id {i} out of range for vocabulary of {self.vocab_size}")
        return self._pieces[int(i)]

    def piece_to_id(self, piece: str) -> int:
        return self._ids.get(piece, self.unk_id)

    def __repr__(self) -> str:
        return f"SharedVocabTokenizer({self.name!r}, vocab_size={self.vocab_size})"
