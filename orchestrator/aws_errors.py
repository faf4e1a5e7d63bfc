"""How imagefleet reads AWS's errors: which are worth another try (throttling, 5xx, connection
errors), which name something that does not exist (bad input, not an AWS failure), and which are
the caller's credentials or region, told as one line with the fix. ``orchestrator.aws`` retries
and maps with these.
"""

from __future__ import annotations

import botocore.exceptions as bex

from orchestrator.errors import AwsError

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "RequestThrottled",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "SlowDown",
        "BandwidthLimitExceeded",
        "EC2ThrottledException",
        "PriorRequestNotComplete",
    }
)
CONNECTION_ERRORS = (
    bex.EndpointConnectionError,
    bex.ConnectionClosedError,
    bex.ReadTimeoutError,
    bex.ConnectTimeoutError,
)
# Error codes that mean "the thing you named does not exist": bad input, not an AWS failure.
NOT_FOUND_CODES = frozenset(
    {
        "InvalidAMIID.NotFound",
        "InvalidAMIID.Malformed",
        "InvalidAMIID.Unavailable",
        "ParameterNotFound",
        "NoSuchKey",
        "NoSuchBucket",
        "InvalidInstanceID.NotFound",
        "InvalidLaunchTemplateId.NotFound",
        "InvalidLaunchTemplateName.NotFoundException",
    }
)


# Error codes that mean the caller's credentials are expired or not accepted (STS, EC2, the JSON
# APIs).
EXPIRED_CODES = frozenset(
    {"ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired"}
)
REJECTED_CODES = frozenset(
    {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "AuthFailure",
        "InvalidAccessKeyId",
        "InvalidToken",
        "OptInRequired",
    }
)
_CREDENTIALS_HINT = (
    "give imagefleet credentials: aws.profile in imagefleet.toml or AWS_PROFILE, AWS_ACCESS_KEY_ID/"
    "AWS_SECRET_ACCESS_KEY, 'aws sso login', an instance role — or work locally with "
    "endpoint_url = \"local\" and 'imagefleet local up' (docs/aws.md)"
)


def credential_error(exc: BaseException, region: str, endpoint: str | None) -> AwsError | None:
    """Missing, expired or rejected credentials and unreachable regions as one line with the fix."""
    code = error_code(exc)
    if isinstance(
        exc, (bex.NoCredentialsError, bex.PartialCredentialsError, bex.CredentialRetrievalError)
    ):
        return AwsError(f"no usable AWS credentials ({exc})", hint=_CREDENTIALS_HINT)
    if isinstance(exc, bex.ProfileNotFound):
        return AwsError(
            f"{exc}",
            hint="check aws.profile in imagefleet.toml or AWS_PROFILE against "
            "'aws configure list-profiles'",
        )
    if isinstance(exc, (bex.TokenRetrievalError, bex.SSOError)) or code in EXPIRED_CODES:
        return AwsError(
            f"the AWS credentials have expired ({code or type(exc).__name__})",
            hint="refresh them: 'aws sso login' (with your profile), or new session credentials",
        )
    if code in REJECTED_CODES:
        return AwsError(
            f"AWS did not accept the credentials in {region} ({code})",
            hint=f"check the access key and profile, and that region {region} is enabled for the "
            "account (aws.regions; opt-in regions must be enabled first)",
        )
    if (
        isinstance(exc, bex.EndpointConnectionError)
        and "amazonaws.com" in str(exc)
        and not endpoint_is_custom(endpoint)
    ):
        return AwsError(
            f"cannot reach AWS in region {region}: {exc}",
            hint=f"check that {region} is a region name (aws.regions) and that this machine "
            "reaches AWS",
        )
    return None


def endpoint_is_custom(endpoint: str | None) -> bool:
    """True for the embedded or any non-AWS endpoint: its unreachability is not a region's."""
    return bool(endpoint) and "amazonaws.com" not in str(endpoint)


def is_retryable(exc: BaseException) -> bool:
    """Throttling, 5xx and connection errors are worth another try; nothing else is."""
    if isinstance(exc, CONNECTION_ERRORS):
        return True
    if isinstance(exc, bex.ClientError):
        err = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return err.get("Code") in THROTTLING_CODES or (isinstance(status, int) and status >= 500)
    return False


def error_code(exc: BaseException) -> str:
    if isinstance(exc, bex.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""
