import pytest

from documents import vectors


@pytest.fixture(autouse=True)
def _index_in_the_test(settings):
    """Tests run the indexing jobs themselves (documents.indexing.run_pending)."""
    settings.DOCUMENTS_INDEX_IN_WEB = False
    vectors.cache.clear()
    yield
    vectors.cache.clear()
