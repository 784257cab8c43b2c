//! The Prometheus text format 0.0.4: families, samples, label escaping.

use std::fmt::Write;

use Kind::{Counter, Gauge};

/// Builds a Prometheus text exposition, one metric family at a time.
#[derive(Debug, Default)]
pub(crate) struct Exposition {
    out: String,
}

/// The kinds of metric family this server exposes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Counter,
    Gauge,
}

impl Exposition {
    /// Starts a family with its `# HELP` and `# TYPE` lines.
    pub(crate) fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut Self {
        let kind = match kind {
            Counter => "counter",
            Gauge => "gauge",
        };
        let help = help.replace('\\', r"\\").replace('\n', r"\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        self
    }

    /// Adds a sample of the family started last.
    pub(crate) fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let value = value
                    .replace('\\', r"\\")
                    .replace('"', "\\\"")
                    .replace('\n', r"\n");
                let _ = write!(self.out, "{label}=\"{value}\"");
            }
            self.out.push('}');
        }
        self.out.push(' ');
        self.out.push_str(&format_value(value));
        self.out.push('\n');
        self
    }

    /// A family with a single unlabelled sample.
    pub(crate) fn single(&mut self, name: &str, kind: Kind, help: &str, value: f64) -> &mut Self {
        self.family(name, kind, help).sample(name, &[], value)
    }

    pub(crate) fn finish(self) -> String {
        self.out
    }
}

fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        // Rust prints integral floats without a fraction and never in exponent form.
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_families_samples_and_escapes() {
        let mut m = Exposition::default();
        m.family("a_total", Counter, "Help with \\ and\nnewline.")
            .sample("a_total", &[("x", "q\"b\\n\n"), ("y", "z")], 3.0)
            .sample("a_total", &[], 0.25);
        m.single("b", Gauge, "B.", f64::INFINITY);
        m.single("c", Gauge, "C.", 1.7e9);
        assert_eq!(
            m.finish(),
            "# HELP a_total Help with \\\\ and\\nnewline.\n\
             # TYPE a_total counter\n\
             a_total{x=\"q\\\"b\\\\n\\n\",y=\"z\"} 3\n\
             a_total 0.25\n\
             # HELP b B.\n# TYPE b gauge\nb +Inf\n\
             # HELP c C.\n# TYPE c gauge\nc 1700000000\n"
        );
    }
}
