//! Locality load balancing, as istiod applies it to the endpoints each
//! proxy gets (its own locality decides): the DestinationRule's
//! `localityLbSetting`, else the mesh default (enabled, nothing else set).
//!
//! - `distribute`: the first rule whose `from` matches the proxy's locality
//!   sets each destination locality's share of the traffic (split over the
//!   groups a wildcard matches, by their weights); groups it does not name
//!   get no endpoints.
//! - Otherwise, failover, only when the cluster has outlier detection (or
//!   Envoy would never leave priority 0): endpoints in the proxy's
//!   region/zone/subzone are priority 0, its region/zone 1, its region 2,
//!   others 3, and with `failover` rules for the proxy's region, regions
//!   other than the rule's `to` drop to 4; priorities are then renumbered
//!   without gaps.
//! - `enabled: false` turns both off.
//!
//! Left out: `failoverPriority` (label-based priorities), zone-aware
//! routing (`zoneAwareLbSetting`) and Kubernetes' `trafficDistribution`.

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::Locality;
use envoy_types::pb::envoy::config::endpoint::v3::LocalityLbEndpoints;
use mesh_api::networking::destination_rule::{Distribute, Failover, LocalityLoadBalancerSetting};

use super::endpoint::parse_locality;
use super::policy::Policy;
use super::proto::u32v;

/// The locality setting a cluster follows, or `None` when it is turned off.
fn setting(policy: &Policy) -> Option<LocalityLoadBalancerSetting> {
    let setting = policy
        .load_balancer
        .as_ref()
        .and_then(|lb| lb.locality_lb_setting.clone())
        .unwrap_or_default();
    (setting.enabled != Some(false)).then_some(setting)
}

/// Makes the cluster weigh localities when its endpoints carry locality
/// weights or failover rules (else weights would skew other policies).
pub fn apply_to_cluster(c: &mut Cluster, policy: &Policy) {
    let Some(setting) = setting(policy) else {
        return;
    };
    let failover = policy.outlier_detection.is_some()
        && (!setting.failover.is_empty() || !setting.failover_priority.is_empty());
    if failover || !setting.distribute.is_empty() {
        let common = c.common_lb_config.get_or_insert_with(Default::default);
        common.locality_config_specifier = Some(
            cluster::common_lb_config::LocalityConfigSpecifier::LocalityWeightedLbConfig(
                Default::default(),
            ),
        );
    }
}

/// Weighs or ranks the endpoint groups for a proxy at `proxy_locality`.
pub fn apply(groups: &mut [LocalityLbEndpoints], proxy_locality: &str, policy: &Policy) {
    let Some(setting) = setting(policy) else {
        return;
    };
    let proxy = parse_locality(proxy_locality);
    if !setting.distribute.is_empty() {
        distribute(groups, &proxy, &setting.distribute);
    } else if policy.outlier_detection.is_some() {
        failover(groups, &proxy, &setting.failover);
    }
}

/// istiod's `LocalityMatch`: a rule's `region/zone/subzone`, where `*` or
/// a missing part matches anything (but the region must be given).
fn matches(locality: &Locality, rule: &str) -> bool {
    let mut parts = rule.splitn(3, '/');
    let (region, zone, subzone) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let part = |rule: &str, value: &str, optional: bool| {
        rule == "*" || (optional && rule.is_empty()) || rule == value
    };
    part(region, &locality.region, false)
        && part(zone, &locality.zone, true)
        && part(subzone, &locality.sub_zone, true)
}

fn distribute(groups: &mut [LocalityLbEndpoints], proxy: &Locality, rules: &[Distribute]) {
    let Some(rule) = rules.iter().find(|r| matches(proxy, &r.from)) else {
        return;
    };
    let mut unmatched: Vec<bool> = vec![true; groups.len()];
    let original: Vec<u32> = groups
        .iter()
        .map(|g| g.load_balancing_weight.map_or(1, |w| w.value.max(1)))
        .collect();
    for (destination, weight) in &rule.to {
        let matched: Vec<usize> = (0..groups.len())
            .filter(|&i| {
                unmatched[i]
                    && groups[i]
                        .locality
                        .as_ref()
                        .is_some_and(|l| matches(l, destination))
            })
            .collect();
        let total: u32 = matched.iter().map(|&i| original[i]).sum();
        for &i in &matched {
            unmatched[i] = false;
            let share = f64::from(original[i]) * f64::from(*weight) / f64::from(total.max(1));
            if share > 0.0 {
                // Rounded up as istiod does; at most the rule's weight.
                groups[i].load_balancing_weight = u32v(share.ceil() as u32);
            }
        }
    }
    for (group, unmatched) in groups.iter_mut().zip(unmatched) {
        if unmatched {
            group.lb_endpoints.clear();
        }
    }
}

fn failover(groups: &mut [LocalityLbEndpoints], proxy: &Locality, rules: &[Failover]) {
    let rule = rules.iter().find(|r| r.from == proxy.region);
    for group in groups.iter_mut() {
        let locality = group.locality.clone().unwrap_or_default();
        let mut priority = if locality.region != proxy.region {
            3
        } else if locality.zone != proxy.zone {
            2
        } else if locality.sub_zone != proxy.sub_zone {
            1
        } else {
            0
        };
        if priority == 3 && rule.is_some_and(|r| r.to != locality.region) {
            priority = 4;
        }
        group.priority = group.priority * 5 + priority;
    }
    // Priorities run from 0 without gaps.
    let mut used: Vec<u32> = groups.iter().map(|g| g.priority).collect();
    used.sort_unstable();
    used.dedup();
    for group in groups.iter_mut() {
        group.priority = used.iter().position(|&p| p == group.priority).unwrap_or(0) as u32;
    }
}

#[cfg(test)]
mod tests;
