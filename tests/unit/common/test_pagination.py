from datetime import UTC, datetime

import pytest

from services.common.errors import DomainError
from services.common.persistence.pagination import decode_page_token, encode_page_token, filter_digest, page_size


def test_a_token_round_trips_for_the_same_filters():
    moment = datetime(2012, 6, 21, 14, 0, tzinfo=UTC)
    digest = filter_digest("user-1", "accepted")
    token = encode_page_token(moment, "ord_abc", digest)
    assert decode_page_token(token, digest) == (moment, "ord_abc")
    assert decode_page_token("", digest) is None


@pytest.mark.parametrize("token", ["garbage", "%%%", "A" * 600, "AAAA"])
def test_bad_tokens_are_invalid_argument(token):
    with pytest.raises(DomainError) as err:
        decode_page_token(token, filter_digest("x"))
    assert err.value.reason == "INVALID_ARGUMENT"


def test_a_token_is_bound_to_its_filters():
    token = encode_page_token(datetime(2012, 6, 21, tzinfo=UTC), "ord_a", filter_digest("filled"))
    with pytest.raises(DomainError) as err:
        decode_page_token(token, filter_digest("canceled"))
    assert (err.value.reason, err.value.metadata["field"]) == ("INVALID_ARGUMENT", "page_token")


def test_page_size_defaults_caps_and_refuses_negative():
    assert page_size(0) == 50
    assert page_size(10_000) == 500
    with pytest.raises(DomainError) as err:
        page_size(-1)
    assert (err.value.reason, err.value.metadata["field"]) == ("INVALID_ARGUMENT", "page_size")
