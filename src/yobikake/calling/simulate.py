"""A short simulated calling day for the demo, so that the boards have something to
show. Every call goes through the real services (checkout, grant, outcome, audit log);
nothing is revealed — no one reads a synthetic person's name here — and every attempt
and its audit event are marked simulated."""

import random
from collections import Counter
from typing import Any

from yobikake.calling import services

# How calls to people who skipped the checkup tend to end (a rough, invented mix).
OUTCOME_WEIGHTS = {
    "no_answer": 30,
    "voicemail": 14,
    "busy": 4,
    "family_message": 8,
    "intends": 12,
    "considering": 10,
    "attended": 4,
    "declined": 8,
    "wrong_number": 3,
    "do_not_call": 2,
    "not_eligible": 2,
}


def simulate_day(operators: list[Any], calls: int, seed: int = 0) -> Counter[str]:
    """Up to `calls` calls shared among `operators` in turn; the outcomes counted (and
    "nothing_to_call: <reason>" if the queue ran dry or the campaign is closed now)."""
    rng = random.Random(seed)  # noqa: S311 - a demo's dice
    codes, weights = zip(*OUTCOME_WEIGHTS.items(), strict=True)
    done: Counter[str] = Counter()
    for n in range(calls):
        operator = operators[n % len(operators)]
        try:
            checkout = services.next_call(operator=operator)
        except services.NothingToCall as exc:
            done[f"nothing_to_call: {exc.code}"] += 1
            break
        code = rng.choices(codes, weights)[0]
        services.record_outcome(
            actor=operator,
            call_target_id=checkout.call_target.pk,
            code=code,
            simulated=True,
        )
        done[code] += 1
    return done
