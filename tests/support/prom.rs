//! A strict reader of the Prometheus text exposition format 0.0.4, with larder's naming
//! rules on top, to check what `/metrics` serves.
//!
//! It accepts what the format allows that larder may write: `# HELP` and `# TYPE`
//! lines, other comments, blank lines, samples with or without labels (escapes
//! `\\`, `\"`, `\n`; a trailing comma), values in Go's float syntax including `+Inf`,
//! `-Inf` and `NaN`, and an optional millisecond timestamp. It rejects, each with a
//! message naming the line:
//!
//! - a sample whose family has no `# HELP` or no `# TYPE` before it, or a HELP or TYPE
//!   after the family's samples;
//! - a second HELP or TYPE for a family, and a family whose lines are not together;
//! - a counter whose name does not end in `_total`, and a negative or NaN counter;
//! - a metric name not prefixed `larder_`;
//! - malformed lines: bad names, bad label syntax or escapes, duplicate label names,
//!   reserved `__` label names, bad values or timestamps, leading or trailing
//!   whitespace, more than one space between fields, carriage returns;
//! - the same series (name and label set, in any order) twice;
//! - a text that is empty or does not end in a newline.

use std::collections::HashSet;
use std::fmt;

/// One metric family: its name as in `# TYPE`, its HELP text (unescaped) and type.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: String,
    pub help: String,
    /// `counter`, `gauge`, `histogram`, `summary` or `untyped`.
    pub kind: String,
}

/// Label names and values.
type Labels = Vec<(String, String)>;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    /// Label names and (unescaped) values, sorted by name.
    pub labels: Labels,
    pub value: f64,
    /// Milliseconds since the epoch, when the line has one.
    pub timestamp: Option<i64>,
    /// The family the sample belongs to (its name, or the histogram or summary it is a
    /// `_bucket`, `_sum` or `_count` of).
    pub family: String,
}

impl fmt::Display for Sample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if !self.labels.is_empty() {
            let labels: Vec<String> = self
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect();
            write!(f, "{{{}}}", labels.join(","))?;
        }
        Ok(())
    }
}

/// A parsed exposition.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    families: Vec<Family>,
    samples: Vec<Sample>,
}

impl Metrics {
    /// The value of the series `name` with exactly the labels `labels` (in any order).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut wanted: Vec<(&str, &str)> = labels.to_vec();
        wanted.sort();
        self.samples
            .iter()
            .find(|s| {
                s.name == name
                    && s.labels.len() == wanted.len()
                    && s.labels
                        .iter()
                        .zip(&wanted)
                        .all(|((k, v), (wk, wv))| k == wk && v == wv)
            })
            .map(|s| s.value)
    }

    /// The family called `name`, if declared.
    pub fn family(&self, name: &str) -> Option<&Family> {
        self.families.iter().find(|f| f.name == name)
    }

    /// Every family, in the order declared.
    pub fn families(&self) -> &[Family] {
        &self.families
    }

    /// Every sample, in the order written.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }
}

/// Parses `text` strictly; the error names the first offending line.
pub fn parse(text: &str) -> Result<Metrics, String> {
    if text.is_empty() {
        return Err("empty exposition".into());
    }
    if !text.ends_with('\n') {
        return Err("the text does not end in a newline".into());
    }
    let mut parser = Parser::default();
    for (i, line) in text.split_terminator('\n').enumerate() {
        parser
            .line(line)
            .map_err(|e| format!("line {}: {e}: {line:?}", i + 1))?;
    }
    Ok(parser.metrics)
}

/// Checks that every counter series of `before` is in `after` with a value at least as
/// large: counters never go down while the process lives.
pub fn counters_grew_or_stayed(before: &Metrics, after: &Metrics) -> Result<(), String> {
    for old in &before.samples {
        let is_counter = before
            .family(&old.family)
            .is_some_and(|f| f.kind == "counter");
        if !is_counter {
            continue;
        }
        let labels: Vec<(&str, &str)> = old
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        match after.get(&old.name, &labels) {
            None => return Err(format!("counter {old} ({}) disappeared", old.value)),
            Some(new) if new < old.value => {
                return Err(format!(
                    "counter {old} went down from {} to {new}",
                    old.value
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

#[derive(Default)]
struct Parser {
    metrics: Metrics,
    /// Which families have a HELP line, and a TYPE line.
    help: HashSet<String>,
    typed: HashSet<String>,
    /// Families that have samples.
    sampled: HashSet<String>,
    /// The family the last line was about, and the families left behind.
    current: Option<String>,
    closed: HashSet<String>,
    /// Series seen: name and sorted labels.
    series: HashSet<(String, Labels)>,
}

impl Parser {
    fn line(&mut self, line: &str) -> Result<(), String> {
        if line.contains('\r') {
            return Err("carriage return".into());
        }
        if line.is_empty() {
            return Ok(());
        }
        if line.trim() != line {
            return Err("leading or trailing whitespace".into());
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            return self.help(name, help);
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let Some((name, kind)) = rest.split_once(' ') else {
                return Err("TYPE without a type".into());
            };
            return self.kind(name, kind);
        }
        if let Some(comment) = line.strip_prefix('#') {
            // Any comment but a HELP or TYPE that is not written as one.
            let first = comment.split_whitespace().next();
            if matches!(first, Some("HELP" | "TYPE"))
                || comment.starts_with("HELP")
                || comment.starts_with("TYPE")
            {
                return Err("malformed HELP or TYPE line".into());
            }
            return Ok(());
        }
        self.sample(line)
    }

    /// Notes that a line is about `family`: its lines must all be together.
    fn enter(&mut self, family: &str) -> Result<(), String> {
        if self.current.as_deref() == Some(family) {
            return Ok(());
        }
        if self.closed.contains(family) {
            return Err(format!("the lines of {family} are not all together"));
        }
        if let Some(previous) = self.current.take() {
            self.closed.insert(previous);
        }
        self.current = Some(family.to_string());
        Ok(())
    }

    fn declare(&mut self, name: &str, what: &str) -> Result<(), String> {
        check_metric_name(name)?;
        self.enter(name)?;
        if self.sampled.contains(name) {
            return Err(format!("{what} for {name} after its samples"));
        }
        Ok(())
    }

    fn help(&mut self, name: &str, help: &str) -> Result<(), String> {
        self.declare(name, "HELP")?;
        if !self.help.insert(name.to_string()) {
            return Err(format!("a second HELP for {name}"));
        }
        let help = unescape(help, false)?;
        match self.metrics.families.iter_mut().find(|f| f.name == name) {
            Some(family) => family.help = help,
            None => self.metrics.families.push(Family {
                name: name.to_string(),
                help,
                kind: String::new(),
            }),
        }
        Ok(())
    }

    fn kind(&mut self, name: &str, kind: &str) -> Result<(), String> {
        self.declare(name, "TYPE")?;
        if !matches!(
            kind,
            "counter" | "gauge" | "histogram" | "summary" | "untyped"
        ) {
            return Err(format!("unknown type {kind:?}"));
        }
        if !self.typed.insert(name.to_string()) {
            return Err(format!("a second TYPE for {name}"));
        }
        if kind == "counter" && !name.ends_with("_total") {
            return Err(format!("counter {name} does not end in _total"));
        }
        match self.metrics.families.iter_mut().find(|f| f.name == name) {
            Some(family) => family.kind = kind.to_string(),
            None => self.metrics.families.push(Family {
                name: name.to_string(),
                help: String::new(),
                kind: kind.to_string(),
            }),
        }
        Ok(())
    }

    fn sample(&mut self, line: &str) -> Result<(), String> {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        check_metric_name(name)?;
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(after) = rest.strip_prefix('{') {
            let (parsed, after) = parse_labels(after)?;
            labels = parsed;
            rest = after;
        }
        let Some(rest) = rest.strip_prefix(' ') else {
            return Err("no value".into());
        };
        let mut fields = rest.split(' ');
        let value = parse_value(fields.next().unwrap_or(""))?;
        let timestamp = match fields.next() {
            None => None,
            Some(t) => Some(parse_timestamp(t)?),
        };
        if fields.next().is_some() {
            return Err("more than a value and a timestamp, or extra spaces".into());
        }

        let family = self.family_of(name).ok_or_else(|| {
            format!("sample {name} without a preceding HELP and TYPE for its family")
        })?;
        self.enter(&family)?;
        if !self.help.contains(&family) || !self.typed.contains(&family) {
            return Err(format!(
                "sample {name} without a preceding HELP and TYPE for {family}"
            ));
        }
        let kind = self
            .metrics
            .family(&family)
            .map(|f| f.kind.clone())
            .unwrap_or_default();
        if kind == "counter" && (value.is_nan() || value < 0.0) {
            return Err(format!("counter {name} has the value {value}"));
        }
        labels.sort();
        if !self.series.insert((name.to_string(), labels.clone())) {
            return Err("the same series twice".into());
        }
        self.sampled.insert(family.clone());
        self.metrics.samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
            timestamp,
            family,
        });
        Ok(())
    }

    /// The declared family a sample called `name` belongs to.
    fn family_of(&self, name: &str) -> Option<String> {
        let declared = |n: &str| self.help.contains(n) || self.typed.contains(n);
        if declared(name) {
            return Some(name.to_string());
        }
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix) {
                let grouped = self.metrics.family(base).is_some_and(|f| {
                    f.kind == "histogram" || (f.kind == "summary" && suffix != "_bucket")
                });
                if grouped {
                    return Some(base.to_string());
                }
            }
        }
        None
    }
}

/// A metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`, and larder's prefix.
fn check_metric_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        return Err(format!("bad metric name {name:?}"));
    }
    if !name.starts_with("larder_") {
        return Err(format!("metric name {name} is not prefixed larder_"));
    }
    Ok(())
}

/// Parses the labels after `{` up to and including `}`; returns them and the rest.
fn parse_labels(mut s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Labels::new();
    loop {
        if let Some(rest) = s.strip_prefix('}') {
            return Ok((labels, rest));
        }
        let name_end = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .ok_or("unterminated labels")?;
        let name = &s[..name_end];
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if !valid {
            return Err(format!("bad label name {name:?}"));
        }
        if name.starts_with("__") {
            return Err(format!("reserved label name {name}"));
        }
        if labels.iter().any(|(n, _)| n == name) {
            return Err(format!("label {name} twice"));
        }
        let rest = s[name_end..]
            .strip_prefix("=\"")
            .ok_or_else(|| format!("label {name} without =\"value\""))?;
        // Find the closing quote: the first one not escaped.
        let mut end = None;
        let mut escaped = false;
        for (i, c) in rest.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let end = end.ok_or_else(|| format!("label {name}'s value is not closed"))?;
        let value = unescape(&rest[..end], true)?;
        labels.push((name.to_string(), value));
        s = &rest[end + 1..];
        if let Some(after) = s.strip_prefix(',') {
            s = after;
        } else if !s.starts_with('}') {
            return Err("labels not separated by a comma".into());
        }
    }
}

/// Undoes `\\` and `\n`, and `\"` in label values; any other escape is an error.
fn unescape(s: &str, label: bool) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if label => out.push('"'),
            other => {
                return Err(format!(
                    "bad escape \\{}",
                    other.map(String::from).unwrap_or_default()
                ))
            }
        }
    }
    Ok(out)
}

/// A sample value: Go float syntax in decimal, or `+Inf`, `-Inf`, `Inf`, `NaN`.
fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" | "Inf" => return Ok(f64::INFINITY),
        "-Inf" => return Ok(f64::NEG_INFINITY),
        "NaN" => return Ok(f64::NAN),
        _ => {}
    }
    let bad = || format!("bad value {s:?}");
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (unsigned, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |d: &str| d.chars().all(|c| c.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
        return Err(bad());
    }
    if let Some(e) = exponent {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        if e.is_empty() || !digits(e) {
            return Err(bad());
        }
    }
    s.parse().map_err(|_| bad())
}

/// A timestamp: an integer count of milliseconds.
fn parse_timestamp(s: &str) -> Result<i64, String> {
    let unsigned = s.strip_prefix('-').unwrap_or(s);
    if unsigned.is_empty() || !unsigned.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("bad timestamp {s:?}"));
    }
    s.parse().map_err(|_| format!("bad timestamp {s:?}"))
}
