import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import httpbody_pb2 as _httpbody_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from mp3mesh.webhooks.v1 import webhooks_pb2 as _webhooks_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATUS_UNSPECIFIED: _ClassVar[JobStatus]
    JOB_STATUS_QUEUED: _ClassVar[JobStatus]
    JOB_STATUS_PROCESSING: _ClassVar[JobStatus]
    JOB_STATUS_SUCCEEDED: _ClassVar[JobStatus]
    JOB_STATUS_FAILED: _ClassVar[JobStatus]
JOB_STATUS_UNSPECIFIED: JobStatus
JOB_STATUS_QUEUED: JobStatus
JOB_STATUS_PROCESSING: JobStatus
JOB_STATUS_SUCCEEDED: JobStatus
JOB_STATUS_FAILED: JobStatus

class ResumableUpload(_message.Message):
    __slots__ = ("upload_id", "committed_size", "total_size", "expire_time", "job_id", "metadata", "extra_metadata")
    class ExtraMetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_SIZE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    EXTRA_METADATA_FIELD_NUMBER: _ClassVar[int]
    upload_id: str
    committed_size: int
    total_size: int
    expire_time: _timestamp_pb2.Timestamp
    job_id: str
    metadata: UploadMetadata
    extra_metadata: _containers.ScalarMap[str, str]
    def __init__(self, upload_id: _Optional[str] = ..., committed_size: _Optional[int] = ..., total_size: _Optional[int] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., job_id: _Optional[str] = ..., metadata: _Optional[_Union[UploadMetadata, _Mapping]] = ..., extra_metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class StartResumableUploadRequest(_message.Message):
    __slots__ = ("metadata", "total_size", "extra_metadata")
    class ExtraMetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    EXTRA_METADATA_FIELD_NUMBER: _ClassVar[int]
    metadata: UploadMetadata
    total_size: int
    extra_metadata: _containers.ScalarMap[str, str]
    def __init__(self, metadata: _Optional[_Union[UploadMetadata, _Mapping]] = ..., total_size: _Optional[int] = ..., extra_metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class StartResumableUploadResponse(_message.Message):
    __slots__ = ("upload",)
    UPLOAD_FIELD_NUMBER: _ClassVar[int]
    upload: ResumableUpload
    def __init__(self, upload: _Optional[_Union[ResumableUpload, _Mapping]] = ...) -> None: ...

class WriteResumableUploadRequest(_message.Message):
    __slots__ = ("upload_id", "write_offset", "data", "checksum_sha1")
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    WRITE_OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_SHA1_FIELD_NUMBER: _ClassVar[int]
    upload_id: str
    write_offset: int
    data: bytes
    checksum_sha1: bytes
    def __init__(self, upload_id: _Optional[str] = ..., write_offset: _Optional[int] = ..., data: _Optional[bytes] = ..., checksum_sha1: _Optional[bytes] = ...) -> None: ...

class WriteResumableUploadResponse(_message.Message):
    __slots__ = ("upload",)
    UPLOAD_FIELD_NUMBER: _ClassVar[int]
    upload: ResumableUpload
    def __init__(self, upload: _Optional[_Union[ResumableUpload, _Mapping]] = ...) -> None: ...

class QueryResumableUploadRequest(_message.Message):
    __slots__ = ("upload_id",)
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    upload_id: str
    def __init__(self, upload_id: _Optional[str] = ...) -> None: ...

class QueryResumableUploadResponse(_message.Message):
    __slots__ = ("upload",)
    UPLOAD_FIELD_NUMBER: _ClassVar[int]
    upload: ResumableUpload
    def __init__(self, upload: _Optional[_Union[ResumableUpload, _Mapping]] = ...) -> None: ...

class CancelResumableUploadRequest(_message.Message):
    __slots__ = ("upload_id",)
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    upload_id: str
    def __init__(self, upload_id: _Optional[str] = ...) -> None: ...

class CancelResumableUploadResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class UploadMetadata(_message.Message):
    __slots__ = ("filename", "content_type", "size_bytes", "sha256", "options")
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    options: ConversionOptions
    def __init__(self, filename: _Optional[str] = ..., content_type: _Optional[str] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ..., options: _Optional[_Union[ConversionOptions, _Mapping]] = ...) -> None: ...

class ConversionOptions(_message.Message):
    __slots__ = ("preset", "bitrate_kbps", "vbr_quality", "channels", "sample_rate_hz", "start", "end", "loudness_lufs", "title", "artist", "album", "cover_at")
    PRESET_FIELD_NUMBER: _ClassVar[int]
    BITRATE_KBPS_FIELD_NUMBER: _ClassVar[int]
    VBR_QUALITY_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    LOUDNESS_LUFS_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    ARTIST_FIELD_NUMBER: _ClassVar[int]
    ALBUM_FIELD_NUMBER: _ClassVar[int]
    COVER_AT_FIELD_NUMBER: _ClassVar[int]
    preset: str
    bitrate_kbps: int
    vbr_quality: int
    channels: str
    sample_rate_hz: int
    start: str
    end: str
    loudness_lufs: float
    title: str
    artist: str
    album: str
    cover_at: str
    def __init__(self, preset: _Optional[str] = ..., bitrate_kbps: _Optional[int] = ..., vbr_quality: _Optional[int] = ..., channels: _Optional[str] = ..., sample_rate_hz: _Optional[int] = ..., start: _Optional[str] = ..., end: _Optional[str] = ..., loudness_lufs: _Optional[float] = ..., title: _Optional[str] = ..., artist: _Optional[str] = ..., album: _Optional[str] = ..., cover_at: _Optional[str] = ...) -> None: ...

class Preset(_message.Message):
    __slots__ = ("name", "description", "options")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    options: ConversionOptions
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., options: _Optional[_Union[ConversionOptions, _Mapping]] = ...) -> None: ...

class ListPresetsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListPresetsResponse(_message.Message):
    __slots__ = ("presets",)
    PRESETS_FIELD_NUMBER: _ClassVar[int]
    presets: _containers.RepeatedCompositeFieldContainer[Preset]
    def __init__(self, presets: _Optional[_Iterable[_Union[Preset, _Mapping]]] = ...) -> None: ...

class UploadRequest(_message.Message):
    __slots__ = ("metadata", "chunk", "http_body")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    HTTP_BODY_FIELD_NUMBER: _ClassVar[int]
    metadata: UploadMetadata
    chunk: bytes
    http_body: _httpbody_pb2.HttpBody
    def __init__(self, metadata: _Optional[_Union[UploadMetadata, _Mapping]] = ..., chunk: _Optional[bytes] = ..., http_body: _Optional[_Union[_httpbody_pb2.HttpBody, _Mapping]] = ...) -> None: ...

class UploadResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class DownloadRequest(_message.Message):
    __slots__ = ("file_id", "fid", "read_offset", "read_limit")
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    FID_FIELD_NUMBER: _ClassVar[int]
    READ_OFFSET_FIELD_NUMBER: _ClassVar[int]
    READ_LIMIT_FIELD_NUMBER: _ClassVar[int]
    file_id: str
    fid: str
    read_offset: int
    read_limit: int
    def __init__(self, file_id: _Optional[str] = ..., fid: _Optional[str] = ..., read_offset: _Optional[int] = ..., read_limit: _Optional[int] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id", "fid")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    fid: str
    def __init__(self, job_id: _Optional[str] = ..., fid: _Optional[str] = ...) -> None: ...

class GetJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class WatchJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "owner_id", "video_file_id", "mp3_file_id", "status", "progress_percent", "error", "attempts", "create_time", "update_time", "filename", "video_size_bytes", "video_sha256", "duration_seconds", "mp3_size_bytes", "options", "webhook_deliveries")
    ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    VIDEO_FILE_ID_FIELD_NUMBER: _ClassVar[int]
    MP3_FILE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_PERCENT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    VIDEO_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    VIDEO_SHA256_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MP3_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    id: str
    owner_id: str
    video_file_id: str
    mp3_file_id: str
    status: JobStatus
    progress_percent: int
    error: str
    attempts: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    filename: str
    video_size_bytes: int
    video_sha256: str
    duration_seconds: float
    mp3_size_bytes: int
    options: ConversionOptions
    webhook_deliveries: _containers.RepeatedCompositeFieldContainer[_webhooks_pb2.WebhookDelivery]
    def __init__(self, id: _Optional[str] = ..., owner_id: _Optional[str] = ..., video_file_id: _Optional[str] = ..., mp3_file_id: _Optional[str] = ..., status: _Optional[_Union[JobStatus, str]] = ..., progress_percent: _Optional[int] = ..., error: _Optional[str] = ..., attempts: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., filename: _Optional[str] = ..., video_size_bytes: _Optional[int] = ..., video_sha256: _Optional[str] = ..., duration_seconds: _Optional[float] = ..., mp3_size_bytes: _Optional[int] = ..., options: _Optional[_Union[ConversionOptions, _Mapping]] = ..., webhook_deliveries: _Optional[_Iterable[_Union[_webhooks_pb2.WebhookDelivery, _Mapping]]] = ...) -> None: ...
