"""What reproducing a params profile costs: FLOPs, steps, GPU-hours at a stated MFU, and disk, per stage.

Counting conventions, the benchmarks' (benchmarks/README.md):
- Transformers that train on token sequences (generators, CTF's two stages): 6 N T + 12 L T^2 d per sequence
  of T tokens, N the parameters of the matrix multiplies (Linear weights: embedding lookups cost nothing), L
  layers of width d (nanoGPT's and PaLM's estimate; benchmarks/generator.py). A test holds it within 5 % of
  torch's FlopCounterMode on a real step.
- Everything else (the tokenizer, its perceptual networks and discriminator): torch's FlopCounterMode on one
  forward of the profile's networks, built as fake tensors (shapes only: no weights, no memory), as
  benchmarks/tokenizer_train.py counts a real step. A trained network's forward and backward cost 3 forwards, a
  frozen network that passes gradients to its input 2, a forward without gradients 1.
- Sampling: one KV-cached token at a time, 2 N + 4 L t d for token t, twice with guidance (the fused batch),
  then the tokenizer's decoder once per image.

GPU-hours = FLOPs / (peak bf16 dense FLOP/s x MFU). No paper states its GPU-hours, so these are estimates to
plan with, not a check against the papers.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from alitok.generator import runs as gen_runs  # torch-free; plan's constants serve benchmarks/gpu.py as well

# Dense bf16 tensor-core peaks, SXM parts, from the vendors' datasheets (NVIDIA A100, H100 and H200 datasheets).
PEAK_BF16 = {"A100": 312e12, "H100": 989e12, "H200": 989e12}
DEFAULT_MFU = 0.4  # a plain data-parallel transformer on these parts reaches 35-50 % [ours]
# KV-cached decoding reads every weight per token: memory-bound, a few % of the matmul peak [ours]
DEFAULT_SAMPLING_MFU = 0.05
# ILSVRC-2012 train images: the count the release's epochs are of (docs/papers/alitok.md §2.3: 62,500 steps of 2,048
# are 100 epochs; docs/papers/llamagen.md §3: 5,004 steps of 256 per epoch).
IMAGENET_TRAIN = 1_281_167
IMAGENET_VAL = 50_000


@dataclass
class Stage:
    name: str
    steps: int  # optimiser updates (sampling and extraction: 1)
    batch: int  # images (or sequences) per step
    flops_per_step: float
    disk_bytes: int = 0  # what the stage writes that outlives it (checkpoint with optimiser state, tokens, samples)
    note: str = ""

    @property
    def flops(self) -> float:
        return self.steps * self.flops_per_step

    sampling: bool = False  # memory-bound decoding: its hours use the sampling MFU

    def gpu_hours(self, gpu: str, mfu: float, sampling_mfu: float = DEFAULT_SAMPLING_MFU) -> float:
        return self.flops / (PEAK_BF16[gpu] * (sampling_mfu if self.sampling else mfu)) / 3600


def shapes_only(factory):
    """The module `factory` builds, with fake tensors for weights: shapes, dtypes and a CPU device, no memory and no
    arithmetic. Built on the meta device (no initialisation), then each tensor faked onto the CPU, so that autocast
    and the quantizers' fp32 regions run as they do for real (the meta device has no autocast)."""
    import torch
    import torch.nn as nn
    from torch._subclasses.fake_tensor import FakeTensorMode

    mode = FakeTensorMode(allow_non_fake_inputs=True)
    with torch.device("meta"):
        module = factory()

    def fake(t):
        return mode.fake_tensor_converter.from_meta_and_device(mode, t, torch.device("cpu"))

    for m in module.modules():
        for name, w in list(m._parameters.items()):
            if w is not None:
                m._parameters[name] = nn.Parameter(fake(w), requires_grad=w.requires_grad)
        for name, b in list(m._buffers.items()):
            if b is not None:
                m._buffers[name] = fake(b)
    module.fake_mode = mode
    return module.eval()


def flop_counter():
    """torch's FlopCounterMode, also counting the CPU's fused attention (registered for the GPU kernels only: on
    a CPU an attention layer would count as free) with torch's own attention formulas."""
    import torch
    from torch.utils import flop_counter as fc

    aten = torch.ops.aten

    def forward(query, key, value, *args, out_shape=None, **kwargs):
        return fc.sdpa_flop_count(query, key, value)

    def backward(grad_out, query, key, value, *args, out_shape=None, **kwargs):
        return fc.sdpa_backward_flop_count(grad_out, query, key, value)

    cpu = {
        aten._scaled_dot_product_flash_attention_for_cpu: forward,
        aten._scaled_dot_product_flash_attention_for_cpu_backward: backward,
    }
    return fc.FlopCounterMode(display=False, custom_mapping=cpu)


def forward_flops(module, size: int, call=None) -> int:
    """FlopCounterMode's count of one forward of a fake module (`shapes_only`) on one (3, size, size) image."""
    import torch

    counter = flop_counter()
    with module.fake_mode, counter, torch.no_grad():
        (call or module)(torch.zeros(1, 3, size, size))
    return counter.get_total_flops()


def matmul_params(model) -> int:
    import torch.nn as nn

    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))


def sequence_train_flops(model, tokens: int) -> float:
    """6 N T + 12 L T^2 d for one sequence of `tokens` through a generator-family model (forward and backward)."""
    c = model.config
    return 6 * matmul_params(model) * tokens + 12 * c.depth * tokens**2 * c.width


def sequence_sample_flops(model, tokens: int, guided: bool) -> float:
    """Incremental decoding of `tokens` positions with a KV cache: sum over t of 2 N + 4 L t d, x2 with guidance."""
    c = model.config
    one = 2 * matmul_params(model) * tokens + 2 * c.depth * tokens * (tokens + 1) * c.width
    return one * (2 if guided else 1)


def _meta_generator(cfg):
    import torch

    from alitok.models.generator import Generator

    with torch.device("meta"):  # counted by formula: parameter shapes are all it needs
        return Generator(cfg)


def _tokenizer(p: dict, stage: int):
    from alitok.geometry import family
    from alitok.tokenizer.train import model_config, vq16_config

    if family(p) == "vq16":
        from alitok.models.vq16 import VQ16

        return lambda: VQ16(vq16_config(p))
    from alitok.models.tokenizer import Tokenizer

    return lambda: Tokenizer(model_config(p), stage)


def _tokenizer_flops(p: dict, stage: int) -> dict:
    """Forward FLOPs per image of the tokenizer (whole and encoder only), its perceptual nets and D: shapes only."""
    from alitok.tokenizer import gan

    size, per = p["data"]["image_size"], p["tokenizer"]["perceptual"]
    model = shapes_only(_tokenizer(p, stage))
    logits = shapes_only(lambda: _perceptual_net(p, per["logits_net"]))
    lpips = shapes_only(lambda: _perceptual_net(p, per["lpips_net"], lpips=True))
    return {
        "model": forward_flops(model, size),
        "encoder": forward_flops(model, size, model.encode_codes),
        "logits": forward_flops(logits, per["logits_size"] or size),
        "lpips": 2 * forward_flops(lpips, size),  # the reconstruction's and the original's features
        "disc": forward_flops(shapes_only(lambda: gan.discriminator(p["tokenizer"]["discriminator"])), size),
    }


def _perceptual_net(p: dict, name: str, lpips: bool = False):
    """The network of a perceptual term: torchvision's for the paper profiles, the pipeline's small CNN (params
    `perceptual_net`) for the embedded ones (its LPIPS reads the conv stages: the whole net bar the head)."""
    import torchvision

    if name == "convnext_small":
        return torchvision.models.convnext_small(weights=None)
    if name == "vgg16":
        return torchvision.models.vgg16(weights=None).features
    from alitok.models.classifier import Classifier, ClassifierConfig

    return Classifier(ClassifierConfig(num_classes=10, width=p["perceptual_net"]["width"]))


def tokenizer_stages(p: dict, train_images: int, flops: dict[int, dict]) -> list[Stage]:
    """One Stage per training phase. Per image: the tokenizer 3 forwards (stage 2: the frozen encoder 1), each
    perceptual term its network on the original (1) and through the reconstruction (2), the GAN term D through
    the reconstruction (2) and D's own update on real and fake (2 x 2: weight gradients only). With the release's
    alternating recipe a phase's `steps` are tokenizer updates, each followed by a D turn that also re-encodes
    the batch without gradients (1 tokenizer forward)."""
    if gen_runs.imports_tokenizer(p):
        return []
    t = p["tokenizer"]
    final = gen_runs.tokenizer_final_stage(p)
    batch, stages = t["training"]["global_batch"], []
    for stage in range(1, final + 1):
        f = flops[stage]
        tok = 3 * f["model"] if stage == 1 else f["encoder"] + 3 * (f["model"] - f["encoder"])
        model_bytes = _param_bytes_tokenizer(p, stage)
        for phase in t[f"stage{stage}"]:
            per_image = tok
            per_image += 3 * f["logits"] if phase["perceptual_weight"] > 0 else 0
            per_image += 3 * f["lpips"] if phase["lpips_weight"] > 0 else 0
            if phase["gan_weight"] > 0:
                per_image += 2 * f["disc"] + 4 * f["disc"]
                per_image += f["model"] if t["discriminator"]["recipe"] == "release" else 0
            stages.append(
                Stage(
                    f"tokenizer stage {stage}: {phase['name']}",
                    phase["steps"],
                    batch,
                    per_image * batch,
                    model_bytes if phase is t[f"stage{stage}"][-1] else 0,
                    f"{phase['steps'] * batch / train_images:.1f} epochs",
                )
            )
    return stages


def _param_bytes_tokenizer(p: dict, stage: int) -> int:
    """fp32 weights and AdamW's two moments: what a training checkpoint holds."""
    import torch

    with torch.device("meta"):
        model = _tokenizer(p, stage)()
    return 12 * sum(x.numel() for x in model.parameters())


def generator_stages(p: dict, num_classes: int, train_images: int, crops: int) -> list[Stage]:
    """Training of every generator the profile trains (controls included), CTF's stage 1s and its one stage 2."""
    from alitok.generator.config import ctf_config, model_config

    if gen_runs.imports_generators(p):
        return []
    batch, out = p["generator"]["training"]["global_batch"], []
    trained = [r for r in gen_runs.generator_runs(p) if gen_runs.trained_run(r) == r]
    for run in trained:
        kind, scale, control, _ = gen_runs.parse_run(run)
        if kind == "ctf":
            cfg = ctf_config(p, 1, p["ctf"]["clusters"]["count"], num_classes, scale)
        else:
            cfg = model_config(p, scale, num_classes)
        model = _meta_generator(cfg)
        steps = gen_runs.training_steps(p, scale, control)
        seqs = steps * batch
        out.append(
            Stage(
                f"generator {run}",
                steps,
                batch,
                batch * sequence_train_flops(model, cfg.seq_len),
                12 * sum(x.numel() for x in model.parameters()),
                f"{seqs / train_images:.1f} epochs ({seqs / (train_images * crops):.1f} per crop)",
            )
        )
    if p.get("ctf", {}).get("run"):
        cfg = ctf_config(p, 2, p["ctf"]["clusters"]["count"], num_classes)
        model = _meta_generator(cfg)
        steps = gen_runs.training_steps(p, None, None)
        out.append(
            Stage(
                "CTF stage 2",
                steps,
                batch,
                batch * sequence_train_flops(model, cfg.seq_len + 1),
                12 * sum(x.numel() for x in model.parameters()),
                f"{steps * batch / train_images:.1f} epochs",
            )
        )
    return out


def sampling_stages(p: dict, num_classes: int, f: dict) -> list[Stage]:
    """Every sampled run: its tokens, then the final tokenizer's decoder, once per sample; the samples' disk."""
    from alitok.generator.config import ctf_config, model_config

    s, size = p["generator"]["sampling"], p["data"]["image_size"]
    decode = f["model"] - f["encoder"]
    out = []
    for run in gen_runs.generator_runs(p):
        kind, scale, _, sampling = gen_runs.parse_run(run)
        q = gen_runs.at_ctf_protocol(p, scale) if sampling == "ctf" else p
        guided = (p["ctf"]["sampling"] if kind == "ctf" else q["generator"]["scales"][scale])["guidance"] > 1
        if kind == "ctf":
            k = p["ctf"]["clusters"]["count"]
            one = _meta_generator(ctf_config(p, 1, k, num_classes, scale))
            two = _meta_generator(ctf_config(p, 2, k, num_classes))
            tokens = one.config.seq_len
            per = sequence_sample_flops(one, tokens, guided) + sequence_train_flops(two, tokens + 1) / 3
        else:
            model = _meta_generator(model_config(p, scale, num_classes))
            per = sequence_sample_flops(model, model.config.seq_len, guided)
        n = s["num_samples"]
        out.append(Stage(f"sample {run}", 1, n, n * (per + decode), n * size * size * 3, f"{n:,} samples", True))
    return out


def extraction_stage(p: dict, train_images: int, val_images: int, f: dict) -> Stage:
    """Encoding the train set (every crop) and the val set with the final tokenizer; the tokens' disk (uint16
    codes and an int32 label per crop)."""
    from alitok import geometry

    crops = 10 if p["tokens"]["ten_crop"] else 1
    images = train_images * crops + val_images
    seq = geometry.from_params(p).seq_len
    return Stage("extract tokens", 1, images, images * f["encoder"], images * (2 * seq + 4), f"{crops} crops")


def plan(p: dict, train_images: int | None = None, val_images: int | None = None) -> dict:
    """Every stage of profile `p`, with the image counts it assumed."""
    classes = gen_runs.embedded_classes(p)
    if p["data"]["source"] == "embedded":
        e = p["data"]["embedded"]
        train_images = train_images or e["num_classes"] * e["train_per_class"]
        val_images = val_images or e["num_classes"] * e["val_per_class"]
    else:
        train_images, val_images, classes = train_images or IMAGENET_TRAIN, val_images or IMAGENET_VAL, classes or 1000
    crops = 10 if p["tokens"]["ten_crop"] else 1
    final = gen_runs.tokenizer_final_stage(p)
    trained = () if gen_runs.imports_tokenizer(p) else range(1, final + 1)
    flops = {stage: _tokenizer_flops(p, stage) for stage in {*trained, final}}  # counted once per stage
    stages = tokenizer_stages(p, train_images, flops)
    if not gen_runs.imports_generators(p):
        stages.append(extraction_stage(p, train_images, val_images, flops[final]))
    stages += generator_stages(p, classes, train_images, crops) + sampling_stages(p, classes, flops[final])
    return {"profile": p["name"], "train_images": train_images, "val_images": val_images, "stages": stages}


def table(result: dict, gpu: str, mfu: float, sampling_mfu: float = DEFAULT_SAMPLING_MFU) -> str:
    hours = {"gpu": gpu, "mfu": mfu, "sampling_mfu": sampling_mfu}
    lines = [
        f"# Compute plan: params profile `{result['profile']}`",
        "",
        f"{result['train_images']:,} train and {result['val_images']:,} held-out images. GPU-hours on {gpu} at "
        f"{PEAK_BF16[gpu] / 1e12:.0f} TFLOP/s (bf16 dense peak) x MFU {mfu:.0%}; sampling x {sampling_mfu:.0%} "
        '(decoding is memory-bound). FLOPs: alitok/plan.py\'s conventions (docs/cluster.md, "Compute plan").',
        "",
        "| stage | steps | batch | FLOPs / step | FLOPs | GPU-hours | disk | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in result["stages"]:
        lines.append(
            f"| {s.name} | {s.steps:,} | {s.batch:,} | {s.flops_per_step:.3g} | {s.flops:.3g} | "
            f"{s.gpu_hours(**hours):,.1f} | {_bytes(s.disk_bytes)} | {s.note} |"
        )
    total = sum(s.flops for s in result["stages"])
    total_hours = sum(s.gpu_hours(**hours) for s in result["stages"])
    disk = sum(s.disk_bytes for s in result["stages"])
    lines += [f"| **total** | | | | {total:.3g} | **{total_hours:,.0f}** | {_bytes(disk)} | |", ""]
    return "\n".join(lines)


def _bytes(n: int) -> str:
    if n == 0:
        return "–"
    unit = min(int(math.log(n, 1024)), 4)
    return f"{n / 1024**unit:.1f} {['B', 'KiB', 'MiB', 'GiB', 'TiB'][unit]}"


def add_arguments(parser) -> None:
    parser.add_argument("--gpu", choices=sorted(PEAK_BF16), default="H100", help="whose bf16 peak the hours use")
    parser.add_argument("--mfu", type=float, default=DEFAULT_MFU, help="model FLOP utilisation of training (0-1]")
    parser.add_argument(
        "--sampling-mfu", type=float, default=DEFAULT_SAMPLING_MFU, help="model FLOP utilisation of sampling (0-1]"
    )
    parser.add_argument("--train-images", type=int, help="train images (default: the profile's, ImageNet's 1.28M)")
    parser.add_argument("--json", type=Path, help="also write the stages as JSON here")


def main(args, p: dict) -> None:
    from alitok.config import ParamsError

    for name in ("mfu", "sampling_mfu"):
        if not 0 < getattr(args, name) <= 1:
            raise ParamsError(f"--{name.replace('_', '-')} must be in (0, 1], got {getattr(args, name)}")
    result = plan(p, args.train_images)
    hours = {"gpu": args.gpu, "mfu": args.mfu, "sampling_mfu": args.sampling_mfu}
    print(table(result, **hours))
    if args.json:
        stages = [asdict(s) | {"flops": s.flops, "gpu_hours": s.gpu_hours(**hours)} for s in result["stages"]]
        args.json.write_text(json.dumps({**result, "stages": stages, **hours}, indent=1))
    print(f"plan: {len(result['stages'])} stages", file=sys.stderr)
