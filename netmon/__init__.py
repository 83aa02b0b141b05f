"""netmon: is the Wi-Fi of each public health facility fully functional — why not, since when."""

from importlib.metadata import PackageNotFoundError, version

try:
    # The one place the version is read: pyproject.toml's, through the installed metadata
    # (--version, the API's OpenAPI and /healthz, and the netmon_info metric all use this).
    __version__ = version("netmon")
except PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0+unknown"
