"""The Dapr SMTP binding adapter's request, and who gets an email at all."""

from __future__ import annotations

import pytest

from todo_backend.email import DaprSmtpBinding, Email, recipient
from todo_backend.settings import Settings


@pytest.mark.parametrize(
    "user_id", ["ada@example.com", "Ada.Lovelace+todo@mail.example.co.uk", "o'brien@example.ie"]
)
def test_a_user_whose_id_is_an_email_address_is_emailed_there(user_id: str) -> None:
    assert recipient(user_id) == user_id


@pytest.mark.parametrize(
    "user_id",
    [
        "user-7f3c",  # an opaque subject: no address to send to
        "auth0|1234",
        "ada@localhost",  # no dot in the domain
        "ada@example.com;eve@example.com",  # the binding would read two recipients
        "ada@example.com,eve@example.com",
        "Ada <ada@example.com>",
        "ada@example.com\r\nBcc: eve@example.com",
        "ada@@example.com",
        " ada@example.com",
        "a" * 250 + "@example.com",  # longer than an address may be
        "",
    ],
)
def test_any_other_user_id_gets_no_email(user_id: str) -> None:
    assert recipient(user_id) is None


def test_the_request_is_a_create_with_the_html_as_data_and_the_smtp_bindings_metadata_names() -> None:
    binding = DaprSmtpBinding("email-smtp", 3511, sender="reminders@todo.example")
    email = Email("ada@example.com", "Reminder: Tax", "<p>Tax</p>")
    assert binding.url == "http://127.0.0.1:3511/v1.0/bindings/email-smtp"
    assert binding.request_body(email) == {
        "operation": "create",
        "data": "<p>Tax</p>",
        "metadata": {
            "emailTo": "ada@example.com",
            "subject": "Reminder: Tax",
            "emailFrom": "reminders@todo.example",
        },
    }


def test_without_a_configured_sender_the_components_emailfrom_applies() -> None:
    body = DaprSmtpBinding("email-smtp", 3500).request_body(Email("ada@example.com", "s", "b"))
    assert "emailFrom" not in body["metadata"]
    assert all(isinstance(v, str) for v in body["metadata"].values())  # Dapr's metadata is map[string]string


def test_email_is_off_unless_a_deployment_turns_it_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFICATION_EMAIL", raising=False)
    monkeypatch.delenv("DAPR_HTTP_PORT", raising=False)
    settings = Settings(database_url="postgresql://x/y", jwt_secret="s" * 40)
    assert settings.notification_email == "off"
    assert (settings.notification_email_binding, settings.dapr_http_port) == ("email-smtp", 3500)
    monkeypatch.setenv("NOTIFICATION_EMAIL", "dapr")
    monkeypatch.setenv("DAPR_HTTP_PORT", "3600")
    on = Settings(database_url="postgresql://x/y", jwt_secret="s" * 40)
    assert (on.notification_email, on.dapr_http_port) == ("dapr", 3600)
