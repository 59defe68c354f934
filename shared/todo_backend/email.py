"""Email through the Dapr sidecar's output binding of type bindings.smtp, and whether the channel is on.

The adapter speaks the Dapr bindings HTTP API: POST /v1.0/bindings/<name> with
{"operation": "create", "data": <HTML body>, "metadata": {"emailTo", "subject"[, "emailFrom"]}}. The
binding sends `data` as the text/html body; the SMTP server, credentials and (unless NOTIFICATION_EMAIL_FROM
is set) the sender live in the component, not here.

Recipients: users are known only by their JWT `sub`. A reminder is emailed only when that `sub` is itself
an email address (identity providers that use addresses as subjects); for any other user the channel
does nothing. No address is ever looked up or guessed. The token's issuer vouches for the `sub`: a
deployment whose subjects are addresses its users need not control should leave email off.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import httpx

from todo_backend.settings import Settings, get_settings

log = logging.getLogger(__name__)

SIDECAR = "127.0.0.1"  # the Dapr sidecar shares the pod's network namespace
SEND_TIMEOUT_SECONDS = 10.0  # the sidecar answers once the SMTP server has accepted (or refused) the mail

# One plain addr-spec: no display name, comments or quoting, and none of the separators a binding could
# read as a second recipient (the smtp binding splits emailTo on ";").
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_ADDRESS = re.compile(rf"[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]+@{_LABEL}(?:\.{_LABEL})+")


class EmailNotSent(Exception):
    """The binding did not send the email; the message says why."""


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    html: str


def recipient(user_id: str) -> str | None:
    """The address to email `user_id` at: the user id itself when it is an email address, else None."""
    if len(user_id) <= 254 and _ADDRESS.fullmatch(user_id):
        return user_id
    return None


class DaprSmtpBinding:
    """An output binding of type bindings.smtp, invoked through the sidecar's HTTP API."""

    def __init__(self, binding: str, port: int, sender: str | None = None) -> None:
        self.binding = binding
        self.base_url = f"http://{SIDECAR}:{port}"
        self.sender = sender

    @property
    def url(self) -> str:
        return f"{self.base_url}/v1.0/bindings/{self.binding}"

    def request_body(self, email: Email) -> dict[str, Any]:
        """The binding request: metadata values are strings, and the names are the smtp binding's own."""
        metadata = {"emailTo": email.to, "subject": email.subject}
        if self.sender:
            metadata["emailFrom"] = self.sender
        return {"operation": "create", "data": email.html, "metadata": metadata}

    async def send(self, email: Email) -> None:
        """Send one email; EmailNotSent if the sidecar cannot be reached or the binding fails."""
        try:
            # trust_env=False: a proxy from the environment must not carry a call to the sidecar.
            async with httpx.AsyncClient(timeout=SEND_TIMEOUT_SECONDS, trust_env=False) as client:
                response = await client.post(self.url, json=self.request_body(email))
        except httpx.HTTPError as exc:  # not up yet, or gone: a transient failure like any other
            raise EmailNotSent(f"the Dapr sidecar at {self.base_url} did not answer: {exc!r}") from exc
        if not response.is_success:  # 200 or 204 from the sidecar; it answers 500 for the binding's errors
            status, text = response.status_code, response.text[:300]
            raise EmailNotSent(f"binding {self.binding} answered HTTP {status}: {text}")


def open_channel(settings: Settings) -> DaprSmtpBinding | None:
    """The email channel the settings ask for; says which, once, in the log.

    The settings alone decide: a sidecar that is not up yet (a pod just woken from zero) makes a send
    fail, which is retried, and never turns the channel off.
    """
    if settings.notification_email == "off":
        log.info("reminder emails are off (NOTIFICATION_EMAIL=off): notifications are in-app only")
        return None
    binding = DaprSmtpBinding(
        settings.notification_email_binding, settings.dapr_http_port, settings.notification_email_from
    )
    log.info("reminder emails go through the Dapr binding %s at %s", binding.binding, binding.base_url)
    return binding


# The process's channel, decided on first use: nothing is read or logged at import time.
_channel: list[DaprSmtpBinding | None] = []


def email_channel() -> DaprSmtpBinding | None:
    if not _channel:
        _channel.append(open_channel(get_settings()))
    return _channel[0]
