"""Fetch the models of a catalog and build an OVMS model repository with a checksum manifest."""

from ovms_models_tool.errors import ToolError

__all__ = ["ToolError"]
