"""Tables of input-attack results for chapters and figures (pandas); nothing cached depends on this module."""
from __future__ import annotations

__all__ = ["attack_table"]


def attack_table(results: dict, k: int | None = None):
    """Long table (pandas), one row per image and result: attack, method, eps255, image, the
    similarity metrics of :meth:`AttackResult.similarity`, label kept, success, confidence change."""
    import pandas as pd

    rows = []
    for key, r in results.items():
        attack, method, eps = key if isinstance(key, tuple) else (r.attack, r.method, r.epsilon * 255)
        sim = r.similarity(k)
        frame = pd.DataFrame({m: v.numpy() for m, v in sim.items()})
        frame.insert(0, "image", range(len(r)))
        frame.insert(0, "eps255", float(eps))
        frame.insert(0, "method", method)
        frame.insert(0, "attack", attack)
        frame["label_kept"] = r.label_kept.numpy()
        frame["success"] = r.success.numpy()
        frame["confidence_change"] = (r.confidence_adv - r.confidence).numpy()
        frame["linf_over_eps"] = (r.delta_linf / r.epsilon).numpy()
        frame["seconds_per_image"] = r.seconds / len(r)
        rows.append(frame)
    return pd.concat(rows, ignore_index=True)
