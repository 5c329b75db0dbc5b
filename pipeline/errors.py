"""User-facing errors: one sentence, no traceback, no patient-level values, no local paths."""


class PipelineError(Exception):
    """A problem with the user's input or configuration. The CLI prints it and exits with status 2."""
