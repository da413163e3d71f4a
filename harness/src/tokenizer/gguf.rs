//! Reads the metadata of a GGUF file (the llama.cpp model format) — enough to
//! rebuild the model's tokenizer without the Hugging Face Hub. Tensors are not
//! read. Format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::io::{BufReader, Read};
use std::path::Path;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    UInt(u64),
    Float(f64),
    Bool(bool),
    Str(String),
    Array(Vec<Value>),
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::UInt(u) => i64::try_from(*u).ok(),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

struct R<T: Read> {
    r: T,
}

impl<T: Read> R<T> {
    fn bytes<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        self.r.read_exact(&mut b)?;
        Ok(b)
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }
    fn string(&mut self) -> Result<String> {
        let n = self.u64()?;
        if n > 64 << 20 {
            bail!("string of {n} bytes is implausible");
        }
        let mut b = vec![0u8; n as usize];
        self.r.read_exact(&mut b)?;
        Ok(String::from_utf8_lossy(&b).into_owned())
    }
    fn value(&mut self, ty: u32) -> Result<Value> {
        Ok(match ty {
            0 => Value::UInt(self.bytes::<1>()?[0] as u64),
            1 => Value::Int(self.bytes::<1>()?[0] as i8 as i64),
            2 => Value::UInt(u16::from_le_bytes(self.bytes()?) as u64),
            3 => Value::Int(i16::from_le_bytes(self.bytes()?) as i64),
            4 => Value::UInt(self.u32()? as u64),
            5 => Value::Int(i32::from_le_bytes(self.bytes()?) as i64),
            6 => Value::Float(f32::from_le_bytes(self.bytes()?) as f64),
            7 => Value::Bool(self.bytes::<1>()?[0] != 0),
            8 => Value::Str(self.string()?),
            9 => {
                let item = self.u32()?;
                let n = self.u64()?;
                if n > 16 << 20 {
                    bail!("array of {n} items is implausible");
                }
                let mut v = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    v.push(self.value(item)?);
                }
                Value::Array(v)
            }
            10 => Value::UInt(self.u64()?),
            11 => Value::Int(i64::from_le_bytes(self.bytes()?)),
            12 => Value::Float(f64::from_le_bytes(self.bytes()?)),
            other => bail!("unknown GGUF value type {other}"),
        })
    }
}

/// The key-value metadata of a GGUF file.
pub fn read_metadata(path: &Path) -> Result<BTreeMap<String, Value>> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut r = R {
        r: BufReader::with_capacity(1 << 20, f),
    };
    let magic = r.bytes::<4>()?;
    if &magic != b"GGUF" {
        bail!("{} is not a GGUF file (bad magic)", path.display());
    }
    let version = r.u32()?;
    if !(2..=3).contains(&version) {
        bail!(
            "{}: GGUF version {version} is not supported (2 or 3 are)",
            path.display()
        );
    }
    let _tensors = r.u64()?;
    let kvs = r.u64()?;
    let mut out = BTreeMap::new();
    for _ in 0..kvs {
        let key = r.string()?;
        let ty = r.u32()?;
        let v = r
            .value(ty)
            .with_context(|| format!("{}: reading metadata `{key}`", path.display()))?;
        out.insert(key, v);
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// Writes a GGUF file with the given metadata and no tensors.
    pub fn write_gguf(path: &Path, kv: &[(&str, Value)]) {
        fn s(out: &mut Vec<u8>, x: &str) {
            out.extend_from_slice(&(x.len() as u64).to_le_bytes());
            out.extend_from_slice(x.as_bytes());
        }
        fn ty(v: &Value) -> u32 {
            match v {
                Value::Int(_) => 5,
                Value::UInt(_) => 4,
                Value::Float(_) => 6,
                Value::Bool(_) => 7,
                Value::Str(_) => 8,
                Value::Array(_) => 9,
            }
        }
        fn val(out: &mut Vec<u8>, v: &Value) {
            match v {
                Value::Int(i) => out.extend_from_slice(&(*i as i32).to_le_bytes()),
                Value::UInt(u) => out.extend_from_slice(&(*u as u32).to_le_bytes()),
                Value::Float(f) => out.extend_from_slice(&(*f as f32).to_le_bytes()),
                Value::Bool(b) => out.push(*b as u8),
                Value::Str(x) => s(out, x),
                Value::Array(a) => {
                    out.extend_from_slice(&a.first().map(ty).unwrap_or(8).to_le_bytes());
                    out.extend_from_slice(&(a.len() as u64).to_le_bytes());
                    for x in a {
                        val(out, x);
                    }
                }
            }
        }
        let mut out = b"GGUF".to_vec();
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes());
        out.extend_from_slice(&(kv.len() as u64).to_le_bytes());
        for (k, v) in kv {
            s(&mut out, k);
            out.extend_from_slice(&ty(v).to_le_bytes());
            val(&mut out, v);
        }
        std::fs::File::create(path)
            .unwrap()
            .write_all(&out)
            .unwrap();
    }

    #[test]
    fn round_trip_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.gguf");
        write_gguf(
            &p,
            &[
                ("general.name", Value::Str("tiny".into())),
                (
                    "tokenizer.ggml.tokens",
                    Value::Array(vec![Value::Str("a".into()), Value::Str("b".into())]),
                ),
                ("tokenizer.ggml.add_bos_token", Value::Bool(false)),
                ("tokenizer.ggml.bos_token_id", Value::UInt(1)),
            ],
        );
        let m = read_metadata(&p).unwrap();
        assert_eq!(m["general.name"].as_str(), Some("tiny"));
        assert_eq!(m["tokenizer.ggml.tokens"].as_array().unwrap().len(), 2);
        assert_eq!(m["tokenizer.ggml.add_bos_token"].as_bool(), Some(false));
        assert_eq!(m["tokenizer.ggml.bos_token_id"].as_i64(), Some(1));
    }

    #[test]
    fn rejects_non_gguf() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.gguf");
        std::fs::write(&p, b"nope").unwrap();
        assert!(read_metadata(&p)
            .unwrap_err()
            .to_string()
            .contains("not a GGUF file"));
    }
}
