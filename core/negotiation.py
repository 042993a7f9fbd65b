"""Content negotiation: DRF's, with a shortcut for what almost every request sends."""

from rest_framework.negotiation import DefaultContentNegotiation


class ContentNegotiation(DefaultContentNegotiation):
    """DRF's DefaultContentNegotiation, without its parsing when the answer cannot differ.

    Agents and browsers' fetch send `Accept: */*` (or nothing, or exactly the
    first renderer's type) and no `?format=`: DRF would parse the header and
    pick the first renderer with its own media type every time, at about a
    tenth of a heartbeat's CPU (bench_hotpaths). Anything else goes through
    DRF's negotiation unchanged (a 406 is still a 406).
    """

    def select_renderer(self, request, renderers, format_suffix=None):
        if renderers and not format_suffix and self.settings.URL_FORMAT_OVERRIDE not in request.query_params:
            first = renderers[0]
            accept = request.META.get("HTTP_ACCEPT")
            if not accept or accept == "*/*" or accept == first.media_type:
                return first, first.media_type
        return super().select_renderer(request, renderers, format_suffix)
