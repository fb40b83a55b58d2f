"""Import a released generator into the project format: AliTok's (`alitok_{b,l,xl}.bin`, plain state dicts) or
LlamaGen's class-conditional GPTs (`c2i_B_256.pt`, `c2i_L_256.pt`: the state dict under the key "model").

The family is recognised from the file's contents, the size from its shapes (`--size` overrides). The conversion
is a strict check: every released tensor is used, every tensor of ours is filled, every shape agrees, or one
sentence names the first tensor that does not, and nothing is written.

- AliTok: our module names are the release's (docs/papers/alitok-release.md §6); the geometry (4096 codes,
  17 prefix tokens, 16x16 grid, 1000 classes) is the released tokenizer's.
- LlamaGen: a renaming (`LLAMAGEN_TOP`, `LLAMAGEN_BLOCK`) onto our `llamagen` architecture, whose forward is
  LlamaGen's (docs/papers/llamagen.md §2; tested against a re-implementation in tests/test_llamagen_import.py).
  The geometry is LlamaGen's VQ-16 tokenizer's at 256 px (16384 codes, 16x16 grid, no prefix) with 1000 classes;
  the class table has 1001 rows, the null class (row 1000) being ours too. The tensors do not record the grid
  (LlamaGen's RoPE table is a plain attribute, not saved), so a 384 px file is refused by its name.
"""

from __future__ import annotations

import re
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
    assign_weights,
    check_release_state,
    read_project_checkpoint,
    read_release,
    release_config,
    vq16_release_config,
)

FORMAT = "alitok-generator/1"
FAMILIES = ("alitok", "llamagen")
FAMILY_NAMES = {"alitok": "an AliTok generator", "llamagen": "a LlamaGen GPT"}

# LlamaGen's name -> ours (docs/papers/llamagen.md §2). wqkv is packed [q | k | v] with heads contiguous in each,
# as our qkv is; w1 is the SwiGLU gate, w3 the up projection, w2 the down projection on both sides.
LLAMAGEN_TOP = [
    ("tok_embeddings.weight", "embeddings.weight"),
    ("cls_embedding.embedding_table.weight", "class_embeddings.weight"),  # 1000 classes + the null class
    ("norm.weight", "norm.weight"),
    ("output.weight", "output.weight"),
]
LLAMAGEN_BLOCK = [
    ("attention_norm.weight", "norm1.weight"),
    ("attention.wqkv.weight", "attn.qkv.weight"),
    ("attention.wo.weight", "attn.proj.weight"),
    ("ffn_norm.weight", "norm2.weight"),
    ("feed_forward.w1.weight", "mlp.w1.weight"),
    ("feed_forward.w3.weight", "mlp.w3.weight"),
    ("feed_forward.w2.weight", "mlp.w2.weight"),
]
# (table, blocks prefix) each family's size is read from: the code table's width and the number of blocks.
SIZE_KEYS = {"alitok": ("embeddings.weight", "blocks."), "llamagen": ("tok_embeddings.weight", "layers.")}
LLAMAGEN_IMAGE_SIZE = vq16_release_config().image_size  # the only resolution imported: the tensors do not say


def release_geometry() -> dict:
    """The released generators' geometry: the released tokenizer's (alitok.geometry), ImageNet's classes."""
    return release_config().geometry.generator(RELEASE_CLASSES)


def llamagen_geometry() -> dict:
    """LlamaGen's released 256 px class-conditional GPTs: its VQ-16 tokenizer's geometry (16384 codes of 8 dims,
    a 16x16 grid, no prefix; docs/papers/llamagen.md §1) and ImageNet's 1000 classes."""
    return vq16_release_config().geometry.generator(RELEASE_CLASSES)


def expected_shapes(cfg: GeneratorConfig) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in Generator(cfg).state_dict().items()}


def llamagen_names(depth: int) -> dict[str, str]:
    """Every tensor name of a LlamaGen GPT of this depth -> ours, in the order problems are reported."""
    table = dict(LLAMAGEN_TOP)
    for i in range(depth):
        table.update({f"layers.{i}.{theirs}": f"blocks.{i}.{ours}" for theirs, ours in LLAMAGEN_BLOCK})
    return table


def detect_size(state: dict, source: str, family: str = "alitok") -> str:
    """The released size whose (width, depth) the state dict has."""
    key, blocks = SIZE_KEYS[family]
    table = state.get(key)
    if not isinstance(table, torch.Tensor) or table.dim() != 2:
        raise ReleaseError(f"{source}: missing tensor {key}; is this {FAMILY_NAMES[family]} file?")
    depth = len({k.split(".")[1] for k in state if k.startswith(blocks)})
    for size, (width, d, _) in SIZES[family].items():
        if (table.shape[1], d) == (width, depth):
            return size
    known = ", ".join(f"{s}: width {w}, depth {d}" for s, (w, d, _) in SIZES[family].items())
    raise ReleaseError(f"{source}: width {table.shape[1]} and depth {depth} match no released size ({known})")


def check_state(
    state: dict, cfg: GeneratorConfig, source: str, names: dict[str, str] | None = None
) -> dict[str, torch.Tensor]:
    """Strict name and shape check; works on meta tensors. `names`: the file's name -> ours (None: the same
    names, AliTok's). Returns our state dict, fp32; messages name the file's tensors."""
    shapes = expected_shapes(cfg)
    names = names or {k: k for k in shapes}
    filled = set(names.values())
    unfilled = [k for k in shapes if k not in filled]
    if unfilled:  # only reachable if our model gains a tensor the name table does not know
        raise ReleaseError(f"{source}: nothing in the release fills {unfilled[0]}")
    check_release_state(state, {name: shapes[ours] for name, ours in names.items()}, source, what="generator")
    return {ours: state[name].float() for name, ours in names.items()}


def map_llamagen_state(state: dict, cfg: GeneratorConfig, source: str) -> dict[str, torch.Tensor]:
    """A LlamaGen GPT's state dict -> ours, strictly (check_state through `llamagen_names`); works on meta tensors.

    LlamaGen's gpt.py keeps its RoPE table `freqs_cis` as a plain attribute, never saved, but its sampler is
    ready to drop one from a file; where a file has it, it is used as a check (it must equal ours). A class table
    without the null row is refused: it comes from training without class dropout, and classifier-free guidance
    needs the null class."""
    table = state.get("cls_embedding.embedding_table.weight")
    if isinstance(table, torch.Tensor) and table.dim() == 2 and table.shape[0] == cfg.num_classes:
        raise ReleaseError(
            f"{source}: cls_embedding.embedding_table.weight has {cfg.num_classes} rows, no null class "
            f"(row {cfg.null_class}, expected {cfg.num_classes + 1} rows), so it cannot run classifier-free guidance"
        )
    if "freqs_cis" in state:
        state = dict(state)
        rope, ours = state.pop("freqs_cis"), rope_table(cfg)
        if not isinstance(rope, torch.Tensor) or tuple(rope.shape) != tuple(ours.shape):
            found = _fmt(rope.shape) if isinstance(rope, torch.Tensor) else type(rope).__name__
            raise ReleaseError(f"{source}: freqs_cis has shape {found}, expected {_fmt(ours.shape)}")
        if not rope.is_meta and not torch.allclose(rope.float(), ours, atol=1e-5):
            raise ReleaseError(f"{source}: freqs_cis differs from the 2-D RoPE table of a {cfg.grid}x{cfg.grid} grid")
    return check_state(state, cfg, source, llamagen_names(cfg.depth))


def read_generator_release(path: Path) -> tuple[str, dict]:
    """(family, state dict) of a released generator file, recognised from its contents: LlamaGen's keeps the
    state dict under "model" (other top-level keys, such as training state, are not read, as LlamaGen's own
    sampler does) with `tok_embeddings.weight`; AliTok's is a plain state dict with `embeddings.weight`."""
    state, wrapped = read_release(path, "released generator")
    if "quantize.embedding.weight" in state:
        raise ReleaseError(
            f"{path.name}: a tokenizer (it holds a codebook, quantize.embedding.weight), not a generator; "
            "import it with alitok import-tokenizer"
        )
    if "tok_embeddings.weight" in state:
        return "llamagen", state
    if wrapped and "embeddings.weight" not in state:
        raise ReleaseError(f'{path.name}: its "{wrapped}" holds no tok_embeddings.weight; is it a LlamaGen GPT file?')
    return "alitok", state


def _check_llamagen_resolution(path: Path) -> None:
    """LlamaGen names its files c2i_<size>_<pixels>.pt; the tensors of a 384 px model are those of a 256 px one."""
    m = re.search(r"_(\d{3,4})\.pt$", path.name)
    if m and int(m.group(1)) != LLAMAGEN_IMAGE_SIZE:
        raise ReleaseError(
            f"{path.name}: a {m.group(1)} px LlamaGen GPT by its name; only the {LLAMAGEN_IMAGE_SIZE} px geometry "
            "(16x16 grid) is imported, and the tensors cannot tell the two apart"
        )


def import_release(src_path, out_path, size: str | None = None, family: str | None = None) -> dict:
    """Convert a released generator (AliTok's `alitok_{b,l,xl}.bin`, LlamaGen's `c2i_{B,L}_256.pt`) into a project
    generator checkpoint at `out_path` (atomic write). `family`: None recognises it from the contents; given, a
    file of the other family is refused. `size`: None recognises it from the shapes."""
    src_path = Path(src_path)
    found, state = read_generator_release(src_path)
    if family is not None and family != found:
        raise ReleaseError(f"{src_path.name}: {FAMILY_NAMES[found]} file, not {FAMILY_NAMES[family]} one")
    size = size or detect_size(state, src_path.name, found)
    if found == "llamagen":
        _check_llamagen_resolution(src_path)
        cfg = GeneratorConfig.named("llamagen", size, **llamagen_geometry())
        mapped = map_llamagen_state(state, cfg, src_path.name)
    else:
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
            "source": {"file": src_path.name, "sha256": sha, "size": size, "family": found},
        },
    )
    return {
        "out": str(out_path),
        "source": src_path.name,
        "family": found,
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
        "source", type=Path, help="the released generator (alitok_{b,l,xl}.bin; LlamaGen's c2i_B_256.pt, c2i_L_256.pt)"
    )
    parser.add_argument("--out", type=Path, required=True, help="project generator checkpoint to write")
    parser.add_argument("--size", choices=["B", "L", "XL"], default=None, help="default: recognised from the shapes")
    parser.add_argument("--family", choices=FAMILIES, default=None, help="default: recognised from the contents")


def main(args, p: dict) -> None:
    info = import_release(args.source, args.out, size=args.size, family=args.family)
    print(f"imported {args.source} -> {args.out}: {info}", file=sys.stderr)
