//! `--format` as Docker users write it: Go templates (via gtmpl, Go's text/template for Rust, so
//! `{{range}}`, `{{index .Config.Labels "k"}}`, pipelines and comparisons behave as they know them),
//! Docker's extra functions (`json`, `upper`, `lower`, `join`), a `table` prefix that adds a header
//! row and aligns columns, and the shorthand `json`.

use std::collections::HashMap;

use anyhow::{anyhow, Result};
use gtmpl::{FuncError, Value};

/// serde_json → template values (objects keep their field names).
pub fn to_value(j: &serde_json::Value) -> Value {
    match j {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Value::from(u),
            (_, Some(i), _) => Value::from(i),
            (_, _, Some(f)) => Value::from(f),
            _ => Value::Nil,
        },
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(a) => Value::Array(a.iter().map(to_value).collect()),
        serde_json::Value::Object(o) => {
            Value::Object(o.iter().map(|(k, v)| (k.clone(), to_value(v))).collect())
        }
    }
}

/// Template values → serde_json (for the `json` function).
fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::NoValue | Value::Nil | Value::Function(_) => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Number(n) => n
            .as_u64()
            .map(serde_json::Value::from)
            .or_else(|| n.as_i64().map(serde_json::Value::from))
            .or_else(|| n.as_f64().map(serde_json::Value::from))
            .unwrap_or(serde_json::Value::Null),
        Value::Array(a) => serde_json::Value::Array(a.iter().map(to_json).collect()),
        Value::Object(o) | Value::Map(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            serde_json::Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), to_json(&o[k])))
                    .collect(),
            )
        }
    }
}

fn f_json(args: &[Value]) -> Result<Value, FuncError> {
    let v = args
        .first()
        .ok_or_else(|| FuncError::ExactlyXArgs("json".into(), 1))?;
    Ok(Value::String(
        serde_json::to_string(&to_json(v)).unwrap_or_default(),
    ))
}

fn text(args: &[Value], name: &str) -> Result<String, FuncError> {
    match args.first() {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Ok(other.to_string()),
        None => Err(FuncError::ExactlyXArgs(name.into(), 1)),
    }
}

fn f_upper(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(text(args, "upper")?.to_uppercase()))
}

fn f_lower(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(text(args, "lower")?.to_lowercase()))
}

fn f_join(args: &[Value]) -> Result<Value, FuncError> {
    let (Some(Value::Array(a)), Some(sep)) = (args.first(), args.get(1)) else {
        return Err(FuncError::ExactlyXArgs("join".into(), 2));
    };
    let sep = match sep {
        Value::String(s) => s.clone(),
        o => o.to_string(),
    };
    Ok(Value::String(
        a.iter()
            .map(|v| {
                if let Value::String(s) = v {
                    s.clone()
                } else {
                    v.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(&sep),
    ))
}

/// A parsed `--format`.
pub struct Format {
    tmpl: gtmpl::Template,
    header: Option<String>,
}

impl Format {
    /// Parses `text`; `headers` maps field names to column titles for `table`. A bad template is
    /// an error that quotes gtmpl's message, position included.
    pub fn parse(text: &str, headers: &HashMap<&str, &str>) -> Result<Format> {
        let (body, table) = match text.strip_prefix("table") {
            Some(rest) => (rest.trim_start().to_string(), true),
            None => (text.to_string(), false),
        };
        let body = body.replace("\\t", "\t").replace("\\n", "\n");
        check_actions_closed(&body)
            .map_err(|e| anyhow!("template parsing error in {text:?}: {e}"))?;
        let mut tmpl = gtmpl::Template::default();
        tmpl.add_funcs(&[
            ("json", f_json as gtmpl::Func),
            ("upper", f_upper),
            ("lower", f_lower),
            ("join", f_join),
        ]);
        tmpl.parse(body.clone())
            .map_err(|e| anyhow!("template parsing error in {text:?}: {e}"))?;
        let header = table.then(|| {
            let mut h = body.clone();
            for (field, title) in headers {
                h = h.replace(&format!("{{{{.{field}}}}}"), title);
            }
            h
        });
        Ok(Format { tmpl, header })
    }

    /// Renders one item.
    pub fn render(&self, item: &serde_json::Value) -> Result<String> {
        self.tmpl
            .render(&gtmpl::Context::from(to_value(item)))
            .map_err(|e| anyhow!("template: {e}"))
    }

    /// Renders every item, one per line, aligned as a table when asked.
    pub fn print_all(&self, items: &[serde_json::Value]) -> Result<()> {
        let mut lines = Vec::new();
        if let Some(h) = &self.header {
            lines.push(h.clone());
        }
        for i in items {
            lines.push(self.render(i)?);
        }
        if self.header.is_some() || lines.iter().any(|l| l.contains('\t')) {
            print_aligned(&lines);
        } else {
            for l in lines {
                println!("{l}");
            }
        }
        Ok(())
    }
}

/// Every `{{` must be closed by `}}` (outside quoted strings). gtmpl 0.7 loops forever on some
/// unterminated actions (`{{.State.`), so this is checked first, with the position.
fn check_actions_closed(t: &str) -> Result<(), String> {
    let b = t.as_bytes();
    let mut i = 0;
    while i + 1 < b.len() {
        if &b[i..i + 2] != b"{{" {
            i += 1;
            continue;
        }
        let start = i;
        i += 2;
        let mut quote: Option<u8> = None;
        loop {
            if i >= b.len() {
                let col = t[..start].chars().count() + 1;
                return Err(match quote {
                    Some(_) => format!("unterminated quoted string in the action at column {col}"),
                    None => format!("unclosed action at column {col}: add }}}}"),
                });
            }
            match (quote, b[i]) {
                (Some(q), c) if c == q => quote = None,
                (Some(b'"'), b'\\') => i += 1,
                (Some(_), _) => {}
                (None, c @ (b'"' | b'`' | b'\'')) => quote = Some(c),
                (None, b'}') if b.get(i + 1) == Some(&b'}') => {
                    i += 2;
                    break;
                }
                (None, _) => {}
            }
            i += 1;
        }
    }
    Ok(())
}

/// Prints tab-separated lines as columns padded to their widest cell plus three spaces.
pub fn print_aligned(lines: &[String]) {
    let rows: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}   ", w = widths[c]));
            }
        }
        println!("{}", line.trim_end());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(t: &str, v: serde_json::Value) -> String {
        Format::parse(t, &HashMap::new())
            .unwrap()
            .render(&v)
            .unwrap()
    }

    #[test]
    fn go_templates_render_like_docker() {
        let v = serde_json::json!({"State": {"ExitCode": 3}, "Config": {"Env": ["A=1", "B=2"], "Labels": {"k": "v"}}, "Names": "web"});
        assert_eq!(r("{{.State.ExitCode}}", v.clone()), "3");
        assert_eq!(r("{{json .Config.Env}}", v.clone()), r#"["A=1","B=2"]"#);
        assert_eq!(
            r("{{range .Config.Env}}[{{.}}]{{end}}", v.clone()),
            "[A=1][B=2]"
        );
        assert_eq!(r(r#"{{index .Config.Labels "k"}}"#, v.clone()), "v");
        assert_eq!(
            r("{{upper .Names}} {{join .Config.Env \",\"}}", v),
            "WEB A=1,B=2"
        );
    }

    #[test]
    fn a_bad_template_says_where() {
        let e = Format::parse("{{.Names", &HashMap::new())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("template parsing error"), "{e}");
    }

    #[test]
    fn unclosed_actions_are_caught_before_gtmpl_sees_them() {
        let e = Format::parse("x {{.State.", &HashMap::new())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("unclosed action at column 3"), "{e}");
        let e = Format::parse("{{.A.}}", &HashMap::new())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("unexpected ."), "{e}");
        assert!(
            Format::parse(r#"{{index .L "}}"}}"#, &HashMap::new()).is_ok(),
            "braces inside strings are text"
        );
    }
}
