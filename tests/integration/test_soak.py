"""A short soak (tests/bench/soak.py runs the long one): 50 live dumps, 20
paused dumps and one attach session against fixtures/soak_churn.py, a
process creating 10,000 asyncio tasks a second with threads and forked
children coming and going, judged by churn_check.py against what the process
published about itself. Any wrong answer, false finding or crash fails."""
from churn_check import soak

DUMPS = 50
PAUSED = 20
ATTACHES = 1


def test_soak_live_paused_attach(interp):
    tallies, stats = soak(interp, DUMPS, PAUSED, ATTACHES, log=None)
    problems = []
    for t in tallies:
        for kind in ("wrong", "false", "crash"):
            if getattr(t, kind):
                problems.append(f"{t.mode}: {getattr(t, kind)} {kind} of {t.n}: " + " || ".join(t.examples[kind]))
    assert not problems, "\n".join(problems)
    live, paused, attach = tallies
    assert live.n == DUMPS and paused.n == PAUSED and attach.n >= 1
    # The target really churned while it was read.
    assert stats.get("elapsed") and stats["tasks"] / stats["elapsed"] > 1000, stats
