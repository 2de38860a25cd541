"""Connecting: the AWS connection of one run, built from the Environment's `spec.aws`.

Invariants:
- One `boto3.session.Session` per connection, configured from `spec.aws`: `region`,
  `profile`, or a role assumed through STS `assume_role` (refreshed before it expires);
  `endpointUrl`, when given, is passed as `endpoint_url` to *every* client (STS too).
- The SDK's own retries are off (one attempt per call): the orchestrator retries
  `ProviderRetryable` itself, with its own budget, so there is one retry layer only.
- Clients are created once per service and shared; boto3 clients are thread-safe. Each keeps
  up to `POOL_MAXSIZE` connections (above the rollback concurrency).
- Credentials: the Environment's `profile` or `roleArn`, else boto3's standard chain
  (environment variables, shared files, SSO, instance/pod roles). `--profile` replaces the
  Environment's profile or role (`overridden`); a profile that does not exist is
  `ProviderPermanent` (invalid input) naming the profiles there are.
- With no credentials anywhere and an endpoint on loopback (the sandbox's moto), dummy
  credentials are used: nothing on loopback is real AWS.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import logging
import threading
import urllib.parse
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from orchestrator import errors, lazy
from orchestrator.providers.aws import wrapping
from scenarios import models

if TYPE_CHECKING:
    import boto3
    import boto3.session
    from botocore import config as botocore_config
    from botocore import credentials as botocore_credentials
    from botocore import exceptions as botocore_exceptions
    from botocore import session as botocore_session
    from mypy_boto3_autoscaling import AutoScalingClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_rds import RDSClient
    from mypy_boto3_sts import STSClient
else:  # imported when a run first connects (`stormdrill validate` never does)
    boto3 = lazy.Module("boto3")
    botocore_config = lazy.Module("botocore.config")
    botocore_credentials = lazy.Module("botocore.credentials")
    botocore_session = lazy.Module("botocore.session")
    botocore_exceptions = lazy.Module("botocore.exceptions")

log = logging.getLogger(__name__)

PROVIDER: Final = "aws"
ROLE_SESSION_NAME: Final = "stormdrill"
POOL_MAXSIZE: Final = 32
"""Connections per client (botocore's default is 10, below the rollback concurrency of 16)."""


@functools.cache
def _client_config() -> botocore_config.Config:
    """Every client's configuration: one attempt, short timeouts, `POOL_MAXSIZE` connections."""
    return botocore_config.Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=5,
        read_timeout=30,
        max_pool_connections=POOL_MAXSIZE,
    )


_LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost.localdomain"})


@dataclasses.dataclass(frozen=True)
class StaticCredentials:
    """Explicit credentials (tests, the sandbox); None of these ever come from os.environ here."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


DUMMY_CREDENTIALS: Final = StaticCredentials("testing", "testing", "testing")


class AwsConnection:
    """A configured session plus lazily created, shared clients for one region."""

    def __init__(
        self,
        session: boto3.session.Session,
        *,
        region: str,
        endpoint_url: str | None,
        protected_principals: tuple[str, ...] = (),
    ) -> None:
        self.session = session
        self.region = region
        self.endpoint_url = endpoint_url
        self.protected_principals = protected_principals
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _client(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self.session.client(
                    service,  # type: ignore[call-overload]
                    region_name=self.region,
                    endpoint_url=self.endpoint_url,
                    config=_client_config(),
                )
            return self._clients[service]

    def ec2(self) -> EC2Client:
        client: EC2Client = self._client("ec2")
        return client

    def autoscaling(self) -> AutoScalingClient:
        client: AutoScalingClient = self._client("autoscaling")
        return client

    def rds(self) -> RDSClient:
        client: RDSClient = self._client("rds")
        return client

    def iam(self) -> IAMClient:
        client: IAMClient = self._client("iam")
        return client

    def cloudwatch(self) -> CloudWatchClient:
        client: CloudWatchClient = self._client("cloudwatch")
        return client

    def sts(self) -> STSClient:
        client: STSClient = self._client("sts")
        return client

    def route53(self) -> Any:
        """The Route 53 client (global: health checks and hosted zones; no stubs installed)."""
        return self._client("route53")

    def __repr__(self) -> str:
        where = f" via {self.endpoint_url}" if self.endpoint_url else ""
        return f"AwsConnection({self.region}{where})"


def _is_loopback(url: str | None) -> bool:
    if url is None:
        return False
    host = urllib.parse.urlsplit(url).hostname or ""
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _base_session(
    access: models.AwsAccess, credentials: StaticCredentials | None
) -> boto3.session.Session:
    if credentials is not None:
        return boto3.session.Session(
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
            aws_session_token=credentials.session_token,
            region_name=access.region,
        )
    try:
        session = boto3.session.Session(profile_name=access.profile, region_name=access.region)
    except botocore_exceptions.ProfileNotFound:
        known = ", ".join(sorted(botocore_session.get_session().available_profiles)) or "none"
        raise errors.ProviderPermanent(
            f"AWS profile {access.profile!r} not found in the shared config files"
            f" (profiles there: {known}); fix spec.aws.profile or --profile"
        ) from None
    if session.get_credentials() is None and _is_loopback(access.endpoint_url):
        log.info(
            "no AWS credentials found; endpoint %s is on loopback, using dummy credentials",
            access.endpoint_url,
        )
        return _base_session(access, DUMMY_CREDENTIALS)
    return session


class _AssumedRoleProvider:
    """Credentials of `role_arn`, assumed with the base session and refreshed before expiry.

    A botocore credential provider by shape (`METHOD`, `CANONICAL_NAME`, `load`), not by
    base class, so that defining it does not import botocore's credentials machinery.
    """

    METHOD = "stormdrill-assume-role"
    CANONICAL_NAME = "stormdrill-assume-role"

    def __init__(self, sts: STSClient, role_arn: str) -> None:
        self._sts = sts
        self._role_arn = role_arn

    def _fetch(self) -> dict[str, str]:
        with wrapping.edge(f"aws role {self._role_arn}"):
            answer = self._sts.assume_role(
                RoleArn=self._role_arn, RoleSessionName=ROLE_SESSION_NAME
            )["Credentials"]
        expiry: datetime = answer["Expiration"]
        return {
            "access_key": answer["AccessKeyId"],
            "secret_key": answer["SecretAccessKey"],
            "token": answer["SessionToken"],
            "expiry_time": expiry.isoformat(),
        }

    def load(self) -> botocore_credentials.RefreshableCredentials:
        return botocore_credentials.RefreshableCredentials.create_from_metadata(
            metadata=self._fetch(), refresh_using=self._fetch, method=self.METHOD
        )


def _assumed_session(
    base: boto3.session.Session, access: models.AwsAccess, role_arn: str
) -> boto3.session.Session:
    sts: STSClient = base.client(
        "sts", region_name=access.region, endpoint_url=access.endpoint_url, config=_client_config()
    )
    core = botocore_session.get_session()
    resolver = core.get_component("credential_provider")
    resolver.insert_before("env", _AssumedRoleProvider(sts, role_arn))
    return boto3.session.Session(botocore_session=core, region_name=access.region)


def connect(
    environment: models.Environment, *, credentials: StaticCredentials | None = None
) -> AwsConnection:
    """Open the AWS connection `environment.spec.aws` describes (the registered factory)."""
    access = environment.spec.aws
    if access is None:
        raise errors.ProviderPermanent(
            f"environment {environment.metadata.name}: no spec.aws; add "
            "`aws: {region: ...}` to the Environment to run AWS actions"
        )
    session = _base_session(access, credentials)
    if access.role_arn is not None:
        session = _assumed_session(session, access, access.role_arn)
    return AwsConnection(
        session,
        region=access.region,
        endpoint_url=access.endpoint_url,
        protected_principals=access.protected_principals,
    )


def overridden(environment: models.Environment, *, profile: str | None) -> models.Environment:
    """`environment` with `--profile` in place of its own profile or role (None: unchanged).

    An Environment without `spec.aws` is returned unchanged: the profile gives no region.
    """
    access = environment.spec.aws
    if profile is None or access is None:
        return environment
    changed = access.model_copy(update={"profile": profile, "role_arn": None})
    spec = environment.spec.model_copy(update={"aws": changed})
    return environment.model_copy(update={"spec": spec})


@dataclasses.dataclass(frozen=True)
class AwsIdentity:
    """Who the connection acts as: `sts get-caller-identity`, and the region it works in."""

    account: str
    arn: str
    region: str


def identity(
    environment: models.Environment, *, credentials: StaticCredentials | None = None
) -> AwsIdentity:
    """The account and principal `environment`'s AWS access acts as (one STS call)."""
    conn = connect(environment, credentials=credentials)
    with wrapping.edge(f"aws account of environment {environment.metadata.name}"):
        answer = conn.sts().get_caller_identity()
    return AwsIdentity(account=answer["Account"], arn=answer["Arn"], region=conn.region)


def of(ctx_connection: object) -> AwsConnection:
    """`ctx.connection("aws")` checked to be an `AwsConnection`."""
    if not isinstance(ctx_connection, AwsConnection):
        raise errors.ProviderPermanent(
            f"the 'aws' connection is a {type(ctx_connection).__name__}, not an AwsConnection; "
            "register orchestrator.providers.aws.plugin with the registry"
        )
    return ctx_connection
