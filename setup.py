"""The packages: metadata is in setup.cfg. The folders api/ and workers/ install under the project's own names,
bandit_push_api and bandit_push_workers (with their subpackages), not as top-level ``api`` and ``workers``."""
from setuptools import find_packages, setup

RENAMED = {"api": "bandit_push_api", "workers": "bandit_push_workers"}

setup(
    packages=find_packages(include=["bandit_push", "bandit_push.*"])
    + [RENAMED[p.split(".")[0]] + p[len(p.split(".")[0]):]
       for p in find_packages(include=[f"{folder}{tail}" for folder in RENAMED for tail in ("", ".*")])],
    package_dir={name: folder for folder, name in RENAMED.items()},
)
