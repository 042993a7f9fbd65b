from rest_framework import parsers
from rest_framework.exceptions import ParseError

JSON_TOO_DEEP = "JSON parse error - the document is nested too deeply."


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, but JSON nested deeper than Python's decoder can follow is a 400.

    `json.loads` raises RecursionError rather than ValueError there, which DRF
    does not catch: a few kilobytes of `[[[[…` would otherwise be a 500.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(JSON_TOO_DEEP) from None
