"""E-mails as a mail server receives them: rendered from one template per kind and language
(text and HTML), composed with their headers, written to bytes as smtplib writes them, and parsed
back with Python's email package (policy=default) without a defect and with every word of the
subject."""

from __future__ import annotations

import io
import re
from contextlib import contextmanager
from datetime import UTC, datetime
from email import policy
from email.generator import BytesGenerator
from email.parser import BytesParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.notifications import emails
from services.notifications.emails import Rendered, check_domain, clean_subject, compose, encode_subject, render
from tests import builders as ev

DOMAIN = "kokeilu.espoo.fi"
LINK = "https://kokeilu.espoo.fi/v1/unsubscribe/czoxMjM0NTY3OC0xMjM0LTEyMzQtMTIzNC0xMjM0NTY3ODkwMTI.AbCdEf-_0123"
TITLE = "Sähköpotkulautojenpysäköintialueet ja pyöräparkit Tapiolan keskustassa"
# Subjects that CPython 3.11's folder (policy=default) writes so that a decoder loses a space.
LOST_BY_THE_STDLIB = [
    "ja Sähköpotkulautojenpysäköintialueet –",
    "keskustassa keskustassa keskustassa buddies buddies – – Kokeilu: pyöräparkit Reading",
    "Kera at Tapiolan " + "A" * 83 + " at keskustassa ääni",
]


def wire(message) -> bytes:
    """The bytes smtplib.send_message writes for `message` (its own policy, CRLF line ends)."""
    out = io.BytesIO()
    BytesGenerator(out).flatten(message, linesep="\r\n")
    return out.getvalue()


def received(message):
    raw = wire(message)
    return raw, BytesParser(policy=policy.default).parsebytes(raw)


def assert_parses_cleanly(parsed) -> None:
    assert parsed.defects == []
    for name, value in parsed.items():
        assert value.defects == (), f"{name}: {value.defects}"
    for part in parsed.walk():
        assert part.defects == []


def header_lines(raw: bytes) -> list[bytes]:
    return raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


def status_payload(to_status="approved", title=TITLE, reason=None):
    event = ev.status("p-1", "in_evaluation", to_status)
    if reason:
        event["data"]["reason"] = reason
    return {"event": event, "proposal": {"proposal_id": "p-1", "title": title}}


def digest_payload(title=TITLE):
    return {
        "subscriber": "Opetus & kasvatus",
        "window_end": "2026-11-29T00:00:00+00:00",
        "items": [status_payload(title=title), status_payload("piloting", title=title)],
    }


PAYLOADS = {"event": status_payload, "proposer": status_payload, "digest": digest_payload}
SUBJECTS = {
    ("event", "fi"): f"Kokeilu: proposal.status-changed – {TITLE}",
    ("event", "sv"): f"Kokeilu: proposal.status-changed – {TITLE}",
    ("event", "en"): f"Kokeilu: proposal.status-changed – {TITLE}",
    ("proposer", "fi"): f"Ehdotuksesi hyväksyttiin: {TITLE}",
    ("proposer", "sv"): f"Ditt förslag godkändes: {TITLE}",
    ("proposer", "en"): f"Your proposal was approved: {TITLE}",
    ("digest", "fi"): "Kokeilun päivän kooste: 2 tapahtumaa",
    ("digest", "sv"): "Kokeilus dagliga sammandrag: 2 händelser",
    ("digest", "en"): "Kokeilu daily digest: 2 events",
}


@pytest.mark.parametrize("kind, language", sorted(SUBJECTS))
def test_every_kind_and_language_arrives_with_its_headers_both_parts_and_every_word(kind, language):
    words = render(kind, PAYLOADS[kind](), language, LINK)
    sent_at = datetime(2026, 11, 28, 10, 0, 5, tzinfo=UTC)
    raw, parsed = received(
        compose(
            "kokeilu@espoo.example",
            "opetus@espoo.example",
            words,
            domain=DOMAIN,
            message_id="0b8e7c9e-delivery",
            unsubscribe_url=LINK,
            now=sent_at,
        )
    )
    assert_parses_cleanly(parsed)
    raw.decode("ascii")  # 7-bit clean: no 8BITMIME needed
    assert parsed["Subject"] == SUBJECTS[(kind, language)]
    assert parsed["Subject"].split(" ") == SUBJECTS[(kind, language)].split(" "), "every word, every space"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed["Content-Language"] == language
    assert parsed["Date"] == "Sat, 28 Nov 2026 10:00:05 +0000"
    assert parsed["Date"].datetime == sent_at
    assert parsed["Message-ID"] == "<0b8e7c9e-delivery@kokeilu.espoo.fi>"
    assert parsed["List-Unsubscribe"] == f"<{LINK}>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert all(len(line) <= 78 for line in header_lines(raw) if not line.startswith(b"List-Unsubscribe:"))
    assert len(next(line for line in header_lines(raw) if line.startswith(b"List-Unsubscribe:"))) <= 998

    assert parsed.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
    text = parsed.get_body(("plain",)).get_content().replace("\r\n", "\n")
    html = parsed.get_body(("html",)).get_content()
    assert TITLE in text and TITLE in html
    assert LINK in text and f'href="{LINK}"' in html
    assert f'<html lang="{language}">' in html
    assert "\n-- \n" in text, "the signature separator keeps its space"


def test_the_html_part_escapes_what_proposers_wrote_and_the_text_part_keeps_it():
    title, reason = '<script>alert("x")</script> & co', "Budjetti <b>ylittyi</b>"
    words = render("proposer", status_payload("rejected", title=title, reason=reason), "fi", LINK)
    assert title in words.text and reason in words.text
    assert "<script>" not in words.html and "<b>" not in words.html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; co" in words.html
    assert "Budjetti &lt;b&gt;ylittyi&lt;/b&gt;" in words.html
    assert words.subject == f"Ehdotuksesi ei saanut hyväksyntää: {title}"


def test_an_unknown_language_is_finnish_and_the_text_part_has_no_markup():
    words = render("event", status_payload(), "de", None)
    assert words.language == "fi" and words.subject.startswith("Kokeilu: ")
    assert "<" not in words.text and "Peru tilaus" not in words.text  # no link: no unsubscribe line


def test_without_a_link_there_is_no_list_unsubscribe():
    _, parsed = received(
        compose(
            "kokeilu@espoo.example",
            "a@espoo.example",
            render("event", status_payload(), "en"),
            domain=DOMAIN,
            message_id="d-2",
        )
    )
    assert_parses_cleanly(parsed)
    assert "List-Unsubscribe" not in parsed and "List-Unsubscribe-Post" not in parsed
    assert parsed["Auto-Submitted"] == "auto-generated"


@pytest.mark.parametrize(
    "subject",
    [
        TITLE,
        "Ditt förslag utvärderas: Läsvänner på Kera skola och Sähköpotkulautojenpysäköintialueet",
        "Kokeilu: proposal.status-changed – " + "Reading buddies at Kera school " * 4,
        "A long English subject about an autonomous shuttle feeder for Kera station and the new housing blocks",
        "Kokeilu: " + "Averyveryverylongwordwithoutanyspacethatcannotbefoldedatawhitespaceboundaryatall" * 2,
        "Sähköpotkulautojenpysäköintialueet " * 6,
        "=?utf-8?q?looks_encoded?= but is the proposer's own text",
        "Emoji 🚲 and 日本語 and ääkköset",
        *LOST_BY_THE_STDLIB,
    ],
)
def test_subjects_decode_to_exactly_their_words(subject):
    raw, parsed = received(
        compose(
            "k@espoo.example",
            "a@espoo.example",
            Rendered(subject, "x\n", "<p>x</p>\n", "en"),
            domain=DOMAIN,
            message_id="d-3",
        )
    )
    assert_parses_cleanly(parsed)
    assert parsed["Subject"] == subject.strip(), "no word glued to the next, no leading space"
    assert all(len(line) <= 78 for line in header_lines(raw) if not line.startswith(b"List-Unsubscribe:"))


def test_a_long_ascii_subject_stays_readable_text_folded_at_its_spaces():
    subject = "A long English subject about an autonomous shuttle feeder for Kera station and the new housing blocks"
    folded = encode_subject(subject)
    assert "=?" not in folded and folded.replace("\n ", " ") == subject
    assert not folded.startswith(" ") and all(len(line) <= 77 for line in folded.split("\n"))


def test_a_non_ascii_subject_keeps_every_space_inside_its_encoded_words():
    folded = encode_subject("ja Sähköpotkulautojenpysäköintialueet –")
    assert all(re.fullmatch(r" ?=\?utf-8\?q\?[^ ?]*\?=", line) for line in folded.split("\n")), folded


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=200))
def test_any_subject_round_trips_through_the_wire(subject):
    _, parsed = received(
        compose(
            "k@espoo.example",
            "a@espoo.example",
            Rendered(subject, "x\n", "<p>x</p>\n", "en"),
            domain=DOMAIN,
            message_id="d-4",
        )
    )
    assert_parses_cleanly(parsed)
    assert parsed["Subject"] == clean_subject(subject)


def test_clean_subject_makes_one_line_of_single_spaces():
    assert clean_subject(" a\r\nb\tc\u2028d\x00e  f ") == "a b c d e f"


@pytest.mark.parametrize("domain", ["kokeilu.espoo.fi", "espoo.example", "Mail.Espoo.FI.", "a-b.c-d.fi"])
def test_a_full_domain_name_is_a_mail_domain(domain):
    assert check_domain(domain) == domain.lower().rstrip(".")


@pytest.mark.parametrize(
    "domain",
    [
        "kokeilu",
        "localhost",
        "espoo.",
        "-espoo.fi",
        "espoo-.fi",
        "espoo..fi",
        "kokeilu.espoo.123",
        "espoo.f",
        "kokeilu@espoo.fi",
        "kokeilu espoo.fi",
        ("x" * 64) + ".fi",
        "",
    ],
)
def test_anything_else_is_refused(domain):
    with pytest.raises(ValueError, match="not a full domain name"):
        check_domain(domain)


def test_a_message_id_without_a_delivery_is_still_at_the_mail_domain():
    _, parsed = received(
        compose("k@espoo.example", "a@espoo.example", Rendered("s", "x\n", "<p>x</p>\n", "en"), domain=DOMAIN)
    )
    assert parsed["Message-ID"].endswith("@kokeilu.espoo.fi>")


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "https://x.example/a b", "https://x.example/<x>", "https://x.example/ä"]
)
def test_an_unsubscribe_link_that_is_not_a_plain_http_url_is_refused(url):
    with pytest.raises(ValueError, match="an unsubscribe URL is an http"):
        compose(
            "k@espoo.example",
            "a@espoo.example",
            Rendered("s", "x\n", "<p>x</p>\n", "en"),
            domain=DOMAIN,
            unsubscribe_url=url,
        )


def test_the_module_writes_its_own_headers_as_they_are():
    assert emails.POLICY.refold_source == "none"


# the message written directly is the email package's, byte for byte ------------------------------
BOUNDARY = "===============0123456789012345678=="
_ANY_BOUNDARY = re.compile(rb"={15}\d{19}==")


def same_boundary(raw: bytes) -> bytes:
    return _ANY_BOUNDARY.sub(BOUNDARY.encode(), raw)


def written_both_ways(sender, to, words, **options):
    """(the email package's bytes, wire_message's), with the generator's random boundary made one."""
    expected = same_boundary(emails.wire(compose(sender, to, words, domain=DOMAIN, **options)))
    return expected, emails.wire_message(sender, to, words, domain=DOMAIN, boundary=BOUNDARY, **options)


@pytest.mark.parametrize("kind, language", sorted(SUBJECTS))
@pytest.mark.parametrize("link", [LINK, None])
def test_every_kind_and_language_is_written_directly_as_the_email_package_writes_it(kind, language, link):
    words = render(kind, PAYLOADS[kind](), language, link)
    expected, direct = written_both_ways(
        "Kokeilu <kokeilu@espoo.example>",
        "opetus.kasvatus@espoo.example",
        words,
        message_id="0b8e7c9e-delivery",
        unsubscribe_url=link,
        now=datetime(2026, 11, 28, 10, 0, 5, tzinfo=UTC),
    )
    assert direct == expected


_TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=300)
# Lines that the generator changes (From at a line start, a dot alone, long lines, trailing blanks).
_LINES = st.lists(st.sampled_from(["From here", ".", "-- ", "a" * 90, "x =3D y\t", "", "ä" * 40, "\r"]), max_size=8)


@settings(max_examples=300, deadline=None)
@given(
    subject=_TEXT,
    text=st.one_of(_TEXT, _LINES.map("\n".join)),
    html=st.one_of(_TEXT, _LINES.map("\r\n".join)),
    language=st.sampled_from(["fi", "sv", "en"]),
    sender=st.sampled_from(["kokeilu@espoo.example", "Kokeilu <k@espoo.example>", "Espoon kaupunki, Kokeilu <k@e.fi>"]),
    to=st.from_regex(emails._PLAIN_ADDRESS, fullmatch=True).filter(emails.plain_address),
    message_id=st.one_of(st.none(), st.uuids().map(str)),
    link=st.one_of(st.none(), st.just(LINK), st.just("https://x.example/" + "u" * 200)),
)
def test_any_words_are_written_directly_as_the_email_package_writes_them(
    subject, text, html, language, sender, to, message_id, link
):
    words = Rendered(subject, text, html, language)
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    if message_id is None:  # make_msgid is random: the same one both ways
        message_id = "fixed-for-the-test"
    expected, direct = written_both_ways(sender, to, words, message_id=message_id, unsubscribe_url=link, now=now)
    assert direct == expected


@pytest.mark.parametrize(
    "to", ["Anna <a@espoo.example>", "a..b@espoo.example", "ä@espoo.example", '"a b"@espoo.example', "x" * 70 + "@e.fi"]
)
def test_an_address_that_is_not_plain_is_left_to_the_email_package(to):
    assert not emails.plain_address(to)
    with pytest.raises(ValueError, match="plain addresses"):
        emails.wire_message("k@espoo.example", to, Rendered("s", "x\n", "<p>x</p>\n", "en"), domain=DOMAIN)


def test_the_envelope_sender_is_the_from_headers_address():
    assert emails.envelope_sender("Kokeilu <kokeilu@espoo.example>") == "kokeilu@espoo.example"
    assert emails.envelope_sender("kokeilu@espoo.example") == "kokeilu@espoo.example"
    assert emails.envelope_sender("Kokeilu <kokeilu@espöo.example>") is None  # SMTPUTF8: send_message's way


@contextmanager
def template_loads():
    """The names of the templates jinja2's loader loads inside the block."""
    from jinja2 import loaders

    loads: list[str] = []
    original = loaders.FileSystemLoader.load

    def counted(self, environment, name, globals=None):
        loads.append(name)
        return original(self, environment, name, globals)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loaders.FileSystemLoader, "load", counted)
        yield loads


def test_each_template_is_compiled_once_per_process():
    render("event", status_payload(), "en", LINK)  # compiled by now, whatever ran before
    with template_loads() as loads:
        for _ in range(3):
            render("event", status_payload(), "en", LINK)
    assert loads == []
    assert emails._text_env.auto_reload is False and emails._html_env.auto_reload is False


def test_every_template_can_be_compiled_up_front_and_is_then_not_loaded_again():
    assert emails.compile_templates() == len(emails._loader.list_templates()) >= 9 + 3
    with template_loads() as loads:
        for kind, language in SUBJECTS:
            render(kind, PAYLOADS[kind](), language, LINK)
        emails.unsubscribe_page("subscription", done=False)
    assert loads == []
