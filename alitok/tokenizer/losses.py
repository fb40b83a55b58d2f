"""Tokenizer training losses besides pixel MSE: the perceptual ones (logits MSE, LPIPS); the GAN's are in gan.py.

Released AliTok [docs/papers/alitok.md §1.5]: ConvNeXt-S logits MSE at 224 px, LPIPS-VGG in the warm-up phases.
Nothing here downloads: every
pretrained network is built with random weights and loaded from a local file the user places, and a missing file
fails at construction with one sentence naming the params key. The smoke profile swaps both perceptual
networks for a small CNN the pipeline trains itself ("domain"), because no ImageNet weights exist offline.

Images are float [0, 1], (N, 3, H, W), throughout (the domain classifier's convention). Imports torch alone at
module level (torchvision only when a torchvision network is built): GPU machines may lack the rest of the stack.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LPIPS_SHIFT = (-0.030, -0.088, -0.188)  # lpips.ScalingLayer, applied to inputs in [-1, 1]
LPIPS_SCALE = (0.458, 0.448, 0.450)
VGG16_LPIPS_ENDS = (4, 9, 16, 23, 30)  # vgg16().features[:end] ends at relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
VGG16_LPIPS_CHANNELS = (64, 128, 256, 512, 512)

LOGITS_NETS = ("convnext_small", "domain")
LPIPS_NETS = ("vgg16", "domain")

_WHAT = {
    "convnext_small": "torchvision's convnext_small ImageNet weights "
    "(IMAGENET1K_V1 state dict, convnext_small-0c510722.pth)",
    "vgg16": "torchvision's vgg16 ImageNet weights (IMAGENET1K_V1 state dict, vgg16-397923af.pth)",
    "lpips_linear": "the lpips package's VGG linear-layer weights (lpips/weights/v0.1/vgg.pth)",
    "domain": "the perceptual_net checkpoint (model.pt as written by alitok's classifier trainer)",
}


def _require_file(path, key: str, what: str, weight_name: str) -> Path:
    """The weights file at `path`, or a one-sentence FileNotFoundError naming the params key to fill in."""
    if path is None or str(path) == "":
        raise FileNotFoundError(f"{key} is not set; put the path of {what} there, or set the {weight_name} to 0")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{key}: {path} does not exist; put {what} there, or set the {weight_name} to 0")
    return path


def _load_state_dict(path: Path) -> dict:
    sd = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    return sd


def _load_on_meta(factory, state_dict: dict, path: Path) -> nn.Module:
    """Build on the meta device and assign the file's tensors: no time spent on random init of 50M parameters."""
    with torch.device("meta"):
        module = factory()
    try:
        module.load_state_dict(state_dict, strict=True, assign=True)
    except RuntimeError as e:
        raise ValueError(f"{path} does not hold the expected state dict: {e}") from e
    return module


def _freeze(module: nn.Module) -> nn.Module:
    module.eval()
    module.requires_grad_(False)
    return module


def _unit_channels(f: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """LPIPS's normalize_tensor; eps inside the sqrt so an all-zero feature vector has a finite gradient."""
    return f * torch.rsqrt(f.pow(2).sum(1, keepdim=True) + eps * eps)


def _resize(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """Bilinear with antialiasing, as 1d-tokenizer's PerceptualLoss resizes to 224 before ConvNeXt."""
    if size is None or x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


class ConvNeXtLogits(nn.Module):
    """torchvision ConvNeXt-S (ImageNet) logits on [0, 1] images: resize, ImageNet normalisation, network."""

    def __init__(self, weights_path: Path, size: int = 224):
        super().__init__()
        import torchvision

        self.size = size
        self.net = _freeze(
            _load_on_meta(
                lambda: torchvision.models.convnext_small(weights=None), _load_state_dict(weights_path), weights_path
            )
        )
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((_resize(x, self.size) - self.mean) / self.std)


class DomainLogits(nn.Module):
    """The smoke stand-in for ConvNeXt: the pipeline-trained small CNN (normalisation is inside it)."""

    def __init__(self, classifier: nn.Module, size: int | None = None):
        super().__init__()
        self.size = size
        self.net = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(_resize(x, self.size))


class VGG16LPIPS(nn.Module):
    """LPIPS v0.1 (VGG): unit-normalised relu1_2..relu5_3 differences, weighted per channel by the learned linear
    layers, spatially averaged and summed. Returns one distance per image."""

    def __init__(self, vgg_path: Path, linear_path: Path):
        import torchvision

        super().__init__()
        sd = _load_state_dict(vgg_path)
        features_sd = {k[len("features.") :]: v for k, v in sd.items() if k.startswith("features.")}
        features = _load_on_meta(lambda: torchvision.models.vgg16(weights=None).features, features_sd, vgg_path)
        starts = (0,) + VGG16_LPIPS_ENDS[:-1]
        self.slices = _freeze(nn.ModuleList(features[a:b] for a, b in zip(starts, VGG16_LPIPS_ENDS)))
        lin = _load_state_dict(linear_path)
        for k, c in enumerate(VGG16_LPIPS_CHANNELS):
            w = lin.get(f"lin{k}.model.1.weight")
            if w is None or tuple(w.shape) != (1, c, 1, 1):
                raise ValueError(
                    f"{linear_path}: expected lin{k}.model.1.weight of shape (1, {c}, 1, 1) "
                    f"(the lpips package's vgg.pth), found {None if w is None else tuple(w.shape)}"
                )
            self.register_buffer(f"lin{k}", w.detach().float().view(1, c, 1, 1).clone(), persistent=False)
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = ((2 * x - 1) - self.shift) / self.scale
        maps = []
        for s in self.slices:
            h = s(h)
            maps.append(h)
        return maps

    def weights(self) -> list[torch.Tensor]:
        return [getattr(self, f"lin{k}") for k in range(len(VGG16_LPIPS_CHANNELS))]

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return _lpips_distance(self.feature_maps(x), self.feature_maps(y), self.weights())


class DomainLPIPS(nn.Module):
    """LPIPS-like distance on the small CNN's conv-stage activations, unit channel weights (nothing learned)."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.net = classifier

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.net.feature_maps(x)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fx, fy = self.feature_maps(x), self.feature_maps(y)
        return _lpips_distance(fx, fy, [None] * len(fx))


def _lpips_distance(fx, fy, weights) -> torch.Tensor:
    """Sum over layers of the spatial mean of channel-weighted squared differences of unit-normalised features."""
    total = 0.0
    for a, b, w in zip(fx, fy, weights):
        d = (_unit_channels(a) - _unit_channels(b)).pow(2)
        d = d.sum(1) if w is None else (d * w).sum(1)
        total = total + d.mean(dim=(1, 2))
    return total


def _load_domain(path: Path) -> nn.Module:
    """The checkpoint format of alitok.classifier.train.load_classifier (a test checks they agree), read here
    because that module pulls PIL/tqdm/numpy, which the tokenizer trainer must not need."""
    from alitok.models.classifier import Classifier, ClassifierConfig

    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model = Classifier(ClassifierConfig(**ckpt["config"]))
    model.load_state_dict(ckpt["state_dict"])
    return _freeze(model)


class PerceptualLoss(nn.Module):
    """Logits MSE (ConvNeXt-S, or the smoke network) and LPIPS between a reconstruction and its target.

    `cfg` is the `perceptual` params section: logits_net ("convnext_small" | "domain"), logits_weights,
    logits_size, lpips_net ("vgg16" | "domain"), lpips_vgg_weights, lpips_linear_weights. For "domain" the
    checkpoint comes from cfg's path, else from `domain_checkpoint` (or cfg["domain_weights"]): the pipeline's
    perceptual_net/model.pt. A part whose weight is 0 is not built, so its file is not needed; the defaults build
    both, for a trainer that applies per-phase weights itself through logits_mse() and lpips().
    The networks are frozen and stay in eval mode even under .train(); gradients reach only the reconstruction.
    Arguments are (recon, target), as F.mse_loss(input, target).
    """

    def __init__(
        self,
        cfg: dict,
        logits_weight: float = 1.0,
        lpips_weight: float = 1.0,
        *,
        domain_checkpoint=None,
        section: str = "perceptual",
    ):
        super().__init__()
        self.logits_weight = float(logits_weight)
        self.lpips_weight = float(lpips_weight)
        self.logits_net = None
        self.lpips_net = None
        domain = None
        domain_checkpoint = domain_checkpoint or cfg.get("domain_weights")

        def domain_net(key: str, weight_name: str) -> nn.Module:
            nonlocal domain
            path = _require_file(cfg.get(key) or domain_checkpoint, f"{section}.{key}", _WHAT["domain"], weight_name)
            if domain is None:  # one network serves both parts
                domain = _load_domain(path)
            return domain

        if self.logits_weight:
            net = cfg.get("logits_net", "convnext_small")
            if net == "convnext_small":
                path = _require_file(
                    cfg.get("logits_weights"), f"{section}.logits_weights", _WHAT[net], "perceptual weight"
                )
                self.logits_net = ConvNeXtLogits(path, cfg.get("logits_size", 224))
            elif net == "domain":
                self.logits_net = DomainLogits(
                    domain_net("logits_weights", "perceptual weight"), cfg.get("logits_size")
                )
            else:
                raise ValueError(f"{section}.logits_net: {net!r} is not one of {LOGITS_NETS}")
        if self.lpips_weight:
            net = cfg.get("lpips_net", "vgg16")
            if net == "vgg16":
                vgg = _require_file(
                    cfg.get("lpips_vgg_weights"), f"{section}.lpips_vgg_weights", _WHAT["vgg16"], "lpips weight"
                )
                lin = _require_file(
                    cfg.get("lpips_linear_weights"),
                    f"{section}.lpips_linear_weights",
                    _WHAT["lpips_linear"],
                    "lpips weight",
                )
                self.lpips_net = VGG16LPIPS(vgg, lin)
            elif net == "domain":
                self.lpips_net = DomainLPIPS(domain_net("lpips_vgg_weights", "lpips weight"))
            else:
                raise ValueError(f"{section}.lpips_net: {net!r} is not one of {LPIPS_NETS}")
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):
        """Always eval: a parent's .train() must not switch the frozen networks' BatchNorm/dropout to training."""
        return super().train(False)

    def logits_mse(self, recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """MSE between the network's logits on recon and on target (target under no_grad: it is data)."""
        if self.logits_net is None:
            raise RuntimeError("the logits part was not built (its weight was 0 at construction)")
        with torch.no_grad():
            t = self.logits_net(target)
        return F.mse_loss(self.logits_net(recon).float(), t.float())

    def lpips(self, recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """LPIPS (or the smoke network's LPIPS-like distance), averaged over the batch."""
        if self.lpips_net is None:
            raise RuntimeError("the LPIPS part was not built (its weight was 0 at construction)")
        with torch.no_grad():
            ft = self.lpips_net.feature_maps(target)
        fr = self.lpips_net.feature_maps(recon)
        weights = self.lpips_net.weights() if isinstance(self.lpips_net, VGG16LPIPS) else [None] * len(ft)
        return _lpips_distance([f.float() for f in fr], [f.float() for f in ft], weights).mean()

    def forward(self, recon: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The weighted total of the built parts, and the unweighted parts (detached, for logging):
        "perceptual" (logits MSE) and "lpips"."""
        total = recon.new_zeros(())
        parts = {}
        if self.logits_net is not None and self.logits_weight:
            mse = self.logits_mse(recon, target)
            total = total + self.logits_weight * mse
            parts["perceptual"] = mse.detach()
        if self.lpips_net is not None and self.lpips_weight:
            dist = self.lpips(recon, target)
            total = total + self.lpips_weight * dist
            parts["lpips"] = dist.detach()
        return total, parts
