"""The base every other part builds on: :class:`Instances`, box conversions, keypoint
layouts, the one OKS, errors and atomic writes, YAML configs, resource files and
the weight registry. Imports nothing else of aptrack."""
