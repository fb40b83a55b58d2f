"""The tokenizer's geometry: what everything downstream of a tokenizer depends on (its token manifests, the
generators' vocabulary and sequence, CTF's coarse maps), derived in one place and without torch, so rules,
planning and meta-device tests call it as cheaply as the stages.

`of_tokenizer` derives it from a tokenizer config: params' `tokenizer.model` with `data.image_size`
(`from_params`), a tokenizer checkpoint's `config` (alitok.tokenizer.train and .release write asdict of the
TokenizerConfig), or the release's. Stages that hold a tokenizer checkpoint or a token manifest read it from there
(`of_tokenizer(ckpt["config"])`, `generator_of_tokens(manifest)`), never from params again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

PREFIXES = ("grid_plus_one", "grid", "none")
RELEASE_CLASSES = 1000  # the released generators' ImageNet classes


def prefix_count(prefix: str, grid: int) -> int:
    """Prefix tokens before the grid's codes: "grid_plus_one" (released: 17 at 16x16), "grid" (v2/v3 paper: 16),
    "none" (ablation)."""
    if prefix not in PREFIXES:
        raise ValueError(f"tokenizer prefix must be one of {PREFIXES}, got {prefix!r}")
    return {"grid_plus_one": grid + 1, "grid": grid, "none": 0}[prefix]


@dataclass(frozen=True)
class Geometry:
    codebook_size: int  # the generators' vocabulary
    code_dim: int
    grid: int  # codes per side of the image grid
    num_prefix: int  # prefix codes before the grid's, in sequence order
    # The tokenizer's image values. AliTok's: [0, 1]; a tokenizer family working in [-1, 1] says so here.
    pixel_range: tuple[float, float] = (0.0, 1.0)

    @property
    def num_image_tokens(self) -> int:
        return self.grid**2

    @property
    def seq_len(self) -> int:
        return self.num_prefix + self.num_image_tokens

    def generator(self, num_classes: int) -> dict:
        """GeneratorConfig's geometry fields: the codebook is its vocabulary, the classes the dataset's."""
        return {
            "vocab_size": self.codebook_size,
            "num_prefix": self.num_prefix,
            "grid": self.grid,
            "num_classes": num_classes,
        }

    def tokens(self) -> dict:
        """What a token manifest records of it (alitok.tokens.extract); `generator_of_tokens` reads it back."""
        return {
            "seq_len": self.seq_len,
            "num_prefix": self.num_prefix,
            "grid": self.grid,
            "vocab_size": self.codebook_size,
        }


def of_tokenizer(cfg: Mapping) -> Geometry:
    """From a tokenizer config's image_size, patch_size, codebook_size, code_dim and prefix (other keys ignored)."""
    grid = cfg["image_size"] // cfg["patch_size"]
    return Geometry(
        codebook_size=cfg["codebook_size"],
        code_dim=cfg["code_dim"],
        grid=grid,
        num_prefix=prefix_count(cfg["prefix"], grid),
    )


def from_params(p: dict) -> Geometry:
    """The geometry of the tokenizer a (validated) params profile trains."""
    return of_tokenizer({"image_size": p["data"]["image_size"], **p["tokenizer"]["model"]})


def generator_of_tokens(info: Mapping, num_classes: int) -> dict:
    """`Geometry.generator` as a token manifest recorded it (`Geometry.tokens`)."""
    return {k: info[k] for k in ("vocab_size", "num_prefix", "grid")} | {"num_classes": num_classes}
