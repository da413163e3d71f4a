//! Prompt templates: `{name}` is replaced by the row's field `name`; `{{` and
//! `}}` write literal braces.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Field(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    pub fn parse(s: &str) -> Result<Template, String> {
        let mut parts = vec![];
        let mut text = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) if c.is_alphanumeric() || c == '_' || c == '-' || c == '.' => name.push(c),
                            Some(c) => return Err(format!("`{c}` cannot appear in a placeholder; write `{{{{` for a literal `{{`")),
                            None => return Err("a `{` is not closed; write `{{` for a literal `{`".into()),
                        }
                    }
                    if name.is_empty() {
                        return Err(
                            "empty placeholder `{}`; write `{{}}` for literal braces".into()
                        );
                    }
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(Part::Field(name));
                }
                '}' => return Err("a lone `}`; write `}}` for a literal `}`".into()),
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template { parts })
    }

    pub fn fields(&self) -> Vec<&str> {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Field(f) => Some(f.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Renders with a JSON row; strings are inserted as-is, other values as JSON.
    /// Errors name the missing field.
    pub fn render(&self, row: &serde_json::Map<String, Value>) -> Result<String, String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Field(f) => match row.get(f) {
                    Some(Value::String(s)) => out.push_str(s),
                    Some(Value::Null) | None => {
                        let keys: Vec<&str> = row.keys().map(|k| k.as_str()).collect();
                        return Err(format!(
                            "missing key `{f}` (the row has: {})",
                            keys.join(", ")
                        ));
                    }
                    Some(v) => out.push_str(&v.to_string()),
                },
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placeholders_and_literal_braces() {
        let t = Template::parse("Q: {input}\nJSON: {{\"a\": {n}}}").unwrap();
        assert_eq!(t.fields(), vec!["input", "n"]);
        let row = json!({"input": "why?", "n": 3});
        assert_eq!(
            t.render(row.as_object().unwrap()).unwrap(),
            "Q: why?\nJSON: {\"a\": 3}"
        );
    }

    #[test]
    fn errors() {
        assert!(Template::parse("{open").unwrap_err().contains("not closed"));
        assert!(Template::parse("a } b").unwrap_err().contains("lone"));
        assert!(Template::parse("{}")
            .unwrap_err()
            .contains("empty placeholder"));
        let t = Template::parse("{context}").unwrap();
        let e = t
            .render(json!({"input": "x"}).as_object().unwrap())
            .unwrap_err();
        assert_eq!(e, "missing key `context` (the row has: input)");
    }
}
