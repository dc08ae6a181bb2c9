use super::*;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(name, value)| {
            (
                HeaderName::try_from(*name).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            )
        })
        .collect()
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN: &str = "00f067aa0ba902b7";

fn parent() -> Option<Parent> {
    Some(Parent {
        trace_id: u128::from_str_radix(TRACE, 16).unwrap(),
        span_id: u64::from_str_radix(SPAN, 16).unwrap(),
    })
}

#[test]
fn reads_traceparent_with_its_sampled_flag() {
    let sampled = extract(&headers(&[(
        "traceparent",
        &format!("00-{TRACE}-{SPAN}-01"),
    )]));
    assert_eq!(
        sampled,
        Incoming {
            parent: parent(),
            sampled: Some(true)
        }
    );
    let unsampled = extract(&headers(&[(
        "traceparent",
        &format!("00-{TRACE}-{SPAN}-00"),
    )]));
    assert_eq!(unsampled.sampled, Some(false));
}

#[test]
fn refuses_malformed_traceparents() {
    let zero_trace = format!("00-{}-{SPAN}-01", "0".repeat(32));
    let upper = format!("00-{}-{SPAN}-01", TRACE.to_uppercase());
    let bad_version = format!("ff-{TRACE}-{SPAN}-01");
    let extra = format!("00-{TRACE}-{SPAN}-01-xx");
    let short = format!("00-{TRACE}-{}-01", &SPAN[1..]);
    for text in [&zero_trace, &upper, &bad_version, &extra, &short] {
        assert_eq!(
            extract(&headers(&[("traceparent", text)])),
            Incoming::default(),
            "{text}"
        );
    }
    // A later version may add fields.
    let later = format!("01-{TRACE}-{SPAN}-01-more");
    assert_eq!(
        extract(&headers(&[("traceparent", &later)])).parent,
        parent()
    );
}

#[test]
fn falls_back_to_b3_headers() {
    let multi = extract(&headers(&[
        ("x-b3-traceid", TRACE),
        ("x-b3-spanid", SPAN),
        ("x-b3-sampled", "1"),
    ]));
    assert_eq!(
        multi,
        Incoming {
            parent: parent(),
            sampled: Some(true)
        }
    );
    let single = extract(&headers(&[(
        "b3",
        &format!("{TRACE}-{SPAN}-0-05e3ac9a4f6e3b90"),
    )]));
    assert_eq!(
        single,
        Incoming {
            parent: parent(),
            sampled: Some(false)
        }
    );
}

#[test]
fn b3_may_decide_without_a_parent() {
    let refused = extract(&headers(&[("x-b3-sampled", "0")]));
    assert_eq!(
        refused,
        Incoming {
            parent: None,
            sampled: Some(false)
        }
    );
    assert_eq!(extract(&headers(&[("b3", "0")])).sampled, Some(false));
    assert_eq!(extract(&headers(&[("b3", "d")])).sampled, Some(true));
    // Debug forces sampling.
    let debug = extract(&headers(&[("x-b3-flags", "1"), ("x-b3-sampled", "0")]));
    assert_eq!(debug.sampled, Some(true));
}

#[test]
fn a_64_bit_b3_trace_id_is_widened() {
    let short = extract(&headers(&[
        ("x-b3-traceid", "a3ce929d0e0e4736"),
        ("x-b3-spanid", SPAN),
    ]));
    assert_eq!(short.parent.unwrap().trace_id, 0xa3ce929d0e0e4736);
    assert_eq!(short.sampled, None);
}

#[test]
fn traceparent_wins_over_b3() {
    let both = extract(&headers(&[
        ("traceparent", &format!("00-{TRACE}-{SPAN}-01")),
        ("x-b3-traceid", "1111111111111111"),
        ("x-b3-spanid", "2222222222222222"),
    ]));
    assert_eq!(both.parent, parent());
}

#[test]
fn writes_both_formats() {
    let mut map = headers(&[
        ("tracestate", "vendor=1"),
        ("x-b3-parentspanid", "1111111111111111"),
    ]);
    let span = Outgoing {
        trace_id: 0xabc,
        span_id: 0x12,
        parent_span_id: None,
        sampled: true,
    };
    inject(&mut map, &span);
    let get = |name: &str| map.get(name).map(|v| v.to_str().unwrap().to_owned());
    let trace = format!("{:032x}", 0xabc);
    assert_eq!(
        get("traceparent").unwrap(),
        format!("00-{trace}-0000000000000012-01")
    );
    assert_eq!(get("tracestate").as_deref(), Some("vendor=1"));
    assert_eq!(get("x-b3-traceid"), Some(trace));
    assert_eq!(get("x-b3-spanid").as_deref(), Some("0000000000000012"));
    assert_eq!(get("x-b3-parentspanid"), None);
    assert_eq!(get("x-b3-sampled").as_deref(), Some("1"));
    assert_eq!(get("b3"), None);
}

#[test]
fn what_is_written_reads_back_the_same() {
    let span = Outgoing {
        trace_id: u128::from_str_radix(TRACE, 16).unwrap(),
        span_id: 7,
        parent_span_id: Some(3),
        sampled: false,
    };
    let mut map = headers(&[("b3", "1")]);
    inject(&mut map, &span);
    let expected = Incoming {
        parent: Some(Parent {
            trace_id: span.trace_id,
            span_id: 7,
        }),
        sampled: Some(false),
    };
    assert_eq!(extract(&map), expected);
    map.remove("traceparent");
    assert_eq!(extract(&map), expected);
    map.remove("x-b3-traceid");
    map.remove("x-b3-sampled");
    assert_eq!(extract(&map), expected, "from b3: {:?}", map.get("b3"));
    assert_eq!(map.get("x-b3-parentspanid").unwrap(), "0000000000000003");
}
