"""The benchmarked models and kernels written the ordinary PyTorch way: the speed anchor.

Same architecture, sizes, loss and optimiser (Adam, PyTorch defaults) as the scratchvae
models, in float32, with the library's own layers (``nn.LSTM``, ``nn.Linear``,
``F.cross_entropy``) and autograd.  What a PyTorch user would write, with no tuning:
``RepeatVector`` is an ``expand`` (so ``nn.LSTM`` projects the repeated input T times)
and the benchmark batches have no padding, so no masks or packed sequences are needed.
PyTorch runs in the environment of bench/run.py, whose ``import scratchvae`` limits the spin of
idle OpenMP threads (``GOMP_SPINCOUNT=1000``, which PyTorch's libgomp reads too): measured once
each way on the model steps, PyTorch's time did not grow under it (seed 1464 ms without, 1425 and
1457 with; repeat 2978, 2551 and 2807; PTB 137, 118 and 130; MNIST 5.9, 5.0 and 5.1).

Each builder returns ``step()``, one forward + backward (+ Adam for models).
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# float32 means float32 on a GPU too: no TF32 in GEMMs or cuDNN (PyTorch allows it in cuDNN by
# default) unless SCRATCHVAE_TORCH_TF32=1 asks for it, as bench/gpu_check.py --tf32 does.
_TF32 = os.environ.get("SCRATCHVAE_TORCH_TF32") == "1"
torch.backends.cuda.matmul.allow_tf32 = _TF32
torch.backends.cudnn.allow_tf32 = _TF32


def _t(a, device, dtype=None):
    return torch.as_tensor(np.ascontiguousarray(a), device=device, dtype=dtype)


def _kl(mean, logvar):
    return (-0.5 * (1 + logvar - mean * mean - logvar.exp())).sum(1).mean()


def _reconstruction(logits, targets):
    """Softmax cross-entropy summed over the steps, mean over the batch."""
    n, T, V = logits.shape
    return F.cross_entropy(logits.reshape(n * T, V), targets.reshape(-1), reduction="sum") / n


class IMDBVAE(nn.Module):
    """scratchvae.models.imdb.IMDBVAE: BiLSTM x2 encoder, Dense, z, LSTM x2 decoder, sentiment head."""

    def __init__(self, c):
        super().__init__()
        e, d = c.encoder_units, c.decoder_units
        self.epsilon_std = c.epsilon_std
        self.embedding = nn.Embedding(c.vocab_size, c.embedding_dim)
        self.encoder_0 = nn.LSTM(c.embedding_dim, e, batch_first=True, bidirectional=True)
        self.encoder_1 = nn.LSTM(2 * e, e, batch_first=True, bidirectional=True)
        self.hidden = nn.Linear(2 * e, c.hidden_units)
        self.z_mean = nn.Linear(c.hidden_units, c.latent_dim)
        self.z_log_var = nn.Linear(c.hidden_units, c.latent_dim)
        self.decoder_0 = nn.LSTM(c.latent_dim, d, batch_first=True)
        self.decoder_1 = nn.LSTM(d, d, batch_first=True)
        self.output = nn.Linear(d, c.vocab_size)
        self.sentiment_hidden = nn.Linear(c.latent_dim, c.sentiment_units)
        self.sentiment_output = nn.Linear(c.sentiment_units, 1)

    def forward(self, ids, labels, eps):
        h, _ = self.encoder_0(self.embedding(ids))
        _, (h_n, _) = self.encoder_1(h)  # h_n (2, B, e): last step of each direction
        h = F.relu(self.hidden(torch.cat([h_n[0], h_n[1]], dim=1)))
        mean, logvar = self.z_mean(h), self.z_log_var(h)
        z = mean + torch.exp(0.5 * logvar) * eps
        d, _ = self.decoder_0(z[:, None, :].expand(-1, ids.shape[1], -1))  # RepeatVector
        d, _ = self.decoder_1(d)
        rec = _reconstruction(self.output(d), ids)
        s = self.sentiment_output(self.sentiment_hidden(z))[:, 0]
        bce = F.binary_cross_entropy_with_logits(s, labels)
        return rec + _kl(mean, logvar) + bce


class SentenceVAE(nn.Module):
    """scratchvae.models.sentence.SentenceVAE (LSTM encoder, h0 c0 = tanh(Dense(z)))."""

    def __init__(self, c):
        super().__init__()
        self.u = c.decoder_units
        self.embedding = nn.Embedding(c.vocab_size, c.embedding_dim)
        self.encoder = nn.LSTM(c.embedding_dim, c.encoder_units, batch_first=True)
        self.to_mean = nn.Linear(c.encoder_units, c.latent_dim)
        self.to_logvar = nn.Linear(c.encoder_units, c.latent_dim)
        self.to_state = nn.Linear(c.latent_dim, 2 * c.decoder_units)
        self.decoder = nn.LSTM(c.embedding_dim, c.decoder_units, batch_first=True)
        self.output = nn.Linear(c.decoder_units, c.vocab_size)

    def forward(self, encoder_ids, decoder_ids, targets, eps):
        n = targets.shape[0]
        emb = self.embedding(torch.cat([encoder_ids, decoder_ids]))
        _, (h_n, _) = self.encoder(emb[:n])
        e = h_n[0]
        mean, logvar = self.to_mean(e), self.to_logvar(e)
        z = mean + torch.exp(0.5 * logvar) * eps
        s = torch.tanh(self.to_state(z))
        h0, c0 = s[:, : self.u].contiguous(), s[:, self.u :].contiguous()
        h, _ = self.decoder(emb[n:], (h0[None], c0[None]))
        return _reconstruction(self.output(h), targets) + _kl(mean, logvar)


class ReviewVAE(nn.Module):
    """scratchvae.models.review.ReviewVAE: the sentence VAE with a BiLSTM encoder, z at every decoder
    step, embeddings tied to the output layer and free bits, plus a logistic-regression sentiment
    head on the posterior mean."""

    def __init__(self, c):
        super().__init__()
        assert c.z_every_step and c.init_state == "hc" and c.tie_embeddings and c.decoder_dropout == 0, c
        self.c = c
        self.embedding = nn.Embedding(c.vocab_size, c.embedding_dim)
        self.encoder = nn.LSTM(c.embedding_dim, c.encoder_units, batch_first=True, bidirectional=True)
        self.to_mean = nn.Linear(2 * c.encoder_units, c.latent_dim)
        self.to_logvar = nn.Linear(2 * c.encoder_units, c.latent_dim)
        self.to_state = nn.Linear(c.latent_dim, 2 * c.decoder_units)
        self.decoder = nn.LSTM(c.embedding_dim + c.latent_dim, c.decoder_units, batch_first=True)
        self.output_bias = nn.Parameter(torch.zeros(c.vocab_size))  # the weights: the embedding table
        self.sentiment = nn.Linear(c.latent_dim, 1)

    def forward(self, encoder_ids, decoder_ids, targets, labels, eps):
        c, u = self.c, self.c.decoder_units
        _, (h_n, _) = self.encoder(self.embedding(encoder_ids))
        e = torch.cat([h_n[0], h_n[1]], dim=1)  # the last step of each direction
        mean, logvar = self.to_mean(e), self.to_logvar(e)
        z = mean + torch.exp(0.5 * logvar) * eps
        s = torch.tanh(self.to_state(z))
        h0, c0 = s[:, :u].contiguous(), s[:, u:].contiguous()
        x = torch.cat([self.embedding(decoder_ids), z[:, None, :].expand(-1, decoder_ids.shape[1], -1)], dim=2)
        h, _ = self.decoder(x, (h0[None], c0[None]))
        logits = h @ self.embedding.weight.T + self.output_bias
        kl_per_unit = (-0.5 * (1 + logvar - mean * mean - logvar.exp())).mean(0)
        kl = torch.clamp(kl_per_unit, min=c.free_bits).sum()  # free bits
        bce = F.binary_cross_entropy_with_logits(self.sentiment(mean)[:, 0], labels)
        return _reconstruction(logits, targets) + kl + c.sentiment_weight * bce


class MnistVAE(nn.Module):
    """scratchvae.models.mnist.DenseVAE: 784 -> 256 relu -> (mean, logvar) -> 256 relu -> 784 logits."""

    def __init__(self, d, h, z):
        super().__init__()
        self.hidden, self.mean, self.log_var = nn.Linear(d, h), nn.Linear(h, z), nn.Linear(h, z)
        self.dec_hidden, self.logits = nn.Linear(z, h), nn.Linear(h, d)

    def forward(self, x, eps):
        h = F.relu(self.hidden(x))
        mean, logvar = self.mean(h), self.log_var(h)
        z = mean + torch.exp(0.5 * logvar) * eps
        logits = self.logits(F.relu(self.dec_hidden(z)))
        nll = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / x.shape[0]
        return nll + _kl(mean, logvar)


def _train_step(model, optimizer, make_inputs):
    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = model(*make_inputs())
        loss.backward()
        optimizer.step()

    return step


def imdb_step(config, ids, labels, rng, device):
    model = IMDBVAE(config).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    ids_t, labels_t = _t(ids, device, torch.long), _t(labels, device, torch.float32)
    Z, s = config.latent_dim, config.epsilon_std
    return _train_step(
        model, opt, lambda: (ids_t, labels_t, _t(rng.standard_normal((len(ids), Z)) * s, device, torch.float32))
    )


def sentence_step(config, encoder_ids, decoder_ids, targets, rng, device):
    model = SentenceVAE(config).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    e, d, t = (_t(a, device, torch.long) for a in (encoder_ids, decoder_ids, targets))
    Z = config.latent_dim
    return _train_step(model, opt, lambda: (e, d, t, _t(rng.standard_normal((len(t), Z)), device, torch.float32)))


def review_step(config, encoder_ids, decoder_ids, targets, labels, rng, device):
    model = ReviewVAE(config).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    e, d, t = (_t(a, device, torch.long) for a in (encoder_ids, decoder_ids, targets))
    y, Z = _t(labels, device, torch.float32), config.latent_dim
    return _train_step(model, opt, lambda: (e, d, t, y, _t(rng.standard_normal((len(t), Z)), device, torch.float32)))


def mnist_step(dims, x, rng, device):
    model = MnistVAE(*dims).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt = _t(x, device, torch.float32)
    return _train_step(model, opt, lambda: (xt, _t(rng.standard_normal((len(x), dims[2])), device, torch.float32)))


# ---------------------------------------------------------------------- kernels
def lstm_step(x, dy, units, device):
    """nn.LSTM forward over x (B, T, D), backward from dy (B, T, U)."""
    lstm = nn.LSTM(x.shape[2], units, batch_first=True).to(device)
    xt = _t(x, device, torch.float32).requires_grad_()
    dyt = _t(dy, device, torch.float32)

    def step():
        lstm.zero_grad(set_to_none=True)
        xt.grad = None
        y, _ = lstm(xt)
        y.backward(dyt)

    return step


def softmax_ce_step(logits, targets, scale, device):
    """F.cross_entropy forward (weighted sum) and backward to the logits (N, V)."""
    lt = _t(logits, device, torch.float32).requires_grad_()
    tt, st = _t(targets, device, torch.long), _t(scale, device, torch.float32)

    def step():
        lt.grad = None
        (F.cross_entropy(lt, tt, reduction="none") * st).sum().backward()

    return step


def gemm_gflops(n: int, device, repeats: int = 5) -> float:
    """Best float32 GEMM rate of torch.mm on (n, n) @ (n, n), in GFLOP/s."""
    import time

    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
    torch.mm(a, b)
    sync()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        sync()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9
