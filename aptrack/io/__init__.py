"""Frames in and results out: video reader/writer, images, result writers, annotators,
and the threads that overlap them with the networks."""
