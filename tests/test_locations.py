"""``locations``: an S3 URI parsed once into (bucket, key); every rule named when one is broken."""

from __future__ import annotations

import pytest

from stereocrafter.locations import S3Location, split_s3_uri


def test_a_uri_is_parsed_once_and_compared_parsed() -> None:
    loc = S3Location.parse("s3://my-videos/in/a b.mp4")
    assert (loc.bucket, loc.key, loc.uri) == ("my-videos", "in/a b.mp4", "s3://my-videos/in/a b.mp4")
    assert split_s3_uri("s3://b-1/k") == ("b-1", "k")


@pytest.mark.parametrize(
    ("uri", "message"),
    [(42, "must be a string"), ("https://b/k", "s3://bucket/key"), ("s3://bucket/", "no object key")],
)
def test_bad_uris_name_the_rule(uri: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        S3Location.parse(uri)
