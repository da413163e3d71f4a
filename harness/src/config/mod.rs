//! Loading an experiment config: parse (with positions) → apply `--set`
//! overrides → deserialize into loose wire types → validate into strict types.
//! Every error names the file, line, column and field path, and says what
//! would be valid. All errors are collected, not just the first.

pub mod model;
pub mod validate;
pub mod wire;
pub mod yaml;

pub use model::*;
use serde_json::Value;
use std::fmt;
use yaml::{Origin, Path, Positions, Seg};

/// A config that passed validation, with what is needed to record it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// The file it came from.
    pub file: String,
    /// The resolved config (defaults filled in), secrets masked, as YAML.
    pub effective_yaml: String,
    /// The `--set` overrides, as given.
    pub overrides: Vec<String>,
    /// Where each key and value came from, for errors found after validation.
    pub positions: Positions,
}

impl Loaded {
    /// The API keys the endpoints name with `api_key_env`, read from the
    /// environment, by endpoint name. Each key and every secret header value
    /// and URL credential is registered with `redact` so that no output shows
    /// it. Errors (a variable not set, a key that cannot go in an HTTP
    /// header) name the file, line and field, never the value.
    pub fn credentials(&self) -> Result<std::collections::BTreeMap<String, String>, ConfigErrors> {
        let mut keys = std::collections::BTreeMap::new();
        let mut errors = vec![];
        for (i, ep) in self.config.endpoints.iter().enumerate() {
            if let Some(u) = &ep.base_url {
                crate::redact::register_url(u);
            }
            for (k, v) in &ep.headers {
                if crate::redact::is_secret_key(k) {
                    crate::redact::register(v);
                }
            }
            let Some(var) = &ep.api_key_env else { continue };
            let path = Path::root().key("endpoints").index(i).key("api_key_env");
            let problem = match std::env::var(var) {
                Ok(v) if !v.is_empty() => {
                    crate::redact::register(&v);
                    if reqwest::header::HeaderValue::from_str(&format!("Bearer {v}")).is_ok() {
                        keys.insert(ep.name.clone(), v);
                        continue;
                    }
                    format!("the key in ${var} holds a line break, a control character or non-ASCII text, which an HTTP header cannot carry")
                }
                _ => format!("${var} is not set: export it (the endpoint `{}` sends it as its API key), or remove `api_key_env` for a server without authentication", ep.name),
            };
            errors.push(self.error_at(path, problem));
        }
        if errors.is_empty() {
            Ok(keys)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// Checks that every variable a command endpoint lists in
    /// `command.secret_env` is set, and registers each value with `redact`.
    /// Like [`Loaded::credentials`], `validate` and the dry run check it too.
    /// Errors name the file, line and field, never a value.
    pub fn command_secrets(&self) -> Result<(), ConfigErrors> {
        let mut errors = vec![];
        for ep in &self.config.commands {
            for (j, var) in ep.secret_env.iter().enumerate() {
                match std::env::var(var) {
                    Ok(v) if !v.is_empty() => crate::redact::register(&v),
                    _ => {
                        errors.push(self.error_at(
                            ep.config_path.key("command").key("secret_env").index(j),
                            format!("${var} is not set: export it (the endpoint `{}` passes it to its command by name; its value is never stored)", ep.name),
                        ));
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// An error found after validation, at `path` in this config's file.
    fn error_at(&self, path: Path, message: String) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            origin: self
                .positions
                .value_or_ancestor(&path)
                .map(|(o, _)| o.clone()),
            path: Some(path),
            message,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub file: String,
    pub origin: Option<Origin>,
    pub path: Option<Path>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    /// `file:line:col: path: message`, with secrets masked (a `--set` value
    /// of a secret key, credentials in any URL quoted).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = match &self.origin {
            Some(Origin::File { line, col }) => format!("{}:{line}:{col}: ", self.file),
            Some(Origin::Override(o)) => {
                format!("{} (--set {}): ", self.file, crate::redact::arg(o))
            }
            None => format!("{}: ", self.file),
        };
        if let Some(p) = &self.path {
            s.push_str(&format!("{p}: "));
        }
        s.push_str(&self.message);
        f.write_str(&crate::redact::text(&s))
    }
}

/// Every problem found in a config.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(f, "{n} error{} in config:", if n == 1 { "" } else { "s" })?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Loads and validates a config file.
pub fn load_file(path: &std::path::Path, overrides: &[String]) -> Result<Loaded, ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: file.clone(),
            origin: None,
            path: None,
            message: format!("cannot read the config file: {e}"),
        }])
    })?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "config".into());
    load_str(&text, &file, &stem, overrides)
}

/// Loads and validates config text; `file` labels errors.
pub fn load_str(
    text: &str,
    file: &str,
    default_name: &str,
    overrides: &[String],
) -> Result<Loaded, ConfigErrors> {
    let mk = |origin, path, message| ConfigError {
        file: file.to_string(),
        origin,
        path,
        message,
    };
    let (mut value, mut pos) = yaml::parse(text).map_err(|e| {
        ConfigErrors(vec![mk(
            Some(Origin::File {
                line: e.line,
                col: e.col,
            }),
            None,
            format!("invalid YAML: {}", e.message),
        )])
    })?;
    if !value.is_object() {
        return Err(ConfigErrors(vec![mk(
            pos.values.get(&Path::root()).cloned(),
            None,
            "the config must be a mapping of sections (endpoints, datasets, load, ...)".into(),
        )]));
    }
    let mut errors = vec![];
    for o in overrides {
        if let Err(msg) = apply_override(&mut value, &mut pos, o) {
            errors.push(mk(Some(Origin::Override(o.clone())), None, msg));
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }

    // Deserialize, removing each offending node and retrying so that every
    // unknown key and type error is reported, not only the first.
    let mut removed: Vec<Path> = vec![];
    let wire: wire::WireConfig = loop {
        match serde_path_to_error::deserialize::<_, wire::WireConfig>(&value) {
            Ok(w) => break w,
            Err(e) => {
                let path = convert_path(e.path());
                let msg = e.into_inner().to_string();
                let (path, at_key) = match unknown_field(&msg) {
                    Some(k) if path.0.last() != Some(&Seg::Key(k.clone())) => (path.key(&k), true),
                    Some(_) => (path, true),
                    None => (path, false),
                };
                let origin = if at_key {
                    pos.key_or_value(&path).cloned()
                } else {
                    pos.value_or_ancestor(&path).map(|(o, _)| o.clone())
                };
                errors.push(mk(origin, Some(path.clone()), polish(&msg)));
                if removed.contains(&path) || !remove(&mut value, &path) || errors.len() > 200 {
                    return Err(ConfigErrors(errors));
                }
                removed.push(path);
            }
        }
    };
    let config = match validate::validate(wire, default_name) {
        Ok(c) if errors.is_empty() => c,
        Ok(_) => return Err(ConfigErrors(errors)),
        Err(issues) => {
            for i in issues {
                // A field already reported (and removed) as malformed is not
                // reported again as missing.
                if removed.iter().any(|r| i.path.0.starts_with(&r.0)) {
                    continue;
                }
                // The value is what is wrong; a missing field points at its parent.
                let origin = pos.value_or_ancestor(&i.path).map(|(o, _)| o.clone());
                errors.push(mk(origin, Some(i.path), i.message));
            }
            errors.sort_by_key(|e| match &e.origin {
                Some(Origin::File { line, col }) => (*line, *col),
                _ => (0, 0),
            });
            return Err(ConfigErrors(errors));
        }
    };
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let mut resolved = serde_json::to_value(&config).expect("config serialises");
    crate::redact::value(&mut resolved);
    Ok(Loaded {
        config,
        file: file.to_string(),
        effective_yaml: to_yaml(&resolved),
        overrides: overrides.to_vec(),
        positions: pos,
    })
}

fn unknown_field(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_string())
}

/// serde's messages, with the hint phrased for a config author.
fn polish(msg: &str) -> String {
    if let Some(k) = unknown_field(msg) {
        let expected = msg.split_once(", expected ").map(|x| x.1).unwrap_or("");
        let hint = if k == "api_key" || k == "token" {
            " (put the key in an environment variable and name it with `api_key_env`)".to_string()
        } else if ["cold_baseline", "prefixes", "requests_per_prefix"].contains(&k.as_str())
            && expected.contains("`shared_prefix`")
        {
            " (it belongs in `shared_prefix: {tokens, prefixes, requests_per_prefix, cold_baseline}`)".to_string()
        } else {
            String::new()
        };
        return format!(
            "unknown key `{k}`{hint}; valid keys here: {}",
            expected.replace("one of ", "")
        );
    }
    if msg.contains("untagged enum WireLength") {
        return "is not a length: write a token count (`512`), `{uniform: [min, max]}` or `{normal: {mean, std, min, max}}`".into();
    }
    let mut out = msg
        .replace("invalid type: ", "wrong type: found ")
        .replace("unknown variant", "unknown value");
    // Rust's type names, in a config author's words.
    for (rust, words) in [
        ("expected u8", "expected a whole number from 0 to 255"),
        ("expected u16", "expected a whole number from 0 to 65535"),
        ("expected u32", "expected a whole number >= 0"),
        ("expected u64", "expected a whole number >= 0"),
        ("expected usize", "expected a whole number >= 0"),
        ("expected i64", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected f32", "expected a number"),
        ("expected a boolean", "expected `true` or `false`"),
    ] {
        if let Some(rest) = out.strip_suffix(rust) {
            out = format!("{rest}{words}");
        }
    }
    if let Some(i) = out.find("expected struct Wire") {
        out = format!(
            "{}expected a mapping of keys (`{{key: value, ...}}`)",
            &out[..i]
        );
    }
    out
}

fn convert_path(p: &serde_path_to_error::Path) -> Path {
    use serde_path_to_error::Segment;
    Path(
        p.iter()
            .filter_map(|s| match s {
                Segment::Seq { index } => Some(Seg::Index(*index)),
                Segment::Map { key } => Some(Seg::Key(key.clone())),
                Segment::Enum { variant } => Some(Seg::Key(variant.clone())),
                Segment::Unknown => None,
            })
            .collect(),
    )
}

/// Removes the node at `path`; list elements are replaced by null so that the
/// positions of their siblings stay valid (null elements then fail on their own).
fn remove(root: &mut Value, path: &Path) -> bool {
    let Some((last, parent)) = path.0.split_last() else {
        return false;
    };
    let mut cur = root;
    for s in parent {
        cur = match (s, cur) {
            (Seg::Key(k), Value::Object(m)) => match m.get_mut(k) {
                Some(v) => v,
                None => return false,
            },
            (Seg::Index(i), Value::Array(a)) => match a.get_mut(*i) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, cur) {
        (Seg::Key(k), Value::Object(m)) => m.remove(k).is_some(),
        (Seg::Index(i), Value::Array(a)) if *i < a.len() => {
            // A list element cannot be removed without shifting its siblings'
            // paths; drop the whole list instead (already reported).
            let _ = i;
            a.clear();
            true
        }
        _ => false,
    }
}

fn apply_override(root: &mut Value, pos: &mut Positions, spec: &str) -> Result<(), String> {
    let (p, v) = spec.split_once('=').ok_or_else(|| {
        format!("`{spec}` is not `path=value`; e.g. `--set load.concurrency=[1,8]`")
    })?;
    let path = Path::parse(p.trim())?;
    if path.0.is_empty() {
        return Err("the path is empty".into());
    }
    let value =
        yaml::parse_value(v).map_err(|e| format!("the value `{v}` is not valid YAML: {e}"))?;
    let mut cur = &mut *root;
    let (last, parent) = path.0.split_last().expect("non-empty");
    for (i, s) in parent.iter().enumerate() {
        let here = Path(path.0[..=i].to_vec());
        cur = match s {
            Seg::Key(k) => {
                if cur.is_null() {
                    *cur = Value::Object(Default::default());
                }
                let Value::Object(m) = cur else {
                    return Err(format!("`{here}` is not a mapping"));
                };
                m.entry(k.clone()).or_insert(Value::Null)
            }
            Seg::Index(n) => {
                let Value::Array(a) = cur else {
                    return Err(format!("`{here}` is not a list"));
                };
                let len = a.len();
                a.get_mut(*n).ok_or_else(|| {
                    format!("`{here}`: index {n} is out of range (the list has {len} items)")
                })?
            }
        };
    }
    match last {
        Seg::Key(k) => {
            if cur.is_null() {
                *cur = Value::Object(Default::default());
            }
            let Value::Object(m) = cur else {
                return Err(format!("the parent of `{path}` is not a mapping"));
            };
            m.insert(k.clone(), value);
        }
        Seg::Index(n) => {
            let Value::Array(a) = cur else {
                return Err(format!("the parent of `{path}` is not a list"));
            };
            let len = a.len();
            *a.get_mut(*n)
                .ok_or_else(|| format!("index {n} is out of range (the list has {len} items)"))? =
                value;
        }
    }
    // Everything under the overridden path now comes from the command line.
    let o = Origin::Override(spec.to_string());
    pos.values.retain(|k, _| !k.0.starts_with(&path.0));
    pos.values.insert(path.clone(), o.clone());
    pos.keys.insert(path, o);
    Ok(())
}

/// Writes a JSON value as block-style YAML (strings double-quoted).
pub fn to_yaml(v: &Value) -> String {
    fn scalar(v: &Value) -> String {
        match v {
            Value::String(s) => serde_json::to_string(s).expect("string"),
            other => other.to_string(),
        }
    }
    fn key(k: &str) -> String {
        if !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            k.to_string()
        } else {
            serde_json::to_string(k).expect("string")
        }
    }
    fn walk(v: &Value, indent: usize, out: &mut String) {
        let pad = " ".repeat(indent);
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    match child {
                        Value::Object(c) if !c.is_empty() => {
                            out.push_str(&format!("{pad}{}:\n", key(k)));
                            walk(child, indent + 2, out);
                        }
                        Value::Array(a) if !a.is_empty() => {
                            out.push_str(&format!("{pad}{}:\n", key(k)));
                            walk(child, indent, out);
                        }
                        Value::Object(_) => out.push_str(&format!("{pad}{}: {{}}\n", key(k))),
                        Value::Array(_) => out.push_str(&format!("{pad}{}: []\n", key(k))),
                        _ => out.push_str(&format!("{pad}{}: {}\n", key(k), scalar(child))),
                    }
                }
            }
            Value::Array(a) => {
                for item in a {
                    match item {
                        Value::Object(m) if !m.is_empty() => {
                            let mut inner = String::new();
                            walk(item, indent + 2, &mut inner);
                            out.push_str(&format!("{pad}- {}", &inner[indent + 2..]));
                        }
                        Value::Array(x) if !x.is_empty() => {
                            out.push_str(&format!("{pad}-\n"));
                            walk(item, indent + 2, out);
                        }
                        _ => out.push_str(&format!("{pad}- {}\n", scalar(item))),
                    }
                }
            }
            other => out.push_str(&format!("{pad}{}\n", scalar(other))),
        }
    }
    let mut out = String::new();
    walk(v, 0, &mut out);
    out
}
