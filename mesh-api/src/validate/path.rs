//! Field paths such as `spec.http[0].route[1].weight`, shared by serde errors,
//! semantic validation and the YAML line index so that all three agree.

use std::fmt;

/// One step into a document.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// Where a value sits inside a resource.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Path(Vec<Segment>);

impl Path {
    /// The empty path: the document itself.
    pub fn root() -> Self {
        Path(Vec::new())
    }

    /// The path of the `spec` field, where semantic validation starts.
    pub fn spec() -> Self {
        Path::root().field("spec")
    }

    pub fn field(&self, name: &str) -> Path {
        self.push(Segment::Key(name.to_owned()))
    }

    pub fn index(&self, index: usize) -> Path {
        self.push(Segment::Index(index))
    }

    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    /// The path one step up, or `None` at the root.
    pub fn parent(&self) -> Option<Path> {
        let (_, head) = self.0.split_last()?;
        Some(Path(head.to_vec()))
    }

    fn push(&self, segment: Segment) -> Path {
        let mut segments = self.0.clone();
        segments.push(segment);
        Path(segments)
    }
}

impl From<Vec<Segment>> for Path {
    fn from(segments: Vec<Segment>) -> Self {
        Path(segments)
    }
}

impl fmt::Display for Path {
    /// Plain keys join with dots; keys with dots, slashes or spaces (label
    /// names such as `app.kubernetes.io/name`) are quoted in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Index(index) => write!(f, "[{index}]")?,
                Segment::Key(key) if is_plain(key) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(key)?;
                }
                Segment::Key(key) => write!(f, "[{key:?}]")?,
            }
        }
        Ok(())
    }
}

fn is_plain(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_like_a_field_path() {
        let path = Path::spec()
            .field("http")
            .index(0)
            .field("route")
            .index(1)
            .field("weight");
        assert_eq!(path.to_string(), "spec.http[0].route[1].weight");
        let label = Path::spec()
            .field("selector")
            .field("matchLabels")
            .field("app.kubernetes.io/name");
        assert_eq!(
            label.to_string(),
            r#"spec.selector.matchLabels["app.kubernetes.io/name"]"#
        );
        assert_eq!(
            Path::spec().field("headers").field("end-user").to_string(),
            "spec.headers.end-user"
        );
    }
}
