"""One inbound mail, whichever way it arrived, as one :class:`ContactEvent`.

Mail reaches Leadline as raw RFC 5322 bytes (the SMTP server, the IMAP poller, raw-MIME webhooks)
or as the fields a provider has already parsed (Mailgun, SendGrid, Postmark). Both become a
:class:`MailFields` and go through the same rules, so a mail means the same thing on every route:

* The sender is the contact, and phone numbers written in the body or signature join it. Quoted
  replies are left out: they carry *our* signature, whose number would join every customer who
  replies into one contact.
* A notification sent by a robot (``noreply@``, a site's form mailer) is not from the contact: the
  contact is in the body's labelled fields (``Имя: …``, ``Phone: …``) or its ``Reply-To``, and the
  robot's own address is never used as an identifier, or every form would merge into one person.
  Mail from one of the business's own addresses (:class:`OurAddresses`) is read the same way: a site
  sends its notifications from ``sales@`` when SPF allows nothing else. A staff member is never a
  contact: their mail (a forward, a copy of a reply) that names nobody else is kept as dropped.
* Auto-replies, bounces, mailing lists and spam are kept as touches with ``dropped`` naming the
  rule, so they are journalled and visible but never counted as inbound contacts.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.headerregistry import AddressHeader, HeaderRegistry
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parseaddr
from typing import TYPE_CHECKING, Any, TypeVar, cast

import html2text
from multidict import MultiDict

from capture.addresses import OurAddresses
from capture.forms import name_of, pick
from capture.providers.base import BadRequest, quoted
from storage import identifiers
from storage.events import ContactEvent
from storage.mime import MAIL_POLICY

if TYPE_CHECKING:
    from leadline.config import SourceConfig

T = TypeVar("T")

#: A message's text beyond this is not read for phones or stored as the touch's message (the journal
#: keeps it all): a newsletter-sized body must not stall the matcher or bloat every touch row.
MAX_TEXT = 100_000
MAX_HTML = 200_000
MAX_MESSAGE = 10_000


#: Local parts of senders that are machines, not people (form mailers, notification systems).
ROBOT_SENDER = re.compile(
    r"^(no[-_.]?reply|do[-_.]?not[-_.]?reply|mailer[-_.]?daemon|postmaster|notifications?|notify|"
    r"forms?|robot|bounces?|wordpress|daemon)([-_.+].*)?$",
    re.IGNORECASE,
)
BOUNCE_SENDER = re.compile(r"^(mailer[-_.]?daemon|postmaster)$", re.IGNORECASE)

#: The line that starts a quoted earlier message in a reply (Gmail, Apple Mail, Outlook, Yandex, Mail.ru).
REPLY_HEADER = re.compile(
    r"^\s*(on\b.{0,200}\bwrote:|.{0,200}\s(пишет|написал|написала|написал\(а\)):|"
    r"-{2,}\s*(original message|исходное сообщение|forwarded message|пересылаемое сообщение)\s*-{2,})\s*$",
    re.IGNORECASE,
)
OUTLOOK_FROM = re.compile(r"^\s*\*{0,2}(from|от|de|von)\s*:\*{0,2}\s+\S", re.IGNORECASE)
OUTLOOK_SENT = re.compile(r"^\s*\*{0,2}(sent|date|отправлено|дата|envoyé|gesendet)\s*:", re.IGNORECASE)
#: ``Label: value`` (or a table row ``Label | value``) in a form notification's body.
#: Possessive quantifiers, and the value's trailing `` | `` cut in code: backtracking over a run of
#: spaces made a line of 10,000 of them cost minutes (cubic).
LABELLED = re.compile(r"^[\s>*#_|-]*([^\W\d_][\w .()/-]{0,38}?)\s*+[*_]*+\s*+[:|]\s*+(\S.*)$")

TABLE_RULE = re.compile(r"^[\s|:]*+-{3,}+[\s|:-]*+$")  # possessive: linear in a run of dashes
LIST_HEADERS = ("List-Id", "List-Unsubscribe", "List-Post")


@dataclass(frozen=True, slots=True)
class MailFields:
    """A mail as decoded text, whatever route it came by.

    ``headers`` are the message's top-level headers as written (encoded words and all); ``reply_text``
    is the provider's own reply-without-quotes when it gives one (Mailgun ``stripped-text``).
    ``external_id`` overrides the ``email:{Message-ID}`` key for providers with an id of their own.
    """

    headers: Sequence[tuple[str, str]] = ()
    sender: str | None = None
    to_address: str | None = None
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    reply_text: str | None = None
    message_id: str | None = None
    envelope_from: str | None = None
    spam_score: float | None = None
    delivery_report: bool = False
    occurred_at: datetime | None = None
    external_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((_unfold(v) for k, v in self.headers if k.lower() == wanted), None)

    def fingerprint(self) -> str:
        """What identifies a mail without a Message-ID: the same mail delivered twice hashes the same."""
        parts = (self.sender, self.to_address, self.subject, self.header("Date"), self.text, self.html)
        return hashlib.sha256("\x00".join(p or "" for p in parts).encode("utf-8", "replace")).hexdigest()


def parse_message(
    raw: bytes,
    *,
    to_address: str | None = None,
    envelope_from: str | None = None,
    occurred_at: datetime | None = None,
) -> MailFields:
    """RFC 5322 bytes as :class:`MailFields`; for a malformed message it reads what it can.

    The one mail it refuses (:class:`BadRequest`) is one whose structure the stdlib cannot read at
    all: a Content-Type nesting comments past Python's recursion limit (see :func:`_readable`).
    """
    try:
        message = BytesParser(policy=MAIL_POLICY).parsebytes(raw)
    except RecursionError:
        raise BadRequest(f"a Content-Type header nests more {quoted('(')} than any mail needs") from None
    headers = [(name, str(value)) for name, value in message.raw_items()]
    # As written, as mail_event reads it: a Message-ID the header parser cannot read is still one.
    raw_id = next((value for name, value in headers if name.lower() == "message-id"), None)
    return MailFields(
        headers=headers,
        to_address=to_address or _readable(_recipients, message),
        subject=_readable(_decoded_header, message, "Subject"),
        text=_readable(_part_text, message, "plain"),
        html=_readable(_part_text, message, "html"),
        envelope_from=envelope_from,
        delivery_report=bool(_readable(_is_delivery_report, message)),
        occurred_at=occurred_at,
        # sha256 of the bytes themselves: a re-fetched or re-sent copy is byte-identical
        external_id=None if raw_id and raw_id.strip() else f"email:sha256:{hashlib.sha256(raw).hexdigest()}",
    )


def _readable(read: Callable[..., T], *args: Any) -> T | None:
    """What ``read`` finds, or None where the stdlib's header parser gives up.

    It recurses once per nested comment, so a header of a thousand ``(`` (anyone can send one)
    raises RecursionError wherever the header is read: that header is then taken as absent.
    """
    try:
        return read(*args)
    except RecursionError:
        return None


def mail_event(
    mail: MailFields | bytes, *, region: str, spam_threshold: float, ours: OurAddresses
) -> ContactEvent:
    """The touch a mail makes: its contact, text, campaign evidence and the rule that drops it, if any."""
    if isinstance(mail, bytes):
        mail = parse_message(mail)
    text = _text_of(mail)
    unquoted = strip_quoted(text)
    name, emails, phones, labelled_message = _contact(mail, unquoted, region, ours)
    if ours.staff_phones:  # a staff member's own number (their signature) names none of our customers
        phones = [
            p
            for p in phones
            if (n := identifiers.phone(p, region)) is None or n.value not in ours.staff_phones
        ]
    message = mail.reply_text.strip() if mail.reply_text and mail.reply_text.strip() else None
    message = message or labelled_message or unquoted.strip() or None
    if message and len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE] + "…"
    message_id = (mail.message_id or mail.header("Message-ID") or "").strip()
    external_id = mail.external_id or (
        f"email:{message_id}" if message_id else f"email:sha256:{mail.fingerprint()}"
    )
    score = _spam_score(mail)
    return ContactEvent(
        channel="email",
        external_id=external_id,
        occurred_at=mail.occurred_at,
        phones=tuple(phones),
        emails=tuple(emails),
        name=name,
        message=message,
        to_address=mail.to_address,
        region=region,
        dropped=drop_reason(mail, spam_threshold) or _from_staff(mail, ours, emails, phones),
        fields={
            k: v
            for k, v in {
                "subject": _clean(mail.subject or mail.header("Subject") or "") or None,
                "from": _decoded_address(_sender_header(mail)),
                "to": mail.to_address,
                "message_id": message_id or None,
                "date": mail.header("Date"),
                "spam_score": score,
                **mail.extra,
            }.items()
            if v not in (None, "")
        },
    )


def source_event(mail: MailFields | bytes, source: SourceConfig, ours: OurAddresses) -> ContactEvent:
    """:func:`mail_event` with the source's region and spam threshold (the pipeline fills in the region)."""
    return mail_event(
        mail, region=source.region or "RU", spam_threshold=source.spam_score_threshold, ours=ours
    )


def drop_reason(mail: MailFields, spam_threshold: float) -> str | None:
    """The first rule that makes this mail not an inbound touch, named for the person reading the row."""
    _, sender = _first_address(_sender_header(mail))
    local = sender.rpartition("@")[0] if sender else ""
    if mail.envelope_from in ("<>", ""):
        return "bounce: delivery status notification (empty envelope sender)"
    if mail.delivery_report:
        return "bounce: delivery status notification (multipart/report)"
    if BOUNCE_SENDER.match(local):
        return f"bounce: sent by {local}"
    auto = (mail.header("Auto-Submitted") or "").split(";")[0].strip()
    if auto and auto.lower() != "no":
        return f"auto-reply: Auto-Submitted: {quoted(auto)}"
    for name in ("X-Autoreply", "X-Autorespond"):
        if mail.header(name) is not None:
            return f"auto-reply: {name} header"
    flag = (mail.header("X-Spam-Flag") or "").strip()
    if flag.lower() == "yes":
        return f"spam: X-Spam-Flag: {flag}"
    if (mail.header("X-Mailgun-Sflag") or "").strip().lower() == "yes":
        return "spam: X-Mailgun-Sflag: Yes"
    if (mail.header("X-Spam-Status") or "").strip().lower().startswith("yes"):
        return "spam: X-Spam-Status: Yes"
    score = _spam_score(mail)
    if score is not None and score > spam_threshold:
        return f"spam: score {score:g} over the threshold {spam_threshold:g}"
    precedence = (mail.header("Precedence") or "").strip().lower()
    if precedence == "list":
        return "mailing list: Precedence: list"
    if precedence in ("bulk", "junk"):
        return f"bulk mail: Precedence: {precedence}"
    if precedence in ("auto_reply", "auto-reply"):
        return f"auto-reply: Precedence: {precedence}"
    for name in LIST_HEADERS:
        if mail.header(name) is not None:
            return f"mailing list: {name} header"
    return None


def _from_staff(mail: MailFields, ours: OurAddresses, emails: list[str], phones: list[str]) -> str | None:
    """Why a staff member's mail that names nobody else is not an inbound touch: the only person
    in it is one of us (a forward whose quoted client is cut off, a copy of their own reply)."""
    _, sender = _first_address(_sender_header(mail))
    if emails or phones or not ours.of_staff(sender):
        return None
    return f"staff mail: sent by {sender}"


def strip_quoted(text: str) -> str:
    """The new part of a reply: lines quoted with ``>`` and everything after "On … wrote:" are left out."""
    kept: list[str] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if REPLY_HEADER.match(line) or _outlook_header(lines, i):
            break
        if line.lstrip().startswith(">"):
            continue
        kept.append(line)
    return "\n".join(kept).strip()


def _outlook_header(lines: list[str], i: int) -> bool:
    """Outlook quotes with a header block: ``From: …`` then ``Sent:``/``Date:`` within three lines."""
    if not OUTLOOK_FROM.match(lines[i]):
        return False
    return any(OUTLOOK_SENT.match(line) for line in lines[i + 1 : i + 4])


def html_to_text(html: str) -> str:
    """Readable text from HTML-only mail, keeping table rows as ``label | value`` lines."""
    converter = html2text.HTML2Text()
    converter.body_width = 0
    converter.ignore_emphasis = True
    converter.ignore_images = True
    converter.ignore_links = True
    lines = []
    for line in str(converter.handle(html)).splitlines():
        if TABLE_RULE.match(line):
            continue  # the Markdown rule under a table's first row
        # split, not re.sub(r"\s*\|\s*"): that one scans a run of spaces from each of them
        lines.append(
            " | ".join(cell.strip() for cell in line.split("|")).strip() if "|" in line else line.rstrip()
        )
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def find_phones(text: str, region: str) -> list[str]:
    """Valid numbers written anywhere in ``text`` (:func:`storage.identifiers.find_phones`), read
    within the first :data:`MAX_TEXT` characters."""
    return identifiers.find_phones(text[:MAX_TEXT], region)


def labelled_fields(text: str) -> MultiDict[str]:
    """``Label: value`` lines of a form notification as fields, for :func:`capture.forms.pick`."""
    fields: MultiDict[str] = MultiDict()
    for line in text[:MAX_TEXT].splitlines():
        match = LABELLED.match(line)
        value = match[2].rstrip().removesuffix("|").rstrip() if match else ""
        if match and not set(value) <= set("-|: "):
            fields.add(match[1].strip(), value.strip())
    return fields


def decode_text(data: bytes, charset: str | None) -> str:
    """Bytes in their declared charset; an unknown charset is read as UTF-8, bad bytes as U+FFFD
    (one mis-declared part must not cost a lead)."""
    try:
        return data.decode(charset or "utf-8", "replace")
    except (LookupError, ValueError):  # ValueError: a name with a NUL, a codec (idna) that cannot replace
        return data.decode("utf-8", "replace")


def is_robot(address: str | None) -> bool:
    return bool(address) and bool(ROBOT_SENDER.match((address or "").rpartition("@")[0]))


def _contact(
    mail: MailFields, text: str, region: str, ours: OurAddresses
) -> tuple[str | None, list[str], list[str], str | None]:
    """Name, emails and phones of the person the mail is about, and a labelled message if there is one."""
    display, sender = _first_address(_sender_header(mail))
    if sender and not is_robot(sender) and sender not in ours:
        return display, [sender], find_phones(text, region), None
    fields = labelled_fields(text)
    reply_name, reply_to = _first_address(mail.header("Reply-To") or "")
    if is_robot(reply_to) or reply_to in ours:
        reply_name, reply_to = None, None
    emails = [e for e in pick(fields, "email") if "@" in e and e not in ours] or (
        [reply_to] if reply_to else []
    )
    phones = [p for value in pick(fields, "phone") for p in find_phones(value, region)]
    messages = pick(fields, "message")
    return (
        name_of(fields) or reply_name,
        emails,
        phones or find_phones(text, region),
        "\n".join(messages) or None,
    )


def _text_of(mail: MailFields) -> str:
    if mail.text and mail.text.strip():
        return _clean(mail.text)
    if mail.html and mail.html.strip():
        # Cut before converting: html2text on megabytes would hold the event loop for seconds.
        return html_to_text(_clean(mail.html)[:MAX_HTML])
    return ""


def _sender_header(mail: MailFields) -> str:
    return _clean(mail.sender or mail.header("From") or "")


#: Characters of a From or Reply-To header that are parsed: the stdlib's address parser is quadratic
#: in a header's length (40 000 dots in an address: 21 s), and a real sender is a name and an address
#: of at most 320 characters.
MAX_ADDRESS_CHARS = 2048


def _first_address(value: str) -> tuple[str | None, str | None]:
    """Display name and address of the first mailbox in an address header, RFC 2047 decoded."""
    value = value[:MAX_ADDRESS_CHARS]
    if not value.strip():
        return None, None
    try:
        header = cast(AddressHeader, HeaderRegistry()("from", _unfold(value)))
        first = next(iter(header.addresses), None)
        name, address = (first.display_name, first.addr_spec) if first else ("", "")
    except (IndexError, ValueError, TypeError, AttributeError, RecursionError):  # see _readable
        name, address = _readable(parseaddr, value) or ("", "")
    address = _clean(address).strip().strip("<>")
    name = _clean(name)
    if "\ufffd" in name:  # the display name as written, encoded words and all
        name = _rejoined((_readable(parseaddr, _unfold(value)) or ("", ""))[0], name)
    name = name.strip().strip('"').strip()
    if not address or "@" not in address:
        return (name or None), None
    return (name if name and name.lower() != address.lower() else None), address


def _decoded_address(value: str) -> str | None:
    value = value[:MAX_ADDRESS_CHARS]
    if not value.strip():
        return None
    try:
        return _rejoined(_unfold(value), _clean(str(HeaderRegistry()("from", _unfold(value)))))
    except (IndexError, ValueError, TypeError, AttributeError, RecursionError):
        return _clean(value)


#: A header longer than this is not decoded a second time: ``decode_header`` is quadratic in its
#: words (400 KB of them: a second), and a name people write is far shorter.
MAX_REJOINED_CHARS = 4096


def _rejoined(raw: str, decoded: str) -> str:
    """``decoded``, or where it has a U+FFFD, ``raw`` as the stdlib's ``email.header`` decodes it.

    Some mailers split one UTF-8 character between two encoded words (RFC 2047 §5 forbids it, but
    it is mail people get). The address header parser decodes each word alone, so the halves become
    U+FFFD; ``decode_header`` joins adjacent words of one charset first, as mail clients do.
    """
    if "\ufffd" not in decoded or "=?" not in raw or len(raw) > MAX_REJOINED_CHARS:
        return decoded
    try:
        return _clean(str(make_header(decode_header(raw))))
    except (UnicodeError, LookupError, ValueError, HeaderParseError, RecursionError):
        return decoded


def _clean(value: str) -> str:
    """Undo surrogate escapes: raw UTF-8 in headers (common without SMTPUTF8) reads as text again."""
    if value.isascii():  # a flag of the string: no escape can be in it
        return value
    try:
        value.encode("utf-8")  # one pass in C; only an escaped byte (a lone surrogate) fails it
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return value


def _unfold(value: str) -> str:
    return re.sub(r"\r?\n[ \t]+", " ", _clean(value)).strip()


def _spam_score(mail: MailFields) -> float | None:
    if mail.spam_score is not None:
        return mail.spam_score
    for name in ("X-Spam-Score", "X-Mailgun-Sscore", "X-Spam-Status"):
        value = mail.header(name)
        if not value:
            continue
        match = re.search(r"(?:score=)?(-?\d+(?:\.\d+)?)", value)
        if match and (name != "X-Spam-Status" or "score=" in value):
            return float(match[1])
    return None


def _decoded_header(message: EmailMessage, name: str) -> str | None:
    value = message.get(name)
    return _clean(str(value)) if value is not None else None


#: Where a mail was sent, the MTA's own record first: the address it was sent to before an alias
#: expanded it (X-Original-To: a campaign's ``sales@``), then the mailbox it reached (Delivered-To:
#: the polled ``leads@``), then what the sender wrote.
RECIPIENT_HEADERS = ("X-Original-To", "Delivered-To", "Envelope-To", "To", "Cc")


def _recipients(message: EmailMessage) -> str | None:
    """Every address the mail was sent to, in :data:`RECIPIENT_HEADERS` order: attribution and the
    mailbox owner take the first one they know, so the mailbox an alias delivers into must not hide
    the alias. A header the parser cannot read (see :func:`_readable`) is passed over."""
    found = (
        _clean(str(value)) for name in RECIPIENT_HEADERS for value in _readable(message.get_all, name) or ()
    )
    return ", ".join(dict.fromkeys(v for v in found if v.strip())) or None


def _part_text(message: EmailMessage, subtype: str) -> str | None:
    """The first text/``subtype`` body part, decoded (base64, quoted-printable, its charset)."""
    try:
        part = message.get_body(preferencelist=(subtype,))
    except (KeyError, LookupError, ValueError):
        return None
    if part is None:
        return None
    if part.get_content_charset() is None:
        # No charset declared (a form script's PHP mail() sends raw 8-bit text with no MIME headers):
        # the stdlib reads such a part as ASCII, every other byte a U+FFFD, and the lead is lost.
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            return _undeclared_text(payload)
    try:
        return str(part.get_content())
    except (LookupError, ValueError, AssertionError, KeyError):
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        return data.decode("utf-8", "replace")


def _undeclared_text(data: bytes) -> str:
    """Bytes in no declared charset: UTF-8 when they are valid UTF-8 (what form scripts write today;
    ASCII is too), else Windows-1251, the other charset Russian mail is sent in without saying so."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1251", "replace")


def _is_delivery_report(message: EmailMessage) -> bool:
    if message.get_content_type() == "multipart/report":
        return True
    return any(part.get_content_type() == "message/delivery-status" for part in message.walk())
