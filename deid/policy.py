"""Policy: decide what happens to an image given the identifying regions found on it.

The policy reads only the regions, the image's shape (and optionally a coarse
skin mask for crop scoring) and the configured per-kind rules; it never reads
pixels itself (that is the detectors' job) and never changes them (that is
:mod:`deid.redact`). Every decision names the rule that made it, so a reviewer
and an auditor can see why.

Per region, by its kind's ``[policy.rules.<kind>]``:

- score below ``review_score``: ignored;
- score in ``[review_score, min_score)``: the image is held for review;
- score at or above ``min_score``: the rule's ``action`` (``redact``, ``crop``,
  ``hold``, ``exclude`` or ``keep``); a kind with no rule gets
  ``policy.default_action`` (hold: fail closed).

Precedence when regions disagree: ``exclude`` > ``hold`` > ``crop`` >
``redact`` > ``keep``. A crop keeps the best rectangle free of every
crop-kind region plus its margin (:func:`deid.crop.plan_crop`); regions of
redact kinds inside it are still filled. When no crop fits, the image gets
``policy.crop.fallback`` (redact or hold) and the reason says why.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from deid.config import PolicySettings
from deid.crop import BoolMask, Crop, plan_crop
from deid.evidence import weigh_by_body_parts
from deid.types import Action, Decision, Region

_PRECEDENCE = (Action.EXCLUDE, Action.HOLD, Action.CROP, Action.REDACT, Action.KEEP)


def apply_policy(
    regions: Sequence[Region],
    policy: PolicySettings,
    *,
    body_parts: Iterable[str] = (),
    image_shape: Sequence[int] | None = None,
    skin_mask: BoolMask | None = None,
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
        default because face detectors miss faces in close-ups, and a
        ``sensitive_body`` region on a case reporting only feet, nails or
        hands is weighed down (:func:`deid.evidence.weigh_by_body_parts`).
    image_shape
        ``(height, width, ...)`` of the full-resolution image. A crop needs it;
        without it a crop rule falls back as if no crop fitted.
    skin_mask
        Optional coarse skin mask (any resolution) from
        :func:`deid.crop.estimate_skin_mask`; crops keeping more skin win.

    Returns
    -------
    Decision
        The action, the regions it applies to (for ``crop``: the regions
        cropped away and those redacted inside the crop; for ``hold``: every
        region a reviewer should see), one reason per rule applied, and the
        crop rectangle for ``crop``.

    Examples
    --------
    >>> from deid.config import load_config
    >>> from deid.types import Box, RegionKind
    >>> face = Region(RegionKind.FACE, Box(10, 10, 60, 60), 0.9, "manual@1")
    >>> apply_policy([face], load_config().policy, image_shape=(1000, 800)).action
    <Action.REDACT: 'redact'>
    """
    body_parts = tuple(body_parts)
    regions = weigh_by_body_parts(regions, body_parts, policy.evidence)
    wanted: dict[Action, list[Region]] = {action: [] for action in _PRECEDENCE}
    reasons: dict[Action, list[str]] = {action: [] for action in _PRECEDENCE}
    uncertain: list[Region] = []  # in a kind's review band: a person must look, unless a crop removes them
    uncertain_reasons: list[str] = []
    for region in regions:
        rule = policy.rule_for(region.kind)
        where = f"policy.rules.{region.kind}" if region.kind in policy.rules else "policy.default_action"
        if region.score < rule.review_score:
            continue
        if region.score < rule.min_score:
            uncertain.append(region)
            uncertain_reasons.append(
                f"{region.kind} score {region.score:.2f} is below {where}.min_score {rule.min_score:.2f}: needs review"
            )
            continue
        wanted[rule.action].append(region)
        rule_name = f"{where}.action" if region.kind in policy.rules else where
        reasons[rule.action].append(
            f"{region.kind} score {region.score:.2f} >= {rule.min_score:.2f}: {rule_name} = {rule.action}"
        )
    held_parts = sorted({part.strip().lower() for part in body_parts} & {p.lower() for p in policy.hold_body_parts})
    if held_parts:
        reasons[Action.HOLD].append(f"self-reported body part {', '.join(held_parts)} is in policy.hold_body_parts")

    if uncertain and wanted[Action.CROP] and not reasons[Action.EXCLUDE] and not reasons[Action.HOLD]:
        # A crop that keeps the finding and cuts away every uncertain region too leaves nothing to review.
        cropped = _crop_or_fall_back(wanted, reasons, policy, image_shape, skin_mask, also_avoid=uncertain)
        if cropped.action is Action.CROP:
            cut = [f"{reason}; cut away by the crop" for reason in uncertain_reasons]
            return Decision(Action.CROP, cropped.regions, tuple(_unique([*cropped.reasons, *cut])), crop=cropped.crop)
    wanted[Action.HOLD].extend(uncertain)
    reasons[Action.HOLD][:0] = uncertain_reasons
    for action in (Action.EXCLUDE, Action.HOLD):
        if reasons[action]:
            # A reviewer sees every proposal, so the regions of a hold include those that
            # would be cropped or redacted.
            below = _PRECEDENCE.index(action)
            applied = tuple(r for a in _PRECEDENCE[below:] if a is not Action.KEEP for r in wanted[a])
            return Decision(action, applied, tuple(_unique(reasons[action])))
    if wanted[Action.CROP]:
        return _crop_or_fall_back(wanted, reasons, policy, image_shape, skin_mask)
    if wanted[Action.REDACT]:
        return Decision(Action.REDACT, tuple(wanted[Action.REDACT]), tuple(_unique(reasons[Action.REDACT])))
    if reasons[Action.KEEP]:
        return Decision(Action.KEEP, (), tuple(_unique(reasons[Action.KEEP])))
    return Decision(Action.KEEP, (), ("no identifying region at or above any review threshold",))


def is_releasable(decision: Decision) -> bool:
    """True when the decision lets a (redacted or cropped) image be staged for release."""
    return decision.action in (Action.KEEP, Action.REDACT, Action.CROP)


def _crop_or_fall_back(
    wanted: dict[Action, list[Region]],
    reasons: dict[Action, list[str]],
    policy: PolicySettings,
    image_shape: Sequence[int] | None,
    skin_mask: BoolMask | None,
    *,
    also_avoid: Sequence[Region] = (),
) -> Decision:
    """Plan a crop around the crop-kind regions (and ``also_avoid``), or apply ``policy.crop.fallback``."""
    cropped, redacted = [*wanted[Action.CROP], *also_avoid], wanted[Action.REDACT]
    regions = tuple(cropped + redacted)
    crop_reasons = _unique(reasons[Action.CROP])
    redact_reasons = _unique(reasons[Action.REDACT])
    if image_shape is None:
        why = "the image size was not given to the policy"
    else:
        obstacles = [policy.padded_box(r, image_shape) for r in cropped]
        plan = plan_crop(image_shape, obstacles, policy.crop, skin_mask=skin_mask)
        if isinstance(plan, Crop):
            kept = f"policy.crop: keep {plan.box.to_xywh()} ({plan.reason})"
            return Decision(Action.CROP, regions, tuple([*crop_reasons, kept, *redact_reasons]), crop=plan.box)
        why = plan.reason
    fallback = Action(policy.crop.fallback)
    fell_back = f"policy.crop: no crop fits ({why}); policy.crop.fallback = {fallback}"
    return Decision(fallback, regions, tuple([*crop_reasons, fell_back, *redact_reasons]))


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


__all__ = ["apply_policy", "is_releasable"]
