"""Text a client sent, as the database sees it."""


def storable_text(text: str) -> bool:
    """Whether PostgreSQL can take the text: no NUL, and encodable as UTF-8 (no lone surrogate)."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
