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
    activation: str = "relu"  # relu | gelu
    norm_first: bool = True  # pre-LN; False = post-LN as in the original paper
    positions: str = "sinusoidal"  # sinusoidal | learned
    max_positions: int = 256
    tie_output: bool = True  # output projection = shared embedding matrix
    pad_id: int = 0
    bos_id: int = 2
    eos_id: int = 3

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ConfigError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if self.activation not in ("relu", "gelu"):
            raise ConfigError(f"activation must be relu or gelu, not {self.activation!r}")
        if self.positions not in ("sinusoidal", "learned"):
            raise ConfigError(f"positions must be sinusoidal or learned, not {self.positions!r}")

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
