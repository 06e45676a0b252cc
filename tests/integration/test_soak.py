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


def run_soak(interp, dumps, paused, linger=None):
    """The tallies (live, paused, attach), after failing on any wrong answer,
    false finding or crash, and checking that the target churned."""
    tallies, stats = soak(interp, dumps, paused, ATTACHES, log=None, linger=linger)
    problems = []
    for t in tallies:
        for kind in ("wrong", "false", "crash"):
            if getattr(t, kind):
                problems.append(f"{t.mode}: {getattr(t, kind)} {kind} of {t.n}: " + " || ".join(t.examples[kind]))
    assert not problems, "\n".join(problems)
    live, pause, agent = tallies
    assert live.n == dumps and pause.n == paused and agent.n >= 1
    # The target really churned while it was read.
    assert stats.get("elapsed") and stats["tasks"] / stats["elapsed"] > 1000, stats
    return tallies


def test_soak_live_paused_attach(interp):
    run_soak(interp, DUMPS, PAUSED)


def test_soak_with_a_thousand_live_tasks(interp):
    live, _, _ = run_soak(interp, 30, 5, linger=0.8)
    # Enough tasks that every read crossed batches of 256.
    assert sorted(live.tasks)[len(live.tasks) // 2] > 600, live.tasks
