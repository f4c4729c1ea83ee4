"""mmpose 1.3.x parity codecs and warps, checked on tiny hand-made arrays."""

import cv2
import numpy as np
import pytest

from aptrack.pose.mmpose_codecs import (
    MSRAHeatmap,
    SimCCLabel,
    UDPHeatmap,
    crop_to_frame,
    msra_warp_matrix,
    udp_warp_matrix,
)


# --------------------------------------------------------------------- warps

def test_msra_warp_maps_box_centre_to_crop_centre_w_over_2():
    m = msra_warp_matrix(np.float32([100, 50]), np.float32([80, 60]), (64, 48))
    # zoom 64 / 80 = 0.8; translation puts (100, 50) at (32, 24)
    expected = np.array([[0.8, 0.0, 32 - 0.8 * 100], [0.0, 0.8, 24 - 0.8 * 50]])
    np.testing.assert_allclose(m, expected, atol=1e-5)
    assert m.dtype == np.float64 and m.shape == (2, 3)


def test_udp_warp_maps_box_centre_to_crop_centre_w_minus_1_over_2():
    m = udp_warp_matrix(np.float32([100, 50]), np.float32([80, 60]), (64, 48))
    sx, sy = 63 / 80, 47 / 60
    expected = np.array([[sx, 0.0, 31.5 - sx * 100], [0.0, sy, 23.5 - sy * 50]])
    np.testing.assert_allclose(m, expected, atol=1e-5)
    # stored as float32 in mmpose: every entry is exactly a float32
    np.testing.assert_array_equal(m, m.astype(np.float32).astype(np.float64))


def test_udp_and_msra_centres_differ_by_half_a_crop_pixel():
    c, s = np.array([321.0, 200.5]), np.array([192.0, 256.0])
    centre_msra = msra_warp_matrix(c, s, (192, 256)) @ np.append(c, 1)
    centre_udp = udp_warp_matrix(c, s, (192, 256)) @ np.append(c, 1)
    np.testing.assert_allclose(centre_msra - centre_udp, [0.5, 0.5], atol=1e-4)


def test_msra_warp_box_corners_go_to_crop_corners():
    c, s = np.array([100.0, 50.0]), np.array([80.0, 60.0])
    m = msra_warp_matrix(c, s, (64, 48))
    corners = cv2.transform(np.array([[[60.0, 20.0], [140.0, 80.0]]]), m)[0]
    np.testing.assert_allclose(corners, [[0, 0], [64, 48]], atol=1e-4)


def test_udp_warp_box_edge_pixel_centres_go_to_pixels_0_and_w_minus_1():
    c, s = np.array([100.0, 50.0]), np.array([80.0, 60.0])
    m = udp_warp_matrix(c, s, (64, 48))
    corners = cv2.transform(np.array([[[60.0, 20.0], [140.0, 80.0]]]), m)[0]
    np.testing.assert_allclose(corners, [[0, 0], [63, 47]], atol=1e-4)


def test_rotation_conventions_by_hand():
    c, s = np.array([100.0, 50.0]), np.array([80.0, 60.0])
    right_of_centre = np.array([140.0, 50.0, 1.0])
    # msra: frame direction R(rot) @ (0, -s/2) goes to crop "up"
    m = msra_warp_matrix(c, s, (64, 48), rotation_deg=90.0)
    np.testing.assert_allclose(m @ right_of_centre, [32.0, 24.0 - 32.0], atol=1e-4)
    # udp: matrix is R(+rot) times the zoom, so frame-right goes to crop-down
    m = udp_warp_matrix(c, s, (64, 48), rotation_deg=90.0)
    np.testing.assert_allclose(m @ right_of_centre, [31.5, 23.5 + 40 * 47 / 60], atol=1e-4)


# ---------------------------------------------------------------------- MSRA

def _peak_map(h=8, w=10):
    hm = np.zeros((1, h, w), np.float32)
    hm[0, 4, 5] = 1.0
    hm[0, 4, 6] = 0.5   # right neighbour higher than left
    hm[0, 4, 4] = 0.2
    hm[0, 3, 5] = 0.3   # equal up/down: no y shift
    hm[0, 5, 5] = 0.3
    return hm


def test_msra_quarter_shift_toward_higher_right_neighbour():
    codec = MSRAHeatmap((40, 32), (10, 8), sigma=2.0)  # stride 4
    kp, scores = codec.decode(_peak_map())
    assert kp.dtype == np.float32
    np.testing.assert_array_equal(kp, [[5.25 * 4, 4.0 * 4]])
    np.testing.assert_array_equal(scores, [1.0])


def test_msra_quarter_shift_toward_higher_lower_neighbour():
    hm = _peak_map()
    hm[0, 5, 5] = 0.6  # lower neighbour now higher than upper
    kp, _ = MSRAHeatmap((40, 32), (10, 8), 2.0).decode(hm)
    np.testing.assert_array_equal(kp, [[21.0, 4.25 * 4]])


def test_msra_peak_at_x_equals_1_is_not_shifted_as_in_mmpose():
    hm = np.zeros((1, 8, 10), np.float32)
    hm[0, 4, 1] = 1.0
    hm[0, 4, 2] = 0.9
    kp, _ = MSRAHeatmap((40, 32), (10, 8), 2.0).decode(hm)
    np.testing.assert_array_equal(kp, [[4.0, 16.0]])


@pytest.mark.parametrize("unbiased", [False, True])
def test_msra_nonpositive_maximum_decodes_to_minus_stride(unbiased):
    hm = np.full((2, 8, 10), -0.5, np.float32)
    hm[0, 2, 3] = -0.1      # maximum below zero
    hm[1] = 0.0             # maximum exactly zero
    kp, scores = MSRAHeatmap((40, 32), (10, 8), 2.0, unbiased=unbiased).decode(hm)
    np.testing.assert_array_equal(kp, [[-4.0, -4.0], [-4.0, -4.0]])
    np.testing.assert_array_equal(scores, np.float32([-0.1, 0.0]))


def test_msra_encode_decode_round_trip_on_cells_is_exact():
    codec = MSRAHeatmap((64, 48), (16, 12), sigma=2.0)
    kp = np.array([[20.0, 16.0], [8.0, 28.0], [40.0, 4.0 * 5]])
    hm, w = codec.encode(kp, [1, 1, 1])
    assert hm.shape == (3, 12, 16) and hm.dtype == np.float32
    np.testing.assert_array_equal(w, [1, 1, 1])
    out, scores = codec.decode(hm)
    np.testing.assert_array_equal(out, kp)
    np.testing.assert_array_equal(scores, [1, 1, 1])


def test_msra_encode_decode_round_trip_off_cells_within_quarter_cell():
    codec = MSRAHeatmap((64, 48), (16, 12), sigma=2.0)
    kp = np.array([[21.3, 17.9], [9.0, 26.4]])
    out, _ = codec.decode(codec.encode(kp)[0])
    # integer peak at round(p / 4), shifted 0.25 cell: error <= 0.5 cell + 0.25 cell
    assert np.all(np.abs(out - kp) <= 0.75 * 4)
    # the biased gaussian sits on cell int(p / 4 + 0.5): (5, 4) and (2, 7)
    np.testing.assert_array_equal(codec.encode(kp)[0][0, 4, 5], 1.0)
    np.testing.assert_array_equal(codec.encode(kp)[0][1, 7, 2], 1.0)


def test_msra_invisible_or_far_outside_keypoint_gets_weight_zero_and_empty_map():
    codec = MSRAHeatmap((64, 48), (16, 12), sigma=2.0)
    hm, w = codec.encode([[20.0, 16.0], [20.0, 16.0], [200.0, 16.0]], [1, 0, 1])
    np.testing.assert_array_equal(w, [1, 0, 0])
    assert hm[1].max() == 0 and hm[2].max() == 0


def test_msra_dark_recovers_off_grid_keypoint():
    codec = MSRAHeatmap((256, 256), (64, 64), sigma=2.0, unbiased=True)
    kp = np.array([[100.3, 77.7], [150.9, 60.2]])
    out, scores = codec.decode(codec.encode(kp)[0])
    np.testing.assert_allclose(out, kp, atol=0.05)
    assert np.all(scores < 1.0) and np.all(scores > 0.9)


# ----------------------------------------------------------------------- UDP

def test_udp_encode_uses_input_minus_1_over_heatmap_minus_1():
    codec = UDPHeatmap((256, 256), (64, 64), sigma=2.0)
    np.testing.assert_array_equal(codec.scale_factor, np.float32([255 / 63, 255 / 63]))
    hm, w = codec.encode([[255.0, 0.0], [127.5, 255.0]])
    # input pixel 255 lands exactly on the last cell (63), not on 63.75
    assert hm[0, 0, 63] == 1.0
    assert np.unravel_index(np.argmax(hm[1]), hm[1].shape) == (63, 32)  # 31.5 -> cell 32
    np.testing.assert_array_equal(w, [1, 1])


def test_udp_decode_scales_by_input_over_heatmap_minus_1_like_mmpose():
    codec = UDPHeatmap((256, 256), (64, 64), sigma=2.0)
    kp = np.array([[100.3, 77.7], [180.2, 140.6]])
    out, _ = codec.decode(codec.encode(kp)[0])
    assert out.dtype == np.float64
    np.testing.assert_allclose(out * 255 / 256, kp, atol=0.05)


def test_udp_frame_round_trip_through_warp_codec_and_back_mapping():
    center, scale, size = np.float32([320.5, 240.25]), np.float32([200.0, 200.0]), (256, 256)
    frame_kp = np.array([[300.7, 222.2], [381.3, 290.9]])
    m = udp_warp_matrix(center, scale, size)
    crop_kp = cv2.transform(frame_kp[None], m)[0]
    codec = UDPHeatmap(size, (64, 64), sigma=2.0)
    out, _ = codec.decode(codec.encode(crop_kp)[0])
    np.testing.assert_allclose(crop_to_frame(out, center, scale, size), frame_kp, atol=0.05)


def test_udp_all_zero_heatmap_decodes_to_nan_as_mmpose():
    kp, scores = UDPHeatmap((256, 256), (64, 64)).decode(np.zeros((1, 64, 64), np.float32))
    assert np.isnan(kp).all()
    np.testing.assert_array_equal(scores, [0.0])


# --------------------------------------------------------------------- SimCC

def test_simcc_encode_decode_round_trip_within_one_bin():
    codec = SimCCLabel((192, 256), sigma=(4.9, 5.66))
    kp = np.array([[37.3, 101.8], [0.0, 255.5]])
    tx, ty, w = codec.encode(kp, [1, 1])
    assert tx.shape == (2, 384) and ty.shape == (2, 512) and tx.dtype == np.float32
    out, scores = codec.decode(tx, ty)
    np.testing.assert_array_equal(out, [[37.5, 102.0], [0.0, 255.5]])  # round(2p) / 2
    assert np.all(np.abs(out - kp) <= 1 / codec.simcc_split_ratio)
    np.testing.assert_array_equal(scores, [1.0, 1.0])


def test_simcc_score_is_smaller_of_the_two_maxima():
    sx = np.zeros((1, 20), np.float32)
    sy = np.zeros((1, 30), np.float32)
    sx[0, 7], sy[0, 11] = 0.9, 0.6
    out, scores = SimCCLabel((10, 15)).decode(sx, sy)
    np.testing.assert_array_equal(out, [[3.5, 5.5]])
    np.testing.assert_array_equal(scores, np.float32([0.6]))


def test_simcc_nonpositive_score_decodes_to_minus_one_over_ratio():
    sx = np.zeros((1, 20), np.float32)
    sy = np.zeros((1, 30), np.float32)
    sx[0, 7] = 0.9  # y maximum is 0 -> score 0 -> location -1
    out, scores = SimCCLabel((10, 15)).decode(sx, sy)
    np.testing.assert_array_equal(out, [[-0.5, -0.5]])
    np.testing.assert_array_equal(scores, [0.0])


def test_simcc_invisible_keypoint_gets_weight_zero_and_empty_labels():
    tx, ty, w = SimCCLabel((64, 64), sigma=5.66).encode([[10.0, 10.0], [20.0, 20.0]], [1, 0])
    np.testing.assert_array_equal(w, [1, 0])
    assert tx[1].max() == 0 and ty[1].max() == 0


def test_simcc_keypoint_beyond_three_sigma_outside_gets_weight_zero():
    codec = SimCCLabel((64, 64), sigma=2.0)  # 128 bins, radius 6 bins
    _, _, w = codec.encode([[-3.4, 10.0], [-3.6, 10.0], [66.9, 10.0], [67.1, 10.0]])
    # bins: -7 (right = 0, kept), -7 (kept), 134 (left = 128 -> out), 134
    np.testing.assert_array_equal(w, [1, 1, 0, 0])


def test_simcc_sigma_pair_sets_each_axis_width():
    tx, ty, _ = SimCCLabel((64, 64), sigma=(2.0, 4.0)).encode([[10.0, 10.0]])
    np.testing.assert_allclose(tx[0, 21], np.exp(-1 / (2 * 2.0 ** 2)), rtol=1e-6)
    np.testing.assert_allclose(ty[0, 21], np.exp(-1 / (2 * 4.0 ** 2)), rtol=1e-6)


def test_simcc_normalize_divides_by_sigma_sqrt_2pi():
    tx, ty, _ = SimCCLabel((64, 64), sigma=(2.0, 4.0), normalize=True).encode([[10.0, 10.0]])
    np.testing.assert_allclose(tx[0, 20], 1 / (2.0 * np.sqrt(2 * np.pi)), rtol=1e-6)
    np.testing.assert_allclose(ty[0, 20], 1 / (4.0 * np.sqrt(2 * np.pi)), rtol=1e-6)


def test_simcc_dark_recovers_sub_bin_peak():
    codec = SimCCLabel((192, 256), sigma=(4.9, 5.66), use_dark=True)
    sx = np.exp(-(np.arange(384) - 74.6) ** 2 / (2 * 4.9 ** 2)).astype(np.float32)[None]
    sy = np.exp(-(np.arange(512) - 203.3) ** 2 / (2 * 5.66 ** 2)).astype(np.float32)[None]
    out, _ = codec.decode(sx, sy)
    np.testing.assert_allclose(out, [[74.6 / 2, 203.3 / 2]], atol=0.01)
    # without DARK the integer bins 75 and 203 are returned
    out, _ = SimCCLabel((192, 256), sigma=(4.9, 5.66)).decode(sx, sy)
    np.testing.assert_array_equal(out, [[37.5, 101.5]])
