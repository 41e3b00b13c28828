"""Policy: decide what happens to an image given the identifying regions found on it.

The policy reads only the regions and the configured per-kind rules; it never
looks at pixels (that is the detectors' job) and never changes them (that is
:mod:`deid.redact`). Every decision names the rule that made it, so a reviewer
and an auditor can see why.

Precedence when several regions disagree: ``exclude`` > ``hold`` > ``crop`` >
``redact`` > ``keep``. A region scoring between a kind's ``review_score`` and
``min_score`` holds the image; a kind with no rule holds it (fail closed).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from deid.config import PolicySettings
from deid.types import Action, Decision, Region

_PRECEDENCE = (Action.EXCLUDE, Action.HOLD, Action.CROP, Action.REDACT, Action.KEEP)


def apply_policy(
    regions: Sequence[Region],
    policy: PolicySettings,
    *,
    body_parts: Iterable[str] = (),
) -> Decision:
    """Turn regions into one :class:`~deid.types.Decision` for the image.

    Parameters
    ----------
    regions
        Regions found on the upright full-resolution image.
    policy
        The ``[policy]`` configuration.
    body_parts
        Self-reported body parts of the case; a head or neck case is held by
        default because face detectors miss faces in close-ups.

    Returns
    -------
    Decision
        The action, the regions it applies to and one reason per rule applied.
    """
    wanted: dict[Action, list[Region]] = {action: [] for action in _PRECEDENCE}
    reasons: dict[Action, list[str]] = {action: [] for action in _PRECEDENCE}
    for region in regions:
        rule = policy.rule_for(region.kind)
        where = f"policy.rules.{region.kind}"
        if region.score < rule.review_score:
            continue
        if region.score < rule.min_score:
            wanted[Action.HOLD].append(region)
            reasons[Action.HOLD].append(
                f"{region.kind} score {region.score:.2f} is below {where}.min_score {rule.min_score:.2f}: needs review"
            )
            continue
        wanted[rule.action].append(region)
        reasons[rule.action].append(f"{region.kind} score {region.score:.2f} >= {rule.min_score:.2f}: {where}.action = {rule.action}")
    held_parts = sorted({part.strip().lower() for part in body_parts} & {p.lower() for p in policy.hold_body_parts})
    if held_parts:
        reasons[Action.HOLD].append(f"self-reported body part {', '.join(held_parts)} is in policy.hold_body_parts")
    for action in _PRECEDENCE:
        if reasons[action]:
            # The regions that matter for a hold include those that would be redacted, so a
            # reviewer sees every proposal; for redact/crop, those of that action and below.
            below = _PRECEDENCE.index(action)
            applied = tuple(r for a in _PRECEDENCE[below:] if a is not Action.KEEP for r in wanted[a])
            return Decision(action, applied, tuple(_unique(reasons[action])))
    return Decision(Action.KEEP, (), ("no identifying region at or above any review threshold",))


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
