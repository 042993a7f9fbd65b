"""Ask a tenant's AI server which models it has: the Ollama and OpenAI-compatible protocol.

The request itself goes through core.guarded_fetch (URL syntax, the address
policy, a pinned connection under one deadline), with the AI probe's policy:
private LAN addresses allowed, loopback only under AI_PROBE_ALLOW_LOOPBACK.
This module adds what is the AI server's: which paths to ask, in which order,
at most MAX_RESPONSE_BYTES of each answer, and what counts as a model list.
"""

import http.client
import json
import logging
import ssl
from dataclasses import dataclass, field

from django.conf import settings

from core import guarded_fetch

logger = logging.getLogger(__name__)

# One deadline for the whole probe; tests may lower it.
PROBE_DEADLINE_SECONDS = 5.0
MAX_RESPONSE_BYTES = 1024 * 1024
USER_AGENT = "Haltless-AI-Probe/1.0"
PEER = "AI server"  # how the guarded fetch's messages name the other end
_MODEL_NAME_MAX = 256


class ProbeFailed(Exception):
    """The server could not be reached or gave no usable model list.

    The message is the reason, for the server's log only; `origin` is what the
    API may name.
    """

    def __init__(self, reason: str, origin: str = ""):
        super().__init__(reason)
        self.origin = origin


class _Unusable(Exception):
    """An HTTP answer that is not the model list asked for: try the next kind of server."""


@dataclass(frozen=True)
class ProbeResult:
    provider_type: str  # "ollama" or "openai"
    models: list[dict] = field(default_factory=list)


def policy(*, allow_loopback: bool | None = None) -> guarded_fetch.Policy:
    """The AI probe's address policy: loopback as the operator set it (AI_PROBE_ALLOW_LOOPBACK)."""
    if allow_loopback is None:
        allow_loopback = settings.AI_PROBE_ALLOW_LOOPBACK
    return guarded_fetch.Policy(peer=PEER, allow_loopback=allow_loopback)


def parse_url(url: str) -> guarded_fetch.Target:
    """The URL's parts, checked (no DNS). Raises guarded_fetch.UrlRefused."""
    return guarded_fetch.parse_url(url, peer=PEER)


def validate_saved_url(url: str, *, allow_loopback: bool | None = None) -> str:
    """Check a URL about to be saved: syntax, and IP literals or localhost names (no DNS).

    Returns the URL stripped of surrounding space. Raises guarded_fetch.UrlRefused.
    """
    return guarded_fetch.check_saved_url(url, policy=policy(allow_loopback=allow_loopback))


# --- One request --------------------------------------------------------------------


@dataclass
class _Answer:
    status: int
    body: bytes


def _get(target, addresses, path: str, deadline, api_key: str | None) -> _Answer:
    headers = {"Accept": "application/json", "User-Agent": USER_AGENT, "Connection": "close"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    with guarded_fetch.pinned_connection(target, addresses, deadline, peer=PEER) as conn:
        conn.request("GET", path or "/", headers=headers)
        response = conn.getresponse()
        if not 200 <= response.status < 300:
            return _Answer(response.status, b"")
        try:
            return _Answer(response.status, guarded_fetch.read_limited(response, MAX_RESPONSE_BYTES))
        except guarded_fetch.BodyTooLarge:
            raise ProbeFailed(
                f"The AI server's answer is larger than {MAX_RESPONSE_BYTES // 1024} KiB; it is not a model list."
            ) from None


# --- The model lists ----------------------------------------------------------------


def _json(body: bytes):
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _Unusable("the answer is not JSON") from None


def _valid_name(value) -> bool:
    return isinstance(value, str) and 0 < len(value) <= _MODEL_NAME_MAX and value.isprintable()


def _model_items(body: bytes, *, list_key: str, name_key: str, refusal: str) -> list[dict]:
    """The objects listed under `list_key` of a JSON answer, each with a valid name under `name_key`."""
    data = _json(body)
    items = data.get(list_key) if isinstance(data, dict) else None
    if not isinstance(items, list) or not all(
        isinstance(item, dict) and _valid_name(item.get(name_key)) for item in items
    ):
        raise _Unusable(refusal)
    return items


def _parse_ollama(body: bytes) -> list[dict]:
    items = _model_items(body, list_key="models", name_key="name", refusal="the answer is not an Ollama model list")
    models = []
    for item in items:
        model = {"name": item["name"]}
        if isinstance(item.get("size"), int) and not isinstance(item["size"], bool):
            model["size"] = item["size"]
        if isinstance(item.get("modified_at"), str) and len(item["modified_at"]) <= 64:
            model["modified_at"] = item["modified_at"]
        models.append(model)
    return models


def _parse_openai(body: bytes) -> list[dict]:
    items = _model_items(
        body, list_key="data", name_key="id", refusal="the answer is not an OpenAI-compatible model list"
    )
    models = []
    for item in items:
        model = {"name": item["id"]}
        if _valid_name(item.get("owned_by")):
            model["owned_by"] = item["owned_by"]
        models.append(model)
    return models


_PARSERS = {"ollama": _parse_ollama, "openai": _parse_openai}


def _candidates(base_path: str) -> list[tuple[str, str]]:
    """Which kinds of server to ask, in order, and where their model list is."""
    if base_path.endswith("/v1"):
        return [("openai", f"{base_path}/models")]
    return [("ollama", f"{base_path}/api/tags"), ("openai", f"{base_path}/v1/models")]


def _ask(target, addresses, provider_type: str, path: str, deadline, api_key) -> list[dict]:
    answer = _get(target, addresses, path, deadline, api_key)
    if 300 <= answer.status < 400:
        raise _Unusable(f"HTTP {answer.status}: redirects are not followed")
    if not 200 <= answer.status < 300:
        raise _Unusable(f"HTTP {answer.status}")
    return _PARSERS[provider_type](answer.body)


def probe_models(url: str, *, api_key: str | None = None, allow_loopback: bool | None = None) -> ProbeResult:
    """Ask the server at `url` for its models: Ollama first, then OpenAI-compatible.

    Raises guarded_fetch.UrlRefused (the URL is not allowed; AddressRefused: an
    address is not) or ProbeFailed (unreachable, too slow, too large, or no model
    list). Error details never echo the server's answer, so the probe cannot be
    used to read other services.
    """
    rules = policy(allow_loopback=allow_loopback)
    target = parse_url(url)
    try:
        return _probe(target, api_key=api_key, rules=rules)
    except (ProbeFailed, guarded_fetch.FetchFailed) as exc:
        raise ProbeFailed(str(exc), origin=target.origin) from None
    except guarded_fetch.UrlRefused:
        raise
    except Exception as exc:  # anything else a hostile server provokes is a failure too, not a 500
        logger.exception("AI probe of %s failed unexpectedly", target.origin)
        raise ProbeFailed(f"unexpected {type(exc).__name__}", origin=target.origin) from None


def _probe(target: guarded_fetch.Target, *, api_key: str | None, rules: guarded_fetch.Policy) -> ProbeResult:
    deadline = guarded_fetch.Deadline(PROBE_DEADLINE_SECONDS)
    unusable: list[str] = []
    try:
        addresses = guarded_fetch.resolve_checked(target, deadline, policy=rules)
        for provider_type, path in _candidates(target.base_path):
            try:
                models = _ask(target, addresses, provider_type, path, deadline, api_key)
            except _Unusable as exc:
                unusable.append(f"{path}: {exc}")
                continue
            logger.info("AI probe of %s found %d %s models", target.origin, len(models), provider_type)
            return ProbeResult(provider_type=provider_type, models=models)
    except (guarded_fetch.DeadlinePassed, TimeoutError):
        raise ProbeFailed(
            f"The AI server at {target.origin} did not answer within {deadline.seconds:g} seconds."
        ) from None
    except ssl.SSLCertVerificationError as exc:
        raise ProbeFailed(
            f"The TLS certificate of {target.origin} could not be verified: {exc.verify_message}."
        ) from None
    except ssl.SSLError:
        raise ProbeFailed(f"The TLS handshake with {target.origin} failed.") from None
    except (http.client.HTTPException, ConnectionError):
        raise ProbeFailed(f"The AI server at {target.origin} did not give a valid HTTP answer.") from None
    except OSError as exc:
        raise ProbeFailed(f"The connection to {target.origin} failed: {exc.strerror or exc}.") from None
    raise ProbeFailed(
        f"{target.origin}{target.base_path} is not an Ollama or OpenAI-compatible server ({'; '.join(unusable)})."
    )
