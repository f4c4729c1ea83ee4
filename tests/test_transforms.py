import numpy as np

from aptrack.pose.transforms import apply_affine, crop, flip_keypoints_x, invert_affine, swap_pairs, warp_matrix


def test_center_maps_to_crop_center_and_scale_sets_zoom():
    m = warp_matrix(center=(100, 50), scale=(40, 40), output_size=(8, 8))
    np.testing.assert_allclose(apply_affine([[100, 50]], m), [[3.5, 3.5]])
    # 40 px of frame -> 8 px of crop: zoom 0.2
    np.testing.assert_allclose(apply_affine([[120, 50]], m), [[7.5, 3.5]])


def test_rotation_is_counter_clockwise_on_screen():
    m = warp_matrix(center=(0, 0), scale=(10, 10), output_size=(11, 11), rotation_deg=90)
    # a point right of the centre ends up above it (smaller y) after a CCW turn
    p = apply_affine([[5, 0]], m)[0]
    np.testing.assert_allclose(p, [5.0, 5.0 - 5.5], atol=1e-9)


def test_inverse_round_trip():
    m = warp_matrix(center=(37.2, 81.9), scale=(63, 84), output_size=(48, 64), rotation_deg=23)
    pts = np.array([[1.0, 2.0], [40.5, 77.25], [-3, 100]])
    np.testing.assert_allclose(apply_affine(apply_affine(pts, m), invert_affine(m)), pts, atol=1e-9)


def test_crop_moves_a_bright_pixel_where_the_matrix_says():
    img = np.zeros((100, 200, 3), np.uint8)
    img[60, 130] = 255
    m = warp_matrix(center=(120, 50), scale=(41, 41), output_size=(41, 41))
    out = crop(img, m, (41, 41))
    y, x = np.unravel_index(np.argmax(out[..., 0]), out.shape[:2])
    assert (x, y) == (30, 30)
    np.testing.assert_allclose(apply_affine([[130, 60]], m)[0], [x, y])
    assert img.sum() == 255 * 3  # input untouched


def test_flip_keypoints_swaps_pairs_and_mirrors():
    kp = np.array([[1.0, 5.0], [2.0, 6.0], [3.0, 7.0]])
    out = flip_keypoints_x(kp, width=10, flip_pairs=[(0, 2)])
    np.testing.assert_allclose(out, [[6.0, 7.0], [7.0, 6.0], [8.0, 5.0]])
    np.testing.assert_allclose(kp[0], [1.0, 5.0])
    assert swap_pairs(np.arange(4), [(1, 3)], axis=0).tolist() == [0, 3, 2, 1]
