//! A Prometheus text-format (0.0.4) parser, strict enough to catch what
//! Prometheus would reject.

use std::collections::{BTreeMap, HashSet};
use std::iter::Peekable;
use std::str::CharIndices;

/// Parses and validates `text`; returns every sample keyed by its series, as
/// `name{label="value",...}` with labels in written order.
pub(crate) fn parse_prometheus(text: &str) -> Result<BTreeMap<String, f64>, String> {
    if !text.ends_with('\n') {
        return Err("the exposition must end with a newline".to_owned());
    }
    let mut exposition = Exposition::default();
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let parsed = match line.strip_prefix('#') {
            Some(comment) => exposition.comment(comment),
            None => exposition.sample(line),
        };
        parsed.map_err(|what| format!("line {}: {what}: {line:?}", n + 1))?;
    }
    Ok(exposition.samples)
}

/// What the lines read so far declared and held.
#[derive(Default)]
struct Exposition {
    /// The TYPE of each family.
    types: BTreeMap<String, String>,
    /// The families with a HELP line.
    helps: HashSet<String>,
    /// The families whose samples are over: one of theirs must not follow.
    finished: HashSet<String>,
    /// The family of the last sample.
    current: Option<String>,
    samples: BTreeMap<String, f64>,
}

impl Exposition {
    /// A `# HELP name text` or `# TYPE name kind` line; other comments pass.
    fn comment(&mut self, comment: &str) -> Result<(), String> {
        let mut words = comment.trim_start().splitn(3, ' ');
        match (words.next(), words.next(), words.next()) {
            (Some("HELP"), Some(name), _) => {
                let first = self.helps.insert(name.to_owned());
                if !(valid_name(name) && first) {
                    return Err("bad or repeated HELP".to_owned());
                }
            }
            (Some("TYPE"), Some(name), Some(kind)) => {
                let known = ["counter", "gauge", "histogram", "summary", "untyped"];
                if !valid_name(name) || !known.contains(&kind) {
                    return Err("bad TYPE".to_owned());
                }
                if self
                    .types
                    .insert(name.to_owned(), kind.to_owned())
                    .is_some()
                {
                    return Err("repeated TYPE".to_owned());
                }
                if self.finished.contains(name) {
                    return Err("TYPE after the family's samples".to_owned());
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// A sample line, which must belong to a declared family, next to the
    /// family's other samples, and name a series not seen before.
    fn sample(&mut self, line: &str) -> Result<(), String> {
        let (name, labels, value) = parse_sample(line)?;
        let family = self.family_of(name, value)?;
        if self.current.as_deref() != Some(family.as_str()) {
            if self.finished.contains(&family) {
                return Err("samples of a family must be contiguous".to_owned());
            }
            if let Some(previous) = self.current.replace(family) {
                self.finished.insert(previous);
            }
        }
        let key = if labels.is_empty() {
            name.to_owned()
        } else {
            format!("{name}{{{}}}", labels.join(","))
        };
        if self.samples.insert(key, value).is_some() {
            return Err("duplicate series".to_owned());
        }
        Ok(())
    }

    /// The family a sample named `name` belongs to, checked against its TYPE.
    fn family_of(&self, name: &str, value: f64) -> Result<String, String> {
        let family = ["_total", "_count", "_sum", "_bucket", "_created"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix)
                    .filter(|base| self.types.contains_key(*base))
            })
            .unwrap_or(name)
            .to_owned();
        let kind = self
            .types
            .get(&family)
            .or_else(|| self.types.get(name))
            .ok_or_else(|| "sample without TYPE".to_owned())?;
        if kind == "counter" && !name.ends_with("_total") && !name.ends_with("_created") {
            return Err("counter samples end in _total".to_owned());
        }
        if kind == "counter" && value < 0.0 {
            return Err("negative counter".to_owned());
        }
        Ok(family)
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_value(v: &str) -> Result<f64, String> {
    match v {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => v.parse().map_err(|_| format!("bad value {v:?}")),
    }
}

/// `name{labels} value [timestamp]`: the name, the labels and the value.
fn parse_sample(line: &str) -> Result<(&str, Vec<String>, f64), String> {
    let name_end = line.find(['{', ' ']).ok_or_else(|| "no value".to_owned())?;
    let name = &line[..name_end];
    if !valid_name(name) {
        return Err("bad metric name".to_owned());
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        (labels, rest) = parse_labels(after)?;
    }
    let mut fields = rest.split_whitespace();
    let value = parse_value(fields.next().ok_or_else(|| "no value".to_owned())?)?;
    if let Some(ts) = fields.next() {
        ts.parse::<i64>().map_err(|_| "bad timestamp".to_owned())?;
    }
    if fields.next().is_some() || !rest.starts_with(' ') {
        return Err("trailing garbage".to_owned());
    }
    Ok((name, labels, value))
}

type Chars<'a> = Peekable<CharIndices<'a>>;

/// The label set after a sample's `{`: the labels, written back the way
/// Prometheus escapes them, and what follows the closing `}`.
fn parse_labels(after: &str) -> Result<(Vec<String>, &str), String> {
    let mut chars = after.char_indices().peekable();
    let mut labels = Vec::new();
    let end = loop {
        skip_spaces(&mut chars);
        match chars.peek() {
            Some((i, '}')) => break Some(*i),
            None => break None,
            _ => {}
        }
        labels.push(parse_label(&mut chars)?);
        if chars.next_if(|(_, c)| *c == ',').is_none() {
            skip_spaces(&mut chars);
            match chars.peek() {
                Some((i, '}')) => break Some(*i),
                _ => return Err("expected , or }".to_owned()),
            }
        }
    };
    let end = end.ok_or_else(|| "unterminated label set".to_owned())?;
    Ok((labels, &after[end + 1..]))
}

fn skip_spaces(chars: &mut Chars<'_>) {
    while chars.next_if(|(_, c)| *c == ' ').is_some() {}
}

/// One `label="value"`.
fn parse_label(chars: &mut Chars<'_>) -> Result<String, String> {
    let mut label = String::new();
    while let Some((_, c)) = chars.next_if(|(_, c)| *c != '=') {
        label.push(c);
    }
    if !valid_name(&label) || label.starts_with("__") {
        return Err("bad label name".to_owned());
    }
    if chars.next().map(|(_, c)| c) != Some('=') || chars.next().map(|(_, c)| c) != Some('"') {
        return Err("label value must be quoted".to_owned());
    }
    let value = label_value(chars)?;
    Ok(format!(
        "{label}=\"{}\"",
        value
            .replace('\\', r"\\")
            .replace('"', "\\\"")
            .replace('\n', r"\n")
    ))
}

/// A label value after its opening quote, unescaped, through the closing quote.
fn label_value(chars: &mut Chars<'_>) -> Result<String, String> {
    let mut value = String::new();
    loop {
        match chars.next().map(|(_, c)| c) {
            Some('"') => return Ok(value),
            Some('\\') => match chars.next().map(|(_, c)| c) {
                Some('\\') => value.push('\\'),
                Some('"') => value.push('"'),
                Some('n') => value.push('\n'),
                _ => return Err("bad escape in label value".to_owned()),
            },
            Some(c) => value.push(c),
            None => return Err("unterminated label value".to_owned()),
        }
    }
}

#[test]
fn the_prometheus_parser_rejects_what_prometheus_rejects() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\\\"\"} 3\n# TYPE b gauge\nb -Inf 1700000000\n";
    let parsed = parse_prometheus(good).unwrap();
    assert_eq!(parsed["a_total{x=\"1\\\"\"}"], 3.0);
    for bad in [
        "a 1\n",                                                   // no TYPE
        "# TYPE a gauge\na 1",                                     // no final newline
        "# TYPE a gauge\na{x=1} 1\n",                              // unquoted label
        "# TYPE a gauge\na x\n",                                   // bad value
        "# TYPE a counter\na 1\n",                                 // counter without _total
        "# TYPE a gauge\n# TYPE a gauge\na 1\n",                   // repeated TYPE
        "# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\na{x=\"\"} 1\n", // not contiguous
        "# TYPE a gauge\na 1\na 2\n",                              // duplicate
    ] {
        assert!(parse_prometheus(bad).is_err(), "accepted {bad:?}");
    }
}
