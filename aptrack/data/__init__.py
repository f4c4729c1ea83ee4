"""Keypoint datasets (COCO and Animal-Pose), APTv2 clips, synthetic clips, training augmentation."""
