//! Structured output: a small JSON Schema subset that a reply must match, enforced while
//! decoding rather than hoped for.
//!
//! The embedded backend compiles a [`Schema`] to a GBNF grammar that llama.cpp's grammar
//! sampler applies to every token our [`Sampler`](crate::Sampler) picks, so the text always
//! parses; an OpenAI-compatible server gets the same schema as a strict `json_schema`
//! response format, and its answer is checked against it with [`Schema::check`].
//!
//! The subset is what write-ups need: objects whose properties are all required and closed,
//! arrays and strings with length bounds. Bounds are what guarantee that decoding ends.

use serde_json::{Value, json};

/// A JSON Schema, in the subset the decoder enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schema {
    /// A string of `min..=max` characters (an escape counts as one).
    String {
        /// Fewest characters.
        min: usize,
        /// Most characters.
        max: usize,
    },
    /// An array of `min..=max` items.
    Array {
        /// Each item's schema.
        items: Box<Schema>,
        /// Fewest items.
        min: usize,
        /// Most items.
        max: usize,
    },
    /// An object with exactly these properties, in this order.
    Object(Vec<(String, Schema)>),
}

/// Structured output asked of a generation: a schema and the name servers know it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Structured {
    /// A short name (`quest_write_up`).
    pub name: String,
    /// What the output must be.
    pub schema: Schema,
}

impl Schema {
    /// The schema as JSON Schema (draft 2020-12), as OpenAI's strict structured outputs take it.
    pub fn to_json_schema(&self) -> Value {
        match self {
            Schema::String { min, max } => {
                json!({ "type": "string", "minLength": min, "maxLength": max })
            }
            Schema::Array { items, min, max } => json!({
                "type": "array",
                "items": items.to_json_schema(),
                "minItems": min,
                "maxItems": max,
            }),
            Schema::Object(properties) => json!({
                "type": "object",
                "properties": properties
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json_schema()))
                    .collect::<serde_json::Map<_, _>>(),
                "required": properties.iter().map(|(k, _)| k).collect::<Vec<_>>(),
                "additionalProperties": false,
            }),
        }
    }

    /// The schema as a GBNF grammar for llama.cpp, with its start rule `root`.
    pub fn to_gbnf(&self) -> String {
        let mut rules = Vec::new();
        let root = self.rule(&mut rules);
        let mut out = format!("root ::= {root}\n");
        for (i, body) in rules.iter().enumerate() {
            out.push_str(&format!("r{i} ::= {body}\n"));
        }
        // One optional space between tokens: JSON's whitespace, bounded so that a model
        // cannot spend its budget on it.
        out.push_str("ws ::= \" \"?\n");
        out.push_str(
            "char ::= [^\"\\\\\\x00-\\x1F\\x7F] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4})\n",
        );
        out
    }

    /// Adds the rules this schema needs and returns the name of its own.
    fn rule(&self, rules: &mut Vec<String>) -> String {
        let body = match self {
            Schema::String { min, max } => format!("\"\\\"\" char{{{min},{max}}} \"\\\"\""),
            Schema::Array { items, min, max } => {
                let item = items.rule(rules);
                let more = format!("(ws \",\" ws {item})");
                match (*min, *max) {
                    (_, 0) => "\"[\" ws \"]\"".to_owned(),
                    (0, max) => format!("\"[\" ws ({item} {more}{{0,{}}})? ws \"]\"", max - 1),
                    (min, max) => format!(
                        "\"[\" ws {item} {more}{{{},{}}} ws \"]\"",
                        min - 1,
                        max.max(min) - 1
                    ),
                }
            }
            Schema::Object(properties) => {
                let mut body = "\"{\" ws".to_owned();
                for (i, (key, value)) in properties.iter().enumerate() {
                    let value = value.rule(rules);
                    if i > 0 {
                        body.push_str(" \",\" ws");
                    }
                    body.push_str(&format!(" {} ws \":\" ws {value} ws", gbnf_literal(key)));
                }
                body.push_str(" \"}\"");
                body
            }
        };
        rules.push(body);
        format!("r{}", rules.len() - 1)
    }

    /// Whether `value` matches; if not, where (a JSON path) and how.
    pub fn check(&self, value: &Value) -> Result<(), String> {
        self.check_at(value, "$")
    }

    fn check_at(&self, value: &Value, at: &str) -> Result<(), String> {
        match (self, value) {
            (Schema::String { min, max }, Value::String(s)) => {
                let n = s.chars().count();
                if n < *min || n > *max {
                    return Err(format!("{at}: {n} characters, expected {min} to {max}"));
                }
            }
            (Schema::Array { items, min, max }, Value::Array(values)) => {
                if values.len() < *min || values.len() > *max {
                    return Err(format!(
                        "{at}: {} items, expected {min} to {max}",
                        values.len()
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    items.check_at(v, &format!("{at}[{i}]"))?;
                }
            }
            (Schema::Object(properties), Value::Object(map)) => {
                for (key, schema) in properties {
                    let v = map
                        .get(key)
                        .ok_or_else(|| format!("{at}: missing property {key:?}"))?;
                    schema.check_at(v, &format!("{at}.{key}"))?;
                }
                if let Some(extra) = map
                    .keys()
                    .find(|k| !properties.iter().any(|(p, _)| p == *k))
                {
                    return Err(format!("{at}: unexpected property {extra:?}"));
                }
            }
            (expected, _) => {
                let kind = match expected {
                    Schema::String { .. } => "a string",
                    Schema::Array { .. } => "an array",
                    Schema::Object(_) => "an object",
                };
                return Err(format!("{at}: expected {kind}"));
            }
        }
        Ok(())
    }
}

/// `text` as a GBNF string literal that matches its JSON encoding (`"title"` → `"\"title\""`).
fn gbnf_literal(text: &str) -> String {
    let json = Value::String(text.to_owned()).to_string();
    let mut out = String::with_capacity(json.len() + 4);
    out.push('"');
    for c in json.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_up() -> Schema {
        Schema::Object(vec![
            ("title".into(), Schema::String { min: 1, max: 60 }),
            (
                "lines".into(),
                Schema::Array {
                    items: Box::new(Schema::String { min: 1, max: 100 }),
                    min: 1,
                    max: 3,
                },
            ),
        ])
    }

    #[test]
    fn grammar_spells_keys_bounds_and_separators() {
        let gbnf = write_up().to_gbnf();
        assert!(gbnf.starts_with("root ::= r3\n"), "{gbnf}");
        assert!(
            gbnf.contains("r0 ::= \"\\\"\" char{1,60} \"\\\"\""),
            "{gbnf}"
        );
        assert!(
            gbnf.contains("\"[\" ws r1 (ws \",\" ws r1){0,2} ws \"]\""),
            "{gbnf}"
        );
        assert!(gbnf.contains("\"\\\"title\\\"\" ws \":\" ws r0"), "{gbnf}");
    }

    #[test]
    fn json_schema_is_closed_and_requires_every_property() {
        let schema = write_up().to_json_schema();
        assert_eq!(schema["required"], json!(["title", "lines"]));
        assert_eq!(schema["additionalProperties"], json!(false));
        assert_eq!(schema["properties"]["lines"]["maxItems"], json!(3));
    }

    #[test]
    fn check_names_the_path_that_fails() {
        let schema = write_up();
        assert_eq!(
            schema.check(&json!({"title": "The Lost Lamp", "lines": ["Go."]})),
            Ok(())
        );
        assert_eq!(
            schema.check(&json!({"title": "", "lines": ["Go."]})),
            Err("$.title: 0 characters, expected 1 to 60".into())
        );
        assert_eq!(
            schema.check(&json!({"title": "T", "lines": ["a", 3]})),
            Err("$.lines[1]: expected a string".into())
        );
        assert_eq!(
            schema.check(&json!({"title": "T", "lines": [], "x": 1})),
            Err("$.lines: 0 items, expected 1 to 3".into())
        );
        assert_eq!(
            schema.check(&json!({"title": "T", "lines": ["a"], "x": 1})),
            Err("$: unexpected property \"x\"".into())
        );
    }
}
