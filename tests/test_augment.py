import numpy as np
import pytest

from aptrack.core.layout import load_layout
from aptrack.data.augment import AugmentConfig, TopDownTrainTransform, color_jitter, half_body_box

AP10K = load_layout("ap10k")


def _painted_animal(n_kp=17, size=(240, 320), seed=0):
    """An image with one coloured disc per keypoint; returns image, keypoints, colours."""
    import cv2
    rng = np.random.default_rng(seed)
    h, w = size
    img = np.zeros((h, w, 3), np.uint8)
    kp = np.stack([rng.uniform(90, 230, n_kp), rng.uniform(70, 170, n_kp)], axis=1)
    colours = np.array([[(37 * i) % 256, (91 * i + 60) % 256, 255 - (23 * i) % 200] for i in range(n_kp)],
                       np.uint8)
    # draw in order; later discs may cover earlier ones, so keep them small and spread
    for (x, y), c in zip(kp, colours):
        cv2.circle(img, (int(round(x)), int(round(y))), 3, tuple(int(v) for v in c), -1)
    return img, kp, colours


@pytest.mark.parametrize("seed", range(12))
def test_augmented_keypoints_stay_on_their_body_part_and_flip_swaps_sides(seed):
    img, kp, colours = _painted_animal()
    box = np.array([80, 60, 240, 180], float)
    vis = np.ones(17, bool)
    cfg = AugmentConfig(color_prob=0.0, half_body_prob=0.0, flip_prob=0.5)
    tf = TopDownTrainTransform((96, 96), AP10K.flip_pairs, AP10K.upper_body, AP10K.lower_body, cfg)
    rng = np.random.default_rng(seed)
    _, flipped = tf.matrix(box, kp, vis, np.random.default_rng(seed))
    crop, out_kp, out_vis = tf(img, box, kp, vis, rng)
    assert crop.shape == (96, 96, 3)
    # which original keypoint each output slot now holds
    source = np.arange(17)
    if flipped:
        for a, b in AP10K.flip_pairs:
            source[a], source[b] = b, a
    checked = 0
    for j in np.flatnonzero(out_vis):
        x, y = np.round(out_kp[j]).astype(int)
        pixel = crop[y, x].astype(int)
        nearest = np.argmin(np.abs(colours.astype(int) - pixel).sum(axis=1))
        if np.abs(colours[nearest].astype(int) - pixel).sum() < 60:  # on a disc, not between
            assert nearest == source[j], f"slot {j} lands on keypoint {nearest}, expected {source[j]}"
            checked += 1
    assert checked >= 5


def test_flip_alone_mirrors_x_and_swaps_pairs():
    img, kp, _ = _painted_animal()
    box = np.array([80, 60, 240, 180], float)
    vis = np.ones(17, bool)
    plain = TopDownTrainTransform((96, 96), AP10K.flip_pairs, config=AugmentConfig(), train=False)
    base_crop, base_kp, _ = plain(img, box, kp, vis)
    only_flip = AugmentConfig(flip_prob=1.0, scale_range=(1.0, 1.0), rotate_prob=0.0, shift=0.0,
                              half_body_prob=0.0, color_prob=0.0)
    tf = TopDownTrainTransform((96, 96), AP10K.flip_pairs, config=only_flip)
    crop, out_kp, _ = tf(img, box, kp, vis, np.random.default_rng(0))
    # same pixels mirrored (OpenCV's fixed-point resampling may differ by one grey level)
    assert np.abs(crop.astype(int) - base_crop[:, ::-1].astype(int)).max() <= 1
    left_eye, right_eye = AP10K.keypoints.index("left_eye"), AP10K.keypoints.index("right_eye")
    np.testing.assert_allclose(out_kp[left_eye], [95 - base_kp[right_eye, 0], base_kp[right_eye, 1]])


def test_keypoints_pushed_out_of_the_crop_lose_their_label():
    img, kp, _ = _painted_animal()
    kp = kp.copy()
    kp[0] = [5, 5]  # far outside the box's crop
    tf = TopDownTrainTransform((64, 64), AP10K.flip_pairs, train=False)
    _, _, vis = tf(img, np.array([150, 100, 200, 140.0]), kp, np.ones(17, bool))
    assert not vis[0]


def test_half_body_box_covers_only_the_chosen_part():
    kp = np.array([[0, 0], [10, 0], [100, 100], [110, 120]], float)
    box = half_body_box(kp, np.array([1, 1, 1, 1], bool), [0, 1], padding=1.0)
    np.testing.assert_allclose(box, [0, -0.5, 10, 0.5])  # zero height grows to min_size 1
    assert half_body_box(kp, np.array([1, 0, 1, 1], bool), [0, 1], padding=1.5) is None


def test_color_jitter_returns_a_new_image_and_keeps_the_input():
    img = np.full((4, 4, 3), 100, np.uint8)
    before = img.copy()
    out = color_jitter(img, np.random.default_rng(1), 0.5, 0.5, 0.5)
    assert out is not img and out.dtype == np.uint8
    np.testing.assert_array_equal(img, before)
    assert not np.array_equal(out, img)


def test_same_seed_same_sample():
    img, kp, _ = _painted_animal()
    tf = TopDownTrainTransform((64, 64), AP10K.flip_pairs, AP10K.upper_body, AP10K.lower_body)
    box, vis = np.array([80, 60, 240, 180.0]), np.ones(17, bool)
    a = tf(img, box, kp, vis, np.random.default_rng(7))
    b = tf(img, box, kp, vis, np.random.default_rng(7))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
