"""stackmedic: the exporter, the receiver and the job programs; this folder holds what they share.

`stackmedic.exporter`, `stackmedic.receiver` and `stackmedic.jobs` are the top-level folders
`exporter/`, `receiver/` and `jobs/` of the checkout, mapped here at install (pyproject.toml).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("stackmedic")
except PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "0.0.0+unknown"
