import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from mp3mesh.files.v1 import files_pb2 as _files_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VideoUploaded(_message.Message):
    __slots__ = ("job_id", "owner_id", "owner_email", "video_file_id", "filename", "size_bytes", "upload_time")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_EMAIL_FIELD_NUMBER: _ClassVar[int]
    VIDEO_FILE_ID_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_TIME_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    owner_id: str
    owner_email: str
    video_file_id: str
    filename: str
    size_bytes: int
    upload_time: _timestamp_pb2.Timestamp
    def __init__(self, job_id: _Optional[str] = ..., owner_id: _Optional[str] = ..., owner_email: _Optional[str] = ..., video_file_id: _Optional[str] = ..., filename: _Optional[str] = ..., size_bytes: _Optional[int] = ..., upload_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class JobFinished(_message.Message):
    __slots__ = ("job_id", "owner_id", "owner_email", "status", "mp3_file_id", "error", "duration_seconds", "mp3_size_bytes", "filename", "finish_time")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_EMAIL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MP3_FILE_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MP3_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    FINISH_TIME_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    owner_id: str
    owner_email: str
    status: _files_pb2.JobStatus
    mp3_file_id: str
    error: str
    duration_seconds: float
    mp3_size_bytes: int
    filename: str
    finish_time: _timestamp_pb2.Timestamp
    def __init__(self, job_id: _Optional[str] = ..., owner_id: _Optional[str] = ..., owner_email: _Optional[str] = ..., status: _Optional[_Union[_files_pb2.JobStatus, str]] = ..., mp3_file_id: _Optional[str] = ..., error: _Optional[str] = ..., duration_seconds: _Optional[float] = ..., mp3_size_bytes: _Optional[int] = ..., filename: _Optional[str] = ..., finish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class JobChanged(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _files_pb2.Job
    def __init__(self, job: _Optional[_Union[_files_pb2.Job, _Mapping]] = ...) -> None: ...
