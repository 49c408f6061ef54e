"""Error types shared by every layer; the API maps each to an HTTP status in one place."""

from __future__ import annotations


class ApplianceError(Exception):
    """Base class: `code` is the stable machine-readable name, the message says what to fix."""

    code = "appliance_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidConfig(ApplianceError):
    code = "invalid_config"


class InvalidRequest(ApplianceError):
    code = "invalid_request"


class InvalidFilter(InvalidRequest):
    code = "invalid_filter"


class InvalidIndexSpec(InvalidRequest):
    code = "invalid_index_spec"


class CollectionNotFound(ApplianceError):
    code = "collection_not_found"


class CollectionExists(ApplianceError):
    code = "collection_exists"


class DocumentNotFound(ApplianceError):
    code = "document_not_found"


class ModelNotFound(ApplianceError):
    code = "model_not_found"


class ModelIntegrityError(ApplianceError):
    code = "model_integrity_error"


class NotReady(ApplianceError):
    code = "not_ready"


class QueryNotFound(ApplianceError):
    code = "query_not_found"


class JobNotFound(ApplianceError):
    code = "job_not_found"


class VersionNotFound(ApplianceError):
    code = "version_not_found"


class ReindexConflict(ApplianceError):
    """A reindex of the collection is already running, or the request would drop the version
    the collection searches with."""

    code = "reindex_conflict"


class IndexBackendUnavailable(InvalidIndexSpec):
    """The backend asked for needs a package this installation lacks (pymilvus for milvus)."""

    code = "index_backend_unavailable"


class IndexServerError(ApplianceError):
    """The vector server a collection's index lives on (Milvus) failed or cannot be reached."""

    code = "index_server_error"
