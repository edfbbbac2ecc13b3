"""The generated sentences of the "paper vs this book" comparison (xaifool.book.paper): reader labels,
numbers carried over, and the claim only where the numbers support it."""
import pytest

from xaifool.book import paper


def _row(fsr, acc=0.80, adv=0.786):
    return {"fsr": fsr, "lam": 3.0, "lr": 1e-4, "accuracy": acc, "accuracy_adv": adv}


def test_matched_accuracy_text_names_attacks_for_readers_and_carries_the_numbers():
    text = paper.matched_accuracy_text({("topk", "gradcam"): _row(0.0)}, 0.02, {"gradcam": "Grad-CAM"})
    assert "top-k × Grad-CAM" in text and "topk" not in text
    assert "FSR of 0%" in text and "80.0 % → 78.6 %" in text and "2 points" in text
    assert "does not carry over" in text          # fewer than half fooled


def test_matched_accuracy_text_claims_nothing_the_numbers_do_not_give():
    text = paper.matched_accuracy_text({("center", "gradient"): _row(0.9), ("swap", "gradcam"): None}, 0.02)
    assert "does not carry over" not in text      # the kept run fools 90 %
    assert "No run of class swap × gradcam keeps the accuracy within 2 points" in text
    assert "centre of mass × gradient reaches an FSR of 90%" in text


def test_matched_accuracy_text_rejects_an_empty_sweep():
    with pytest.raises(ValueError, match="best"):
        paper.matched_accuracy_text({}, 0.02)
