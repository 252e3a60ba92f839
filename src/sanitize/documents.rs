//! Reading and writing whole inputs for `crossguard sanitize`: what `kubectl get -o json`
//! or `-o yaml` prints, JSON streams, and multi-document YAML.

use std::io::Write;

use serde::Deserialize;
use serde_json::Value;

use super::{Redactions, Sanitizer};

/// Reading or writing documents failed. Messages carry positions, never input content.
/// Each message names the step; the parser's or writer's own error (line and column) is
/// the `source()`, so the CLI's error chain prints it once, after the step.
#[derive(Debug, thiserror::Error)]
pub enum SanitizeError {
    /// The input looked like JSON but is not valid JSON (nor valid YAML).
    #[error("parsing JSON document {index} failed")]
    ParseJson {
        /// 0-based position of the document in the input.
        index: usize,
        /// The parser error (line and column).
        #[source]
        source: serde_json::Error,
    },
    /// The input is not valid YAML.
    #[error("parsing YAML document {index} failed")]
    ParseYaml {
        /// 0-based position of the document in the input.
        index: usize,
        /// The parser error (line and column).
        #[source]
        source: serde_yaml::Error,
    },
    /// A document is a scalar or an array of scalars: refused rather than passed through.
    #[error("document {index} is {found}, not a Kubernetes object")]
    NotAnObject {
        /// 0-based position of the document in the input.
        index: usize,
        /// What was found instead.
        found: &'static str,
    },
    /// Serializing the output failed.
    #[error("writing {format} output failed")]
    Serialize {
        /// `json` or `yaml`.
        format: &'static str,
        /// The serializer's error (`serde_json::Error` or `serde_yaml::Error`).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Writing the output failed.
    #[error("writing output failed")]
    Write(#[from] std::io::Error),
}

impl SanitizeError {
    /// Label for metrics and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            SanitizeError::ParseJson { .. }
            | SanitizeError::ParseYaml { .. }
            | SanitizeError::NotAnObject { .. } => "InvalidInput",
            SanitizeError::Serialize { .. } | SanitizeError::Write(_) => "OutputFailed",
        }
    }
}

/// Parse `input` (a JSON object or List, a JSON stream, a JSON array, or multi-document
/// YAML) and sanitize every document.
pub fn sanitize_documents(
    input: &[u8],
    sanitizer: &Sanitizer,
) -> Result<Vec<Value>, SanitizeError> {
    sanitize_documents_counted(input, sanitizer).map(|(docs, _)| docs)
}

/// [`sanitize_documents`], also returning what was redacted across all documents.
pub fn sanitize_documents_counted(
    input: &[u8],
    sanitizer: &Sanitizer,
) -> Result<(Vec<Value>, Redactions), SanitizeError> {
    let mut docs = parse_documents(input)?;
    let mut total = Redactions::default();
    for doc in &mut docs {
        total += sanitizer.sanitize(doc);
    }
    Ok((docs, total))
}

/// Write documents as pretty JSON (one per document, newline-separated: a JSON stream
/// that [`sanitize_documents`] reads back) or as YAML documents separated by `---`.
pub fn write_documents(
    docs: &[Value],
    json: bool,
    out: &mut impl Write,
) -> Result<(), SanitizeError> {
    for (i, doc) in docs.iter().enumerate() {
        if json {
            serde_json::to_writer_pretty(&mut *out, doc).map_err(|e| SanitizeError::Serialize {
                format: "json",
                source: e.into(),
            })?;
            out.write_all(b"\n")?;
        } else {
            if i > 0 {
                out.write_all(b"---\n")?;
            }
            let text = serde_yaml::to_string(doc).map_err(|e| SanitizeError::Serialize {
                format: "yaml",
                source: e.into(),
            })?;
            out.write_all(text.as_bytes())?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Split the input into object documents.
fn parse_documents(input: &[u8]) -> Result<Vec<Value>, SanitizeError> {
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    let first = input.iter().find(|b| !b.is_ascii_whitespace());
    let raw = match first {
        None => return Ok(Vec::new()),
        Some(b'{' | b'[') => match parse_json_stream(input) {
            Ok(docs) => docs,
            // `{a: 1}` is YAML flow syntax, not JSON; report the JSON error if it is neither.
            Err(json_err) => parse_yaml(input).map_err(|_| json_err)?,
        },
        Some(_) => parse_yaml(input)?,
    };
    let mut docs = Vec::with_capacity(raw.len());
    for doc in raw {
        match doc {
            // A top-level array is a list of documents.
            Value::Array(items) => docs.extend(items),
            other => docs.push(other),
        }
    }
    for (index, doc) in docs.iter().enumerate() {
        let found = match doc {
            Value::Object(_) => continue,
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
        };
        return Err(SanitizeError::NotAnObject { index, found });
    }
    Ok(docs)
}

fn parse_json_stream(input: &[u8]) -> Result<Vec<Value>, SanitizeError> {
    let mut docs = Vec::new();
    for (index, doc) in serde_json::Deserializer::from_slice(input)
        .into_iter::<Value>()
        .enumerate()
    {
        docs.push(doc.map_err(|source| SanitizeError::ParseJson { index, source })?);
    }
    Ok(docs)
}

fn parse_yaml(input: &[u8]) -> Result<Vec<Value>, SanitizeError> {
    let mut docs = Vec::new();
    for (index, doc) in serde_yaml::Deserializer::from_slice(input).enumerate() {
        let value =
            Value::deserialize(doc).map_err(|source| SanitizeError::ParseYaml { index, source })?;
        // `---` followed by nothing, or a comment-only document.
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}
