"""Keys of free-form maps in a command are text a service stores and names in its errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from libs.contracts.policies import EditPolicy


@pytest.mark.parametrize("key", ["a\x00b", "a\ud800b"])
def test_a_key_postgresql_cannot_store_is_refused_naming_it(key: str) -> None:
    """Found by fuzzing the API: a NUL in a settings key reached the scheduler, whose error
    message then quoted it and could not be sent back (the console answered 504)."""
    with pytest.raises(ValidationError) as refused:
        EditPolicy.model_validate({"policy": "Nights", "settings": {key: 1}})
    message = str(refused.value)
    assert "of settings" in message
    assert "\x00" not in message
    message.encode("utf-8")  # the message itself is sendable text
