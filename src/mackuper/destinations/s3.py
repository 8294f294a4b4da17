"""AWS S3 and S3-compatible stores (MinIO, Backblaze B2, Cloudflare R2, Wasabi).

Archives of unknown length are streamed as multipart uploads: parts are cut from
the stream, uploaded by a few threads from a bounded queue (so memory stays at
about (in_flight + 1) x part size), and the part size doubles every 1,000 parts
so even 5 TiB fits in S3's 10,000-part limit. Any failure aborts the upload:
nothing half-written becomes visible.

Nothing is ever replaced. Before an object is published the key is looked at
(HEAD), and the publishing request itself carries `If-None-Match: *`, so a server
that supports conditional writes (AWS since 2024, MinIO, moto) refuses it
atomically when another writer got there in between; a server that ignores the
header (rclone serve s3 does) still had the look. A server that rejects the
header as not implemented is asked again without it, after the look.

A short outage does not fail the backup: every request the backup makes (create,
upload part, complete, put, head) is tried again through refused or reset
connections, timeouts, 5xx answers and throttling, after 1, 2, 4, ... seconds (at
most 30 apart) for up to `retry_seconds` (MACKUPER_RETRY_SECONDS in the worker;
none in a web request, where a person waits; core/outage.py). botocore's own
retries are turned off so that one schedule, ours, decides. When the outage
outlasts the budget the upload is aborted; if the store cannot be reached for
that either, the writer says so (`abort` returns False) and the upload id recorded
when the upload started lets the worker's recovery abort it later.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from typing import IO, TYPE_CHECKING, Any, TypeVar, cast

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from mackuper.core.naming import normalize_prefix
from mackuper.core.outage import Outage
from mackuper.destinations.base import (
    PUT_PIECE,
    DestinationError,
    DestinationUnreachable,
    Lock,
    ObjectExists,
    StoredObject,
    UploadStarted,
    content_disposition,
)

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import (
        CompletedPartTypeDef,
        ListObjectsV2OutputTypeDef,
        ObjectLockRetentionTypeDef,
    )

logger = logging.getLogger(__name__)

MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PART_SIZE = 5 * 1024 * 1024 * 1024
MAX_OBJECT_SIZE = 5 * 1024**4
DEFAULT_PART_SIZE = 8 * 1024 * 1024
MAX_PARTS = 10_000
PARTS_PER_SIZE_STEP = 1_000
ABORT_RETRY_SECONDS = 10.0
"""How long a failed run's writer keeps trying to abort its upload; recovery does the rest."""
QUICK_RETRY_SECONDS = 3.0
"""Every request rides out a blip this long (tries at 0, 1 and 3 s), even where a person
waits: what botocore's own retries gave before `call` took them over."""

T = TypeVar("T")


def part_size_for(part_number: int, base: int = DEFAULT_PART_SIZE) -> int:
    """Size of part `part_number` (1-based): `base`, doubled every 1,000 parts."""
    return base << ((part_number - 1) // PARTS_PER_SIZE_STEP)


_PRECONDITION_FAILED = {"PreconditionFailed", "412", "ConditionalRequestConflict"}
_NOT_IMPLEMENTED = {"NotImplemented", "501"}
_TRANSIENT = {
    "SlowDown",
    "InternalError",
    "ServiceUnavailable",
    "RequestTimeout",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
}


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def explain_client_error(error: Exception, bucket: str, region: str) -> DestinationError:
    """One plain sentence for what S3 (or the network) said."""
    if isinstance(error, EndpointConnectionError | ConnectTimeoutError):
        return DestinationUnreachable("the S3 endpoint is unreachable (connection failed)")
    if isinstance(error, ReadTimeoutError):
        return DestinationUnreachable("the S3 endpoint stopped answering (read timeout)")
    if isinstance(error, NoCredentialsError):
        return DestinationError("no S3 access key is set")
    if not isinstance(error, ClientError):
        return DestinationUnreachable(f"S3 request failed: {type(error).__name__}")
    code = str(error.response.get("Error", {}).get("Code", ""))
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code in {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}:
        return DestinationError(f"S3 rejected the credentials ({code}): check the access keys")
    if code in {"NoSuchBucket"} or (code == "404" and status == 404):
        return DestinationError(f"bucket {bucket!r} does not exist")
    if code in {"AccessDenied", "AllAccessDisabled", "403"}:
        return DestinationError(
            f"access denied to bucket {bucket!r}: the key lacks s3:PutObject, s3:GetObject,"
            " s3:DeleteObject or s3:ListBucket"
        )
    if code in {"PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraint"}:
        return DestinationError(
            f"bucket {bucket!r} is not in region {region!r} ({code}): set the bucket's region"
        )
    if code in _TRANSIENT or (isinstance(status, int) and (status >= 500 or status == 429)):
        return DestinationUnreachable(f"S3 is temporarily unavailable ({code or status})")
    message = str(error.response.get("Error", {}).get("Message", "")) or code
    return DestinationError(f"S3 error {code or status}: {message}")


class S3Writer:
    def __init__(
        self,
        destination: S3Destination,
        key: str,
        metadata: dict[str, str],
        on_upload_started: UploadStarted | None,
    ) -> None:
        self.destination = destination
        self.key = key
        self.metadata = metadata
        self.on_upload_started = on_upload_started
        self.buffer = bytearray()
        self.part_number = 1
        self.size = 0
        self.upload_id: str | None = None
        self.parts: dict[int, Future[str]] = {}
        self.slots = threading.BoundedSemaphore(destination.parts_in_flight)
        self.executor: ThreadPoolExecutor | None = None
        self.failed: BaseException | None = None
        self.stopped = threading.Event()
        """Set when the upload failed or is aborted: parts waiting to retry give up."""
        self.aborted: bool | None = None

    def write(self, data: bytes | memoryview) -> None:
        """Fill the current part; a full part is handed to the uploaders as is.

        No part is ever copied: memory is the parts in flight plus the one filling.
        """
        if self.failed is not None:
            raise self._error(self.failed)
        view = memoryview(data)
        self.size += len(view)
        while view:
            room = part_size_for(self.part_number, self.destination.part_size) - len(self.buffer)
            self.buffer += view[:room]
            view = view[room:]
            if len(self.buffer) >= part_size_for(self.part_number, self.destination.part_size):
                part, self.buffer = self.buffer, bytearray()
                self._submit(part)

    def _start(self) -> str:
        if self.upload_id is None:
            extra = self.destination.put_arguments(self.metadata)
            try:
                response = self.destination.call(
                    lambda: self.destination.client.create_multipart_upload(
                        Bucket=self.destination.bucket, Key=self.key, **extra
                    ),
                    self.stopped,
                )
            except (BotoCoreError, ClientError) as error:
                raise self._error(error) from None
            self.upload_id = response["UploadId"]
            if self.on_upload_started is not None:
                self.on_upload_started(self.upload_id)
            self.executor = ThreadPoolExecutor(
                max_workers=self.destination.parts_in_flight, thread_name_prefix="s3-part"
            )
        return self.upload_id

    def _submit(self, chunk: bytes | bytearray) -> None:
        upload_id = self._start()
        if self.part_number > MAX_PARTS:
            raise DestinationError("the archive is larger than S3's 10,000-part limit allows")
        self.slots.acquire()
        if self.failed is not None:
            self.slots.release()
            raise self._error(self.failed)
        if self.executor is None:
            raise DestinationError("upload was not started")
        number = self.part_number
        self.part_number += 1
        self.parts[number] = self.executor.submit(self._upload_part, upload_id, number, chunk)

    def _upload_part(self, upload_id: str, number: int, chunk: bytes | bytearray) -> str:
        try:
            # Content-MD5 is the per-part checksum every S3 server verifies.
            digest = base64.b64encode(hashlib.md5(chunk, usedforsecurity=False).digest()).decode()
            response = self.destination.call(
                lambda: self.destination.client.upload_part(
                    Bucket=self.destination.bucket,
                    Key=self.key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=cast(bytes, chunk),  # botocore takes a bytearray; its stubs do not
                    ContentMD5=digest,
                ),
                self.stopped,
            )
            return response["ETag"]
        except BaseException as error:
            self.failed = self.failed or error
            self.stopped.set()
            raise
        finally:
            self.slots.release()

    def _error(self, error: BaseException) -> DestinationError:
        if isinstance(error, DestinationError):
            return error
        if isinstance(error, BotoCoreError | ClientError):
            return explain_client_error(error, self.destination.bucket, self.destination.region)
        return DestinationError(f"upload failed: {type(error).__name__}: {error}")

    def commit(self) -> StoredObject:
        try:
            if self.upload_id is None:
                self.destination.put_bytes(
                    self.key, bytes(self.buffer), "application/octet-stream", self.metadata
                )
                self.buffer.clear()
                return StoredObject(key=self.key, size=self.size)
            if self.buffer or self.part_number == 1:
                part, self.buffer = self.buffer, bytearray()
                self._submit(part)
            completed: list[CompletedPartTypeDef] = [
                {"PartNumber": number, "ETag": future.result()}
                for number, future in sorted(self.parts.items())
            ]
            upload_id = self.upload_id
            self.destination.publish(
                self.key,
                self.size,
                self.metadata,
                lambda condition: self.destination.client.complete_multipart_upload(
                    Bucket=self.destination.bucket,
                    Key=self.key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": completed},
                    **condition,
                ),
            )
        except BaseException as error:
            self.abort()
            if isinstance(error, DestinationError | BotoCoreError | ClientError):
                raise self._error(error) from None
            raise
        self._shutdown()
        return StoredObject(key=self.key, size=self.size)

    def _shutdown(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
            self.executor = None

    def abort(self) -> bool:
        if self.aborted is not None:
            return self.aborted
        self.failed = self.failed or DestinationError("upload aborted")
        self.stopped.set()
        self._shutdown()
        self.buffer.clear()
        self.aborted = True
        if self.upload_id is not None:
            try:
                budget = min(ABORT_RETRY_SECONDS, self.destination.retry_seconds)
                self.destination.abort_upload(self.key, self.upload_id, budget)
            except DestinationError as error:
                logger.warning("upload of %s left for recovery to abort: %s", self.key, error)
                self.aborted = False
        return self.aborted


_session_lock = threading.Lock()
_session: boto3.session.Session | None = None


def _client(**arguments: Any) -> S3Client:
    """An S3 client from the one boto3 session of this process.

    A new session parses botocore's S3 service description and endpoint data again
    for its first client: measured with six small backups to S3 in one process, a
    session per destination left the process 12 MiB larger (119 MiB against 107) and
    still growing, which made every S3 run look like a leak to the worker's recycling
    (worker/service.py `grown`). Sessions are not thread-safe; the clients they make
    are, so clients are made under a lock.
    """
    global _session  # noqa: PLW0603 - one session per process, made on first use
    with _session_lock:
        if _session is None:
            _session = boto3.session.Session()
        return _session.client("s3", **arguments)


def warm_up() -> None:
    """Load what the first S3 client loads (botocore's service and endpoint data, ~12 MiB),
    so that a worker measures its start with it (worker/service.py `Worker.warm_up`)."""
    _client(region_name="us-east-1", aws_access_key_id="-", aws_secret_access_key="-")  # noqa: S106 - not a key: no request is made


class S3Destination:
    kind = "s3"

    def __init__(
        self,
        *,
        bucket: str,
        access_key_id: str,
        secret_access_key: str,
        region: str = "us-east-1",
        endpoint_url: str | None = None,
        prefix: str = "",
        path_style: bool = False,
        storage_class: str | None = None,
        server_side_encryption: str | None = None,
        kms_key_id: str | None = None,
        part_size: int = DEFAULT_PART_SIZE,
        parts_in_flight: int = 3,
        connect_timeout: float = 10,
        read_timeout: float = 60,
        retry_seconds: float = 0.0,
        object_lock_mode: str = "",
        delete_key: tuple[str, str] = ("", ""),
    ) -> None:
        """`retry_seconds`: how long an outage is retried before a request fails; the
        worker passes MACKUPER_RETRY_SECONDS, a web request (a person waiting) none.

        `object_lock_mode` (GOVERNANCE or COMPLIANCE): every object is stored with that
        retention until `retain_until`, which the backup sets from the job's policy.

        `delete_key` (access key id, secret): a second key that deletes, so the first
        one needs no delete right; `check_access` then proves the first cannot delete."""
        if not bucket:
            raise DestinationError("an S3 destination needs a bucket name")
        if part_size < MIN_PART_SIZE:
            raise DestinationError("S3 parts must be at least 5 MiB")
        self.bucket = bucket
        self.region = region or "us-east-1"
        self.endpoint_url = endpoint_url or None
        self.prefix = normalize_prefix(prefix)
        self.storage_class = storage_class or None
        self.server_side_encryption = server_side_encryption or None
        self.kms_key_id = kms_key_id or None
        self.part_size = part_size
        self.parts_in_flight = max(1, parts_in_flight)
        self.conditional_writes = True
        """False once the server said it does not implement If-None-Match."""
        self.retry_seconds = retry_seconds
        self.lock_mode = object_lock_mode.upper()
        if self.lock_mode not in {"", "GOVERNANCE", "COMPLIANCE"}:
            raise DestinationError("the Object Lock mode is GOVERNANCE or COMPLIANCE")
        self.retain_until: datetime | None = None
        self._versioned: bool | None = None
        config = Config(
            region_name=self.region,
            signature_version="s3v4",
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"total_max_attempts": 1, "mode": "standard"},  # `call` retries
            s3={"addressing_style": "path" if path_style else "auto"},
            max_pool_connections=self.parts_in_flight + 4,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self.client: S3Client = _client(
            aws_access_key_id=access_key_id or None,
            aws_secret_access_key=secret_access_key or None,
            endpoint_url=self.endpoint_url,
            config=config,
        )
        self.separate_delete_key = bool(delete_key[0] and delete_key[1])
        self.deleter: S3Client = (
            _client(
                aws_access_key_id=delete_key[0],
                aws_secret_access_key=delete_key[1],
                endpoint_url=self.endpoint_url,
                config=config,
            )
            if self.separate_delete_key
            else self.client
        )
        self.checked: list[str] = []
        """What `check_access` proved beyond reading and writing (for Test connection)."""

    def describe(self) -> str:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"s3://{self.bucket}/{self.prefix}{where}"

    def put_arguments(self, metadata: dict[str, str]) -> dict[str, Any]:
        arguments: dict[str, Any] = {"Metadata": metadata}
        if self.storage_class:
            arguments["StorageClass"] = self.storage_class
        if self.server_side_encryption:
            arguments["ServerSideEncryption"] = self.server_side_encryption
            if self.kms_key_id:
                arguments["SSEKMSKeyId"] = self.kms_key_id
        if self.lock_mode and self.retain_until is not None:
            arguments["ObjectLockMode"] = self.lock_mode
            arguments["ObjectLockRetainUntilDate"] = self.retain_until
        return arguments

    def _fail(self, error: Exception) -> DestinationError:
        return explain_client_error(error, self.bucket, self.region)

    def call(
        self,
        request: Callable[[], T],
        stop: threading.Event | None = None,
        budget: float | None = None,
    ) -> T:
        """`request()`, tried again through transient failures for up to `budget` seconds
        after the first one (default: `retry_seconds`, at least QUICK_RETRY_SECONDS).

        Raises what the request raised when retrying cannot help (credentials, a missing
        bucket, a refused condition), and DestinationUnreachable naming this destination
        once the outage outlasts the budget or `stop` is set.
        """
        wanted = max(self.retry_seconds, QUICK_RETRY_SECONDS) if budget is None else budget
        outage = Outage(wanted, stop)
        while True:
            try:
                return request()
            except (BotoCoreError, ClientError) as error:
                explained = self._fail(error)
                if not explained.retryable:
                    raise
                if outage.attempts == 0:
                    logger.warning("%s: %s; retrying", self.describe(), explained)
                if not outage.pause():
                    raise DestinationUnreachable(
                        f"{self.describe()} unreachable: {explained}; gave up after"
                        f" {outage.attempts} attempts over {outage.elapsed():.0f} s"
                    ) from None

    def open_writer(
        self, key: str, metadata: dict[str, str], on_upload_started: UploadStarted | None = None
    ) -> S3Writer:
        return S3Writer(self, key, metadata, on_upload_started)

    def put_bytes(
        self,
        key: str,
        data: bytes | bytearray,
        content_type: str,
        metadata: dict[str, str] | None = None,
    ) -> None:
        digest = hashlib.md5(data, usedforsecurity=False).digest()
        body = cast(bytes, data)  # botocore takes a bytearray; its stubs do not
        self._put_object(key, body, len(data), digest, content_type, metadata or {})

    def put_file(self, key: str, file: IO[bytes], content_type: str) -> None:
        md5 = hashlib.md5(usedforsecurity=False)
        file.seek(0)
        while piece := file.read(PUT_PIECE):
            md5.update(piece)
        self._put_object(key, file, file.tell(), md5.digest(), content_type, {})

    def _put_object(
        self,
        key: str,
        body: bytes | IO[bytes],
        size: int,
        md5: bytes,
        content_type: str,
        metadata: dict[str, str],
    ) -> None:
        """One conditional PutObject of `body` (a file is sent whole from its start on
        every try)."""

        def put(condition: dict[str, Any]) -> object:
            if not isinstance(body, bytes):
                body.seek(0)
            return self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentLength=size,
                ContentType=content_type,
                ContentMD5=base64.b64encode(md5).decode(),
                **self.put_arguments(metadata),
                **condition,
            )

        try:
            self.publish(key, size, metadata, put)
        except (BotoCoreError, ClientError) as error:
            raise self._fail(error) from None

    def publish(
        self,
        key: str,
        size: int,
        metadata: dict[str, str],
        request: Callable[[dict[str, Any]], object],
    ) -> None:
        """Send the request that makes `key` visible, only if nothing is there yet.

        Raises ObjectExists when an object is at `key`, unless it is this very write
        (a retried request whose first try went through: same size and metadata).
        """
        if self.stat(key) is not None:  # retried through an outage, like the request
            raise ObjectExists(
                f"{key} already exists in bucket {self.bucket!r}; it was left as it is"
            )
        condition: dict[str, Any] = {"IfNoneMatch": "*"} if self.conditional_writes else {}
        try:
            self.call(lambda: request(condition))
        except ClientError as error:
            if _error_code(error) in _NOT_IMPLEMENTED and condition:
                self.conditional_writes = False
                self.call(lambda: request({}))
                return
            if _error_code(error) == "NoSuchUpload" and self._is_own_write(key, size, metadata):
                return  # a retried completion whose first try went through
            if _error_code(error) not in _PRECONDITION_FAILED:
                raise
            if not self._is_own_write(key, size, metadata):
                raise ObjectExists(
                    f"{key} was stored by another writer meanwhile in bucket {self.bucket!r};"
                    " it was left as it is"
                ) from None

    def _is_own_write(self, key: str, size: int, metadata: dict[str, str]) -> bool:
        try:
            head = self.call(lambda: self.client.head_object(Bucket=self.bucket, Key=key))
        except (BotoCoreError, ClientError, DestinationError):
            return False
        return bool(metadata) and head["ContentLength"] == size and head["Metadata"] == metadata

    def stat(self, key: str) -> StoredObject | None:
        try:
            head = self.call(lambda: self.client.head_object(Bucket=self.bucket, Key=key))
        except ClientError as error:
            if _error_code(error) in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise self._fail(error) from None
        except BotoCoreError as error:
            raise self._fail(error) from None
        return StoredObject(key=key, size=head["ContentLength"], modified=head.get("LastModified"))

    def get_bytes(self, key: str) -> bytes:
        return b"".join(self.iter_chunks(key))

    def iter_chunks(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        try:
            body = self.call(lambda: self.client.get_object(Bucket=self.bucket, Key=key)["Body"])
            yield from body.iter_chunks(chunk_size)
        except (BotoCoreError, ClientError) as error:
            raise self._fail(error) from None

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise DestinationError("a range starts and runs at zero or more bytes")
        if length == 0:
            return b""
        try:
            return self.call(
                lambda: self.client.get_object(
                    Bucket=self.bucket, Key=key, Range=f"bytes={offset}-{offset + length - 1}"
                )["Body"].read()
            )
        except ClientError as error:
            if _error_code(error) == "InvalidRange":  # the range starts past the end
                return b""
            raise self._fail(error) from None
        except BotoCoreError as error:
            raise self._fail(error) from None

    def presign(self, key: str, filename: str, seconds: int) -> str | None:
        return self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "ResponseContentDisposition": content_disposition(filename),
            },
            ExpiresIn=seconds,
        )

    def delete(self, key: str) -> None:
        """Remove the object; on a versioned bucket every version of it, not just adding a
        delete marker (a version still locked refuses, and the error says so)."""
        try:
            if not self.versioned():
                self.call(lambda: self.deleter.delete_object(Bucket=self.bucket, Key=key))
                return
            for version in self._versions(key):
                self.call(
                    partial(
                        self.deleter.delete_object, Bucket=self.bucket, Key=key, VersionId=version
                    )
                )
        except ClientError as error:
            if _error_code(error) == "AccessDenied" and self.versioned():
                try:
                    lock = self.lock_of(key)
                except DestinationError:
                    lock = None
                if lock is not None and lock.until > datetime.now(UTC):
                    raise DestinationError(
                        f"{key} is locked ({lock.mode.lower()} mode) until"
                        f" {lock.until:%Y-%m-%d %H:%M} UTC"
                    ) from None
            raise self._fail(error) from None
        except BotoCoreError as error:
            raise self._fail(error) from None

    def versioned(self) -> bool:
        """Whether the bucket keeps versions (asked once; an Object Lock bucket always does)."""
        if self._versioned is None:
            try:
                answer = self.call(lambda: self.client.get_bucket_versioning(Bucket=self.bucket))
                self._versioned = answer.get("Status") in {"Enabled", "Suspended"}
            except (BotoCoreError, ClientError):
                self._versioned = bool(self.lock_mode)
        return self._versioned

    def _versions(self, key: str) -> list[str]:
        """The version ids (delete markers too) stored at exactly `key`."""
        found: list[str] = []
        marker: dict[str, Any] = {}
        while True:
            page = self.call(
                partial(self.deleter.list_object_versions, Bucket=self.bucket, Prefix=key, **marker)
            )
            for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                if item.get("Key") == key and item.get("VersionId"):
                    found.append(str(item["VersionId"]))
            if not page.get("IsTruncated"):
                return found
            marker = {
                "KeyMarker": page.get("NextKeyMarker", ""),
                "VersionIdMarker": page.get("NextVersionIdMarker", ""),
            }

    def lock_of(self, key: str) -> Lock | None:
        try:
            head = self.call(lambda: self.client.head_object(Bucket=self.bucket, Key=key))
        except (BotoCoreError, ClientError) as error:
            raise self._fail(error) from None
        mode, until = head.get("ObjectLockMode"), head.get("ObjectLockRetainUntilDate")
        if not mode or until is None:
            return None
        return Lock(mode=str(mode), until=until.astimezone(UTC))

    def extend_lock(self, key: str, until: datetime) -> None:
        if not self.lock_mode:
            return
        current = self.lock_of(key)
        if current is not None and current.until >= until:
            return
        mode = current.mode if current is not None else self.lock_mode
        retention: ObjectLockRetentionTypeDef = {
            "Mode": "COMPLIANCE" if mode == "COMPLIANCE" else "GOVERNANCE",
            "RetainUntilDate": until,
        }
        try:
            self.call(
                lambda: self.client.put_object_retention(
                    Bucket=self.bucket, Key=key, Retention=retention
                )
            )
        except (BotoCoreError, ClientError) as error:
            raise self._fail(error) from None

    def protection(self) -> list[str]:
        """What the bucket does against deletion; raises DestinationError when this
        destination locks objects and the bucket has no Object Lock."""
        said: list[str] = list(self.checked)
        versioning = "unknown"
        try:
            status = self.call(lambda: self.client.get_bucket_versioning(Bucket=self.bucket))
            versioning = str(status.get("Status") or "off").lower()
        except ClientError as error:
            versioning = f"unknown ({_error_code(error)})"
        except BotoCoreError as error:
            raise self._fail(error) from None
        said.append(f"Versioning: {versioning}.")
        try:
            lock = self.call(lambda: self.client.get_object_lock_configuration(Bucket=self.bucket))[
                "ObjectLockConfiguration"
            ]
        except ClientError as error:
            lock = {}
            if _error_code(error) not in {"ObjectLockConfigurationNotFoundError", "404"}:
                said.append(f"Object Lock: unknown ({_error_code(error)}).")
        except BotoCoreError as error:
            raise self._fail(error) from None
        if said[-1].startswith("Object Lock"):
            pass
        elif lock.get("ObjectLockEnabled") != "Enabled":
            said.append("Object Lock: off.")
        else:
            rule = lock.get("Rule", {}).get("DefaultRetention", {})
            if rule:
                span = f"{rule['Days']} days" if "Days" in rule else f"{rule.get('Years')} years"
                said.append(f"Object Lock: on, default retention {rule['Mode'].lower()} {span}.")
            else:
                said.append("Object Lock: on, no default retention.")
        if self.lock_mode and not any(line.startswith("Object Lock: on") for line in said):
            raise DestinationError(
                f"bucket {self.bucket!r} has no Object Lock, so backups cannot be locked"
                f" ({' '.join(said)}): create the bucket with Object Lock, or turn locking off"
            )
        return said

    def list(self, prefix: str) -> Iterator[StoredObject]:
        token = ""
        while True:
            try:
                page = self.call(partial(self._list_page, prefix, token))
            except (BotoCoreError, ClientError) as error:
                raise self._fail(error) from None
            for item in page.get("Contents", []):
                yield StoredObject(
                    key=item["Key"], size=item["Size"], modified=item.get("LastModified")
                )
            token = page.get("NextContinuationToken", "")
            if not page.get("IsTruncated") or not token:
                return

    def _list_page(self, prefix: str, token: str) -> ListObjectsV2OutputTypeDef:
        if token:
            return self.client.list_objects_v2(
                Bucket=self.bucket, Prefix=prefix, ContinuationToken=token
            )
        return self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix)

    def abort_upload(self, key: str, upload_id: str, retry_seconds: float = 0.0) -> None:
        """Abort the upload, retrying an outage for `retry_seconds` (recovery: one try,
        so an unreachable store does not hold up the worker's loop); raises
        DestinationUnreachable when the store could not be reached."""
        try:
            self.call(
                lambda: self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id
                ),
                budget=retry_seconds,
            )
        except (BotoCoreError, ClientError):
            # Already completed, aborted, or expired: nothing is left to clean.
            return

    def check_access(self) -> None:
        key = f"{self.prefix}.mackuper-probe-{secrets.token_hex(6)}"
        payload = secrets.token_bytes(32)
        self.put_bytes(key, payload, "application/octet-stream")
        try:
            if self.get_bytes(key) != payload:
                raise DestinationError("the bucket returned different bytes than were written")
        finally:
            if self.separate_delete_key:
                self._prove_write_key_cannot_delete(key)
            # A delete marker only: a bucket's default retention may lock the probe too.
            try:
                self.call(lambda: self.deleter.delete_object(Bucket=self.bucket, Key=key))
            except (BotoCoreError, ClientError) as error:
                raise self._fail(error) from None
        if self.separate_delete_key:
            self.checked = [
                "The write key cannot delete (the bucket refused it); the delete key can."
            ]

    def _prove_write_key_cannot_delete(self, key: str) -> None:
        try:
            self.call(lambda: self.client.delete_object(Bucket=self.bucket, Key=key))
        except ClientError as error:
            if _error_code(error) in {"AccessDenied", "403"}:
                return
            raise self._fail(error) from None
        except BotoCoreError as error:
            raise self._fail(error) from None
        raise DestinationError(
            "the write key could delete the test object: with a separate delete key, give"
            " the write key no s3:DeleteObject right (see the README's two policies)"
        )
