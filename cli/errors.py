"""Turning library errors into one-line CLI errors with exit code 2."""

import functools

import click


class CdsegError(click.ClickException):
    """A user-facing error: printed as `Error: <message>`, exit code 2, no traceback."""

    exit_code = 2


def user_errors(fn):
    """Decorator for command functions: library `InputError`s (and missing files) become `CdsegError`."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from keras_cdseg.errors import InputError, TrainingError

        try:
            return fn(*args, **kwargs)
        except InputError as e:
            raise CdsegError(str(e)) from None
        except TrainingError as e:
            error = click.ClickException(str(e))
            error.exit_code = 1
            raise error from None
        except FileNotFoundError as e:
            raise CdsegError(f"{e.filename}: file not found") from None
        except KeyboardInterrupt:
            raise click.Abort() from None

    return wrapper
