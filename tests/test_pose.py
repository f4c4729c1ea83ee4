import numpy as np
import pytest
import torch

from aptrack.core.errors import WeightsError
from aptrack.core.instances import Instances
from aptrack.core.layout import KeypointLayout, load_layout
from aptrack.models import Preset, load_checkpoint
from aptrack.models.simplebaseline import SimpleBaseline
from aptrack.pose.codecs import HeatmapCodec, build_codec, codec_params
from aptrack.pose.config import PoseConfig
from aptrack.pose.estimator import TopDownPoseEstimator
from aptrack.pose.transforms import apply_affine

LAYOUT = KeypointLayout(name="toy", keypoints=("left", "right", "middle"), flip_pairs=((0, 1),),
                        skeleton=((0, 2), (1, 2)), sigmas=(0.1, 0.1, 0.1))
CODEC = HeatmapCodec((64, 64), (16, 16), sigma=1.0, blur_kernel=5)
PRESET = Preset(name="toy", family="simplebaseline", architecture={}, layout=LAYOUT, input_size=(64, 64),
                codec=codec_params(CODEC))
# heatmap cell i is centred on crop pixel 4 i + 1.5
ON_CELLS = np.array([[17.5, 21.5], [45.5, 21.5], [29.5, 41.5]])
# mirror images of each other across a 64 px crop (x -> 63 - x)
SYMMETRIC = np.array([[17.5, 21.5], [45.5, 21.5], [31.5, 41.5]])


class FixedHeatmaps(torch.nn.Module):
    """Ignores the image; puts each keypoint's peak at a fixed crop position."""

    def __init__(self, crop_xy):
        super().__init__()
        hm, _ = CODEC.encode(np.asarray(crop_xy), np.ones(len(crop_xy)))
        self.register_buffer("hm", torch.from_numpy(hm))

    def forward(self, x):
        return self.hm.expand(x.shape[0], -1, -1, -1)


def test_keypoints_come_back_in_frame_pixels():
    crop_xy = ON_CELLS
    est = TopDownPoseEstimator(FixedHeatmaps(crop_xy), PRESET, PoseConfig(flip_test=False))
    frame = np.zeros((200, 300, 3), np.uint8)
    boxes = np.array([[100, 50, 180, 130], [10, 10, 50, 90]], float)
    inst = Instances(boxes_xyxy=boxes, scores=[0.9, 0.8])
    out = est(frame, inst)
    assert out.keypoints.shape == (2, 3, 2)
    _, matrices = est.crops(frame, boxes)
    for i in range(2):
        back = apply_affine(out.keypoints[i], matrices[i])
        np.testing.assert_allclose(back, crop_xy, atol=0.1)
    # box 0: 80 px square -> 100 px region for a 64 px crop, centre (140, 90) at crop (31.5, 31.5)
    assert out.keypoints[0, 2, 0] == pytest.approx(140.0 + (29.5 - 31.5) * 100 / 64, abs=0.05)
    np.testing.assert_allclose(out.keypoint_scores, 1.0, atol=0.05)
    assert len(inst.keypoints[0]) == 0  # input not modified


def test_flip_test_swaps_left_and_right():
    # the model always puts "left" at x=16: after flipping the crop, the flipped pass
    # says "left" at 47 (as "right") -> averaged heatmap has two modes for each side.
    # With a symmetric layout of peaks the flip test must give the same answer.
    crop_xy = SYMMETRIC
    est = TopDownPoseEstimator(FixedHeatmaps(crop_xy), PRESET, PoseConfig(flip_test=True))
    frame = np.zeros((100, 100, 3), np.uint8)
    box = np.array([[20.0, 20.0, 71.2, 71.2]])
    with_flip = est(frame, Instances(boxes_xyxy=box, scores=[1.0]))
    est.config = PoseConfig(flip_test=False)
    without = est(frame, Instances(boxes_xyxy=box, scores=[1.0]))
    np.testing.assert_allclose(with_flip.keypoints, without.keypoints, atol=0.05)


def test_flip_test_disagreeing_halves_lower_the_score():
    crop_xy = np.array([[9.5, 21.5], [29.5, 21.5], [31.5, 41.5]])  # not mirror-symmetric
    est = TopDownPoseEstimator(FixedHeatmaps(crop_xy), PRESET, PoseConfig(flip_test=True))
    inst = Instances(boxes_xyxy=[[0, 0, 51.2, 51.2]], scores=[1.0])
    frame = np.zeros((64, 64, 3), np.uint8)
    out = est(frame, inst)
    est.config = PoseConfig(flip_test=False)
    single = est(frame, inst)
    # the two passes put "left" 24 px apart: half the peak; the middle agrees with its mirror
    assert out.keypoint_scores[0, 0] == pytest.approx(0.5 * single.keypoint_scores[0, 0], abs=0.01)
    assert out.keypoint_scores[0, 2] == pytest.approx(single.keypoint_scores[0, 2], abs=1e-4)


def test_empty_frame_gives_empty_keypoints_of_the_layout_size():
    est = TopDownPoseEstimator(FixedHeatmaps(np.zeros((3, 2)) + 30), PRESET)
    out = est(np.zeros((10, 10, 3), np.uint8), Instances.empty())
    assert out.keypoints.shape == (0, 3, 2)


def test_simplebaseline_output_is_stride_4_of_input():
    model = SimpleBaseline(17, deconv_channels=(16, 16, 16)).eval()
    with torch.no_grad():
        out = model(torch.zeros(2, 3, 128, 96))
    assert out.shape == (2, 17, 32, 24)


def test_checkpoint_round_trip_and_bad_files(tmp_path, random_pose_checkpoint):
    model, preset, meta = load_checkpoint(random_pose_checkpoint)
    assert preset.layout == load_layout("ap10k") and preset.name == "pose-random"
    codec = build_codec(preset.input_size, preset.codec)
    assert codec.input_size == (128, 128) and codec.heatmap_size == (32, 32)
    assert meta["note"].startswith("random")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(WeightsError, match="not a torch checkpoint"):
        load_checkpoint(garbage)
    wrong = tmp_path / "wrong.pt"
    torch.save({"state_dict": {}}, wrong)
    with pytest.raises(WeightsError, match="not an aptrack pose checkpoint"):
        load_checkpoint(wrong)
    ckpt = torch.load(random_pose_checkpoint, weights_only=True)
    ckpt["preset"]["architecture"]["deconv_channels"] = [64, 64, 64]
    torch.save(ckpt, wrong)
    with pytest.raises(WeightsError, match="do not match"):
        load_checkpoint(wrong)


class OnePeak(torch.nn.Module):
    """Ignores the image: every keypoint's heatmap is 1 at column 3, row 2, of a 16 x 16 map."""

    def forward(self, x):
        hm = torch.zeros(x.shape[0], 3, 16, 16)
        hm[:, :, 2, 3] = 1.0
        return hm


@pytest.mark.parametrize("shift, mirrored_column", [(False, 12), (True, 13)])
def test_flip_shift_moves_the_flipped_heatmap_one_cell_right(shift, mirrored_column):
    preset = PRESET.with_(flip_shift=shift)
    est = TopDownPoseEstimator(OnePeak(), preset, PoseConfig(flip_test=True))
    hm = est.heatmaps(np.zeros((1, 64, 64, 3), np.uint8))
    expected = np.zeros((1, 3, 16, 16), np.float32)
    expected[:, :, 2, 3] += 0.5                  # the plain pass
    expected[:, :, 2, mirrored_column] += 0.5    # the flipped pass, mirrored (15 - 3), then shifted
    np.testing.assert_array_equal(hm, expected)


def test_flip_test_runs_crops_and_mirrors_in_one_forward_pass_with_the_two_pass_result():
    torch.manual_seed(0)
    model = SimpleBaseline(PRESET.layout.num_keypoints, backbone="mobilenet_v2", deconv_channels=(16, 16, 16)).eval()
    calls = []
    model.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0].shape[0]))
    est = TopDownPoseEstimator(model, PRESET, PoseConfig(flip_test=True))
    crops = np.random.default_rng(0).integers(0, 255, (3, *PRESET.input_size[::-1], 3), dtype=np.uint8)
    (got,) = est.outputs(crops)
    assert calls == [6]  # one pass: 3 crops and their 3 mirror images
    from aptrack.pose.estimator import normalize_crops

    batch = normalize_crops(crops, PRESET.mean, PRESET.std, PRESET.color, False)
    with torch.inference_mode():
        want = est._average_flipped(model(batch), model(torch.flip(batch, dims=[3]))).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_fp16_precision_needs_a_gpu_and_is_off_on_the_cpu():
    from aptrack.core.errors import ConfigError

    assert not TopDownPoseEstimator(FixedHeatmaps(np.zeros((3, 2))), PRESET, PoseConfig(precision="auto")).fp16
    with pytest.raises(ConfigError, match="needs --device cuda"):
        TopDownPoseEstimator(FixedHeatmaps(np.zeros((3, 2))), PRESET, PoseConfig(precision="fp16"))
    with pytest.raises(ConfigError, match="pose.precision"):
        PoseConfig(precision="int4")


def test_several_frames_go_through_the_network_together_with_each_frames_own_keypoints():
    torch.manual_seed(0)
    model = SimpleBaseline(PRESET.layout.num_keypoints, backbone="mobilenet_v2", deconv_channels=(16, 16, 16)).eval()
    calls = []
    model.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0].shape[0]))
    est = TopDownPoseEstimator(model, PRESET, PoseConfig(flip_test=True, min_box_score=0.5))
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 255, (80, 100, 3), dtype=np.uint8) for _ in range(3)]
    boxes = [Instances(np.array([[5.0, 5, 60, 70], [30, 10, 90, 75]]), [0.9, 0.2], frame_index=0),  # one too weak
             Instances.empty(frame_index=1),
             Instances(np.array([[0.0, 0, 99, 79]]), [0.8], frame_index=2)]
    together = est.estimate_many(list(zip(frames, boxes)))
    assert calls == [4]  # the 2 crops to do and their mirror images, in one pass
    for frame, inst, got in zip(frames, boxes, together):
        alone = est(frame, inst)
        assert got.frame_index == inst.frame_index and got.keypoints.shape == (len(inst), 3, 2)
        np.testing.assert_allclose(got.keypoints, alone.keypoints, atol=1e-3)
        np.testing.assert_allclose(got.keypoint_scores, alone.keypoint_scores, atol=1e-5)
    assert together[0].keypoint_scores[1].max() == 0  # the weak box got no keypoints
