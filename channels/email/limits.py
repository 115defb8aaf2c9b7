"""Every cap on an inbound email: what is read before parsing, and what the normalised form keeps.

Python's ``email`` package is slow exactly where hostile mail is cheap to write: the structured
header parser of policy ``default`` grows faster than linearly with a header's length and its
encoded words (6,000 ``=?utf-8?q?=41?=`` words in an 88 KB Subject cost about 250 MB), legacy
parameter parsing is quadratic in quoted semicolons, and every MIME part (or header line) is an
object. So before any of that runs, the message's bytes are rewritten where they are over a cap
(``mime_caps`` for a raw message, ``posted_caps`` for what a provider posts already split up,
both cutting header fields and blocks with ``header_caps``):

- a header field longer than ``MAX_FIELD_BYTES`` is cut (References keeps its newest ids);
- a header field with more than ``MAX_ENCODED_WORDS`` encoded words is cut before the next one;
- Content-Type and Content-Disposition keep ``MAX_PARAMETER_FIELD_BYTES`` and ``MAX_PARAMETERS``;
- a header block keeps at most ``MAX_HEADER_BLOCK_BYTES`` and ``MAX_HEADER_FIELDS`` fields, a
  message ``MAX_MESSAGE_FIELDS``, and beyond that only the fields the router reads (From,
  Subject, Message-ID, Content-Type, ...); nothing is read past twice the block's cap;
- a message/delivery-status report's header blocks count as MIME entities (the parser makes a
  message of each);
- a provider's list of header pairs is read no further than ``MAX_MESSAGE_FIELDS`` (plus
  ``MAX_ESSENTIAL_EXTRA``), and not past the point where nothing more can be kept;
- a message keeps its first ``MAX_PARTS`` MIME entities and ``MAX_DEPTH`` levels of nesting; what
  comes after is dropped and the open multiparts are closed (a cut inside an attached message
  leaves it empty: one entity, one level more).

The message is kept, never refused for these: each cut adds a note (``InboundEmail.capped``,
on the contact's timeline), so staff see what was left out. The caps are constants, not
settings: they bound the cost of one message (see ``bench/bench_email.py``), and no real mail
comes near them.
"""

from __future__ import annotations

# --- before parsing --------------------------------------------------------------------------

MAX_FIELD_BYTES = 8 * 1024
MAX_ENCODED_WORDS = 100
MAX_HEADER_BLOCK_BYTES = 64 * 1024
MAX_HEADER_FIELDS = 300
MAX_MESSAGE_FIELDS = 3000  # header fields of all the entities of one message
MAX_PARAMETER_FIELD_BYTES = 2 * 1024  # Content-Type and Content-Disposition of a part
MAX_PARAMETERS = 24  # semicolons in those (legacy parameter parsing is quadratic in them)
MAX_PARTS = 500
MAX_DEPTH = 20
MAX_NOTES = 20
# Beyond the budgets only these fields are kept, and at most this many in one message.
MAX_ESSENTIAL_EXTRA = 100
# Header lines looked at one by one; past this, a block is not read at all.
SCAN_BYTES = 2 * MAX_HEADER_BLOCK_BYTES

ESSENTIAL_FIELDS = frozenset(
    {
        "from",
        "sender",
        "reply-to",
        "to",
        "cc",
        "subject",
        "date",
        "message-id",
        "in-reply-to",
        "references",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "content-disposition",
        "return-path",
        "auto-submitted",
        "precedence",
        "list-id",
        "list-unsubscribe",
        "x-autoreply",
        "x-autorespond",
        "x-auto-response-suppress",
        "x-failed-recipients",
        "x-ms-exchange-message-is-ndr",
        "authentication-results",
        "received-spf",
        "x-contact-router",
    }
)

# --- what the normalised message keeps --------------------------------------------------------

MAX_TEXT_CHARS = 100_000
MAX_HTML_CHARS = 200_000
MAX_HEADER_CHARS = MAX_FIELD_BYTES  # a field within the caps above is never cut again
MAX_HEADERS = MAX_HEADER_FIELDS + MAX_ESSENTIAL_EXTRA  # all the caps above keep
MAX_ADDRESSES = 100
MAX_REFERENCES = 100
MAX_ATTACHMENTS = 100
MAX_MIME_DEPTH = 20  # levels of the parsed tree walked into: a second guard behind MAX_DEPTH
ATTACHMENT_HEAD_BYTES = 4096
# Contact.external_id is 255 characters; longer Message-IDs are stored by their digest.
MAX_KEY_CHARS = 255
ADDRESS_MAX_CHARS = 320
