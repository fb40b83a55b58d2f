"""Import a released tokenizer into the project's checkpoint format, and load project tokenizer checkpoints.

Two families, told apart by the released file's tensor names (`release_family`):

- AliTok's stage-2 `AliTok.pth`: an explicit name table. Names and shapes: docs/papers/alitok-release.md §6; the
  forward computation that makes them mean the same: docs/papers/alitok-release.md §1.
- LlamaGen's VQ-16 `vq_ds16_c2i.pt` (docs/papers/llamagen.md §1): our module names are LlamaGen's, so the table
  is the identity; the usage buffer `quantize.codebook_used` (training state) is ignored. The state dict does not
  record the image size (the network is convolutional): the import is at 256 px, the size of the released
  class-conditional generators CTF builds on (c2i_B_256.pt, c2i_L_256.pt; docs/papers/llamagen.md §2).

Either mapping is checked strictly both ways: every released tensor is used, every tensor of our model is filled,
every shape agrees. A release of another geometry, a renamed or a truncated file is refused with one sentence
naming the tensor, never half-loaded. A project checkpoint records its family (`family`, "vq16"); one without
it is AliTok's, as every checkpoint was before VQ-16.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import zipfile
from dataclasses import asdict
from pathlib import Path

import torch

from alitok import atomic
from alitok.geometry import FAMILIES
from alitok.models.tokenizer import Tokenizer, TokenizerConfig
from alitok.models.vq16 import VQ16, VQ16Config

FORMAT = "alitok-tokenizer/1"


class ReleaseError(ValueError):
    """A released or project tokenizer file that cannot be used; the message names the file (and tensor)."""


def release_config() -> TokenizerConfig:
    """The released AliTok.pth geometry (docs/papers/alitok-release.md §1)."""
    return TokenizerConfig(
        image_size=256, patch_size=16, codebook_size=4096, code_dim=32, prefix="grid_plus_one", buffer_tokens=32,
        enc_width=768, enc_depth=12, enc_heads=12, dec_width=1024, dec_depth=24, dec_heads=16, mlp_ratio=4,
    )  # fmt: skip


def vq16_release_config() -> VQ16Config:
    """LlamaGen's vq_ds16_c2i.pt: VQ-16 at its defaults, at 256 px (a 16x16 grid), which its state dict does not
    record (docs/papers/llamagen.md §1)."""
    return VQ16Config(image_size=256)


# released name -> our name. Names ending in a 1x1-conv weight are marked "conv1x1": stored (out, in, 1, 1)
# in the release, a per-token nn.Linear (out, in) here.
TOP_LEVEL = [
    ("latent_tokens", "latent_tokens"),
    ("encoder.positional_embedding", "encoder.patch_pos"),
    ("encoder.latent_token_positional_embedding", "encoder.latent_pos"),
    ("encoder.patch_embed.weight", "encoder.patch_embed.weight"),
    ("encoder.patch_embed.bias", "encoder.patch_embed.bias"),
    ("encoder.ln_pre.weight", "encoder.ln_pre.weight"),
    ("encoder.ln_pre.bias", "encoder.ln_pre.bias"),
    ("encoder.ln_post.weight", "encoder.ln_post.weight"),
    ("encoder.ln_post.bias", "encoder.ln_post.bias"),
    ("encoder.conv_out.weight", "encoder.to_code.weight"),  # conv1x1
    ("encoder.conv_out.bias", "encoder.to_code.bias"),
    ("quantize.embedding.weight", "quantizer.codebook"),
    ("decoder.class_embedding", "decoder.lead_tokens"),  # the 32 buffer tokens, no class information
    ("decoder.latent_token_positional_embedding", "decoder.pos"),
    ("decoder.decoder_embed.weight", "decoder.code_embed.weight"),
    ("decoder.decoder_embed.bias", "decoder.code_embed.bias"),
    ("decoder.ln_pre.weight", "decoder.ln_pre.weight"),
    ("decoder.ln_pre.bias", "decoder.ln_pre.bias"),
    ("decoder.ln_post.weight", "decoder.ln_post.weight"),
    ("decoder.ln_post.bias", "decoder.ln_post.bias"),
    ("decoder.ffn.0.weight", "decoder.pixel_head.proj.weight"),  # conv1x1
    ("decoder.ffn.0.bias", "decoder.pixel_head.proj.bias"),
    ("decoder.conv_out.weight", "decoder.pixel_head.colour.weight"),  # a real 1x1 conv on both sides
    ("decoder.conv_out.bias", "decoder.pixel_head.colour.bias"),
]
CONV1X1 = {"encoder.conv_out.weight", "decoder.ffn.0.weight"}
BLOCK = [
    ("ln_1.weight", "ln_1.weight"),
    ("ln_1.bias", "ln_1.bias"),
    ("attn.in_proj.weight", "attn.in_proj.weight"),  # packed [q | k | v], heads contiguous: same layout
    ("attn.in_proj.bias", "attn.in_proj.bias"),
    ("attn.out_proj.weight", "attn.out_proj.weight"),
    ("attn.out_proj.bias", "attn.out_proj.bias"),
    ("ln_2.weight", "ln_2.weight"),
    ("ln_2.bias", "ln_2.bias"),
    ("mlp.c_fc.weight", "mlp.fc.weight"),
    ("mlp.c_fc.bias", "mlp.fc.bias"),
    ("mlp.c_proj.weight", "mlp.proj.weight"),
    ("mlp.c_proj.bias", "mlp.proj.bias"),
]


def name_table(cfg: TokenizerConfig) -> dict[str, str]:
    """Every released tensor name for this geometry -> the stage-2 Tokenizer's name."""
    table = dict(TOP_LEVEL)
    for part, depth in (("encoder", cfg.enc_depth), ("decoder", cfg.dec_depth)):
        for i in range(depth):
            for theirs, ours in BLOCK:
                table[f"{part}.transformer.{i}.{theirs}"] = f"{part}.blocks.{i}.{ours}"
    return table


def expected_release_shapes(cfg: TokenizerConfig) -> dict[str, tuple[int, ...]]:
    """Released name -> shape, derived from our model built on the meta device (nothing allocated)."""
    with torch.device("meta"):
        ours = Tokenizer(cfg, stage=2).state_dict()
    shapes = {}
    for theirs, name in name_table(cfg).items():
        shape = tuple(ours[name].shape)
        shapes[theirs] = shape + (1, 1) if theirs in CONV1X1 else shape
    return shapes


def _fmt(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + (",)" if len(shape) == 1 else ")")


def check_release_state(
    state: dict, shapes: dict[str, tuple[int, ...]], source: str, ignored: tuple[str, ...] = (), what="tokenizer"
) -> None:
    """Strict names and shapes: every name of `shapes` present with its shape, nothing else but `ignored`; the
    first problem named in one sentence (released tokenizers and generators alike)."""
    for name, shape in shapes.items():  # in table order: the first message names the first problem
        if name not in state:
            raise ReleaseError(f"{source}: missing tensor {name} (expected shape {_fmt(shape)})")
        value = state[name]
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise ReleaseError(f"{source}: {name} is not a floating-point tensor")
        if tuple(value.shape) != shape:
            raise ReleaseError(f"{source}: {name} has shape {_fmt(value.shape)}, expected {_fmt(shape)}")
    for name in state:
        if name not in shapes and name not in ignored:
            raise ReleaseError(f"{source}: unexpected tensor {name}; it has no counterpart in the {what}")


def map_release_state(state: dict, cfg: TokenizerConfig, source: str = "AliTok.pth") -> dict[str, torch.Tensor]:
    """Released state dict -> our stage-2 parameter dict, strictly. Works on meta tensors too (no copies made)."""
    table = name_table(cfg)
    check_release_state(state, expected_release_shapes(cfg), source)
    return {
        ours: (state[theirs].flatten(1) if theirs in CONV1X1 else state[theirs]).float()
        for theirs, ours in table.items()
    }


VQ16_IGNORED = ("quantize.codebook_used",)  # LlamaGen's usage log of the last 65536 codes: training state


def map_vq16_state(state: dict, cfg: VQ16Config, source: str = "vq_ds16_c2i.pt") -> dict[str, torch.Tensor]:
    """LlamaGen's VQ-16 state dict -> ours (the same names), strictly. Works on meta tensors too."""
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in VQ16(cfg).state_dict().items()}
    check_release_state(state, shapes, source, ignored=VQ16_IGNORED)
    return {name: state[name].float() for name in shapes}


# Names that tell the families apart, and the generators' (AliTok's and LlamaGen's) to say what a wrong file is.
MARKERS = {
    "alitok": ("latent_tokens", "encoder.transformer.", "decoder.transformer."),
    "vq16": ("encoder.conv_blocks.", "decoder.conv_blocks."),
}
GENERATOR_MARKERS = ("tok_embeddings.weight", "embeddings.weight")


def release_family(state: dict, source: str) -> str:
    """The family (alitok, vq16) whose names the state dict has; a generator or an unknown file gets one sentence."""
    for family, prefixes in MARKERS.items():
        if any(name.startswith(prefixes) for name in state):
            return family
    generator = next((name for name in GENERATOR_MARKERS if name in state), None)
    if generator is not None:
        raise ReleaseError(f"{source}: holds a generator ({generator}), not a tokenizer; use alitok import-generator")
    raise ReleaseError(
        f"{source}: not a released tokenizer of a known family (AliTok's AliTok.pth has latent_tokens and "
        f"encoder.transformer.*, LlamaGen's vq_ds16_c2i.pt has encoder.conv_blocks.*)"
    )


def _torch_load(path: Path, what: str):
    if not path.is_file():
        raise ReleaseError(f"{path.name}: {what} {path} does not exist")
    try:  # LlamaGen's training checkpoints keep their argparse.Namespace under "args": allowed, never code
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as e:
        raise ReleaseError(
            f"{path.name}: {what} {path} is truncated, corrupt or not a tensor file ({type(e).__name__})"
        ) from e


def read_release(src_path: Path, what: str = "released tokenizer") -> tuple[dict, str | None]:
    """A released state dict, unwrapped from a "state_dict" or "model" key (LlamaGen's files use "model", beside
    training state that is not read), and that key (None: a plain state dict)."""
    state, key = _torch_load(src_path, what), None
    if isinstance(state, dict):
        key = next((k for k in ("state_dict", "model") if isinstance(state.get(k), dict)), None)
        state = state[key] if key else state
    if not isinstance(state, dict):
        raise ReleaseError(f"{src_path.name}: not a state dict (found {type(state).__name__})")
    return state, key


def import_release(src_path, out_path, cfg: TokenizerConfig | VQ16Config | None = None) -> dict:
    """Convert a released tokenizer (AliTok's stage-2 `AliTok.pth` or LlamaGen's `vq_ds16_c2i.pt`, recognised by its
    names) into a project checkpoint at `out_path` (atomic write). `cfg`: a reduced geometry, for tests.

    AliTok's quantizer usage EMA (training state, not in the release) is written as zeros, its fresh value.
    Returns a summary: family, source file and sha256, tensor and value counts, output path.
    """
    src_path = Path(src_path)
    state, _ = read_release(src_path)
    family = release_family(state, src_path.name)
    if cfg is not None and isinstance(cfg, VQ16Config) != (family == "vq16"):
        raise ReleaseError(f"{src_path.name}: holds a {family} tokenizer, not one for {type(cfg).__name__}")
    if family == "vq16":
        cfg = cfg or vq16_release_config()
        mapped = map_vq16_state(state, cfg, src_path.name)
        with torch.device("meta"):
            model = VQ16(cfg)
        model.load_state_dict(mapped, strict=True, assign=True)
        entry = {"family": "vq16"}
    else:
        cfg = cfg or release_config()
        mapped = map_release_state(state, cfg, src_path.name)
        with torch.device("meta"):  # no 390M-value random init just to be overwritten
            model = Tokenizer(cfg, stage=2)
        unfilled = [k for k in model.state_dict() if k not in mapped and k != "quantizer.usage"]
        if unfilled:  # only reachable if the model gains a tensor the table does not know
            raise ReleaseError(f"{src_path.name}: nothing in the release fills {unfilled[0]}")
        usage = torch.zeros(cfg.codebook_size)
        model.load_state_dict({**mapped, "quantizer.usage": usage}, strict=True, assign=True)
        entry = {"stage": 2}  # no family key: AliTok's checkpoints stay as they were

    sha = atomic.sha256_file(src_path)
    atomic.torch_save(
        out_path,
        {
            "format": FORMAT,
            "kind": "tokenizer",
            **entry,
            "config": asdict(cfg),
            "model": model.state_dict(),
            "source": {"file": src_path.name, "sha256": sha},
        },
    )
    return {
        "out": str(out_path),
        "family": family,
        "source": src_path.name,
        "sha256": sha,
        "tensors": len(mapped),
        "values": sum(v.numel() for v in mapped.values()),
    }


def read_project_checkpoint(path, fmt: str, what: str) -> dict:
    """A project checkpoint of format `fmt` (tokenizer or generator), or one sentence saying what it is instead."""
    path = Path(path)
    ckpt = _torch_load(path, f"{what} checkpoint")
    if not isinstance(ckpt, dict) or ckpt.get("format") != fmt:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ReleaseError(
            f"{path.name}: not an {fmt} checkpoint (format {found!r}); import a release with alitok import-{what}"
        )
    return ckpt


def assign_weights(model: torch.nn.Module, state: dict, path) -> torch.nn.Module:
    """Fill a model built on the meta device with the checkpoint's tensors (strict), in eval mode."""
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as e:
        raise ReleaseError(f"{Path(path).name}: weights do not match its own config ({str(e).splitlines()[0]})") from e
    return model.eval()


def load_tokenizer(path) -> Tokenizer | VQ16:
    """A project tokenizer checkpoint of either family (imported release or our own training) in eval mode."""
    ckpt = read_project_checkpoint(path, FORMAT, "tokenizer")
    family = ckpt.get("family", "alitok")
    if family not in FAMILIES:
        raise ReleaseError(f"{Path(path).name}: unknown tokenizer family {family!r} (known: {', '.join(FAMILIES)})")
    with torch.device("meta"):
        if family == "vq16":
            model = VQ16(VQ16Config(**ckpt["config"]))
        else:
            model = Tokenizer(TokenizerConfig(**ckpt["config"]), stage=ckpt["stage"])
    return assign_weights(model, ckpt["model"], path)


def add_arguments(parser) -> None:
    parser.add_argument(
        "source",
        type=Path,
        help="the released tokenizer file: AliTok.pth (stage 2) or LlamaGen's vq_ds16_c2i.pt (at 256 px)",
    )
    parser.add_argument("--out", type=Path, required=True, help="project tokenizer checkpoint to write")


def main(args, p: dict) -> None:
    info = import_release(args.source, args.out)
    print(f"imported {args.source} -> {args.out}: {info}", file=sys.stderr)
