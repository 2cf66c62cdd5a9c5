//! Reconcile errors, each classified into the phase it leaves the object in.

use std::time::Duration;

use kube::runtime::finalizer;

use crate::endpoint::DriverError;
use crate::runtime::conditions::Phase;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Cannot go on until the user changes something (a missing reference, no entitlement, a refused spec).
    #[error("{message}")]
    Stalled { reason: String, message: String },
    /// Waiting on something that will happen by itself (an endpoint or a customer org becoming ready).
    #[error("{message}")]
    Waiting { reason: String, message: String },
    /// The endpoint answered with an error.
    #[error(transparent)]
    Endpoint(#[from] DriverError),
    /// The Kubernetes API answered with an error.
    #[error("Kubernetes API error: {0}")]
    Kube(#[source] kube::Error),
    /// Cleanup has started but is not finished (e.g. an instance is being deleted). Carried as an error
    /// because kube's finalizer helper releases the finalizer on any success; not counted as a failure.
    #[error("cleanup in progress: {message}")]
    CleanupPending { reason: String, message: String },
    /// Adding or removing the finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
    /// The finalizer patch was refused because the cached copy it was made from is behind the API server
    /// (kube's patch tests the finalizer list it read): a reconcile raced the watch, e.g. a wake-up right
    /// after the finalizer was added. Not a failure; the object looks again once the watch has caught up.
    #[error("the cached copy is behind the API server ({0}); looking again shortly")]
    Outdated(String),
}

impl Error {
    pub fn stalled(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Stalled {
            reason: reason.into(),
            message: message.into(),
        }
    }

    pub fn waiting(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Waiting {
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// Where this error leaves the object: permanent refusals stall it, the rest are retried.
    pub fn phase(&self) -> Phase {
        match self {
            Error::Stalled { reason, message } => Phase::stalled(reason, message),
            Error::Waiting { reason, message } => Phase::progressing(reason, message),
            Error::Endpoint(error @ (DriverError::Unauthorized { .. } | DriverError::Invalid { .. })) => {
                Phase::stalled(error.reason(), error.to_string())
            }
            Error::Endpoint(error @ DriverError::Unsupported { .. }) => {
                Phase::stalled(error.reason(), error.to_string())
            }
            Error::Endpoint(error) => Phase::failed(error.reason(), error.to_string()),
            Error::Kube(error) => Phase::failed("KubernetesApiError", error.to_string()),
            Error::Finalizer(message) => Phase::failed("FinalizerError", message.clone()),
            Error::Outdated(message) => Phase::progressing("Outdated", message),
            Error::CleanupPending { reason, message } => Phase::progressing(reason, message),
        }
    }

    /// Whether the Kubernetes API server could not be reached or answered "unavailable", which is not
    /// this object's fault: such failures retry within seconds instead of on the object's growing backoff,
    /// so that pending work goes on as soon as the API server is back.
    pub fn is_apiserver_unavailable(&self) -> bool {
        match self {
            Error::Kube(error) => apiserver_unavailable(error),
            _ => false,
        }
    }

    /// How long the endpoint asked to wait before trying again (its Retry-After), when it said so. The
    /// object is not reconciled again before that, whatever its own backoff says.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Endpoint(error) => error.retry_after(),
            _ => None,
        }
    }

    /// A short label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Stalled { .. } => "stalled",
            Error::Waiting { .. } => "waiting",
            Error::Endpoint(_) => "endpoint",
            Error::Kube(_) => "kubernetes",
            Error::Finalizer(_) => "finalizer",
            Error::Outdated(_) => "outdated",
            Error::CleanupPending { .. } => "cleanup_pending",
        }
    }

    pub fn from_finalizer(error: finalizer::Error<Error>) -> Self {
        match error {
            finalizer::Error::ApplyFailed(error) | finalizer::Error::CleanupFailed(error) => error,
            finalizer::Error::AddFinalizer(kube::Error::Api(status))
            | finalizer::Error::RemoveFinalizer(kube::Error::Api(status))
                if status.code == 422 || status.code == 409 =>
            {
                Error::Outdated(status.message.clone())
            }
            finalizer::Error::AddFinalizer(error) | finalizer::Error::RemoveFinalizer(error) => Error::Kube(error),
            other => Error::Finalizer(other.to_string()),
        }
    }
}

/// A transport failure, a 5xx or a 429 from the API server; not a refusal of the request itself.
fn apiserver_unavailable(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code >= 500 || status.code == 429,
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => true,
        _ => false,
    }
}

impl From<kube::Error> for Error {
    fn from(error: kube::Error) -> Self {
        Error::Kube(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permanent_endpoint_refusals_stall_and_transient_ones_retry() {
        let refused = Error::Endpoint(DriverError::Invalid {
            message: "vcpu too large".into(),
        });
        assert!(matches!(refused.phase(), Phase::Stalled { .. }));
        let throttled = Error::Endpoint(DriverError::Throttled {
            retry_after: Duration::from_secs(1),
        });
        assert!(matches!(throttled.phase(), Phase::Failed { .. }));
        let unauthorized = Error::Endpoint(DriverError::Unauthorized {
            message: "bad token".into(),
        });
        assert_eq!(unauthorized.phase().reason(), "Unauthorized");
    }

    fn api_error(code: u16) -> Error {
        Error::Kube(kube::Error::Api(Box::new(
            kube::core::Status::failure("", "").with_code(code),
        )))
    }

    #[test]
    fn only_an_unreachable_or_unavailable_api_server_counts_as_unavailable() {
        assert!(api_error(503).is_apiserver_unavailable());
        assert!(api_error(500).is_apiserver_unavailable());
        assert!(api_error(429).is_apiserver_unavailable());
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        assert!(Error::Kube(kube::Error::Service(Box::new(refused))).is_apiserver_unavailable());
        assert!(
            !api_error(409).is_apiserver_unavailable(),
            "a conflict is the request's own"
        );
        assert!(!api_error(403).is_apiserver_unavailable());
        assert!(!Error::stalled("NotEntitled", "no contract").is_apiserver_unavailable());
    }

    #[test]
    fn a_finalizer_patch_refused_for_a_stale_copy_is_outdated_not_a_failure() {
        let refused = |code: u16| {
            kube::Error::Api(Box::new(
                kube::core::Status::failure(
                    "the server rejected our request due to an error in our request",
                    "Invalid",
                )
                .with_code(code),
            ))
        };
        let outdated = Error::from_finalizer(finalizer::Error::AddFinalizer(refused(422)));
        assert!(matches!(outdated, Error::Outdated(_)), "{outdated:?}");
        assert!(matches!(outdated.phase(), Phase::Progressing { .. }));
        let outdated = Error::from_finalizer(finalizer::Error::RemoveFinalizer(refused(409)));
        assert!(matches!(outdated, Error::Outdated(_)), "{outdated:?}");
        let forbidden = Error::from_finalizer(finalizer::Error::AddFinalizer(refused(403)));
        assert!(
            matches!(forbidden, Error::Kube(_)),
            "a refusal of another kind stays a failure"
        );
    }

    #[test]
    fn the_endpoints_retry_after_is_carried() {
        let throttled = Error::from(DriverError::Throttled {
            retry_after: Duration::from_secs(3),
        });
        assert_eq!(throttled.retry_after(), Some(Duration::from_secs(3)));
        assert_eq!(Error::from(DriverError::unavailable("down")).retry_after(), None);
        assert_eq!(Error::waiting("EndpointNotReady", "later").retry_after(), None);
    }
}
