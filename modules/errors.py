"""Domain errors whose message is shown to the user as is."""


class UserError(Exception):
    """A problem the user can act on (bad input, missing file). The UI and API show its message."""


class ModelLoadError(UserError):
    """A checkpoint could not be found, read or recognised."""


class UnlistedJobCheckpoint(ModelLoadError):
    """A job's hires fix or refiner checkpoint is not a listed one; `field` names the parameter."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class OutOfMemory(UserError):
    """A job ran out of memory (device or RAM); the engine freed what it could and runs the next job."""


class DiskFull(UserError):
    """A file could not be written because its disk is full; the message names the file."""
