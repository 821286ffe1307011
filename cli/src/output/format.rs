//! `--format` as Docker users write it: Go templates (via gtmpl, Go's text/template for Rust, so
//! `{{range}}`, `{{index .Config.Labels "k"}}`, pipelines and comparisons behave as they know them),
//! Docker's extra functions (`json`, `upper`, `lower`, `join`), a `table` prefix that adds a header
//! row and aligns columns, and the shorthand `json`. Values print as Go prints them (`[a b]`,
//! `map[k:v]`), and Docker's `{{.Label "k"}}` method works on `ps` rows.

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

/// Go's `%v` of a value: lists as `[a b]`, maps as `map[k:v]` (keys sorted, as Go does), nil
/// as `<nil>` — what Docker prints for `{{.Config.Cmd}}`, not Rust's debug form.
fn go_text(v: &Value) -> String {
    match v {
        Value::Nil => "<nil>".into(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_text).collect::<Vec<_>>().join(" ")),
        Value::Object(o) | Value::Map(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k}:{}", go_text(&o[k])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
        other => other.to_string(),
    }
}

/// The last stage of every printing action (added by [`prepare`]): prints as Go would.
fn f_goprint(args: &[Value]) -> Result<Value, FuncError> {
    let v = args
        .last()
        .ok_or_else(|| FuncError::ExactlyXArgs(GOPRINT.into(), 1))?;
    Ok(match v {
        Value::String(_) => v.clone(),
        other => Value::String(go_text(other)),
    })
}

/// `{{.Label "k"}}` on a `ps` row (rewritten to `(__label $ "k")`): the value of label k, from
/// the row's `Labels` (`k=v,k2=v2`), or empty.
fn f_label(args: &[Value]) -> Result<Value, FuncError> {
    let (Some(Value::Object(row)), Some(Value::String(key))) = (args.first(), args.get(1)) else {
        return Err(FuncError::ExactlyXArgs("Label".into(), 1));
    };
    let found = match row.get("Labels") {
        Some(Value::String(all)) => all
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.to_string()),
        Some(Value::Object(m)) | Some(Value::Map(m)) => m.get(key).map(go_text),
        _ => None,
    };
    Ok(Value::String(found.unwrap_or_default()))
}

/// Name of the printing function [`prepare`] appends.
const GOPRINT: &str = "__goprint";

/// Actions that print nothing themselves, left as they are by [`prepare`].
const CONTROL: &[&str] = &[
    "if", "else", "end", "range", "with", "define", "template", "block", "break", "continue",
];

/// Rewrites each printing action of a template so its value prints as Go prints it (` |
/// __goprint` at the end of its pipeline) and Docker's `.Label "k"` method becomes a function
/// call gtmpl can make. Control actions, comments and variable assignments are left alone.
fn prepare(t: &str) -> String {
    let mut out = String::new();
    let mut rest = t;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(len) = action_len(after) else {
            out.push_str(&rest[open..]);
            return out;
        };
        let body = &after[..len];
        out.push_str("{{");
        out.push_str(&rewrite_action(body));
        out.push_str("}}");
        rest = &after[len + 2..];
    }
    out.push_str(rest);
    out
}

/// The length of an action's body up to its closing `}}` (quotes respected), if closed.
fn action_len(a: &str) -> Option<usize> {
    let b = a.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < b.len() {
        match (quote, b[i]) {
            (Some(q), c) if c == q => quote = None,
            (Some(b'"'), b'\\') => i += 1,
            (Some(_), _) => {}
            (None, c @ (b'"' | b'`' | b'\'')) => quote = Some(c),
            (None, b'}') if b.get(i + 1) == Some(&b'}') => return Some(i),
            (None, _) => {}
        }
        i += 1;
    }
    None
}

fn rewrite_action(body: &str) -> String {
    // Trim markers stay where they are: `{{- ` and ` -}}`.
    let (lead, inner) = match body.strip_prefix('-') {
        Some(r) if r.starts_with(char::is_whitespace) => ("-", r),
        _ => ("", body),
    };
    let trimmed_end = inner.trim_end();
    let (inner, trail) = match trimmed_end.strip_suffix('-') {
        Some(r) if r.ends_with(char::is_whitespace) => (r, " -"),
        _ => (inner, ""),
    };
    let words: Vec<&str> = inner.split_whitespace().collect();
    let first = words.first().copied().unwrap_or("");
    let assigns = first.starts_with('$') && matches!(words.get(1).copied(), Some(":=") | Some("="));
    let inner = with_label_calls(inner);
    if first.is_empty() || first.starts_with("/*") || CONTROL.contains(&first) || assigns {
        return format!("{lead}{inner}{trail}");
    }
    format!("{lead}{} | {GOPRINT}{trail}", inner.trim_end())
}

/// `.Label "k"` → `(__label $ "k")`, outside quoted strings.
fn with_label_calls(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some(at) = rest.find(".Label") {
        let before = &rest[..at];
        let tail = &rest[at + ".Label".len()..];
        let starts_field = before
            .chars()
            .last()
            .is_none_or(|c| c.is_whitespace() || c == '(' || c == '|');
        let arg = tail.trim_start();
        let in_quotes = before.matches('"').count() % 2 == 1;
        if starts_field
            && !in_quotes
            && tail.starts_with(char::is_whitespace)
            && arg.starts_with('"')
        {
            if let Some(end) = arg[1..].find('"') {
                out.push_str(before);
                out.push_str(&format!("(__label $ {})", &arg[..end + 2]));
                rest = &arg[end + 2..];
                continue;
            }
        }
        out.push_str(&rest[..at + ".Label".len()]);
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// A parsed `--format`.
pub struct Format {
    tmpl: gtmpl::Template,
    header: Option<String>,
}

/// What every `inspect` prints: each document through `--format`, or all of them as one
/// pretty JSON array.
pub fn print_docs(format: Option<&str>, docs: &[serde_json::Value]) -> Result<()> {
    match format {
        Some(t) => {
            let f = Format::parse(t, &HashMap::new())?;
            for d in docs {
                println!("{}", f.render(d)?);
            }
        }
        None => println!("{}", serde_json::to_string_pretty(docs)?),
    }
    Ok(())
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
            (GOPRINT, f_goprint),
            ("__label", f_label),
        ]);
        tmpl.parse(prepare(&body))
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
            .map_err(|e| match e {
                // Its own text dumps the whole object the field was looked up in.
                gtmpl::error::ExecError::NoFiledFor(f, _) => {
                    anyhow!("template: no field {f:?} there: check its name and capitals against the JSON output without --format")
                }
                e => anyhow!("template: {e}"),
            })
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
            crate::output::table::print_aligned(&lines);
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
    fn values_print_as_go_prints_them() {
        let v = serde_json::json!({"Config": {"Cmd": ["python3", "-m", "http.server"], "Labels": {"b": "2", "a": "1"}, "N": null, "E": []}, "Labels": "app=web,tier=db"});
        assert_eq!(r("{{.Config.Cmd}}", v.clone()), "[python3 -m http.server]");
        assert_eq!(r("{{.Config.Labels}}", v.clone()), "map[a:1 b:2]");
        assert_eq!(r("{{.Config.E}} {{.Config.N}}", v.clone()), "[] <nil>");
        assert_eq!(
            r(
                "{{range $i, $c := .Config.Cmd}}{{$i}}={{$c}} {{end}}",
                v.clone()
            ),
            "0=python3 1=-m 2=http.server "
        );
        assert_eq!(
            r("{{- .Config.Cmd -}}", v.clone()),
            "[python3 -m http.server]"
        );
        assert_eq!(
            r(r#"{{.Label "tier"}}/{{.Label "none"}}"#, v.clone()),
            "db/"
        );
        assert_eq!(
            r(r#"{{if eq (.Label "app") "web"}}yes{{end}}"#, v.clone()),
            "yes"
        );
        assert_eq!(r(r#"{{".Label \"x\""}}"#, v), r#".Label "x""#);
    }

    #[test]
    fn an_unknown_field_is_named_not_dumped() {
        let v = serde_json::json!({"HostConfig": {"PidsLimit": 5}});
        let e = Format::parse("{{.HostConfig.Binds}}", &HashMap::new())
            .unwrap()
            .render(&v)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no field \"Binds\""), "{e}");
        assert!(!e.contains("PidsLimit"), "{e}");
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
