"""Decoding sentences from latent codes: greedy, sampling with a temperature, beam search.

Every decoder works on a batch of codes z (B, Z) through the model's single-step API

    state = model.decoder_start(z)
    logp, state = model.decoder_step(tokens, state, z)     # logp (B, V): log p(w_t | w_<t, z)

starting from <s> and stopping at </s> or ``max_len`` words.  The choice of each next
word happens on the host (NumPy) and the noise of sampling comes from the Generator
passed in, so a seed gives the same sentences on every backend.  <pad> and <s> are
never emitted.  The functions return word-id lists without <s> and </s>; decode them
with ``Vocab.decode``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ..data.reserved import BOS_ID, EOS_ID, PAD_ID

if TYPE_CHECKING:
    from ..layers import Array
    from .sentence import SentenceVAE

METHODS = ("greedy", "sample", "beam")
NEVER = (PAD_ID, BOS_ID)  # not words: never generated


def _host_logp(model: SentenceVAE, logp: Array) -> np.ndarray:
    """(B, V) log-probabilities on the host, the non-words excluded."""
    out = np.array(model.backend.to_numpy(logp), dtype=np.float64)
    out[:, NEVER] = -np.inf
    return out


def _decode_left_to_right(
    model: SentenceVAE, z: Array, choose: Callable[[np.ndarray], np.ndarray], max_len: int
) -> list[list[int]]:
    """Run the decoder one word at a time, ``choose`` picking each next id (B,) from logp (B, V)."""
    n = z.shape[0]
    state = model.decoder_start(z)
    tokens = np.full(n, BOS_ID)
    done = np.zeros(n, dtype=bool)
    words: list[list[int]] = [[] for _ in range(n)]
    for _ in range(max_len + 1):  # max_len words, then </s>
        logp, state = model.decoder_step(model.backend.asarray(tokens), state, z)
        tokens = choose(_host_logp(model, logp))
        for row in np.flatnonzero(~done & (tokens != EOS_ID)):
            words[row].append(int(tokens[row]))
        done |= tokens == EOS_ID
        if done.all():
            break
    return [w[:max_len] for w in words]


def greedy(model: SentenceVAE, z: Array, max_len: int = 50) -> list[list[int]]:
    """The most probable next word at every step."""
    return _decode_left_to_right(model, z, lambda logp: logp.argmax(axis=1), max_len)


def sample(
    model: SentenceVAE, z: Array, rng: np.random.Generator, temperature: float = 1.0, max_len: int = 50
) -> list[list[int]]:
    """Each next word drawn from softmax(log p / temperature); temperature 0 is greedy.

    Sampling uses the Gumbel-max trick: argmax(log p / T + g), g = -log(-log u), u ~ U(0, 1).
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return greedy(model, z, max_len)

    def choose(logp):
        gumbel = -np.log(-np.log(rng.uniform(np.finfo(float).tiny, 1.0, logp.shape)))
        return (logp / temperature + gumbel).argmax(axis=1)

    return _decode_left_to_right(model, z, choose, max_len)


def beam_search(
    model: SentenceVAE, z: Array, beam_width: int = 5, max_len: int = 50, length_penalty: float = 0.0
) -> list[list[int]]:
    """The best of ``beam_width`` hypotheses kept at every step, for each code.

    Scores are sums of log-probabilities; finished hypotheses (ended by </s>) stay in the
    beam with their score frozen (their only continuation is <pad> at log-prob 0).  The
    winner maximises score / length^length_penalty (0: the plain log-probability).
    """
    if beam_width < 1:
        raise ValueError(f"beam_width must be at least 1, got {beam_width}")
    n, W = z.shape[0], beam_width
    xp = model.xp
    rows = np.repeat(np.arange(n), W)
    zb = z[model.backend.asarray(rows)]  # (B W, Z): each code W times
    state = model.decoder_start(zb)
    scores = np.full((n, W), -np.inf)
    scores[:, 0] = 0.0  # one live hypothesis to start from
    history = np.zeros((n * W, 0), dtype=np.int64)
    done = np.zeros(n * W, dtype=bool)
    tokens = np.full(n * W, BOS_ID)
    for _ in range(max_len + 1):
        logp, state = model.decoder_step(model.backend.asarray(tokens), state, zb)
        logp = _host_logp(model, logp)
        logp[done] = -np.inf
        logp[done, PAD_ID] = 0.0  # a finished hypothesis only pads
        V = logp.shape[1]
        cand = (scores.reshape(-1, 1) + logp).reshape(n, W * V)
        k = min(W, W * V)
        best = np.argpartition(-cand, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(cand, best, axis=1), axis=1, kind="stable")
        best = np.take_along_axis(best, order, axis=1)  # (B, W), best first
        scores = np.take_along_axis(cand, best, axis=1)
        parent = (np.arange(n)[:, None] * W + best // V).reshape(-1)
        tokens = (best % V).reshape(-1)
        history = np.concatenate([history[parent], tokens[:, None]], axis=1)
        done = done[parent] | (tokens == EOS_ID)
        idx = model.backend.asarray(parent)
        state = (xp.ascontiguousarray(state[0][idx]), xp.ascontiguousarray(state[1][idx]))
        if done.all():
            break
    lengths = np.array([len(_words(h, max_len)) + 1 for h in history]).reshape(n, W)  # words + </s>
    final = scores / lengths**length_penalty if length_penalty else scores
    winner = final.argmax(axis=1)
    return [_words(history[b * W + winner[b]], max_len) for b in range(n)]


def _words(ids: np.ndarray, max_len: int) -> list[int]:
    """The words of a hypothesis: up to its </s>, at most ``max_len``."""
    out = []
    for i in ids:
        if i == EOS_ID or i == PAD_ID:
            break
        out.append(int(i))
    return out[:max_len]


def decode(
    model: SentenceVAE,
    z: Array,
    method: str = "greedy",
    *,
    rng: np.random.Generator | None = None,
    temperature: float = 1.0,
    beam_width: int = 5,
    max_len: int = 50,
) -> list[list[int]]:
    """Sentences (word-id lists) for codes z (B, Z) by ``method``: greedy, sample or beam."""
    if method == "greedy":
        return greedy(model, z, max_len)
    if method == "sample":
        return sample(model, z, rng if rng is not None else np.random.default_rng(), temperature, max_len)
    if method == "beam":
        return beam_search(model, z, beam_width, max_len)
    raise ValueError(f"unknown decoding method {method!r}; choose one of {', '.join(METHODS)}")
