import pytest

from tests.servers import Tls


@pytest.fixture(scope="package")
def tls(tmp_path_factory):
    """A throwaway CA and a certificate for localhost, shared by the connector servers."""
    return Tls.make(tmp_path_factory.mktemp("tls"))
