"""Build script: declares and cythonizes the C extensions only (metadata is in pyproject.toml).

Set EXI_CODEC_NO_EXT=1 to build without them; the pure-Python twin is then used.
"""

import os

from setuptools import setup

ext_modules = []
if not os.environ.get("EXI_CODEC_NO_EXT"):
    from Cython.Build import cythonize
    from setuptools import Extension

    ext_modules = cythonize(
        [Extension("exi_codec._engine_c", ["exi_codec/_engine_c.pyx"])],
        compiler_directives={
            "language_level": "3",
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
        },
    )

setup(ext_modules=ext_modules)
