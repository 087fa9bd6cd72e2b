"""What the fault tests share: the tally of submitted jobs, and checks on a job's outcome."""

from __future__ import annotations

import email
import email.policy
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bson import ObjectId

from devstack import ServiceStack
from devstack.tcp_proxy import TcpProxy
from mp3mesh.core import gridfs_io, jobs
from mp3mesh.files.v1 import files_pb2

EXTRACTING = "-progress"  # only the extraction's ffmpeg command line has it (not the probes)


def behind(url: str, proxy: TcpProxy) -> str:
    """``url`` with its host and port replaced by the proxy's."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


def proxy_to(url: str) -> TcpProxy:
    parts = urlsplit(url)
    return TcpProxy(parts.hostname or "127.0.0.1", parts.port or 0).start()


def job_record(mesh: ServiceStack, job_id: str) -> dict:
    return mesh.db()[jobs.COLLECTION].find_one({"_id": ObjectId(job_id)})


def assert_converted_once(
    mesh: ServiceStack, done: files_pb2.Job, attempts: int, *, last: bool = True
) -> None:
    """SUCCEEDED after ``attempts`` starts, one MP3 in GridFS, one mail, and, if it is the
    ``last`` job running, no temp files."""
    assert done.status == files_pb2.JOB_STATUS_SUCCEEDED, done.error
    assert done.attempts == attempts
    mp3s = list(mesh.db()[f"{gridfs_io.MP3S}.files"].find({"metadata.job_id": done.id}))
    assert [m["_id"] for m in mp3s] == [ObjectId(done.mp3_file_id)]
    deadline = time.monotonic() + 30
    while not (mailed := mail_count(mesh, done.id)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert mailed == 1
    if last:
        assert list(Path(mesh.env["WORK_DIR"]).iterdir()) == [], "converter left temp files"


def libfaketime() -> Path:
    """Debian's libfaketime (scripts/bootstrap.sh --test installs it)."""
    found = sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))
    assert found, "libfaketime is not installed (apt-get install faketime)"
    return found[0]


def mail_count(mesh: ServiceStack, job_id: str) -> int:
    return sum(job_id.encode() in path.read_bytes() for path in mesh.mail_files())


@dataclass
class Tally:
    """The jobs the suite submitted and the status each should end in."""

    expected: dict[str, str] = field(default_factory=dict)

    def submitted(self, job_id: str, expected_status: str = jobs.SUCCEEDED) -> str:
        self.expected[job_id] = expected_status
        return job_id

    def count(self, mesh: ServiceStack) -> dict[str, int]:
        db = mesh.db()
        statuses = {d["_id"]: d["status"] for d in db[jobs.COLLECTION].find({}, {"status": 1})}
        mp3s = Counter(
            d["metadata"]["job_id"]
            for d in db[f"{gridfs_io.MP3S}.files"].find({}, {"metadata.job_id": 1})
            if "job_id" in d.get("metadata", {})  # an MP3 still being written has none yet
        )
        mails = Counter(_mailed_job(path) for path in mesh.mail_files())
        ids = {str(k): v for k, v in statuses.items()}
        mine = self.expected.keys()
        return {
            "jobs submitted": len(mine),
            "jobs succeeded": sum(ids.get(j) == jobs.SUCCEEDED for j in mine),
            "jobs failed (as expected)": sum(
                ids.get(j) == jobs.FAILED == self.expected[j] for j in mine
            ),
            "jobs lost": sum(ids.get(j) != self.expected[j] for j in mine),
            "jobs duplicated (more than one MP3)": sum(mp3s[j] > 1 for j in mine),
            "mails sent": sum(mails[j] for j in mine),
            "mails duplicated": sum(max(mails[j] - 1, 0) for j in mine),
        }


def _mailed_job(path: Path) -> str:
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    return str(msg["X-Mp3mesh-Job"])
