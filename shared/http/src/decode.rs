//! Reading what callers send, JSON bodies and query strings, with answers that say which
//! field is wrong and what it should be, in the caller's language: never a parser's
//! internals (`expected u64`, `failed to parse four digit integer as year`), never more
//! than a short prefix of what was sent.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::problem::Problem;

/// Longest field name or value quoted back in an answer, in characters.
const QUOTE_MAX: usize = 40;

fn quote(s: &str) -> String {
    if s.chars().count() <= QUOTE_MAX {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(QUOTE_MAX).collect();
        out.push('…');
        out
    }
}

/// What a serde "expected …" means to a person, in Vietnamese and English.
fn expected(what: &str) -> (&'static str, &'static str) {
    let w = what.to_ascii_lowercase();
    if ["u8", "u16", "u32", "u64", "usize"]
        .iter()
        .any(|t| w.contains(t))
    {
        ("một số nguyên không âm", "a whole number, 0 or more")
    } else if ["i8", "i16", "i32", "i64", "isize", "integer"]
        .iter()
        .any(|t| w.contains(t))
    {
        ("một số nguyên", "a whole number")
    } else if w.contains("f64") || w.contains("f32") {
        ("một số", "a number")
    } else if w.contains("uuid") {
        ("một mã UUID", "a UUID")
    } else if w.contains("string") || w.contains("str") {
        ("một chuỗi ký tự", "text")
    } else if w.contains("bool") {
        ("true hoặc false", "true or false")
    } else if w.contains("sequence") || w.contains("tuple") {
        ("một danh sách", "a list")
    } else if w.contains("struct") || w.contains("map") {
        ("một đối tượng JSON", "a JSON object")
    } else {
        ("một giá trị hợp lệ", "a valid value")
    }
}

/// The part of `msg` between the first pair of backticks.
fn ticked(msg: &str) -> Option<&str> {
    let start = msg.find('`')? + 1;
    let len = msg[start..].find('`')?;
    Some(&msg[start..start + len])
}

/// Every name in backticks after "expected" (`a`, `a` or `b`, one of `a`, `b`, `c`).
fn choices(msg: &str) -> Vec<String> {
    // The last ", expected": the caller's value (quoted first) may hold the words too.
    msg.rsplit_once(", expected ")
        .map(|(_, rest)| {
            rest.split('`')
                .skip(1)
                .step_by(2)
                .map(quote)
                .take(20)
                .collect()
        })
        .unwrap_or_default()
}

/// A problem naming the field at `path` and what is wrong with it, from serde's message.
/// `field` is how the path is shown (`form.copies`, `documents[0].code`); empty for the
/// whole body.
pub fn field_problem(status: StatusCode, kind: &'static str, path: &str, msg: &str) -> Problem {
    let (title_vi, title_en) = if status == StatusCode::BAD_REQUEST {
        ("Tham số không hợp lệ", "Invalid parameter")
    } else {
        (
            "Nội dung yêu cầu không đúng cấu trúc",
            "The body does not have the expected shape",
        )
    };
    // Paths hold what the caller sent as keys: quoted short too.
    let path = &quote(path);
    let join = |name: &str| {
        let name = quote(name);
        if path.is_empty() {
            name
        } else {
            format!("{path}.{name}")
        }
    };
    let whole = path.is_empty();
    let shown = if whole { String::new() } else { quote(path) };
    let (field, vi, en) = if msg.starts_with("missing field") {
        let f = join(ticked(msg).unwrap_or("?"));
        (
            f.clone(),
            format!("Thiếu trường '{f}'"),
            format!("Field '{f}' is missing"),
        )
    } else if msg.starts_with("unknown field") {
        // The path already ends with the unknown field.
        let f = if whole {
            quote(ticked(msg).unwrap_or("?"))
        } else {
            shown.clone()
        };
        (
            f.clone(),
            format!("Trường '{f}' không được chấp nhận"),
            format!("Field '{f}' is not accepted"),
        )
    } else if msg.starts_with("duplicate field") {
        let f = join(ticked(msg).unwrap_or("?"));
        (
            f.clone(),
            format!("Trường '{f}' được gửi nhiều lần"),
            format!("Field '{f}' is given more than once"),
        )
    } else if msg.starts_with("unknown variant") {
        let list = choices(msg).join(", ");
        (
            shown.clone(),
            format!("Trường '{shown}' phải là một trong: {list}"),
            format!("Field '{shown}' must be one of: {list}"),
        )
    } else if let Some((_, what)) = msg
        .split_once(", expected ")
        .filter(|_| msg.starts_with("invalid"))
    {
        let (vi, en) = expected(what);
        if whole {
            (
                shown.clone(),
                format!("Nội dung phải là {vi}"),
                format!("The body must be {en}"),
            )
        } else {
            (
                shown.clone(),
                format!("Trường '{shown}' phải là {vi}"),
                format!("Field '{shown}' must be {en}"),
            )
        }
    } else {
        // A value a type refused in its own words (dates, codes): say which field.
        let date = shown.contains("date")
            || ["year", "month", "day", "date"]
                .iter()
                .any(|w| msg.to_ascii_lowercase().contains(w));
        let lower = msg.to_ascii_lowercase();
        let (vi, en) = if date {
            ("một ngày dạng YYYY-MM-DD", "a date YYYY-MM-DD")
        } else if lower.contains("digit") || lower.contains("integer") {
            // Integer parsing of a text value (query strings).
            ("một số nguyên không âm", "a whole number, 0 or more")
        } else if lower.contains("float") {
            ("một số", "a number")
        } else if lower.contains("bool") {
            ("true hoặc false", "true or false")
        } else {
            ("một giá trị hợp lệ", "a valid value")
        };
        (
            shown.clone(),
            format!("Trường '{shown}' phải là {vi}"),
            format!("Field '{shown}' must be {en}"),
        )
    };
    Problem::new(status, kind, title_vi, title_en)
        .detail(vi, en)
        .extra("field", json!(field))
}

/// The path serde_path_to_error reports, as shown to callers (`documents[0].code`).
fn shown_path(path: &serde_path_to_error::Path) -> String {
    let p = path.to_string();
    if p == "." { String::new() } else { p }
}

/// Parses JSON: syntax errors are 400 (`malformed-json`, with line and column), a shape
/// that does not fit the type is 422 (`invalid-body`) naming the field and what it should
/// be.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed-json",
            "JSON không hợp lệ",
            "Malformed JSON",
        )
        .detail(
            format!(
                "Nội dung không phải JSON hợp lệ (dòng {}, cột {})",
                e.line(),
                e.column()
            ),
            format!(
                "The body is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })?;
    from_value(&value, bytes.len())
}

/// Largest body, and most top-level fields, for which a lost path is searched for (each
/// try decodes the body again).
const CULPRIT_MAX_BYTES: usize = 16 * 1024;
const CULPRIT_MAX_FIELDS: usize = 32;

/// [`parse_json`] for a body already parsed as JSON (`body_len` its size in bytes).
pub fn from_value<T: DeserializeOwned>(
    value: &serde_json::Value,
    body_len: usize,
) -> Result<T, Problem> {
    // Every body here is an object. serde reads a list into a struct too (by position), so
    // `[]` would pass as a struct of optional fields: a PATCH that changes nothing, 200.
    let Some(object) = value.as_object() else {
        return Err(field_problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-body",
            "",
            "invalid type: not an object, expected a map",
        ));
    };
    serde_path_to_error::deserialize(value).map_err(|e| {
        let msg = e.inner().to_string();
        let mut path = shown_path(e.path());
        if path.is_empty() && body_len <= CULPRIT_MAX_BYTES && object.len() <= CULPRIT_MAX_FIELDS {
            path = culprit::<T>(object, &msg).unwrap_or_default();
        }
        field_problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-body",
            &path,
            &msg,
        )
    })
}

/// The top-level field a value error is about, where serde lost the path (internally
/// tagged enums buffer their content): the field whose removal turns the error into
/// "missing field" or into success. Only tried on errors of small bodies.
fn culprit<T: DeserializeOwned>(
    object: &serde_json::Map<String, serde_json::Value>,
    msg: &str,
) -> Option<String> {
    if msg.starts_with("missing field") || msg.starts_with("unknown field") {
        return None;
    }
    object.keys().find_map(|key| {
        let mut without = object.clone();
        without.remove(key);
        match serde_json::from_value::<T>(serde_json::Value::Object(without)) {
            Ok(_) => Some(key.clone()),
            Err(e) if e.to_string().starts_with(&format!("missing field `{key}`")) => {
                // Not the enum's tag: another value there is an unknown variant.
                let mut other = object.clone();
                other.insert(key.clone(), serde_json::Value::String("\u{1}".into()));
                let tag = serde_json::from_value::<T>(serde_json::Value::Object(other))
                    .is_err_and(|e| e.to_string().starts_with("unknown variant"));
                (!tag).then(|| key.clone())
            }
            Err(_) => None,
        }
    })
}

/// Parses a query string: a parameter that does not fit is 400 naming it.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, Problem> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        field_problem(
            StatusCode::BAD_REQUEST,
            "bad-request",
            &shown_path(e.path()),
            &e.inner().to_string(),
        )
    })
}

/// A page size as documented: `default` when absent; outside 1–`max` a problem naming
/// `limit` and its bounds (never quietly clamped: a client asking for 500 learns it gets
/// at most `max`), with `status` 400 for a query parameter, 422 for a body field.
pub fn page_limit(
    raw: Option<u32>,
    default: u32,
    max: u32,
    status: StatusCode,
) -> Result<u32, Problem> {
    match raw {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(_) => {
            let (kind, vi, en) = if status == StatusCode::BAD_REQUEST {
                ("bad-request", "Tham số không hợp lệ", "Invalid parameter")
            } else {
                (
                    "invalid-body",
                    "Nội dung yêu cầu không đúng cấu trúc",
                    "The body does not have the expected shape",
                )
            };
            Err(Problem::new(status, kind, vi, en)
                .detail(
                    format!("Trường 'limit' phải từ 1 đến {max}"),
                    format!("Field 'limit' must be between 1 and {max}"),
                )
                .extra("field", json!("limit")))
        }
    }
}

/// A query string parsed by [`parse_query`]: a bad parameter gets an answer that names it
/// (axum's `Query` answers a bare 400).
#[derive(Debug, Clone)]
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        parse_query(parts.uri.query().unwrap_or_default()).map(QueryParams)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_is_not_a_body_even_for_a_struct_of_optional_fields() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Patch {
            email: Option<String>,
            phone: Option<String>,
        }
        for body in [&b"[]"[..], b"[\"a@example.vn\"]", b"\"x\"", b"null"] {
            let p = parse_json::<Patch>(body).unwrap_err();
            assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
        }
        assert!(parse_json::<Patch>(b"{}").is_ok());
    }

    #[test]
    fn a_page_limit_outside_its_bounds_is_refused_not_clamped() {
        let q = StatusCode::BAD_REQUEST;
        assert_eq!(page_limit(None, 20, 100, q).unwrap(), 20);
        assert_eq!(page_limit(Some(1), 20, 100, q).unwrap(), 1);
        assert_eq!(page_limit(Some(100), 20, 100, q).unwrap(), 100);
        for bad in [0, 101, 2_147_483_648] {
            let p = page_limit(Some(bad), 20, 100, q).unwrap_err();
            assert_eq!(p.status, q, "{bad}");
            // The answer says the bounds (review finding: it said "a valid value").
            let en = serde_json::to_string(&p.body(motcua_domain::Lang::En)).unwrap();
            assert!(en.contains("between 1 and 100"), "{en}");
        }
        let body = StatusCode::UNPROCESSABLE_ENTITY;
        assert_eq!(
            page_limit(Some(0), 100, 1000, body).unwrap_err().status,
            body
        );
    }
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        copies: u64,
        due: Option<jiff::civil::Date>,
        kind: Option<Kind>,
        items: Option<Vec<Item>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Paper,
        Electronic,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Item {
        code: String,
    }

    fn problem_of(json: &str) -> serde_json::Value {
        parse_json::<Body>(json.as_bytes())
            .unwrap_err()
            .body(motcua_domain::Lang::En)
    }

    fn vi_of(json: &str) -> serde_json::Value {
        parse_json::<Body>(json.as_bytes())
            .unwrap_err()
            .body(motcua_domain::Lang::Vi)
    }

    #[test]
    fn shape_errors_name_the_field_in_the_callers_language() {
        let p = problem_of(r#"{"name": "x", "copies": -5}"#);
        assert_eq!(
            p["detail"],
            "Field 'copies' must be a whole number, 0 or more"
        );
        assert_eq!(p["field"], "copies");
        let p = vi_of(r#"{"name": "x", "copies": "two"}"#);
        assert_eq!(
            p["detail"],
            "Trường 'copies' phải là một số nguyên không âm"
        );
        let p = problem_of(r#"{"name": "x", "copies": 1, "due": "someday"}"#);
        assert_eq!(p["detail"], "Field 'due' must be a date YYYY-MM-DD");
        let p = problem_of(r#"{"copies": 1}"#);
        assert_eq!(p["detail"], "Field 'name' is missing");
        let p = problem_of(r#"{"name": "x", "copies": 1, "kind": "fax"}"#);
        assert_eq!(
            p["detail"],
            "Field 'kind' must be one of: paper, electronic"
        );
        let p = problem_of(r#"{"name": "x", "copies": 1, "items": [{"code": 7}]}"#);
        assert_eq!(p["detail"], "Field 'items[0].code' must be text");
        let p = problem_of("[1]");
        assert_eq!(p["detail"], "The body must be a JSON object");
        for p in [
            problem_of(r#"{"name": "x", "copies": -5}"#),
            problem_of(r#"{"name": "x", "copies": 1, "due": "someday"}"#),
        ] {
            let text = p.to_string();
            for internal in ["u64", "invalid type", "four digit", "struct"] {
                assert!(!text.contains(internal), "{internal} in {text}");
            }
        }
    }

    #[derive(Debug, Deserialize)]
    #[serde(tag = "action", rename_all = "snake_case")]
    #[allow(dead_code)]
    enum Tagged {
        Extend {
            new_due_date: jiff::civil::Date,
            reason: String,
        },
        Pay {
            amount: Option<u64>,
        },
    }

    #[test]
    fn a_field_inside_an_internally_tagged_enum_is_named_too() {
        let p = parse_json::<Tagged>(
            br#"{"action": "extend", "new_due_date": "someday", "reason": "x"}"#,
        )
        .unwrap_err()
        .body(motcua_domain::Lang::En);
        assert_eq!(
            p["detail"],
            "Field 'new_due_date' must be a date YYYY-MM-DD"
        );
        let p = parse_json::<Tagged>(br#"{"action": "pay", "amount": "lots"}"#)
            .unwrap_err()
            .body(motcua_domain::Lang::En);
        assert_eq!(
            p["detail"],
            "Field 'amount' must be a whole number, 0 or more"
        );
    }

    #[test]
    fn review_findings_on_messages() {
        // An unknown field is named once.
        let p = problem_of(r#"{"name": "x", "copies": 1, "zzz": 1}"#);
        assert_eq!(p["detail"], "Field 'zzz' is not accepted");
        // The caller's value cannot add to the list of allowed values.
        let p = problem_of(
            r#"{"name": "x", "copies": 1, "kind": "a`, expected `SELECT * FROM users"}"#,
        );
        assert_eq!(
            p["detail"],
            "Field 'kind' must be one of: paper, electronic"
        );
        // A repeated query parameter is named.
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Q {
            limit: Option<u32>,
        }
        let b = parse_query::<Q>("limit=1&limit=2")
            .unwrap_err()
            .body(motcua_domain::Lang::En);
        assert_eq!(b["detail"], "Field 'limit' is given more than once");
    }

    #[test]
    fn a_large_bad_body_is_not_decoded_again_and_again() {
        // Sixty-three bulky fields and a bad date in an internally tagged body: the lost
        // path is not searched for (each try decodes the whole body again).
        let mut body = serde_json::Map::new();
        body.insert("action".into(), "extend".into());
        body.insert("new_due_date".into(), "someday".into());
        body.insert("reason".into(), "x".into());
        for i in 0..63 {
            body.insert(format!("extra{i}"), "y".repeat(3000).into());
        }
        let bytes = serde_json::to_vec(&body).unwrap();
        assert!(bytes.len() > CULPRIT_MAX_BYTES);
        let p = parse_json::<Tagged>(&bytes)
            .unwrap_err()
            .body(motcua_domain::Lang::En);
        assert_eq!(p["status"], 422);
        assert_eq!(p["field"], "");
    }

    #[test]
    fn unbounded_input_is_not_quoted_back() {
        let long = "z".repeat(60_000);
        let p = problem_of(&format!(r#"{{"name": "x", "copies": 1, "{long}": 1}}"#));
        assert!(p.to_string().len() < 400, "{}", p.to_string().len());
        assert!(p["detail"].as_str().unwrap().starts_with("Field 'zzzz"));
    }

    #[test]
    fn query_parameters_are_named_too() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Q {
            limit: Option<u32>,
        }
        let p = parse_query::<Q>("limit=abc").unwrap_err();
        let b = p.body(motcua_domain::Lang::En);
        assert_eq!(b["status"], 400);
        assert_eq!(
            b["detail"],
            "Field 'limit' must be a whole number, 0 or more"
        );
        assert_eq!(parse_query::<Q>("limit=5").unwrap().limit, Some(5));
    }
}
