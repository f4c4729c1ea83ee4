"""Top-down heatmap pose estimation: crop each box, predict heatmaps, decode."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .boxes import xyxy_to_center_scale
from .codec import HeatmapCodec
from .config import KeypointLayout, PoseConfig
from .structures import Instances
from .transforms import apply_affine, crop, invert_affine, swap_pairs, warp_matrix

IMAGENET_MEAN_RGB = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD_RGB = np.array([0.229, 0.224, 0.225], np.float32)


def normalize_crops(crops_bgr: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 BGR crops -> (B, 3, H, W) float32 RGB, ImageNet-normalised."""
    rgb = crops_bgr[..., ::-1].astype(np.float32) / 255.0
    rgb = (rgb - IMAGENET_MEAN_RGB) / IMAGENET_STD_RGB
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(0, 3, 1, 2)))


class TopDownPoseEstimator:
    """Estimate keypoints inside each detected box.

    Parameters
    ----------
    model : torch.nn.Module
        Maps (B, 3, H, W) normalised RGB crops to (B, K, h, w) heatmaps.
    codec : HeatmapCodec
        Input and heatmap sizes; decodes heatmaps to crop pixels (DARK).
    layout : KeypointLayout
        Keypoint names and flip pairs (for the flip test).
    config : PoseConfig
    device : str
    """

    def __init__(self, model: nn.Module, codec: HeatmapCodec, layout: KeypointLayout,
                 config: PoseConfig = PoseConfig(), device: str = "cpu"):
        self.model = model
        self.codec = codec
        self.layout = layout
        self.config = config
        self.device = device

    @property
    def num_keypoints(self) -> int:
        return self.layout.num_keypoints

    def crops(self, frame: np.ndarray, boxes_xyxy: np.ndarray):
        """Affine crops of every box.

        Returns
        -------
        crops : (N, h, w, 3) uint8 BGR
        matrices : (N, 2, 3) float64, frame -> crop
        """
        w, h = self.codec.input_size
        centers, scales = xyxy_to_center_scale(boxes_xyxy, w / h, self.config.box_padding)
        matrices = np.stack([warp_matrix(c, s, (w, h)) for c, s in zip(centers, scales)])
        images = np.stack([crop(frame, m, (w, h)) for m in matrices])
        return images, matrices

    @torch.inference_mode()
    def heatmaps(self, crops_bgr: np.ndarray) -> np.ndarray:
        """Network heatmaps (N, K, h, w) float32, averaged with the flipped crop if enabled."""
        out = []
        bs = max(1, self.config.batch_size)
        for start in range(0, len(crops_bgr), bs):
            batch = normalize_crops(crops_bgr[start:start + bs]).to(self.device)
            hm = self.model(batch)
            if self.config.flip_test:
                flipped = self.model(torch.flip(batch, dims=[3])).flip(dims=[3])
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
            images, matrices = self.crops(frame, instances.boxes_xyxy[todo])
            heatmaps = self.heatmaps(images)
            for row, hm, m in zip(todo, heatmaps, matrices):
                kp_crop, kp_score = self.codec.decode(hm)
                keypoints[row] = apply_affine(kp_crop, invert_affine(m))
                scores[row] = kp_score
        return instances.with_(keypoints=keypoints, keypoint_scores=scores)
