"""The bench tests run with the test-only methods registered (and only they: other packages do not)."""

import pytest

from tests.bench.fake_methods import registered


@pytest.fixture(scope="package", autouse=True)
def test_only_methods():
    from segscope.factory import list_models

    list_models()  # the built-in methods first, as the bench would register them
    with registered():
        yield
