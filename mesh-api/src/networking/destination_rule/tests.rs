use serde_json::{Value, json};

use super::*;
use crate::validate::check;
use crate::validate::testing::{self, assert_valid, parse};

#[track_caller]
fn assert_only_error(doc: Value, path: &str, reason: &str) {
    testing::assert_only_error::<DestinationRuleSpec>(doc, path, reason);
}

/// A valid rule with `policy` as its top-level traffic policy.
fn with_policy(policy: Value) -> Value {
    json!({ "host": "reviews.default.svc.cluster.local", "trafficPolicy": policy })
}

/// A valid rule with `lb` as its top-level load balancer.
fn with_lb(lb: Value) -> Value {
    with_policy(json!({ "loadBalancer": lb }))
}

fn rich() -> Value {
    json!({
        "host": "reviews.default.svc.cluster.local",
        "trafficPolicy": {
            "loadBalancer": {
                "simple": "LEAST_REQUEST",
                "localityLbSetting": {
                    "enabled": true,
                    "distribute": [
                        { "from": "us-west/zone1/*", "to": { "us-west/zone1/*": 80, "us-west/zone2/*": 20 } },
                        { "from": "us-west/zone2/*", "to": { "us-west/zone1/*": 20, "us-west/zone2/*": 80 } }
                    ]
                },
                "warmup": { "duration": "30s", "minimumPercent": 10.0, "aggression": 1.5 }
            },
            "connectionPool": {
                "tcp": {
                    "maxConnections": 100,
                    "connectTimeout": "30ms",
                    "tcpKeepalive": { "probes": 9, "time": "7200s", "interval": "75s" },
                    "maxConnectionDuration": "1h",
                    "idleTimeout": "0s"
                },
                "http": {
                    "http1MaxPendingRequests": 10,
                    "http2MaxRequests": 1000,
                    "maxRequestsPerConnection": 10,
                    "maxRetries": 3,
                    "idleTimeout": "1m",
                    "h2UpgradePolicy": "DO_NOT_UPGRADE",
                    "useClientProtocol": true,
                    "maxConcurrentStreams": 100,
                    "http2KeepAlive": { "interval": "10s", "timeout": "2s" }
                }
            },
            "outlierDetection": {
                "splitExternalLocalOriginErrors": true,
                "consecutiveLocalOriginFailures": 3,
                "consecutiveGatewayErrors": 5,
                "consecutive5xxErrors": 7,
                "interval": "5m",
                "baseEjectionTime": "15m",
                "maxEjectionPercent": 50,
                "minHealthPercent": 20,
                "outlierDetectionHttpErrorCodes": [500, 503]
            },
            "tls": { "mode": "ISTIO_MUTUAL", "sni": "reviews.default.svc.cluster.local" },
            "portLevelSettings": [
                {
                    "port": { "number": 9080 },
                    "loadBalancer": {
                        "consistentHash": {
                            "httpCookie": {
                                "name": "user",
                                "path": "/",
                                "ttl": "0s",
                                "attributes": [{ "name": "SameSite", "value": "Strict" }, { "name": "Secure" }]
                            },
                            "maglev": { "tableSize": 65537 }
                        }
                    }
                },
                {
                    "port": { "number": 9443 },
                    "tls": {
                        "mode": "MUTUAL",
                        "clientCertificate": "/etc/certs/client.pem",
                        "privateKey": "/etc/certs/key.pem",
                        "caCertificates": "/etc/certs/ca.pem",
                        "caCrl": "/etc/certs/crl.pem",
                        "subjectAltNames": ["reviews.example.com"],
                        "insecureSkipVerify": false
                    }
                }
            ],
            "retryBudget": { "percent": 25.0, "minRetryConcurrency": 3, "budgetInterval": "10s" }
        },
        "subsets": [
            { "name": "v1", "labels": { "version": "v1" } },
            {
                "name": "v2",
                "labels": { "version": "v2", "app.kubernetes.io/name": "reviews" },
                "trafficPolicy": {
                    "loadBalancer": {
                        "consistentHash": { "httpHeaderName": "x-user", "ringHash": { "minimumRingSize": 1024 } },
                        "zoneAwareLbSetting": {
                            "enabled": true,
                            "failover": [{ "from": "us-east", "to": "eu-west" }],
                            "failoverPriority": ["topology.istio.io/network"],
                            "minClusterSize": 6
                        }
                    },
                    "tunnel": { "protocol": "CONNECT", "targetHost": "egress.example.com", "targetPort": 8443 }
                }
            },
            {
                "name": "v3",
                "trafficPolicy": {
                    "loadBalancer": {
                        "consistentHash": { "useSourceIp": true },
                        "localityLbSetting": {
                            "failover": [{ "from": "us-east", "to": "eu-west" }],
                            "failoverPriority": ["topology.istio.io/network"]
                        },
                        "warmupDurationSecs": "10s"
                    },
                    "proxyProtocol": { "version": "V2" },
                    "tls": { "mode": "SIMPLE", "credentialName": "reviews-client", "sni": "reviews.example.com" }
                }
            }
        ],
        "exportTo": [".", "istio-system"]
    })
}

#[test]
fn rich_document_is_valid_and_round_trips() {
    let rule: DestinationRuleSpec = parse(rich());
    assert_eq!(check(&rule), Vec::new());
    let text = serde_json::to_string(&rule).unwrap();
    let again: DestinationRuleSpec = serde_json::from_str(&text).unwrap();
    assert_eq!(again, rule);
    let policy = rule.traffic_policy.as_ref().unwrap();
    assert_eq!(
        policy.load_balancer.as_ref().unwrap().simple,
        Some(SimpleLb::LeastRequest)
    );
    let outlier = policy.outlier_detection.as_ref().unwrap();
    assert_eq!(outlier.consecutive_5xx_errors, Some(7));
    let http = policy
        .connection_pool
        .as_ref()
        .unwrap()
        .http
        .as_ref()
        .unwrap();
    assert_eq!(http.h2_upgrade_policy, H2UpgradePolicy::DoNotUpgrade);
    assert_eq!(http.http1_max_pending_requests, Some(10));
    // Field names come back out exactly as Istio spells them.
    assert!(text.contains("\"consecutive5xxErrors\":7"), "{text}");
    assert!(text.contains("\"http2KeepAlive\""), "{text}");
    assert!(
        text.contains("\"outlierDetectionHttpErrorCodes\""),
        "{text}"
    );
}

#[test]
fn crd_has_istio_names_and_columns() {
    use kube::CustomResourceExt;
    let crd = DestinationRule::crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("destinationrules.networking.istio.io")
    );
    assert_eq!(crd.spec.names.short_names, Some(vec!["dr".to_owned()]));
    let version = &crd.spec.versions[0];
    let columns: Vec<_> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(columns, ["Host", "Age"]);
    let schema = serde_json::to_string(&version.schema).unwrap();
    assert!(
        schema.contains("outlierDetectionHttpErrorCodes"),
        "{schema}"
    );
}

#[test]
fn bookinfo_rule_is_valid() {
    assert_valid::<DestinationRuleSpec>(json!({
        "host": "reviews",
        "trafficPolicy": { "tls": { "mode": "ISTIO_MUTUAL" } },
        "subsets": [
            { "name": "v1", "labels": { "version": "v1" } },
            { "name": "v2", "labels": { "version": "v2" } },
            { "name": "v2-mysql", "labels": { "version": "v2-mysql" } }
        ]
    }));
}

#[test]
fn finds_subsets_by_name() {
    let rule: DestinationRuleSpec = parse(rich());
    assert_eq!(rule.subset("v2").unwrap().labels["version"], "v2");
    assert!(rule.subset("v9").is_none());
}

#[test]
fn unknown_field_fails_to_parse() {
    let err = serde_json::from_value::<DestinationRuleSpec>(with_lb(json!({ "simpel": "RANDOM" })))
        .unwrap_err();
    assert!(err.to_string().contains("unknown field `simpel`"), "{err}");
}

#[test]
fn misspelled_enum_fails_to_parse() {
    let err =
        serde_json::from_value::<DestinationRuleSpec>(with_lb(json!({ "simple": "ROUND_ROBBIN" })))
            .unwrap_err();
    assert!(err.to_string().contains("ROUND_ROBBIN"), "{err}");
    let err = serde_json::from_value::<DestinationRuleSpec>(with_policy(
        json!({ "tls": { "mode": "MTLS" } }),
    ))
    .unwrap_err();
    assert!(err.to_string().contains("MTLS"), "{err}");
}

#[test]
fn missing_host_fails_to_parse() {
    let err = serde_json::from_value::<DestinationRuleSpec>(json!({ "subsets": [] })).unwrap_err();
    assert!(err.to_string().contains("missing field `host`"), "{err}");
}

// ---- host, subsets, exportTo, selector

#[test]
fn host_must_be_valid() {
    assert_only_error(
        json!({ "host": "rev*iews.default" }),
        "spec.host",
        "not a valid domain name",
    );
    assert_only_error(json!({ "host": "" }), "spec.host", "must not be empty");
}

#[test]
fn subset_name_is_required() {
    assert_only_error(
        json!({ "host": "reviews", "subsets": [{ "name": "", "labels": { "version": "v1" } }] }),
        "spec.subsets[0].name",
        "subset name is required",
    );
}

#[test]
fn subset_name_must_be_a_dns_label() {
    assert_only_error(
        json!({ "host": "reviews", "subsets": [{ "name": "V1.0", "labels": { "version": "v1" } }] }),
        "spec.subsets[0].name",
        "lower-case DNS label",
    );
}

#[test]
fn subset_names_must_be_unique() {
    assert_only_error(
        json!({ "host": "reviews", "subsets": [
            { "name": "v1", "labels": { "version": "v1" } },
            { "name": "v1", "labels": { "version": "v2" } }
        ] }),
        "spec.subsets[1].name",
        "\"v1\" is used more than once",
    );
}

#[test]
fn subset_labels_must_be_valid() {
    assert_only_error(
        json!({ "host": "reviews", "subsets": [{ "name": "v1", "labels": { "version": "-v1" } }] }),
        "spec.subsets[0].labels.version",
        "label value \"-v1\" is invalid",
    );
}

#[test]
fn subset_traffic_policy_is_checked() {
    assert_only_error(
        json!({ "host": "reviews", "subsets": [{ "name": "v1", "trafficPolicy": {
            "outlierDetection": { "maxEjectionPercent": 150 }
        } }] }),
        "spec.subsets[0].trafficPolicy.outlierDetection.maxEjectionPercent",
        "between 0 and 100",
    );
}

#[test]
fn export_to_refuses_none() {
    assert_only_error(
        json!({ "host": "reviews", "exportTo": ["~"] }),
        "spec.exportTo[0]",
        "only allowed on ServiceEntry",
    );
}

#[test]
fn export_to_entries_must_be_namespaces() {
    assert_only_error(
        json!({ "host": "reviews", "exportTo": ["Bad_NS"] }),
        "spec.exportTo[0]",
        "must be \".\", \"*\" or a namespace name",
    );
}

#[test]
fn export_to_has_no_duplicates() {
    assert_only_error(
        json!({ "host": "reviews", "exportTo": ["istio-system", "istio-system"] }),
        "spec.exportTo[1]",
        "listed more than once",
    );
}

#[test]
fn export_to_star_stands_alone() {
    assert_only_error(
        json!({ "host": "reviews", "exportTo": ["*", "default"] }),
        "spec.exportTo",
        "cannot be combined",
    );
}

#[test]
fn export_to_with_selector_stays_in_namespace() {
    assert_only_error(
        json!({ "host": "reviews", "exportTo": ["*"], "workloadSelector": { "matchLabels": { "app": "productpage" } } }),
        "spec.exportTo",
        "workloadSelector can only be exported to its own namespace",
    );
}

#[test]
fn workload_selector_refuses_wildcards() {
    assert_only_error(
        json!({ "host": "reviews", "workloadSelector": { "matchLabels": { "app": "product*" } } }),
        "spec.workloadSelector.matchLabels.app",
        "wildcards are not allowed",
    );
}

// ---- traffic policy

#[test]
fn traffic_policy_must_not_be_empty() {
    assert_only_error(
        with_policy(json!({})),
        "spec.trafficPolicy",
        "at least one of",
    );
}

#[test]
fn tunnel_and_proxy_protocol_are_exclusive() {
    assert_only_error(
        with_policy(json!({
            "tunnel": { "targetHost": "proxy.example.com", "targetPort": 3128 },
            "proxyProtocol": { "version": "V1" }
        })),
        "spec.trafficPolicy",
        "only one of tunnel, proxyProtocol may be set",
    );
}

#[test]
fn tunnel_protocol_is_connect_or_post() {
    assert_only_error(
        with_policy(
            json!({ "tunnel": { "protocol": "GET", "targetHost": "10.0.0.1", "targetPort": 3128 } }),
        ),
        "spec.trafficPolicy.tunnel.protocol",
        "use CONNECT or POST",
    );
}

#[test]
fn tunnel_target_host_is_a_host_or_ip() {
    assert_only_error(
        with_policy(json!({ "tunnel": { "targetHost": "*.example.com", "targetPort": 3128 } })),
        "spec.trafficPolicy.tunnel.targetHost",
        "host name or IP address",
    );
}

#[test]
fn tunnel_target_port_is_valid() {
    assert_only_error(
        with_policy(
            json!({ "tunnel": { "targetHost": "proxy.example.com", "targetPort": 70000 } }),
        ),
        "spec.trafficPolicy.tunnel.targetPort",
        "between 1 and 65535",
    );
}

#[test]
fn retry_budget_percent_is_a_percentage() {
    assert_only_error(
        with_policy(json!({ "retryBudget": { "percent": 150.0 } })),
        "spec.trafficPolicy.retryBudget.percent",
        "between 0 and 100",
    );
}

#[test]
fn port_level_settings_need_a_port() {
    assert_only_error(
        with_policy(json!({ "portLevelSettings": [{ "tls": { "mode": "ISTIO_MUTUAL" } }] })),
        "spec.trafficPolicy.portLevelSettings[0].port",
        "needs the port",
    );
}

#[test]
fn port_level_ports_are_unique() {
    assert_only_error(
        with_policy(json!({ "portLevelSettings": [
            { "port": { "number": 80 }, "loadBalancer": { "simple": "RANDOM" } },
            { "port": { "number": 80 }, "tls": { "mode": "SIMPLE" } }
        ] })),
        "spec.trafficPolicy.portLevelSettings[1].port.number",
        "port 80 already has a port-level policy",
    );
}

#[test]
fn port_level_port_number_is_valid() {
    assert_only_error(
        with_policy(
            json!({ "portLevelSettings": [{ "port": { "number": 0 }, "tls": { "mode": "SIMPLE" } }] }),
        ),
        "spec.trafficPolicy.portLevelSettings[0].port.number",
        "between 1 and 65535",
    );
}

#[test]
fn port_level_settings_set_a_policy() {
    assert_only_error(
        with_policy(json!({ "portLevelSettings": [{ "port": { "number": 80 } }] })),
        "spec.trafficPolicy.portLevelSettings[0]",
        "at least one of loadBalancer",
    );
}

// ---- load balancer

#[test]
fn simple_and_consistent_hash_are_exclusive() {
    assert_only_error(
        with_lb(json!({ "simple": "RANDOM", "consistentHash": { "useSourceIp": true } })),
        "spec.trafficPolicy.loadBalancer",
        "only one of simple, consistentHash may be set",
    );
}

#[test]
fn consistent_hash_needs_a_key() {
    assert_only_error(
        with_lb(json!({ "consistentHash": { "ringHash": { "minimumRingSize": 1024 } } })),
        "spec.trafficPolicy.loadBalancer.consistentHash",
        "needs a hash key",
    );
}

#[test]
fn consistent_hash_takes_one_key() {
    assert_only_error(
        with_lb(json!({ "consistentHash": { "httpHeaderName": "x-user", "useSourceIp": true } })),
        "spec.trafficPolicy.loadBalancer.consistentHash",
        "only one of httpHeaderName, useSourceIp may be set",
    );
}

#[test]
fn hash_header_name_is_valid() {
    assert_only_error(
        with_lb(json!({ "consistentHash": { "httpHeaderName": "x user" } })),
        "spec.trafficPolicy.loadBalancer.consistentHash.httpHeaderName",
        "not a valid HTTP header name",
    );
}

#[test]
fn ring_hash_and_maglev_are_exclusive() {
    assert_only_error(
        with_lb(json!({ "consistentHash": {
            "useSourceIp": true, "ringHash": { "minimumRingSize": 1024 }, "maglev": { "tableSize": 65537 }
        } })),
        "spec.trafficPolicy.loadBalancer.consistentHash",
        "only one of ringHash, maglev may be set",
    );
}

#[test]
fn minimum_ring_size_is_bounded() {
    assert_only_error(
        with_lb(
            json!({ "consistentHash": { "useSourceIp": true, "ringHash": { "minimumRingSize": 10000000 } } }),
        ),
        "spec.trafficPolicy.loadBalancer.consistentHash.ringHash.minimumRingSize",
        "larger than the maximum of 8388608",
    );
}

#[test]
fn deprecated_ring_size_excludes_algorithms() {
    assert_only_error(
        with_lb(json!({ "consistentHash": {
            "useSourceIp": true, "minimumRingSize": 1024, "maglev": { "tableSize": 65537 }
        } })),
        "spec.trafficPolicy.loadBalancer.consistentHash.minimumRingSize",
        "cannot be combined with ringHash or maglev",
    );
}

#[test]
fn maglev_table_size_is_prime() {
    assert_only_error(
        with_lb(
            json!({ "consistentHash": { "useSourceIp": true, "maglev": { "tableSize": 65536 } } }),
        ),
        "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize",
        "must be a prime number",
    );
}

#[test]
fn hash_cookie_needs_a_name() {
    assert_only_error(
        with_lb(json!({ "consistentHash": { "httpCookie": { "name": "" } } })),
        "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name",
        "needs a name",
    );
}

#[test]
fn cookie_attributes_are_unique() {
    assert_only_error(
        with_lb(json!({ "consistentHash": { "httpCookie": {
            "name": "user", "attributes": [{ "name": "Secure" }, { "name": "Secure" }]
        } } })),
        "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.attributes[1].name",
        "listed more than once",
    );
}

#[test]
fn locality_and_zone_aware_are_exclusive() {
    assert_only_error(
        with_lb(
            json!({ "localityLbSetting": { "enabled": true }, "zoneAwareLbSetting": { "enabled": true } }),
        ),
        "spec.trafficPolicy.loadBalancer",
        "only one of localityLbSetting, zoneAwareLbSetting may be set",
    );
}

#[test]
fn warmup_forms_are_exclusive() {
    assert_only_error(
        with_lb(json!({ "warmupDurationSecs": "10s", "warmup": { "duration": "10s" } })),
        "spec.trafficPolicy.loadBalancer",
        "only one of warmupDurationSecs, warmup may be set",
    );
}

#[test]
fn warmup_aggression_is_positive() {
    assert_only_error(
        with_lb(
            json!({ "simple": "ROUND_ROBIN", "warmup": { "duration": "10s", "aggression": 0.0 } }),
        ),
        "spec.trafficPolicy.loadBalancer.warmup.aggression",
        "must be greater than 0",
    );
}

#[test]
fn warmup_duration_is_at_least_a_millisecond() {
    assert_only_error(
        with_lb(json!({ "warmup": { "duration": "0s" } })),
        "spec.trafficPolicy.loadBalancer.warmup.duration",
        "at least 1ms",
    );
}

#[test]
fn distribute_weights_sum_to_100() {
    assert_only_error(
        with_lb(json!({ "localityLbSetting": { "distribute": [
            { "from": "us-west/zone1/*", "to": { "us-west/zone1/*": 80, "us-west/zone2/*": 10 } }
        ] } })),
        "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to",
        "sum to 90; they must sum to 100",
    );
}

#[test]
fn distribute_localities_do_not_overlap() {
    assert_only_error(
        with_lb(json!({ "localityLbSetting": { "distribute": [
            { "from": "us-west/*", "to": { "us-west/*": 100 } },
            { "from": "us-west/zone1", "to": { "us-west/*": 100 } }
        ] } })),
        "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[1].from",
        "overlaps a locality listed before it",
    );
}

#[test]
fn locality_wildcard_only_at_the_end() {
    assert_only_error(
        with_lb(json!({ "localityLbSetting": { "distribute": [
            { "from": "us-west/*/zone1", "to": { "us-west/*": 100 } }
        ] } })),
        "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].from",
        "only have one '*', at the end",
    );
}

#[test]
fn distribute_and_failover_are_exclusive() {
    assert_only_error(
        with_lb(json!({ "localityLbSetting": {
            "distribute": [{ "from": "us-west/*", "to": { "us-west/*": 100 } }],
            "failover": [{ "from": "us-west", "to": "us-east" }]
        } })),
        "spec.trafficPolicy.loadBalancer.localityLbSetting",
        "distribute and failover cannot both be set",
    );
}

#[test]
fn failover_regions_differ() {
    assert_only_error(
        with_lb(
            json!({ "localityLbSetting": { "failover": [{ "from": "us-west", "to": "us-west" }] } }),
        ),
        "spec.trafficPolicy.loadBalancer.localityLbSetting.failover[0]",
        "from and to must be different regions",
    );
}

#[test]
fn failover_takes_regions_only() {
    assert_only_error(
        with_lb(
            json!({ "localityLbSetting": { "failover": [{ "from": "us-west/zone1", "to": "us-east" }] } }),
        ),
        "spec.trafficPolicy.loadBalancer.localityLbSetting.failover[0].from",
        "takes a region only",
    );
}

#[test]
fn failover_excludes_topology_priority_labels() {
    assert_only_error(
        with_lb(json!({ "localityLbSetting": {
            "failover": [{ "from": "us-west", "to": "us-east" }],
            "failoverPriority": ["topology.istio.io/network", "topology.kubernetes.io/region"]
        } })),
        "spec.trafficPolicy.loadBalancer.localityLbSetting.failoverPriority[1]",
        "cannot be used in failoverPriority together with failover",
    );
}

#[test]
fn zone_aware_priority_excludes_topology_labels() {
    assert_only_error(
        with_lb(
            json!({ "zoneAwareLbSetting": { "failoverPriority": ["topology.kubernetes.io/zone"] } }),
        ),
        "spec.trafficPolicy.loadBalancer.zoneAwareLbSetting.failoverPriority[0]",
        "not allowed in zone-aware failoverPriority",
    );
}

#[test]
fn zone_aware_min_cluster_size_is_positive() {
    assert_only_error(
        with_lb(json!({ "zoneAwareLbSetting": { "minClusterSize": 0 } })),
        "spec.trafficPolicy.loadBalancer.zoneAwareLbSetting.minClusterSize",
        "at least 1",
    );
}

// ---- connection pool

#[test]
fn connection_pool_must_not_be_empty() {
    assert_only_error(
        with_policy(json!({ "connectionPool": {} })),
        "spec.trafficPolicy.connectionPool",
        "must set tcp or http",
    );
}

#[test]
fn max_connections_is_not_negative() {
    assert_only_error(
        with_policy(json!({ "connectionPool": { "tcp": { "maxConnections": -1 } } })),
        "spec.trafficPolicy.connectionPool.tcp.maxConnections",
        "-1 is negative",
    );
}

#[test]
fn http_limits_are_not_negative() {
    assert_only_error(
        with_policy(json!({ "connectionPool": { "http": { "maxRequestsPerConnection": -5 } } })),
        "spec.trafficPolicy.connectionPool.http.maxRequestsPerConnection",
        "-5 is negative",
    );
}

#[test]
fn connect_timeout_is_at_least_a_millisecond() {
    assert_only_error(
        with_policy(json!({ "connectionPool": { "tcp": { "connectTimeout": "0s" } } })),
        "spec.trafficPolicy.connectionPool.tcp.connectTimeout",
        "must be at least 1ms",
    );
}

#[test]
fn durations_have_millisecond_precision() {
    assert_only_error(
        with_policy(json!({ "connectionPool": { "http": { "idleTimeout": "1500us" } } })),
        "spec.trafficPolicy.connectionPool.http.idleTimeout",
        "more than millisecond precision",
    );
}

#[test]
fn tcp_keepalive_durations_are_checked() {
    assert_only_error(
        with_policy(
            json!({ "connectionPool": { "tcp": { "tcpKeepalive": { "time": "7200s", "interval": "500us" } } } }),
        ),
        "spec.trafficPolicy.connectionPool.tcp.tcpKeepalive.interval",
        "must be at least 1ms",
    );
}

#[test]
fn http2_keepalive_needs_a_timeout() {
    assert_only_error(
        with_policy(
            json!({ "connectionPool": { "http": { "http2KeepAlive": { "interval": "10s" } } } }),
        ),
        "spec.trafficPolicy.connectionPool.http.http2KeepAlive.timeout",
        "needs timeout",
    );
}

#[test]
fn client_protocol_conflicts_with_upgrade() {
    assert_only_error(
        with_policy(
            json!({ "connectionPool": { "http": { "h2UpgradePolicy": "UPGRADE", "useClientProtocol": true } } }),
        ),
        "spec.trafficPolicy.connectionPool.http.useClientProtocol",
        "cannot be true when h2UpgradePolicy is UPGRADE",
    );
}

// ---- outlier detection

#[test]
fn consecutive_errors_are_not_negative() {
    assert_only_error(
        with_policy(json!({ "outlierDetection": { "consecutiveErrors": -1 } })),
        "spec.trafficPolicy.outlierDetection.consecutiveErrors",
        "must be 0 or more",
    );
}

#[test]
fn local_origin_failures_need_split_errors() {
    assert_only_error(
        with_policy(json!({ "outlierDetection": { "consecutiveLocalOriginFailures": 3 } })),
        "spec.trafficPolicy.outlierDetection.consecutiveLocalOriginFailures",
        "splitExternalLocalOriginErrors",
    );
}

#[test]
fn outlier_interval_is_at_least_a_millisecond() {
    assert_only_error(
        with_policy(json!({ "outlierDetection": { "interval": "0s" } })),
        "spec.trafficPolicy.outlierDetection.interval",
        "must be at least 1ms",
    );
}

#[test]
fn base_ejection_time_is_at_least_a_millisecond() {
    assert_only_error(
        with_policy(json!({ "outlierDetection": { "baseEjectionTime": "100us" } })),
        "spec.trafficPolicy.outlierDetection.baseEjectionTime",
        "must be at least 1ms",
    );
}

#[test]
fn min_health_percent_is_a_percentage() {
    assert_only_error(
        with_policy(json!({ "outlierDetection": { "minHealthPercent": -1 } })),
        "spec.trafficPolicy.outlierDetection.minHealthPercent",
        "minHealthPercent -1 must be between 0 and 100",
    );
}

#[test]
fn outlier_error_codes_are_status_codes() {
    assert_only_error(
        with_policy(
            json!({ "outlierDetection": { "outlierDetectionHttpErrorCodes": [503, 600] } }),
        ),
        "spec.trafficPolicy.outlierDetection.outlierDetectionHttpErrorCodes[1]",
        "600 is not an HTTP status code",
    );
}

// ---- TLS

#[test]
fn mutual_tls_needs_a_private_key() {
    assert_only_error(
        with_policy(
            json!({ "tls": { "mode": "MUTUAL", "clientCertificate": "/etc/certs/client.pem" } }),
        ),
        "spec.trafficPolicy.tls.privateKey",
        "MUTUAL mode needs privateKey",
    );
}

#[test]
fn mutual_tls_with_credential_name_needs_no_files() {
    assert_valid::<DestinationRuleSpec>(with_policy(
        json!({ "tls": { "mode": "MUTUAL", "credentialName": "client-secret" } }),
    ));
}

#[test]
fn credential_name_excludes_files() {
    assert_only_error(
        with_policy(
            json!({ "tls": { "mode": "SIMPLE", "credentialName": "secret", "caCertificates": "/etc/ca.pem" } }),
        ),
        "spec.trafficPolicy.tls.caCertificates",
        "cannot be set together with credentialName",
    );
}

#[test]
fn istio_mutual_takes_no_files() {
    assert_only_error(
        with_policy(
            json!({ "tls": { "mode": "ISTIO_MUTUAL", "clientCertificate": "/etc/certs/client.pem" } }),
        ),
        "spec.trafficPolicy.tls.clientCertificate",
        "must be empty in ISTIO_MUTUAL mode",
    );
}

#[test]
fn insecure_skip_verify_excludes_verification_settings() {
    assert_only_error(
        with_policy(
            json!({ "tls": { "mode": "SIMPLE", "insecureSkipVerify": true, "subjectAltNames": ["a.example.com"] } }),
        ),
        "spec.trafficPolicy.tls.subjectAltNames",
        "no effect when insecureSkipVerify is true",
    );
}

#[test]
fn port_level_tls_is_checked() {
    assert_only_error(
        with_policy(json!({ "portLevelSettings": [
            { "port": { "number": 443 }, "tls": { "mode": "MUTUAL", "privateKey": "/etc/key.pem" } }
        ] })),
        "spec.trafficPolicy.portLevelSettings[0].tls.clientCertificate",
        "MUTUAL mode needs clientCertificate",
    );
}
