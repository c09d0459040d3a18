"""ModelConfig: the network's hyper-parameters, config.json's "model" table.

Kept free of torch so that what only reads a model directory (modeldir.read_model_dir,
hence ``crossattn translate``, ``evaluate`` and ``serve`` on CTranslate2) does not pay
for importing it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

from .errors import ConfigError


def dataclass_from_dict(cls, d: dict, what: str):
    """Build a config dataclass, refusing unknown keys (a typo must not pass silently)."""
    unknown = sorted(set(d) - {f.name for f in fields(cls)})
    if unknown:
        raise ConfigError(f"unknown {what} config keys: {', '.join(unknown)}")
    return cls(**d)


ACTIVATIONS = ("relu", "gelu", "swish")
POSITIONS = ("sinusoidal", "sinusoidal_halves", "learned")


@dataclass
class ModelConfig:
    vocab_size: int = 8000
    d_model: int = 512
    n_heads: int = 8
    d_ff: int = 2048
    encoder_layers: int = 6
    decoder_layers: int = 6
    dropout: float = 0.1
    attention_dropout: float = 0.0
    activation: str = "relu"  # relu | gelu | swish (SiLU, Marian's)
    norm_first: bool = True  # pre-LN; False = post-LN as in the original paper (and Marian)
    # sinusoidal: sin and cos interleaved (ours); sinusoidal_halves: all sines then all
    # cosines (Marian's table); learned: a trained table
    positions: str = "sinusoidal"
    max_positions: int = 256
    scale_embedding: bool = True  # token embeddings * sqrt(d_model) before the positions are added
    tie_output: bool = True  # output projection = shared embedding matrix
    final_logits_bias: bool = False  # a per-token bias added to the logits (Marian's final_logits_bias)
    pad_id: int = 0
    bos_id: int = 2  # the decoder's start token (Marian starts from pad, and then never writes it)
    eos_id: int = 3

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ConfigError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"activation must be one of {', '.join(ACTIVATIONS)}, not {self.activation!r}")
        if self.positions not in POSITIONS:
            raise ConfigError(f"positions must be one of {', '.join(POSITIONS)}, not {self.positions!r}")
        if self.positions != "learned" and self.d_model % 2:
            raise ConfigError(f"a sinusoidal position table needs an even d_model, not {self.d_model}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        return dataclass_from_dict(cls, d, "model")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        return cls.from_dict(json.loads(text))
