"""The papers' ablations at small scale: units and their params (units), where their files live (layout),
sampling and scoring sweep points (score), tables with seeds and verdicts (report). docs/ablations.md."""
