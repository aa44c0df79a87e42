//! The names of API Gateway's gateway-response types.

use std::fmt;
use std::str::FromStr;

use http::StatusCode;

macro_rules! response_types {
    ($(
        $(#[$doc:meta])*
        $variant:ident => $name:literal, $status:literal, $error_type:literal, $message:literal;
    )*) => {
        /// One of API Gateway's gateway-response types.
        ///
        /// Each type carries API Gateway's default status code, default message and
        /// `x-amzn-ErrorType` value (the developer guide's "Gateway response types"). The serde form and the
        /// [`FromStr`]/[`Display`](fmt::Display) form are API Gateway's own names, such
        /// as `INVALID_API_KEY`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[derive(serde::Serialize, serde::Deserialize)]
        #[non_exhaustive]
        pub enum GatewayResponseType {
            $(
                $(#[$doc])*
                #[serde(rename = $name)]
                $variant,
            )*
        }

        impl GatewayResponseType {
            /// Every response type, in alphabetical order of API Gateway's names.
            pub const ALL: &'static [GatewayResponseType] = &[$(GatewayResponseType::$variant),*];

            /// API Gateway's name of the type, such as `"INVALID_API_KEY"`.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self { $(GatewayResponseType::$variant => $name),* }
            }

            /// API Gateway's default HTTP status for the type.
            #[must_use]
            pub const fn default_status(self) -> StatusCode {
                match self {
                    $(GatewayResponseType::$variant => {
                        match StatusCode::from_u16($status) {
                            Ok(status) => status,
                            Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
                        }
                    }),*
                }
            }

            /// The default `x-amzn-ErrorType` header value for the type.
            #[must_use]
            pub const fn error_type(self) -> &'static str {
                match self { $(GatewayResponseType::$variant => $error_type),* }
            }

            /// API Gateway's default message for the type.
            #[must_use]
            pub const fn default_message(self) -> &'static str {
                match self { $(GatewayResponseType::$variant => $message),* }
            }
        }

        impl FromStr for GatewayResponseType {
            type Err = UnknownResponseType;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok(GatewayResponseType::$variant),)*
                    _ => Err(UnknownResponseType(s.to_owned())),
                }
            }
        }
    };
}

response_types! {
    /// A policy denied the request (403).
    AccessDenied => "ACCESS_DENIED", 403, "AccessDeniedException", "User is not authorized to access this resource";
    /// The gateway's own configuration is broken (500).
    ApiConfigurationError => "API_CONFIGURATION_ERROR", 500, "InternalServerErrorException", "Internal server error";
    /// An authorizer is misconfigured (500).
    AuthorizerConfigurationError => "AUTHORIZER_CONFIGURATION_ERROR", 500, "AuthorizerConfigurationException", "Internal server error";
    /// An authorizer failed (500).
    AuthorizerFailure => "AUTHORIZER_FAILURE", 500, "AuthorizerFailureException", "Internal server error";
    /// The request body failed validation (400).
    BadRequestBody => "BAD_REQUEST_BODY", 400, "BadRequestException", "Invalid request body";
    /// The request parameters failed validation (400).
    BadRequestParameters => "BAD_REQUEST_PARAMETERS", 400, "BadRequestException", "Invalid request parameters";
    /// Fallback for every 4xx type without an override of its own.
    Default4xx => "DEFAULT_4XX", 400, "BadRequestException", "Bad Request";
    /// Fallback for every 5xx type without an override of its own.
    Default5xx => "DEFAULT_5XX", 500, "InternalServerErrorException", "Internal server error";
    /// A security token has expired (403).
    ExpiredToken => "EXPIRED_TOKEN", 403, "ExpiredTokenException", "The security token included in the request is expired";
    /// The integration failed (504 in API Gateway).
    IntegrationFailure => "INTEGRATION_FAILURE", 504, "InternalServerErrorException", "Internal server error";
    /// The integration timed out (504).
    IntegrationTimeout => "INTEGRATION_TIMEOUT", 504, "InternalServerErrorException", "Endpoint request timed out";
    /// A missing, unknown or disabled API key (403 Forbidden).
    InvalidApiKey => "INVALID_API_KEY", 403, "ForbiddenException", "Forbidden";
    /// A SigV4 signature does not match (403).
    InvalidSignature => "INVALID_SIGNATURE", 403, "InvalidSignatureException", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";
    /// No credentials at all, or an unknown route (403).
    MissingAuthenticationToken => "MISSING_AUTHENTICATION_TOKEN", 403, "MissingAuthenticationTokenException", "Missing Authentication Token";
    /// A usage-plan quota is used up (429 Limit Exceeded).
    QuotaExceeded => "QUOTA_EXCEEDED", 429, "LimitExceededException", "Limit Exceeded";
    /// The request is larger than a configured limit (413).
    RequestTooLarge => "REQUEST_TOO_LARGE", 413, "RequestTooLargeException", "Request Too Long";
    /// The resource does not exist (404).
    ResourceNotFound => "RESOURCE_NOT_FOUND", 404, "NotFoundException", "Not Found";
    /// A usage-plan, stage or account throttle rejected the request (429).
    Throttled => "THROTTLED", 429, "TooManyRequestsException", "Too Many Requests";
    /// Authentication failed (401 Unauthorized).
    Unauthorized => "UNAUTHORIZED", 401, "UnauthorizedException", "Unauthorized";
    /// The request's media type is not supported (415).
    UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE", 415, "UnsupportedMediaTypeException", "Unsupported Media Type";
    /// AWS WAF blocked the request (403). AWS does not document the error
    /// type; Portcullis sends `WAFFilteredException`.
    WafFiltered => "WAF_FILTERED", 403, "WAFFilteredException", "Forbidden";
}

impl GatewayResponseType {
    /// The `DEFAULT_4XX` or `DEFAULT_5XX` type this type falls back to when it
    /// has no override of its own, by its default status.
    #[must_use]
    pub fn fallback(self) -> GatewayResponseType {
        if self.default_status().is_server_error() {
            GatewayResponseType::Default5xx
        } else {
            GatewayResponseType::Default4xx
        }
    }
}

impl fmt::Display for GatewayResponseType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error returned when parsing an unknown gateway-response type name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown gateway response type `{0}`")]
pub struct UnknownResponseType(String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in GatewayResponseType::ALL {
            assert_eq!(kind.as_str().parse::<GatewayResponseType>(), Ok(*kind));
            let json = serde_json::to_string(kind).expect("serialising a unit enum cannot fail");
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        assert!("NOPE".parse::<GatewayResponseType>().is_err());
    }

    #[test]
    fn fallbacks_follow_the_status_class() {
        assert_eq!(
            GatewayResponseType::Throttled.fallback(),
            GatewayResponseType::Default4xx
        );
        assert_eq!(
            GatewayResponseType::AuthorizerFailure.fallback(),
            GatewayResponseType::Default5xx
        );
    }
}
