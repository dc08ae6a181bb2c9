use http::Request;

use super::*;
use crate::config::CustomTag;
use crate::telemetry::export;

fn tracing(configure: impl FnOnce(&mut Tracing)) -> HttpTracing {
    let mut config = Tracing {
        collector_cluster: "collector".into(),
        service_name: "reviews.default".into(),
        client_sampling: 100.0,
        random_sampling: 100.0,
        overall_sampling: 100.0,
        custom_tags: Vec::new(),
        spawn_upstream_span: false,
        max_path_tag_length: 256,
    };
    configure(&mut config);
    let (queue, _) = export::channel(16);
    let shared = Arc::new(Telemetry::new(&NodeInfo::default(), queue));
    HttpTracing::new(
        &shared,
        &Arc::new(config),
        TrafficDirection::Outbound,
        &Upstreams::new(),
    )
}

fn request(headers: &[(&str, &str)]) -> Parts {
    let mut builder = Request::get("http://reviews:9080/reviews/0");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap().into_parts().0
}

fn header(parts: &Parts, name: &str) -> String {
    parts.headers[name].to_str().unwrap().to_owned()
}

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn the_parents_decision_is_kept() {
    let never = tracing(|c| c.random_sampling = 0.0);
    let mut parts = request(&[("traceparent", PARENT)]);
    assert!(never.start(&mut parts).request.is_some());

    let always = tracing(|_| {});
    let mut parts = request(&[("x-b3-sampled", "0")]);
    assert!(always.start(&mut parts).request.is_none());
    assert_eq!(header(&parts, "x-b3-sampled"), "0");
    assert!(header(&parts, "traceparent").ends_with("-00"));
}

#[test]
fn random_sampling_follows_the_request_id() {
    let none = tracing(|c| c.random_sampling = 0.0);
    let all = tracing(|_| {});
    let half = tracing(|c| c.random_sampling = 50.0);
    let mut sampled = 0;
    for i in 0..1000 {
        let id = format!("request-{i}");
        let decide = |t: &HttpTracing| {
            t.start(&mut request(&[("x-request-id", &id)]))
                .request
                .is_some()
        };
        assert!(!decide(&none));
        assert!(decide(&all));
        let first = decide(&half);
        assert_eq!(first, decide(&half), "the same id decides the same way");
        sampled += usize::from(first);
    }
    assert!((350..650).contains(&sampled), "{sampled} of 1000 at 50%");
}

#[test]
fn client_trace_ids_use_client_sampling_and_overall_caps_all() {
    let client = tracing(|c| c.random_sampling = 0.0);
    let mut parts = request(&[("x-client-trace-id", "abc"), ("x-request-id", "1")]);
    assert!(client.start(&mut parts).request.is_some());

    let capped = tracing(|c| c.overall_sampling = 0.0);
    let mut parts = request(&[("x-client-trace-id", "abc"), ("x-request-id", "1")]);
    assert!(capped.start(&mut parts).request.is_none());
}

#[test]
fn the_upstream_continues_this_span() {
    let tracer = tracing(|_| {});
    let mut parts = request(&[("traceparent", PARENT)]);
    let span = tracer.start(&mut parts);
    assert_eq!(span.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
    assert_eq!(span.parent_span_id, Some(0x00f067aa0ba902b7));
    let sent = propagation::extract(&parts.headers);
    assert_eq!(sent.parent.unwrap().span_id, span.span_id);
    assert_eq!(sent.parent.unwrap().trace_id, span.trace_id);
    assert_eq!(header(&parts, "x-b3-parentspanid"), "00f067aa0ba902b7");
}

#[test]
fn a_spawned_upstream_span_sits_between() {
    let tracer = tracing(|c| c.spawn_upstream_span = true);
    let mut parts = request(&[]);
    let span = tracer.start(&mut parts);
    let child = span.upstream_span_id.unwrap();
    assert_eq!(
        propagation::extract(&parts.headers).parent.unwrap().span_id,
        child
    );
    assert_eq!(
        header(&parts, "x-b3-parentspanid"),
        format!("{:016x}", span.span_id)
    );
}

#[test]
fn tags_come_from_the_request_and_the_config() {
    let tracer = tracing(|c| {
        c.max_path_tag_length = 20;
        c.custom_tags = vec![
            CustomTag {
                tag: "istio.namespace".into(),
                value: TagValue::Literal("default".into()),
            },
            CustomTag {
                tag: "user".into(),
                value: TagValue::RequestHeader {
                    name: HeaderName::from_static("end-user"),
                    default: String::new(),
                },
            },
            CustomTag {
                tag: "missing".into(),
                value: TagValue::Missing {
                    default: String::new(),
                },
            },
        ];
    });
    let mut parts = request(&[("end-user", "jason"), ("x-request-id", "id-1")]);
    let facts = tracer.start(&mut parts).request.unwrap();
    let tag = |key: &str| {
        facts.tags.iter().find(|kv| kv.key == key).map(|kv| {
            match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s)) => {
                    s.clone()
                }
                other => panic!("{key}: {other:?}"),
            }
        })
    };
    assert_eq!(tag("http.url").as_deref(), Some("http://reviews:9080/"));
    assert_eq!(tag("http.method").as_deref(), Some("GET"));
    assert_eq!(tag("guid:x-request-id").as_deref(), Some("id-1"));
    assert_eq!(tag("component").as_deref(), Some("proxy"));
    assert_eq!(tag("istio.namespace").as_deref(), Some("default"));
    assert_eq!(tag("user").as_deref(), Some("jason"));
    assert_eq!(tag("missing"), None);
}

#[test]
fn truncation_respects_characters() {
    let mut text = "aé".to_owned();
    truncate(&mut text, 2);
    assert_eq!(text, "a");
}
