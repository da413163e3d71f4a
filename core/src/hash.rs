//! Experiment identity: SHA-256 over canonical JSON.
//!
//! Canonical JSON here means: object keys sorted by their UTF-8 bytes, no
//! insignificant whitespace, strings escaped as `serde_json` escapes them, and
//! numbers written by `serde_json` (integers exactly; floats by the shortest
//! round-trip representation). The schema version is part of the hashed
//! document, so a change to what is hashed changes every id on purpose.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Bumped whenever the set or meaning of hashed fields changes.
pub const HASH_SCHEMA_VERSION: u32 = 2;

/// Writes `v` as canonical JSON.
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).expect("string serialises"));
                out.push(':');
                write_canonical(&map[*k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&serde_json::to_string(other).expect("scalar serialises")),
    }
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The experiment id: SHA-256 of the canonical JSON of the hash inputs.
pub fn experiment_id(inputs: &Value) -> String {
    sha256_hex(canonical_json(inputs).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_does_not_matter() {
        let a = json!({"b": 1, "a": {"y": [1, 2], "x": "s"}});
        let b = json!({"a": {"x": "s", "y": [1, 2]}, "b": 1});
        assert_eq!(canonical_json(&a), r#"{"a":{"x":"s","y":[1,2]},"b":1}"#);
        assert_eq!(experiment_id(&a), experiment_id(&b));
    }

    #[test]
    fn any_value_change_changes_id() {
        let a = json!({"load": {"rate": 10.0}});
        let b = json!({"load": {"rate": 10.5}});
        assert_ne!(experiment_id(&a), experiment_id(&b));
    }

    #[test]
    fn sha256_known_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
