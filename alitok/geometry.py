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
FAMILIES = ("alitok", "vq16")  # AliTok's 1-D tokenizer; LlamaGen's VQ-16 CNN tokenizer (docs/tokenizers.md)
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
    image_size: int  # pixels per side of the images it encodes and decodes
    # The values its networks take and give. AliTok's: [0, 1]; VQ-16's: [-1, 1]. The interface (encode_codes,
    # decode_codes) speaks [0, 1] whatever the family: the conversion is the tokenizer's own.
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


def of_tokenizer(cfg: Mapping, family: str = "alitok") -> Geometry:
    """From a tokenizer config (other keys ignored). AliTok: image_size, patch_size, codebook_size, code_dim,
    prefix. VQ-16: image_size, codebook_size, code_dim and ch_mult, whose length sets the down-sampling (a factor 2
    between levels: 16 with LlamaGen's five levels); no prefix, images in [-1, 1]."""
    if family not in FAMILIES:
        raise ValueError(f"tokenizer family must be one of {FAMILIES}, got {family!r}")
    size, common = cfg["image_size"], {"codebook_size": cfg["codebook_size"], "code_dim": cfg["code_dim"]}
    if family == "vq16":
        grid = size // 2 ** (len(cfg["ch_mult"]) - 1)
        return Geometry(**common, grid=grid, num_prefix=0, image_size=size, pixel_range=(-1.0, 1.0))
    grid = size // cfg["patch_size"]
    return Geometry(**common, grid=grid, num_prefix=prefix_count(cfg["prefix"], grid), image_size=size)


def family(p: dict) -> str:
    """The tokenizer family of a params profile: `tokenizer.family`, AliTok's by default."""
    return p["tokenizer"].get("family", "alitok")


def from_params(p: dict) -> Geometry:
    """The geometry of the tokenizer a (validated) params profile trains or imports: `tokenizer.model` for
    AliTok's, `tokenizer.vq16` for VQ-16's."""
    fam = family(p)
    section = p["tokenizer"]["model" if fam == "alitok" else fam]
    return of_tokenizer({"image_size": p["data"]["image_size"], **section}, fam)


def generator_of_tokens(info: Mapping, num_classes: int) -> dict:
    """`Geometry.generator` as a token manifest recorded it (`Geometry.tokens`)."""
    return {k: info[k] for k in ("vocab_size", "num_prefix", "grid")} | {"num_classes": num_classes}
