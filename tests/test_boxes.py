import numpy as np

from aptrack.core import boxes as B


def test_round_trips():
    xyxy = np.array([[10, 20, 50, 100], [0, 0, 1, 2]], float)
    np.testing.assert_allclose(B.xywh_to_xyxy(B.xyxy_to_xywh(xyxy)), xyxy)
    np.testing.assert_allclose(B.cxcywh_to_xyxy(B.xyxy_to_cxcywh(xyxy)), xyxy)
    np.testing.assert_allclose(B.xyah_to_xyxy(B.xyxy_to_xyah(xyxy)), xyxy)
    np.testing.assert_allclose(B.xyxy_to_xyah(xyxy)[0], [30, 60, 0.5, 80])


def test_iou_hand_values():
    a = [[0, 0, 10, 10]]
    b = [[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]]
    np.testing.assert_allclose(B.box_iou_xyxy(a, b), [[50 / 150, 0.0, 1.0]])
    assert B.box_iou_xyxy(np.zeros((0, 4)), b).shape == (0, 3)


def test_center_scale_grows_to_aspect_and_pads():
    center, scale = B.xyxy_to_center_scale([[0, 0, 100, 50]], aspect_ratio=1.0, padding=1.25)
    np.testing.assert_allclose(center, [[50, 25]])
    np.testing.assert_allclose(scale, [[125, 125]])
    _, scale = B.xyxy_to_center_scale([[0, 0, 30, 120]], aspect_ratio=0.75, padding=1.0)
    np.testing.assert_allclose(scale, [[90, 120]])


def test_widened_grows_each_side_by_a_fraction_of_the_size():
    from aptrack.core.boxes import widened_xyxy
    out = widened_xyxy([[10, 20, 50, 40]], 0.25)   # 40 x 20 -> 10 and 5 more on each side
    np.testing.assert_allclose(out, [[0, 15, 60, 45]])


def test_xyah_of_a_box_without_height_has_aspect_zero_and_area_zero():
    boxes = np.array([[10, 20, 30, 20], [10, 20, 30, 60], [30, 60, 10, 20]], float)   # flat, normal, swapped (a = 0 where h <= 0)
    np.testing.assert_allclose(B.xyxy_to_xyah(boxes), [[20, 20, 0, 0], [20, 40, 0.5, 40], [20, 40, 0, -40]])
    np.testing.assert_allclose(B.box_area_xyxy(boxes), [0, 800, 0])
    np.testing.assert_allclose(B.xyxy_to_cxcywh(np.zeros((0, 4))), np.zeros((0, 4)))


def test_at_least_xyxy_widens_only_boxes_below_the_side_about_their_centres():
    from aptrack.core.boxes import at_least_xyxy
    got = at_least_xyxy([[10, 10, 11, 30], [0, 0, 8, 8]], 4.0)
    np.testing.assert_allclose(got, [[8.5, 10, 12.5, 30], [0, 0, 8, 8]])


def test_mirrored_boxes_swap_their_edges_about_the_image_width_and_mirror_back():
    boxes = np.array([[10, 20, 50, 100], [0, 0, 64, 8]], float)
    np.testing.assert_allclose(B.mirrored_xyxy(boxes, 64), [[14, 20, 54, 100], [0, 0, 64, 8]])
    np.testing.assert_allclose(B.mirrored_xyxy(B.mirrored_xyxy(boxes, 64), 64), boxes)


def test_share_inside_is_the_intersection_over_the_first_boxs_area():
    a = np.array([[0, 0, 10, 10], [5, 5, 5, 5]], float)   # a 10 x 10 box, and one of zero area
    b = np.array([[0, 0, 20, 20], [5, 0, 15, 10], [50, 50, 60, 60]], float)
    np.testing.assert_allclose(B.box_share_inside_xyxy(a, b), [[1.0, 0.5, 0.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(B.box_share_inside_xyxy(b[:1], a[:1]), [[0.25]])  # not symmetric


def test_centre_distances_and_diagonals_are_in_pixels():
    a = np.array([[0, 0, 6, 8], [10, 10, 10, 10]], float)  # centre (3, 4), diagonal 10; a point box at (10, 10)
    b = np.array([[0, 0, 6, 8], [3, 4, 3, 4], [6, 8, 12, 16]], float)  # centres (3, 4), (3, 4), (9, 12)
    np.testing.assert_allclose(B.box_diagonal_xyxy(a), [10.0, 0.0])
    np.testing.assert_allclose(B.box_centre_distance_xyxy(a, b), [[0.0, 0.0, 10.0], [np.hypot(7, 6), np.hypot(7, 6),
                                                                                      np.hypot(1, 2)]])
    assert B.box_centre_distance_xyxy(a, np.zeros((0, 4))).shape == (2, 0)
