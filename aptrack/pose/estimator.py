"""Top-down pose estimation: crop each box, normalise, predict, decode.

Every model-specific fact (input size, normalisation, channel order, codec,
flip pairs) comes from the model's :class:`~aptrack.models.presets.Preset`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from aptrack.core.boxes import xyxy_to_center_scale, xyxy_to_center_scale_float32
from aptrack.core.errors import ConfigError
from aptrack.core.instances import Instances
from aptrack.models.presets import Preset
from aptrack.pose.codecs import build_codec
from aptrack.pose.config import PoseConfig
from aptrack.pose.mmpose_codecs import crop_to_frame, msra_warp_matrix, udp_warp_matrix
from aptrack.pose.transforms import apply_affine, crop, invert_affine, swap_pairs, warp_matrix

WARP_MATRICES = {"aptrack": warp_matrix, "msra": msra_warp_matrix, "udp": udp_warp_matrix}
"""The frame-to-crop matrix builder of each preset ``warp``: aptrack's, or mmpose's MSRA or UDP one."""

FLOAT32_REGION_WARPS = ("udp",)
"""Warps whose crop regions are computed in float32 as mmpose's ``GetBBoxCenterScale`` and
``TopdownAffine`` do: the UDP matrix is built in the dtype of the centre and size, so a
float64 region gives a matrix one float32 step away from mmpose's and crops that differ
by a grey level. (The MSRA matrix rounds its points to float32 itself.)"""


MMPOSE_WARPS = ("msra", "udp")
"""Warps of the presets that follow mmpose's test-time pipeline: their crops are also
normalised as mmpose's data preprocessor does (``pixel_units`` in :func:`normalize_crops`)."""


def normalize_crops(crops_bgr: np.ndarray, mean, std, color: str = "rgb", pixel_units: bool = False) -> torch.Tensor:
    """Network input from image crops.

    Parameters
    ----------
    crops_bgr : (B, H, W, 3) uint8
        Crops in OpenCV's BGR order.
    mean, std : (3,) array_like
        Per-channel normalisation in 0-255 pixel units, in ``color`` order.
    color : {"rgb", "bgr"}
        Channel order the network takes.
    pixel_units : bool
        Compute ``(pixel - mean) / std`` in float32, as mmpose's data
        preprocessor does, instead of aptrack's ``(pixel / 255 - mean / 255) /
        (std / 255)`` (the formula aptrack's own models were trained with). The
        two differ by float32 rounding only (about 5e-7).

    Returns
    -------
    (B, 3, H, W) float32 tensor.
    """
    pixels = crops_bgr[..., ::-1] if color == "rgb" else crops_bgr
    if pixel_units:
        x = (pixels.astype(np.float32) - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    else:
        mean01 = (np.asarray(mean, np.float64) / 255.0).astype(np.float32)
        std01 = (np.asarray(std, np.float64) / 255.0).astype(np.float32)
        x = (pixels.astype(np.float32) / 255.0 - mean01) / std01
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


class TopDownPoseEstimator:
    """Estimate keypoints inside each detected box.

    Parameters
    ----------
    model : torch.nn.Module
        Maps (B, 3, H, W) normalised crops to (B, K, h, w) heatmaps, or (a SimCC
        model, codec ``simcc``) to a tuple ``(simcc_x, simcc_y)`` of (B, K, Wx)
        and (B, K, Wy) vectors.
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
        if config.precision == "fp16" and not str(device).startswith("cuda"):
            raise ConfigError("pose.precision fp16 runs under CUDA autocast: it needs --device cuda")

    def for_stream(self, threads: int | None = None) -> "TopDownPoseEstimator":
        """Another estimator of the same model for a parallel stream (another thread): an ONNX
        Runtime network gets a session of its own with ``threads`` intra-op threads; a torch
        network is shared (its inference is safe from several threads)."""
        copy = getattr(self.model, "with_threads", None)
        model = self.model if copy is None else copy(threads)
        return TopDownPoseEstimator(model, self.preset, self.config, self.device)

    @property
    def fp16(self) -> bool:
        """Whether the network runs under CUDA fp16 autocast (``precision``; a torch network on a GPU)."""
        return (str(self.device).startswith("cuda") and self.config.precision in ("auto", "fp16")
                and isinstance(self.model, nn.Module))

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
        centers : (N, 2) float64 (float32 for the warps of :data:`FLOAT32_REGION_WARPS`)
        scales : (N, 2) float64 (float32 likewise), width and height
        """
        w, h = self.codec.input_size
        if self.preset.warp in FLOAT32_REGION_WARPS:
            return xyxy_to_center_scale_float32(boxes_xyxy, w / h, self.config.box_padding)
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

    def _average_flipped(self, pred, flipped):
        """The network's output on crops averaged with its output on the mirrored crops.

        Heatmaps (B, K, h, w) are mirrored back along w (and shifted one cell
        right with ``flip_shift``); SimCC vectors as mmpose's ``flip_vectors``:
        the x vectors reversed along their bins, the y vectors unchanged. Both
        then swap left and right keypoints.
        """
        if isinstance(pred, tuple):
            order = swap_pairs(np.arange(pred[0].shape[1]), self.layout.flip_pairs, axis=0)
            index = torch.from_numpy(order).to(pred[0].device)
            (x, y), (flipped_x, flipped_y) = pred, flipped
            return (x + flipped_x[:, index].flip(dims=[-1])) * 0.5, (y + flipped_y[:, index]) * 0.5
        flipped = flipped.flip(dims=[3])
        if self.preset.flip_shift:  # mmpose's shift_heatmap: one cell right
            flipped = torch.cat([flipped[..., :1], flipped[..., :-1]], dim=-1)
        order = swap_pairs(np.arange(pred.shape[1]), self.layout.flip_pairs, axis=0)
        return (pred + flipped[:, torch.from_numpy(order).to(flipped.device)]) / 2

    @torch.inference_mode()
    def outputs(self, crops_bgr: np.ndarray) -> tuple[np.ndarray, ...]:
        """Network outputs for (N, h, w, 3) BGR crops, averaged with the flipped crops if enabled.

        Returns
        -------
        tuple of float32 arrays with N first, what the codec decodes:
        ``(heatmaps,)`` (N, K, h, w) for a heatmap model, ``(simcc_x, simcc_y)``
        (N, K, Wx) and (N, K, Wy) for a SimCC model.
        """
        out = []
        bs = max(1, self.config.batch_size)
        for start in range(0, len(crops_bgr), bs):
            batch = normalize_crops(crops_bgr[start:start + bs], self.preset.mean, self.preset.std,
                                    self.preset.color, self.preset.warp in MMPOSE_WARPS).to(self.device)
            n = len(batch)
            with torch.autocast("cuda", dtype=torch.float16, enabled=self.fp16):
                if self.flip_test:  # the crops and their mirror images in one forward pass
                    both = self.model(torch.cat([batch, torch.flip(batch, dims=[3])]))
                    both = both if isinstance(both, tuple) else (both,)
                    pred = tuple(b[:n].float() for b in both)
                    flipped = tuple(b[n:].float() for b in both)
                    pred = self._average_flipped(pred if len(pred) > 1 else pred[0],
                                                 flipped if len(flipped) > 1 else flipped[0])
                else:
                    pred = self.model(batch)
            out.append(tuple(p.float().cpu().numpy() for p in (pred if isinstance(pred, tuple) else (pred,))))
        return tuple(np.concatenate(parts) for parts in zip(*out))

    def heatmaps(self, crops_bgr: np.ndarray) -> np.ndarray:
        """Network heatmaps (N, K, h, w) float32, averaged with the flipped crop if enabled.

        Raises
        ------
        ValueError
            If the model gives SimCC vectors, not heatmaps (use :meth:`outputs`).
        """
        outputs = self.outputs(crops_bgr)
        if len(outputs) != 1:
            raise ValueError(f"model {self.preset.name} gives {len(outputs)} outputs (SimCC vectors), not heatmaps")
        return outputs[0]

    def __call__(self, frame: np.ndarray, instances: Instances) -> Instances:
        """Return ``instances`` with keypoints and keypoint scores in frame pixels.

        Boxes scoring below ``config.min_box_score`` get keypoints with score 0.
        All boxes of the frame run through the network as one batch.
        """
        return self.estimate_many([(frame, instances)])[0]

    def estimate_many(self, items: list[tuple[np.ndarray, Instances]]) -> list[Instances]:
        """:meth:`__call__` of several frames' ``(frame, instances)``, their boxes' crops through
        the network together (``config.batch_size`` crops a pass): what batching frames
        (``aptrack run --batch-frames``) gives a GPU."""
        k = self.num_keypoints
        jobs = []  # (item, rows, centres, scales, crops, matrices) of each frame with boxes to do
        for n, (frame, instances) in enumerate(items):
            todo = np.flatnonzero(instances.scores >= self.config.min_box_score)
            if len(todo):
                centers, scales = self.regions(instances.boxes_xyxy[todo])
                jobs.append((n, todo, centers, scales, *self._cut(frame, centers, scales)))
        outputs = self.outputs(np.concatenate([job[4] for job in jobs])) if jobs else ()
        results = [(np.zeros((len(inst), k, 2), np.float32), np.zeros((len(inst), k), np.float32))
                   for _, inst in items]
        at = 0
        for n, todo, centers, scales, _, matrices in jobs:
            keypoints, scores = results[n]
            for row, m, c, s in zip(todo, matrices, centers, scales):
                kp_crop, kp_score = self.codec.decode(*(o[at] for o in outputs))
                keypoints[row] = self.to_frame(kp_crop, m, c, s)
                scores[row] = kp_score
                at += 1
        return [inst.with_(keypoints=kp, keypoint_scores=sc) for (_, inst), (kp, sc) in zip(items, results)]
