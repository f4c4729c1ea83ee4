import numpy as np
import pytest

from aptrack.pose.codecs import HeatmapCodec, gaussian_heatmaps, heatmap_argmax, refine_dark


def test_gaussian_peak_is_one_at_integer_centre():
    hm = gaussian_heatmaps([[3, 2]], (8, 6), sigma=1.0)
    assert hm.shape == (1, 6, 8)
    assert hm[0, 2, 3] == pytest.approx(1.0)
    assert hm[0, 2, 4] == pytest.approx(np.exp(-0.5), rel=1e-6)


def test_argmax_returns_x_then_y():
    hm = np.zeros((2, 4, 5))
    hm[0, 3, 1] = 2.0
    hm[1, 0, 4] = 0.5
    loc, val = heatmap_argmax(hm)
    assert loc.tolist() == [[1, 3], [4, 0]]
    assert val.tolist() == [2.0, 0.5]


def test_dark_recovers_subpixel_centre_of_a_gaussian():
    true = np.array([[10.3, 7.8], [5.55, 12.2]])
    hm = gaussian_heatmaps(true, (24, 20), sigma=2.0)
    loc, _ = heatmap_argmax(hm)
    assert np.abs(loc - true).max() > 0.2  # the integer peak is off
    np.testing.assert_allclose(refine_dark(hm, loc, blur_kernel=1), true, atol=1e-6)
    np.testing.assert_allclose(refine_dark(hm, loc, blur_kernel=11), true, atol=0.02)


@pytest.mark.parametrize("input_size,heatmap_size", [((256, 256), (64, 64)), ((192, 256), (48, 64))])
def test_encode_decode_round_trip(input_size, heatmap_size):
    codec = HeatmapCodec(input_size, heatmap_size, sigma=2.0)
    rng = np.random.default_rng(0)
    kp = rng.uniform(20, min(input_size) - 20, size=(17, 2))
    hm, w = codec.encode(kp, np.ones(17))
    assert hm.shape == (17, heatmap_size[1], heatmap_size[0]) and w.tolist() == [1.0] * 17
    decoded, scores = codec.decode(hm)
    np.testing.assert_allclose(decoded, kp, atol=0.1)  # < 0.1 input px
    np.testing.assert_allclose(scores, 1.0, atol=0.05)


def test_invisible_and_far_outside_keypoints_get_zero_weight():
    codec = HeatmapCodec((64, 64), (16, 16), sigma=1.0)
    hm, w = codec.encode([[10, 10], [30, 30], [500, 30]], [1, 0, 1])
    assert w.tolist() == [1.0, 0.0, 0.0]
    assert hm[1].max() == 0 and hm[2].max() == 0 and hm[0].max() > 0.5


def test_flip_is_exact_under_the_cell_centre_convention():
    codec = HeatmapCodec((256, 256), (64, 64), sigma=2.0)
    kp = np.array([[100.3, 80.0]])
    hm, _ = codec.encode(kp, [1])
    flipped, _ = codec.decode(hm[:, :, ::-1])
    np.testing.assert_allclose(flipped[0], [255 - 100.3, 80.0], atol=0.05)
