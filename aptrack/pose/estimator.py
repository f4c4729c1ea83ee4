"""Top-down pose estimation: crop each box, normalise, predict, decode.

Every model-specific fact (input size, normalisation, channel order, codec,
flip pairs) comes from the model's :class:`~aptrack.models.presets.Preset`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from aptrack.core.boxes import xyxy_to_center_scale
from aptrack.core.instances import Instances
from aptrack.models.presets import Preset
from aptrack.pose.codecs import build_codec
from aptrack.pose.config import PoseConfig
from aptrack.pose.mmpose_codecs import crop_to_frame, msra_warp_matrix, udp_warp_matrix
from aptrack.pose.transforms import apply_affine, crop, invert_affine, swap_pairs, warp_matrix

WARP_MATRICES = {"aptrack": warp_matrix, "msra": msra_warp_matrix, "udp": udp_warp_matrix}
"""The frame-to-crop matrix builder of each preset ``warp``: aptrack's, or mmpose's MSRA or UDP one."""


def normalize_crops(crops_bgr: np.ndarray, mean, std, color: str = "rgb") -> torch.Tensor:
    """Network input from image crops.

    Parameters
    ----------
    crops_bgr : (B, H, W, 3) uint8
        Crops in OpenCV's BGR order.
    mean, std : (3,) array_like
        Per-channel normalisation in 0-255 pixel units, in ``color`` order.
    color : {"rgb", "bgr"}
        Channel order the network takes.

    Returns
    -------
    (B, 3, H, W) float32 tensor, ``(pixel / 255 - mean / 255) / (std / 255)``.
    """
    mean01 = (np.asarray(mean, np.float64) / 255.0).astype(np.float32)
    std01 = (np.asarray(std, np.float64) / 255.0).astype(np.float32)
    pixels = crops_bgr[..., ::-1] if color == "rgb" else crops_bgr
    x = (pixels.astype(np.float32) / 255.0 - mean01) / std01
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


class TopDownPoseEstimator:
    """Estimate keypoints inside each detected box.

    Parameters
    ----------
    model : torch.nn.Module
        Maps (B, 3, H, W) normalised crops to (B, K, h, w) heatmaps.
    preset : Preset
        The model's input size, normalisation, codec, flip settings and layout.
    config : PoseConfig
    device : str
    """

    def __init__(self, model: nn.Module, preset: Preset, config: PoseConfig = PoseConfig(),
                 device: str = "cpu"):
        self.model = model
        self.preset = preset
        self.codec = build_codec(preset.input_size, preset.codec)
        self._warp = WARP_MATRICES[preset.warp]
        self.layout = preset.layout
        self.config = config
        self.device = device

    @property
    def flip_test(self) -> bool:
        """Whether crops are averaged with their mirror image: the config's choice, else the preset's."""
        return self.preset.flip_test if self.config.flip_test is None else self.config.flip_test

    @property
    def num_keypoints(self) -> int:
        return self.layout.num_keypoints

    def regions(self, boxes_xyxy: np.ndarray):
        """Centre and size (pixels) of each box's crop region: padded, at the input's aspect ratio.

        Returns
        -------
        centers : (N, 2) float64
        scales : (N, 2) float64, width and height
        """
        w, h = self.codec.input_size
        return xyxy_to_center_scale(boxes_xyxy, w / h, self.config.box_padding)

    def crops(self, frame: np.ndarray, boxes_xyxy: np.ndarray):
        """Affine crops of every box.

        Returns
        -------
        crops : (N, h, w, 3) uint8 BGR
        matrices : (N, 2, 3) float64, frame -> crop
        """
        return self._cut(frame, *self.regions(boxes_xyxy))

    def _cut(self, frame: np.ndarray, centers: np.ndarray, scales: np.ndarray):
        size = tuple(self.codec.input_size)
        matrices = np.stack([self._warp(c, s, size) for c, s in zip(centers, scales)])
        images = np.stack([crop(frame, m, size) for m in matrices])
        return images, matrices

    def to_frame(self, keypoints_crop: np.ndarray, matrix: np.ndarray, center, scale) -> np.ndarray:
        """Crop-pixel keypoints (K, 2) back to frame pixels.

        aptrack's own warp is inverted exactly (``matrix``). mmpose's presets
        map back as mmpose does, ``x / input_size * scale + center - scale / 2``
        with the crop region's ``center`` and ``scale``, for UDP crops too, so
        that the numbers are mmpose's.
        """
        if self.preset.warp == "aptrack":
            return apply_affine(keypoints_crop, invert_affine(matrix))
        return crop_to_frame(keypoints_crop, center, scale, self.codec.input_size)

    @torch.inference_mode()
    def heatmaps(self, crops_bgr: np.ndarray) -> np.ndarray:
        """Network heatmaps (N, K, h, w) float32, averaged with the flipped crop if enabled."""
        out = []
        bs = max(1, self.config.batch_size)
        for start in range(0, len(crops_bgr), bs):
            batch = normalize_crops(crops_bgr[start:start + bs], self.preset.mean, self.preset.std,
                                    self.preset.color).to(self.device)
            hm = self.model(batch)
            if self.flip_test:
                flipped = self.model(torch.flip(batch, dims=[3])).flip(dims=[3])
                if self.preset.flip_shift:  # mmpose's shift_heatmap: one cell right
                    flipped = torch.cat([flipped[..., :1], flipped[..., :-1]], dim=-1)
                order = swap_pairs(np.arange(hm.shape[1]), self.layout.flip_pairs, axis=0)
                hm = (hm + flipped[:, torch.from_numpy(order).to(flipped.device)]) / 2
            out.append(hm.float().cpu().numpy())
        return np.concatenate(out)

    def __call__(self, frame: np.ndarray, instances: Instances) -> Instances:
        """Return ``instances`` with keypoints and keypoint scores in frame pixels.

        Boxes scoring below ``config.min_box_score`` get keypoints with score 0.
        All boxes of the frame run through the network as one batch.
        """
        k = self.num_keypoints
        keypoints = np.zeros((len(instances), k, 2), np.float32)
        scores = np.zeros((len(instances), k), np.float32)
        todo = np.flatnonzero(instances.scores >= self.config.min_box_score)
        if len(todo):
            centers, scales = self.regions(instances.boxes_xyxy[todo])
            images, matrices = self._cut(frame, centers, scales)
            heatmaps = self.heatmaps(images)
            for row, hm, m, c, s in zip(todo, heatmaps, matrices, centers, scales):
                kp_crop, kp_score = self.codec.decode(hm)
                keypoints[row] = self.to_frame(kp_crop, m, c, s)
                scores[row] = kp_score
        return instances.with_(keypoints=keypoints, keypoint_scores=scores)
