"""Train the domain classifier, the evaluation instrument for FID/IS features and class consistency.

The dataset is small enough to hold in memory as uint8, so training is a plain loop over tensor batches
with on-the-fly augmentation: no DataLoader workers to compete with the two or so cores of a laptop.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from tqdm import tqdm

from alitok import atomic, cliargs, plots
from alitok.data.loader import check_batch
from alitok.data.manifest import open_image, read_dataset_info, read_manifest
from alitok.data.transforms import adm_center_crop
from alitok.models.classifier import Classifier, ClassifierConfig

SHIFT_FRACTION = 1 / 8  # random translation of up to this fraction of the image side


def load_images(manifest_csv, root, image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All images of a split as uint8 (N, 3, S, S) and labels (N,), through the evaluation (ADM) crop."""
    records = read_manifest(manifest_csv)
    images = np.empty((len(records), image_size, image_size, 3), dtype=np.uint8)
    for i, record in enumerate(tqdm(records, desc=f"load {Path(manifest_csv).name}", unit="img", file=sys.stderr)):
        im = open_image(root, record)
        if im.size != (image_size, image_size):
            im = adm_center_crop(im, image_size)
        images[i] = np.asarray(im)
    labels = torch.tensor([r.label for r in records], dtype=torch.long)
    return rearrange(torch.from_numpy(images), "n h w c -> n c h w").contiguous(), labels


def augment(x: torch.Tensor) -> torch.Tensor:
    """Random shift (replicate padding, then a per-image crop) and horizontal flip of a float batch."""
    n, _, h, w = x.shape
    pad = max(1, round(h * SHIFT_FRACTION))
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    dy, dx = torch.randint(0, 2 * pad + 1, (2, n))
    rows = dy[:, None] + torch.arange(h)
    cols = dx[:, None] + torch.arange(w)
    out = padded[torch.arange(n)[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # (n, h, w, c)
    out = rearrange(out, "n h w c -> n c h w")
    flip = torch.rand(n) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(3), out)


def degrade(x: torch.Tensor, pool_factors: list[int], noise: float) -> torch.Tensor:
    """Class-preserving loss of detail: each image is average-pooled by a factor drawn from `pool_factors` (1:
    untouched) and resized back, then a smooth colour-noise field of random strength up to `noise` is added.

    A classifier trained on sharp renders only reads sharp-edge cues and scores chance on a 4-px blur of the
    very images it classifies at 97 % (docs/data.md): its class-consistency would measure sharpness, not class.
    """
    n, _, h, w = x.shape
    factor = torch.tensor(pool_factors)[torch.randint(len(pool_factors), (n,))]
    out = x.clone()
    for f in sorted(set(pool_factors) - {1}):
        pick = factor == f
        if pick.any():
            out[pick] = F.interpolate(F.avg_pool2d(x[pick], f), size=(h, w), mode="bilinear", align_corners=False)
    if noise > 0:
        cell = max(pool_factors)
        field = torch.randn(n, 3, -(-h // cell), -(-w // cell))
        field = F.interpolate(field, size=(h, w), mode="bilinear", align_corners=False)
        out = out + torch.rand(n, 1, 1, 1) * noise * field
    return out.clamp(0, 1)


@torch.no_grad()
def predict(model: Classifier, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    model.eval()
    return torch.cat(
        [model(images[i : i + batch_size].float() / 255).argmax(1) for i in range(0, len(images), batch_size)]
    )


def run(cfg: dict, image_size: int, train_csv, val_csv, dataset_json, out_dir, section: str = "classifier") -> dict:
    """Train on the train manifest, score on the held-out val manifest, write model.pt, metrics.json and plots.

    `cfg` is the `classifier` params section; `image_size` is `data.image_size`, the size evaluation sees.
    """
    out_dir = Path(out_dir)
    info = read_dataset_info(dataset_json)
    classes = list(info["classes"])
    root = Path(info["root"])  # a relative root is relative to the working directory (the project)

    t0 = time.time()
    train_x, train_y = load_images(train_csv, root, image_size)
    check_batch(len(train_x), cfg["batch_size"], train_csv, f"{section}.batch_size")
    val_x, val_y = load_images(val_csv, root, image_size)
    load_seconds = time.time() - t0

    torch.manual_seed(cfg["seed"])
    config = ClassifierConfig(num_classes=len(classes), width=cfg["width"])
    model = Classifier(config)
    # no weight decay on BatchNorm scales and biases (1-d parameters)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg["weight_decay"]},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ],
        lr=cfg["lr"],
    )
    batch_size, epochs = cfg["batch_size"], cfg["epochs"]
    steps_per_epoch = max(1, len(train_x) // batch_size)  # drop the ragged last batch: BatchNorm dislikes tiny ones
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)

    train_loss, val_accuracy = [], []
    t0 = time.time()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(train_x))
        losses = []
        bar = tqdm(range(steps_per_epoch), desc=f"{section} epoch {epoch + 1}/{epochs}", unit="batch", file=sys.stderr)
        for step in bar:
            idx = perm[step * batch_size : (step + 1) * batch_size]
            x = degrade(augment(train_x[idx].float() / 255), cfg["degrade"]["pool_factors"], cfg["degrade"]["noise"])
            loss = F.cross_entropy(model(x), train_y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{loss.item():.3f}")
        train_loss.append(sum(losses) / len(losses))
        val_accuracy.append((predict(model, val_x, 4 * batch_size) == val_y).float().mean().item())
        tqdm.write(
            f"epoch {epoch + 1}: train loss {train_loss[-1]:.4f}, val accuracy {val_accuracy[-1]:.4f}", file=sys.stderr
        )
    seconds = time.time() - t0

    pred = predict(model, val_x, 4 * batch_size)
    n = len(classes)
    confusion = torch.bincount(val_y * n + pred, minlength=n * n).view(n, n)
    per_class = (confusion.diag() / confusion.sum(1).clamp(min=1)).tolist()
    metrics = {
        "val_accuracy": val_accuracy[-1],
        "per_class_accuracy": dict(zip(classes, per_class)),
        "train_loss": train_loss,
        "val_accuracy_per_epoch": val_accuracy,
        "epochs": epochs,
        "num_train": len(train_x),
        "num_val": len(val_x),
        "image_size": image_size,
        "seconds": seconds,
        "load_seconds": load_seconds,
        "images_per_second": epochs * steps_per_epoch * batch_size / seconds,
    }

    atomic.torch_save(
        out_dir / "model.pt",
        {
            "config": asdict(config),
            "state_dict": model.state_dict(),
            "classes": classes,
            "image_size": image_size,
            "val_accuracy": val_accuracy[-1],
        },
    )
    atomic.write_json(out_dir / "metrics.json", metrics)
    _plot_curve(out_dir / "curve.png", train_loss, val_accuracy)
    _plot_confusion(out_dir / "confusion.png", confusion.numpy(), classes)
    return metrics


def load_classifier(path) -> tuple[Classifier, dict]:
    """The trained classifier in eval mode, and its checkpoint (classes, image_size, val_accuracy)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model = Classifier(ClassifierConfig(**ckpt["config"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt


def _plot_curve(path: Path, train_loss: list[float], val_accuracy: list[float]) -> None:
    plt = plots.pyplot()

    epochs = range(1, len(train_loss) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax_loss.plot(epochs, train_loss, marker="o")
    ax_loss.set(xlabel="epoch", ylabel="train loss", yscale="log", title="training loss")
    ax_acc.plot(epochs, val_accuracy, marker="o", color="tab:green")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1), title="held-out accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    plots.save_figure(fig, path)


def _plot_confusion(path: Path, confusion: np.ndarray, classes: list[str]) -> None:
    plt = plots.pyplot()

    n = len(classes)
    fig, ax = plt.subplots(figsize=(1.5 + 0.5 * n, 1 + 0.5 * n))
    ax.imshow(confusion, cmap="Blues")
    for i in range(n):
        for j in range(n):
            if confusion[i, j]:
                colour = "white" if confusion[i, j] > confusion.max() / 2 else "black"
                ax.text(j, i, str(confusion[i, j]), ha="center", va="center", fontsize=7, color=colour)
    ax.set_xticks(range(n), classes, rotation=90, fontsize=7)
    ax.set_yticks(range(n), classes, fontsize=7)
    ax.set(xlabel="predicted", ylabel="true", title="held-out confusion")
    plots.save_figure(fig, path)


def add_arguments(parser) -> None:
    cliargs.manifests(parser, "train", "val")
    parser.add_argument("--out-dir", type=Path, required=True, help="where model.pt, metrics.json and plots go")
    parser.add_argument(
        "--section",
        default="classifier",
        choices=["classifier", "perceptual_net"],
        help="params section: the domain classifier, or the smoke perceptual-loss network",
    )


def main(args, p: dict) -> None:
    if p.get(args.section) is None:
        raise SystemExit(f"alitok train-classifier: params profile {p['name']!r} has no {args.section} section")
    metrics = run(
        p[args.section], p["data"]["image_size"], args.train, args.val, args.dataset, args.out_dir, args.section
    )
    print(f"{args.section}: held-out accuracy {metrics['val_accuracy']:.4f}", file=sys.stderr)
