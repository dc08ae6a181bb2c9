//! A parser for the Prometheus text format (version 0.0.4), enough to read
//! what proxies export: samples with labels and float values. `# HELP` and
//! `# TYPE` lines are not needed to compute rates and are passed over, as
//! are timestamps. A line that does not parse fails the whole scrape, as it
//! does in Prometheus: half a scrape would show as a drop in traffic.

/// Label names and values, in the order written.
pub type Labels = Vec<(String, String)>;

/// One sample: a series and its value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Labels,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    pub line: usize,
    pub reason: String,
}

/// Every sample of a scrape.
pub fn parse(text: &str) -> Result<Vec<Sample>, ParseError> {
    text.lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        .map(|(number, line)| {
            sample(line).map_err(|reason| ParseError {
                line: number,
                reason,
            })
        })
        .collect()
}

fn sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("a sample needs a value")?;
    let name = &line[..name_end];
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inside) = rest.strip_prefix('{') {
        let (parsed, after) = label_set(inside)?;
        labels = parsed;
        rest = after;
    }
    let value = rest
        .split_whitespace()
        .next()
        .ok_or_else(|| format!("{name} has no value"))?;
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value: number(value)?,
    })
}

/// The labels up to the closing brace, and what follows it.
fn label_set(mut text: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    loop {
        text = text.trim_start();
        if let Some(after) = text.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (name, after) = text
            .split_once('=')
            .ok_or("a label needs `=` and a quoted value")?;
        let (value, after) = quoted(after.trim_start())?;
        labels.push((name.trim().to_owned(), value));
        text = after.trim_start();
        text = text.strip_prefix(',').unwrap_or(text);
    }
}

/// A quoted label value with `\\`, `\"` and `\n` escapes, and what follows.
fn quoted(text: &str) -> Result<(String, &str), String> {
    let body = text
        .strip_prefix('"')
        .ok_or("a label value must be quoted")?;
    let mut value = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &body[i + 1..])),
            '\\' => match chars.next() {
                Some((_, 'n')) => value.push('\n'),
                Some((_, escaped)) => value.push(escaped),
                None => break,
            },
            c => value.push(c),
        }
    }
    Err("a label value is not closed".into())
}

pub fn number(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => text
            .parse()
            .map_err(|_| format!("{text:?} is not a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_samples_labels_and_special_values() {
        let text = r#"
# HELP istio_requests_total Total requests.
# TYPE istio_requests_total counter
istio_requests_total{reporter="source",source_workload="productpage-v1",response_code="200"} 42
istio_request_duration_milliseconds_bucket{reporter="source",le="+Inf"} 7 1712345678000
envoy_cluster_upstream_cx_total 3
odd{path="a \"quoted\" \\ value\nnext",empty=""} 1.5e3
"#;
        let samples = parse(text).unwrap();
        assert_eq!(samples.len(), 4);
        assert_eq!(samples[0].name, "istio_requests_total");
        assert_eq!(samples[0].label("source_workload"), Some("productpage-v1"));
        assert_eq!(samples[0].label("response_code"), Some("200"));
        assert_eq!(samples[0].value, 42.0);
        assert_eq!(samples[1].label("le"), Some("+Inf"));
        assert_eq!(samples[1].value, 7.0, "the timestamp is not the value");
        assert!(samples[2].labels.is_empty());
        assert_eq!(samples[2].value, 3.0);
        assert_eq!(
            samples[3].label("path"),
            Some("a \"quoted\" \\ value\nnext")
        );
        assert_eq!(samples[3].label("empty"), Some(""));
        assert_eq!(samples[3].value, 1500.0);
        assert_eq!(parse("up +Inf\n").unwrap()[0].value, f64::INFINITY);
    }

    #[test]
    fn the_real_proxy_output_parses() {
        // As mesh-proxy prints it: label values with dots, slashes, colons.
        let line = concat!(
            "istio_requests_total{reporter=\"destination\",",
            "source_principal=\"spiffe://cluster.local/ns/default/sa/bookinfo-productpage\",",
            "destination_service=\"reviews.default.svc.cluster.local\",",
            "connection_security_policy=\"mutual_tls\",response_flags=\"-\"} 12"
        );
        let sample = &parse(line).unwrap()[0];
        assert_eq!(
            sample.label("source_principal"),
            Some("spiffe://cluster.local/ns/default/sa/bookinfo-productpage")
        );
        assert_eq!(
            sample.label("connection_security_policy"),
            Some("mutual_tls")
        );
        assert_eq!(sample.value, 12.0);
    }

    #[test]
    fn broken_lines_fail_the_scrape_with_their_number() {
        for (text, reason) in [
            ("ok 1\nbroken{a=\"1 2\n", "not closed"),
            ("ok 1\nbroken{a=\"1\" 2\n", "needs `=`"),
            ("ok 1\n\nno_value\n", "needs a value"),
            ("x 1\nx{a=1} 2", "must be quoted"),
            ("x 1\nx{} abc", "not a number"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.reason.contains(reason), "{text:?}: {err}");
            assert!(err.line >= 2, "{text:?}: {err}");
        }
        assert_eq!(parse("x{} abc").unwrap_err().line, 1);
    }
}
