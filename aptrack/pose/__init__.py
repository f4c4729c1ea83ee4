"""Top-down pose estimation: codecs (encode/decode round trips), affine crops, the estimator."""
