"""Links to the files we send: valid for their media id until they expire, and only
with our signature."""

from __future__ import annotations

import uuid

from db.media_links import MediaLinks, link_is_valid, link_signature

SECRET = "test-media-link-secret-0123456789"


def test_a_link_holds_for_its_file_until_it_expires() -> None:
    media_id = uuid.uuid4()
    signature = link_signature(media_id, 1000, secret=SECRET)
    assert link_is_valid(media_id, "1000", signature, secret=SECRET, now=999.0)
    assert not link_is_valid(media_id, "1000", signature, secret=SECRET, now=1000.0)
    assert not link_is_valid(uuid.uuid4(), "1000", signature, secret=SECRET, now=999.0)
    assert not link_is_valid(media_id, "1001", signature, secret=SECRET, now=999.0)
    assert not link_is_valid(media_id, "1000", signature, secret="another secret", now=999.0)
    for expires, signed in ((None, signature), ("1000", None), ("-5", signature), ("1e3", "x")):
        assert not link_is_valid(media_id, expires, signed, secret=SECRET, now=0.0)


def test_a_signed_url_lives_under_the_public_base_url() -> None:
    media_id = uuid.uuid4()
    url = MediaLinks("https://bot.example.com", SECRET, 600).url(media_id, now=1000.4)
    signature = link_signature(media_id, 1600, secret=SECRET)
    assert (
        url
        == f"https://bot.example.com/media/replies/{media_id}?expires=1600&signature={signature}"
    )
