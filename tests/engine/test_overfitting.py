"""Overfitting detection: validation loss rising above its minimum while training loss falls."""

from segscope.engine.overfitting import divergence_epoch, divergence_message
from segscope.report import figures


def _history(train, val):
    return [{"epoch": i + 1, "train_loss": t, "val_loss": v} for i, (t, v) in enumerate(zip(train, val))]


DIVERGING = _history([1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2], [1.0, 0.8, 0.7, 0.75, 0.8, 0.9, 1.0])


def test_divergence_is_found_at_the_validation_minimum():
    assert divergence_epoch(DIVERGING) == 3
    message = divergence_message(DIVERGING)
    assert "0.7 (epoch 3)" in message and "1 (epoch 7)" in message


def test_no_divergence_while_both_losses_fall_or_noise_is_small():
    falling = _history([1.0, 0.8, 0.6, 0.5, 0.4], [1.0, 0.9, 0.8, 0.7, 0.65])
    assert divergence_epoch(falling) is None
    noisy = _history([1.0, 0.8, 0.6, 0.5, 0.4, 0.3], [1.0, 0.8, 0.7, 0.705, 0.71, 0.70])  # within 2 %
    assert divergence_epoch(noisy) is None
    both_rising = _history([1.0, 0.8, 0.6, 0.7, 0.8, 0.9], [1.0, 0.8, 0.7, 0.8, 0.9, 1.0])
    assert divergence_epoch(both_rising) is None  # a bad learning rate, not overfitting
    assert divergence_epoch(DIVERGING[:3]) is None  # too short to tell


def test_learning_curve_marks_the_divergence():
    fig = figures.learning_curve(DIVERGING)
    ax = fig.axes[0]
    assert any(t.get_text() == "val loss diverges" for t in ax.texts)
    vertical = [line for line in ax.lines if list(line.get_xdata()) == [3, 3]]
    assert len(vertical) == 1
