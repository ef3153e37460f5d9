"""Packaging for bareos-libcloud (Bareos file-daemon plugin backing up S3 via libcloud)."""
import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))
ENTRYPOINT = "bareos-fd-libcloud.py"


def _readme():
    path = os.path.join(HERE, "README.md")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return f.read()
    return ""


# The plugin entrypoint is loaded by bareos-fd from its plugin directory, not imported as a
# module, so it is shipped as data; docs point to <prefix>/share/bareos-libcloud/.
data_files = []
if os.path.exists(os.path.join(HERE, ENTRYPOINT)):
    data_files.append(("share/bareos-libcloud", [ENTRYPOINT]))

setup(
    name="bareos-libcloud",
    version="0.1.0",
    description="Bareos file-daemon Python plugin that backs up S3 buckets through Apache libcloud",
    long_description=_readme(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["bareos_libcloud", "bareos_libcloud.*"]),
    python_requires=">=3.10",  # what apache-libcloud 3.9 requires
    install_requires=[
        # 3.9.1: the version the tests run against (docs/install.md, "Which libcloud"); 3.4.x
        # (Debian 12's python3-libcloud) misbehaves. 4.x only once it is tested.
        "apache-libcloud>=3.9.1,<4",
        "python-dateutil",
    ],
    extras_require={
        "test": [
            "pytest",
            "moto[server]",
            "boto3",
            "hypothesis",
            "psutil",
            "fasteners",  # libcloud's LOCAL driver (tests/test_local_provider.py)
        ],
    },
    data_files=data_files,
)
