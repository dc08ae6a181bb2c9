//! The xDS client: one ADS stream (state of the world) to the control
//! plane, over plaintext gRPC.
//!
//! It subscribes to every cluster and listener, then by name to the
//! endpoints of EDS clusters, the route configurations of listeners and the
//! secrets of TLS contexts; it ACKs or NACKs each response (see
//! [`protocol`]) and swaps each whole config in as it completes. Until the
//! first complete config the admin server's `/ready` answers 503, as Envoy's
//! does while initializing; a listener whose routes have not arrived is not
//! served until they do. When the control plane goes away the proxy keeps
//! serving its last config, and reconnects with jittered exponential
//! backoff, sending its subscriptions and last accepted versions again.

pub(crate) mod backoff;
pub mod dump;
pub mod protocol;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use envoy_types::pb::envoy::config::core::v3::{
    ApiConfigSource, ConfigSource, api_config_source::ApiType,
    config_source::ConfigSourceSpecifier, grpc_service::TargetSpecifier,
};
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Endpoint;

use crate::config::{At, Config, ConfigError};
use crate::dns::DnsTable;
use crate::drain::Drain;
use crate::identity::Provided;
use crate::live::Live;
use backoff::Backoff;
use protocol::{Outcome, Protocol};

/// How long connecting to the control plane may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the control plane is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `host:port`, given to the process.
    Address(String),
    /// A static cluster, reached at one of its endpoints picked at each
    /// connect (a DNS cluster's follow its host name).
    Cluster(String),
}

impl Target {
    /// The URI to connect to now.
    fn uri(&self, live: &Live) -> anyhow::Result<String> {
        match self {
            Target::Address(address) => Ok(format!("http://{address}")),
            Target::Cluster(name) => {
                let view = live.view();
                let pick = view
                    .upstreams
                    .get(name)
                    .and_then(|upstream| upstream.balancer.pick())
                    .ok_or_else(|| anyhow::anyhow!("cluster {name:?} has no endpoint"))?;
                Ok(format!("http://{}", pick.endpoint().address))
            }
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Address(address) => f.write_str(address),
            Target::Cluster(name) => write!(f, "cluster {name}"),
        }
    }
}

/// The control plane the bootstrap names: `dynamic_resources.ads_config`
/// with a gRPC service whose `envoy_grpc.cluster_name` is a static cluster,
/// reached at one of its endpoints in plain text. `address` (`host:port`)
/// overrides it, or stands in for it without `dynamic_resources`. `None`
/// when the proxy runs from static resources only.
pub fn target(
    bootstrap: &Bootstrap,
    statics: &Config,
    address: Option<&str>,
) -> Result<Option<Target>, ConfigError> {
    let at = At::resource("bootstrap", "dynamic_resources");
    let dynamic = bootstrap.dynamic_resources.as_ref();
    if let Some(dynamic) = dynamic {
        for (field, source) in [
            ("cds_config", &dynamic.cds_config),
            ("lds_config", &dynamic.lds_config),
        ] {
            if let Some(source) = source {
                check_ads(source, &at.field(field))?;
            }
        }
        if !dynamic.cds_resources_locator.is_empty() || !dynamic.lds_resources_locator.is_empty() {
            return Err(at.unsupported("xdstp resource locators"));
        }
    }
    if let Some(address) = address {
        return Ok(Some(Target::Address(address.to_owned())));
    }
    let Some(ads) = dynamic.and_then(|d| d.ads_config.as_ref()) else {
        return match dynamic {
            Some(_) => Err(at.field("ads_config").error("ads_config is required")),
            None => Ok(None),
        };
    };
    ads_target(ads, statics, &at.field("ads_config")).map(Some)
}

/// A config source must be the ADS stream.
fn check_ads(source: &ConfigSource, at: &At) -> Result<(), ConfigError> {
    match source.config_source_specifier {
        Some(ConfigSourceSpecifier::Ads(_)) => Ok(()),
        _ => Err(at.unsupported("config sources other than ads")),
    }
}

fn ads_target(ads: &ApiConfigSource, statics: &Config, at: &At) -> Result<Target, ConfigError> {
    if ads.api_type != ApiType::Grpc as i32 {
        return Err(at
            .field("api_type")
            .unsupported("ADS api types other than GRPC"));
    }
    let [service] = ads.grpc_services.as_slice() else {
        return Err(at
            .field("grpc_services")
            .error("exactly one gRPC service is required"));
    };
    let at = at.field("grpc_services").index(0);
    let Some(TargetSpecifier::EnvoyGrpc(grpc)) = &service.target_specifier else {
        return Err(at.field("google_grpc").unsupported("google_grpc"));
    };
    let at = at.field("envoy_grpc").field("cluster_name");
    let cluster = statics.clusters.get(&grpc.cluster_name).ok_or_else(|| {
        at.error(format_args!(
            "{:?} is not a static cluster",
            grpc.cluster_name
        ))
    })?;
    if cluster.tls.is_some() || !cluster.transport_socket_matches.is_empty() {
        return Err(at.unsupported("TLS to the control plane"));
    }
    Ok(Target::Cluster(grpc.cluster_name.clone()))
}

/// Runs the client until the drain starts. `provided` tells when the
/// certificate provider's secrets change, and the protocol's resolver when
/// a DNS cluster's host resolves differently, so that the config is
/// compiled again with them.
pub async fn run(
    target: Target,
    mut protocol: Protocol,
    live: Arc<Live>,
    status: Arc<ArcSwap<dump::Snapshot>>,
    drain: Drain,
    mut provided: Option<watch::Receiver<Provided>>,
) {
    let mut backoff = Backoff::default();
    let mut drained = std::pin::pin!(drain.started());
    let mut dns = protocol.resolver().subscribe();
    let mut client = Client {
        protocol: &mut protocol,
        live: &live,
        status: &status,
    };
    loop {
        tokio::select! {
            result = client.session(&target, &mut backoff, &mut provided, &mut dns) => {
                match result {
                    Ok(()) => tracing::warn!(%target, "the control plane closed the xDS stream"),
                    Err(err) => tracing::warn!(%target, error = %err, "xDS stream failed"),
                }
            }
            () = drained.as_mut() => return,
        }
        let delay = backoff.next_delay();
        tracing::info!(
            delay_ms = delay.as_millis() as u64,
            "reconnecting to the control plane"
        );
        let mut sleep = std::pin::pin!(tokio::time::sleep(delay));
        loop {
            tokio::select! {
                () = sleep.as_mut() => break,
                // Subscriptions changed meanwhile go out with the next stream's first requests.
                next = changed(&mut provided) => {
                    let outcome = client.provide(next);
                    client.serve(outcome).await;
                }
                () = resolved(&mut dns) => {
                    let outcome = client.protocol.resolved();
                    client.serve(outcome).await;
                }
                () = drained.as_mut() => return,
            }
        }
    }
}

/// What one stream works on.
struct Client<'a> {
    protocol: &'a mut Protocol,
    live: &'a Live,
    status: &'a ArcSwap<dump::Snapshot>,
}

impl Client<'_> {
    /// One stream: subscribe, then handle responses until it ends.
    async fn session(
        &mut self,
        target: &Target,
        backoff: &mut Backoff,
        provided: &mut Option<watch::Receiver<Provided>>,
        dns: &mut watch::Receiver<Arc<DnsTable>>,
    ) -> anyhow::Result<()> {
        let channel = Endpoint::from_shared(target.uri(self.live)?)?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .connect()
            .await?;
        let mut client =
            AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(usize::MAX);
        let (requests, outgoing) = mpsc::unbounded_channel::<DiscoveryRequest>();
        for request in self.protocol.initial_requests() {
            requests.send(request)?;
        }
        let mut responses = client
            .stream_aggregated_resources(UnboundedReceiverStream::new(outgoing))
            .await?
            .into_inner();
        loop {
            let outcome = tokio::select! {
                message = responses.message() => {
                    let Some(response) = message? else {
                        return Ok(());
                    };
                    backoff.reset();
                    let (type_url, version) = (response.type_url.clone(), response.version_info.clone());
                    let outcome = self.protocol.handle(response);
                    match &outcome.rejected {
                        Some(reason) => tracing::warn!(%type_url, %version, %reason, "xDS response rejected"),
                        None => {
                            tracing::debug!(%type_url, %version, missing = ?outcome.missing, "xDS response accepted")
                        }
                    }
                    outcome
                }
                next = changed(provided) => self.provide(next),
                () = resolved(dns) => self.protocol.resolved(),
            };
            for request in self.serve(outcome).await {
                requests.send(request)?;
            }
        }
    }

    /// Compiles the accepted resources with the provider's new secrets.
    fn provide(&mut self, next: Provided) -> Outcome {
        let outcome = self.protocol.provide(next);
        if let Some(reason) = &outcome.rejected {
            tracing::error!(%reason, "the xDS config cannot be served with the workload certificate");
        }
        outcome
    }

    /// Swaps in the outcome's config, if any; its requests are left to send.
    async fn serve(&mut self, outcome: Outcome) -> Vec<DiscoveryRequest> {
        if let Some(config) = &outcome.config {
            match self.live.apply(config).await {
                Ok(()) => {
                    self.live.mark_ready();
                    tracing::info!("xDS config applied");
                }
                Err(err) => tracing::error!(error = %err, "cannot apply the xDS config"),
            }
        }
        self.status
            .store(Arc::new(dump::Snapshot::of(self.protocol)));
        outcome.requests
    }
}

/// The provider's secrets when they next change; never without a provider.
async fn changed(provided: &mut Option<watch::Receiver<Provided>>) -> Provided {
    if let Some(receiver) = provided
        && receiver.changed().await.is_ok()
    {
        return receiver.borrow_and_update().clone();
    }
    std::future::pending().await
}

/// Returns when the resolver's answers next change.
async fn resolved(dns: &mut watch::Receiver<Arc<DnsTable>>) {
    if dns.changed().await.is_err() {
        std::future::pending().await
    }
}

/// The node the bootstrap describes, which the first request carries.
pub fn node(bootstrap: &Bootstrap) -> envoy_types::pb::envoy::config::core::v3::Node {
    let mut node = bootstrap.node.clone().unwrap_or_default();
    if node.user_agent_name.is_empty() {
        node.user_agent_name = "mesh-proxy".into();
    }
    node
}
