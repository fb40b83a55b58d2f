"""Import a released AliTok generator (`alitok_{b,l,xl}.bin`, plain state dicts) into the project format.

Our module names are the release's (docs/papers/alitok-release.md §6), so the conversion is a strict check:
every released tensor is used, every tensor of ours is filled, every shape agrees, or one sentence names the
first tensor that does not. The size (B, L or XL) is recognised from the shapes; the geometry (4096 codes,
17 prefix tokens, 16x16 grid, 1000 classes) is the released tokenizer's.
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

import torch

from alitok import atomic
from alitok.geometry import RELEASE_CLASSES
from alitok.models.generator import SIZES, Generator, GeneratorConfig, rope_table
from alitok.tokenizer.release import (
    ReleaseError,
    _fmt,
    _torch_load,
    assign_weights,
    read_project_checkpoint,
    release_config,
)

FORMAT = "alitok-generator/1"


def release_geometry() -> dict:
    """The released generators' geometry: the released tokenizer's (alitok.geometry), ImageNet's classes."""
    return release_config().geometry.generator(RELEASE_CLASSES)


def expected_shapes(cfg: GeneratorConfig) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in Generator(cfg).state_dict().items()}


def detect_size(state: dict, source: str) -> str:
    """The released size whose (width, depth) the state dict has."""
    table = state.get("embeddings.weight")
    if not isinstance(table, torch.Tensor) or table.dim() != 2:
        raise ReleaseError(f"{source}: missing tensor embeddings.weight; is this an AliTok generator file?")
    depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    for size, (width, d, _) in SIZES["alitok"].items():
        if (table.shape[1], d) == (width, depth):
            return size
    known = ", ".join(f"{s}: width {w}, depth {d}" for s, (w, d, _) in SIZES["alitok"].items())
    raise ReleaseError(f"{source}: width {table.shape[1]} and depth {depth} match no released size ({known})")


def check_state(state: dict, cfg: GeneratorConfig, source: str) -> dict[str, torch.Tensor]:
    """Strict name and shape check; works on meta tensors. Returns the state as fp32."""
    shapes = expected_shapes(cfg)
    for name, shape in shapes.items():
        if name not in state:
            raise ReleaseError(f"{source}: missing tensor {name} (expected shape {_fmt(shape)})")
        value = state[name]
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise ReleaseError(f"{source}: {name} is not a floating-point tensor")
        if tuple(value.shape) != shape:
            raise ReleaseError(f"{source}: {name} has shape {_fmt(value.shape)}, expected {_fmt(shape)}")
    for name in state:
        if name not in shapes:
            raise ReleaseError(f"{source}: unexpected tensor {name}; it has no counterpart in the generator")
    return {k: state[k].float() for k in shapes}


def import_release(src_path, out_path, size: str | None = None) -> dict:
    """Convert `alitok_{b,l,xl}.bin` into a project generator checkpoint at `out_path` (atomic write)."""
    src_path = Path(src_path)
    state = _torch_load(src_path, "released generator")
    if not isinstance(state, dict):
        raise ReleaseError(f"{src_path.name}: not a state dict (found {type(state).__name__})")
    size = size or detect_size(state, src_path.name)
    cfg = GeneratorConfig.named("alitok", size, **release_geometry())
    mapped = check_state(state, cfg, src_path.name)
    sha = atomic.sha256_file(src_path)
    atomic.torch_save(
        out_path,
        {
            "format": FORMAT,
            "kind": "generator",
            "config": asdict(cfg),
            "model": mapped,
            "source": {"file": src_path.name, "sha256": sha, "size": size},
        },
    )
    return {
        "out": str(out_path),
        "source": src_path.name,
        "size": size,
        "sha256": sha,
        "tensors": len(mapped),
        "values": sum(v.numel() for v in mapped.values()),
    }


def load_generator(path) -> Generator:
    """A project generator checkpoint (imported or trained) in eval mode."""
    ckpt = read_project_checkpoint(path, FORMAT, "generator")
    with torch.device("meta"):
        model = Generator(GeneratorConfig(**ckpt["config"]))
    assign_weights(model, ckpt["model"], path)
    model.rope = rope_table(model.config)  # not in the state dict: rebuild it off the meta device
    return model


def add_arguments(parser) -> None:
    parser.add_argument(
        "source", type=Path, help="the released generator (alitok_b.bin, alitok_l.bin or alitok_xl.bin)"
    )
    parser.add_argument("--out", type=Path, required=True, help="project generator checkpoint to write")
    parser.add_argument("--size", choices=["B", "L", "XL"], default=None, help="default: recognised from the shapes")


def main(args, p: dict) -> None:
    info = import_release(args.source, args.out, size=args.size)
    print(f"imported {args.source} -> {args.out}: {info}", file=sys.stderr)
