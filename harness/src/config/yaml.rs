//! YAML → JSON value with the source position of every node.
//!
//! serde reports one error and no position for values it did not parse itself,
//! so the config is first loaded into a `serde_json::Value` while recording where
//! each key and value came from. Every later error (type, unknown key, semantic)
//! is reported against those positions.

use serde_json::{Map, Number, Value};
use std::collections::HashMap;
use std::fmt;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};
use yaml_rust2::Yaml;

/// A path into the config, e.g. `endpoints[0].sim.ttft_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Path(pub Vec<Seg>);

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Seg {
    Key(String),
    Index(usize),
}

impl Path {
    pub fn root() -> Self {
        Path(vec![])
    }
    pub fn key(&self, k: &str) -> Path {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.to_string()));
        p
    }
    pub fn index(&self, i: usize) -> Path {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }
    pub fn parent(&self) -> Option<Path> {
        if self.0.is_empty() {
            None
        } else {
            Some(Path(self.0[..self.0.len() - 1].to_vec()))
        }
    }
    /// Parses `a.b[2].c` (the `--set` syntax).
    pub fn parse(s: &str) -> Result<Path, String> {
        let mut segs = vec![];
        for part in s.split('.') {
            let (name, mut rest) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            if name.is_empty() && (segs.is_empty() || rest.is_empty()) {
                return Err(format!("empty field name in path `{s}`"));
            }
            if !name.is_empty() {
                segs.push(Seg::Key(name.to_string()));
            }
            while !rest.is_empty() {
                let close = rest
                    .find(']')
                    .ok_or_else(|| format!("missing `]` in path `{s}`"))?;
                let idx: usize = rest[1..close].parse().map_err(|_| {
                    format!("`{}` is not a list index in path `{s}`", &rest[1..close])
                })?;
                segs.push(Seg::Index(idx));
                rest = &rest[close + 1..];
            }
        }
        Ok(Path(segs))
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return write!(f, "(top level)");
        }
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Where a node came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// 1-based line and column in the config file.
    File { line: usize, col: usize },
    /// A `--set` override on the command line.
    Override(String),
}

/// Positions of keys and values, by path.
#[derive(Debug, Default, Clone)]
pub struct Positions {
    pub values: HashMap<Path, Origin>,
    pub keys: HashMap<Path, Origin>,
}

impl Positions {
    /// The position of the value at `path`, else of the nearest ancestor.
    pub fn value_or_ancestor(&self, path: &Path) -> Option<(&Origin, Path)> {
        let mut p = Some(path.clone());
        while let Some(cur) = p {
            if let Some(o) = self.values.get(&cur) {
                return Some((o, cur));
            }
            p = cur.parent();
        }
        None
    }
    /// The position of the key naming `path` (falls back to the value).
    pub fn key_or_value(&self, path: &Path) -> Option<&Origin> {
        self.keys
            .get(path)
            .or_else(|| self.value_or_ancestor(path).map(|(o, _)| o))
    }
}

#[derive(Debug)]
pub struct YamlError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

enum Frame {
    Seq(Vec<Value>, Path, usize),
    Map(Map<String, Value>, Path, usize, Option<String>),
}

struct Builder {
    stack: Vec<Frame>,
    root: Option<Value>,
    anchors: HashMap<usize, Value>,
    pos: Positions,
    error: Option<YamlError>,
    documents: usize,
}

fn origin(m: &Marker) -> Origin {
    Origin::File {
        line: m.line(),
        col: m.col() + 1,
    }
}

impl Builder {
    /// The path the next value will have, and whether it is a mapping key.
    fn next_path(&self) -> (Path, bool) {
        match self.stack.last() {
            None => (Path::root(), false),
            Some(Frame::Seq(items, p, _)) => (p.index(items.len()), false),
            Some(Frame::Map(_, p, _, None)) => (p.clone(), true),
            Some(Frame::Map(_, p, _, Some(k))) => (p.key(k), false),
        }
    }

    fn fail(&mut self, m: &Marker, msg: String) {
        if self.error.is_none() {
            self.error = Some(YamlError {
                line: m.line(),
                col: m.col() + 1,
                message: msg,
            });
        }
    }

    fn push_value(&mut self, v: Value, anchor: usize, m: &Marker) {
        if anchor > 0 {
            self.anchors.insert(anchor, v.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(v),
            Some(Frame::Seq(items, _, _)) => items.push(v),
            Some(Frame::Map(map, p, _, key)) => match key.take() {
                None => {
                    let k = match v {
                        Value::String(s) => s,
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        _ => {
                            let msg = format!("mapping keys under `{p}` must be plain strings");
                            self.fail(m, msg);
                            return;
                        }
                    };
                    if map.contains_key(&k) {
                        let msg = format!("duplicate key `{k}` in `{p}`");
                        self.fail(m, msg);
                        return;
                    }
                    let kp = p.key(&k);
                    self.pos.keys.insert(kp, origin(m));
                    *key = Some(k);
                }
                Some(k) => {
                    map.insert(k, v);
                }
            },
        }
    }
}

fn scalar(s: String, style: TScalarStyle) -> Value {
    if style != TScalarStyle::Plain {
        return Value::String(s);
    }
    match Yaml::from_str(&s) {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(b),
        Yaml::Integer(i) => Value::Number(i.into()),
        Yaml::Real(r) => match r.parse::<f64>().ok().and_then(Number::from_f64) {
            Some(n) => Value::Number(n),
            None => Value::String(s),
        },
        _ => Value::String(s),
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, m: Marker) {
        if self.error.is_some() {
            return;
        }
        match ev {
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents > 1 {
                    self.fail(
                        &m,
                        "a config file holds one YAML document; found a second `---`".into(),
                    );
                }
            }
            Event::Scalar(s, style, anchor, _tag) => {
                let (path, is_key) = self.next_path();
                let v = scalar(s, style);
                if !is_key {
                    self.pos.values.insert(path, origin(&m));
                }
                self.push_value(v, anchor, &m);
            }
            Event::Alias(id) => {
                let (path, _) = self.next_path();
                match self.anchors.get(&id).cloned() {
                    Some(v) => {
                        self.pos.values.insert(path, origin(&m));
                        self.push_value(v, 0, &m);
                    }
                    None => self.fail(&m, "alias to an unknown anchor".into()),
                }
            }
            Event::SequenceStart(anchor, _) => {
                let (path, is_key) = self.next_path();
                if is_key {
                    self.fail(&m, "a list cannot be a mapping key".into());
                    return;
                }
                self.pos.values.insert(path.clone(), origin(&m));
                self.stack.push(Frame::Seq(vec![], path, anchor));
            }
            Event::MappingStart(anchor, _) => {
                let (path, is_key) = self.next_path();
                if is_key {
                    self.fail(&m, "a mapping cannot be a mapping key".into());
                    return;
                }
                self.pos.values.insert(path.clone(), origin(&m));
                self.stack.push(Frame::Map(Map::new(), path, anchor, None));
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq(items, _, anchor)) = self.stack.pop() {
                    self.push_value(Value::Array(items), anchor, &m);
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(map, _, anchor, _)) = self.stack.pop() {
                    self.push_value(Value::Object(map), anchor, &m);
                }
            }
            _ => {}
        }
    }
}

/// Parses one YAML document into a JSON value plus positions. An empty document
/// is an empty mapping.
pub fn parse(text: &str) -> Result<(Value, Positions), YamlError> {
    let mut b = Builder {
        stack: vec![],
        root: None,
        anchors: HashMap::new(),
        pos: Positions::default(),
        error: None,
        documents: 0,
    };
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut b, true) {
        let m = e.marker();
        return Err(YamlError {
            line: m.line(),
            col: m.col() + 1,
            message: e.info().to_string(),
        });
    }
    if let Some(e) = b.error {
        return Err(e);
    }
    let root = match b.root {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(v) => v,
    };
    Ok((root, b.pos))
}

/// Parses the value half of `--set path=value` as a YAML flow value
/// (`16`, `[1, 4, 16]`, `{ttft_ms: 50}`, `text`).
pub fn parse_value(text: &str) -> Result<Value, String> {
    parse(text)
        .map(|(v, _)| v)
        .map(|v| match v {
            // `parse` turns an empty or null document into {}; an override
            // that is empty, `null` or `~` is null (it clears the field),
            // and only `{}` is an empty mapping.
            Value::Object(m) if m.is_empty() && !text.trim_start().starts_with('{') => Value::Null,
            v => v,
        })
        .map_err(|e| e.message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_override_of_null_clears_and_only_braces_are_an_empty_mapping() {
        for t in ["", " ", "null", "~"] {
            assert_eq!(parse_value(t).unwrap(), Value::Null, "{t:?}");
        }
        assert_eq!(parse_value("{}").unwrap(), json!({}));
        assert_eq!(parse_value("{a: 1}").unwrap(), json!({"a": 1}));
        assert_eq!(parse_value("16").unwrap(), json!(16));
    }

    #[test]
    fn values_and_positions() {
        let text = "a: 1\nb:\n  - x\n  - {c: 2.5, d: \"7\"}\n";
        let (v, pos) = parse(text).unwrap();
        assert_eq!(v, json!({"a": 1, "b": ["x", {"c": 2.5, "d": "7"}]}));
        let p = Path::parse("b[1].c").unwrap();
        assert_eq!(pos.values[&p], Origin::File { line: 4, col: 9 });
        assert_eq!(
            pos.keys[&Path::parse("b").unwrap()],
            Origin::File { line: 2, col: 1 }
        );
        assert_eq!(
            pos.values[&Path::parse("b[0]").unwrap()],
            Origin::File { line: 3, col: 5 }
        );
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let e = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("duplicate key `a`"), "{}", e.message);
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let e = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.line >= 1, "{e:?}");
    }

    #[test]
    fn anchors_and_aliases() {
        let (v, _) = parse("x: &v {a: 1}\ny: *v\n").unwrap();
        assert_eq!(v["y"], json!({"a": 1}));
    }

    #[test]
    fn path_syntax() {
        let p = Path::parse("endpoints[0].sim.ttft_ms").unwrap();
        assert_eq!(p.to_string(), "endpoints[0].sim.ttft_ms");
        assert!(Path::parse("a..b").is_err());
        assert!(Path::parse("a[x]").is_err());
    }

    #[test]
    fn override_values() {
        assert_eq!(parse_value("[1, 4]").unwrap(), json!([1, 4]));
        assert_eq!(parse_value("abc").unwrap(), json!("abc"));
        assert_eq!(parse_value("").unwrap(), Value::Null);
    }
}
