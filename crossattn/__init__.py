"""crossattn: a readable, fast Transformer encoder-decoder built around cross-attention."""

from .attention import KVCache, MultiHeadAttention
from .model import DecoderLayer, DecoderState, EncoderLayer, ModelConfig, Seq2SeqOutput, Seq2SeqTransformer

__version__ = "0.1.0"
__all__ = [
    "KVCache",
    "MultiHeadAttention",
    "ModelConfig",
    "EncoderLayer",
    "DecoderLayer",
    "DecoderState",
    "Seq2SeqOutput",
    "Seq2SeqTransformer",
]
