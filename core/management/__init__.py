"""Helpers shared by the management commands of every app."""

from django.core.exceptions import ValidationError


def one_line_error(exc: ValidationError) -> str:
    """A ValidationError as one line, for a command's error output."""
    if hasattr(exc, "message_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
    return " ".join(exc.messages)
