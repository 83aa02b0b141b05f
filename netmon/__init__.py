"""netmon: is the Wi-Fi of each public health facility fully functional — why not, since when."""

__version__ = "0.1.0"
