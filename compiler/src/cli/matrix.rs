//! `policyc matrix`: which workloads may reach which, on each port, as the datapath decides.

use super::paint::Paint;
use super::tree::{self, plural};
use super::{emit, ColorChoice, EXIT_OK};
use clap::{Args, ValueEnum};
use compiler::matrix::{self, Cell, PortProto};
use std::io::{self, Write};
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Every ordered pair of workloads (a workload with itself included) is judged on every port, as
the datapath would judge a new connection: the source's egress, then the destination's
ingress. L7 rules do not enter: a flow whose port reaches an L7 proxy counts as allowed.

In the table, rows are sources and columns destinations, numbered as the rows. A cell is `Y`
(allowed) or `.` (denied); with colour on (a terminal, `NO_COLOR` unset, or --color always)
it is a green `✓` or a red `✗`.

Examples:
  policyc matrix examples/online-shop
  policyc matrix examples/online-shop --ports 8080/TCP,53/UDP --format csv
  policyc matrix examples/online-shop --format json | jq '.flows[] | select(.allowed)'

Exit status:
  0  the matrix was printed
  2  usage error (a bad --ports entry), or a tree with errors (its findings are printed on
     stderr)";

#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct MatrixArgs {
    /// Files and directories of the tree (walked as `policyc check` walks them).
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,

    /// Ports to judge, comma-separated (`80/TCP,53/UDP`; the protocol defaults to TCP).
    /// Default: every container port the tree's workloads declare, in port order.
    #[arg(long, value_name = "PORT/PROTO,...", value_delimiter = ',', value_parser = parse_port)]
    pub ports: Option<Vec<PortProto>>,

    /// Output format.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = Format::Table)]
    pub format: Format,
}

/// The `--format` setting of `matrix`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One grid per port (`human` is accepted too).
    #[default]
    #[value(alias = "human")]
    Table,
    /// `from,to,port,allowed`, one line per flow, with a header line.
    Csv,
    /// `{"ports": ["80/TCP", ...], "flows": [{"from", "to", "port", "allowed"}, ...]}`.
    Json,
}

fn parse_port(s: &str) -> Result<PortProto, String> {
    s.parse()
}

/// Runs `policyc matrix` and returns the exit status.
pub fn run(args: &MatrixArgs, color: ColorChoice) -> u8 {
    let loaded = match tree::load(&args.paths, color, None) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let ports = match &args.ports {
        // The order given, each port once.
        Some(given) => {
            let mut p: Vec<PortProto> = Vec::new();
            for port in given {
                if !p.contains(port) {
                    p.push(*port);
                }
            }
            p
        }
        None => matrix::declared_ports(&loaded.compiled.inventory),
    };
    let cells = matrix::compute(&loaded.compiled, &ports);
    let names: Vec<String> = loaded
        .compiled
        .inventory
        .workloads
        .iter()
        .map(|w| w.full_name())
        .collect();
    let paint = color.for_stdout();
    let status = emit(EXIT_OK, |out| match args.format {
        Format::Table => write_table(out, &names, &ports, &cells, paint),
        Format::Csv => write_csv(out, &cells),
        Format::Json => {
            let v = MatrixJson {
                ports: ports.iter().map(|p| p.to_string()).collect(),
                flows: &cells,
            };
            serde_json::to_writer_pretty(&mut *out, &v)?;
            writeln!(out)
        }
    });
    std::mem::forget(loaded);
    status
}

/// `--format json`, in this field order.
#[derive(serde::Serialize)]
struct MatrixJson<'a> {
    ports: Vec<String>,
    flows: &'a [Cell],
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn write_csv(out: &mut dyn Write, cells: &[Cell]) -> io::Result<()> {
    writeln!(out, "from,to,port,allowed")?;
    for c in cells {
        writeln!(
            out,
            "{},{},{},{}",
            csv_field(&c.from),
            csv_field(&c.to),
            csv_field(&c.port),
            c.allowed
        )?;
    }
    Ok(())
}

/// One grid per port. `cells` are in (from, to, port) order over `names` and `ports`.
fn write_table(
    out: &mut dyn Write,
    names: &[String],
    ports: &[PortProto],
    cells: &[Cell],
    color: bool,
) -> io::Result<()> {
    let allowed = cells.iter().filter(|c| c.allowed).count();
    writeln!(
        out,
        "{}, {}: {allowed} of {} allowed",
        plural(names.len(), "workload", "workloads"),
        plural(ports.len(), "port", "ports"),
        plural(cells.len(), "flow", "flows"),
    )?;
    let n = names.len();
    let num_width = n.to_string().len();
    let name_width = names.iter().map(|s| s.chars().count()).max().unwrap_or(0);
    let (yes, no) = if color {
        (Paint::Green.apply("✓", true), Paint::Red.apply("✗", true))
    } else {
        ("Y".to_owned(), ".".to_owned())
    };
    for (pi, port) in ports.iter().enumerate() {
        writeln!(out, "\n{port} (rows: from, columns: to)")?;
        let mut header = " ".repeat(2 + num_width + 2 + name_width);
        for j in 0..n {
            header.push_str(&format!("  {:>num_width$}", j + 1));
        }
        writeln!(out, "{}", header.trim_end())?;
        for (i, name) in names.iter().enumerate() {
            let mut line = format!("  {:>num_width$}  {name:<name_width$}", i + 1);
            for j in 0..n {
                let index = (i * n + j) * ports.len() + pi;
                let mark = match cells.get(index) {
                    Some(c) if c.allowed => &yes,
                    Some(_) => &no,
                    None => "?",
                };
                line.push_str(&" ".repeat(2 + num_width - 1));
                line.push_str(mark);
            }
            writeln!(out, "{}", line.trim_end())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(from: &str, to: &str, allowed: bool) -> Cell {
        Cell {
            from: from.into(),
            to: to.into(),
            port: "80/TCP".into(),
            allowed,
        }
    }

    #[test]
    fn table_rows_are_sources_and_columns_destinations() {
        let names = vec!["a/x".to_owned(), "b/y".to_owned()];
        let ports: Vec<PortProto> = vec!["80/TCP".parse().unwrap_or_else(|e| panic!("{e}"))];
        let cells = vec![
            cell("a/x", "a/x", true),
            cell("a/x", "b/y", true),
            cell("b/y", "a/x", false),
            cell("b/y", "b/y", true),
        ];
        let mut out = Vec::new();
        write_table(&mut out, &names, &ports, &cells, false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            String::from_utf8_lossy(&out),
            "2 workloads, 1 port: 3 of 4 flows allowed\n\n\
             80/TCP (rows: from, columns: to)\n\
             \x20         1  2\n\
             \x20 1  a/x  Y  Y\n\
             \x20 2  b/y  .  Y\n"
        );
    }

    #[test]
    fn csv_quotes_only_when_needed() {
        assert_eq!(csv_field("a/b"), "a/b");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
    }
}
