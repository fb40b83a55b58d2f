"""CTF: the coarse map (k-means over the codebook), the two models' sizes on the meta device, stage 2 reading the
whole coarse map, and two-stage sampling."""

import json

import numpy as np
import pytest
import torch

from alitok import config, geometry
from alitok.ctf.clusters import coarse_map, kmeans, token_usage
from alitok.ctf.sampling import generate_ctf
from alitok.models.generator import Generator, GeneratorConfig

LLAMAGEN_VQ16 = {"num_prefix": 0, "grid": 16, "num_classes": 1000}  # LlamaGen's 16x16 map, ImageNet classes


@pytest.mark.parametrize("size,stage1,stage2", [("B", 86.51, 98.70), ("L", 310.41, 326.66), ("XL", 734.07, 754.38)])
def test_paper_sizes_on_meta(size, stage1, stage2):
    """Stage 1 reads and predicts 512 coarse labels: the paper's 87M / 310M / 734M (docs/papers/ctf.md §1.2).
    Stage 2 reads 512 and predicts 16384: 98.7M / 326.7M / 754.4M, where the paper states LlamaGen's nominal 111M /
    343M / 775M (docs/ctf.md)."""
    with torch.device("meta"):
        s1 = Generator(GeneratorConfig.named("llamagen", size, vocab_size=512, **LLAMAGEN_VQ16))
        s2 = Generator(
            GeneratorConfig.named("llamagen", size, vocab_size=16384, input_vocab=512, causal=False, **LLAMAGEN_VQ16)
        )
    assert round(s1.num_params() / 1e6, 2) == stage1
    assert round(s2.num_params() / 1e6, 2) == stage2
    assert s2.embeddings.weight.shape == (512, s2.config.width) and s2.output.weight.shape[0] == 16384


@pytest.mark.parametrize("arch", ["alitok", "llamagen"])
def test_configs_build_over_this_pipelines_codebook(arch):
    geo = geometry.from_params(config.load("params.yaml", "imagenet256")).generator(1000)
    codes = geo.pop("vocab_size")
    with torch.device("meta"):
        s1 = Generator(GeneratorConfig.named(arch, "B", vocab_size=512, **geo))
        s2 = Generator(GeneratorConfig.named(arch, "B", vocab_size=codes, input_vocab=512, causal=False, **geo))
    assert s1.config.seq_len == s2.config.seq_len == 273
    assert s2.output.weight.shape[0] == 4096
    if arch == "alitok":  # the shared table holds the K coarse rows, then the unused row and the classes
        assert s2.embeddings.weight.shape[0] == 512 + 1 + 1000 + 1
        assert s2.config.class_id(torch.tensor([0])).item() == 513


@pytest.mark.parametrize("profile", ["imagenet256", "imagenet512", "smoke", "ctf256"])
def test_the_profiles_ctf_models_build_on_meta(profile):
    """What the pipeline trains: each ctf.run scale's stage 1 is that plain generator with a K-way table and head
    (fewer parameters by exactly the table and head rows it drops), and ctf.stage2 reads K and emits the codebook."""
    from alitok.generator.config import ctf_config
    from alitok.generator.config import model_config as generator_config

    p = config.load("params.yaml", profile)
    k, vocab = p["ctf"]["clusters"]["count"], geometry.from_params(p).codebook_size
    with torch.device("meta"):
        for scale in p["ctf"]["run"]:
            plain, stage1 = Generator(generator_config(p, scale, 1000)), Generator(ctf_config(p, 1, k, 1000, scale))
            per_row = 2 * plain.config.width + (plain.output.bias is not None)  # a table row, a head row and its bias
            assert plain.num_params() - stage1.num_params() == (vocab - k) * per_row
        stage2 = Generator(ctf_config(p, 2, k, 1000))
    assert (stage2.config.in_vocab, stage2.config.vocab_size, stage2.config.causal) == (k, vocab, False)
    if profile.startswith("imagenet"):  # LlamaGen-L's shape at 4096 codes: 326.66M at 16384 minus 12288 head rows
        assert stage2.config.width == 1024 and stage2.num_params() / 1e6 == pytest.approx(
            326.66 - 12288 * 1024 / 1e6, abs=0.3
        )


def small(causal: bool, **kw) -> Generator:
    torch.manual_seed(0)
    cfg = GeneratorConfig(
        arch="llamagen",
        width=32,
        depth=2,
        heads=2,
        vocab_size=kw.pop("vocab", 12),
        num_classes=3,
        num_prefix=1,
        grid=3,
        causal=causal,
        **kw,
    )
    model = Generator(cfg).eval()
    torch.nn.init.normal_(model.output.weight, std=0.5)  # the zero-initialised head would hide every dependency
    return model


def test_stage2_reads_the_whole_coarse_map_and_stage1_only_the_past():
    coarse = torch.randint(0, 4, (2, 10))
    changed = coarse.clone()
    changed[:, -1] = (coarse[:, -1] + 1) % 4
    labels = torch.tensor([0, 2])
    stage2 = small(False, input_vocab=4)
    a, b = stage2(labels, coarse), stage2(labels, changed)
    assert a.shape == (2, 10, 12)
    assert not torch.allclose(a[:, 0], b[:, 0])  # the first position sees the last coarse label
    stage1 = small(True, vocab=4)
    a, b = stage1(labels, coarse), stage1(labels, changed)
    assert torch.allclose(a[:, :-1], b[:, :-1]) and a.shape == (2, 10, 4)


def test_kmeans_recovers_separated_clusters_and_is_seeded():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    truth = torch.arange(4).repeat_interleave(25)
    x = centres[truth] + 0.1 * torch.randn(100, 2, generator=g)
    assign, found = kmeans(x, 4, seed=3, iters=50)
    # one cluster per true group, whatever the numbering
    assert all(len(set(assign[truth == j].tolist())) == 1 for j in range(4))
    assert len(set(assign.tolist())) == 4
    assert torch.equal(kmeans(x, 4, seed=3, iters=50)[0], assign)
    with pytest.raises(ValueError, match="clusters"):
        kmeans(x, 101, seed=0, iters=5)


def test_kmeans_is_scikit_learns_with_our_seed_and_fills_every_cluster():
    """scikit-learn's KMeans (k-means++ from `seed`, one init, Lloyd until the assignments stop changing): every
    cluster holds a code, and a codebook with fewer distinct vectors than clusters is refused, not split."""
    from sklearn.cluster import KMeans

    x = torch.randn(512, 8, generator=torch.Generator().manual_seed(1))
    assign, centres = kmeans(x, 64, seed=5, iters=100)
    ref = KMeans(64, init="k-means++", n_init=1, max_iter=100, tol=0.0, algorithm="lloyd", random_state=5)
    ref.fit(x.double().numpy())
    assert assign.tolist() == ref.labels_.tolist() and centres.shape == (64, 8)
    assert torch.bincount(assign, minlength=64).min() > 0
    assert not torch.equal(kmeans(x, 64, seed=6, iters=100)[0], assign)  # the seed matters
    # every centre is its cluster's mean, and every code sits at its nearest centre (Lloyd converged)
    means = torch.stack([x[assign == j].double().mean(0) for j in range(64)]).float()
    assert torch.allclose(centres, means, atol=1e-5)
    assert torch.equal(torch.cdist(x.double(), centres.double()).argmin(1), assign)
    # duplicates: 10 distinct vectors, each 5 times
    dup = torch.randn(10, 4, generator=torch.Generator().manual_seed(2)).repeat(5, 1)
    a, _ = kmeans(dup, 10, seed=0, iters=100)
    assert torch.bincount(a, minlength=10).tolist() == [5] * 10
    assert all(len(set(a[i::10].tolist())) == 1 for i in range(10))  # identical codes share a coarse label
    with pytest.raises(ValueError, match="11 clusters for 10 distinct vectors among 50 codes"):
        kmeans(dup, 11, seed=0, iters=100)


def test_coarse_map_reports_sizes_and_unused_codes():
    torch.manual_seed(0)
    codebook = torch.randn(64, 4)
    codes = np.array([[0, 1, 2, 3, 3, 3]], dtype=np.uint16)
    usage = token_usage(codes, 64)
    assert usage[3] == 3 and usage.sum() == 6
    m = coarse_map(codebook, 8, normalisation="l2", seed=0, iters=100, usage=usage)
    f2c = np.array(m["fine_to_coarse"])
    assert f2c.shape == (64,) and f2c.min() >= 0 and f2c.max() < 8
    assert m["sizes"] == np.bincount(f2c, minlength=8).tolist() and sum(m["sizes"]) == 64
    assert m["used_codes"] == 4 and len(m["unused_codes"]) == 60
    assert sum(m["used_per_cluster"]) == 4
    assert m["clusters_without_used_code"] == 8 - len(set(f2c[[0, 1, 2, 3]].tolist()))
    # l2: every codebook vector's scale is ignored
    scaled = codebook * torch.rand(64, 1) * 10
    assert coarse_map(scaled, 8, normalisation="l2", seed=0, iters=100)["fine_to_coarse"] == m["fine_to_coarse"]
    with pytest.raises(ValueError, match="normalisation"):
        coarse_map(codebook, 8, normalisation="cosine", seed=0, iters=10)


def test_used_codes_can_place_the_centres():
    """A young codebook: 16 used codes gathered near one direction, 240 dead ones spread over the sphere. Centres
    placed by every code go mostly to dead codes; placed by the used codes (`codes: used`), every cluster holds a
    used code, and the dead codes still join their nearest centre."""
    g = torch.Generator().manual_seed(0)
    dead = torch.randn(240, 4, generator=g)
    used = torch.tensor([1.0, 0.0, 0.0, 0.0]) + 0.3 * torch.randn(16, 4, generator=g)
    codebook = torch.cat([used, dead])
    usage = np.zeros(256, dtype=np.int64)
    usage[:16] = 5
    everything = coarse_map(codebook, 8, normalisation="l2", seed=0, iters=100, usage=usage)
    assert everything["codes"] == "all" and everything["clusters_without_used_code"] >= 4
    m = coarse_map(codebook, 8, normalisation="l2", seed=0, iters=100, usage=usage, codes="used")
    assert m["codes"] == "used" and m["clusters_without_used_code"] == 0 and sum(m["sizes"]) == 256
    with pytest.raises(ValueError, match="exceeds the 16 codes the training tokens use"):
        coarse_map(codebook, 17, normalisation="l2", seed=0, iters=100, usage=usage, codes="used")


def test_two_stage_sampling_is_reproducible_and_can_stay_inside_the_cluster():
    stage1, stage2 = small(True, vocab=4), small(False, input_vocab=4)
    f2c = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    labels, ids = torch.tensor([0, 1, 2, 0]), torch.arange(4)
    kw = dict(seed=1, guidance=2.0, power=None, tau1=1.0, tau2=1.0, top_k=0)
    coarse, fine = generate_ctf(stage1, stage2, f2c, labels, ids, restrict=True, **kw)
    assert coarse.shape == fine.shape == (4, 10)
    assert torch.equal(f2c[fine], coarse)  # restricted: each fine label lies in its sampled cluster
    c2, f2 = generate_ctf(stage1, stage2, f2c, labels[2:], ids[2:], restrict=True, **kw)
    assert torch.equal(c2, coarse[2:]) and torch.equal(f2, fine[2:])  # per-sample noise: batch-independent
    _, free = generate_ctf(stage1, stage2, f2c, labels, ids, restrict=False, **kw)
    assert not torch.equal(f2c[free], coarse)  # unrestricted, this random stage 2 leaves some clusters
    _, greedy = generate_ctf(stage1, stage2, f2c, labels, ids, restrict=False, **{**kw, "top_k": 1})
    assert torch.equal(greedy, stage2(labels, coarse).argmax(-1))


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """Tiny data, a random tiny tokenizer and classifier, extracted tokens: what the CTF stages read."""
    from conftest import extract_tiny_tokens, make_tiny_data, save_random_classifier, save_random_tokenizer

    ws = tmp_path_factory.mktemp("ctf")
    p = make_tiny_data(ws, train_per_class=4, val_per_class=2)
    save_random_tokenizer(ws / "tok.pt", p)
    extract_tiny_tokens(ws)
    save_random_classifier(ws / "classifier.pt", p["data"]["embedded"]["num_classes"])
    return ws


def alitok(*args, check=True):
    """`alitok COMMAND --profile tiny ARGS`, run from the repository root."""
    from conftest import REPO, run

    return run(["alitok", args[0], "--profile", "tiny", *map(str, args[1:])], cwd=REPO, check=check)


def make_clusters(ws):
    """ws/clusters.json: `alitok ctf-clusters` over the random tokenizer's codebook and ws's train tokens."""
    inputs = ["--tokenizer", ws / "tok.pt", "--train-tokens", ws / "tokens" / "train"]
    alitok("ctf-clusters", *inputs, "--out", ws / "clusters.json")


def test_stages_from_the_command_line(ws):
    """ctf-clusters -> train stage 1 and stage 2 -> two-stage samples, as the pipeline will chain them."""
    from alitok.generator.release import load_generator

    from conftest import REPO, generator_train_cmd, run

    make_clusters(ws)
    cmap = json.loads((ws / "clusters.json").read_text())
    assert cmap["clusters"] == 32 and cmap["codebook_size"] == 256 and sum(cmap["sizes"]) == 256
    assert cmap["used_codes"] + len(cmap["unused_codes"]) == 256 and cmap["used_codes"] > 0

    for stage in (1, 2):  # stage 1 takes scale S's shape and steps, stage 2 ctf.stage2's (tiny: 8 steps)
        scale = ["--scale", "S"] if stage == 1 else []
        files = (ws / f"work{stage}", ws / f"stage{stage}.pt", ws / f"log{stage}.jsonl")
        ctf = ["--ctf-stage", stage, "--coarse-map", ws / "clusters.json"]
        run(generator_train_cmd(ws, *files, *scale, *ctf), cwd=REPO)
        records = [json.loads(line) for line in (ws / f"log{stage}.jsonl").read_text().splitlines()]
        assert records[-1]["step"] == (12 if stage == 1 else 8) and "val_loss" in records[-1]
    s1, s2 = load_generator(ws / "stage1.pt").config, load_generator(ws / "stage2.pt").config
    assert (s1.vocab_size, s1.causal) == (32, True)
    assert (s2.vocab_size, s2.in_vocab, s2.causal) == (256, 32, False)
    # a fresh stage 1 predicts 32 labels: its first held-out loss sits near ln 32, far below ln 256
    first = json.loads((ws / "log1.jsonl").read_text().splitlines()[0])
    assert first["loss"] < np.log(32) + 0.5

    common = ["--scale", "S", "--tokenizer", ws / "tok.pt", "--coarse-map", ws / "clusters.json"]

    def sample(stage1, stage2, work, archive, grid, check=True):
        outputs = ["--work-dir", work, "--out-archive", archive, "--out-grid", grid]
        return alitok("sample", *common, "--generator", stage1, "--ctf-stage2", stage2, *outputs, check=check)

    sample(ws / "stage1.pt", ws / "stage2.pt", ws / "work_sample", ws / "samples.npz", ws / "grid.png")
    with np.load(ws / "samples.npz") as z:
        assert z["arr_0"].shape == (20, 32, 32, 3) and z["arr_0"].dtype == np.uint8
    # the stages swapped: refused in one line that names both files
    bad = sample(ws / "stage2.pt", ws / "stage1.pt", ws / "w2", ws / "bad.npz", ws / "bad.png", check=False)
    assert bad.returncode == 2 and "stage1.pt" in bad.stderr and "do not fit" in bad.stderr
    assert not (ws / "bad.npz").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--scale", "S", "--ctf-stage", "2"], "stage 2 takes its shape from ctf.stage2"),
        (["--ctf-stage", "1"], "every other generator from a scale"),
        (["--scale", "S", "--coarse-map", "clusters.json"], "--ctf-stage and --coarse-map go together"),
    ],
)
def test_a_mixed_up_ctf_training_call_is_refused(ws, args, message):
    from conftest import REPO, generator_train_cmd, run

    if not (ws / "clusters.json").exists():
        make_clusters(ws)
    args = [str(ws / a) if a == "clusters.json" else a for a in args]
    if "--ctf-stage" in args:
        args += ["--coarse-map", str(ws / "clusters.json")]
    cmd = generator_train_cmd(ws, ws / "wbad", ws / "bad.pt", ws / "bad.jsonl", *args)
    proc = run(cmd, cwd=REPO, check=False)
    assert proc.returncode != 0 and message in proc.stderr and not (ws / "bad.pt").exists()


def test_run_names_say_kind_scale_control_and_sampling():
    from alitok.generator.runs import generator_runs, parse_run, trained_run

    assert parse_run("S") == ("plain", "S", None, "own")
    assert parse_run("S-shuffled_labels") == ("plain", "S", "shuffled_labels", "own")
    assert parse_run("ctf-XL") == ("ctf", "XL", None, "own")
    assert parse_run("L-at_ctf") == ("plain", "L", None, "ctf") and trained_run("L-at_ctf") == "L"
    assert trained_run("ctf-L") == "ctf-L" and trained_run("L-untrained") == "L-untrained"
    assert generator_runs(config.load("params.yaml", "smoke")) == ["S", "S-untrained", "S-shuffled_labels", "ctf-S"]
    assert generator_runs(config.load("params.yaml", "imagenet256")) == [
        *("B", "L", "XL", "ctf-B", "ctf-L", "ctf-XL"),
        *("B-at_ctf", "L-at_ctf", "XL-at_ctf"),
    ]
    assert "ctf-B" not in generator_runs(config.load("params.yaml", "release256"))  # nothing is trained there


def test_plain_generator_at_ctfs_protocol_samples_as_ctfs_stage1():
    """The matched run changes guidance, its schedule and temperature to CTF's, and nothing else."""
    from alitok.generator.runs import at_ctf_protocol

    p = config.load("params.yaml", "imagenet256")
    q = at_ctf_protocol(p, "L")
    c = p["ctf"]["sampling"]
    assert (q["generator"]["scales"]["L"]["guidance"], q["generator"]["scales"]["L"]["guidance_power"]) == (
        c["guidance"],
        c["guidance_power"],
    )
    assert q["generator"]["sampling"]["temperature"] == c["tau1"] == 1.1
    assert p["generator"]["scales"]["L"]["guidance"] != c["guidance"], "the paper profile's protocols differ"
    for key in ("B", "XL"):
        assert q["generator"]["scales"][key] == p["generator"]["scales"][key]
    assert {k: v for k, v in q["generator"]["scales"]["L"].items() if not k.startswith("guidance")} == {
        k: v for k, v in p["generator"]["scales"]["L"].items() if not k.startswith("guidance")
    }


def test_ctf_run_must_name_a_generator_scale(tmp_path):
    import yaml

    doc = yaml.safe_load(open("params.yaml"))
    doc["profiles"]["tiny"]["ctf"]["run"] = ["S", "M"]
    with pytest.raises(config.ParamsError, match="ctf.run names M, not in generator.scales"):
        config.load(doc, "tiny")


def test_redundancy_swaps_within_a_cluster_change_less_than_anywhere(ws):
    from alitok.ctf.redundancy import swap_anywhere, swap_within_cluster

    if not (ws / "clusters.json").exists():
        make_clusters(ws)
    f2c = torch.tensor(json.loads((ws / "clusters.json").read_text())["fine_to_coarse"])
    codes = torch.randint(256, (50, 73))
    swapped = swap_within_cluster(codes, f2c, seed=0)
    assert torch.equal(f2c[swapped], f2c[codes]) and not torch.equal(swapped, codes)
    assert torch.equal(swap_within_cluster(codes, f2c, seed=0), swapped)
    anywhere = swap_anywhere(codes, 256, seed=0)
    assert (f2c[anywhere] != f2c[codes]).float().mean() > 0.8
    # k-means clusters are tight: a within-cluster swap moves the code vector far less than a random one
    from alitok.tokenizer.release import load_tokenizer

    book = load_tokenizer(ws / "tok.pt").quantizer.codebook.detach()
    moved = lambda new: (book[new] - book[codes]).pow(2).sum(-1).mean()
    assert moved(swapped) < 0.75 * moved(anywhere)

    maps = ["--tokenizer", ws / "tok.pt", "--coarse-map", ws / "clusters.json"]
    images = ["--val", ws / "data" / "val.csv", "--dataset", ws / "data" / "dataset.json"]
    alitok("ctf-redundancy", *maps, *images, "--classifier", ws / "classifier.pt", "--out", ws / "redundancy.json")
    r = json.loads((ws / "redundancy.json").read_text())
    assert r["num_images"] == 20
    # even a random decoder is continuous in the code vectors: near codes decode to nearer images
    assert r["within_cluster"]["psnr_vs_reconstruction"] > r["whole_codebook"]["psnr_vs_reconstruction"]
    assert all(np.isfinite(r[k]["rfid"]) for k in ("reconstruction", "within_cluster", "whole_codebook"))


def test_the_ctf_setting_is_the_profile_with_its_section_merged_in():
    """`<profile>/ctf_setting`: LlamaGen's tokenizer family and GPT shape over the profile's own params, whose data,
    classifier, perceptual net and evaluation it shares and may not change (docs/ctf.md)."""
    import yaml

    from alitok.ablations import units
    from alitok.config import ParamsError

    from conftest import REPO

    smoke = units.load(REPO / "params.yaml", "smoke")
    own = units.load(REPO / "params.yaml", "smoke/ctf_setting")
    assert own["setting"] == "ctf_setting" and own["name"] == "smoke" and "ctf_setting" not in own
    assert own["tokenizer"]["family"] == "vq16" and geometry.from_params(own).grid == 8
    assert own["generator"]["scales"]["S"] == smoke["generator"]["scales"]["S"] | {"arch": "llamagen"}
    assert own["generator"]["optimizer"]["decay_embeddings"] and own["ctf"]["clusters"]["normalisation"] == "l2"
    for shared in ("data", "classifier", "perceptual_net", "evaluation"):
        assert own[shared] == smoke[shared]
    tiny = units.load(REPO / "params.yaml", "tiny/ctf_setting")  # inherits smoke's section, keeps tiny's sizes
    assert tiny["generator"]["scales"]["S"]["width"] == 32 and tiny["tokenizer"]["family"] == "vq16"

    doc = yaml.safe_load((REPO / "params.yaml").read_text())
    doc["profiles"]["smoke"]["ctf_setting"]["data"] = {"image_size": 64}
    with pytest.raises(ParamsError, match="unknown key ctf_setting.data"):
        units.load(doc, "smoke/ctf_setting", schema=REPO / "workflow" / "schemas" / "params.schema.yaml")
    with pytest.raises(ParamsError, match=r"<profile>/ctf_setting"):
        units.load(REPO / "params.yaml", "smoke/ctf_settings")
    with pytest.raises(ParamsError, match="has no ctf_setting section"):
        units.load(REPO / "params.yaml", "imagenet256/ctf_setting")
