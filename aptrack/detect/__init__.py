"""The animal detector: Ultralytics YOLO with the COCO animal classes merged."""
