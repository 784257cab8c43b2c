//! Markdown and JSON output (a tiny JSON writer: no serde in the dev-dependencies).

use std::fmt::{self, Write as _};
use std::fs;
use std::path::Path;

pub(crate) enum J {
    Num(f64),
    Int(i128),
    Str(String),
    Bool(bool),
    Arr(Vec<Self>),
    Obj(Vec<(&'static str, Self)>),
}

impl fmt::Display for J {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Num(x) if x.is_finite() => write!(f, "{x}"),
            Self::Num(_) => f.write_str("null"),
            Self::Int(i) => write!(f, "{i}"),
            Self::Bool(b) => write!(f, "{b}"),
            Self::Str(s) => {
                f.write_char('"')?;
                for c in s.chars() {
                    match c {
                        '"' => f.write_str("\\\"")?,
                        '\\' => f.write_str("\\\\")?,
                        c if (c as u32) < 0x20 => write!(f, "\\u{:04x}", c as u32)?,
                        c => f.write_char(c)?,
                    }
                }
                f.write_char('"')
            }
            Self::Arr(items) => {
                f.write_char('[')?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_char(']')
            }
            Self::Obj(fields) => {
                f.write_char('{')?;
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    write!(f, "{}:{v}", Self::Str((*k).to_owned()))?;
                }
                f.write_char('}')
            }
        }
    }
}

pub(crate) fn int(v: impl Into<i128>) -> J {
    J::Int(v.into())
}

pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

pub(crate) fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

pub(crate) struct Report {
    pub(crate) md: String,
    pub(crate) json: Vec<(&'static str, J)>,
    pub(crate) targets: Vec<Target>,
}

pub(crate) struct Target {
    pub(crate) name: String,
    pub(crate) goal: String,
    pub(crate) reached: String,
    pub(crate) met: bool,
}

impl Report {
    pub(crate) fn say(&mut self, line: impl AsRef<str>) {
        println!("{}", line.as_ref());
        self.md.push_str(line.as_ref());
        self.md.push('\n');
    }

    pub(crate) fn target(
        &mut self,
        name: impl Into<String>,
        goal: impl Into<String>,
        reached: impl Into<String>,
        met: bool,
    ) {
        self.targets.push(Target {
            name: name.into(),
            goal: goal.into(),
            reached: reached.into(),
            met,
        });
    }
}

pub(crate) fn progress(message: impl fmt::Display) {
    eprintln!("[handshake bench] {message}");
}

pub(crate) fn write_outputs(out: &Path, name: &str, json: &J, md: &str) {
    fs::create_dir_all(out).unwrap();
    let json_path = out.join(format!("{name}.json"));
    fs::write(&json_path, format!("{json}\n")).unwrap();
    fs::write(out.join(format!("{name}.md")), md).unwrap();
    progress(format_args!("wrote {} and {name}.md", json_path.display()));
}
