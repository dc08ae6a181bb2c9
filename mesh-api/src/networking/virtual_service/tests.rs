use kube::CustomResourceExt;
use serde_json::{Value, json};

use super::*;
use crate::validate::check;
use crate::validate::testing::{self, assert_valid, parse};

#[track_caller]
fn rejects(doc: Value, path: &str, reason: &str) {
    testing::assert_only_error::<VirtualServiceSpec>(doc, path, reason);
}

/// A VirtualService for `reviews` with one HTTP rule.
fn with_http(rule: Value) -> Value {
    json!({ "hosts": ["reviews"], "http": [rule] })
}

/// An HTTP rule forwarding to reviews, with `extra` merged in.
fn rule(extra: Value) -> Value {
    let mut rule = json!({ "route": [{ "destination": { "host": "reviews" } }] });
    rule.as_object_mut()
        .expect("object")
        .extend(extra.as_object().expect("object").clone());
    rule
}

/// A VirtualService whose one rule has one match.
fn with_match(m: Value) -> Value {
    with_http(rule(json!({ "match": [m] })))
}

fn rich() -> Value {
    json!({
        "hosts": ["reviews.prod.svc.cluster.local", "*.bookinfo.com", "10.0.0.5"],
        "gateways": ["mesh", "istio-system/bookinfo-gateway", "bookinfo-gateway"],
        "exportTo": [".", "prod"],
        "http": [
            {
                "name": "jason",
                "match": [{
                    "name": "v2",
                    "uri": { "prefix": "/reviews" },
                    "scheme": { "exact": "https" },
                    "method": { "regex": "GET|HEAD" },
                    "authority": { "prefix": "reviews" },
                    "headers": { "end-user": { "exact": "jason" }, "x-present": {}, ":path": { "prefix": "/" } },
                    "withoutHeaders": { "x-debug": { "regex": "*" } },
                    "queryParams": { "v": { "regex": "\\d+" }, "flag": {} },
                    "port": 9080,
                    "sourceLabels": { "app": "productpage" },
                    "gateways": ["mesh"],
                    "ignoreUriCase": true,
                    "sourceNamespace": "prod",
                    "statPrefix": "jason"
                }, {
                    "uri": { "prefix": "" }
                }],
                "route": [
                    {
                        "destination": { "host": "reviews", "subset": "v2", "port": { "number": 9080 } },
                        "weight": 90,
                        "headers": { "response": { "remove": ["x-internal"] } }
                    },
                    { "destination": { "host": "reviews", "subset": "v3" }, "weight": 10 }
                ],
                "rewrite": {
                    "uriRegexRewrite": { "match": "^/reviews/(.*)$", "rewrite": "/v2/\\1" },
                    "authority": "reviews.internal"
                },
                "timeout": "3s",
                "retries": {
                    "attempts": 3,
                    "perTryTimeout": "1s",
                    "retryOn": "5xx,connect-failure,503,unavailable",
                    "retryRemoteLocalities": true,
                    "retryIgnorePreviousHosts": false,
                    "backoff": "25ms"
                },
                "fault": {
                    "delay": { "fixedDelay": "7s", "percentage": { "value": 10.5 } },
                    "abort": { "httpStatus": 500, "percentage": { "value": 0.1 } }
                },
                "mirrors": [{ "destination": { "host": "reviews-shadow" }, "percentage": { "value": 5 } }],
                "corsPolicy": {
                    "allowOrigin": ["https://legacy.example.com"],
                    "allowOrigins": [{ "exact": "https://example.com" }, { "regex": "https://.*\\.example\\.com" }],
                    "allowMethods": ["GET", "POST"],
                    "allowHeaders": ["x-foo"],
                    "exposeHeaders": ["*"],
                    "maxAge": "24h",
                    "allowCredentials": false,
                    "unmatchedPreflights": "IGNORE"
                },
                "headers": {
                    "request": {
                        "set": { "x-route": "jason %HOSTNAME%" },
                        "add": { "x-share": "100%%" },
                        "remove": ["x-legacy"]
                    },
                    "response": { "set": { "cache-control": "no-store" } }
                }
            },
            {
                "match": [{ "uri": { "exact": "/old" } }],
                "redirect": {
                    "uri": "/new",
                    "authority": "bookinfo.com",
                    "derivePort": "FROM_REQUEST_PORT",
                    "scheme": "https",
                    "redirectCode": 308
                }
            },
            {
                "match": [{ "uri": { "prefix": "/legacy/" } }],
                "redirect": { "prefixRewrite": "/", "port": 8443 }
            },
            {
                "match": [{ "uri": { "exact": "/teapot" } }],
                "directResponse": { "status": 503, "body": { "string": "unknown error" } },
                "headers": { "response": { "set": { "content-type": "text/plain" } } }
            },
            {
                "match": [{ "uri": { "exact": "/bytes" } }],
                "directResponse": { "status": 200, "body": { "bytes": "dW5rbm93biBlcnJvcg==" } }
            },
            {
                "match": [{ "uri": { "prefix": "/api" } }],
                "delegate": { "name": "reviews-api", "namespace": "prod" }
            },
            {
                "route": [{ "destination": { "host": "reviews" } }],
                "mirror": { "host": "reviews", "subset": "v3" },
                "mirrorPercentage": { "value": 50 },
                "mirrorPercent": 50,
                "headers": { "request": { "set": { "host": "reviews.internal" } } }
            }
        ],
        "tls": [{
            "match": [{
                "sniHosts": ["login.bookinfo.com", "*.api.bookinfo.com"],
                "port": 443,
                "destinationSubnets": ["10.0.0.0/8"],
                "sourceLabels": { "app": "gateway" },
                "gateways": ["istio-system/bookinfo-gateway"],
                "sourceNamespace": "istio-system"
            }],
            "route": [{ "destination": { "host": "login.prod.svc.cluster.local", "port": { "number": 443 } } }]
        }],
        "tcp": [{
            "match": [{
                "port": 27017,
                "destinationSubnets": ["10.1.0.0/16", "10.1.2.3", "fd00::/8"],
                "sourceSubnet": "10.2.0.0/16",
                "sourceLabels": { "app": "ratings" },
                "gateways": ["mesh"],
                "sourceNamespace": "prod"
            }],
            "route": [
                { "destination": { "host": "mongo.backup.svc.cluster.local", "port": { "number": 5555 } }, "weight": 100 },
                { "destination": { "host": "mongo.prod.svc.cluster.local" }, "weight": 0 }
            ]
        }]
    })
}

#[test]
fn a_rich_document_is_valid_and_round_trips() {
    let spec: VirtualServiceSpec = parse(rich());
    let errs = check(&spec);
    assert!(errs.is_empty(), "{errs:#?}");
    let text = serde_json::to_string(&spec).expect("serializes");
    let back: VirtualServiceSpec = serde_json::from_str(&text).expect("parses back");
    assert_eq!(back, spec);
    let first = &spec.http[0];
    assert_eq!(
        first.r#match[0].uri.as_ref().and_then(StringMatch::kind),
        Some(StringMatchKind::Prefix("/reviews"))
    );
    assert_eq!(
        first.retries.as_ref().and_then(|r| r.per_try_timeout),
        Some(Duration::from_secs(1))
    );
    assert_eq!(
        spec.http[1].redirect.as_ref().and_then(|r| r.derive_port),
        Some(RedirectPortSelection::FromRequestPort)
    );
    assert_eq!(spec.http[6].mirror_percent, Some(50));
}

#[test]
fn string_match_kind() {
    let exact = StringMatch {
        exact: Some("jason".into()),
        ..Default::default()
    };
    let regex = StringMatch {
        regex: Some("^v[0-9]$".into()),
        ..Default::default()
    };
    assert_eq!(exact.kind(), Some(StringMatchKind::Exact("jason")));
    assert_eq!(regex.kind(), Some(StringMatchKind::Regex("^v[0-9]$")));
    assert_eq!(StringMatch::default().kind(), None);
}

#[test]
fn the_crd_has_istios_names_and_columns() {
    let crd = VirtualService::crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("virtualservices.networking.istio.io")
    );
    assert_eq!(crd.spec.names.short_names, Some(vec!["vs".to_owned()]));
    let columns: Vec<String> = crd.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(columns, ["Gateways", "Hosts", "Age"]);
}

#[test]
fn unknown_fields_and_misspelled_enums_fail_to_parse() {
    let unknown = with_http(rule(json!({ "timeOut": "1s" })));
    let err = serde_json::from_value::<VirtualServiceSpec>(unknown).unwrap_err();
    assert!(err.to_string().contains("unknown field `timeOut`"), "{err}");
    let enum_value = with_http(json!({ "redirect": { "uri": "/", "derivePort": "FROM_REQUEST" } }));
    let err = serde_json::from_value::<VirtualServiceSpec>(enum_value).unwrap_err();
    assert!(err.to_string().contains("FROM_REQUEST"), "{err}");
    let cors = with_http(rule(
        json!({ "corsPolicy": { "unmatchedPreflights": "IGNORED" } }),
    ));
    assert!(serde_json::from_value::<VirtualServiceSpec>(cors).is_err());
}

#[test]
fn required_fields_fail_to_parse_when_missing() {
    let no_host = with_http(json!({ "route": [{ "destination": { "subset": "v1" } }] }));
    let err = serde_json::from_value::<VirtualServiceSpec>(no_host).unwrap_err();
    assert!(err.to_string().contains("missing field `host`"), "{err}");
    let no_match = json!({ "hosts": ["a.example.com"], "tls": [{ "route": [] }] });
    let err = serde_json::from_value::<VirtualServiceSpec>(no_match).unwrap_err();
    assert!(err.to_string().contains("missing field `match`"), "{err}");
    let no_status = with_http(json!({ "directResponse": {} }));
    assert!(serde_json::from_value::<VirtualServiceSpec>(no_status).is_err());
}

#[test]
fn deprecated_mirror_percent_also_reads_snake_case() {
    let spec: VirtualServiceSpec = parse(with_http(rule(
        json!({ "mirror": { "host": "shadow" }, "mirror_percent": 20 }),
    )));
    assert_eq!(spec.http[0].mirror_percent, Some(20));
}

// Hosts and gateways.

#[test]
fn star_host_is_refused_on_the_mesh() {
    let doc = json!({ "hosts": ["*"], "http": [rule(json!({}))] });
    rejects(
        doc,
        "spec.hosts[0]",
        "only allowed when the VirtualService is bound to gateways only",
    );
}

#[test]
fn star_host_is_allowed_on_gateways_only() {
    assert_valid::<VirtualServiceSpec>(
        json!({ "hosts": ["*"], "gateways": ["bookinfo-gateway"], "http": [rule(json!({}))] }),
    );
}

#[test]
fn host_must_be_a_valid_name() {
    let doc = json!({ "hosts": ["rev*iews"], "http": [rule(json!({}))] });
    rejects(doc, "spec.hosts[0]", "not a valid domain name");
}

#[test]
fn hosts_must_not_overlap() {
    let doc = json!({ "hosts": ["*.example.com", "api.example.com"], "http": [rule(json!({}))] });
    rejects(doc, "spec.hosts[1]", "overlaps host \"*.example.com\"");
}

#[test]
fn gateway_names_are_checked() {
    let doc = json!({ "hosts": ["reviews"], "gateways": ["istio-system/bookinfo_gateway"], "http": [rule(json!({}))] });
    rejects(doc, "spec.gateways[0]", "invalid name \"bookinfo_gateway\"");
}

#[test]
fn match_gateway_names_are_checked() {
    rejects(
        with_match(json!({ "gateways": ["-bad-"] })),
        "spec.http[0].match[0].gateways[0]",
        "must be mesh, a gateway name or namespace/name",
    );
}

#[test]
fn some_route_is_required() {
    rejects(
        json!({ "hosts": ["reviews"] }),
        "spec",
        "at least one http, tcp or tls route",
    );
}

#[test]
fn export_to_refuses_none() {
    let doc = json!({ "hosts": ["reviews"], "exportTo": ["~"], "http": [rule(json!({}))] });
    rejects(doc, "spec.exportTo[0]", "only allowed on ServiceEntry");
}

#[test]
fn export_to_star_stands_alone() {
    let doc = json!({ "hosts": ["reviews"], "exportTo": ["*", "prod"], "http": [rule(json!({}))] });
    rejects(doc, "spec.exportTo", "cannot be combined");
}

// Delegation.

#[test]
fn a_delegate_sets_no_gateways() {
    let doc = json!({ "gateways": ["bookinfo-gateway"], "http": [rule(json!({}))] });
    rejects(
        doc,
        "spec.gateways",
        "delegate VirtualService (one with no hosts) must not set gateways",
    );
}

#[test]
fn a_delegate_has_no_tcp_routes() {
    let doc = json!({ "tcp": [{ "route": [{ "destination": { "host": "mongo" } }] }] });
    rejects(doc, "spec.tcp", "may only have http routes");
}

#[test]
fn a_delegate_cannot_delegate_again() {
    let doc = json!({ "http": [{ "delegate": { "name": "other" } }] });
    rejects(doc, "spec.http[0].delegate", "cannot delegate again");
}

#[test]
fn a_root_route_with_delegate_has_no_route() {
    rejects(
        with_http(rule(json!({ "delegate": { "name": "reviews-api" } }))),
        "spec.http[0].route",
        "cannot be set together with delegate",
    );
}

#[test]
fn delegate_needs_a_name() {
    rejects(
        with_http(json!({ "delegate": { "namespace": "prod" } })),
        "spec.http[0].delegate.name",
        "delegate name is required",
    );
}

// What a route does.

#[test]
fn a_route_needs_an_action() {
    rejects(
        with_http(json!({ "match": [{ "uri": { "prefix": "/" } }] })),
        "spec.http[0]",
        "needs one of route, redirect, directResponse or delegate",
    );
}

#[test]
fn redirect_excludes_route() {
    rejects(
        with_http(rule(json!({ "redirect": { "uri": "/new" } }))),
        "spec.http[0].route",
        "cannot be set together with redirect",
    );
}

#[test]
fn direct_response_excludes_fault() {
    let doc = with_http(json!({
        "directResponse": { "status": 503 },
        "fault": { "abort": { "httpStatus": 500 } }
    }));
    rejects(
        doc,
        "spec.http[0].fault",
        "cannot be set together with directResponse",
    );
}

#[test]
fn mirror_and_mirrors_exclude_each_other() {
    let doc = with_http(rule(json!({
        "mirror": { "host": "shadow" },
        "mirrors": [{ "destination": { "host": "shadow2" } }]
    })));
    rejects(
        doc,
        "spec.http[0].mirrors",
        "mirror and mirrors cannot both be set",
    );
}

// Destinations and weights.

#[test]
fn destination_host_cannot_be_star() {
    rejects(
        with_http(json!({ "route": [{ "destination": { "host": "*" } }] })),
        "spec.http[0].route[0].destination.host",
        "cannot be \"*\"",
    );
}

#[test]
fn destination_subset_is_a_dns_label() {
    let doc = with_http(
        json!({ "route": [{ "destination": { "host": "reviews", "subset": "v1_beta" } }] }),
    );
    rejects(
        doc,
        "spec.http[0].route[0].destination.subset",
        "must be a DNS label",
    );
}

#[test]
fn destination_port_is_in_range() {
    let doc = with_http(
        json!({ "route": [{ "destination": { "host": "reviews", "port": { "number": 0 } } }] }),
    );
    rejects(
        doc,
        "spec.http[0].route[0].destination.port.number",
        "between 1 and 65535",
    );
}

#[test]
fn mirror_destination_is_checked() {
    rejects(
        with_http(rule(
            json!({ "mirror": { "host": "shadow", "subset": "-v1" } }),
        )),
        "spec.http[0].mirror.subset",
        "must be a DNS label",
    );
}

#[test]
fn several_destinations_all_need_a_weight() {
    let doc = with_http(json!({ "route": [
        { "destination": { "host": "reviews", "subset": "v1" }, "weight": 100 },
        { "destination": { "host": "reviews", "subset": "v2" } }
    ] }));
    rejects(
        doc,
        "spec.http[0].route[1].weight",
        "weight is required when a rule has more than one destination",
    );
}

#[test]
fn weights_add_up_to_100() {
    let doc = with_http(json!({ "route": [
        { "destination": { "host": "reviews", "subset": "v1" }, "weight": 80 },
        { "destination": { "host": "reviews", "subset": "v2" }, "weight": 10 }
    ] }));
    rejects(doc, "spec.http[0].route", "add up to 90");
}

#[test]
fn tcp_weights_add_up_to_100() {
    let doc = json!({ "hosts": ["mongo"], "tcp": [{ "route": [
        { "destination": { "host": "mongo", "subset": "a" }, "weight": 50 },
        { "destination": { "host": "mongo", "subset": "b" }, "weight": 60 }
    ] }] });
    rejects(doc, "spec.tcp[0].route", "add up to 110");
}

#[test]
fn a_weight_is_never_negative() {
    let doc =
        with_http(json!({ "route": [{ "destination": { "host": "reviews" }, "weight": -1 }] }));
    rejects(doc, "spec.http[0].route[0].weight", "must not be negative");
}

#[test]
fn a_lone_destination_may_omit_its_weight() {
    assert_valid::<VirtualServiceSpec>(with_http(
        json!({ "route": [{ "destination": { "host": "reviews", "subset": "v1" } }] }),
    ));
}

// String matches.

#[test]
fn string_match_sets_only_one_kind() {
    rejects(
        with_match(json!({ "uri": { "exact": "/a", "prefix": "/a" } })),
        "spec.http[0].match[0].uri",
        "only one of exact, prefix may be set",
    );
}

#[test]
fn an_empty_uri_match_is_refused() {
    rejects(
        with_match(json!({ "uri": {} })),
        "spec.http[0].match[0].uri",
        "set one of exact, prefix or regex",
    );
}

#[test]
fn an_empty_header_match_checks_presence() {
    assert_valid::<VirtualServiceSpec>(with_match(
        json!({ "headers": { "x-canary": {} }, "withoutHeaders": { "x-debug": {} } }),
    ));
}

#[test]
fn an_empty_method_prefix_is_refused() {
    rejects(
        with_match(json!({ "method": { "prefix": "" } })),
        "spec.http[0].match[0].method.prefix",
        "empty prefix is only allowed in a uri match",
    );
}

#[test]
fn uri_regex_is_re2() {
    rejects(
        with_match(json!({ "uri": { "regex": "^/api/(v1" } })),
        "spec.http[0].match[0].uri.regex",
        "not a valid RE2 regex",
    );
}

#[test]
fn header_regex_is_re2() {
    rejects(
        with_match(json!({ "headers": { "end-user": { "regex": "jas(on" } } })),
        "spec.http[0].match[0].headers.end-user.regex",
        "not a valid RE2 regex",
    );
}

#[test]
fn query_param_regex_is_re2() {
    rejects(
        with_match(json!({ "queryParams": { "v": { "regex": "[0-9" } } })),
        "spec.http[0].match[0].queryParams.v.regex",
        "not a valid RE2 regex",
    );
}

#[test]
fn authority_regex_is_not_empty() {
    rejects(
        with_match(json!({ "authority": { "regex": "" } })),
        "spec.http[0].match[0].authority.regex",
        "regex must not be empty",
    );
}

#[test]
fn scheme_regex_is_re2() {
    rejects(
        with_match(json!({ "scheme": { "regex": "https?(" } })),
        "spec.http[0].match[0].scheme.regex",
        "not a valid RE2 regex",
    );
}

#[test]
fn allow_origins_regex_is_re2() {
    let doc = with_http(rule(
        json!({ "corsPolicy": { "allowOrigins": [{ "regex": "https://(.*" }] } }),
    ));
    rejects(
        doc,
        "spec.http[0].corsPolicy.allowOrigins[0].regex",
        "not a valid RE2 regex",
    );
}

#[test]
fn regex_rewrite_match_is_re2() {
    let doc = with_http(rule(
        json!({ "rewrite": { "uriRegexRewrite": { "match": "^/(a", "rewrite": "/b" } } }),
    ));
    rejects(
        doc,
        "spec.http[0].rewrite.uriRegexRewrite.match",
        "not a valid RE2 regex",
    );
}

#[test]
fn match_header_names_are_valid() {
    rejects(
        with_match(json!({ "headers": { "end user": { "exact": "jason" } } })),
        r#"spec.http[0].match[0].headers["end user"]"#,
        "not a valid HTTP header name",
    );
}

#[test]
fn jwt_claim_routing_needs_gateways() {
    let claim = json!({ "headers": { "@request.auth.claims.group": { "exact": "admin" } } });
    rejects(
        with_match(claim.clone()),
        r#"spec.http[0].match[0].headers["@request.auth.claims.group"]"#,
        "only works on gateways",
    );
    assert_valid::<VirtualServiceSpec>(
        json!({ "hosts": ["bookinfo.com"], "gateways": ["bookinfo-gateway"], "http": [rule(json!({ "match": [claim] }))] }),
    );
}

#[test]
fn match_port_is_in_range() {
    rejects(
        with_match(json!({ "port": 70000 })),
        "spec.http[0].match[0].port",
        "between 1 and 65535",
    );
}

#[test]
fn source_namespace_is_a_dns_label() {
    rejects(
        with_match(json!({ "sourceNamespace": "prod_ns" })),
        "spec.http[0].match[0].sourceNamespace",
        "must be a namespace name",
    );
}

// Timeouts, retries, faults, mirroring.

#[test]
fn timeout_is_at_least_1ms() {
    rejects(
        with_http(rule(json!({ "timeout": "0s" }))),
        "spec.http[0].timeout",
        "at least 1ms",
    );
}

#[test]
fn per_try_timeout_has_ms_precision() {
    let doc = with_http(rule(
        json!({ "retries": { "attempts": 2, "perTryTimeout": "1500us" } }),
    ));
    rejects(
        doc,
        "spec.http[0].retries.perTryTimeout",
        "millisecond precision",
    );
}

#[test]
fn retry_attempts_are_not_negative() {
    rejects(
        with_http(rule(json!({ "retries": { "attempts": -1 } }))),
        "spec.http[0].retries.attempts",
        "must not be negative",
    );
}

#[test]
fn disabled_retries_have_no_policy() {
    let doc = with_http(rule(json!({ "retries": { "retryOn": "5xx" } })));
    rejects(doc, "spec.http[0].retries.attempts", "retries are disabled");
}

#[test]
fn retry_on_uses_envoy_conditions() {
    let doc = with_http(rule(
        json!({ "retries": { "attempts": 2, "retryOn": "5xx,gateway-eror,503" } }),
    ));
    rejects(
        doc,
        "spec.http[0].retries.retryOn",
        "\"gateway-eror\" is not a retry condition",
    );
}

#[test]
fn fault_needs_delay_or_abort() {
    rejects(
        with_http(rule(json!({ "fault": {} }))),
        "spec.http[0].fault",
        "needs a delay, an abort or both",
    );
}

#[test]
fn fault_delay_needs_fixed_delay() {
    let doc = with_http(rule(
        json!({ "fault": { "delay": { "percentage": { "value": 100 } } } }),
    ));
    rejects(doc, "spec.http[0].fault.delay", "needs fixedDelay");
}

#[test]
fn fault_delay_percentage_is_at_most_100() {
    let doc = with_http(rule(
        json!({ "fault": { "delay": { "fixedDelay": "7s", "percentage": { "value": 150 } } } }),
    ));
    rejects(
        doc,
        "spec.http[0].fault.delay.percentage.value",
        "between 0 and 100",
    );
}

#[test]
fn fault_abort_percentage_is_not_negative() {
    let doc = with_http(rule(
        json!({ "fault": { "abort": { "httpStatus": 500, "percentage": { "value": -5 } } } }),
    ));
    rejects(
        doc,
        "spec.http[0].fault.abort.percentage.value",
        "between 0 and 100",
    );
}

#[test]
fn fault_abort_http_status_is_200_to_599() {
    let doc = with_http(rule(json!({ "fault": { "abort": { "httpStatus": 600 } } })));
    rejects(
        doc,
        "spec.http[0].fault.abort.httpStatus",
        "between 200 and 599",
    );
}

#[test]
fn fault_abort_grpc_status_is_a_status_name() {
    let doc = with_http(rule(
        json!({ "fault": { "abort": { "grpcStatus": "Unavailable" } } }),
    ));
    rejects(
        doc,
        "spec.http[0].fault.abort.grpcStatus",
        "not a gRPC status name",
    );
    assert_valid::<VirtualServiceSpec>(with_http(rule(
        json!({ "fault": { "abort": { "grpcStatus": "UNAVAILABLE" } } }),
    )));
}

#[test]
fn fault_abort_needs_a_status() {
    let doc = with_http(rule(
        json!({ "fault": { "abort": { "percentage": { "value": 50 } } } }),
    ));
    rejects(
        doc,
        "spec.http[0].fault.abort",
        "needs httpStatus or grpcStatus",
    );
}

#[test]
fn mirror_percentage_is_at_most_100() {
    let doc = with_http(rule(
        json!({ "mirror": { "host": "shadow" }, "mirrorPercentage": { "value": 100.5 } }),
    ));
    rejects(
        doc,
        "spec.http[0].mirrorPercentage.value",
        "between 0 and 100",
    );
}

#[test]
fn mirrors_percentage_is_at_most_100() {
    let doc = with_http(rule(
        json!({ "mirrors": [{ "destination": { "host": "shadow" }, "percentage": { "value": 101 } }] }),
    ));
    rejects(
        doc,
        "spec.http[0].mirrors[0].percentage.value",
        "between 0 and 100",
    );
}

// Redirects, direct responses, rewrites, CORS.

#[test]
fn redirect_code_is_one_envoy_sends() {
    rejects(
        with_http(json!({ "redirect": { "uri": "/new", "redirectCode": 300 } })),
        "spec.http[0].redirect.redirectCode",
        "use 301, 302, 303, 307 or 308",
    );
}

#[test]
fn redirect_changes_something() {
    rejects(
        with_http(json!({ "redirect": { "redirectCode": 302 } })),
        "spec.http[0].redirect",
        "must change at least one of",
    );
}

#[test]
fn redirect_scheme_is_http_or_https() {
    rejects(
        with_http(json!({ "redirect": { "scheme": "ftp" } })),
        "spec.http[0].redirect.scheme",
        "must be http or https",
    );
}

#[test]
fn redirect_prefix_rewrite_needs_prefix_matches() {
    let doc = with_http(json!({
        "match": [{ "uri": { "prefix": "/a/" } }, { "uri": { "exact": "/b" } }],
        "redirect": { "prefixRewrite": "/" }
    }));
    rejects(
        doc,
        "spec.http[0].redirect.prefixRewrite",
        "match[1].uri is not",
    );
}

#[test]
fn redirect_port_and_derive_port_exclude_each_other() {
    let doc =
        with_http(json!({ "redirect": { "port": 8443, "derivePort": "FROM_PROTOCOL_DEFAULT" } }));
    rejects(
        doc,
        "spec.http[0].redirect",
        "only one of port, derivePort may be set",
    );
}

#[test]
fn direct_response_status_is_200_to_599() {
    rejects(
        with_http(json!({ "directResponse": { "status": 199 } })),
        "spec.http[0].directResponse.status",
        "between 200 and 599",
    );
}

#[test]
fn direct_response_bytes_are_base64() {
    let doc = with_http(
        json!({ "directResponse": { "status": 200, "body": { "bytes": "not base64!" } } }),
    );
    rejects(doc, "spec.http[0].directResponse.body.bytes", "base64");
}

#[test]
fn rewrite_uri_excludes_regex_rewrite() {
    let doc = with_http(rule(
        json!({ "rewrite": { "uri": "/v1", "uriRegexRewrite": { "match": "^/a", "rewrite": "/b" } } }),
    ));
    rejects(
        doc,
        "spec.http[0].rewrite.uriRegexRewrite",
        "cannot both be set",
    );
}

#[test]
fn cors_max_age_is_whole_seconds() {
    rejects(
        with_http(rule(json!({ "corsPolicy": { "maxAge": "1.5s" } }))),
        "spec.http[0].corsPolicy.maxAge",
        "whole number of seconds",
    );
}

#[test]
fn cors_methods_are_http_methods() {
    rejects(
        with_http(rule(
            json!({ "corsPolicy": { "allowMethods": ["GET", "FETCH"] } }),
        )),
        "spec.http[0].corsPolicy.allowMethods[1]",
        "\"FETCH\" is not an HTTP method",
    );
}

// Header operations.

#[test]
fn request_headers_cannot_set_pseudo_headers() {
    let doc = with_http(rule(
        json!({ "headers": { "request": { "set": { ":path": "/admin" } } } }),
    ));
    rejects(
        doc,
        r#"spec.http[0].headers.request.set[":path"]"#,
        "only :authority among the pseudo-headers",
    );
}

#[test]
fn response_headers_cannot_touch_host() {
    let doc = with_http(json!({ "route": [{
        "destination": { "host": "reviews" },
        "headers": { "response": { "remove": ["Host"] } }
    }] }));
    rejects(
        doc,
        "spec.http[0].route[0].headers.response.remove[0]",
        "cannot be removed from requests or changed on responses",
    );
}

#[test]
fn header_values_close_their_variables() {
    let doc = with_http(rule(
        json!({ "headers": { "request": { "add": { "x-share": "50%" } } } }),
    ));
    rejects(
        doc,
        "spec.http[0].headers.request.add.x-share",
        "unterminated %VARIABLE%",
    );
}

#[test]
fn the_authority_is_rewritten_once() {
    let doc = with_http(rule(json!({
        "rewrite": { "authority": "a.internal" },
        "headers": { "request": { "set": { "host": "b.internal" } } }
    })));
    rejects(
        doc,
        "spec.http[0].headers.request.set.host",
        "already rewritten by rewrite.authority",
    );
}

// TLS and TCP routes.

fn tls_doc(m: Value) -> Value {
    json!({
        "hosts": ["*.bookinfo.com"],
        "gateways": ["bookinfo-gateway"],
        "tls": [{ "match": [m], "route": [{ "destination": { "host": "login.prod.svc.cluster.local" } }] }]
    })
}

#[test]
fn tls_match_needs_sni_hosts() {
    rejects(
        tls_doc(json!({ "sniHosts": [] })),
        "spec.tls[0].match[0].sniHosts",
        "at least one SNI host",
    );
}

#[test]
fn tls_route_needs_a_match() {
    let doc = json!({ "hosts": ["a.example.com"], "tls": [{ "match": [], "route": [{ "destination": { "host": "a" } }] }] });
    rejects(doc, "spec.tls[0].match", "at least one match with sniHosts");
}

#[test]
fn sni_hosts_fall_within_the_hosts() {
    rejects(
        tls_doc(json!({ "sniHosts": ["login.example.com"] })),
        "spec.tls[0].match[0].sniHosts[0]",
        "does not fall within any of the VirtualService hosts",
    );
}

#[test]
fn tls_routes_need_a_destination() {
    let doc = json!({ "hosts": ["a.example.com"], "tls": [{ "match": [{ "sniHosts": ["a.example.com"] }] }] });
    rejects(
        doc,
        "spec.tls[0].route",
        "a TLS route needs at least one destination",
    );
}

#[test]
fn tcp_routes_need_a_destination() {
    rejects(
        json!({ "hosts": ["mongo"], "tcp": [{ "match": [{ "port": 27017 }] }] }),
        "spec.tcp[0].route",
        "a TCP route needs at least one destination",
    );
}

#[test]
fn destination_subnets_are_cidrs() {
    let doc = json!({ "hosts": ["mongo"], "tcp": [{
        "match": [{ "destinationSubnets": ["10.0.0.0/33"] }],
        "route": [{ "destination": { "host": "mongo" } }]
    }] });
    rejects(
        doc,
        "spec.tcp[0].match[0].destinationSubnets[0]",
        "is not a valid CIDR block (prefix length 0 to 32)",
    );
}

#[test]
fn auto_passthrough_sni_names_work_on_gateways() {
    assert_valid::<VirtualServiceSpec>(json!({
        "hosts": ["outbound_.9080_._.reviews.prod.svc.cluster.local"],
        "gateways": ["istio-system/eastwest"],
        "tls": [{
            "match": [{ "sniHosts": ["outbound_.9080_._.reviews.prod.svc.cluster.local"] }],
            "route": [{ "destination": { "host": "reviews.prod.svc.cluster.local" } }]
        }]
    }));
}
