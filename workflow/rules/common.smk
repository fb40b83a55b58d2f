import os

from snakemake.exceptions import WorkflowError

# Helpers shared by the rule files: which inputs exist depends on the params profile.


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


def uses_classifier():
    # The domain classifier exists for the embedded data only; ImageNet evaluation uses Inception.
    return P["data"]["source"] == "embedded"


def final_targets():
    targets = [f"{OUT}/data/dataset.json", f"{OUT}/tokenizer/stage2.pt"]
    targets += [f"{OUT}/generator/{scale}/samples_grid.png" for scale in P["generator"]["run"]]
    if uses_classifier():
        # reconstruction metrics use the domain classifier; ImageNet rFID (Inception) comes with evaluation
        targets.append(f"{OUT}/classifier/metrics.json")
        targets += [f"{OUT}/tokenizer/{v}_metrics.json" for v in ("stage1", "stage2")]
        if P["tokenizer"]["training"]["compare_stage1_continued"]:
            targets.append(f"{OUT}/tokenizer/stage_comparison.md")
    return targets
