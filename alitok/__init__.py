"""AliTok / CTF reproducibility pipeline.

Importing the package pulls in nothing beyond the standard library; model modules need only torch and
einops, so they also run on machines without the workflow stack (snakemake, dvc, mlflow).
"""

__version__ = "0.1.0"
