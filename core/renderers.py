from rest_framework import renderers


class JSONRenderer(renderers.JSONRenderer):
    """DRF's JSON renderer, able to answer with text that is not valid Unicode.

    An error message may quote the client's input, and JSON escapes such as
    "\\ud800" decode to lone surrogates that cannot be encoded as UTF-8: DRF's
    renderer would fail with a 500 while refusing the input. Such an answer
    is rendered with every non-ASCII character escaped instead, which is
    valid JSON; everything else stays plain UTF-8.
    """

    def render(self, data, accepted_media_type=None, renderer_context=None):
        try:
            return super().render(data, accepted_media_type, renderer_context)
        except UnicodeEncodeError:
            escaping = renderers.JSONRenderer()
            escaping.ensure_ascii = True
            return escaping.render(data, accepted_media_type, renderer_context)
