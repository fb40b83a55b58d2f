"""Benchmarks carry the smoke configs as constants (they must not need the workflow stack): keep them true."""

import sys

from alitok import config
from alitok.generator.config import model_config as generator_config
from alitok.generator.runs import embedded_classes
from alitok.tokenizer.train import model_config as tokenizer_config

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import generator as generator_bench  # noqa: E402
import tokenizer_train as tokenizer_bench  # noqa: E402


def test_tokenizer_benchmark_matches_smoke_params():
    p = config.load(REPO / "params.yaml", "smoke")
    tok = p["tokenizer"]
    assert tokenizer_bench.TokenizerConfig(**tokenizer_bench.SMOKE_MODEL) == tokenizer_config(p)
    s = tokenizer_bench.SMOKE_STEP
    assert s == {
        "batch": tok["training"]["global_batch"],
        "init_std": tok["quantizer"]["init_std"],
        "usage_decay": tok["quantizer"]["usage_decay"],
        "commitment": tok["quantizer"]["commitment_weight"],
        "aux": tok["loss"]["aux_weight"],
        "grad_clip": tok["optimizer"]["grad_clip"],
        "betas": tuple(tok["optimizer"]["betas"]),
    }


def test_generator_benchmark_matches_smoke_params():
    p = config.load(REPO / "params.yaml", "smoke")
    cfg = generator_config(p, "S", embedded_classes(p))
    bench = generator_bench.GeneratorConfig(**generator_bench.SMOKE)
    for field in ("arch", "width", "depth", "heads", "vocab_size", "num_prefix", "grid", "num_classes"):
        assert getattr(bench, field) == getattr(cfg, field), field
    narrow = generator_bench.GeneratorConfig(**generator_bench.NARROW)
    assert narrow.seq_len == 273  # the paper's sampling length
