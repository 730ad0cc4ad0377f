//! Printing results: JSON for machines (`--json`), short text for people; progress notes
//! on stderr unless `--quiet`; colour as `--color` says.

use std::io::IsTerminal;
use std::sync::OnceLock;

use serde::Serialize;

use crate::cli::ColorChoice;

/// How this process prints, set once from the global options.
#[derive(Debug, Clone, Copy)]
struct Mode {
    quiet: bool,
    /// Colour on stderr (notes, errors).
    color: bool,
    /// Colour on stdout (a report such as doctor's).
    color_out: bool,
}

static MODE: OnceLock<Mode> = OnceLock::new();

/// Sets how this process prints: `quiet` drops the progress notes; `color` is decided
/// here (auto: stderr is a terminal and NO_COLOR is not set).
pub fn init(quiet: bool, color: ColorChoice) {
    let _ = MODE.set(Mode {
        quiet,
        color: use_color(color),
        color_out: use_color_on(color, std::io::stdout().is_terminal()),
    });
}

/// Whether `choice` means colour on this process's stderr.
pub fn use_color(choice: ColorChoice) -> bool {
    use_color_on(choice, std::io::stderr().is_terminal())
}

fn use_color_on(choice: ColorChoice, terminal: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && terminal,
    }
}

/// Whether progress notes are dropped (`--quiet`).
pub fn quiet() -> bool {
    MODE.get().is_some_and(|m| m.quiet)
}

/// Whether to print in colour.
pub fn color() -> bool {
    MODE.get().is_some_and(|m| m.color)
}

/// `text` in bold (a heading, a step) when printing in colour.
pub fn bold(text: &str) -> String {
    paint("1", text)
}

/// `text` in red (a failure) when printing in colour.
pub fn red(text: &str) -> String {
    paint("1;31", text)
}

/// `text` in green (a success) when printing in colour.
pub fn green(text: &str) -> String {
    paint("32", text)
}

/// Styles for what goes to stdout, whose colour is decided for stdout.
pub mod stdout {
    /// `text` in bold.
    pub fn bold(text: &str) -> String {
        super::paint_if(super::color_out(), "1", text)
    }
    /// `text` in red.
    pub fn red(text: &str) -> String {
        super::paint_if(super::color_out(), "1;31", text)
    }
    /// `text` in green.
    pub fn green(text: &str) -> String {
        super::paint_if(super::color_out(), "32", text)
    }
}

fn color_out() -> bool {
    MODE.get().is_some_and(|m| m.color_out)
}

fn paint(code: &str, text: &str) -> String {
    paint_if(color(), code, text)
}

fn paint_if(color: bool, code: &str, text: &str) -> String {
    if color {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

/// Prints a progress note on stderr, unless `--quiet`.
macro_rules! note {
    ($($arg:tt)*) => {
        if !$crate::output::quiet() {
            eprintln!($($arg)*);
        }
    };
}
pub(crate) use note;

/// Prints `value` as pretty JSON on stdout: a command's one result.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints `value` as JSON on one line of stdout: one of a stream of results (`--follow`,
/// `watch`), one object per line.
pub fn json_line<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

/// Formats a byte count for people (`1.5 MiB`).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bytes_are_readable() {
        assert_eq!(super::bytes(12), "12 B");
        assert_eq!(super::bytes(1536), "1.5 KiB");
        assert_eq!(super::bytes(1 << 30), "1.0 GiB");
    }
}
