"""The domain classifier as a torch-fidelity feature extractor, and rFID between two uint8 image tensors.

Offline, Inception weights may be absent; the domain classifier (trained by the pipeline) stands in for it on the
embedded dataset. Registering it with torch-fidelity keeps one FID code path for both: the paper profile swaps
the extractor name and weights path, nothing else. Relies on torch-fidelity 0.4.0's FeatureExtractorBase,
register_feature_extractor and FEATURE_EXTRACTORS_REGISTRY (pinned in requirements).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch_fidelity
from torch.utils.data import Dataset
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from alitok.atomic import sha256_file

EXTRACTOR_NAME = "alitok-domain-classifier"
KEY_FID = "frechet_inception_distance"  # torch-fidelity's result key, whatever the extractor


class DomainClassifierExtractor(torch_fidelity.FeatureExtractorBase):
    """Features of the domain classifier on uint8 NCHW images at their native size (no resize: the classifier is
    size-agnostic and was trained at the data's size). "pool": pooled penultimate features (FID, PRC);
    "logits": classifier logits; "logits_unbiased": logits without the head's bias (IS, KID), Inception's
    convention in torch-fidelity."""

    def __init__(
        self, name, features_list, feature_extractor_weights_path=None, feature_extractor_internal_dtype=None, **kwargs
    ):
        super().__init__(name, features_list)
        if feature_extractor_weights_path is None:
            raise FileNotFoundError(f"{name} needs feature_extractor_weights_path: the domain classifier's model.pt")
        if not Path(feature_extractor_weights_path).is_file():
            raise FileNotFoundError(
                f"{name}: {feature_extractor_weights_path} does not exist; train the domain "
                f"classifier first (it writes model.pt)"
            )
        if feature_extractor_internal_dtype not in (None, "float32", "float64"):
            raise ValueError(
                f"{name}: internal dtype must be float32 or float64, got {feature_extractor_internal_dtype}"
            )
        from alitok.classifier.train import load_classifier

        self.dtype = torch.float64 if feature_extractor_internal_dtype == "float64" else torch.float32
        model, _ = load_classifier(feature_extractor_weights_path)
        self.model = model.to(self.dtype)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor):
        if not (torch.is_tensor(x) and x.dtype == torch.uint8 and x.dim() == 4 and x.shape[1] == 3):
            raise ValueError(
                f"{self.name} expects uint8 (N, 3, H, W) images, got {getattr(x, 'dtype', type(x))} "
                f"{tuple(getattr(x, 'shape', ()))}"
            )
        pooled, logits = self.model.features(x.to(self.dtype) / 255)
        feats = {
            "pool": pooled,
            "logits": logits,
            "logits_unbiased": pooled @ self.model.head.weight.T,
        }
        return tuple(feats[name].float() for name in self.features_list)

    @staticmethod
    def get_provided_features_list():
        return "pool", "logits", "logits_unbiased"

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"fid": "pool", "prc": "pool", "isc": "logits_unbiased", "kid": "logits_unbiased"}[metric]

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, 32, 32, dtype=torch.uint8)


def register() -> str:
    """Register the extractor with torch-fidelity once per process (re-registering is an error there)."""
    if EXTRACTOR_NAME not in FEATURE_EXTRACTORS_REGISTRY:
        torch_fidelity.register_feature_extractor(EXTRACTOR_NAME, DomainClassifierExtractor)
    return EXTRACTOR_NAME


class TensorImages(Dataset):
    """A uint8 (N, 3, H, W) tensor as the Dataset torch-fidelity wants (one uint8 CHW tensor per item)."""

    def __init__(self, images: torch.Tensor):
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected uint8 (N, 3, H, W) images, got {images.dtype} {tuple(images.shape)}")
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def file_digest(path, length: int = 16) -> str:
    """Short sha256 of a file: torch-fidelity's cache key ignores extractor weights, so cache names carry it."""
    return sha256_file(path)[:length]


def rfid(
    real_uint8: torch.Tensor,
    fake_uint8: torch.Tensor,
    classifier_path,
    cache_root=None,
    real_cache_name: str | None = None,
    batch_size: int = 64,
    cuda: bool = False,
) -> float:
    """FID between two uint8 (N, 3, H, W) sets on the domain classifier's pooled features, via torch-fidelity.

    With cache_root and real_cache_name both set, the real set's features are cached under
    `<real_cache_name>-<classifier hash>`: the name must identify the real images, the hash the classifier.
    Otherwise nothing is cached (anonymous tensors have no stable name)."""
    register()
    kwargs = {}
    cache = cache_root is not None and real_cache_name is not None
    if cache:
        name = f"{real_cache_name}-{file_digest(classifier_path)}"
        kwargs = {"cache_root": str(cache_root), "input1_cache_name": name}
    metrics = torch_fidelity.calculate_metrics(
        input1=TensorImages(real_uint8),
        input2=TensorImages(fake_uint8),
        fid=True,
        feature_extractor=EXTRACTOR_NAME,
        feature_extractor_weights_path=str(classifier_path),
        batch_size=batch_size,
        cuda=cuda,
        save_cpu_ram=True,
        verbose=False,
        cache=cache,
        **kwargs,
    )
    return float(metrics[KEY_FID])
