"""The one error type the tool reports to its user."""


class ToolError(Exception):
    """A failure the user can act on; the message names the model and the file, URL or field."""
