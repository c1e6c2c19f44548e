"""One-class anomaly segmentation: trained on normal pixels only, it finds bright blobs."""

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage, stats

import segscope
from segscope.classical.one_class import OneClassSegmenter, normality_features, normality_score
from segscope.errors import UserError


def blob_images(n, size=64, seed=0, blobs=3):
    """Smooth grey texture (110 +- 15) with ``blobs`` bright (230) discs of radius 5-8: the anomalies."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    out = []
    for _ in range(n):
        texture = ndimage.gaussian_filter(rng.normal(0, 1, (size, size)), 2)
        texture = 110 + 15 * texture / texture.std()
        mask = np.zeros((size, size), np.uint8)
        for _ in range(blobs):
            cy, cx = rng.integers(10, size - 10, 2)
            r = rng.integers(5, 9)
            mask |= ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).astype(np.uint8)
        image = np.where(mask, 230, texture) + rng.normal(0, 3, mask.shape)
        out.append((image.clip(0, 255).astype(np.uint8), mask))
    return out


def write(root, pairs):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i, (image, mask) in enumerate(pairs):
        Image.fromarray(image).save(root / "images" / f"{i:02d}.png")
        Image.fromarray(mask * 255).save(root / "masks" / f"{i:02d}.png")
    return segscope.open_dataset(root)


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    return write(tmp_path_factory.mktemp("blobs") / "train", blob_images(5))


@pytest.fixture(scope="module")
def fitted(blobs):
    return OneClassSegmenter(2, quantile=0.99, max_samples=10**6).fit(blobs, progress=False)


def test_trained_on_normal_pixels_it_segments_the_blobs(fitted):
    tp = fp = fn = 0
    for image, mask in blob_images(4, seed=1):
        pred, truth = fitted.predict(image) == 1, mask == 1
        tp, fp, fn = tp + (pred & truth).sum(), fp + (pred & ~truth).sum(), fn + (~pred & truth).sum()
    assert tp / (tp + fp + fn) > 0.8  # ~0.91; 1 % of normal pixels are false alarms by construction


def test_threshold_is_the_quantile_of_the_training_normal_scores(fitted, blobs):
    scores = np.concatenate(
        [fitted.anomaly_score(blobs[i][0])[blobs[i][1] == 0] for i in range(len(blobs))]
    )  # every normal pixel of every training image (no subsampling with max_samples=1e6)
    assert fitted.history[0]["normal_pixels"] == len(scores)
    assert fitted.model["threshold"] == pytest.approx(np.quantile(scores, 0.99), rel=1e-9)
    assert (scores > fitted.model["threshold"]).mean() == pytest.approx(0.01, abs=1e-3)


def test_score_is_the_gaussian_negative_log_likelihood(fitted, blobs):
    m = fitted.model
    x = normality_features(blobs[0][0]).reshape(-1, normality_features(blobs[0][0]).shape[-1])[:500]
    z = (x[:, m["keep"]] - np.asarray(m["mean"])) / np.asarray(m["scale"])
    chol = np.asarray(m["precisions_cholesky"][0])
    covariance = np.linalg.inv(chol @ chol.T)
    expected = -stats.multivariate_normal(np.asarray(m["means"][0]), covariance).logpdf(z)
    np.testing.assert_allclose(normality_score(m, x), expected, rtol=1e-8)
    assert len(m["keep"]) < x.shape[1]  # a grey image's constant chroma features are dropped


def test_predict_proba_agrees_with_predict_and_save_load_round_trips(fitted, tmp_path):
    image = blob_images(1, seed=2)[0][0]
    proba = fitted.predict_proba(image)
    assert proba.shape == (2, 64, 64) and proba.dtype == np.float32
    score = fitted.anomaly_score(image)  # the probability is the documented logistic of the score margin
    expected = 1 / (1 + np.exp(-(score - fitted.model["threshold"]) / fitted.model["scale_score"]))
    np.testing.assert_allclose(proba[1], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(proba[1] > 0.5, fitted.predict(image) == 1)
    fitted.save(tmp_path / "run")
    again = segscope.load(tmp_path / "run")
    assert type(again) is OneClassSegmenter and again.options == fitted.options
    np.testing.assert_array_equal(again.predict(image), fitted.predict(image))
    assert "one_class" in segscope.list_models(family="classical", task="binary")


def test_train_on_images_uses_only_anomaly_free_images(tmp_path):
    pairs = blob_images(2, seed=3) + blob_images(2, seed=4, blobs=0)
    ds = write(tmp_path / "mixed", pairs)
    seg = OneClassSegmenter(2, train_on="images", quantile=0.99).fit(ds, progress=False)
    assert seg.history[0]["normal_pixels"] == 2 * 64 * 64  # the two blob-free images only
    with pytest.raises(UserError, match="no normal training pixels"):
        OneClassSegmenter(2, train_on="images").fit(write(tmp_path / "all", blob_images(2)), progress=False)


def test_options_and_unfitted_use_give_one_clear_error():
    with pytest.raises(UserError, match="fit it first"):
        OneClassSegmenter(2).predict(np.zeros((8, 8, 1), np.uint8))
    with pytest.raises(UserError, match=r"quantile must be in \(0, 1\)"):
        OneClassSegmenter(2, quantile=1.5)
    with pytest.raises(UserError, match="train_on must be one of pixels, images"):
        OneClassSegmenter(2, train_on="all")
    with pytest.raises(UserError, match="normal_class=4 is not a class below 3"):
        OneClassSegmenter(3, foreground=2, normal_class=4)
    with pytest.raises(UserError, match="unknown options"):
        OneClassSegmenter(2, quantil=0.9)
