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

class JobView(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_VIEW_UNSPECIFIED: _ClassVar[JobView]
    JOB_VIEW_BASIC: _ClassVar[JobView]
    JOB_VIEW_FULL: _ClassVar[JobView]

class JobStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATUS_UNSPECIFIED: _ClassVar[JobStatus]
    JOB_STATUS_QUEUED: _ClassVar[JobStatus]
    JOB_STATUS_PROCESSING: _ClassVar[JobStatus]
    JOB_STATUS_SUCCEEDED: _ClassVar[JobStatus]
    JOB_STATUS_FAILED: _ClassVar[JobStatus]
    JOB_STATUS_CANCELLED: _ClassVar[JobStatus]
JOB_VIEW_UNSPECIFIED: JobView
JOB_VIEW_BASIC: JobView
JOB_VIEW_FULL: JobView
JOB_STATUS_UNSPECIFIED: JobStatus
JOB_STATUS_QUEUED: JobStatus
JOB_STATUS_PROCESSING: JobStatus
JOB_STATUS_SUCCEEDED: JobStatus
JOB_STATUS_FAILED: JobStatus
JOB_STATUS_CANCELLED: JobStatus

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
    __slots__ = ("job_id", "fid", "view")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FID_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    fid: str
    view: JobView
    def __init__(self, job_id: _Optional[str] = ..., fid: _Optional[str] = ..., view: _Optional[_Union[JobView, str]] = ...) -> None: ...

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

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class CancelJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class DeleteJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class DeleteJobResponse(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class RetryJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class RetryJobResponse(_message.Message):
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
    __slots__ = ("id", "owner_id", "video_file_id", "mp3_file_id", "status", "progress_percent", "error", "attempts", "create_time", "update_time", "filename", "video_size_bytes", "video_sha256", "duration_seconds", "mp3_size_bytes", "options", "webhook_deliveries", "details")
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
    DETAILS_FIELD_NUMBER: _ClassVar[int]
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
    details: JobDetails
    def __init__(self, id: _Optional[str] = ..., owner_id: _Optional[str] = ..., video_file_id: _Optional[str] = ..., mp3_file_id: _Optional[str] = ..., status: _Optional[_Union[JobStatus, str]] = ..., progress_percent: _Optional[int] = ..., error: _Optional[str] = ..., attempts: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., filename: _Optional[str] = ..., video_size_bytes: _Optional[int] = ..., video_sha256: _Optional[str] = ..., duration_seconds: _Optional[float] = ..., mp3_size_bytes: _Optional[int] = ..., options: _Optional[_Union[ConversionOptions, _Mapping]] = ..., webhook_deliveries: _Optional[_Iterable[_Union[_webhooks_pb2.WebhookDelivery, _Mapping]]] = ..., details: _Optional[_Union[JobDetails, _Mapping]] = ...) -> None: ...

class JobDetails(_message.Message):
    __slots__ = ("probe", "ffmpeg_args", "stage_times", "attempt_history")
    PROBE_FIELD_NUMBER: _ClassVar[int]
    FFMPEG_ARGS_FIELD_NUMBER: _ClassVar[int]
    STAGE_TIMES_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_HISTORY_FIELD_NUMBER: _ClassVar[int]
    probe: MediaProbe
    ffmpeg_args: _containers.RepeatedScalarFieldContainer[str]
    stage_times: StageTimes
    attempt_history: _containers.RepeatedCompositeFieldContainer[JobAttempt]
    def __init__(self, probe: _Optional[_Union[MediaProbe, _Mapping]] = ..., ffmpeg_args: _Optional[_Iterable[str]] = ..., stage_times: _Optional[_Union[StageTimes, _Mapping]] = ..., attempt_history: _Optional[_Iterable[_Union[JobAttempt, _Mapping]]] = ...) -> None: ...

class MediaProbe(_message.Message):
    __slots__ = ("container", "duration_seconds", "bit_rate_bps", "streams")
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BIT_RATE_BPS_FIELD_NUMBER: _ClassVar[int]
    STREAMS_FIELD_NUMBER: _ClassVar[int]
    container: str
    duration_seconds: float
    bit_rate_bps: int
    streams: _containers.RepeatedCompositeFieldContainer[MediaStream]
    def __init__(self, container: _Optional[str] = ..., duration_seconds: _Optional[float] = ..., bit_rate_bps: _Optional[int] = ..., streams: _Optional[_Iterable[_Union[MediaStream, _Mapping]]] = ...) -> None: ...

class MediaStream(_message.Message):
    __slots__ = ("index", "type", "codec", "sample_rate_hz", "channel_layout", "bit_rate_bps")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_LAYOUT_FIELD_NUMBER: _ClassVar[int]
    BIT_RATE_BPS_FIELD_NUMBER: _ClassVar[int]
    index: int
    type: str
    codec: str
    sample_rate_hz: int
    channel_layout: str
    bit_rate_bps: int
    def __init__(self, index: _Optional[int] = ..., type: _Optional[str] = ..., codec: _Optional[str] = ..., sample_rate_hz: _Optional[int] = ..., channel_layout: _Optional[str] = ..., bit_rate_bps: _Optional[int] = ...) -> None: ...

class StageTimes(_message.Message):
    __slots__ = ("queued_seconds", "fetch_seconds", "convert_seconds", "store_seconds", "announce_seconds")
    QUEUED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FETCH_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CONVERT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    STORE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ANNOUNCE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    queued_seconds: float
    fetch_seconds: float
    convert_seconds: float
    store_seconds: float
    announce_seconds: float
    def __init__(self, queued_seconds: _Optional[float] = ..., fetch_seconds: _Optional[float] = ..., convert_seconds: _Optional[float] = ..., store_seconds: _Optional[float] = ..., announce_seconds: _Optional[float] = ...) -> None: ...

class JobAttempt(_message.Message):
    __slots__ = ("number", "start_time", "end_time", "outcome", "reason", "converter")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CONVERTER_FIELD_NUMBER: _ClassVar[int]
    number: int
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    outcome: str
    reason: str
    converter: str
    def __init__(self, number: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., outcome: _Optional[str] = ..., reason: _Optional[str] = ..., converter: _Optional[str] = ...) -> None: ...
