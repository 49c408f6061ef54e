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


class InvalidQueryParams(InvalidRequest):
    """A query-time knob (ef, nprobe) that the collection's index does not read."""

    code = "invalid_query_params"


class SettingFixed(InvalidRequest):
    """A collection setting that cannot change after creation (how its vectors were made)."""

    code = "setting_fixed"


class CollectionNotFound(ApplianceError):
    code = "collection_not_found"


class CollectionExists(ApplianceError):
    code = "collection_exists"


class DocumentNotFound(ApplianceError):
    code = "document_not_found"


class ModelNotFound(ApplianceError):
    code = "model_not_found"


class UnknownModel(ApplianceError):
    """A request named a model the registry does not hold (the server itself is fine)."""

    code = "unknown_model"


class DimensionsNotSupported(InvalidRequest):
    code = "dimensions_not_supported"


class ModelIntegrityError(ApplianceError):
    code = "model_integrity_error"


class NotReady(ApplianceError):
    code = "not_ready"


class Overloaded(ApplianceError):
    """More work is queued than the configured bound: answered 503 with Retry-After."""

    code = "overloaded"
    retry_after_seconds = 1


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


class DataDirBusy(ApplianceError):
    """Another process (a server, a restore, a migration) holds the data dir's lock."""

    code = "data_dir_busy"


class SchemaError(ApplianceError):
    """The data dir's database is not one this release can open as it is."""

    code = "schema_error"


class SchemaTooNew(SchemaError):
    """A newer release wrote the data dir: its schema revision is unknown here."""

    code = "schema_too_new"


class IndexBackendUnavailable(InvalidIndexSpec):
    """The backend asked for needs a package this installation lacks (pymilvus for milvus)."""

    code = "index_backend_unavailable"


class IndexServerError(ApplianceError):
    """The vector server a collection's index lives on (Milvus) failed or cannot be reached."""

    code = "index_server_error"
