"""Evaluation stage: generative metrics of sample sets against a reference, speed, the report."""
