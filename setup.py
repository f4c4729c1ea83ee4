"""Build hook: put the project's data files inside the package.

``pipelines/``, ``configs/`` and ``weights/`` at the top level are the copies
users read and edit; a build (``pip install .``, ``pip wheel .``) copies them
into ``aptrack/resources/`` so an installed aptrack finds them without the
source checkout (see ``aptrack/core/resources.py``). Nothing is kept twice in
the repository: ``aptrack/resources/`` exists only in builds.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
DATA = {"pipelines": ("*.yaml",), "configs": ("*/*.yaml",), "weights": ("registry.yaml", "*.pt", "*.onnx", "*.md")}


class build_py_with_resources(build_py):
    def run(self):
        super().run()
        target = Path(self.build_lib) / "aptrack" / "resources"
        shutil.rmtree(target, ignore_errors=True)  # no stale copy from an earlier build
        for folder, patterns in DATA.items():
            for pattern in patterns:
                for src in sorted((ROOT / folder).glob(pattern)):
                    dest = target / src.relative_to(ROOT)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, dest)


setup(cmdclass={"build_py": build_py_with_resources})
