"""The sampler reproduces its golden tokens exactly (tests/golden_sampler.py: recorded before the speed work of
issue 32; reproducible samples are part of what the project promises)."""

import json

import golden_sampler


def test_the_sampler_draws_its_golden_tokens():
    recorded = json.loads(golden_sampler.FIXTURE.read_text())
    drawn = golden_sampler.draw()
    assert drawn.keys() == recorded.keys()
    for case in recorded:
        assert drawn[case] == recorded[case], case
