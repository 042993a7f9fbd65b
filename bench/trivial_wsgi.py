"""The load test's ceiling: a WSGI app that answers a fixed JSON body, with no Django and no database.

Served by the same gunicorn configuration as the real app, it measures what
the stack itself (load generator, loopback TCP, gunicorn's sync workers) can
carry on this machine, so the endpoints' figures can be read as a share of it.
"""

BODY = b'{"status": "ok"}'
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
