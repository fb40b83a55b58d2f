"""The sampler's golden tokens: fixed random models, fixed labels, ids and seeds, every path of the sampler (both
architectures, guided with the cosine-power ramp and unguided, top-k and top-p, CTF's two stages). The fixture
was recorded with the sampler as it was before any speed work (issue 32); a faster sampler must reproduce it
exactly. Record again only for a deliberate change of the samples:

    .venv/bin/python tests/golden_sampler.py   # writes tests/golden/sampler_tokens.json
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from alitok.ctf.sampling import generate_ctf
from alitok.generator.sampling import generate
from alitok.models.generator import Generator, GeneratorConfig

FIXTURE = Path(__file__).parent / "golden" / "sampler_tokens.json"
GEOMETRY = {"vocab_size": 256, "num_classes": 10, "num_prefix": 5, "grid": 4}  # 21 tokens
LABELS, IDS = [3, 0, 9, 3, 5, 1], [0, 1, 2, 3, 1000, 77]

CASES = {  # name: (arch, sampling settings)
    "alitok_guided_ramp": ("alitok", {"guidance": 4.0, "power": 1.0, "temperature": 1.0}),
    "alitok_unguided": ("alitok", {"guidance": 1.0, "temperature": 0.7}),
    "alitok_topk_topp": ("alitok", {"guidance": 2.0, "temperature": 1.0, "top_k": 20, "top_p": 0.9}),
    "llamagen_guided_constant": ("llamagen", {"guidance": 2.0, "power": None, "temperature": 1.0}),
    "llamagen_unguided": ("llamagen", {"guidance": 1.0, "temperature": 1.0}),
}


def model(arch: str, seed: int, **overrides) -> Generator:
    torch.manual_seed(seed)
    cfg = GeneratorConfig(arch=arch, width=64, depth=2, heads=4, **{**GEOMETRY, **overrides})
    return Generator(cfg).eval()


def ctf_models():
    """Stage 1 over 16 coarse labels, stage 2 reading them, and a fine -> coarse map (code c to cluster c % 16)."""
    stage1 = model("alitok", 11, vocab_size=16)
    stage2 = model("llamagen", 12, causal=False, input_vocab=16)
    return stage1, stage2, torch.arange(GEOMETRY["vocab_size"]) % 16


def draw() -> dict:
    labels, ids = torch.tensor(LABELS), torch.tensor(IDS)
    out = {}
    for i, (name, (arch, settings)) in enumerate(CASES.items()):
        out[name] = generate(model(arch, i), labels, ids, seed=5, **settings).tolist()
    stage1, stage2, f2c = ctf_models()
    for restrict in (False, True):
        coarse, fine = generate_ctf(
            stage1, stage2, f2c, labels, ids, seed=7, guidance=2.0, power=None, tau1=1.1, tau2=1.0, top_k=0,
            restrict=restrict,
        )  # fmt: skip
        out[f"ctf_restrict_{restrict}"] = {"coarse": coarse.tolist(), "fine": fine.tolist()}
    return out


if __name__ == "__main__":
    FIXTURE.parent.mkdir(exist_ok=True)
    FIXTURE.write_text(json.dumps(draw()) + "\n")
    print(f"wrote {FIXTURE}")
