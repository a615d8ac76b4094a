"""The config file, validated once at start-up into typed objects.

Every key has one home here. Unknown keys are errors (a typo must not silently switch a feature
off), and an error names the key path (``sources[2].token: missing``). A secret may be written as
``env:NAME`` and is then read from the environment.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from datetime import date, time
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

DEFAULT_CONFIG = "config.toml"
CONFIG_ENV = "LEADLINE_CONFIG"


class ProviderRules(Protocol):
    """What the config checks of a source's provider. The providers are capture's registry
    (``capture.providers.PROVIDERS``), which the composition root passes in: this module imports
    nothing of Leadline's."""

    @property
    def secrets(self) -> tuple[str, ...]:
        """The keys the provider cannot work without; ``"a|b"`` is either."""

    @property
    def over_http(self) -> bool:
        """False for a source Leadline connects to or listens for itself: no request of its can carry
        a token, and only an SMTP peer has an address (a firewall guards that port)."""

    @property
    def dial(self) -> tuple[str, ...]:
        """The keys a source needs to call a client back through the PBX; empty when it cannot."""

    @property
    def appends_paths(self) -> tuple[str, ...]:
        """The paths the provider appends after the URL it is given; empty when it posts to the URL."""


class ConfigError(Exception):
    """The config cannot be used; ``problems`` lists each as ``key.path: what is wrong``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class MissingEnv(ValueError):
    pass


def _resolve_env(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("env:"):
        name = value[4:]
        if name not in os.environ:
            raise MissingEnv(f"environment variable {name} is not set")
        return os.environ[name]
    return value


def _resolve_env_optional(value: Any) -> Any:
    """For keys where an unset variable means 'off' (the Telegram token)."""
    if isinstance(value, str) and value.startswith("env:"):
        return os.environ.get(value[4:], "")
    return value


Secret = Annotated[SecretStr, BeforeValidator(_resolve_env)]
OptionalSecret = Annotated[SecretStr, BeforeValidator(_resolve_env_optional)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_region(value: str) -> str:
    value = value.upper()
    if value not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown phone region {value!r} (use a two-letter country code such as RU)")
    return value


Region = Annotated[str, BeforeValidator(lambda v: _check_region(str(v)))]


def _network(value: Any) -> IPv4Network | IPv6Network:
    if not isinstance(value, str):
        raise ValueError(f'write an address or a network as a string, e.g. "203.0.113.0/24", not {value!r}')
    try:
        return ip_network(value.strip())
    except ValueError as exc:
        try:
            loose = ip_network(value.strip(), strict=False)
        except ValueError:
            raise ValueError(f"{value!r} is not an IPv4 or IPv6 address or network (CIDR)") from exc
        raise ValueError(f"{value!r} has bits set after the prefix: write the network as {loose}") from exc


#: An address (``203.0.113.7``, a network of one) or a CIDR network (``203.0.113.0/24``, ``2001:db8::/32``).
Network = Annotated[IPv4Network | IPv6Network, BeforeValidator(_network)]


def _providers(info: ValidationInfo) -> Mapping[str, ProviderRules]:
    """The providers :func:`parse_config` was given."""
    providers: Mapping[str, ProviderRules] | None = (info.context or {}).get("providers")
    if providers is None:
        raise TypeError("validate a config through parse_config or load_config, which take the providers")
    return providers


class LeadlineSection(Strict):
    database: str = "leadline.db"
    timezone: str = "Europe/Moscow"
    region: Region = "RU"
    language: Literal["ru", "en"] = "ru"
    #: ISO 4217 code of the money the costs and deals are in: the digest, its chart and the exports
    #: write amounts in it (``45 000 ₽``, ``$45,000``).
    currency: str = "RUB"

    @field_validator("database")
    @classmethod
    def _database(cls, value: str) -> str:
        """An empty path is the config's folder, and one ending in a slash names a folder: SQLite
        cannot open either, and serve stopped at start with a traceback."""
        if not value.strip():
            raise ValueError("empty: name the database file, e.g. leadline.db")
        if value.rstrip().endswith(("/", os.sep)):
            raise ValueError(
                f"{value!r} names a folder: name the file in it, e.g. {value.rstrip()}leadline.db"
            )
        return value

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        code = value.strip().upper()
        if not re.fullmatch(r"[A-Z]{3}", code):
            raise ValueError(f"write the currency as a three-letter ISO 4217 code such as RUB, not {value!r}")
        return code

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class HttpSection(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    public_url: str = "http://127.0.0.1:8080"
    max_body_bytes: int = Field(1024 * 1024, gt=0)
    #: Processes answering webhooks on the one port (SO_REUSEPORT). The first also runs the bot,
    #: the scheduler and the mail and AMI sources; the others only capture and serve the API.
    workers: int = Field(1, ge=1, le=32)
    #: Reverse proxies whose X-Forwarded-For is believed when a source checks ``allow_ips``.
    trusted_proxies: list[Network] = []

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        """Every address to paste is built on it, and Twilio signs the URL it calls: without its
        scheme, each signed Twilio request was refused (401). Empty stays allowed, as before."""
        url = value.strip().rstrip("/")
        if url and not re.match(r"https?://[^/\s]+", url):
            raise ValueError(
                f"write the address providers see as http(s)://host, e.g. https://hooks.example.com, not {value!r}"
            )
        return url


def _numeric_id(value: Any, needs: str) -> Any:
    """A Telegram id written as a string: its digits are the id; a name (``@mysales``) is not one, and
    the Bot API cannot turn it into one for a private group, so say what Telegram needs instead of
    pydantic's "unable to parse string as an integer"."""
    if not isinstance(value, str):
        return value
    if re.fullmatch(r"-?\d+", value.strip()):
        return int(value.strip())
    raise ValueError(f"Telegram needs {needs.format(value=repr(value))}")


class TelegramSection(Strict):
    token: OptionalSecret = SecretStr("")
    api_url: str = ""
    team_chat: int = 0
    webhook_url: str = ""
    webhook_secret: OptionalSecret = SecretStr("")
    #: aiogram's timeout for each Bot API call (set on the bot's session). Shorter than
    #: ``stop_wait_seconds``, so every send in flight at a stop is answered or times out in time.
    request_timeout_seconds: float = Field(10.0, gt=0)
    #: How long a stop waits for the sends in flight. After up to 60 s for HTTP requests (aiohttp's
    #: shutdown timeout) and before up to 10 s for the last writes: 85 s within systemd's
    #: ``TimeoutStopSec=90`` (README).
    stop_wait_seconds: float = Field(15.0, gt=0)

    @field_validator("token")
    @classmethod
    def _token(cls, value: SecretStr) -> SecretStr:
        """aiogram's own rule (``aiogram.utils.token.validate_token``), written out: importing that
        module imports the whole of aiogram (some 700 modules, seconds on a small machine), which a
        worker or a ``leadline report`` that only reads the config must not pay for."""
        token = value.get_secret_value()
        if token and not re.fullmatch(r"[0-9]+:\S+", token):
            raise ValueError(
                "not a bot token: write it as @BotFather gives it, the bot's id, a colon and the"
                " secret (123456789:AAE…), with no spaces; empty switches the bot off"
            )
        return value

    @field_validator("team_chat", mode="before")
    @classmethod
    def _team_chat(cls, value: Any) -> Any:
        return _numeric_id(
            value,
            "the group's numeric chat id, not {value}: a group's is negative, e.g. -1001234567890"
            " (docs/bot.md says how to find it); 0: no team chat",
        )

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str) -> str:
        """Telegram posts to this address, and the bot's handler is mounted at its path."""
        if value and not re.match(r"https?://[^/\s]+", value):
            raise ValueError(
                "write the address Telegram posts to as https://host/path, e.g."
                " https://hooks.example.com/telegram/webhook; empty: long polling"
            )
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr) -> SecretStr:
        """The Bot API refuses any other ``secret_token`` in ``setWebhook``, on every retry: the bot
        would start and never receive an update, with only a repeating warning to show for it."""
        secret = value.get_secret_value()
        if secret and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise ValueError(
                "Telegram accepts only 1 to 256 of the letters A-Z and a-z, the digits 0-9, _ and -"
                " in a webhook secret; empty: derived from the token"
            )
        return value

    @model_validator(mode="after")
    def _timeouts(self) -> TelegramSection:
        if self.request_timeout_seconds >= self.stop_wait_seconds:
            raise ValueError(
                "request_timeout_seconds must be shorter than stop_wait_seconds, or a stop cuts off"
                " sends Telegram may still be answering"
            )
        return self


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: As the end of working hours, the midnight that ends the day: ``24:00`` in the config.
MIDNIGHT = time(0, 0)


def _end_of_hours(hour: int, minute: int) -> time:
    """``24:00`` is the end of the day (``00:00-24:00`` is round the clock); other times as written."""
    if (hour, minute) == (24, 0):
        return MIDNIGHT
    return time(hour, minute)


class HoursSection(Strict):
    """Days of the week and hours on the office clock: the office's working time, or one person's shift."""

    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = ["mon", "tue", "wed", "thu", "fri"]
    hours: str = "09:00-18:00"

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        match = re.fullmatch(r"(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})", value.strip())
        if not match:
            raise ValueError("write hours as HH:MM-HH:MM, e.g. 09:00-18:00 (00:00-24:00 round the clock)")
        try:
            start = time(int(match[1]), int(match[2]))
            end = _end_of_hours(int(match[3]), int(match[4]))
        except ValueError as exc:
            raise ValueError(f"{exc}: write hours as HH:MM-HH:MM, e.g. 09:00-18:00") from None
        if end != MIDNIGHT and end <= start:
            raise ValueError("the end of working hours must come after the start")
        return value.strip()

    @property
    def start_end(self) -> tuple[time, time]:
        """Start and end on the office clock; an end of 00:00 is the midnight that ends the day."""
        start, end = self.hours.split("-")
        end_hour, end_minute = end.split(":")
        return time.fromisoformat(start.zfill(5)), _end_of_hours(int(end_hour), int(end_minute))

    @property
    def weekdays(self) -> frozenset[int]:
        return frozenset(_DAYS.index(d) for d in self.days)


class WorkingTimeSection(HoursSection):
    holidays: str = "RU"
    extra_holidays: list[date] = []

    @field_validator("days")
    @classmethod
    def _some_days(cls, value: list[str]) -> list[str]:
        """Said here, under its own key: the calendar refused it too, but its words were filed
        under ``working_time.holidays``. A staff shift (HoursSection) is not the office's week."""
        if not value:
            raise ValueError(
                'empty: there would be no working time at all; list the working days, e.g. ["mon", "tue",'
                ' "wed", "thu", "fri"]'
            )
        return value


class SlaSection(Strict):
    registration_minutes: int = Field(15, gt=0)
    callback_minutes: int = Field(30, gt=0)
    escalation_minutes: int = Field(60, gt=0)
    callback_outside_hours: bool = False
    #: "Can't reach" asks again after ``callback_retry_minutes`` (working time), up to this many tries.
    callback_tries: int = Field(3, gt=0)
    callback_retry_minutes: int = Field(60, gt=0)
    #: A lead with no change for this many days (and no follow-up date ahead) is nudged as stale.
    stale_days: int = Field(7, gt=0)


class NotifySection(Strict):
    """Cards on arrival: the moment a new inbound touch is stored, its card goes to whoever answers it."""

    #: False is the behaviour before cards on arrival: the first message is the nudge after the SLA.
    on_arrival: bool = True
    #: A form, a letter or an answered call outside working time: ``hold`` sends its card at the next
    #: working minute, ``send`` at once. Missed calls follow ``[sla] callback_outside_hours``.
    outside_hours: Literal["hold", "send"] = "hold"
    #: Touches from one contact this close together make one card, edited in place with the count.
    burst_minutes: float = Field(5, gt=0)


class AssignSection(Strict):
    """Who takes forms, mail and chats; a source's ``owner`` wins over the mode."""

    #: ``round_robin`` among ``staff`` (fair by count within a day, skipping people off shift);
    #: ``owner``: the business owner (``role = "owner"``); ``team``: the team chat.
    mode: Literal["round_robin", "owner", "team"] = "round_robin"
    staff: list[str] = []


class NudgesSection(Strict):
    #: At most one nudge message per person (or chat) per this many minutes, listing what is due.
    batch_minutes: float = Field(5, ge=0)
    sweep_seconds: float = Field(60, gt=0)
    #: Cards listed in one message; the rest wait for the next batch.
    max_items: int = Field(10, gt=0, le=30)
    #: Touches older than this are never nudged (switching nudges on must not flood people with history).
    horizon_days: int = Field(14, gt=0)


class SourceHealthSection(Strict):
    #: A source is silent when no request came for longer than its usual gap in working minutes,
    #: never less than the floor and never more than the ceiling.
    floor_minutes: int = Field(60, gt=0)
    ceiling_minutes: int = Field(1080, gt=0)
    #: This many failed requests in a row (bad signature, unparseable, failed processing) is an alert.
    failure_threshold: int = Field(3, gt=0)
    learn_days: int = Field(28, gt=0)

    @model_validator(mode="after")
    def _bounds(self) -> SourceHealthSection:
        if self.ceiling_minutes < self.floor_minutes:
            raise ValueError("ceiling_minutes must not be less than floor_minutes")
        return self


def _time_of_day(value: str) -> str:
    """A daily job's time on the office clock, as ``HH:MM``. ``time.fromisoformat`` alone took
    ``9.30`` for 09:00 (a fraction of an hour) and ``09:00+03:00`` for a time the scheduler cannot
    compare with the office clock."""
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", value.strip())
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise ValueError(
            f"write the time as HH:MM on the office clock ([leadline] timezone), e.g. 09:30, not {value!r}"
        )
    return f"{int(match[1]):02d}:{match[2]}"


class DigestSection(Strict):
    time: str = "09:00"

    @field_validator("time")
    @classmethod
    def _time(cls, value: str) -> str:
        return _time_of_day(value)


class RetentionSection(Strict):
    """How long personal data is kept (storage/retention.py); 0 days switches a rule off."""

    #: Processed requests older than this lose their raw body, headers and query; row and touch stay.
    journal_days: int = Field(90, ge=0)
    #: Contacts never registered and with no touch for this long are anonymised. A year covers a
    #: season, so a person who calls again each season is still known, and is far past the 14-day
    #: nudge horizon and any registration lag: nobody is still working on such a contact.
    unregistered_days: int = Field(365, ge=0)
    #: Contacts refused as spam or a wrong number, with no touch for this long, are anonymised (their
    #: numbers stay on the block list). A month leaves time to correct a refusal tapped by mistake.
    refused_days: int = Field(30, ge=0)
    #: When the daily pass runs, local time: a quiet hour, since it rewrites old rows.
    time: str = "03:30"

    @field_validator("time")
    @classmethod
    def _time(cls, value: str) -> str:
        return _time_of_day(value)


class StaffConfig(Strict):
    name: str
    telegram_id: int
    role: Literal["owner", "manager", "staff"] = "staff"
    extensions: list[str] = []
    emails: list[str] = []
    language: Literal["ru", "en"] | None = None
    #: The person's own number, rung by a call-back when they have no extension (Twilio has none).
    phone: str | None = None

    @field_validator("telegram_id", mode="before")
    @classmethod
    def _telegram_id(cls, value: Any) -> Any:
        return _numeric_id(
            value,
            "the person's numeric user id, not {value}, e.g. 111111111 (a bot such as @userinfobot"
            " shows it; docs/bot.md)",
        )

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            number = phonenumbers.parse(value, None)
        except phonenumbers.NumberParseException:
            number = None
        if number is None or not phonenumbers.is_valid_number(number):
            raise ValueError(f"{value!r} is not a valid phone number: write it in full, e.g. +79161234567")
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    #: When this person takes forms, mail and chats by round robin; none: whenever the office works.
    shift: HoursSection | None = None


class CostConfig(Strict):
    period: str
    item: str = "other"
    amount: float = Field(ge=0)

    @field_validator("period")
    @classmethod
    def _period(cls, value: str) -> str:
        if not re.fullmatch(r"\d{4}-\d{2}(-\d{2})?(\.\.\d{4}-\d{2}(-\d{2})?)?", value):
            raise ValueError("write a period as YYYY-MM, YYYY-MM-DD or FROM..TO")
        return value


class CampaignConfig(Strict):
    name: str
    #: What people read where the campaign is shown (digest, reports, exports); ``name`` stays the
    #: key in the database, the API and the commands.
    title: str | None = None
    kind: Literal["product", "company"] = "product"
    tracking_numbers: list[str] = []
    utm_campaign: list[str] = []
    utm_source: list[str] = []
    emails: list[str] = []
    #: VK lead-ads forms (``form_id``) and Avito items (``item_id``) this campaign advertises.
    vk_forms: list[str] = []
    avito_items: list[str] = []
    costs: list[CostConfig] = []

    @field_validator("vk_forms", "avito_items", mode="before")
    @classmethod
    def _ids(cls, value: Any) -> Any:
        """Ids as TOML writes them, numbers or strings: both are the provider's id."""
        return [str(v) for v in value] if isinstance(value, list) else value

    @field_validator("tracking_numbers", "utm_campaign", "utm_source", "emails", "vk_forms", "avito_items")
    @classmethod
    def _not_blank(cls, values: list[str]) -> list[str]:
        """A touch without a UTM tag, an address or an id is looked up as "": an empty entry would
        give the campaign every such touch."""
        if any(not v.strip() for v in values):
            raise ValueError("an empty entry would give this campaign every touch that has none: remove it")
        return values


#: DESIGN.md's spellings, which the API and the export use too (storage/registrations.py holds the
#: same; this module imports nothing of ours).
Temperature = Literal["hot", "warm", "cold"]
NotALeadReason = Literal["partner", "job_seeker", "spam", "wrong_number", "existing_client", "other"]


class BlockRule(Strict):
    """One ``[[block]]`` entry: exactly one of a number prefix, a number, an address, or "calls shorter
    than N seconds from a number never seen before". Touches it matches are journalled and counted
    apart (blocked), as those from the block list staff keep in the bot."""

    prefix: str | None = None
    number: str | None = None
    email: str | None = None
    short_call_seconds: int | None = Field(None, gt=0, le=3600)

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str | None) -> str | None:
        if value is None:
            return None
        compact = re.sub(r"[\s()-]", "", value)
        if not re.fullmatch(r"\+[1-9]\d{0,14}", compact):
            raise ValueError(
                f'{value!r} is not a number prefix: write it in international form, e.g. "+7800"'
            )
        return compact

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is None:
            return None
        text = value.strip().lower()
        if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", text):
            raise ValueError(f"{value!r} is not an email address")
        return text

    @model_validator(mode="after")
    def _one_kind(self) -> BlockRule:
        given = [
            k for k in ("prefix", "number", "email", "short_call_seconds") if getattr(self, k) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of prefix, number, email or short_call_seconds"
                + (f" (this entry has {', '.join(given)})" if given else "")
            )
        return self


class SourceConfig(Strict):
    """One provider account; its secrets are named as in the samples' manifest."""

    # Written back out (a dump, a test's config) under the file's own key names: ``register``.
    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True)

    name: str
    #: A name in the registry of providers (``capture.providers.PROVIDERS``).
    provider: str
    campaign: str | None = None
    region: Region | None = None
    #: The zone of a provider account's local times (Zadarma's call_start) and of the day within which
    #: the same form without an id is a retry; default [leadline] timezone.
    timezone: str | None = None
    owner: str | None = None
    # secrets, named as the manifest names them; ``token`` is also the optional second check
    # of a provider that signs (then both are required)
    token: Secret | None = None
    secret: Secret | None = None
    vpbx_api_key: Secret | None = None
    vpbx_api_salt: Secret | None = None
    api_secret: Secret | None = None
    auth_token: Secret | None = None
    webhook_signing_key: Secret | None = None
    app_secret: Secret | None = None
    verify_token: Secret | None = None
    confirmation: Secret | None = None
    username: str | None = None
    password: Secret | None = None
    # network sources (SMTP, IMAP, AMI) and call forwarding
    host: str | None = None
    port: int | None = Field(None, ge=0, le=65535)
    addresses: list[str] = []
    mailbox: str = "INBOX"
    security: Literal["tls", "starttls", "none"] = "tls"
    poll_seconds: float = Field(60, gt=0)
    forward_to: str | None = None
    # calling clients back through the PBX (capture/dial/): the provider's API credentials
    #: Zadarma's and Binotel's API key, Twilio's Account SID, UIS's Call API access token.
    api_key: Secret | None = None
    #: Where the provider's API is, when not at its public default (a sandbox, a test fake).
    api_url: str | None = None
    #: The dialplan context a call-back rings the extension in and dials the client from (Asterisk's
    #: AMI Originate: default ``from-internal``; FreeSWITCH's originate: default ``default``).
    dial_context: str | None = None
    spam_score_threshold: float = 5.0
    field_map: dict[str, list[str]] = {}
    #: When not empty, only requests from these addresses and networks are taken (403 otherwise).
    allow_ips: list[Network] = []
    #: Registration by the system (DESIGN.md): every touch of this source is registered as it comes,
    #: origin ``system``: a lead with ``temperature``, or not a lead with ``reason``.
    #: ``register`` in the file (a pydantic model has a ``register`` of its own).
    registers: Literal["lead", "not_a_lead"] | None = Field(None, alias="register")
    temperature: Temperature | None = None
    reason: NotALeadReason | None = None
    #: Chats: messages from one person are one touch until they are quiet this long (docs/chats.md).
    conversation_gap_hours: float = Field(24, gt=0)
    #: Telegram Business: the Telegram user ids whose business connections are taken besides the
    #: staff's (docs/chats.md). Anyone with Telegram Premium can connect the bot to their account.
    accounts: list[Annotated[int, Field(gt=0)]] = []

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", value):
            raise ValueError("use letters, digits, '-', '_' or '.': the name is a URL segment")
        return value

    @field_validator("provider", mode="before")
    @classmethod
    def _provider(cls, value: Any, info: ValidationInfo) -> Any:
        names = list(_providers(info))
        if value not in names:
            # pydantic's words for a Literal, which this field was: the message users know
            raise ValueError(f"Input should be {', '.join(map(repr, names[:-1]))} or {names[-1]!r}")
        return value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("token", "allow_ips")
    @classmethod
    def _http_only(cls, value: Any, info: ValidationInfo) -> Any:
        provider = info.data.get("provider")
        if value and provider is not None and not _providers(info)[provider].over_http:
            raise ValueError(
                "cannot apply: an smtp source receives mail over SMTP, not HTTP"
                " (let only your mail relay reach its port with a firewall)"
                if provider == "smtp"
                else "cannot apply: the Telegram bot receives these updates, not a webhook"
                if provider == "telegram_business"
                else f"cannot apply: Leadline itself connects to the {provider} server"
            )
        paths = _providers(info)[provider].appends_paths if provider is not None else ()
        if info.field_name == "token" and value is not None and paths:
            # Mango posts to <URL>/events/summary: a ?token=T in the URL arrives as T/events/summary,
            # and no header can be set on its requests, so every event would be a 401.
            raise ValueError(
                f"cannot apply: {provider} appends its own paths ({', '.join(paths)}) after the URL it"
                " is given, so a ?token= in that URL never arrives as written; its signature already"
                " covers every event: remove the token (allow_ips still applies)"
            )
        if info.field_name == "token" and value is not None and not value.get_secret_value().strip():
            raise ValueError("empty: give the token a value (a long random one) or remove the key")
        return value

    @field_validator("accounts", mode="before")
    @classmethod
    def _account_ids(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [
            _numeric_id(
                item,
                "the business account's numeric user id, not {value}, e.g. 111111111 (a bot such as"
                " @userinfobot shows it; docs/chats.md)",
            )
            for item in value
        ]

    @field_validator("accounts")
    @classmethod
    def _accounts(cls, value: list[int], info: ValidationInfo) -> list[int]:
        provider = info.data.get("provider")
        if value and provider is not None and provider != "telegram_business":
            raise ValueError("cannot apply: only a telegram_business source takes business connections")
        return value

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"https?://[^/\s]+", value):
            raise ValueError("write the API's address as http(s)://host/path, e.g. https://api.zadarma.com")
        return value.rstrip("/") if value else value

    @field_validator("field_map")
    @classmethod
    def _field_map(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        allowed = {"phone", "email", "name", "message"}
        unknown = set(value) - allowed
        if unknown:
            raise ValueError(f"unknown target {sorted(unknown)}; use {sorted(allowed)}")
        return value

    @model_validator(mode="after")
    def _secrets(self, info: ValidationInfo) -> SourceConfig:
        missing = [
            need.replace("|", " or ")
            for need in _providers(info)[self.provider].secrets
            if all(not self.secret_value(key).strip() for key in need.split("|"))
        ]
        if missing:
            raise ValueError(f"provider {self.provider} needs {', '.join(missing)}")
        if self.registers == "lead" and (self.temperature is None or self.reason is not None):
            raise ValueError('register = "lead" needs temperature (hot, warm or cold) and no reason')
        if self.registers == "not_a_lead" and (self.reason is None or self.temperature is not None):
            raise ValueError(
                'register = "not_a_lead" needs reason (partner, job_seeker, spam, wrong_number,'
                " existing_client or other) and no temperature"
            )
        if self.registers is None and (self.temperature is not None or self.reason is not None):
            raise ValueError('temperature and reason apply only with register = "lead" or "not_a_lead"')
        rules = _providers(info)[self.provider]
        # Keys the webhooks need anyway (Zadarma's api_secret) say nothing of whether calling back is wanted.
        needed = {key for need in rules.secrets for key in need.split("|")}
        dial = [key for key in rules.dial if key not in needed]
        given = [key for key in dial if self.secret_value(key).strip()]
        if given and len(given) < len(dial):
            absent = ", ".join(key for key in dial if key not in given)
            raise ValueError(
                f"provider {self.provider} calls back with {' and '.join(rules.dial)}: set {absent} too,"
                " or remove the others"
            )
        if self.provider == "twilio" and not (self.forward_to or "").strip():
            raise ValueError(
                "provider twilio needs forward_to: the number Leadline's TwiML dials for each call"
            )
        return self

    def secret_value(self, key: str) -> str:
        """The plain value of a secret key, or an empty string when it is not set."""
        value = getattr(self, key)
        if value is None:
            return ""
        return value.get_secret_value() if isinstance(value, SecretStr) else str(value)


class ApiClientConfig(Strict):
    name: str
    token: Secret


class WebhookConfig(Strict):
    """An outgoing webhook: the user's CRM hears of each registration and lead change here."""

    url: str
    #: The Standard Webhooks signing secret (``whsec_`` + base64), shared with the receiver.
    secret: Secret
    #: What owns the webhook's queue and its place in the history, so that its URL can change (a
    #: redirect, a CRM on a new host) and what waits goes to the new one; without it, the URL does.
    name: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"https?://", value):
            raise ValueError("the webhook url must start with http:// or https://")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", value):
            raise ValueError("a webhook name is 1 to 64 letters, digits, '_', '.' and '-', e.g. crm")
        return value

    @property
    def key(self) -> str:
        """What its deliveries and cursors are stored under: the name, else the URL."""
        return self.name or self.url


class LogSection(Strict):
    #: ``leadline serve --log-level`` overrides it for one run.
    level: Literal["debug", "info", "warning", "error"] = "info"


class GoalsSection(Strict):
    leads: int | None = None
    qualified: int | None = None
    clients: int | None = None
    revenue: float | None = None


class LeadFieldsSection(Strict):
    required: list[str] = ["need"]
    desirable: list[str] = ["company", "industry", "size"]


class Config(Strict):
    leadline: LeadlineSection = LeadlineSection()
    http: HttpSection = HttpSection()
    telegram: TelegramSection = TelegramSection()
    working_time: WorkingTimeSection = WorkingTimeSection()
    sla: SlaSection = SlaSection()
    notify: NotifySection = NotifySection()
    assign: AssignSection = AssignSection()
    nudges: NudgesSection = NudgesSection()
    source_health: SourceHealthSection = SourceHealthSection()
    digest: DigestSection = DigestSection()
    goals: GoalsSection = GoalsSection()
    lead_fields: LeadFieldsSection = LeadFieldsSection()
    log: LogSection = LogSection()
    retention: RetentionSection = RetentionSection()
    staff: list[StaffConfig] = []
    campaigns: list[CampaignConfig] = []
    sources: list[SourceConfig] = []
    api_clients: list[ApiClientConfig] = []
    webhooks: list[WebhookConfig] = []
    block: list[BlockRule] = []

    #: Where the file was read from; relative paths in it are taken from its folder.
    base_dir: Path = Path(".")

    @property
    def phone_regions(self) -> list[str]:
        """Where a number typed to find someone may be written: the default region, then each a source
        sets (a BY source's people write ``8 029 …``)."""
        return list(dict.fromkeys([self.leadline.region, *(s.region for s in self.sources if s.region)]))

    @model_validator(mode="after")
    def _references(self) -> Config:
        """Mistakes between entries, each reported on its own key path (``staff[1].telegram_id``)."""
        problems: list[Problem] = []
        campaigns = {c.name for c in self.campaigns}
        staff = {s.name for s in self.staff}
        for kind, names in (
            ("sources", [s.name for s in self.sources]),
            ("campaigns", [c.name for c in self.campaigns]),
            ("webhooks", [w.name for w in self.webhooks if w.name]),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                problems.append(((kind,), f"duplicate name {', '.join(dupes)}"))
        for i, source in enumerate(self.sources):
            if source.campaign and source.campaign not in campaigns:
                problems.append((("sources", i, "campaign"), f"no campaign named {source.campaign!r}"))
            if source.owner and source.owner not in staff:
                problems.append((("sources", i, "owner"), f"no staff member named {source.owner!r}"))
        for i, name in enumerate(self.assign.staff):
            if name not in staff:
                problems.append((("assign", "staff", i), f"no staff member named {name!r}"))
        if self.database_path.is_dir():
            problems.append(
                (
                    ("leadline", "database"),
                    f"{str(self.database_path)!r} is a folder: name the file in it,"
                    f" e.g. {self.database_path / 'leadline.db'}",
                )
            )
        problems += _staff_clashes(self.staff)
        problems += _tracking_number_problems(self.campaigns, self.leadline.region)
        problems += _attribution_key_problems(self.campaigns)
        problems += _block_number_problems(self.block, self.leadline.region)
        if self.http.workers > 1 and self.http.port == 0:
            problems.append((("http", "workers"), WORKERS_NEED_A_FIXED_PORT))
        if self.http.workers > 1 and self.telegram.webhook_url:
            # Telegram's updates would reach whichever process the kernel picks; only one has the bot.
            problems.append(
                (
                    ("http", "workers"),
                    "more than one worker needs the bot on long polling; remove"
                    " telegram.webhook_url or set http.workers = 1",
                )
            )
        if problems:
            # A ValidationError keeps one line per problem, each at its own key path.
            raise ValidationError.from_exception_data(
                "Config",
                [
                    InitErrorDetails(
                        type=PydanticCustomError("config", "{problem}", {"problem": text}),
                        loc=loc,
                        input=None,
                    )
                    for loc, text in problems
                ],
            )
        return self

    @property
    def database_path(self) -> Path:
        """The database file with every link resolved, as SQLite itself finds its -wal beside it.

        Every name derived from it must agree across processes: a second ``serve`` reaching the
        file through a link had its own ``.serve.lock`` and ``.lock`` (a second bot and scheduler,
        and writers that no longer took turns with the first's) and its own metrics folder.
        """
        path = Path(self.leadline.database)
        return (path if path.is_absolute() else self.base_dir / path).resolve()

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.leadline.timezone)

    def campaign_title(self, name: str) -> str:
        """A campaign as a person reads it: its ``title``, else its key (also for one not in the config)."""
        for campaign in self.campaigns:
            if campaign.name == name:
                return campaign.title or name
        return name

    def campaign_titles(self) -> dict[str, str]:
        """Each configured campaign's key to what a person reads, handed to renderers that take no config."""
        return {c.name: c.title or c.name for c in self.campaigns}

    def source(self, name: str) -> SourceConfig | None:
        for source in self.sources:  # a loop, not next() over a generator: half the cost, per request
            if source.name == name:
                return source
        return None

    def secret_values(self) -> frozenset[str]:
        """Every secret in the config, wherever it sits, for the log filter to mask wherever it turns up."""
        found: set[str] = set()

        def walk(value: object) -> None:
            if isinstance(value, SecretStr):
                found.add(value.get_secret_value())
            elif isinstance(value, BaseModel):
                for item in value.__dict__.values():
                    walk(item)
            elif isinstance(value, list | tuple):
                for item in value:
                    walk(item)

        walk(self)
        return frozenset(value for value in found if value.strip())


#: Said of ``[http] port = 0`` and of ``serve --port 0`` with ``[http] workers`` above 1: each process
#: would listen on a random port of its own, and the workers would get nothing.
WORKERS_NEED_A_FIXED_PORT = "workers share one port, so http.port must be a fixed port, not 0"

#: A mistake found across entries: its key path and what is wrong.
Problem = tuple[tuple[int | str, ...], str]


def _staff_clashes(staff: list[StaffConfig]) -> list[Problem]:
    """Two people with one Telegram id, name or extension: a card or a nudge could reach either."""
    problems: list[Problem] = []
    ids: dict[int, int] = {}
    names: dict[str, int] = {}
    extensions: dict[str, int] = {}
    for i, person in enumerate(staff):
        if (first := ids.setdefault(person.telegram_id, i)) != i:
            problems.append(
                (
                    ("staff", i, "telegram_id"),
                    f"{person.telegram_id} is also staff[{first}]'s ({staff[first].name})",
                )
            )
        # Commands find staff by name whatever the case (``leadline report --staff anna``).
        if (first := names.setdefault(person.name.casefold(), i)) != i:
            problems.append((("staff", i, "name"), f"{person.name!r} is also staff[{first}]'s name"))
        for k, extension in enumerate(person.extensions):
            if (first := extensions.setdefault(extension.strip(), i)) != i:
                problems.append(
                    (
                        ("staff", i, "extensions", k),
                        f"extension {extension!r} is also staff[{first}]'s ({staff[first].name})",
                    )
                )
    return problems


def _tracking_number_problems(campaigns: list[CampaignConfig], region: str) -> list[Problem]:
    """A tracking number must be a real number (read in ``[leadline] region``) of one campaign."""
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for i, campaign in enumerate(campaigns):
        for k, written in enumerate(campaign.tracking_numbers):
            loc = ("campaigns", i, "tracking_numbers", k)
            try:
                number = phonenumbers.parse(written, region)
            except phonenumbers.NumberParseException:
                number = None
            if number is None or not phonenumbers.is_valid_number(number):
                problems.append((loc, f"{written!r} is not a valid phone number (region {region})"))
                continue
            e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            if (first := seen.setdefault(e164, i)) != i:
                problems.append((loc, f"{e164} is also campaigns[{first}]'s ({campaigns[first].name})"))
    return problems


#: A campaign's keys that attribute a touch to it, each read as storage/attribution.py reads it.
_ATTRIBUTION_KEYS: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("utm_campaign", lambda v: v.strip().lower()),
    ("utm_source", lambda v: v.strip().lower()),
    ("vk_forms", str.strip),
    ("avito_items", str.strip),
    ("emails", lambda v: v.strip().lower()),
)


def _attribution_key_problems(campaigns: list[CampaignConfig]) -> list[Problem]:
    """A UTM value, VK form, Avito item or address of two campaigns: attribution keeps only the last
    one's, so every touch it names would silently count for that campaign."""
    problems: list[Problem] = []
    seen: dict[str, dict[str, int]] = {key: {} for key, _ in _ATTRIBUTION_KEYS}
    for i, campaign in enumerate(campaigns):
        for key, normal in _ATTRIBUTION_KEYS:
            for k, written in enumerate(getattr(campaign, key)):
                value = normal(written)
                if (first := seen[key].setdefault(value, i)) != i:
                    problems.append(
                        (
                            ("campaigns", i, key, k),
                            f"{value!r} is also campaigns[{first}]'s ({campaigns[first].name})",
                        )
                    )
    return problems


def _block_number_problems(rules: list[BlockRule], region: str) -> list[Problem]:
    """A blocked number must be a real number (read in ``[leadline] region``): an invalid one is never
    a match key, so the rule would block nobody."""
    problems: list[Problem] = []
    for i, rule in enumerate(rules):
        if rule.number is None:
            continue
        try:
            number = phonenumbers.parse(rule.number, region)
        except phonenumbers.NumberParseException:
            number = None
        if number is None or not phonenumbers.is_valid_number(number):
            problems.append(
                (("block", i, "number"), f"{rule.number!r} is not a valid phone number (region {region})")
            )
    return problems


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-after", "function-before")):
            continue
        else:
            out += ("." if out else "") + part
    return out or "(top level)"


def _message(error: Any) -> str:
    if error["type"] == "missing":
        return "missing"
    if error["type"] == "extra_forbidden":
        return "unknown key"
    msg = str(error["msg"])
    return msg.removeprefix("Value error, ")


def parse_config(
    data: dict[str, Any], base_dir: Path = Path("."), *, providers: Mapping[str, ProviderRules]
) -> Config:
    """The config in ``data``, each source's provider checked against ``providers``."""
    try:
        return Config.model_validate({**data, "base_dir": base_dir}, context={"providers": providers})
    except ValidationError as exc:
        problems = [f"{_loc(err['loc'])}: {_message(err)}" for err in exc.errors()]
        raise ConfigError(problems) from None


def config_file(path: str | Path | None = None) -> Path:
    """The file a command reads: ``path``, else ``$LEADLINE_CONFIG``, else ./config.toml."""
    return Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def load_config(path: str | Path | None = None, *, providers: Mapping[str, ProviderRules]) -> Config:
    """Read and validate the config at ``path`` (else ``$LEADLINE_CONFIG``, else ./config.toml)."""
    resolved = config_file(path)
    try:
        raw = resolved.read_bytes()
    except OSError as exc:
        raise ConfigError([f"{resolved}: cannot read ({exc.strerror})"]) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{resolved}: not valid TOML ({exc})"]) from None
    if "base_dir" in data:
        raise ConfigError(["base_dir: unknown key"])
    return parse_config(data, resolved.resolve().parent, providers=providers)
