//! The rules of Istio's validating webhook for DestinationRule; the parent
//! module's documentation lists them.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::{
    ClientTlsSettings, ConnectionPoolSettings, ConsistentHashLb, DestinationRuleSpec, Failover,
    H2UpgradePolicy, HttpCookie, HttpSettings, LoadBalancerSettings, LocalityLoadBalancerSetting,
    OutlierDetection, PortTrafficPolicy, RetryBudget, Subset, TcpSettings, TlsMode, TrafficPolicy,
    TunnelSettings, WarmupConfiguration, ZoneAwareLoadBalancerSetting,
};
use crate::Duration;
use crate::selector::validate_labels;
use crate::validate::{self, Errors, ExportToNone, Path, Validate};

/// Largest ring Envoy's ring-hash load balancer accepts.
const MAX_RING_SIZE: u64 = 8_388_608;
/// Maglev table sizes must be below this prime.
const MAGLEV_TABLE_LIMIT: u64 = 5_000_011;
/// Topology labels that locality failover already orders by.
const TOPOLOGY_LABELS: [&str; 3] = [
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.istio.io/subzone",
];

impl Validate for DestinationRuleSpec {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        errs.check(&at.field("host"), validate::wildcard_host(&self.host));
        self.traffic_policy
            .validate(&at.field("trafficPolicy"), errs);
        let mut names = BTreeSet::new();
        for (i, subset) in self.subsets.iter().enumerate() {
            let here = at.field("subsets").index(i);
            if !subset.name.is_empty() && !names.insert(subset.name.as_str()) {
                errs.add(
                    &here.field("name"),
                    format!(
                        "subset name {:?} is used more than once; subset names must be unique",
                        subset.name
                    ),
                );
            }
            subset.validate(&here, errs);
        }
        validate_export_to(
            &self.export_to,
            self.workload_selector.is_some(),
            &at.field("exportTo"),
            errs,
        );
        self.workload_selector
            .validate(&at.field("workloadSelector"), errs);
    }
}

/// `exportTo` of a DestinationRule; one with a workload selector stays in its namespace.
fn validate_export_to(export_to: &[String], has_selector: bool, at: &Path, errs: &mut Errors) {
    validate::export_to(export_to, ExportToNone::Refused, at, errs);
    if has_selector && (export_to.len() > 1 || export_to.iter().any(|e| e == "*")) {
        errs.add(
            at,
            "a DestinationRule with a workloadSelector can only be exported to its own namespace (\".\")",
        );
    }
}

impl Validate for Subset {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        if self.name.is_empty() {
            errs.add(&at.field("name"), "subset name is required");
        } else {
            errs.check(
                &at.field("name"),
                validate::dns_label(&self.name).map_err(|e| format!("subset name {e}")),
            );
        }
        validate_labels(&self.labels, &at.field("labels"), errs);
        self.traffic_policy
            .validate(&at.field("trafficPolicy"), errs);
    }
}

impl Validate for TrafficPolicy {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        if *self == TrafficPolicy::default() {
            errs.add(
                at,
                "a traffic policy must set at least one of loadBalancer, connectionPool, outlierDetection, tls, \
                 portLevelSettings, tunnel, proxyProtocol or retryBudget",
            );
            return;
        }
        errs.check(
            at,
            validate::one_of(&[
                ("tunnel", self.tunnel.is_some()),
                ("proxyProtocol", self.proxy_protocol.is_some()),
            ]),
        );
        self.load_balancer.validate(&at.field("loadBalancer"), errs);
        self.connection_pool
            .validate(&at.field("connectionPool"), errs);
        self.outlier_detection
            .validate(&at.field("outlierDetection"), errs);
        self.tls.validate(&at.field("tls"), errs);
        let mut ports = BTreeSet::new();
        for (i, policy) in self.port_level_settings.iter().enumerate() {
            let here = at.field("portLevelSettings").index(i);
            if let Some(port) = &policy.port
                && !ports.insert(port.number)
            {
                errs.add(
                    &here.field("port").field("number"),
                    format!(
                        "port {} already has a port-level policy; each port may appear once",
                        port.number
                    ),
                );
            }
            policy.validate(&here, errs);
        }
        self.tunnel.validate(&at.field("tunnel"), errs);
        self.retry_budget.validate(&at.field("retryBudget"), errs);
    }
}

impl Validate for PortTrafficPolicy {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        match &self.port {
            Some(port) => port.validate(&at.field("port"), errs),
            None => errs.add(
                &at.field("port"),
                "a port-level policy needs the port it applies to",
            ),
        }
        if self.load_balancer.is_none()
            && self.connection_pool.is_none()
            && self.outlier_detection.is_none()
            && self.tls.is_none()
        {
            errs.add(
                at,
                "a port-level policy must set at least one of loadBalancer, connectionPool, outlierDetection or tls",
            );
        }
        self.load_balancer.validate(&at.field("loadBalancer"), errs);
        self.connection_pool
            .validate(&at.field("connectionPool"), errs);
        self.outlier_detection
            .validate(&at.field("outlierDetection"), errs);
        self.tls.validate(&at.field("tls"), errs);
    }
}

impl Validate for TunnelSettings {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        if !matches!(self.protocol.as_str(), "" | "CONNECT" | "POST") {
            errs.add(
                &at.field("protocol"),
                format!(
                    "tunnel protocol {:?} is not supported; use CONNECT or POST",
                    self.protocol
                ),
            );
        }
        if self.target_host.parse::<IpAddr>().is_err() {
            errs.check(
                &at.field("targetHost"),
                validate::exact_host(&self.target_host)
                    .map_err(|e| format!("tunnel target must be a host name or IP address: {e}")),
            );
        }
        errs.check(&at.field("targetPort"), validate::port(self.target_port));
    }
}

impl Validate for RetryBudget {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        if let Some(percent) = self.percent {
            errs.check(&at.field("percent"), validate::percent(percent));
        }
    }
}

impl Validate for LoadBalancerSettings {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        errs.check(
            at,
            validate::one_of(&[
                ("simple", self.simple.is_some()),
                ("consistentHash", self.consistent_hash.is_some()),
            ]),
        );
        errs.check(
            at,
            validate::one_of(&[
                ("localityLbSetting", self.locality_lb_setting.is_some()),
                ("zoneAwareLbSetting", self.zone_aware_lb_setting.is_some()),
            ]),
        );
        errs.check(
            at,
            validate::one_of(&[
                ("warmupDurationSecs", self.warmup_duration_secs.is_some()),
                ("warmup", self.warmup.is_some()),
            ]),
        );
        self.consistent_hash
            .validate(&at.field("consistentHash"), errs);
        self.locality_lb_setting
            .validate(&at.field("localityLbSetting"), errs);
        self.zone_aware_lb_setting
            .validate(&at.field("zoneAwareLbSetting"), errs);
        if let Some(warmup) = self.warmup_duration_secs {
            errs.check(
                &at.field("warmupDurationSecs"),
                validate::duration_ms(warmup),
            );
        }
        self.warmup.validate(&at.field("warmup"), errs);
    }
}

impl Validate for ConsistentHashLb {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        let keys = [
            ("httpHeaderName", self.http_header_name.is_some()),
            ("httpCookie", self.http_cookie.is_some()),
            ("useSourceIp", self.use_source_ip.is_some()),
            (
                "httpQueryParameterName",
                self.http_query_parameter_name.is_some(),
            ),
        ];
        if keys.iter().all(|(_, set)| !set) {
            errs.add(
                at,
                "consistentHash needs a hash key: set one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName",
            );
        }
        errs.check(at, validate::one_of(&keys));
        if let Some(header) = &self.http_header_name {
            errs.check(&at.field("httpHeaderName"), validate::header_name(header));
        }
        if self.http_query_parameter_name.as_deref() == Some("") {
            errs.add(
                &at.field("httpQueryParameterName"),
                "query parameter name must not be empty",
            );
        }
        self.http_cookie.validate(&at.field("httpCookie"), errs);

        errs.check(
            at,
            validate::one_of(&[
                ("ringHash", self.ring_hash.is_some()),
                ("maglev", self.maglev.is_some()),
            ]),
        );
        if let Some(size) = self.minimum_ring_size {
            let here = at.field("minimumRingSize");
            if self.ring_hash.is_some() || self.maglev.is_some() {
                errs.add(&here, "the deprecated minimumRingSize cannot be combined with ringHash or maglev; use ringHash.minimumRingSize");
            }
            errs.check(&here, ring_size(size));
        }
        if let Some(size) = self
            .ring_hash
            .as_ref()
            .and_then(|ring| ring.minimum_ring_size)
        {
            errs.check(
                &at.field("ringHash").field("minimumRingSize"),
                ring_size(size),
            );
        }
        if let Some(maglev) = &self.maglev {
            let here = at.field("maglev").field("tableSize");
            match maglev.table_size.unwrap_or(0) {
                0 => errs.add(
                    &here,
                    "tableSize must be set for maglev (65537 is a common choice)",
                ),
                size if size >= MAGLEV_TABLE_LIMIT => errs.add(
                    &here,
                    format!("maglev tableSize {size} must be less than {MAGLEV_TABLE_LIMIT}"),
                ),
                size if !is_prime(size) => errs.add(
                    &here,
                    format!("maglev tableSize {size} must be a prime number"),
                ),
                _ => {}
            }
        }
    }
}

fn ring_size(size: u64) -> Result<(), String> {
    if size > MAX_RING_SIZE {
        Err(format!(
            "minimumRingSize {size} is larger than the maximum of {MAX_RING_SIZE}"
        ))
    } else {
        Ok(())
    }
}

/// Trial division, as Envoy checks Maglev table sizes.
fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    if n < 4 {
        return true;
    }
    if n.is_multiple_of(2) {
        return false;
    }
    let mut factor = 3;
    while factor * factor <= n {
        if n.is_multiple_of(factor) {
            return false;
        }
        factor += 2;
    }
    true
}

impl Validate for HttpCookie {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        if self.name.is_empty() {
            errs.add(&at.field("name"), "the hash cookie needs a name");
        }
        let mut names = BTreeSet::new();
        for (i, attribute) in self.attributes.iter().enumerate() {
            let here = at.field("attributes").index(i).field("name");
            if attribute.name.is_empty() {
                errs.add(&here, "cookie attribute name must not be empty");
            } else if !names.insert(attribute.name.as_str()) {
                errs.add(
                    &here,
                    format!(
                        "cookie attribute {:?} is listed more than once",
                        attribute.name
                    ),
                );
            }
        }
    }
}

impl Validate for WarmupConfiguration {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        errs.check(&at.field("duration"), validate::duration_ms(self.duration));
        if let Some(percent) = self.minimum_percent {
            errs.check(&at.field("minimumPercent"), validate::percent(percent));
        }
        if let Some(aggression) = self.aggression.filter(|a| a.is_nan() || *a <= 0.0) {
            errs.add(
                &at.field("aggression"),
                format!("aggression {aggression} must be greater than 0"),
            );
        }
    }
}

impl Validate for LocalityLoadBalancerSetting {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        if !self.distribute.is_empty() && !self.failover.is_empty() {
            errs.add(
                at,
                "distribute and failover cannot both be set; choose weights or failover",
            );
        }
        if !self.failover.is_empty() {
            for (i, label) in self.failover_priority.iter().enumerate() {
                if TOPOLOGY_LABELS.contains(&label.as_str()) {
                    errs.add(
                        &at.field("failoverPriority").index(i),
                        format!(
                            "{label:?} cannot be used in failoverPriority together with failover"
                        ),
                    );
                }
            }
        }
        let mut sources = Vec::new();
        for (i, distribute) in self.distribute.iter().enumerate() {
            let here = at.field("distribute").index(i);
            sources.push((here.field("from"), distribute.from.as_str()));
            let mut total: u64 = 0;
            let mut targets = Vec::new();
            for (locality, weight) in &distribute.to {
                let target = here.field("to").field(locality);
                if !(1..=100).contains(weight) {
                    errs.add(
                        &target,
                        format!("locality weight {weight} must be between 1 and 100"),
                    );
                }
                total += u64::from(*weight);
                targets.push((target, locality.as_str()));
            }
            if total != 100 {
                errs.add(
                    &here.field("to"),
                    format!(
                        "weights from {:?} sum to {total}; they must sum to 100",
                        distribute.from
                    ),
                );
            }
            check_localities(&targets, errs);
        }
        check_localities(&sources, errs);
        for (i, failover) in self.failover.iter().enumerate() {
            check_failover(failover, &at.field("failover").index(i), "locality", errs);
        }
    }
}

impl Validate for ZoneAwareLoadBalancerSetting {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        for (i, label) in self.failover_priority.iter().enumerate() {
            if TOPOLOGY_LABELS.contains(&label.as_str()) {
                errs.add(
                    &at.field("failoverPriority").index(i),
                    format!("{label:?} is not allowed in zone-aware failoverPriority; region and zone routing are automatic"),
                );
            }
        }
        for (i, failover) in self.failover.iter().enumerate() {
            check_failover(failover, &at.field("failover").index(i), "zone-aware", errs);
        }
        if self.min_cluster_size == Some(0) {
            errs.add(
                &at.field("minClusterSize"),
                "minClusterSize must be at least 1",
            );
        }
    }
}

fn check_failover(failover: &Failover, at: &Path, kind: &str, errs: &mut Errors) {
    if failover.from == failover.to {
        errs.add(
            at,
            format!(
                "{kind} failover from {:?} to itself; from and to must be different regions",
                failover.from
            ),
        );
    }
    for (field, region) in [("from", &failover.from), ("to", &failover.to)] {
        if region.contains('/') {
            errs.add(
                &at.field(field),
                format!("{kind} failover takes a region only, not {region:?}"),
            );
        } else if region.contains('*') {
            errs.add(
                &at.field(field),
                format!("{kind} failover region {region:?} must not contain a wildcard"),
            );
        }
    }
}

/// Checks a list of localities for their form and for overlaps between them.
fn check_localities(localities: &[(Path, &str)], errs: &mut Errors) {
    let mut accepted: Vec<Vec<&str>> = Vec::new();
    for (path, locality) in localities {
        let stars = locality.matches('*').count();
        if stars > 1 || (stars == 1 && !locality.ends_with('*')) {
            errs.add(
                path,
                format!("locality {locality:?} may only have one '*', at the end"),
            );
            continue;
        }
        let parts: Vec<&str> = locality.splitn(3, '/').collect();
        if parts.iter().any(|part| part.is_empty()) {
            errs.add(
                path,
                format!("locality {locality:?} must be region[/zone[/subzone]] with no empty part"),
            );
            continue;
        }
        // `us-west/*` and `us-west` both cover everything in us-west.
        let mut scope = parts;
        if scope.last() == Some(&"*") {
            scope.pop();
        }
        let overlaps = accepted.iter().any(|other| {
            let n = other.len().min(scope.len());
            other[..n] == scope[..n]
        });
        if overlaps {
            errs.add(
                path,
                format!("locality {locality:?} overlaps a locality listed before it"),
            );
        } else {
            accepted.push(scope);
        }
    }
}

impl Validate for ConnectionPoolSettings {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        if self.tcp.is_none() && self.http.is_none() {
            errs.add(at, "a connection pool must set tcp or http");
        }
        self.tcp.validate(&at.field("tcp"), errs);
        self.http.validate(&at.field("http"), errs);
    }
}

impl Validate for TcpSettings {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        non_negative(self.max_connections, &at.field("maxConnections"), errs);
        optional_duration(self.connect_timeout, &at.field("connectTimeout"), errs);
        optional_duration(
            self.max_connection_duration,
            &at.field("maxConnectionDuration"),
            errs,
        );
        // 0 turns the idle timeout off.
        optional_duration(
            self.idle_timeout.filter(|d| !d.is_zero()),
            &at.field("idleTimeout"),
            errs,
        );
        if let Some(keepalive) = &self.tcp_keepalive {
            let here = at.field("tcpKeepalive");
            optional_duration(keepalive.time, &here.field("time"), errs);
            optional_duration(keepalive.interval, &here.field("interval"), errs);
        }
    }
}

impl Validate for HttpSettings {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        non_negative(
            self.http1_max_pending_requests,
            &at.field("http1MaxPendingRequests"),
            errs,
        );
        non_negative(self.http2_max_requests, &at.field("http2MaxRequests"), errs);
        non_negative(
            self.max_requests_per_connection,
            &at.field("maxRequestsPerConnection"),
            errs,
        );
        non_negative(self.max_retries, &at.field("maxRetries"), errs);
        non_negative(
            self.max_concurrent_streams,
            &at.field("maxConcurrentStreams"),
            errs,
        );
        optional_duration(self.idle_timeout, &at.field("idleTimeout"), errs);
        if self.use_client_protocol && self.h2_upgrade_policy == H2UpgradePolicy::Upgrade {
            errs.add(
                &at.field("useClientProtocol"),
                "useClientProtocol cannot be true when h2UpgradePolicy is UPGRADE",
            );
        }
        if let Some(keepalive) = &self.http2_keep_alive {
            let here = at.field("http2KeepAlive");
            for (field, value) in [
                ("interval", keepalive.interval),
                ("timeout", keepalive.timeout),
            ] {
                match value {
                    Some(duration) => {
                        errs.check(&here.field(field), validate::duration_ms(duration))
                    }
                    None => errs.add(&here.field(field), format!("http2KeepAlive needs {field}")),
                }
            }
        }
    }
}

fn non_negative(value: Option<i32>, at: &Path, errs: &mut Errors) {
    if let Some(value) = value.filter(|v| *v < 0) {
        errs.add(
            at,
            format!("{value} is negative; the limit must be 0 or more"),
        );
    }
}

fn optional_duration(value: Option<Duration>, at: &Path, errs: &mut Errors) {
    if let Some(value) = value {
        errs.check(at, validate::duration_ms(value));
    }
}

impl Validate for OutlierDetection {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        if let Some(count) = self.consecutive_errors.filter(|c| *c < 0) {
            errs.add(
                &at.field("consecutiveErrors"),
                format!("consecutiveErrors {count} must be 0 or more"),
            );
        }
        if !self.split_external_local_origin_errors
            && self.consecutive_local_origin_failures.unwrap_or(0) > 0
        {
            errs.add(
                &at.field("consecutiveLocalOriginFailures"),
                "consecutiveLocalOriginFailures only applies when splitExternalLocalOriginErrors is true",
            );
        }
        optional_duration(self.interval, &at.field("interval"), errs);
        optional_duration(self.base_ejection_time, &at.field("baseEjectionTime"), errs);
        for (field, value) in [
            ("maxEjectionPercent", self.max_ejection_percent),
            ("minHealthPercent", self.min_health_percent),
        ] {
            if let Some(value) = value.filter(|v| !(0..=100).contains(v)) {
                errs.add(
                    &at.field(field),
                    format!("{field} {value} must be between 0 and 100"),
                );
            }
        }
        for (i, code) in self.outlier_detection_http_error_codes.iter().enumerate() {
            if !(100..=599).contains(code) {
                errs.add(
                    &at.field("outlierDetectionHttpErrorCodes").index(i),
                    format!("{code} is not an HTTP status code (100-599)"),
                );
            }
        }
    }
}

impl Validate for ClientTlsSettings {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        let files = [
            ("clientCertificate", &self.client_certificate),
            ("privateKey", &self.private_key),
            ("caCertificates", &self.ca_certificates),
            ("caCrl", &self.ca_crl),
        ];
        let set_files = || {
            files
                .iter()
                .filter(|(_, value)| !value.is_empty())
                .map(|(field, _)| *field)
        };
        match self.mode {
            TlsMode::Simple | TlsMode::Mutual if !self.credential_name.is_empty() => {
                for field in set_files() {
                    errs.add(
                        &at.field(field),
                        format!("{field} cannot be set together with credentialName; the secret provides it"),
                    );
                }
            }
            TlsMode::Mutual => {
                for field in ["clientCertificate", "privateKey"] {
                    if set_files().all(|set| set != field) {
                        errs.add(
                            &at.field(field),
                            format!("MUTUAL mode needs {field} (or credentialName)"),
                        );
                    }
                }
            }
            TlsMode::IstioMutual => {
                for field in set_files() {
                    errs.add(
                        &at.field(field),
                        format!("{field} must be empty in ISTIO_MUTUAL mode, which uses the mesh's certificates"),
                    );
                }
            }
            TlsMode::Simple | TlsMode::Disable => {}
        }
        if self.insecure_skip_verify == Some(true) {
            let mut conflicts = vec![("caCertificates", !self.ca_certificates.is_empty())];
            if self.mode == TlsMode::Simple {
                conflicts.push(("credentialName", !self.credential_name.is_empty()));
            }
            conflicts.push(("subjectAltNames", !self.subject_alt_names.is_empty()));
            if matches!(self.mode, TlsMode::Simple | TlsMode::Mutual) {
                for (field, _) in conflicts.into_iter().filter(|(_, set)| *set) {
                    errs.add(
                        &at.field(field),
                        format!("{field} has no effect when insecureSkipVerify is true; remove one of them"),
                    );
                }
            }
        }
    }
}
