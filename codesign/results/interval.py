"""The 95 % confidence interval of a measured top-1 accuracy (Wilson score interval).

A top-1 measured on n test images is a binomial proportion; Wilson's interval stays inside
[0, 100] % and is accurate for accuracies near 100 % and small n, where the normal approximation
is not. 2,000 MNIST test images at 97 %: ± 0.75 pt; 50,000 ImageNet images at 80 %: ± 0.35 pt.
"""

from __future__ import annotations

import math

#: the two-sided 95 % quantile of the standard normal distribution
Z95 = 1.959963984540054


def wilson_interval(top1_pct: float, images: int, z: float = Z95) -> tuple[float, float]:
    """(low, high) in % of a top-1 of ``top1_pct`` % measured on ``images`` test images."""
    if images <= 0:
        raise ValueError(f"a confidence interval needs test images, got {images}")
    p = min(1.0, max(0.0, top1_pct / 100.0))
    z2n = z * z / images
    centre = (p + z2n / 2) / (1 + z2n)
    half = z * math.sqrt(p * (1 - p) / images + z2n / (4 * images)) / (1 + z2n)
    return (100.0 * max(0.0, centre - half), 100.0 * min(1.0, centre + half))
