"""A Python stand-in for OpenVINO Model Server, used as a test fixture only."""

__version__ = "0.1.0"
