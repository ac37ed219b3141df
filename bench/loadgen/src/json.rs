//! Just enough JSON writing for one report object: no dependency for a few dozen fields.

use std::fmt::Write as _;

/// An object being written; nested objects are written by closures.
#[derive(Debug)]
pub struct Object<'a> {
    out: &'a mut String,
    empty: bool,
}

impl<'a> Object<'a> {
    /// Writes `{`, the fields `fill` adds, and `}` to `out`.
    pub fn write(out: &'a mut String, fill: impl FnOnce(&mut Object<'_>)) {
        out.push('{');
        let mut object = Object { out, empty: true };
        fill(&mut object);
        object.out.push('}');
    }

    fn key(&mut self, key: &str) {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        string(self.out, key);
        self.out.push(':');
    }

    pub fn uint(&mut self, key: &str, v: u64) {
        self.key(key);
        write!(self.out, "{v}").ok();
    }

    /// A number rounded to `decimals` places; `null` if it is not finite.
    pub fn float(&mut self, key: &str, v: f64, decimals: usize) {
        self.key(key);
        if v.is_finite() {
            write!(self.out, "{v:.decimals$}").ok();
        } else {
            self.out.push_str("null");
        }
    }

    pub fn opt_float(&mut self, key: &str, v: Option<f64>, decimals: usize) {
        match v {
            Some(v) => self.float(key, v, decimals),
            None => self.null(key),
        }
    }

    pub fn str(&mut self, key: &str, v: &str) {
        self.key(key);
        string(self.out, v);
    }

    pub fn opt_str(&mut self, key: &str, v: Option<&str>) {
        match v {
            Some(v) => self.str(key, v),
            None => self.null(key),
        }
    }

    pub fn bool(&mut self, key: &str, v: bool) {
        self.key(key);
        self.out.push_str(if v { "true" } else { "false" });
    }

    pub fn null(&mut self, key: &str) {
        self.key(key);
        self.out.push_str("null");
    }

    pub fn object(&mut self, key: &str, fill: impl FnOnce(&mut Object<'_>)) {
        self.key(key);
        Object::write(self.out, fill);
    }
}

/// A JSON string: quotes, backslashes and control characters escaped.
fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                write!(out, "\\u{:04x}", u32::from(c)).ok();
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_nested_objects_and_escapes() {
        let mut out = String::new();
        Object::write(&mut out, |o| {
            o.uint("n", 3);
            o.float("f", 1.75, 1);
            o.float("nan", f64::NAN, 1);
            o.opt_float("none", None, 1);
            o.str("s", "a\"b\\c\n\u{1}é");
            o.object("inner", |o| o.opt_str("x", None));
            o.object("empty", |_| {});
        });
        assert_eq!(
            out,
            r#"{"n":3,"f":1.8,"nan":null,"none":null,"s":"a\"b\\c\n\u0001é","inner":{"x":null},"empty":{}}"#
        );
    }
}
