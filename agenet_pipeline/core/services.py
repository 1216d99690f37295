"""Network services the pipeline talks to (a Celery broker, an MLflow server): refused at once when unreachable,
with the service and its address, instead of a client's retries for minutes."""

import socket
from urllib.parse import urlsplit

DEFAULT_PORTS = {
    "postgresql": 5432,
    "redis": 6379,
    "rediss": 6379,
    "http": 80,
    "https": 443,
    "amqp": 5672,
    "pyamqp": 5672,
}


class ServiceUnreachable(ConnectionError):
    """A service that accepts no connection at its address."""


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "localhost", parts.port or DEFAULT_PORTS.get(parts.scheme, 0)


def require_reachable(service: str, url: str, timeout: float = 10) -> None:
    """Raise ServiceUnreachable unless `url`'s host accepts a TCP connection within `timeout` seconds."""
    host, port = address(url)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as error:
        raise ServiceUnreachable(f"{service} at {host}:{port} is unreachable: {error}") from error
