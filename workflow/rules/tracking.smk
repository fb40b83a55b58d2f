# MLflow: one parent run per real invocation (Snakemake skips onstart on dry runs; we skip --touch); jobs add
# child runs under it (alitok/tracking.py). Tracking never fails the workflow: a broken store is a warning.


def _tracking(action):
    if workflow.touch:  # `--touch` (alitok pull, docs/sharing.md) trains nothing: no run to record
        return
    try:
        from alitok import tracking

        action(tracking)
    except Exception as e:  # noqa: BLE001
        print(f"MLflow: {type(e).__name__}: {e} (the pipeline runs on, untracked)", file=sys.stderr)


onstart:
    if UNADOPTED:  # pulled results not yet marked as computed (Snakefile): never recompute them silently
        raise WorkflowError(f"not recomputing pulled results: {UNADOPTED}; to recompute, remove results/{PROFILE}")
    from alitok import runlock

    runlock.acquire(sys.argv)  # one invocation per working directory; refused before any job
    _tracking(lambda t: t.start_pipeline(P, sys.argv))


onsuccess:
    _tracking(lambda t: t.end_pipeline(True))


onerror:
    _tracking(lambda t: t.end_pipeline(False))
