"""Mapping metric values to 0-100 scores, and the overall score (the mean of the per-metric scores).

Two schemes:

`chaos` (default) - the CHAOS challenge's mapping (Kavur et al. 2021), plus VO and RMSD for the
Baydar et al. Table 2 columns:
- Dice: 0 below 0.8, else 100 x Dice.
- VO: the VO value itself (100 x Jaccard).
- RVD: `100 - 20 x |RVD%|`, 0 above 5 %.
- ASSD: `100 - (20/3) x ASSD`, 0 above 15 mm.
- RMSD: `100 - (100/27) x RMSD`, 0 above 27 mm. CHAOS defines no RMSD score; 27 mm keeps SLIVER07's ratio
  of the RMSD to the ASD reference (1.8 mm / 1 mm) applied to CHAOS's ASSD limit (15 mm x 1.8). Since
  ASSD <= RMSD <= MSSD for every pair, this also puts the limit between the ASSD (15) and MSSD (60) limits.
- MSSD: `100 - (5/3) x MSSD`, 0 above 60 mm.
`overall` is the mean of the VO, RVD, ASSD, RMSD and MSSD scores (the paper's "Overall" column);
`chaos_overall` is the mean of the Dice, RVD, ASSD and MSSD scores (the CHAOS challenge's own total).

`sliver07` - Heimann et al. 2009: `max(0, 100 - 25 x e / e_ref)` with e_ref = VOE 6.4 %, |RVD| 4.7 %,
ASD 1 mm, RMSD 1.8 mm, MSD 19 mm (the mean errors of a human second rater, who thus scores 75).
`overall` is the mean of these five scores.

A metric that is NaN or infinite (one empty mask, see `overlap` and `surface_distance`) scores 0, so a
failed case pulls the overall score down instead of disappearing from it.
"""

import dataclasses
import math

from keras_cdseg.errors import InputError

CHAOS_RMSD_LIMIT_MM = 27.0


@dataclasses.dataclass(frozen=True)
class ScoringScheme:
    """A score mapping: linear from 100 at error 0 down to 0 at `zero_at[key]`, then clipped at 0.

    Args:
        name: str. "chaos" or "sliver07".
        zero_at: dict. Score name -> (metric key, error at which the score reaches 0).
        overall_keys: tuple of score names averaged into "overall".
        extra_overall: dict. Additional averages, name -> tuple of score names.
    """

    name: str
    zero_at: dict
    overall_keys: tuple
    extra_overall: dict = dataclasses.field(default_factory=dict)


SCHEMES = {
    "chaos": ScoringScheme(
        name="chaos",
        zero_at={
            "rvd": ("abs_rvd_percent", 5.0),
            "assd": ("assd_mm", 15.0),
            "rmsd": ("rmsd_mm", CHAOS_RMSD_LIMIT_MM),
            "mssd": ("mssd_mm", 60.0),
        },
        overall_keys=("vo", "rvd", "assd", "rmsd", "mssd"),
        extra_overall={"chaos_overall": ("dice", "rvd", "assd", "mssd")},
    ),
    "sliver07": ScoringScheme(
        name="sliver07",
        zero_at={
            "voe": ("voe_percent", 4 * 6.4),
            "rvd": ("abs_rvd_percent", 4 * 4.7),
            "assd": ("assd_mm", 4 * 1.0),
            "rmsd": ("rmsd_mm", 4 * 1.8),
            "mssd": ("mssd_mm", 4 * 19.0),
        },
        overall_keys=("voe", "rvd", "assd", "rmsd", "mssd"),
    ),
}


def get_scheme(scoring):
    """Returns the `ScoringScheme` named `scoring`; InputError for an unknown name."""
    if scoring not in SCHEMES:
        raise InputError("scoring", f"expected one of {sorted(SCHEMES)}, got {scoring!r}")
    return SCHEMES[scoring]


def linear_score(error, zero_at):
    """`max(0, 100 x (1 - error / zero_at))`; NaN or infinite errors score 0."""
    if error is None or not math.isfinite(error):
        return 0.0
    return max(0.0, 100.0 * (1.0 - abs(error) / zero_at))


def compute_scores(metrics, scoring="chaos"):
    """Per-metric 0-100 scores and their mean.

    Args:
        metrics: dict with at least the keys the scheme reads (`dice`, `vo_percent`, `voe_percent`,
            `abs_rvd_percent`, `assd_mm`, `rmsd_mm`, `mssd_mm`), e.g. from `compute_segmentation_metrics`.
        scoring: "chaos" or "sliver07".

    Returns:
        A dict of floats: one entry per scored metric (`vo`, `rvd`, ... and `dice` for chaos, `voe` for
        sliver07), `overall`, and for chaos `chaos_overall`.
    """
    scheme = get_scheme(scoring)
    scores = {}
    if scheme.name == "chaos":
        dice = metrics["dice"]
        scores["dice"] = 100.0 * dice if math.isfinite(dice) and dice >= 0.8 else 0.0
        vo = metrics["vo_percent"]
        scores["vo"] = min(max(vo, 0.0), 100.0) if math.isfinite(vo) else 0.0
    for score_name, (metric_key, zero_at) in scheme.zero_at.items():
        scores[score_name] = linear_score(metrics[metric_key], zero_at)
    scores["overall"] = _mean(scores[k] for k in scheme.overall_keys)
    for name, keys in scheme.extra_overall.items():
        scores[name] = _mean(scores[k] for k in keys)
    return scores


def _mean(values):
    values = list(values)
    return float(sum(values) / len(values))
