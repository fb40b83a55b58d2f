import os

from snakemake.exceptions import WorkflowError

# Helpers shared by the rule files: which inputs exist depends on the params profile.

def _resources(rule):
    return P["resources"].get(rule, P["resources"]["default"])


def job_resources(rule):
    """What a cluster executor asks for: params `resources.<rule>`, else `resources.default` (docs/cluster.md)."""
    return {k: v for k, v in _resources(rule).items() if k != "core_share"}


def torch_threads(rule):
    """A torch job's threads: its params `core_share` of --cores, at least one.

    Snakemake sets OMP_NUM_THREADS to a job's `threads` (1 when a rule declares none), and torch obeys it.
    At share 1 a job takes every core and jobs run one after another; at 0.5 two run side by side, which on a
    2-core machine gains what one job cannot use of the second core and hides each job's start-up
    (docs/cluster.md). The thread count changes the float rounding of some kernels (convolutions), so a
    profile's numbers are reproducible for a given --cores and share, not across them. On a cluster the executor
    turns the count into the job's CPU request.
    """
    return max(1, round(workflow.cores * _resources(rule).get("core_share", 1.0)))


def alitok_launcher(wildcards, resources):
    """`alitok`, or torchrun with one process per GPU the job was given: DDP is detected from its variables."""
    if resources.gpu > 1:
        return f"torchrun --standalone --nproc-per-node {resources.gpu} -m alitok"
    return "alitok"


def dataset_root():
    """The ImageFolder tree the data stage scans: generated for the embedded source, else params."""
    if P["data"]["source"] == "embedded":
        return f"{OUT}/data/images"
    root = P["data"]["root"]
    if not os.path.isdir(root):
        raise WorkflowError(
            f"params profile '{PROFILE}': data.root = {root} is not a directory. Put the dataset there "
            "(train/<wnid>/*.JPEG and val/, see docs/data.md) or set data.root in params.yaml."
        )
    return root


def local_file(path, key, what):
    """A file the user provides (weights, reference batches): missing is an error saying what goes where."""
    if not os.path.isfile(path):
        raise WorkflowError(f"params profile '{PROFILE}': {key} = {path} does not exist. Put {what} there or set "
                            f"{key} in params.yaml (docs/evaluation.md).")
    return path


def uses_classifier():
    # The domain classifier exists for the embedded data only; ImageNet evaluation uses Inception.
    return P["data"]["source"] == "embedded"


def final_targets():
    if "release" in P:  # released weights: no data, no training; sample, evaluate, report
        return [f"{OUT}/tokenizer/stage2.pt", f"{OUT}/report.md", f"{OUT}/metrics.json"]  # no logs, no curves
    targets = [f"{OUT}/data/dataset.json", f"{OUT}/tokenizer/stage2.pt"]
    targets += [f"{OUT}/generator/{run}/samples_grid.png" for run in generator_runs()]
    targets += [f"{OUT}/report.md", f"{OUT}/metrics.json", *report_curves()]  # every output DVC reads
    if uses_classifier():
        # reconstruction metrics use the domain classifier; ImageNet rFID (Inception) comes with evaluation
        targets.append(f"{OUT}/classifier/metrics.json")
        targets += [f"{OUT}/tokenizer/{v}_metrics.json" for v in ("stage1", "stage2")]
        if P["tokenizer"]["training"]["compare_stage1_continued"]:
            targets.append(f"{OUT}/tokenizer/stage_comparison.md")
    return targets
