"""The decoding conventions every engine follows (torch's beam search, CTranslate2, explain):
the model's default settings, the output-length budget and the length penalty. Nothing
here imports torch, so the CTranslate2 path reads them without it."""

from __future__ import annotations

from .errors import ConfigError

DEFAULT_DECODING = {"beam": 4, "alpha": 0.6}


def model_decoding(saved: dict | None) -> dict:
    """The decoding defaults of a model: config.json's "decoding" over DEFAULT_DECODING
    (the one place they are merged)."""
    return {**DEFAULT_DECODING, **(saved or {})}


def decoding_settings(defaults: dict, beam: int | None, alpha: float | None) -> tuple[int, float]:
    """The beam and length-penalty exponent to use: the caller's, else the model's."""
    beam = defaults["beam"] if beam is None else beam
    alpha = defaults["alpha"] if alpha is None else alpha
    if not isinstance(beam, int) or beam < 1:
        raise ConfigError(f"beam must be a positive integer, not {beam!r}")
    return beam, float(alpha)


def max_output_length(src_len: int, max_positions: int, ratio: float = 1.5, extra: int = 10) -> int:
    """Longest translation we allow for a source of ``src_len`` tokens (EOS included)."""
    return max(1, min(int(ratio * src_len + extra), max_positions - 1))


def length_penalty(length: int, alpha: float) -> float:
    """Beam scores are log-probabilities divided by ``length ** alpha`` (EOS counted), as
    CTranslate2 does, so both engines rank hypotheses alike; 0 = raw log-probability."""
    return float(length) ** alpha
