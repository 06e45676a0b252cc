"""A short soak (tests/bench/soak.py runs the long one): 50 live dumps, 20
paused dumps and one attach session against fixtures/soak_churn.py, a
process creating 10,000 asyncio tasks a second with threads and forked
children coming and going, judged by churn_check.py against what the process
published about itself. Any wrong answer, false finding or crash fails.
Once more with about a thousand tasks alive at once (their sleeps last
0.8 s): a read checks tasks against the target in batches of 256, and a
batch's boundary must not splice or lose one."""
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


def test_soak_with_a_thousand_live_tasks(interp):
    tallies, stats = soak(interp, 30, 5, ATTACHES, log=None, linger=0.8)
    problems = []
    for t in tallies:
        for kind in ("wrong", "false", "crash"):
            if getattr(t, kind):
                problems.append(f"{t.mode}: {getattr(t, kind)} {kind} of {t.n}: " + " || ".join(t.examples[kind]))
    assert not problems, "\n".join(problems)
    live, paused, attach = tallies
    assert live.n == 30 and paused.n == 5 and attach.n >= 1
    # Enough tasks that every read crossed batches of 256.
    assert sorted(live.tasks)[len(live.tasks) // 2] > 600, live.tasks
    assert stats.get("elapsed") and stats["tasks"] / stats["elapsed"] > 1000, stats
