"""The MNIST task: the dense VAE of Louis Tiao's Keras tutorial, trained and evaluated.

    python -m scratchvae.train mnist --epochs 50 --out runs/mnist
    python -m scratchvae.evaluate runs/mnist/best.npz --plots docs/img/mnist

As in the tutorial: 60,000 training images, grey levels in [0, 1] used as Bernoulli means
(``--binarize`` thresholds them at 0.5 instead), 50 epochs, and the 10,000 test images as
the validation data (so ``best.npz`` is chosen on the test set, as Keras's
``validation_data`` does in the tutorial; ``last.npz`` is not). Unlike the tutorial
(RMSprop at 1e-3, batches of 100: test -ELBO 153.1 nats), the defaults are Adam at 1e-3
with batches of 32, which reach 149.6 nats in the same 50 epochs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..cli.flags import add_flag, add_flags, apply_threads, command_parser
from ..cli.types import non_negative_int, output_folder, positive_int
from ..data.mnist import PIXELS, Mnist, load_mnist
from ..losses import BatchMean, whole_batch
from ..models.mnist import DenseVAE, build_model
from ..plotting import matplotlib_missing
from ..progress import progress_bar
from ..training.checkpoint import load_model_state

DEFAULTS = {"epochs": 50, "batch_size": 32, "optimizer": "adam", "lr": 1e-3}
VALIDATION_BATCH = 500


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    g = parser.add_argument_group("model")
    g.add_argument("--latent-dim", type=positive_int, default=2, metavar="N", help="size of the latent code z")
    g.add_argument(
        "--hidden",
        type=positive_int,
        default=256,
        metavar="N",
        help="units of the encoder's and of the decoder's hidden layer",
    )
    g.add_argument(
        "--binarize",
        action="store_true",
        help="threshold pixels at 0.5; without it the grey levels are the Bernoulli targets, as in the tutorial",
    )


class MnistTask:
    """Trainer task: one step is the negative ELBO of a batch with fresh noise eps ~ N(0, I)."""

    name = "mnist"
    progress = False  # a bar while validating (on a terminal)

    def __init__(self, model: DenseVAE, data: Mnist, *, batch_size: int, binarize: bool, seed: int = 0):
        self.model, self.data = model, data
        self.batch_size, self.binarize, self.seed = batch_size, binarize, seed

    def meta(self) -> dict:
        return {
            "config": self.model.config(),
            "dtype": self.model.dtype.name,
            "binarize": self.binarize,
            "batch_size": self.batch_size,
        }

    def epoch_batches(self, rng: np.random.Generator) -> list:
        order = rng.permutation(len(self.data.x_train))
        return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    def train_step(
        self, batch, rng: np.random.Generator, step: int, *, batch_mean: BatchMean = whole_batch
    ) -> dict[str, float]:
        model = self.model
        x = model.backend.asarray(self.data.x_train[batch], dtype=model.dtype)
        eps = model.backend.asarray(rng.standard_normal((len(batch), model.latent_dim)), dtype=model.dtype)
        terms = model.forward(x, eps, batch_mean=batch_mean)
        model.backward()
        return terms

    def validate(self) -> dict[str, float]:
        """Test-set negative ELBO, with the same noise every epoch so epochs compare fairly."""
        rng, x = np.random.default_rng([self.seed, 3]), self.data.x_test
        nll, kl = [], []
        for start in progress_bar(range(0, len(x), VALIDATION_BATCH), desc="validating", progress=self.progress):
            terms = self.model.negative_elbo(x[start : start + VALIDATION_BATCH], rng, VALIDATION_BATCH)  # one rng:
            nll.append(terms[0])  # the same draws as in one call
            kl.append(terms[1])
        nll, kl = np.concatenate(nll), np.concatenate(kl)
        return {"val_loss": float((nll + kl).mean()), "val_nll": float(nll.mean()), "val_kl": float(kl.mean())}


def build_task(args) -> MnistTask:
    data = load_mnist(args.data_dir, binarize=args.binarize, dtype=args.dtype, progress=args.progress)
    model = DenseVAE(
        PIXELS,
        args.hidden,
        args.latent_dim,
        rng=np.random.default_rng(args.seed),
        backend=args.backend,
        dtype=args.dtype,
    )
    task = MnistTask(model, data, batch_size=args.batch_size, binarize=args.binarize, seed=args.seed)
    task.progress = args.progress
    return task


def load_task(ckpt, backend, data_dir=None, progress: bool = True) -> MnistTask:
    """The task of a checkpoint: its model with the trained weights, and the data it was trained on."""
    meta = ckpt.meta
    model = build_model(meta["config"], rng=np.random.default_rng(0), backend=backend, dtype=meta["dtype"])
    load_model_state(model, ckpt)
    data = load_mnist(data_dir, binarize=meta["binarize"], dtype=meta["dtype"], progress=progress)
    return MnistTask(
        model,
        data,
        batch_size=meta["batch_size"],
        binarize=meta["binarize"],
        seed=meta.get("progress", {}).get("seed", 0),
    )


# --------------------------------------------------------------------- evaluation
def eval_parser(name: str = "mnist") -> argparse.ArgumentParser:
    p = command_parser(
        "python -m scratchvae.evaluate CKPT",
        "Evaluate an MNIST VAE on the 10,000 test images: the negative ELBO, an importance-weighted estimate "
        "of -log p(x) (Burda et al. 2016), and the tutorial's figures.",
        (
            "python -m scratchvae.evaluate runs/mnist/best.npz --plots docs/img/mnist",
            "python -m scratchvae.evaluate runs/mnist/best.npz --iw-samples 5000 --iw-images 1000",
            "python -m scratchvae.evaluate runs/mnist/best.npz --iw-samples 0 --threads 1",
        ),
    )
    add_flag(p, "backend")
    add_flag(p, "data_dir", help="where mnist.npz is (default: $SCRATCHVAE_DATA, else ~/.cache/scratchvae)")
    p.add_argument(
        "--iw-samples",
        type=non_negative_int,
        default=500,
        metavar="K",
        help="importance samples per image for the IW-NLL estimate (0: skip it)",
    )
    p.add_argument(
        "--iw-images",
        type=positive_int,
        default=None,
        metavar="N",
        help="estimate the IW-NLL on the first N test images only (default: all)",
    )
    p.add_argument(
        "--plots",
        type=output_folder,
        default=None,
        metavar="DIR",
        help="write latent.png, manifold.png and reconstructions.png into DIR (made if missing)",
    )
    add_flag(p, "seed", help="seed of the evaluation noise")
    add_flags(p, "threads", "no_progress")
    return p


def evaluate_main(ckpt, argv) -> int:
    args = eval_parser().parse_args(argv)
    apply_threads(args)
    if args.plots and matplotlib_missing("--plots"):  # before minutes of evaluation, not after
        return 2
    task = load_task(ckpt, args.backend, args.data_dir, progress=args.progress)
    model, data = task.model, task.data
    cfg = model.config()
    epoch = ckpt.meta.get("progress", {}).get("epoch", "?")
    print(
        f"mnist dense VAE: latent {cfg['latent_dim']}, hidden {cfg['hidden']}, {model.dtype.name}, "
        f"{'binarized' if task.binarize else 'grey-level'} pixels, trained {epoch} epochs"
    )

    nll, kl = model.negative_elbo(data.x_test, np.random.default_rng([args.seed, 0]))
    print(f"test images            {len(data.x_test)}")
    print(
        f"test negative ELBO     {(nll + kl).mean():.2f} nats  (reconstruction {nll.mean():.2f} + KL {kl.mean():.2f})"
    )

    if args.iw_samples > 0:
        x = data.x_test[: args.iw_images]
        with progress_bar(total=len(x), desc=f"IW-NLL, K={args.iw_samples}", progress=args.progress) as bar:
            iw = model.iw_nll(x, args.iw_samples, np.random.default_rng([args.seed, 1]), progress=bar.update)
        print(
            f"{f'test IW-NLL, K={args.iw_samples}':<23}{iw.mean():.2f} nats  "
            f"(importance-weighted estimate of -log p(x), {len(x)} images)"
        )

    if args.plots:
        from . import mnist_plots

        paths = mnist_plots.save_all(model, data.x_test, data.y_test, Path(args.plots))
        print("wrote " + ", ".join(str(p) for p in paths))
    return 0
