"""Errors raised for bad user input.

Every error caused by a user's file or setting is an `InputError`: the CLI turns it into a one-line message
and exit code 2, never a traceback. Programming errors stay ordinary exceptions.
"""


class InputError(ValueError):
    """A problem with a user-supplied file or setting.

    Args:
        source: str or path. The file, case or option at fault; printed first.
        problem: str. What is wrong, in one line.

    Example:
    >>> str(InputError("case_001.nii.gz", "image is 4D, expected 3D"))
    'case_001.nii.gz: image is 4D, expected 3D'
    """

    def __init__(self, source, problem):
        self.source = str(source)
        self.problem = str(problem)
        super().__init__(f"{self.source}: {self.problem}")


class TrainingError(RuntimeError):
    """Training stopped for a reason other than bad input (e.g. the loss became NaN or infinite).

    The message says what happened and which checkpoint is the last good one.
    """
