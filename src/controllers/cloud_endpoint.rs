//! CloudEndpoint: builds the endpoint's driver from its spec and credentials Secret, probes it, and
//! reports version and services. Other kinds get their driver through [`driver_for`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::{Resource, ResourceExt};

use crate::api::CloudEndpoint;
use crate::api::cloud_endpoint::{CloudEndpointStatus, EndpointDriver, EndpointMetric, EndpointService};
use crate::api::common::parse_duration;
use crate::endpoint::http::RequestObserver;
use crate::endpoint::{
    CloudDirectorConfig, CloudDirectorDriver, Driver, EndpointInfo, HttpDriver, HttpDriverConfig, RequestTrackerConfig,
    RequestTrackerDriver,
};
use crate::runtime::conditions::Phase;
use crate::runtime::context::{Context, DriverEntry};
use crate::runtime::error::Error;
use crate::runtime::reconciler::{Managed, Outcome};

crate::impl_object!(CloudEndpoint, CloudEndpointStatus, cluster);

#[async_trait]
impl Managed for CloudEndpoint {
    // Deleting an endpoint removes nothing on it: what lives there belongs to the orgs and subscriptions.
    const FINALIZER: Option<&'static str> = None;

    async fn apply(&self, ctx: &Context) -> Result<Outcome<CloudEndpointStatus>, Error> {
        let entry = refresh_driver(self, ctx).await?;
        let info = match entry.driver.info().await {
            Ok(info) => info,
            // An endpoint that does not answer is not Ready (unlike other kinds, whose last known state
            // stands while their endpoint blips): say so and probe again soon.
            Err(error) if error.is_retryable() => {
                let mut status = self.status.clone().unwrap_or_default();
                status.message = Some(error.to_string());
                let phase = Phase::progressing("EndpointUnreachable", error.to_string());
                return Ok(Outcome::new(status, phase).requeue_after(entry.poll));
            }
            Err(error) => return Err(error.into()),
        };
        let status = probed_status(self.status.as_ref(), &info, Time(ctx.clock.now()));
        let services = info.service_types.len();
        Ok(Outcome::new(
            status,
            Phase::ready(format!(
                "endpoint {} answers with {services} service types",
                info.version
            )),
        )
        .requeue_after(entry.poll.max(Duration::from_secs(30))))
    }
}

/// The status after a successful probe. `lastProbeTime` moves only when what the probe saw changed, so a
/// healthy endpoint causes no status write per poll.
pub fn probed_status(current: Option<&CloudEndpointStatus>, info: &EndpointInfo, now: Time) -> CloudEndpointStatus {
    let mut status = current.cloned().unwrap_or_default();
    let services: Vec<EndpointService> = info
        .service_types
        .iter()
        .map(|s| EndpointService {
            type_: s.name.clone(),
            metrics: s
                .metrics
                .iter()
                .map(|m| EndpointMetric {
                    name: m.name.clone(),
                    unit: m.unit.clone(),
                })
                .collect(),
        })
        .collect();
    let changed = status.version.as_deref() != Some(info.version.as_str())
        || status.services != services
        || status.last_probe_time.is_none()
        || status.message.is_some();
    status.version = Some(info.version.clone());
    status.services = services;
    status.message = None;
    if changed {
        status.last_probe_time = Some(now);
    }
    status
}

/// Reads the credentials Secret and (re)builds the endpoint's driver when the endpoint's spec or the Secret
/// changed since the driver was built, so credential rotation is picked up at the next probe.
///
/// The Secret is read with a GET, not watched: the chart lets the operator `get` Secrets only, in the
/// namespaces it names, and a watch would need `list` and `watch` there too. The GET asks for the Secret's
/// metadata only: its resourceVersion says whether it changed, and its data is read only when it did.
async fn refresh_driver(endpoint: &CloudEndpoint, ctx: &Context) -> Result<DriverEntry, Error> {
    let secret_ref = &endpoint.spec.credentials_secret_ref;
    let secrets = Api::<Secret>::namespaced(ctx.client.clone(), &secret_ref.namespace);
    let not_found = || {
        Error::stalled(
            "SecretNotFound",
            format!(
                "credentials Secret {}/{} does not exist",
                secret_ref.namespace, secret_ref.name
            ),
        )
    };
    let built_from = |resource_version: Option<String>| {
        format!(
            "{}/{}/{}",
            endpoint.uid().unwrap_or_default(),
            endpoint.meta().generation.unwrap_or_default(),
            resource_version.unwrap_or_default()
        )
    };
    let name = endpoint.name_any();
    let seen = secrets
        .get_metadata_opt(&secret_ref.name)
        .await?
        .ok_or_else(not_found)?;
    if let Some(entry) = ctx
        .drivers
        .get(&name)
        .filter(|e| e.built_from == built_from(seen.resource_version()))
    {
        return Ok(entry);
    }
    let secret = secrets.get_opt(&secret_ref.name).await?.ok_or_else(not_found)?;
    let built_from = built_from(secret.resource_version());
    let token = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&secret_ref.key))
        .and_then(|v| String::from_utf8(v.0.clone()).ok())
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Error::stalled(
                "SecretKeyMissing",
                format!(
                    "credentials Secret {}/{} has no key {}",
                    secret_ref.namespace, secret_ref.name, secret_ref.key
                ),
            )
        })?;
    // Concurrent first reconciles after a start all get here; only one driver is kept.
    ctx.drivers.get_or_insert(&name, &built_from.clone(), || {
        Ok(DriverEntry {
            built_from,
            driver: build_driver(endpoint, token, Some(ctx.metrics.endpoint_observer(&name)))?,
            poll: poll_interval(endpoint),
            background_reads: Arc::new(tokio::sync::Semaphore::new(
                crate::billing::cluster::usage::reads_per_endpoint(endpoint.spec.max_concurrent_operations),
            )),
        })
    })
}

fn poll_interval(endpoint: &CloudEndpoint) -> Duration {
    parse_duration(&endpoint.spec.poll_interval).unwrap_or(Duration::from_secs(30))
}

fn build_driver(
    endpoint: &CloudEndpoint,
    token: String,
    observer: Option<Arc<dyn RequestObserver>>,
) -> Result<Arc<dyn Driver>, Error> {
    let spec = &endpoint.spec;
    let mut config = HttpDriverConfig::new(spec.url.clone(), token);
    config.ca_bundle_pem = spec.ca_bundle.as_ref().map(|pem| pem.as_bytes().to_vec());
    config.rate_limit_per_second = u32::try_from(spec.rate_limit.requests_per_second).unwrap_or(1).max(1);
    config.max_concurrent = usize::try_from(spec.max_concurrent_operations).unwrap_or(1).max(1);
    config.timeout = parse_duration(&spec.request_timeout).unwrap_or(Duration::from_secs(30));
    config.observer = observer;
    match (spec.driver, &spec.cloud_director) {
        (EndpointDriver::Simulator | EndpointDriver::Http, _) => Ok(Arc::new(HttpDriver::new(config)?)),
        (EndpointDriver::CloudDirector, Some(settings)) => {
            Ok(Arc::new(CloudDirectorDriver::new(CloudDirectorConfig {
                http: config,
                settings: settings.clone(),
            })?))
        }
        (EndpointDriver::RequestTracker, _) => {
            let settings = spec.request_tracker.as_ref().ok_or_else(|| {
                Error::stalled(
                    "SettingsMissing",
                    "driver RequestTracker needs spec.requestTracker (at least its queue)",
                )
            })?;
            let mut rt = RequestTrackerConfig::new(config.url, config.token, settings.queue.clone());
            rt.username = settings.username.clone();
            rt.idempotency_key_field = settings.idempotency_key_field.clone();
            rt.severity_field = settings.severity_field.clone();
            rt.customer_field = settings.customer_field.clone();
            rt.ca_bundle_pem = config.ca_bundle_pem;
            rt.rate_limit_per_second = config.rate_limit_per_second;
            rt.max_concurrent = config.max_concurrent;
            rt.timeout = config.timeout;
            rt.observer = config.observer;
            Ok(Arc::new(RequestTrackerDriver::new(rt)?))
        }
        // The schema requires the settings with this driver; an object that slipped past it says so.
        (EndpointDriver::CloudDirector, None) => Err(Error::stalled(
            "SettingsMissing",
            "driver CloudDirector needs spec.cloudDirector (user, provider VDC, storage profile)",
        )),
    }
}

/// The named endpoint; a missing one stalls the caller (a dangling reference) until it appears.
pub fn require_endpoint(endpoint_name: &str, ctx: &Context) -> Result<Arc<CloudEndpoint>, Error> {
    ctx.stores.endpoint(endpoint_name).ok_or_else(|| {
        Error::stalled(
            "EndpointNotFound",
            format!("CloudEndpoint {endpoint_name} does not exist"),
        )
    })
}

/// The driver of the named endpoint, building it on first use (after an operator restart, before the
/// endpoint's own reconcile ran). A missing endpoint stalls the caller until it appears.
pub async fn driver_for(endpoint_name: &str, ctx: &Context) -> Result<DriverEntry, Error> {
    let endpoint = require_endpoint(endpoint_name, ctx)?;
    if let Some(entry) = ctx.drivers.get(endpoint_name) {
        let same_spec = entry.built_from.starts_with(&format!(
            "{}/{}/",
            endpoint.uid().unwrap_or_default(),
            endpoint.meta().generation.unwrap_or_default()
        ));
        if same_spec {
            return Ok(entry);
        }
    }
    refresh_driver(&endpoint, ctx).await
}

impl super::registry::Kind for CloudEndpoint {
    /// Customers and subscriptions waiting on this endpoint may go on.
    fn changed(wakers: &super::registry::Wakers, stores: &super::registry::Stores, obj: &Self) {
        wakers.endpoint_changed(stores, obj);
    }
}

/// The named endpoint's driver for a cleanup, or `None` when the API server says the endpoint does not
/// exist. A cleanup may conclude that an endpoint is gone only from the API, never from a cache that can lag
/// (not synced yet, or outside this operator's selector): an endpoint missing from the cache is looked up
/// live, and its driver built from what the API server answered.
pub async fn driver_for_cleanup(endpoint_name: &str, ctx: &Context) -> Result<Option<DriverEntry>, Error> {
    if ctx.stores.endpoint(endpoint_name).is_some() {
        return driver_for(endpoint_name, ctx).await.map(Some);
    }
    match ctx.cached_or_live(&ctx.stores.endpoints, None, endpoint_name).await? {
        Some(live) => refresh_driver(&live, ctx).await.map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::{MetricInfo, ServiceTypeInfo};

    fn info(version: &str) -> EndpointInfo {
        EndpointInfo {
            version: version.into(),
            api_version: "v1".into(),
            service_types: vec![ServiceTypeInfo {
                name: "compute".into(),
                description: String::new(),
                metrics: vec![MetricInfo {
                    name: "vcpu-hours".into(),
                    unit: "vCPU-hour".into(),
                }],
            }],
            roles: vec![],
            support: true,
            assigns_ids: false,
        }
    }

    fn at(seconds: i64) -> Time {
        Time(jiff::Timestamp::from_second(seconds).unwrap())
    }

    #[test]
    fn probe_time_moves_only_when_what_the_probe_saw_changed() {
        let first = probed_status(None, &info("1.0"), at(10));
        assert_eq!(first.last_probe_time, Some(at(10)));
        assert_eq!(first.services[0].metrics[0].name, "vcpu-hours");
        let steady = probed_status(Some(&first), &info("1.0"), at(20));
        assert_eq!(steady, first, "a steady endpoint must not change its status");
        let upgraded = probed_status(Some(&steady), &info("1.1"), at(30));
        assert_eq!(
            (upgraded.version.as_deref(), upgraded.last_probe_time),
            (Some("1.1"), Some(at(30)))
        );
    }
}
