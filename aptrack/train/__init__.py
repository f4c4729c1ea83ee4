"""``aptrack train``: the top-down heatmap trainer and its configs."""
