"""What people read, in their language and time zone: the few phrases the system says, in English and
German, with dates, times and durations formatted by Babel from CLDR's data for the user's locale."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from functools import lru_cache

from babel import Locale, UnknownLocaleError
from babel.dates import format_datetime, format_skeleton, format_time, format_timedelta, get_timezone

# The languages the phrases below are written in; any region of them formats as CLDR says (de-CH...).
LANGUAGES = ("en", "de")

_PHRASES: dict[str, dict[str, str]] = {
    "en": {
        "due": "Due {when} ({distance})",
        "due_now": "Due now ({when})",
        "overdue": "Overdue: was due {when} ({distance})",
        "reminder_subject": "Reminder: {title}",
        "assigned": "{actor} assigned this task to you",
        "added": "{actor} added you to this project as {role}",
    },
    "de": {
        "due": "Fällig {when} ({distance})",
        "due_now": "Jetzt fällig ({when})",
        "overdue": "Überfällig: war fällig {when} ({distance})",
        "reminder_subject": "Erinnerung: {title}",
        "assigned": "{actor} hat dir diese Aufgabe zugewiesen",
        "added": "{actor} hat dich diesem Projekt als {role} hinzugefügt",
    },
}
# The project roles as a German speaker reads them (English says the API's own names).
_ROLES = {"de": {"viewer": "Betrachter", "editor": "Bearbeiter", "admin": "Admin", "owner": "Eigentümer"}}


# language[-Script][-REGION]: the BCP 47 subtags CLDR's data is keyed by, and nothing Babel's POSIX
# parsing would also take (`de.UTF-8`, `de@euro`), which would be stored as sent.
_TAG = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z]{4})?(-([A-Za-z]{2}|[0-9]{3}))?")


def locale_tag(value: str) -> str:
    """A BCP 47 tag of a supported language (`de`, `en-GB`), as CLDR spells it; ValueError otherwise."""
    parsed = None
    if _TAG.fullmatch(value.strip()):
        try:
            parsed = Locale.parse(value.strip(), sep="-")
        except (UnknownLocaleError, ValueError, TypeError):
            pass
    if parsed is None or parsed.language not in LANGUAGES:
        raise ValueError(f"not a supported locale; supported: {', '.join(LANGUAGES)} (with a region or not)")
    return str(parsed).replace("_", "-")


@lru_cache(maxsize=64)
def _locale(tag: str) -> Locale:
    return Locale.parse(tag, sep="-")


def say(phrase: str, tag: str, **values: str) -> str:
    """One of the phrases, in the locale's language."""
    return _PHRASES[_locale(tag).language][phrase].format(**values)


def role_name(role: str, tag: str) -> str:
    return _ROLES.get(_locale(tag).language, {}).get(role, role)


def moment(when: datetime, zone: str, tag: str) -> str:
    """An instant as the locale writes a date and a time, on the zone's clock, with the zone's name."""
    locale, tzinfo = _locale(tag), get_timezone(zone)
    date = format_skeleton("yMMMEd", when, tzinfo=tzinfo, locale=locale)
    time = format_time(when, "short", tzinfo=tzinfo, locale=locale)
    both = str(locale.datetime_formats["medium"]).format(time, date)
    return f"{both} {format_datetime(when, 'z', tzinfo=tzinfo, locale=locale)}"


def due_text(due_at: datetime, sent_at: datetime, zone: str, tag: str) -> str:
    """When a task is due, and how far off that was when its reminder went out: `Due Sat, Jun 1, 2030,
    12:00 PM UTC (in 2 hours)`; within half a minute, due now."""
    when = moment(due_at, zone, tag)
    ahead = due_at - sent_at
    if abs(ahead) < timedelta(seconds=30):
        return say("due_now", tag, when=when)
    distance = format_timedelta(ahead, add_direction=True, locale=_locale(tag))
    return say("due" if ahead > timedelta(0) else "overdue", tag, when=when, distance=distance)
